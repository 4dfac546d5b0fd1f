//! What a user sees from `shoal ... --format`: each test reproduces docker's output byte for byte.

use serde_json::{json, Value};
use shoal_format::{
    render_inspect, render_inspect_partial, render_list, render_template, FormatError,
};

const NODE_LS: &str = "{{.ID}} {{if .Self}}*{{else}} {{ end }}\\t{{.Hostname}}\\t{{.Status}}\\t{{.Availability}}\\t{{.ManagerStatus}}\\t{{.EngineVersion}}";

const NODE_HEADERS: &[(&str, &str)] = &[
    ("ID", "ID"),
    ("Self", ""),
    ("Hostname", "HOSTNAME"),
    ("Status", "STATUS"),
    ("Availability", "AVAILABILITY"),
    ("ManagerStatus", "MANAGER STATUS"),
    ("EngineVersion", "ENGINE VERSION"),
    ("TLSStatus", "TLS STATUS"),
];

fn node(id: &str, me: bool, host: &str, status: &str, avail: &str, mgr: &str) -> Value {
    json!({"ID": id, "Self": me, "Hostname": host, "Status": status, "Availability": avail,
           "ManagerStatus": mgr, "EngineVersion": "28.3.2", "TLSStatus": "Ready"})
}

fn nodes() -> Vec<Value> {
    vec![
        node(
            "rb1bpfv8r8atppvsv7tcopkjp",
            true,
            "vm1",
            "Ready",
            "Active",
            "Leader",
        ),
        node(
            "kt2e56n25ufggwmpimfwi79u4",
            false,
            "vm2",
            "Ready",
            "Active",
            "Reachable",
        ),
        node(
            "9v6moirv361x0rturx9zngp9r",
            false,
            "vm3",
            "Down",
            "Drain",
            "",
        ),
    ]
}

/// `docker node ls` prints docker-facts §2's example exactly; the worker's empty MANAGER
/// STATUS cell is padded like any other cell, only the last cell of a line is not.
#[test]
fn node_ls_default_table_matches_docker() {
    let want = "\
ID                            HOSTNAME   STATUS    AVAILABILITY   MANAGER STATUS   ENGINE VERSION
rb1bpfv8r8atppvsv7tcopkjp *   vm1        Ready     Active         Leader           28.3.2
kt2e56n25ufggwmpimfwi79u4     vm2        Ready     Active         Reachable        28.3.2
9v6moirv361x0rturx9zngp9r     vm3        Down      Drain                           28.3.2
";
    assert_eq!(
        render_list(None, NODE_LS, NODE_HEADERS, &nodes()).unwrap(),
        want
    );
    assert_eq!(
        render_list(Some("table"), NODE_LS, NODE_HEADERS, &nodes()).unwrap(),
        want
    );
}

/// A node without an engine version ends its line with the padding of MANAGER STATUS.
#[test]
fn empty_last_cell_leaves_trailing_padding() {
    let mut n = node(
        "rb1bpfv8r8atppvsv7tcopkjp",
        true,
        "vm1",
        "Ready",
        "Active",
        "",
    );
    n["EngineVersion"] = json!("");
    let out = render_list(None, NODE_LS, NODE_HEADERS, &[n]).unwrap();
    assert_eq!(
        out.lines().nth(1).unwrap(),
        "rb1bpfv8r8atppvsv7tcopkjp *   vm1        Ready     Active         ".to_string()
            + &" ".repeat(17)
    );
}

#[test]
fn empty_table_prints_only_the_header() {
    assert_eq!(
        render_list(None, NODE_LS, NODE_HEADERS, &[]).unwrap(),
        "ID        HOSTNAME   STATUS    AVAILABILITY   MANAGER STATUS   ENGINE VERSION\n"
    );
    assert_eq!(
        render_list(Some("{{.ID}}"), NODE_LS, NODE_HEADERS, &[]).unwrap(),
        ""
    );
}

#[test]
fn bare_template_prints_one_line_per_row_without_header() {
    assert_eq!(
        render_list(Some("{{.Hostname}}"), NODE_LS, NODE_HEADERS, &nodes()).unwrap(),
        "vm1\nvm2\nvm3\n"
    );
    // docker trims spaces around the format and expands \t and \n.
    assert_eq!(
        render_list(
            Some(" {{.Hostname}}\\t{{.Status}} "),
            NODE_LS,
            NODE_HEADERS,
            &nodes()
        )
        .unwrap(),
        "vm1\tReady\nvm2\tReady\nvm3\tDown\n"
    );
}

#[test]
fn custom_table_gets_header_and_alignment() {
    let want = "\
ID                          HOSTNAME
rb1bpfv8r8atppvsv7tcopkjp   vm1
kt2e56n25ufggwmpimfwi79u4   vm2
9v6moirv361x0rturx9zngp9r   vm3
";
    assert_eq!(
        render_list(
            Some("table {{.ID}}\\t{{.Hostname}}"),
            NODE_LS,
            NODE_HEADERS,
            &nodes()
        )
        .unwrap(),
        want
    );
    // Header functions leave the header text alone; pad still pads.
    assert_eq!(
        render_list(
            Some("table {{lower .Hostname}}|{{pad .Status 1 1}}|"),
            NODE_LS,
            NODE_HEADERS,
            &nodes()[..1]
        )
        .unwrap(),
        "HOSTNAME| STATUS |\nvm1| Ready |\n"
    );
}

/// `--format json`: one object per row, keys sorted, values as given, HTML characters escaped.
#[test]
fn json_format_sorts_keys_and_escapes_html() {
    let row = json!({"ID": "9i8vhxqhl820", "Name": "web", "Mode": "replicated", "Replicas": "2/3",
                     "Image": "nginx:alpine", "Ports": "*:8080->80/tcp"});
    let want = "{\"ID\":\"9i8vhxqhl820\",\"Image\":\"nginx:alpine\",\"Mode\":\"replicated\",\"Name\":\"web\",\"Ports\":\"*:8080-\\u003e80/tcp\",\"Replicas\":\"2/3\"}\n";
    assert_eq!(
        render_list(Some("json"), "", &[], std::slice::from_ref(&row)).unwrap(),
        want
    );
    assert_eq!(
        render_list(Some("{{json .}}"), "", &[], &[row]).unwrap(),
        want
    );
    let out = render_list(Some("json"), NODE_LS, NODE_HEADERS, &nodes()[..1]).unwrap();
    assert!(
        out.starts_with(
            "{\"Availability\":\"Active\",\"EngineVersion\":\"28.3.2\",\"Hostname\":\"vm1\""
        ),
        "{out}"
    );
    assert!(out.contains("\"Self\":true"), "{out}");
}

#[test]
fn unknown_row_field_is_an_error() {
    let err = render_list(Some("{{.Nope}}"), NODE_LS, NODE_HEADERS, &nodes()).unwrap_err();
    assert!(matches!(err, FormatError::Execute(_)));
    assert!(
        err.to_string()
            .starts_with("template parsing error: template: :1:2: executing \"\" at <.Nope>: "),
        "{err}"
    );
}

#[test]
fn slices_print_like_go() {
    let v = json!({"Spec": {"TaskTemplate": {"Placement": {"Constraints": ["node.hostname == vm2", "node.labels.os == linux"]}}}});
    assert_eq!(
        render_template("{{.Spec.TaskTemplate.Placement.Constraints}}", &v).unwrap(),
        "[node.hostname == vm2 node.labels.os == linux]"
    );
}

#[test]
fn maps_print_sorted_like_go() {
    let v = json!({"Spec": {"Labels": {"tier": "web", "env": "prod"}, "Empty": {}, "N": {"b": [1, 2], "a": {"x": true}}}});
    assert_eq!(
        render_template("{{.Spec.Labels}}", &v).unwrap(),
        "map[env:prod tier:web]"
    );
    assert_eq!(render_template("{{.Spec.Empty}}", &v).unwrap(), "map[]");
    assert_eq!(
        render_template("{{.Spec.N}}", &v).unwrap(),
        "map[a:map[x:true] b:[1 2]]"
    );
    assert_eq!(
        render_template("{{range $k, $v := .Spec.Labels}}{{$k}}={{$v}} {{end}}", &v).unwrap(),
        "env=prod tier=web "
    );
}

#[test]
fn scalars_and_missing_fields_print_like_go() {
    let v = json!({"Version": {"Index": 12}, "Spec": {"Mode": {"Replicated": {"Replicas": 3}}}, "Ready": true, "F": 1.5});
    assert_eq!(
        render_template(
            "{{.Version.Index}} {{.Spec.Mode.Replicated.Replicas}} {{.Ready}} {{.F}}",
            &v
        )
        .unwrap(),
        "12 3 true 1.5"
    );
    assert_eq!(
        render_template("{{.Spec.Mode.Global}}|{{.Nope.Deeper}}", &v).unwrap(),
        "<no value>|<no value>"
    );
    assert_eq!(
        render_template("{{.Version.Index}}\\t{{.Ready}}\\n", &v).unwrap(),
        "12\ttrue\n"
    );
}

/// docker's `json` marshals typed structs, so objects keep their field order.
#[test]
fn json_function_keeps_key_order() {
    let v = json!({"Spec": {"Labels": {}, "Role": "manager", "Availability": "active"}});
    assert_eq!(
        render_template("{{json .Spec}}", &v).unwrap(),
        r#"{"Labels":{},"Role":"manager","Availability":"active"}"#
    );
}

/// docker's `json` template function turns HTML escaping off (cli templates/templates.go:
/// `enc.SetEscapeHTML(false)`); only `--format json` rows come out escaped.
#[test]
fn json_function_does_not_escape_html_like_docker() {
    let v = json!({"Ports": "*:8080->80/tcp", "Q": "a&b\"c"});
    assert_eq!(
        render_template("{{json .Ports}} {{json .Q}}", &v).unwrap(),
        r#""*:8080->80/tcp" "a&b\"c""#
    );
}

#[test]
fn docker_template_functions() {
    let v = json!({"Image": "nginx:alpine@sha256:0123", "Name": "Web", "Args": ["a", "b"]});
    assert_eq!(
        render_template("{{index (split .Image \"@\") 0}}", &v).unwrap(),
        "nginx:alpine"
    );
    assert_eq!(
        render_template(
            "{{join .Args \" \"}}|{{upper .Name}}|{{lower .Name}}|{{title \"web app\"}}",
            &v
        )
        .unwrap(),
        "a b|WEB|web|Web App"
    );
    assert_eq!(
        render_template("[{{pad .Name 1 2}}][{{truncate .Image 5}}]", &v).unwrap(),
        "[ Web  ][nginx]"
    );
    assert_eq!(
        render_template("{{printf \"%-6s|%3d\" .Name (len .Args)}}", &v).unwrap(),
        "Web   |  2"
    );
}

#[test]
fn inspect_indents_like_marshal_indent() {
    let v = json!({
        "ID": "9i8vhxqhl820",
        "Version": {"Index": 11},
        "Spec": {"Name": "web", "Labels": {}, "TaskTemplate": {"ContainerSpec": {"Args": [], "Env": ["A=<1>"]}}},
        "Endpoint": {"Ports": [{"Protocol": "tcp", "TargetPort": 80}]}
    });
    let want = r#"[
    {
        "ID": "9i8vhxqhl820",
        "Version": {
            "Index": 11
        },
        "Spec": {
            "Name": "web",
            "Labels": {},
            "TaskTemplate": {
                "ContainerSpec": {
                    "Args": [],
                    "Env": [
                        "A=\u003c1\u003e"
                    ]
                }
            }
        },
        "Endpoint": {
            "Ports": [
                {
                    "Protocol": "tcp",
                    "TargetPort": 80
                }
            ]
        }
    }
]
"#;
    assert_eq!(
        render_inspect(std::slice::from_ref(&v), None).unwrap(),
        want
    );
    assert_eq!(render_inspect(&[], None).unwrap(), "[]\n");
    assert_eq!(
        render_inspect(&[v.clone(), v.clone()], Some("{{.Spec.Name}}")).unwrap(),
        "web\nweb\n"
    );
    // docker inspect does not expand \n in the format.
    assert_eq!(
        render_inspect(std::slice::from_ref(&v), Some("{{.ID}}\\n")).unwrap(),
        "9i8vhxqhl820\\n\n"
    );
    assert!(render_inspect(&[v], Some("json"))
        .unwrap()
        .starts_with("[{\"ID\":\"9i8vhxqhl820\",\"Version\":{\"Index\":11}"));
}

#[test]
fn inspect_keeps_going_after_a_failing_object() {
    let (out, errors) = render_inspect_partial(
        &[
            json!({"A": {"B": "x"}}),
            json!({"A": null}),
            json!({"A": {"B": "y"}}),
        ],
        Some("{{.A.B}}"),
    )
    .unwrap();
    assert_eq!(out, "x\ny\n");
    assert_eq!(errors.len(), 1);
    assert_eq!(
        errors[0].to_string(),
        "template parsing error: template: :1:4: executing \"\" at <.A.B>: nil pointer evaluating interface {}.B"
    );
}

/// Bad templates are errors worded like docker's, never panics.
#[test]
fn bad_templates_are_errors() {
    let v = json!({"A": ["x"], "M": {"k": 1}});
    for (tmpl, want) in [
        ("{{.ID", "template parsing error: template: :1: unclosed action"),
        ("{{nope .X}}", "template parsing error: template: :1: function \"nope\" not defined"),
        ("{{if .A}}x", "template parsing error: template: :1: unexpected EOF"),
        ("{{end}}", "template parsing error: template: :1: unexpected {{end}}"),
        ("{{.A | 3}}", "template parsing error: template: :1: non executable command in pipeline stage 2"),
        (
            "{{index .A 3}}",
            "template parsing error: template: :1:2: executing \"\" at <index .A 3>: error calling index: index out of range: 3",
        ),
        (
            "{{range .M.k.z}}{{end}}",
            "template parsing error: template: :1:10: executing \"\" at <.M.k.z>: can't evaluate field z in type int",
        ),
    ] {
        assert_eq!(render_template(tmpl, &v).unwrap_err().to_string(), want, "{tmpl}");
    }
    assert!(matches!(
        render_list(Some("table {{.ID"), NODE_LS, NODE_HEADERS, &nodes()),
        Err(FormatError::Parse(_))
    ));
    assert!(matches!(
        render_inspect(&[v], Some("{{")),
        Err(FormatError::Parse(_))
    ));
}

/// Every prefix of some elaborate templates (mostly invalid text) renders or errors cleanly.
#[test]
fn truncated_templates_never_panic() {
    let v = json!({"A": ["x", "y"], "M": {"k": "v"}, "S": "s"});
    let texts = [
        r#"{{range $i, $e := .A}}{{if $i}}, {{end}}{{$e | printf "%q"}}{{else}}none{{end}}"#,
        r#"{{with $x := .M.k}}{{$x}}{{else with .S}}s{{end}} {{- /* c */ -}} {{define "t"}}[{{.}}]{{end}}{{template "t" .S}}"#,
        r#"{{if and (eq .S "s") (ne .S `x`)}}{{index .M "k"}}{{end}}{{(len .A)}}{{block "b" 1}}{{.}}{{end}}{{'é'}}{{0x1p4}}"#,
        "{{template \"r\" 0}}{{define \"r\"}}{{template \"r\" .}}{{end}}",
    ];
    for text in texts {
        for (i, _) in text.char_indices().chain([(text.len(), ' ')]) {
            let _ = render_template(&text[..i], &v);
            let _ = render_template(&format!("{}}}}}", &text[..i]), &v);
        }
    }
}
