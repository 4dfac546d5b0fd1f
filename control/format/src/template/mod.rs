//! Go text/template, as docker's CLI uses it for `--format`: parse once, execute per value.

mod ast;
mod exec;
mod funcs;
mod lex;
mod parse;

use std::collections::HashMap;

pub(crate) use funcs::FuncSet;

use crate::value::Val;
use crate::FormatError;

/// Docker parses every format with an empty template name, hence `template: :1: ...`.
const NAME: &str = "";

/// A parsed template together with the templates it `{{define}}`s.
pub(crate) struct Template {
    text: String,
    trees: HashMap<String, ast::List>,
}

impl Template {
    pub(crate) fn parse(text: &str) -> Result<Template, FormatError> {
        let trees =
            parse::parse(NAME, text, &funcs::is_defined).map_err(|e| FormatError::Parse(e.0))?;
        Ok(Template {
            text: text.to_string(),
            trees,
        })
    }

    /// Appends the output for `data` to `out`; on error `out` keeps the partial output.
    pub(crate) fn execute(
        &self,
        data: &Val,
        funcs: FuncSet,
        out: &mut String,
    ) -> Result<(), FormatError> {
        exec::execute(&self.trees, &self.text, NAME, data, funcs, out)
            .map_err(|e| FormatError::Execute(e.0))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value as JsonValue};

    use super::*;

    fn run(text: &str, data: JsonValue) -> String {
        let t = Template::parse(text).unwrap_or_else(|e| panic!("{e}"));
        let mut out = String::new();
        match t.execute(&Val::Json(data), FuncSet::Basic, &mut out) {
            Ok(()) => out,
            Err(e) => format!("ERR {e}"),
        }
    }

    #[test]
    fn fields_and_missing_keys() {
        let d = json!({"Spec": {"Name": "web", "Labels": {}, "Null": null}, "N": 3});
        assert_eq!(run("{{.Spec.Name}} {{.N}}", d.clone()), "web 3");
        assert_eq!(
            run("{{.Missing}}|{{.Missing.Deeper}}|{{.Spec.Null}}", d.clone()),
            "<no value>|<no value>|<no value>"
        );
        assert_eq!(run("{{.Spec.Labels}}", d.clone()), "map[]");
        assert_eq!(
            run("{{.Spec.Null.X}}", d.clone()),
            "ERR template parsing error: template: :1:7: executing \"\" at <.Spec.Null.X>: nil pointer evaluating interface {}.X"
        );
        assert_eq!(
            run("{{.Spec.Name.X}}", d),
            "ERR template parsing error: template: :1:7: executing \"\" at <.Spec.Name.X>: can't evaluate field X in type string"
        );
    }

    #[test]
    fn control_structures() {
        let d = json!({"L": {"b": "2", "a": "1"}, "A": ["x", "y", "z"], "E": [], "T": true});
        assert_eq!(
            run("{{range $k, $v := .L}}{{$k}}={{$v}};{{end}}", d.clone()),
            "a=1;b=2;"
        );
        assert_eq!(
            run(
                "{{range $i, $e := .A}}{{if $i}},{{end}}{{$e}}{{end}}",
                d.clone()
            ),
            "x,y,z"
        );
        assert_eq!(run("{{range .E}}x{{else}}empty{{end}}", d.clone()), "empty");
        assert_eq!(
            run(
                "{{range .A}}{{if eq . \"y\"}}{{break}}{{end}}{{.}}{{end}}",
                d.clone()
            ),
            "x"
        );
        assert_eq!(
            run(
                "{{range .A}}{{if eq . \"y\"}}{{continue}}{{end}}{{.}}{{end}}",
                d.clone()
            ),
            "xz"
        );
        assert_eq!(
            run(
                "{{with .L.a}}[{{.}}]{{end}}{{with .Nope}}x{{else}}none{{end}}",
                d.clone()
            ),
            "[1]none"
        );
        assert_eq!(
            run("{{if .Nope}}a{{else if .T}}b{{else}}c{{end}}", d.clone()),
            "b"
        );
        assert_eq!(
            run("{{$x := 1}}{{if .T}}{{$x = 2}}{{end}}{{$x}}", d.clone()),
            "2"
        );
        assert_eq!(run("{{range 3}}{{.}}{{end}}", d.clone()), "012");
        assert_eq!(run("{{define \"t\"}}<{{.}}>{{end}}{{template \"t\" .L.b}}{{block \"u\" 5}}{{.}}{{end}}", d), "<2>5");
    }

    #[test]
    fn pipelines_and_functions() {
        let d = json!({"Name": "Web", "Args": ["a", "b"], "Img": "nginx:alpine@sha256:abc"});
        assert_eq!(run("{{.Name | lower | printf \"%s!\"}}", d.clone()), "web!");
        assert_eq!(
            run(
                "{{join .Args \",\"}} {{len .Args}} {{index .Args 1}}",
                d.clone()
            ),
            "a,b 2 b"
        );
        assert_eq!(
            run("{{index (split .Img \"@\") 0}}", d.clone()),
            "nginx:alpine"
        );
        assert_eq!(
            run(
                "{{upper .Name}} {{title \"hello world\"}} {{pad .Name 1 2}}|",
                d.clone()
            ),
            "WEB Hello World  Web  |"
        );
        assert_eq!(
            run(
                "{{and .Name .Args}} {{or .Nope \"dflt\"}} {{not .Name}}",
                d.clone()
            ),
            "[a b] dflt false"
        );
        assert_eq!(
            run("{{json .}}", d.clone()),
            r#"{"Name":"Web","Args":["a","b"],"Img":"nginx:alpine@sha256:abc"}"#
        );
        assert_eq!(
            run("{{print 1 2 \"x\" 3}} {{println \"a\"}}", d.clone()),
            "1 2x3 a\n"
        );
        assert_eq!(
            run("{{printf \"%v %d %.1f\" .Args 7 2.25}}", d.clone()),
            "[a b] 7 2.2"
        );
        assert_eq!(
            run("{{lower .Args}}", d.clone()),
            "ERR template parsing error: template: :1:8: executing \"\" at <.Args>: wrong type for value; expected string; got []interface {}"
        );
        assert_eq!(
            run("{{index .Args 5}}", d),
            "ERR template parsing error: template: :1:2: executing \"\" at <index .Args 5>: error calling index: index out of range: 5"
        );
    }

    #[test]
    fn parse_errors_read_like_docker() {
        let e = Template::parse("{{.ID}} {{nope .X}}")
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            e.as_deref(),
            Some(r#"template parsing error: template: :1: function "nope" not defined"#)
        );
    }
}
