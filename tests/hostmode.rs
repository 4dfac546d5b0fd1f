//! Host-mode publishing in real labs: a port published with `mode=host` is
//! answered only by the nodes that run a task of the service, each by its own
//! task, with the client's address kept; other nodes refuse it. The port is a
//! node's resource: a second service asking it waits, pending, for a free node;
//! an ingress port of the same number is refused; bad input changes nothing.
//! Without a published port, each task gets its own port on its node.

mod common;

use std::time::Duration;

use common::*;

const CLIENT: &str = "client";
const HOST_8081: &str = "mode=host,published=8081,target=80";

/// One HTTP request from the client namespace: the body, or curl's exit code.
fn curl(s: &Swarm, url: &str) -> Result<String, i32> {
    let out = s
        .lab
        .exec(CLIENT, &["curl", "-sS", "-m", "2", url])
        .expect("curl");
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(out.status.code().unwrap_or(-1))
    }
}

/// curl's exit code for "connection refused" (7: failed to connect).
const REFUSED: i32 = 7;

/// One UDP datagram from the client namespace and the first reply, if any.
fn udp(s: &Swarm, addr: &str, port: u16) -> Option<String> {
    let script = format!(
        "exec 3<>/dev/udp/{addr}/{port} && printf hello >&3 && timeout 2 dd bs=2048 count=1 <&3 2>/dev/null"
    );
    let out = s.lab.exec(CLIENT, &["bash", "-c", &script]).expect("bash");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    (out.status.success() && !text.is_empty()).then_some(text)
}

fn url(s: &Swarm, node: &str, port: u16) -> String {
    format!("http://{}:{port}/", s.addr(node))
}

/// The answer of `node` on `port`, once it answers.
fn wait_answer(s: &Swarm, node: &str, port: u16) -> String {
    let u = url(s, node, port);
    wait_until(&format!("{u} answers"), Duration::from_secs(20), || {
        curl(s, &u).ok()
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", s.log_tail(node)))
}

/// Waits until `node` refuses connections on `port`.
fn wait_refused(s: &Swarm, node: &str, port: u16) {
    let u = url(s, node, port);
    wait_until(&format!("{u} refuses"), Duration::from_secs(15), || {
        (curl(s, &u) == Err(REFUSED)).then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}: {:?}\n{}", curl(s, &u), s.log_tail(node)));
}

fn create_web(s: &Swarm, name: &str, publish: &[&str], constraint: &str) {
    let mut args = vec!["service", "create", "-d", "--name", name, "--replicas", "2"];
    for p in publish {
        args.extend_from_slice(&["--publish", p]);
    }
    args.extend_from_slice(&[
        "--constraint",
        constraint,
        "demo",
        "shoal-whoami",
        "--listen",
        "0.0.0.0:80",
        "--udp",
    ]);
    s.ok("vm1", &args);
}

/// Two tasks publishing 8081 in host mode, on vm2 and vm3: each of those nodes
/// answers from its own task (never the other's), the task sees the client's
/// real address, over TCP and UDP; vm1, which runs no task, refuses. inspect,
/// `service ls` and `service ps` show the ports as docker does.
#[test]
fn host_mode_port_answers_only_where_a_task_runs() {
    let s = Swarm::three("hmod");
    create_web(
        &s,
        "web",
        &[HOST_8081, "mode=host,published=8081,target=80,protocol=udp"],
        "node.hostname != vm1",
    );
    s.wait_running_on("web", &["vm2", "vm3"]);

    let ports = r#"[{"Protocol":"tcp","TargetPort":80,"PublishedPort":8081,"PublishMode":"host"},{"Protocol":"udp","TargetPort":80,"PublishedPort":8081,"PublishMode":"host"}]"#;
    for path in [".Spec.EndpointSpec.Ports", ".Endpoint.Ports"] {
        let out = s.ok(
            "vm1",
            &[
                "service",
                "inspect",
                "--format",
                &format!("{{{{json {path}}}}}"),
                "web",
            ],
        );
        assert_eq!(out.trim(), ports, "{path}");
    }
    // Host-mode ports are no part of the mesh: no ingress VIP, nothing in `service ls`.
    let out = s.ok(
        "vm1",
        &[
            "service",
            "inspect",
            "--format",
            "{{json .Endpoint.VirtualIPs}}",
            "web",
        ],
    );
    assert_eq!(out.trim(), "null");
    let out = s.ok(
        "vm1",
        &["service", "ls", "--format", "{{.Name}}|{{.Ports}}"],
    );
    assert_eq!(out, "web|\n");
    // `service ps` shows each running task's own ports.
    let out = s.running_ps("web", "{{.Node}} {{.Ports}}");
    let mut rows: Vec<&str> = out.lines().collect();
    rows.sort();
    assert_eq!(
        rows,
        [
            "vm2 *:8081->80/tcp,*:8081->80/udp",
            "vm3 *:8081->80/tcp,*:8081->80/udp"
        ]
    );

    let client = s.addr(CLIENT);
    for node in ["vm2", "vm3"] {
        let first = wait_answer(&s, node, 8081);
        let host = field(&first, "Served by host")
            .expect("host line")
            .to_string();
        // Every new connection lands on the node's own task (the mesh would spread them).
        for _ in 0..10 {
            let body = curl(&s, &url(&s, node, 8081)).unwrap_or_else(|code| {
                panic!(
                    "{node}:8081 failed (curl exit {code})\n{}",
                    s.log_tail(node)
                )
            });
            assert_eq!(field(&body, "Node"), Some(node), "{body}");
            assert_eq!(
                field(&body, "Served by host"),
                Some(host.as_str()),
                "{body}"
            );
            let seen = field(&body, "Client").expect("client line");
            assert!(
                seen.starts_with(&format!("{client}:")),
                "the task saw {seen}, not the client {client}"
            );
        }
        let reply = wait_until(
            &format!("udp {node}:8081 answers"),
            Duration::from_secs(10),
            || udp(&s, &s.addr(node), 8081),
        )
        .unwrap_or_else(|e| panic!("{e}\n{}", s.log_tail(node)));
        assert_eq!(
            field(&reply, "Served by host"),
            Some(host.as_str()),
            "{reply}"
        );
        assert!(
            field(&reply, "Client").is_some_and(|c| c.starts_with(&format!("{client}:"))),
            "{reply}"
        );
    }
    // vm1 runs no task of web: it does not answer, over TCP or UDP.
    assert_eq!(curl(&s, &url(&s, "vm1", 8081)), Err(REFUSED));
    assert_eq!(udp(&s, &s.addr("vm1"), 8081), None);
}

/// The port is a node's: a second service asking it in host mode is left pending
/// on the nodes where it is taken, with docker's explanation, and runs once the
/// first is gone; the same port in ingress mode is refused at create and update;
/// a bad mode is refused and changes nothing.
#[test]
fn host_mode_port_is_a_node_resource() {
    let s = Swarm::three("hmrs");
    create_web(&s, "web", &[HOST_8081], "node.hostname != vm1");
    s.wait_running_on("web", &["vm2", "vm3"]);

    s.ok(
        "vm1",
        &[
            "service",
            "create",
            "-d",
            "--name",
            "api",
            "--publish",
            HOST_8081,
            "--constraint",
            "node.hostname != vm1",
            "demo",
            "shoal-whoami",
            "--listen",
            "0.0.0.0:80",
        ],
    );
    let why = "no suitable node (host-mode port already in use on 2 nodes; scheduling constraints not satisfied on 1 node)";
    wait_until(
        "api pending with the reason",
        Duration::from_secs(15),
        || {
            let out = s.ok(
                "vm1",
                &[
                    "service",
                    "ps",
                    "--no-trunc",
                    "--format",
                    "{{.CurrentState}}|{{.Error}}",
                    "api",
                ],
            );
            (out.starts_with("Pending ") && out.trim_end().ends_with(&format!("|{why}")))
                .then_some(())
        },
    )
    .unwrap_or_else(|e| {
        panic!(
            "{e}\n{}",
            s.ok("vm1", &["service", "ps", "--no-trunc", "api"])
        )
    });
    let out = s.ok(
        "vm1",
        &["service", "ls", "--format", "{{.Name}} {{.Replicas}}"],
    );
    assert!(out.contains("api 0/1\n"), "{out}");

    // Ingress mode wants the port on every node: refused while a host-mode
    // service has it (the first by name of those that have it: api).
    let err = s.fails(
        "vm1",
        &[
            "service",
            "create",
            "-d",
            "--name",
            "mesh",
            "--publish",
            "8081:80",
            "demo",
            "shoal-whoami",
        ],
    );
    assert!(
        err.contains("port '8081' is already in use by service 'api' (")
            && err.contains(") as a host-published port"),
        "{err}"
    );
    let out = s.ok("vm1", &["service", "ls", "--format", "{{.Name}}"]);
    assert_eq!(out, "api\nweb\n", "nothing was created");

    // Bad input is refused with docker's text and changes nothing.
    let before = s.ok("vm1", &["service", "inspect", "web"]);
    for args in [
        &[
            "service",
            "update",
            "--publish-add",
            "mode=foo,published=8082,target=80",
            "web",
        ][..],
        &[
            "service",
            "create",
            "-d",
            "--name",
            "bad",
            "--publish",
            "mode=foo,published=8082,target=80",
            "demo",
            "shoal-whoami",
        ][..],
    ] {
        let err = s.fails("vm1", args);
        assert!(
            err.contains("invalid publish mode value (foo): must be either 'ingress' or 'host'"),
            "{args:?}: {err}"
        );
    }
    let err = s.fails(
        "vm1",
        &[
            "service",
            "update",
            "--publish-add",
            "mode=host,published=x,target=80",
            "web",
        ],
    );
    assert!(err.contains("invalid published port x"), "{err}");
    assert_eq!(s.ok("vm1", &["service", "inspect", "web"]), before);
    let out = s.ok("vm1", &["service", "ls", "--format", "{{.Name}}"]);
    assert_eq!(out, "api\nweb\n");

    // Without web, its nodes' port is free: api runs on one of them and answers there,
    // and the node left without a task stops answering.
    s.ok("vm1", &["service", "rm", "web"]);
    wait_until("api running", Duration::from_secs(40), || {
        let rows = s.running_rows("api");
        rows.iter()
            .find(|r| r.contains(" Running "))
            .and_then(|r| r.split(' ').next().map(str::to_string))
    })
    .map(|node| {
        let body = wait_answer(&s, &node, 8081);
        assert_eq!(field(&body, "Task"), Some("api.1"), "{body}");
        let other = if node == "vm2" { "vm3" } else { "vm2" };
        wait_refused(&s, other, 8081);
    })
    .unwrap_or_else(|e| {
        panic!(
            "{e}\n{}",
            s.ok("vm1", &["service", "ps", "--no-trunc", "api"])
        )
    });
    assert_eq!(curl(&s, &url(&s, "vm1", 8081)), Err(REFUSED));
}

/// A host-mode port added to a running service (a rolling update gives its tasks
/// the port) is answered on the task's node; removed again, the node refuses it;
/// added once more, it answers again. A compose file's long port syntax
/// publishes in host mode too.
#[test]
fn publish_add_rm_and_compose_host_mode() {
    let s = Swarm::three("hmup");
    s.ok(
        "vm1",
        &[
            "service",
            "create",
            "-d",
            "--name",
            "web",
            "--constraint",
            "node.hostname == vm2",
            "demo",
            "shoal-whoami",
            "--listen",
            "0.0.0.0:80",
        ],
    );
    s.wait_running_on("web", &["vm2"]);
    assert_eq!(curl(&s, &url(&s, "vm2", 8084)), Err(REFUSED));
    s.ok(
        "vm1",
        &[
            "service",
            "update",
            "--publish-add",
            "mode=host,published=8084,target=80",
            "web",
        ],
    );
    let body = wait_answer(&s, "vm2", 8084);
    assert_eq!(field(&body, "Node"), Some("vm2"), "{body}");
    assert_eq!(curl(&s, &url(&s, "vm3", 8084)), Err(REFUSED));
    s.ok(
        "vm1",
        &[
            "service",
            "update",
            "--publish-rm",
            "mode=host,target=80",
            "web",
        ],
    );
    let out = s.ok(
        "vm1",
        &[
            "service",
            "inspect",
            "--format",
            "{{json .Spec.EndpointSpec}}",
            "web",
        ],
    );
    assert_eq!(out.trim(), r#"{"Mode":"vip"}"#);
    wait_refused(&s, "vm2", 8084);
    // Published again, on a node whose ingress network came and went in between.
    s.ok(
        "vm1",
        &[
            "service",
            "update",
            "--publish-add",
            "mode=host,published=8086,target=80",
            "web",
        ],
    );
    let body = wait_answer(&s, "vm2", 8086);
    assert_eq!(field(&body, "Node"), Some("vm2"), "{body}");

    let compose = std::env::temp_dir().join(format!("{}-hostmode.yml", s.lab.name()));
    std::fs::write(
        &compose,
        "version: \"3.8\"\nservices:\n  whoami:\n    image: demo\n    command: [\"shoal-whoami\", \"--listen\", \"0.0.0.0:80\"]\n    ports:\n      - target: 80\n        published: 8085\n        protocol: tcp\n        mode: host\n    deploy:\n      placement:\n        constraints: [node.hostname == vm3]\n",
    )
    .unwrap();
    let deployed = s.shoal(
        "vm1",
        &["stack", "deploy", "-c", compose.to_str().unwrap(), "hm"],
    );
    let _ = std::fs::remove_file(&compose);
    assert!(
        deployed.status.success(),
        "{}",
        String::from_utf8_lossy(&deployed.stderr)
    );
    s.wait_running_on("hm_whoami", &["vm3"]);
    let out = s.ok(
        "vm1",
        &[
            "service",
            "inspect",
            "--format",
            "{{json .Endpoint.Ports}}",
            "hm_whoami",
        ],
    );
    assert_eq!(
        out.trim(),
        r#"[{"Protocol":"tcp","TargetPort":80,"PublishedPort":8085,"PublishMode":"host"}]"#
    );
    let body = wait_answer(&s, "vm3", 8085);
    assert_eq!(field(&body, "Task"), Some("hm_whoami.1"), "{body}");
    for node in ["vm1", "vm2"] {
        assert_eq!(curl(&s, &url(&s, node, 8085)), Err(REFUSED), "{node}");
    }
}

/// `service ps` rows of the running tasks of `svc`: (task name, node, published port)
/// from the PORTS column (`*:32768->80/tcp`), sorted.
fn task_ports(s: &Swarm, svc: &str) -> Vec<(String, String, u16)> {
    let out = s.running_ps(svc, "{{.Name}} {{.Node}} {{.CurrentState}}|{{.Ports}}");
    let mut rows: Vec<(String, String, u16)> = out
        .lines()
        .filter_map(|l| {
            let (head, ports) = l.split_once('|')?;
            let mut words = head.split(' ');
            let (name, node, state) = (words.next()?, words.next()?, words.next()?);
            let port = ports.strip_prefix("*:")?.strip_suffix("->80/tcp")?;
            let port: u16 = port.parse().ok()?;
            (state == "Running").then(|| (name.to_string(), node.to_string(), port))
        })
        .collect();
    rows.sort();
    rows
}

/// Each node answers on each shown port with its own task of that port, and refuses a
/// port none of its tasks was given.
fn check_answers(s: &Swarm, shown: &[(String, String, u16)]) {
    for node in ["vm1", "vm2", "vm3"] {
        for (_, _, port) in shown {
            let here = shown.iter().find(|(_, n, p)| n == node && p == port);
            match here {
                Some((task, _, _)) => {
                    let body = wait_answer(s, node, *port);
                    assert_eq!(field(&body, "Task"), Some(task.as_str()), "{body}");
                    assert_eq!(field(&body, "Node"), Some(node), "{body}");
                    let client = s.addr(CLIENT);
                    assert!(
                        field(&body, "Client")
                            .is_some_and(|c| c.starts_with(&format!("{client}:"))),
                        "{body}"
                    );
                }
                None => assert_eq!(
                    curl(s, &url(s, node, *port)),
                    Err(REFUSED),
                    "{node}:{port} has no task of that port"
                ),
            }
        }
    }
}

/// `--publish mode=host,target=80` (no published port): docker's engine gives each task a
/// port of its node's ephemeral range. `service ps` shows each task's port, the task's
/// PortStatus has it, the service's endpoint keeps none; the task's node answers on it
/// with that task (the client's address kept), nodes without such a task refuse it. Two
/// tasks on one node get two ports, each answered by its own task. A restart of the
/// manager keeps every port as it was.
#[test]
fn unpublished_host_port_is_picked_per_task() {
    let s = Swarm::three("hmdy");
    create_web(&s, "web", &["mode=host,target=80"], "node.hostname != vm1");
    s.wait_running_on("web", &["vm2", "vm3"]);

    let out = s.ok(
        "vm1",
        &[
            "service",
            "inspect",
            "--format",
            "{{json .Endpoint.Ports}}",
            "web",
        ],
    );
    assert_eq!(
        out.trim(),
        r#"[{"Protocol":"tcp","TargetPort":80,"PublishMode":"host"}]"#
    );
    let web = task_ports(&s, "web");
    assert_eq!(web.len(), 2, "{web:?}");
    for (_, _, port) in &web {
        assert!(
            (32768..=60999).contains(port),
            "{web:?}: not the lab's ephemeral range"
        );
    }
    // The task's own PortStatus says the same.
    let ids = s.ok(
        "vm1",
        &[
            "service",
            "ps",
            "-q",
            "--no-trunc",
            "-f",
            "desired-state=running",
            "web",
        ],
    );
    for id in ids.lines() {
        let status = s.ok(
            "vm1",
            &[
                "inspect",
                "--format",
                "{{.NodeID}} {{json .Status.PortStatus}}",
                id,
            ],
        );
        let port = status
            .split("\"PublishedPort\":")
            .nth(1)
            .and_then(|rest| rest.split(',').next())
            .and_then(|p| p.parse::<u16>().ok())
            .unwrap_or_else(|| panic!("no published port: {status}"));
        let want = format!(
            r#"{{"Ports":[{{"Protocol":"tcp","TargetPort":80,"PublishedPort":{port},"PublishMode":"host"}}]}}"#
        );
        assert!(status.trim_end().ends_with(&want), "{status}");
        assert!(
            web.iter().any(|(_, _, p)| *p == port),
            "{status} vs {web:?}"
        );
    }
    check_answers(&s, &web);

    // Two tasks on vm3, which already gives web's task a port: three different ports there.
    s.ok(
        "vm1",
        &[
            "service",
            "create",
            "-d",
            "--name",
            "pair",
            "--replicas",
            "2",
            "--publish",
            "mode=host,target=80",
            "--constraint",
            "node.hostname == vm3",
            "demo",
            "shoal-whoami",
            "--listen",
            "0.0.0.0:80",
        ],
    );
    s.wait_running_on("pair", &["vm3", "vm3"]);
    let pair = task_ports(&s, "pair");
    let mut on_vm3: Vec<u16> = web
        .iter()
        .chain(&pair)
        .filter(|(_, n, _)| n == "vm3")
        .map(|(_, _, p)| *p)
        .collect();
    on_vm3.sort();
    on_vm3.dedup();
    assert_eq!(on_vm3.len(), 3, "web {web:?}, pair {pair:?}");
    check_answers(&s, &pair);

    // The choice is in the cluster state: the manager's restart changes no port.
    let mut all: Vec<_> = web.iter().chain(&pair).cloned().collect();
    all.sort();
    s.lab.stop("vm1").unwrap();
    s.lab.start("vm1").unwrap();
    s.wait_leader("vm1", Duration::from_secs(30));
    wait_until(
        "the same ports after the restart",
        Duration::from_secs(30),
        || {
            let mut now: Vec<_> = task_ports(&s, "web");
            now.extend(task_ports(&s, "pair"));
            now.sort();
            (now == all).then_some(())
        },
    )
    .unwrap_or_else(|e| {
        panic!(
            "{e}: {:?} {:?} before {all:?}\n{}",
            task_ports(&s, "web"),
            task_ports(&s, "pair"),
            s.log_tail("vm1")
        )
    });
    check_answers(&s, &all);
}
