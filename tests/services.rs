//! Services and stacks in real labs: the tutorial's sequence, rolling updates, drain,
//! node loss, restart policy, failure actions, pending tasks, global mode, bad compose
//! files, daemon restarts that keep tasks running, task history and scale-down. One lab
//! per test, run serially.

mod common;

use std::time::{Duration, Instant};

use common::*;

const T: Duration = Duration::from_secs(30);

fn example_compose() -> String {
    format!("{}/examples/docker-compose.yml", env!("CARGO_MANIFEST_DIR"))
}

/// Tasks of a stack or service as (name, node, desired, current state word), newest first.
fn tasks(s: &Swarm, on: &str, args: &[&str]) -> Vec<(String, String, String, String)> {
    let mut argv = args.to_vec();
    argv.extend_from_slice(&[
        "--format",
        "{{.Name}}|{{.Node}}|{{.DesiredState}}|{{.CurrentState}}",
    ]);
    let out = s.shoal(on, &argv);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split('|').collect();
            let state = f
                .get(3)
                .and_then(|c| c.split_whitespace().next())
                .unwrap_or("")
                .to_string();
            (
                f[0].to_string(),
                f.get(1).unwrap_or(&"").to_string(),
                f.get(2).unwrap_or(&"").to_string(),
                state,
            )
        })
        .collect()
}

/// Nodes running a task of `service` (desired and current state Running).
fn running_on(s: &Swarm, service: &str) -> Vec<String> {
    let mut nodes: Vec<String> = tasks(s, "vm1", &["service", "ps", service])
        .into_iter()
        .filter(|t| t.2 == "Running" && t.3 == "Running")
        .map(|t| t.1)
        .collect();
    nodes.sort();
    nodes
}

fn wait_running_on(s: &Swarm, service: &str, want: &[&str]) {
    wait_until(&format!("{service} running on {want:?}"), T, || {
        (running_on(s, service) == want).then_some(())
    })
    .unwrap_or_else(|e| {
        panic!(
            "{e:#}\n{}\n{}\n{}",
            s.ok("vm1", &["service", "ps", "--no-trunc", service]),
            s.log_tail("vm1"),
            s.log_tail("vm2")
        )
    });
}

fn tutorial_swarm() -> Swarm {
    let s = Swarm::lab("tut", 2);
    s.form(&[("vm2", "manager")]);
    for n in ["vm1", "vm2"] {
        s.ok("vm1", &["node", "update", "--label-add", "os=linux", n]);
    }
    s
}

/// The service's `UpdateStatus.State` (`completed`, `paused`, `rollback_completed`...).
fn update_state(s: &Swarm, service: &str) -> String {
    s.ok(
        "vm1",
        &[
            "service",
            "inspect",
            "--format",
            "{{.UpdateStatus.State}}",
            service,
        ],
    )
}

/// The tutorial, as it reads, with `shoal` for `docker`: where each task runs after each step.
#[test]
fn tutorial_sequence() {
    let s = tutorial_swarm();
    let compose = example_compose();
    let out = s.ok("vm1", &["stack", "deploy", "-c", &compose, "webapp"]);
    assert_eq!(
        out,
        "Creating network webapp_default\nCreating service webapp_db\nCreating service webapp_web\n"
    );
    wait_running_on(&s, "webapp_db", &["vm1"]);
    wait_running_on(&s, "webapp_web", &["vm2"]);

    let constraints = |s: &Swarm| {
        s.ok(
            "vm1",
            &[
                "service",
                "inspect",
                "--format",
                "{{.Spec.TaskTemplate.Placement.Constraints}}",
                "webapp_web",
            ],
        )
        .trim()
        .to_string()
    };
    assert_eq!(
        constraints(&s),
        "[node.hostname == vm2 node.labels.os == linux]"
    );
    // swarmkit's InterpolateService gives a stack's service the DNSConfig stack deploy
    // does not send.
    let dns = s.ok(
        "vm1",
        &[
            "service",
            "inspect",
            "--format",
            "{{json .Spec.TaskTemplate.ContainerSpec.DNSConfig}}",
            "webapp_web",
        ],
    );
    assert_eq!(dns.trim(), "{}");
    let before = s.ok("vm1", &["service", "ps", "-q", "webapp_web"]);

    // Removing the hostname constraint moves nothing: vm2 still fits. As in swarmkit, no
    // update runs (the spec change clears the status and no task is out of date), so
    // docker's progress waits for the service to converge rather than ending at once on
    // a "completed" update.
    let out = s.ok(
        "vm1",
        &[
            "service",
            "update",
            "--constraint-rm",
            "node.hostname == vm2",
            "--with-registry-auth",
            "webapp_web",
        ],
    );
    assert!(
        out.starts_with("webapp_web\noverall progress: ")
            && out.contains("\nverify: Waiting 5 seconds to verify that tasks are stable...\n")
            && out.ends_with("\nverify: Service webapp_web converged\n"),
        "{out}"
    );
    let inspect = s.ok("vm1", &["service", "inspect", "webapp_web"]);
    let inspect: serde_json::Value = serde_json::from_str(&inspect).unwrap();
    assert!(
        inspect[0].get("UpdateStatus").is_none(),
        "no update ran: {}",
        inspect[0]
    );
    assert_eq!(
        s.ok("vm1", &["service", "ps", "-q", "webapp_web"]),
        before,
        "the task was restarted"
    );
    assert_eq!(running_on(&s, "webapp_web"), ["vm2"]);

    s.ok(
        "vm1",
        &[
            "service",
            "update",
            "-d",
            "--constraint-add",
            "node.hostname == vm1",
            "--with-registry-auth",
            "webapp_web",
        ],
    );
    wait_running_on(&s, "webapp_web", &["vm1"]);
    let nodes = s.ok(
        "vm1",
        &[
            "service",
            "ps",
            "--format",
            "{{.Node}}",
            "-f",
            "desired-state=running",
            "webapp_web",
        ],
    );
    assert_eq!(nodes.trim(), "vm1");
    assert_eq!(
        constraints(&s),
        "[node.hostname == vm1 node.labels.os == linux]"
    );
    s.ok(
        "vm1",
        &[
            "service",
            "update",
            "-d",
            "--constraint-rm",
            "node.hostname == vm1",
            "webapp_web",
        ],
    );
    assert_eq!(constraints(&s), "[node.labels.os == linux]");

    // Scale to 2: one per node (spread).
    s.ok(
        "vm1",
        &["service", "update", "-d", "--replicas", "2", "webapp_web"],
    );
    wait_running_on(&s, "webapp_web", &["vm1", "vm2"]);
    // REPLICAS counts every running task, as swarmkit does, also one still stopping
    // after the constraint moved it: 2/2 once that one has stopped.
    let ls = || {
        s.ok(
            "vm1",
            &[
                "service",
                "ls",
                "--format",
                "{{.Name}} {{.Replicas}} {{.Ports}}",
            ],
        )
    };
    wait_until("webapp_web 2/2 in service ls", T, || {
        ls().contains("webapp_web 2/2 *:8080->80/tcp").then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", ls()));
    assert!(ls().contains("webapp_db 1/1 "), "{}", ls());

    // Rolling update 1.0 -> 2.0, parallelism 1, with a delay: at every moment a task runs.
    s.ok(
        "vm1",
        &[
            "service",
            "update",
            "-d",
            "--image",
            "shoal/demo-web:2.0",
            "--args",
            "--listen 0.0.0.0:80 --version 2.0",
            "--update-parallelism",
            "1",
            "--update-delay",
            "1s",
            "--with-registry-auth",
            "webapp_web",
        ],
    );
    let started = Instant::now();
    loop {
        let running = running_on(&s, "webapp_web");
        assert!(
            !running.is_empty(),
            "no web task running during the rolling update"
        );
        let status = update_state(&s, "webapp_web");
        if status.trim() == "completed" {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "update did not complete: {status}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let images = s.running_ps("webapp_web", "{{.Image}}");
    assert_eq!(images.trim(), "shoal/demo-web:2.0\nshoal/demo-web:2.0");
    // History rows keep the old image.
    let table = s.ok("vm1", &["stack", "ps", "webapp"]);
    assert!(table.contains(" \\_ webapp_web.1"), "{table}");

    // Drain vm2: everything ends up on vm1.
    s.ok("vm1", &["node", "update", "--availability", "drain", "vm2"]);
    wait_running_on(&s, "webapp_web", &["vm1", "vm1"]);
    // Back to active, then --force rebalances over both nodes.
    s.ok(
        "vm1",
        &["node", "update", "--availability", "active", "vm2"],
    );
    s.ok(
        "vm1",
        &[
            "service",
            "update",
            "-d",
            "--force",
            "--with-registry-auth",
            "webapp_web",
        ],
    );
    wait_running_on(&s, "webapp_web", &["vm1", "vm2"]);
}

/// A worker powered off: its tasks are rescheduled on the others after the node-down grace,
/// as their restart policy says: a task with restart condition none is not (swarmkit hands
/// a lost node's tasks to its restart supervisor, which never restarts those).
#[test]
fn lost_worker_tasks_are_rescheduled() {
    let s = Swarm::lab("lost", 3);
    s.form(&[("vm2", "worker"), ("vm3", "worker")]);
    // Spread: one task on each worker.
    s.ok(
        "vm1",
        &[
            "service",
            "create",
            "-d",
            "--name",
            "once",
            "--replicas",
            "2",
            "--restart-condition",
            "none",
            "--constraint",
            "node.role == worker",
            "busybox",
            "sleep",
            "600",
        ],
    );
    wait_running_on(&s, "once", &["vm2", "vm3"]);
    s.ok(
        "vm1",
        &[
            "service",
            "create",
            "-d",
            "--name",
            "sleeper",
            "--replicas",
            "3",
            "--constraint",
            "node.role == worker",
            "busybox",
            "sleep",
            "600",
        ],
    );
    wait_until("3 tasks on workers", T, || {
        let r = running_on(&s, "sleeper");
        (r == ["vm2", "vm2", "vm3"] || r == ["vm2", "vm3", "vm3"]).then_some(())
    })
    .unwrap();
    s.lab.stop("vm3").unwrap();
    wait_running_on(&s, "sleeper", &["vm2", "vm2", "vm2"]);
    // The same round that replaced sleeper's tasks told vm3's `once` task to shut down,
    // and made it no replacement.
    let once = tasks(&s, "vm1", &["service", "ps", "once"]);
    let on_vm3: Vec<_> = once.iter().filter(|t| t.1 == "vm3").collect();
    assert_eq!(once.len(), 2, "{once:?}");
    assert_eq!(on_vm3.len(), 1, "{once:?}");
    assert_eq!(on_vm3[0].2, "Shutdown", "{once:?}");
    assert_eq!(running_on(&s, "once"), ["vm2"]);
}

/// restart_policy none: a task that exits stays exited; any: it comes back.
#[test]
fn restart_policy_is_respected() {
    let s = Swarm::lab("rest", 1);
    s.init("vm1");
    s.ok(
        "vm1",
        &[
            "service",
            "create",
            "-d",
            "--name",
            "once",
            "--restart-condition",
            "none",
            "busybox",
            "sh",
            "-c",
            "exit 0",
        ],
    );
    s.ok(
        "vm1",
        &[
            "service",
            "create",
            "-d",
            "--name",
            "again",
            "--restart-delay",
            "100ms",
            "busybox",
            "sh",
            "-c",
            "sleep 0.3; exit 3",
        ],
    );
    wait_until("again restarted twice", T, || {
        let failed = tasks(&s, "vm1", &["service", "ps", "again"])
            .iter()
            .filter(|t| t.3 == "Failed")
            .count();
        (failed >= 2).then_some(())
    })
    .unwrap();
    let once = tasks(&s, "vm1", &["service", "ps", "once"]);
    assert_eq!(once.len(), 1, "{once:?}");
    assert_eq!(once[0].3, "Complete", "{once:?}");
    let err = s.ok("vm1", &["service", "ps", "--format", "{{.Error}}", "again"]);
    assert!(err.contains("\"task: non-zero exit (3)\""), "{err}");

    // During a restart delay, as swarmkit: the failed task is shut down at once and its
    // replacement is made at once, held `Ready` on its node until the delay is over.
    s.ok(
        "vm1",
        &[
            "service",
            "create",
            "-d",
            "--name",
            "later",
            "--restart-delay",
            "4s",
            "busybox",
            "sh",
            "-c",
            "sleep 2; exit 3",
        ],
    );
    let rows = || {
        tasks(&s, "vm1", &["service", "ps", "later"])
            .into_iter()
            .map(|t| format!("{}|{}", t.2, t.3))
            .collect::<Vec<_>>()
    };
    wait_until("the replacement held ready", T, || {
        (rows() == ["Ready|Ready", "Shutdown|Failed"]).then_some(())
    })
    .unwrap_or_else(|e| panic!("{e:#}\n{:?}", rows()));
    wait_until("the replacement started after the delay", T, || {
        (rows() == ["Running|Running", "Shutdown|Failed"]).then_some(())
    })
    .unwrap_or_else(|e| panic!("{e:#}\n{:?}", rows()));
}

/// An update whose new tasks fail: rolls back with failure_action rollback, pauses with pause.
#[test]
fn failed_update_rolls_back_or_pauses() {
    let s = Swarm::lab("fupd", 1);
    s.init("vm1");
    for name in ["rb", "pz"] {
        s.ok(
            "vm1",
            &[
                "service", "create", "-d", "--name", name, "busybox", "sleep", "600",
            ],
        );
    }
    wait_running_on(&s, "rb", &["vm1"]);
    wait_running_on(&s, "pz", &["vm1"]);

    // service inspect: ContainerSpec as the docker CLI sends it, in moby's key order.
    assert_eq!(
        s.ok(
            "vm1",
            &[
                "service",
                "inspect",
                "--format",
                "{{json .Spec.TaskTemplate.ContainerSpec}}",
                "pz"
            ]
        ),
        "{\"Image\":\"busybox\",\"Args\":[\"sleep\",\"600\"],\"Init\":false,\"StopGracePeriod\":10000000000,\"DNSConfig\":{},\"Isolation\":\"default\"}\n"
    );

    let pretty = s.ok("vm1", &["service", "inspect", "--pretty", "pz"]);
    assert!(
        pretty.contains(
            "\nPlacement:\nUpdateConfig:\n Parallelism:\t1\n On failure:\tpause\n Monitoring Period: 5s\n"
        ) && pretty.contains("\nContainerSpec:\n Image:\t\tbusybox\n Args:\t\tsleep 600 \n Init:\t\tfalse\n")
            && pretty.ends_with("\nResources:\nEndpoint Mode:\tvip\n\n"),
        "{pretty}"
    );

    // docker's progress without a terminal: no bars; `overall progress` repeats each poll.
    // `--force` makes every task outdated, so it starts at 0 (the old task runs).
    let forced = s.ok("vm1", &["service", "update", "--force", "rb"]);
    assert!(
        forced.starts_with("rb\noverall progress: 0 out of 1 tasks\n1/1:  \n"),
        "{forced}"
    );
    assert!(
        forced.contains(
            "\noverall progress: 1 out of 1 tasks\nverify: Waiting 5 seconds to verify that tasks are stable...\n"
        ),
        "{forced}"
    );
    assert!(
        forced.ends_with("\nverify: Service rb converged\n"),
        "{forced}"
    );
    assert!(!forced.contains('['), "a bar without a terminal: {forced}");
    let back = s.ok("vm1", &["service", "rollback", "rb"]);
    assert!(
        back.starts_with(
            "rb\nrollback: manually requested rollback\noverall progress: rolling back update: 0 out of 1 tasks\n1/1:  \n"
        ),
        "{back}"
    );
    assert!(back.ends_with("\nverify: Service rb converged\n"), "{back}");
    wait_until("the rollback to complete", T, || {
        let st = update_state(&s, "rb");
        (st.trim() == "rollback_completed").then_some(())
    })
    .unwrap();

    // `service scale`: every service is scaled first, bad ones reported (prefixed with
    // their name) at the end, after the progress of the good ones.
    let out = s.shoal("vm1", &["service", "scale", "nosuch=2", "rb=1", "pz=x"]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.starts_with("rb scaled to 1\noverall progress: 0 out of 1 tasks\n"),
        "{stdout}"
    );
    assert!(
        stdout.ends_with("\nverify: Service rb converged\n"),
        "{stdout}"
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "nosuch: Error response from daemon: service nosuch not found\n\
         pz: invalid replicas value x: strconv.ParseUint: parsing \"x\": invalid syntax\n"
    );
    assert_eq!(
        s.fails("vm1", &["service", "update", "--replicas", "2", "nosuch"]),
        "Error response from daemon: service nosuch not found\n"
    );
    let out = s.shoal(
        "vm1",
        &[
            "service",
            "update",
            "--args",
            "sh -c false",
            "--update-failure-action",
            "rollback",
            "--update-monitor",
            "2s",
            "rb",
        ],
    );
    // docker reports the automatic rollback and waits for it, then exits 0.
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout
            .contains("\nrollback: update rolled back due to failure or early termination of task"),
        "{stdout}"
    );
    assert!(
        stdout.contains("\nverify: Service rb converged\n"),
        "{stdout}"
    );
    // As docker's, the CLI returns once the tasks converged on the old spec, which
    // can be before the rollback's own monitor period ends and marks it completed.
    let args = s.ok(
        "vm1",
        &[
            "service",
            "inspect",
            "--format",
            "{{json .Spec.TaskTemplate.ContainerSpec.Args}}",
            "rb",
        ],
    );
    assert_eq!(args.trim(), r#"["sleep","600"]"#);
    wait_until("the automatic rollback to complete", T, || {
        (update_state(&s, "rb").trim() == "rollback_completed").then_some(())
    })
    .unwrap();

    let out = s.shoal(
        "vm1",
        &[
            "service",
            "update",
            "--args",
            "sh -c false",
            "--update-monitor",
            "2s",
            "pz",
        ],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(
            "service update paused: update paused due to failure or early termination of task"
        ),
        "{err}"
    );
    let state = update_state(&s, "pz");
    assert_eq!(state.trim(), "paused");
}

/// docker: "To restart a paused update run `docker service update <SERVICE-ID>`": an
/// update without changes resumes a paused update, which then completes.
#[test]
fn service_update_resumes_a_paused_update() {
    let s = Swarm::lab("resm", 1);
    s.init("vm1");
    let flag = format!("/tmp/shoal-resume-{}", s.lab.name());
    let _ = std::fs::remove_file(&flag);
    s.ok(
        "vm1",
        &[
            "service",
            "create",
            "-d",
            "--name",
            "rs",
            "--replicas",
            "2",
            "--restart-delay",
            "1s",
            "busybox",
            "sleep",
            "600",
        ],
    );
    // The new command runs only once the flag exists: the update's first task fails,
    // and the update pauses before the second (10s later).
    let args = format!("sh -c 'test -f {flag} && exec sleep 600'");
    let out = s.shoal(
        "vm1",
        &[
            "service",
            "update",
            "--args",
            &args,
            "--update-monitor",
            "2s",
            "--update-delay",
            "10s",
            "rs",
        ],
    );
    assert!(!out.status.success());
    assert_eq!(update_state(&s, "rs").trim(), "paused");
    std::fs::write(&flag, "ok").unwrap();
    // Detached, so that an update that never resumes fails the wait below rather than
    // leaving the progress waiting for ever (as docker's would).
    let out = s.shoal("vm1", &["service", "update", "-d", "rs"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let done = wait_until("the resumed update to complete", T, || {
        (update_state(&s, "rs").trim() == "completed").then_some(())
    });
    let _ = std::fs::remove_file(&flag);
    done.unwrap();
    let ids = s.ok(
        "vm1",
        &[
            "service",
            "ps",
            "-f",
            "desired-state=running",
            "--no-trunc",
            "--format",
            "{{.ID}} {{.CurrentState}}",
            "rs",
        ],
    );
    let lines: Vec<&str> = ids.lines().collect();
    assert_eq!(lines.len(), 2, "{ids}");
    for l in lines {
        let (id, state) = l.split_once(' ').unwrap();
        assert!(state.starts_with("Running"), "{ids}");
        let args = s.ok(
            "vm1",
            &[
                "inspect",
                "--format",
                "{{json .Spec.ContainerSpec.Args}}",
                id,
            ],
        );
        assert!(args.contains("test -f"), "{args}");
    }
}

/// A task that cannot be placed says why in ERROR and is placed as soon as a node qualifies.
#[test]
fn pending_tasks_explain_themselves() {
    let s = Swarm::lab("pend", 2);
    s.form(&[("vm2", "worker")]);
    s.ok(
        "vm1",
        &[
            "service",
            "create",
            "-d",
            "--name",
            "picky",
            "--constraint",
            "node.labels.disk == ssd",
            "busybox",
            "sleep",
            "600",
        ],
    );
    // A task of `name` pending, with swarmkit's explanation.
    let pending_explained = |name: &str| {
        wait_until(&format!("{name} pending, explained"), T, || {
            let err = s.ok(
                "vm1",
                &[
                    "service",
                    "ps",
                    "--no-trunc",
                    "--format",
                    "{{.CurrentState}}|{{.Error}}",
                    name,
                ],
            );
            (err.starts_with("Pending ")
                && err.contains(
                    "|no suitable node (scheduling constraints not satisfied on 2 nodes)",
                ))
            .then_some(())
        })
        .unwrap()
    };
    pending_explained("picky");
    s.ok("vm1", &["node", "update", "--label-add", "disk=ssd", "vm2"]);
    wait_running_on(&s, "picky", &["vm2"]);

    // swarmkit's other keys: `node.ip` (an address or a network) places by address, an
    // engine label Shoal nodes lack is "" (so `!=` holds everywhere, `==` nowhere), and a
    // key no node has is accepted and leaves the task pending, explained.
    let vm2 = s.addr("vm2");
    for (name, mode, constraint) in [
        ("by-ip", "replicated", format!("node.ip == {vm2}")),
        ("by-net", "replicated", format!("node.ip != {vm2}/32")),
        (
            "no-engine-label",
            "global",
            "engine.labels.x != y".to_string(),
        ),
        (
            "engine-label",
            "replicated",
            "engine.labels.x == y".to_string(),
        ),
        ("no-such-key", "replicated", "node.foo == x".to_string()),
    ] {
        s.ok(
            "vm1",
            &[
                "service",
                "create",
                "-d",
                "--name",
                name,
                "--mode",
                mode,
                "--constraint",
                &constraint,
                "busybox",
                "sleep",
                "600",
            ],
        );
    }
    wait_running_on(&s, "by-ip", &["vm2"]);
    wait_running_on(&s, "by-net", &["vm1"]);
    wait_running_on(&s, "no-engine-label", &["vm1", "vm2"]);
    for name in ["engine-label", "no-such-key"] {
        pending_explained(name);
    }
    // A bad expression: swarmkit's parser's error, which gRPC reports as `Unknown`.
    let err = s.fails(
        "vm1",
        &[
            "service",
            "update",
            "-d",
            "--constraint-add",
            "node.hostname = vm1",
            "picky",
        ],
    );
    assert_eq!(
        err.trim_end(),
        "Error response from daemon: rpc error: code = Unknown desc = constraint expected one operator from ==, !="
    );
}

/// Global mode follows nodes joining, draining and leaving.
#[test]
fn global_mode_follows_nodes() {
    let s = Swarm::lab("glob", 3);
    s.form(&[("vm2", "worker")]);
    s.ok(
        "vm1",
        &[
            "service", "create", "-d", "--name", "agent", "--mode", "global", "busybox", "sleep",
            "600",
        ],
    );
    wait_running_on(&s, "agent", &["vm1", "vm2"]);
    s.join("vm3", "vm1", "worker");
    wait_running_on(&s, "agent", &["vm1", "vm2", "vm3"]);
    s.ok("vm1", &["node", "update", "--availability", "drain", "vm2"]);
    wait_running_on(&s, "agent", &["vm1", "vm3"]);
    // The drained node's task counts as running until it has stopped (swarmkit's count).
    let ls = || {
        s.ok(
            "vm1",
            &["service", "ls", "--format", "{{.Mode}} {{.Replicas}}"],
        )
    };
    wait_until("global 2/2 in service ls", T, || {
        (ls().trim() == "global 2/2").then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", ls()));
}

/// Bad compose files are rejected with nothing deployed; the seed file loads with the warning.
#[test]
fn compose_files_checked_whole() {
    let s = Swarm::lab("comp", 1);
    // Outside a swarm, docker's client-side check, after loading the file; a missing
    // file says what Go says.
    let example = format!("{}/examples/docker-compose.yml", env!("CARGO_MANIFEST_DIR"));
    let err = s.fails("vm1", &["stack", "deploy", "-c", &example, "webapp"]);
    assert!(
        err.ends_with(
            "\nthis node is not a swarm manager. Use \"shoal swarm init\" or \"shoal swarm join\" to connect this node to swarm and try again\n"
        ),
        "{err}"
    );
    assert_eq!(
        s.fails("vm1", &["stack", "deploy", "-c", "nosuch.yml", "webapp"]),
        "open nosuch.yml: no such file or directory\n"
    );
    s.init("vm1");
    let dir = s.lab.data_root("vm1").parent().unwrap().join("compose");
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.yml");
    std::fs::write(&bad, "version: '3.8'\nservices:\n  a:\n    image: x\n    command: sleep 60\n  b:\n    image: y\n    ports: ['80:x']\n").unwrap();
    let err = s.fails(
        "vm1",
        &["stack", "deploy", "-c", bad.to_str().unwrap(), "bad"],
    );
    assert!(err.contains("services.b.ports"), "{err}");
    let unknown = dir.join("unknown.yml");
    std::fs::write(&unknown, "services:\n  a:\n    image: x\n    foo: 1\n").unwrap();
    let err = s.fails(
        "vm1",
        &["stack", "deploy", "-c", unknown.to_str().unwrap(), "bad"],
    );
    assert!(
        err.contains("Additional property foo is not allowed"),
        "{err}"
    );
    assert_eq!(s.ok("vm1", &["service", "ls", "-q"]), "");
    // A network named as the stack's would be, that the stack did not create: docker
    // tries to create it, the name is refused, and nothing is deployed.
    s.ok("vm1", &["network", "create", "taken_default"]);
    let out = s.shoal("vm1", &["stack", "deploy", "-c", &example, "taken"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "Creating network taken_default\n"
    );
    assert!(
        err.ends_with("\nfailed to create network taken_default: Error response from daemon: network with name taken_default already exists\n"),
        "{err}"
    );
    assert_eq!(s.ok("vm1", &["service", "ls", "-q"]), "");
    // A service named as the stack's would be, that the stack did not deploy: docker
    // updates only the stack's own services, so it tries to create this one and swarm
    // refuses the name; the service is left as it was, and nothing is deployed.
    s.ok(
        "vm1",
        &[
            "service",
            "create",
            "-d",
            "--name",
            "clash_web",
            "demo:1",
            "sleep",
            "600",
        ],
    );
    let clash = dir.join("clash.yml");
    std::fs::write(
        &clash,
        "services:\n  web:\n    image: demo:1\n    command: sleep 700\n",
    )
    .unwrap();
    let out = s.shoal(
        "vm1",
        &["stack", "deploy", "-c", clash.to_str().unwrap(), "clash"],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "Creating service clash_web\n"
    );
    assert_eq!(
        err.lines().last(),
        Some("failed to create service clash_web: Error response from daemon: rpc error: code = AlreadyExists desc = name conflicts with an existing object: service clash_web already exists"),
        "{err}"
    );
    // `service create` of a taken name, in any case (swarmkit's name index is lowercased):
    // swarmkit's words with the name, and nothing created.
    for name in ["clash_web", "CLASH_web"] {
        assert_eq!(
            s.fails(
                "vm1",
                &["service", "create", "-d", "--name", name, "demo:1", "sleep", "600"],
            ),
            format!("Error response from daemon: rpc error: code = AlreadyExists desc = name conflicts with an existing object: service {name} already exists\n")
        );
    }
    assert_eq!(s.ok("vm1", &["service", "ls", "-q"]).lines().count(), 1);
    assert_eq!(
        s.ok(
            "vm1",
            &[
                "service",
                "inspect",
                "--format",
                "{{json .Spec.TaskTemplate.ContainerSpec.Args}}",
                "clash_web"
            ]
        ),
        "[\"sleep\",\"600\"]\n"
    );
    let nets = s.ok("vm1", &["network", "ls"]);
    assert!(!nets.contains("clash_default"), "{nets}");
    s.ok("vm1", &["service", "rm", "clash_web"]);

    let seed = format!(
        "{}/../shared/seed/docker-compose.swarm.yml",
        env!("CARGO_MANIFEST_DIR")
    );
    let seed = if std::path::Path::new(&seed).exists() {
        seed
    } else {
        format!(
            "{}/control/compose/tests/fixtures/docker-compose.swarm.yml",
            env!("CARGO_MANIFEST_DIR")
        )
    };
    let out = s.shoal("vm1", &["stack", "deploy", "-c", &seed, "seed"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("Ignoring unsupported options: build"), "{err}");
    assert!(out.status.success(), "{err}");
    let ls = s.ok("vm1", &["stack", "ls"]);
    assert!(ls.contains("seed     2") || ls.contains("seed "), "{ls}");
}

/// `stack deploy -c base.yml -c prod.yml`: the later file overrides the earlier one as
/// docker merges them (replicas replaced, environment and labels merged key by key, ports by
/// published port); `-c -` reads stdin among the files, `-c a,b` is two files, and
/// `--resolve-image` is checked as docker checks it (after the files load) and changes nothing.
#[test]
fn stack_deploy_merges_compose_files() {
    let s = Swarm::lab("cmrg", 1);
    s.init("vm1");
    let dir = s.lab.data_root("vm1").parent().unwrap().join("compose");
    std::fs::create_dir_all(&dir).unwrap();
    let base = dir.join("base.yml");
    std::fs::write(
        &base,
        "services:\n  web:\n    image: demo:1\n    command: sleep 600\n    environment: [A=1, B=2]\n    ports: ['8080:80', '9090:90']\n    deploy:\n      replicas: 1\n      labels: [tier=front]\n",
    )
    .unwrap();
    let prod = dir.join("prod.yml");
    std::fs::write(
        &prod,
        "services:\n  web:\n    environment: {B: '3'}\n    ports: ['8080:8000']\n    deploy:\n      replicas: 2\n      labels: [env=prod]\n",
    )
    .unwrap();
    let (base, prod) = (base.to_str().unwrap(), prod.to_str().unwrap());

    // A missing later file, and a bad --resolve-image, stop the deploy before anything is made.
    assert_eq!(
        s.fails(
            "vm1",
            &["stack", "deploy", "-c", base, "-c", "nosuch.yml", "m"]
        ),
        "open nosuch.yml: no such file or directory\n"
    );
    let err = s.fails(
        "vm1",
        &[
            "stack",
            "deploy",
            "--resolve-image",
            "sometimes",
            "-c",
            base,
            "-c",
            prod,
            "m",
        ],
    );
    assert_eq!(err, "invalid option sometimes for flag --resolve-image\n");
    assert_eq!(s.ok("vm1", &["service", "ls", "-q"]), "");

    // The second file from stdin.
    let cmd = format!("{SHOAL} stack deploy --resolve-image never -c {base} -c - m < {prod}");
    let out = s.lab.exec("vm1", &["sh", "-c", &cmd]).unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "Creating network m_default\nCreating service m_web\n"
    );
    s.wait_running("m_web", 2);
    let inspect = |format: &str| s.ok("vm1", &["service", "inspect", "--format", format, "m_web"]);
    assert_eq!(inspect("{{.Spec.Mode.Replicated.Replicas}}"), "2\n");
    assert_eq!(
        inspect("{{json .Spec.TaskTemplate.ContainerSpec.Env}}"),
        "[\"A=1\",\"B=3\"]\n"
    );
    assert_eq!(
        inspect("{{range .Spec.EndpointSpec.Ports}}{{.PublishedPort}}:{{.TargetPort}} {{end}}"),
        "8080:8000 9090:90 \n"
    );
    assert_eq!(
        inspect("{{index .Spec.Labels \"tier\"}} {{index .Spec.Labels \"env\"}}"),
        "front prod\n"
    );

    // The same two files as one comma-separated -c: nothing to change.
    let version = inspect("{{.Version.Index}}");
    let both = format!("{base},{prod}");
    let out = s.ok("vm1", &["stack", "deploy", "-c", &both, "m"]);
    assert!(out.starts_with("Updating service m_web (id: "), "{out}");
    assert_eq!(inspect("{{.Version.Index}}"), version);
}

/// A stack's `user:`, `init:` and `stop_signal:` reach its tasks; a redeploy of the same file
/// restarts nothing, also after `service update --force`; `--prune` removes first.
#[test]
fn stack_deploy_applies_user_stop_signal_and_only_changes() {
    let s = Swarm::lab("stku", 1);
    s.init("vm1");
    let dir = s.lab.data_root("vm1").parent().unwrap().join("compose");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("stack.yml");
    let web = "  web:\n    image: demo:1\n    user: nobody\n    stop_signal: SIGINT\n    stop_grace_period: 5m\n    command: [\"sh\", \"-c\", \"trap 'echo got-int; exit 0' INT; echo ready; while true; do sleep 1; done\"]\n";
    let other = "  other:\n    image: demo:1\n    init: true\n    command: sleep 600\n";
    std::fs::write(&file, format!("services:\n{web}{other}")).unwrap();
    let file = file.to_str().unwrap();
    s.ok("vm1", &["stack", "deploy", "-c", file, "st"]);
    s.wait_running("st_web", 1);
    s.wait_running("st_other", 1);
    assert_eq!(s.ok("vm1", &["exec", "st_web.1", "id", "-u"]), "65534\n");
    // With init: true, pid 1 of the task is its init, not the command.
    let pid1 = s.ok("vm1", &["exec", "st_other.1", "cat", "/proc/1/cmdline"]);
    assert!(!pid1.starts_with("sleep"), "{pid1:?}");
    let pid2 = s.ok("vm1", &["exec", "st_other.1", "cat", "/proc/2/cmdline"]);
    assert!(pid2.ends_with("sleep\u{0}600\u{0}"), "{pid1:?} {pid2:?}");
    assert_eq!(
        s.ok(
            "vm1",
            &[
                "service",
                "inspect",
                "--format",
                "{{.Spec.TaskTemplate.ContainerSpec.Init}}",
                "st_other"
            ]
        ),
        "true\n"
    );

    // A forced update, then the same file again: nothing changes, nothing restarts.
    s.ok("vm1", &["service", "update", "-d", "--force", "st_other"]);
    let running_task = || {
        s.running_ps("st_other", "{{.ID}} {{.CurrentState}}")
            .lines()
            .find(|l| l.contains(" Running "))
            .map(|l| l.split(' ').next().unwrap().to_string())
    };
    let inspect = |svc: &str| {
        s.ok(
            "vm1",
            &[
                "service",
                "inspect",
                "--format",
                "{{.Version.Index}} {{.Spec.TaskTemplate.ForceUpdate}}",
                svc,
            ],
        )
    };
    wait_until("the forced task running", T, || {
        let rows = s.ok("vm1", &["service", "ps", "-q", "st_other"]);
        (rows.lines().count() == 2).then(running_task).flatten()
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", s.ok("vm1", &["service", "ps", "st_other"])));
    let (task, before) = (running_task(), inspect("st_other"));
    assert!(before.ends_with(" 1\n"), "{before}");
    let out = s.ok("vm1", &["stack", "deploy", "-c", file, "st"]);
    assert!(out.contains("Updating service st_other (id: "), "{out}");
    assert_eq!(inspect("st_other"), before);
    assert_eq!(running_task(), task);
    assert_eq!(
        s.ok("vm1", &["service", "ps", "-q", "st_other"])
            .lines()
            .count(),
        2
    );

    // The stop signal: an update stops the old task with SIGINT, well within its grace.
    s.ok(
        "vm1",
        &["service", "update", "-d", "--image", "demo:2", "st_web"],
    );
    wait_until("the old task's got-int", T, || {
        s.ok("vm1", &["service", "logs", "st_web"])
            .contains("got-int")
            .then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", s.ok("vm1", &["service", "ps", "st_web"])));

    // --prune removes the service the file no longer declares, first.
    std::fs::write(file, format!("services:\n{web}")).unwrap();
    let out = s.ok("vm1", &["stack", "deploy", "--prune", "-c", file, "st"]);
    assert!(
        out.starts_with("Removing service st_other\nUpdating service st_web (id: "),
        "{out}"
    );

    // stack rm keeps a network a service outside the stack still uses, and says so.
    s.ok(
        "vm1",
        &[
            "service",
            "create",
            "-d",
            "--name",
            "outsider",
            "--network",
            "st_default",
            "busybox",
            "sleep",
            "600",
        ],
    );
    let out = s.shoal("vm1", &["stack", "rm", "st"]);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert_eq!(
        stdout,
        "Removing service st_web\nRemoving network st_default\n"
    );
    assert!(
        stderr.contains("is in use by service ")
            && stderr.ends_with("\nfailed to remove some resources from stack: st\n"),
        "{stderr}"
    );
    assert_eq!(
        s.ok("vm1", &["service", "ls", "--format", "{{.Name}}"]),
        "outsider\n"
    );
    s.ok("vm1", &["network", "inspect", "st_default"]);
}

/// Restarting shoald (kill -9 of the daemon alone) keeps tasks running and reports them.
#[test]
fn daemon_restart_keeps_tasks() {
    let s = Swarm::lab("dres", 1);
    s.init("vm1");
    s.ok(
        "vm1",
        &[
            "service", "create", "-d", "--name", "keep", "busybox", "sleep", "600",
        ],
    );
    wait_running_on(&s, "keep", &["vm1"]);
    let id = s.ok("vm1", &["service", "ps", "-q", "keep"]);
    let pid = s.ok(
        "vm1",
        &[
            "inspect",
            "--format",
            "{{.Status.ContainerStatus.PID}}",
            id.trim(),
        ],
    );
    let pid: i32 = pid.trim().parse().unwrap();
    // Kill only the daemon.
    s.kill_daemon("vm1");
    assert!(
        std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "task died with the daemon"
    );
    s.lab.start("vm1").unwrap();
    wait_running_on(&s, "keep", &["vm1"]);
    assert_eq!(
        s.ok("vm1", &["service", "ps", "-q", "keep"]),
        id,
        "task was replaced"
    );
}

/// `exec` runs inside a running task on whichever node runs it: its hostname, its PID
/// namespace, its exit code, and stdin with -i.
#[test]
fn exec_runs_inside_the_task() {
    let s = Swarm::lab("exec", 2);
    s.form(&[("vm2", "worker")]);
    s.ok(
        "vm1",
        &[
            "service",
            "create",
            "-d",
            "--name",
            "box",
            "--hostname",
            "boxhost",
            "--constraint",
            "node.hostname == vm2",
            "busybox",
            "sleep",
            "600",
        ],
    );
    wait_running_on(&s, "box", &["vm2"]);
    let out = s.shoal(
        "vm1",
        &["exec", "box.1", "sh", "-c", "hostname; echo pid=$$; exit 7"],
    );
    assert_eq!(out.status.code(), Some(7));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "boxhost\npid=2\n");
    let out = s
        .lab
        .exec(
            "vm1",
            &[
                "sh",
                "-c",
                &format!("echo through-stdin | {SHOAL} exec -i box.1 cat"),
            ],
        )
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "through-stdin\n");
    // -t: the command's stdio is a terminal.
    let out = s.shoal(
        "vm1",
        &[
            "exec",
            "-t",
            "box.1",
            "sh",
            "-c",
            "test -t 0 && test -t 1 && echo tty-yes",
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "tty-yes\r\n");
    let err = s.fails("vm1", &["exec", "nope.1", "true"]);
    assert!(err.contains("No such container: nope.1"), "{err}");
    // A worker can't reach into tasks.
    let err = s.fails("vm2", &["exec", "box.1", "true"]);
    assert!(err.contains("This node is not a swarm manager"), "{err}");
}

/// A healthcheck gates running: as in docker, a started task is `Starting` until its
/// first healthy probe, and only then `Running` and counted in REPLICAS. Failures in
/// the start period do not count until a probe first passes; after that, a task whose
/// healthcheck fails (`--health-retries` times) is stopped and fails with docker's error,
/// and the restart policy replaces it.
#[test]
fn healthcheck_gates_running() {
    let s = Swarm::lab("hlth", 1);
    s.init("vm1");
    let flag = format!("/tmp/shoal-health-{}", s.lab.name());
    let _ = std::fs::remove_file(&flag);
    let cmd = format!("test -f {flag}");
    s.ok(
        "vm1",
        &[
            "service",
            "create",
            "-d",
            "--name",
            "hc",
            "--health-cmd",
            &cmd,
            "--health-interval",
            "200ms",
            "--health-retries",
            "1",
            "--health-start-period",
            "10m",
            "--stop-grace-period",
            "1s",
            "--restart-delay",
            "1s",
            "busybox",
            "sleep",
            "600",
        ],
    );
    let replicas = || s.ok("vm1", &["service", "ls", "--format", "{{.Replicas}}"]);
    let current = || {
        s.ok(
            "vm1",
            &["service", "ps", "--format", "{{.CurrentState}}", "hc"],
        )
    };
    wait_until("task started, not yet healthy", T, || {
        (current().starts_with("Starting") && replicas().trim() == "0/1").then_some(())
    })
    .unwrap_or_else(|e| panic!("{e:#}\n{}", current()));
    std::fs::write(&flag, "ok").unwrap();
    let healthy = wait_until("healthy", T, || {
        (replicas().trim() == "1/1" && current().starts_with("Running")).then_some(())
    });
    if healthy.is_err() {
        let _ = std::fs::remove_file(&flag);
    }
    healthy.unwrap();
    // Healthy once: the start period no longer covers a failing probe.
    std::fs::remove_file(&flag).unwrap();
    let rows = || {
        s.ok(
            "vm1",
            &[
                "service",
                "ps",
                "--no-trunc",
                "--format",
                "{{.DesiredState}}|{{.CurrentState}}|{{.Error}}",
                "hc",
            ],
        )
    };
    // The replacement starts, and is `Starting` until its healthcheck passes.
    let replaced = wait_until("the unhealthy task failed and replaced", T, || {
        let ps = rows();
        let lines: Vec<&str> = ps.lines().collect();
        (lines.len() == 2
            && lines[0].starts_with("Running|Starting")
            && lines[1].starts_with("Shutdown|Failed")
            && lines[1].contains("|task: non-zero exit (")
            && lines[1].ends_with("): dockerexec: unhealthy container"))
        .then_some(())
    });
    replaced.unwrap_or_else(|e| panic!("{e:#}\n{}\n{}", rows(), s.log_tail("vm1")));
    std::fs::write(&flag, "ok").unwrap();
    let healthy = wait_until("the new task healthy", T, || {
        (replicas().trim() == "1/1").then_some(())
    });
    let _ = std::fs::remove_file(&flag);
    healthy.unwrap();
}

/// `--health-start-interval`: in the start period, until the task is first healthy,
/// probes run that often instead of every `--health-interval` (here 10 minutes, so only
/// the start interval can make the task healthy in time); inspect shows StartInterval.
#[test]
fn health_start_interval_probes_the_start_period() {
    let s = Swarm::lab("hsti", 1);
    s.init("vm1");
    let flag = format!("/tmp/shoal-health-{}", s.lab.name());
    let _ = std::fs::remove_file(&flag);
    let cmd = format!("test -f {flag}");
    s.ok(
        "vm1",
        &[
            "service",
            "create",
            "-d",
            "--name",
            "hs",
            "--health-cmd",
            &cmd,
            "--health-interval",
            "10m",
            "--health-start-period",
            "10m",
            "--health-start-interval",
            "200ms",
            "busybox",
            "sleep",
            "600",
        ],
    );
    assert_eq!(
        s.ok(
            "vm1",
            &[
                "service",
                "inspect",
                "--format",
                "{{json .Spec.TaskTemplate.ContainerSpec.Healthcheck}}",
                "hs"
            ]
        ),
        format!(
            "{{\"Test\":[\"CMD-SHELL\",\"{cmd}\"],\"Interval\":600000000000,\"StartPeriod\":600000000000,\"StartInterval\":200000000}}\n"
        )
    );
    let replicas = || s.ok("vm1", &["service", "ls", "--format", "{{.Replicas}}"]);
    let state = || {
        s.ok(
            "vm1",
            &["service", "ps", "--format", "{{.CurrentState}}", "hs"],
        )
    };
    wait_until("task started, not yet healthy", T, || {
        (state().starts_with("Starting") && replicas().trim() == "0/1").then_some(())
    })
    .unwrap();
    std::fs::write(&flag, "ok").unwrap();
    let healthy = wait_until("healthy", T, || {
        (replicas().trim() == "1/1" && state().starts_with("Running")).then_some(())
    });
    let _ = std::fs::remove_file(&flag);
    healthy.unwrap_or_else(|e| panic!("{e:#}\n{}", s.log_tail("vm1")));
}

/// `swarm init --task-history-limit` bounds the finished tasks kept per slot.
#[test]
fn task_history_is_bounded() {
    let s = Swarm::lab("hist", 1);
    s.ok(
        "vm1",
        &[
            "swarm",
            "init",
            "--advertise-addr",
            &s.addr("vm1"),
            "--task-history-limit",
            "2",
        ],
    );
    s.ok(
        "vm1",
        &[
            "service",
            "create",
            "-d",
            "--name",
            "flaky",
            "--restart-delay",
            "50ms",
            "busybox",
            "sh",
            "-c",
            "exit 1",
        ],
    );
    // Watch the slot through many restarts: tasks come and go, and at most two are ever
    // listed, the live one included (swarmkit's reaper counts it in the limit).
    let mut seen = std::collections::BTreeSet::new();
    wait_until(
        "six tasks created in the slot",
        Duration::from_secs(60),
        || {
            let out = s.ok(
                "vm1",
                &[
                    "service",
                    "ps",
                    "--no-trunc",
                    "--format",
                    "{{.ID}}",
                    "flaky",
                ],
            );
            let ids: Vec<String> = out.lines().map(str::to_string).collect();
            assert!(ids.len() <= 2, "history not bounded: {ids:?}");
            seen.extend(ids);
            (seen.len() >= 6).then_some(())
        },
    )
    .unwrap();
}

/// `service scale web=1` from 3, as docker shows it: the tasks of the slots that go are
/// listed with DESIRED STATE `Remove` while they stop, then not at all, nor their slots'
/// history (swarmkit removes those slots' tasks rather than shutting them down); the slot
/// that stays keeps its history.
#[test]
fn scale_down_removes_the_slots_tasks() {
    let s = Swarm::lab("scaledn", 1);
    s.init("vm1");
    // The shell and its sleep ignore SIGTERM, so a task takes its whole stop grace to stop.
    let argv = [
        "service",
        "create",
        "-d",
        "--name",
        "web",
        "--replicas",
        "3",
        "--stop-grace-period",
        "1s",
        "busybox",
        "sh",
        "-c",
        "trap '' TERM; sleep 600",
    ];
    s.ok("vm1", &argv);
    s.wait_running("web", 3);
    // A history row in every slot: all tasks replaced at once by ones that take 10 s to stop.
    s.ok(
        "vm1",
        &[
            "service",
            "update",
            "-d",
            "--stop-grace-period",
            "10s",
            "--update-parallelism",
            "0",
            "web",
        ],
    );
    wait_until("the update to complete", T, || {
        (update_state(&s, "web").trim() == "completed").then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", s.ok("vm1", &["service", "ps", "web"])));
    let row = |name: &str, desired: &str, current: &str| {
        (
            name.to_string(),
            "vm1".to_string(),
            desired.to_string(),
            current.to_string(),
        )
    };
    let ps = || tasks(&s, "vm1", &["service", "ps", "web"]);
    let mut want = Vec::new();
    for slot in ["web.1", "web.2", "web.3"] {
        want.push(row(slot, "Running", "Running"));
        want.push(row(slot, "Shutdown", "Shutdown"));
    }
    assert_eq!(ps(), want);

    s.ok("vm1", &["service", "scale", "-d", "web=1"]);
    // While they stop (the grace is 10 s): desired state Remove, still running.
    let mut stopping = want.clone();
    for i in [2, 4] {
        stopping[i].2 = "Remove".into();
    }
    wait_until("the removed slots' tasks listed as Remove", T, || {
        (ps() == stopping).then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", s.ok("vm1", &["service", "ps", "web"])));
    let table = s.ok("vm1", &["service", "ps", "web"]);
    assert!(
        table
            .lines()
            .any(|l| l.contains(" web.3 ") && l.contains(" Remove ")),
        "{table}"
    );
    // REPLICAS counts them while they run, as docker does: 3/1.
    assert_eq!(
        s.ok("vm1", &["service", "ls", "--format", "{{.Replicas}}"]),
        "3/1\n"
    );
    // `-f` as docker's: values of one key are alternatives, different keys all apply,
    // and what the daemon does not know is refused.
    let names = |filters: &[&str]| -> Vec<String> {
        let mut argv = vec!["service", "ps"];
        for f in filters {
            argv.extend_from_slice(&["-f", f]);
        }
        argv.push("web");
        tasks(&s, "vm1", &argv).into_iter().map(|t| t.0).collect()
    };
    assert_eq!(names(&["desired-state=remove"]), ["web.2", "web.3"]);
    assert_eq!(
        names(&["desired-state=running", "desired-state=Remove"]),
        ["web.1", "web.2", "web.3"]
    );
    assert_eq!(names(&["desired-state=remove", "name=web.3"]), ["web.3"]);
    assert_eq!(names(&["node=vm1", "desired-state=running"]), ["web.1"]);
    let err = s.fails("vm1", &["service", "ps", "-f", "desired-state=x", "web"]);
    assert_eq!(
        err.trim_end(),
        "Error response from daemon: Invalid desired-state filter: 'x'"
    );
    let err = s.fails("vm1", &["service", "ps", "-f", "x=1", "web"]);
    assert_eq!(
        err.trim_end(),
        "Error response from daemon: invalid filter 'x'"
    );
    // Once stopped they are gone, with their slots' history; slot 1 keeps its own.
    wait_until("the removed slots gone", T, || {
        (ps() == want[..2]).then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", s.ok("vm1", &["service", "ps", "web"])));
    assert_eq!(
        s.ok("vm1", &["service", "ls", "--format", "{{.Replicas}}"]),
        "1/1\n"
    );
}

/// `service logs` as docker shows a crash loop: the lines of every task the service still
/// lists, the failed ones too, oldest first, each with its own task prefix
/// (`crash.1.<id>@vm2    | `), from `service logs <task>` of a failed task too, with
/// `--tail` per task and with `-f`. A finished task's log stays on its node while the
/// task is listed (also over a power loss of the node), and goes with it: once the history
/// limit reaps a task, its directory is gone from the node's data root and its lines from
/// `service logs`; tasks reaped while their node is down go when it is back.
#[test]
fn service_logs_show_finished_tasks_until_reaped() {
    let s = Swarm::lab("oldlogs", 2);
    s.ok(
        "vm1",
        &[
            "swarm",
            "init",
            "--advertise-addr",
            &s.addr("vm1"),
            "--dispatcher-heartbeat",
            "1s",
            "--task-history-limit",
            "3",
        ],
    );
    s.join("vm2", "vm1", "worker");
    s.wait_node("vm1", "vm2", "Ready", "", T);
    // Attempts 1 and 2 fail at once, 3 fails once the gate file exists, 4 completes (and,
    // restart condition on-failure, is not restarted): the slot ends with three finished
    // tasks, the first one reaped.
    let dir = std::env::temp_dir().join(format!("shoal-oldlogs-{}", s.lab.name()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (count, gate) = (dir.join("count"), dir.join("gate"));
    let script = format!(
        "n=$(( $(cat {c} 2>/dev/null || echo 0) + 1 )); echo $n > {c}; \
         echo \"attempt $n of $SHOAL_TASK_ID\"; \
         if [ $n = 3 ]; then while [ ! -e {g} ]; do sleep 0.1; done; fi; \
         echo \"bye $n\"; [ $n -ge 4 ] || exit 3",
        c = count.display(),
        g = gate.display()
    );
    s.ok(
        "vm1",
        &[
            "service",
            "create",
            "-d",
            "--name",
            "crash",
            "--constraint",
            "node.hostname == vm2",
            "--restart-condition",
            "on-failure",
            "--restart-delay",
            "100ms",
            "busybox",
            "sh",
            "-c",
            &script,
        ],
    );
    // (prefix, text) of each line `service logs` prints.
    let logs = |args: &[&str]| -> Vec<(String, String)> {
        let mut argv = vec!["service", "logs"];
        argv.extend_from_slice(args);
        s.ok("vm1", &argv)
            .lines()
            .map(|l| {
                let (prefix, text) = l.split_once("    | ").unwrap_or_else(|| panic!("{l}"));
                (prefix.to_string(), text.to_string())
            })
            .collect()
    };
    // The task IDs of the attempts, from what they print.
    let attempts = |lines: &[(String, String)]| -> Vec<(u32, String)> {
        lines
            .iter()
            .filter_map(|(_, text)| {
                let (n, id) = text.strip_prefix("attempt ")?.split_once(" of ")?;
                Some((n.parse().ok()?, id.to_string()))
            })
            .collect()
    };
    let expect = |ids: &[(u32, String)]| -> Vec<(String, String)> {
        ids.iter()
            .flat_map(|(n, id)| {
                let prefix = format!("crash.1.{}@vm2", &id[..12]);
                [
                    (prefix.clone(), format!("attempt {n} of {id}")),
                    (prefix, format!("bye {n}")),
                ]
            })
            .collect()
    };
    let ps = || s.ok("vm1", &["service", "ps", "--no-trunc", "crash"]);
    // Which of these tasks have a directory in vm2's data root.
    let on_vm2 = |ids: &[String]| -> Vec<String> {
        let tasks = s.lab.data_root("vm2").join("tasks");
        ids.iter()
            .filter(|id| tasks.join(id).exists())
            .cloned()
            .collect()
    };

    // Two failed tasks and the third waiting at the gate: all three tasks' lines.
    let lines = wait_until("the third attempt's line", T, || {
        let lines = logs(&["crash"]);
        lines
            .iter()
            .any(|(_, t)| t.starts_with("attempt 3 "))
            .then_some(lines)
    })
    .unwrap_or_else(|e| panic!("{e}\n{}\n{}", ps(), s.log_tails()));
    let first = attempts(&lines);
    assert_eq!(
        first.iter().map(|a| a.0).collect::<Vec<_>>(),
        [1, 2, 3],
        "{lines:?}"
    );
    let mut want = expect(&first);
    want.pop(); // attempt 3 has not said bye yet
    assert_eq!(lines, want);
    let table = s.ok("vm1", &["service", "ps", "crash"]);
    let failed = table
        .lines()
        .filter(|l| l.contains(" Failed ") && l.contains("\"task: non-zero exit (3)\""))
        .count();
    assert_eq!(failed, 2, "{table}");
    // A failed task's own log.
    assert_eq!(logs(&[&first[0].1]), want[..2]);

    std::fs::write(&gate, "open").unwrap();
    // The fourth attempt completes; the first task is reaped (three per slot), with its log.
    let lines = wait_until("the first task reaped, its directory gone", T, || {
        let lines = logs(&["crash"]);
        let ids = attempts(&lines);
        let done = ids.iter().map(|a| a.0).collect::<Vec<_>>() == [2, 3, 4]
            && lines.last().is_some_and(|l| l.1 == "bye 4")
            && on_vm2(&[first[0].1.clone()]).is_empty();
        done.then_some(lines)
    })
    .unwrap_or_else(|e| panic!("{e}\n{}\n{}", ps(), s.log_tails()));
    let kept = attempts(&lines);
    assert_eq!(kept[..2], first[1..]);
    assert_eq!(lines, expect(&kept));
    let kept_ids: Vec<String> = kept.iter().map(|a| a.1.clone()).collect();
    assert_eq!(on_vm2(&kept_ids), kept_ids);
    let err = s.fails("vm1", &["service", "logs", &first[0].1]);
    assert!(
        err.contains(&format!("no such task or service: {}", first[0].1)),
        "{err}"
    );
    // --tail counts per task.
    let tails: Vec<String> = logs(&["--tail", "1", "crash"])
        .into_iter()
        .map(|l| l.1)
        .collect();
    assert_eq!(tails, ["bye 2", "bye 3", "bye 4"]);
    // -f prints the finished tasks' lines, then waits for more.
    let mut follow = s
        .lab
        .command(
            "vm1",
            &[SHOAL, "service", "logs", "-f", "--tail", "1", "crash"],
        )
        .unwrap()
        .stdout(std::process::Stdio::piped())
        .stdin(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = follow.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout).lines() {
            if tx.send(line.unwrap_or_default()).is_err() {
                break;
            }
        }
    });
    let followed: Vec<String> = (0..3)
        .map_while(|_| rx.recv_timeout(T).ok())
        .map(|l| l.split_once("    | ").map(|p| p.1.to_string()).unwrap_or(l))
        .collect();
    let still_following = follow.try_wait().unwrap().is_none();
    let _ = follow.kill();
    let _ = follow.wait();
    assert_eq!(followed, ["bye 2", "bye 3", "bye 4"]);
    assert!(still_following, "service logs -f ended");

    // Power loss of vm2: once it is back (and has replaced the task the power loss
    // killed, whose log shows too), the finished tasks' logs are still there.
    s.ok(
        "vm1",
        &[
            "service",
            "create",
            "-d",
            "--name",
            "later",
            "--constraint",
            "node.hostname == vm2",
            "busybox",
            "sh",
            "-c",
            "echo up; exec sleep 600",
        ],
    );
    s.wait_running("later", 1);
    s.lab.stop("vm2").unwrap();
    s.lab.start("vm2").unwrap();
    s.wait_node("vm1", "vm2", "Ready", "", T);
    wait_until("later's task replaced after the power loss", T, || {
        let lines = logs(&["later"]);
        let prefixes: std::collections::BTreeSet<&String> = lines.iter().map(|l| &l.0).collect();
        (lines.len() == 2 && prefixes.len() == 2 && lines.iter().all(|l| l.1 == "up")).then_some(())
    })
    .unwrap_or_else(|e| {
        panic!(
            "{e}\n{}\n{}",
            s.ok("vm1", &["service", "ps", "later"]),
            s.log_tail("vm2")
        )
    });
    assert_eq!(logs(&["crash"]), expect(&kept));
    assert_eq!(on_vm2(&kept_ids), kept_ids);

    // Reaped while vm2 is down (`service rm`): the directories go when it is back.
    s.lab.stop("vm2").unwrap();
    s.wait_node("vm1", "vm2", "Down", "", T);
    s.ok("vm1", &["service", "rm", "crash"]);
    wait_until("crash's tasks forgotten", T, || {
        s.ok("vm1", &["node", "ps", "--format", "{{.Name}}", "vm2"])
            .lines()
            .all(|name| !name.contains("crash."))
            .then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", s.ok("vm1", &["node", "ps", "vm2"])));
    assert_eq!(on_vm2(&kept_ids), kept_ids);
    s.lab.start("vm2").unwrap();
    wait_until("vm2's task directories removed", T, || {
        on_vm2(&kept_ids).is_empty().then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}\n{:?}\n{}", on_vm2(&kept_ids), s.log_tail("vm2")));
    let _ = std::fs::remove_dir_all(&dir);
}

/// `node ps NODE -f node=X` and `service ps SVC -f service=Y` list the tasks of either, as
/// docker's CLI adds the positional arguments to the filter's `node` and `service` values;
/// other keys still apply, and without such a filter the arguments alone count.
#[test]
fn task_lists_take_the_arguments_or_the_filter_values() {
    let s = Swarm::lab("psor", 2);
    s.form(&[("vm2", "worker")]);
    // `-d=true` and `--detach=1`: pflag's forms of a boolean flag.
    for (name, node, detach) in [("a", "vm1", "-d=true"), ("b", "vm2", "--detach=1")] {
        s.ok(
            "vm1",
            &[
                "service",
                "create",
                detach,
                "--name",
                name,
                "--label",
                &format!("letter={name}"),
                "--constraint",
                &format!("node.hostname=={node}"),
                "demo",
                "sleep",
                "600",
            ],
        );
        s.wait_running_on(name, &[node]);
    }
    // `service ls -f`: docker's keys, values of a key alternatives, keys all matching.
    let ls = |filters: &[&str]| -> Vec<String> {
        let mut args = vec!["service", "ls", "--format", "{{.Name}}"];
        for f in filters {
            args.extend(["-f", f]);
        }
        let mut names: Vec<String> = s.ok("vm1", &args).lines().map(String::from).collect();
        names.sort();
        names
    };
    let b_id = s.ok("vm1", &["service", "inspect", "-f", "{{.ID}}", "b"]);
    assert_eq!(ls(&[]), ["a", "b"]);
    assert_eq!(ls(&["name=a"]), ["a"]);
    assert_eq!(ls(&["name=a", "name=b"]), ["a", "b"]);
    assert_eq!(ls(&[&format!("id={}", &b_id[..6])]), ["b"]);
    assert_eq!(ls(&["label=letter"]), ["a", "b"]);
    assert_eq!(ls(&["label=letter=b"]), ["b"]);
    assert_eq!(ls(&["mode=replicated"]), ["a", "b"]);
    assert_eq!(ls(&["mode=global"]), Vec::<String>::new());
    assert_eq!(ls(&["mode=replicated", "name=b"]), ["b"]);
    assert_eq!(
        s.fails("vm1", &["service", "ls", "-f", "foo=1"]).trim_end(),
        "Error response from daemon: invalid filter 'foo'"
    );
    let names = |args: &[&str]| -> Vec<String> {
        let mut names: Vec<String> = tasks(&s, "vm1", args).into_iter().map(|t| t.0).collect();
        names.sort();
        names
    };
    assert_eq!(names(&["service", "ps", "a"]), ["a.1"]);
    assert_eq!(
        names(&["service", "ps", "a", "-f", "service=b"]),
        ["a.1", "b.1"]
    );
    assert_eq!(
        names(&["service", "ps", "a", "-f", "service=b", "-f", "node=vm2"]),
        ["b.1"]
    );
    assert_eq!(names(&["node", "ps", "vm1"]), ["a.1"]);
    assert_eq!(names(&["node", "ps", "-f", "node=vm2"]), ["a.1", "b.1"]);
    assert_eq!(
        names(&["node", "ps", "vm1", "-f", "node=vm2", "-f", "name=b"]),
        ["b.1"]
    );
    let err = s.fails("vm1", &["service", "ps", "nope", "-f", "service=a"]);
    assert_eq!(err.trim_end(), "no such service: nope");

    // docker's words for values its CLI or its daemon refuses, and their exit status.
    for (args, code, want) in [
        (
            &["service", "create", "--mode", "bogus", "demo"][..],
            1,
            "Unknown mode: bogus, only replicated and global supported",
        ),
        (
            &["service", "create", "--replicas", "2", "--mode", "global", "demo"],
            1,
            "replicas can only be used with replicated or replicated-job mode",
        ),
        (
            &["service", "create", "--limit-cpu", "abc", "demo"],
            125,
            "invalid argument \"abc\" for \"--limit-cpu\" flag: failed to parse abc as a rational number",
        ),
        (
            &["service", "create", "-d", "--restart-condition", "bogus", "demo"],
            1,
            "Error response from daemon: invalid RestartCondition: \"bogus\"",
        ),
        (
            &["service", "update", "-d", "--update-order", "bogus", "a"],
            1,
            "Error response from daemon: unrecognized update order bogus",
        ),
        (
            &["service", "create", "-d", "--mount", "type=foo,target=/x", "demo"],
            1,
            "Error response from daemon: invalid MountType: \"foo\"",
        ),
    ] {
        let out = s.shoal("vm1", args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{args:?}: {err}");
        assert_eq!(err.lines().next(), Some(want), "{args:?}");
    }

    // docker-cli's `service ps`: the tasks of the services found, then one line for each
    // reference that names none, exit 1; none found: only those lines.
    let ps = |refs: &[&str]| {
        let mut args = vec!["service", "ps", "--format", "{{.Name}}"];
        args.extend_from_slice(refs);
        let out = s.shoal("vm1", &args);
        (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
            out.status.code(),
        )
    };
    assert_eq!(
        ps(&["a", "nope", "b", "gone"]),
        (
            "a.1\nb.1\n".to_string(),
            "no such service: nope\nno such service: gone\n".to_string(),
            Some(1)
        )
    );
    assert_eq!(
        ps(&["nope", "gone"]),
        (
            String::new(),
            "no such service: nope\nno such service: gone\n".to_string(),
            Some(1)
        )
    );

    // Services without tasks until two IDs begin alike (in a letter or digit that is not
    // a service's whole name, `a` or `b`; 40 are all but sure to): that one character is
    // an ambiguous prefix, which `service ps` and `service inspect` report in docker's
    // words.
    let mut ids: Vec<String> = Vec::new();
    let shared = (0..40)
        .find_map(|i| {
            let name = format!("p{i}");
            s.ok(
                "vm1",
                &[
                    "service",
                    "create",
                    "-d",
                    "--replicas",
                    "0",
                    "--name",
                    &name,
                    "demo",
                ],
            );
            ids = s
                .ok("vm1", &["service", "ls", "-q"])
                .lines()
                .map(String::from)
                .collect();
            ids.iter()
                .map(|id| id[..1].to_string())
                .filter(|c| c != "a" && c != "b")
                .find(|c| ids.iter().filter(|id| id.starts_with(c.as_str())).count() > 1)
        })
        .expect("two of 40 service IDs begin alike");
    let many = ids.iter().filter(|id| id.starts_with(&shared)).count();
    assert_eq!(
        ps(&[&shared]),
        (
            String::new(),
            format!("multiple services found with provided prefix: {shared}\n"),
            Some(1)
        )
    );
    let out = s.shoal("vm1", &["service", "inspect", &shared]);
    assert_eq!(
        (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
            out.status.code()
        ),
        (
            "[]\n".to_string(),
            format!(
                "Error response from daemon: service {shared} is ambiguous ({many} matches found)\n"
            ),
            Some(1)
        )
    );
    // swarmkit's InterpolateService: a service without constraints has `"Placement": {}`.
    let placement = s.ok(
        "vm1",
        &[
            "service",
            "inspect",
            "--format",
            "{{json .Spec.TaskTemplate.Placement}}",
            "p0",
        ],
    );
    assert_eq!(placement.trim(), "{}");
}

/// A stand-in upstream DNS server on the lab's client host: answers every A query with
/// `addr` until `stop` is set (checked every 100 ms).
fn fake_upstream_dns(
    s: &Swarm,
    addr: std::net::Ipv4Addr,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<()> {
    let path = format!(
        "/run/netns/{}",
        s.lab.netns_name(shoal_dataplane::lab::CLIENT)
    );
    let bind = std::net::SocketAddr::from((s.lab.node_addr(shoal_dataplane::lab::CLIENT), 53));
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let handle = std::thread::spawn(move || {
        let ns = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        nix::sched::setns(ns, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
        let socket = std::net::UdpSocket::bind(bind).expect("bind the fake upstream");
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        ready_tx.send(()).unwrap();
        let mut buf = [0u8; 512];
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            let Ok((len, from)) = socket.recv_from(&mut buf) else {
                continue;
            };
            if len < 12 {
                continue;
            }
            // The query's header and question, flags QR|RD|RA, one answer: a pointer to
            // the question's name, A, IN, TTL 60, the address.
            // The question ends after its name's labels and its type and class; what
            // follows (an EDNS record) is left out.
            let mut end = 12;
            while end < len && buf[end] != 0 {
                end += 1 + usize::from(buf[end]);
            }
            end += 5;
            if end > len {
                continue;
            }
            let mut reply = buf[..end].to_vec();
            reply[2] = 0x81;
            reply[3] = 0x80;
            reply[6..8].copy_from_slice(&1u16.to_be_bytes());
            reply[8..12].fill(0);
            reply.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4]);
            reply.extend_from_slice(&addr.octets());
            let _ = socket.send_to(&reply, from);
        }
    });
    ready_rx
        .recv_timeout(Duration::from_secs(5))
        .expect("the fake upstream DNS server started");
    handle
}

/// docker's container options on a service reach its task, checked from inside it with
/// `shoal exec`: `--host` is a line of its /etc/hosts; `--dns-search`/`--dns-option` are in
/// its resolv.conf, whose nameserver stays the embedded DNS, which still answers service
/// names and forwards other names to the `--dns` server (a stand-in on the client host
/// answering 192.0.2.77), not the node's; `--sysctl` is set in its network namespace;
/// `--ulimit` and `--cap-drop` limit it (docker's default set less NET_RAW); `--read-only`
/// makes its root refuse writes. `--pretty` shows them; `--host-rm` and `--read-only=false`
/// on update reach the new task.
#[test]
fn container_options_reach_the_task() {
    require_root();
    let s = Swarm::lab("ctro", 1);
    s.init("vm1");
    s.ok("vm1", &["network", "create", "-d", "overlay", "app"]);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let upstream = fake_upstream_dns(&s, "192.0.2.77".parse().unwrap(), stop.clone());
    // Stops the server also when an assertion fails.
    struct StopOnDrop(std::sync::Arc<std::sync::atomic::AtomicBool>);
    impl Drop for StopOnDrop {
        fn drop(&mut self) {
            self.0.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    }
    let stopper = StopOnDrop(stop);
    let client = s.addr(shoal_dataplane::lab::CLIENT);
    s.ok(
        "vm1",
        &[
            "service",
            "create",
            "-d",
            "--name",
            "opts",
            "--network",
            "app",
            "--host",
            "db.internal:10.9.8.7",
            "--dns",
            &client,
            "--dns-search",
            "corp.example",
            "--dns-option",
            "timeout:3",
            "--sysctl",
            "net.core.somaxconn=1234",
            "--ulimit",
            "nofile=1234:2345",
            "--cap-drop",
            "NET_RAW",
            "--read-only",
            "busybox",
            "sleep",
            "600",
        ],
    );
    s.wait_running("opts", 1);
    let exec = |argv: &[&str]| -> std::process::Output {
        s.shoal("vm1", &[&["exec", "opts.1"][..], argv].concat())
    };
    let stdout = |argv: &[&str]| String::from_utf8_lossy(&exec(argv).stdout).into_owned();
    let hosts = stdout(&["cat", "/etc/hosts"]);
    assert!(hosts.contains("\n10.9.8.7\tdb.internal\n"), "{hosts}");
    assert_eq!(
        stdout(&["cat", "/etc/resolv.conf"]),
        "nameserver 127.0.0.11\nsearch corp.example\noptions timeout:3 ndots:0\n"
    );
    assert_eq!(stdout(&["cat", "/proc/sys/net/core/somaxconn"]), "1234\n");
    assert_eq!(
        stdout(&["sh", "-c", "ulimit -n; ulimit -Hn"]),
        "1234\n2345\n"
    );
    let caps = stdout(&["grep", "^CapEff", "/proc/self/status"]);
    assert_eq!(
        caps, "CapEff:\t00000000a80405fb\n",
        "docker's set less NET_RAW"
    );
    let touch = exec(&["touch", "/shoal-read-only-probe"]);
    assert!(!touch.status.success(), "{touch:?}");
    assert!(
        String::from_utf8_lossy(&touch.stderr).contains("Read-only file system"),
        "{touch:?}"
    );
    assert!(!std::path::Path::new("/shoal-read-only-probe").exists());
    // The embedded DNS: service names answered, other names from the task's own server.
    let vip = s.ok(
        "vm1",
        &[
            "service",
            "inspect",
            "--format",
            "{{(index .Endpoint.VirtualIPs 0).Addr}}",
            "opts",
        ],
    );
    let vip = vip.trim().split('/').next().unwrap().to_string();
    wait_until("opts resolves to its VIP", T, || {
        (stdout(&["dig", "@127.0.0.11", "opts", "+short"]).trim() == vip).then_some(())
    })
    .unwrap();
    assert_eq!(
        stdout(&["dig", "@127.0.0.11", "outside.example", "+short"]).trim(),
        "192.0.2.77"
    );
    let pretty = s.ok("vm1", &["service", "inspect", "--pretty", "opts"]);
    assert!(
        pretty.contains(
            "\nCapabilities:\n Drop: CAP_NET_RAW\nSysCtls:\n net.core.somaxconn: 1234\nUlimits:\n nofile: 1234:2345\n"
        ),
        "{pretty}"
    );
    s.ok(
        "vm1",
        &[
            "service",
            "update",
            "--host-rm",
            "db.internal",
            "--read-only=false",
            "opts",
        ],
    );
    wait_until("the updated task", T, || {
        let hosts = stdout(&["cat", "/etc/hosts"]);
        (!hosts.is_empty() && !hosts.contains("db.internal")).then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", s.log_tail("vm1")));
    s.wait_running("opts", 1);
    let touch = exec(&[
        "sh",
        "-c",
        "touch /tmp/shoal-ctr-probe && rm /tmp/shoal-ctr-probe",
    ]);
    assert!(touch.status.success(), "{touch:?}");
    drop(stopper);
    upstream.join().unwrap();
}

/// Capabilities as docker's engine gives them: a task given no `--cap-add`/`--cap-drop`
/// holds docker's default 14 (mask a80425fb), in its own process, in `shoal exec` and in
/// its healthcheck (which passes only with that set); as another user, none effective
/// under the same bounding set; `--cap-add ALL` every capability this host has.
/// `service inspect` shows no CapabilityAdd/CapabilityDrop where none were given.
#[test]
fn tasks_get_docker_s_default_capabilities() {
    require_root();
    let s = Swarm::lab("caps", 1);
    s.init("vm1");
    const DEFAULT: &str = "00000000a80425fb";
    let health = format!("grep -q '^CapEff:.{DEFAULT}$' /proc/self/status");
    let create = |name: &str, opts: &[&str]| {
        let argv = [
            &["service", "create", "-d", "--name", name][..],
            opts,
            &["busybox", "sleep", "600"],
        ]
        .concat();
        s.ok("vm1", &argv);
    };
    create(
        "plain",
        &[
            "--health-cmd",
            &health,
            "--health-interval",
            "200ms",
            "--health-retries",
            "1",
        ],
    );
    create("nobody", &["--user", "nobody"]);
    create("all", &["--cap-add", "ALL"]);
    // Running only once healthy: the healthcheck saw docker's default set.
    for svc in ["plain", "nobody", "all"] {
        s.wait_running(svc, 1);
    }
    // The task's own process is pid 1 of its pid namespace; `shoal exec` is another.
    let caps = |svc: &str, pid: &str| -> String {
        let task = format!("{svc}.1");
        let path = format!("/proc/{pid}/status");
        s.ok(
            "vm1",
            &["exec", &task, "grep", "-E", "^Cap(Eff|Bnd)", &path],
        )
    };
    let both = |eff: &str, bnd: &str| format!("CapEff:\t{eff}\nCapBnd:\t{bnd}\n");
    for pid in ["1", "self"] {
        assert_eq!(
            caps("plain", pid),
            both(DEFAULT, DEFAULT),
            "plain, pid {pid}"
        );
        assert_eq!(
            caps("nobody", pid),
            both("0000000000000000", DEFAULT),
            "nobody, pid {pid}"
        );
    }
    // ALL: every capability there is to have, which is what this test process holds.
    let own = std::fs::read_to_string("/proc/self/status").unwrap();
    let own = own
        .lines()
        .find_map(|l| l.strip_prefix("CapBnd:\t"))
        .unwrap()
        .to_string();
    for pid in ["1", "self"] {
        assert_eq!(caps("all", pid), both(&own, &own), "all, pid {pid}");
    }
    let inspect = |svc: &str| {
        s.ok(
            "vm1",
            &[
                "service",
                "inspect",
                "--format",
                "{{json .Spec.TaskTemplate.ContainerSpec.CapabilityAdd}} {{json .Spec.TaskTemplate.ContainerSpec.CapabilityDrop}}",
                svc,
            ],
        )
    };
    assert_eq!(inspect("plain"), "null null\n");
    assert_eq!(inspect("all"), "[\"ALL\"] null\n");
}

/// The node's kernel settings as a docker container sees them (moby's ReadonlyPaths and
/// MaskedPaths, a read-only /sys): a task running as root, its healthcheck (which passes
/// only if its write fails) and `shoal exec` read /proc/sys but cannot write it, nor
/// /proc/sysrq-trigger (where the kernel has one), nor /sys ("Read-only file system"),
/// and the node's value stays; /proc/interrupts, /proc/timer_list (and /proc/kcore where
/// the kernel has one) read empty, /sys/firmware is empty; a `--sysctl` of the task's own
/// network namespace still takes effect.
#[test]
fn tasks_cannot_change_the_node_s_kernel_settings() {
    require_root();
    const SWAPPINESS: &str = "/proc/sys/vm/swappiness";
    const RO: &str = "Read-only file system";
    let node_value = std::fs::read_to_string(SWAPPINESS).unwrap();
    let other = if node_value.trim() == "61" {
        "62"
    } else {
        "61"
    };
    const CGROUP_PROBE: &str = "/sys/fs/cgroup/shoal-kro-probe";
    /// Puts the node back as it was, should a task have changed it.
    struct Restore(String);
    impl Drop for Restore {
        fn drop(&mut self) {
            let _ = std::fs::write(SWAPPINESS, &self.0);
            let _ = std::fs::remove_dir(CGROUP_PROBE);
        }
    }
    let _restore = Restore(node_value.clone());
    let s = Swarm::lab("kro", 1);
    s.init("vm1");
    let write = format!("echo {other} > {SWAPPINESS}");
    let task = format!(
        "if {write}; then echo task-wrote; else echo task-refused; fi; \
         echo task-timer-list=$(wc -c < /proc/timer_list); exec sleep 600"
    );
    s.ok(
        "vm1",
        &[
            "service",
            "create",
            "-d",
            "--name",
            "kro",
            "--sysctl",
            "net.core.somaxconn=1234",
            "--health-cmd",
            &format!("! ({write})"),
            "--health-interval",
            "200ms",
            "--health-retries",
            "1",
            "busybox",
            "sh",
            "-c",
            &task,
        ],
    );
    // Running only once healthy: the healthcheck's write failed.
    s.wait_running("kro", 1);
    let logs = wait_until("the task's own write", T, || {
        let logs = s.ok("vm1", &["service", "logs", "kro"]);
        logs.contains("task-timer-list=").then_some(logs)
    })
    .unwrap();
    assert!(logs.contains("task-refused\n"), "{logs}");
    assert!(logs.contains(RO), "{logs}");
    assert!(logs.contains("task-timer-list=0\n"), "{logs}");
    let exec = |argv: &[&str]| s.shoal("vm1", &[&["exec", "kro.1"][..], argv].concat());
    let refused = |argv: &[&str]| {
        let out = exec(argv);
        assert!(!out.status.success(), "{argv:?}: {out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(RO), "{argv:?}: {err}");
    };
    refused(&["sh", "-c", &write]);
    if std::path::Path::new("/proc/sysrq-trigger").exists() {
        // `h` only prints sysrq's help to the kernel log, were it written.
        refused(&["sh", "-c", "echo h > /proc/sysrq-trigger"]);
    }
    refused(&["touch", "/sys/kernel/uevent_seqnum"]);
    refused(&["mkdir", CGROUP_PROBE]);
    assert!(!std::path::Path::new(CGROUP_PROBE).exists());
    assert_eq!(
        std::fs::read_to_string(SWAPPINESS).unwrap(),
        node_value,
        "the node's vm.swappiness"
    );
    let stdout = |argv: &[&str]| {
        let out = exec(argv);
        assert!(out.status.success(), "{argv:?}: {out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert_eq!(stdout(&["cat", SWAPPINESS]), node_value, "readable");
    for path in ["/proc/kcore", "/proc/interrupts", "/proc/timer_list"] {
        if std::path::Path::new(path).exists() {
            assert_eq!(stdout(&["cat", path]), "", "{path} masked");
        }
    }
    if std::fs::read_dir("/sys/firmware").is_ok_and(|mut d| d.next().is_some()) {
        assert_eq!(stdout(&["ls", "-A", "/sys/firmware"]), "", "masked");
    }
    assert_eq!(stdout(&["cat", "/proc/sys/net/core/somaxconn"]), "1234\n");
}

/// `--group` / `--group-add` / `--group-rm` and `--oom-score-adj` reach the task's process
/// (`id -G`, /proc/1/oom_score_adj through `shoal exec`), and an update rolls the task.
/// Raised scores only: lowering one needs CAP_SYS_RESOURCE, which not every lab host has.
#[test]
fn groups_and_oom_score_adj_reach_the_task() {
    require_root();
    let s = Swarm::lab("grp", 1);
    s.init("vm1");
    s.ok(
        "vm1",
        &[
            "service",
            "create",
            "-d",
            "--name",
            "g",
            "--group",
            "4242",
            "--group",
            "4343",
            "--oom-score-adj",
            "200",
            "demo",
            "sleep",
            "600",
        ],
    );
    wait_until("g running", Duration::from_secs(30), || {
        s.ok(
            "vm1",
            &["service", "ps", "--format", "{{.CurrentState}}", "g"],
        )
        .starts_with("Running")
        .then_some(())
    })
    .unwrap_or_else(|e| {
        panic!(
            "{e}\n{}",
            s.ok("vm1", &["service", "ps", "--no-trunc", "g"])
        )
    });
    let groups = || -> Vec<String> {
        // While the task rolls, `g.1` may name none for a moment: no groups then.
        let out = s.shoal("vm1", &["exec", "g.1", "id", "-G"]);
        let mut g: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .map(str::to_string)
            .collect();
        g.sort();
        g
    };
    let oom = || {
        s.ok("vm1", &["exec", "g.1", "cat", "/proc/1/oom_score_adj"])
            .trim()
            .to_string()
    };
    let g = groups();
    let probe = s.shoal("vm1", &["exec", "g.1", "id", "-G"]);
    assert!(
        probe.status.success(),
        "{}\n{}\n{}",
        String::from_utf8_lossy(&probe.stderr),
        s.ok("vm1", &["service", "ps", "--no-trunc", "g"]),
        s.log_tail("vm1")
    );
    assert!(
        g.contains(&"4242".to_string()) && g.contains(&"4343".to_string()),
        "{g:?}"
    );
    assert_eq!(oom(), "200");
    assert_eq!(
        s.ok(
            "vm1",
            &[
                "service",
                "inspect",
                "--format",
                "{{json .Spec.TaskTemplate.ContainerSpec.Groups}} {{.Spec.TaskTemplate.ContainerSpec.OomScoreAdj}}",
                "g",
            ],
        )
        .trim(),
        "[\"4242\",\"4343\"] 200"
    );
    s.ok(
        "vm1",
        &[
            "service",
            "update",
            "-d",
            "--group-rm",
            "4242",
            "--group-add",
            "4444",
            "--oom-score-adj",
            "300",
            "g",
        ],
    );
    wait_until(
        "the task rolled onto the new groups",
        Duration::from_secs(30),
        || {
            let g = groups();
            (g.contains(&"4444".to_string()) && !g.contains(&"4242".to_string())).then_some(())
        },
    )
    .unwrap();
    assert_eq!(oom(), "300");
}

/// Secrets and configs reach a task as docker gives them: a secret in /run/secrets on a
/// tmpfs, with its mode and owner, a config at its target; only the node running the
/// task gets them, an object in use cannot be removed, an unknown one refuses the
/// service, and the files go with the task.
#[test]
fn secrets_and_configs_reach_the_task() {
    let s = Swarm::lab("secr", 2);
    s.form(&[("vm2", "worker")]);
    let shoal_sh = |cmd: &str| {
        s.lab
            .exec("vm1", &["sh", "-c", &cmd.replace("shoal", SHOAL)])
            .unwrap()
    };
    let out = shoal_sh("printf s3cr3t | shoal secret create --label env=dev db_pass -");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dir = std::env::temp_dir().join(unique_lab_name("secr-conf"));
    std::fs::create_dir_all(&dir).unwrap();
    let conf = dir.join("app.conf");
    std::fs::write(&conf, "port=80\n").unwrap();
    s.ok(
        "vm1",
        &["config", "create", "app.conf", conf.to_str().unwrap()],
    );
    // The Raft store that now holds it is root's alone: the data root is 0700.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(s.lab.data_root("vm1"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o700, "data root mode {mode:o}");
    // The data of a secret is in no output; a config's is.
    let inspect = s.ok("vm1", &["secret", "inspect", "db_pass"]);
    assert!(inspect.contains("\"Name\": \"db_pass\""), "{inspect}");
    assert!(
        !inspect.contains("s3cr3t") && !inspect.contains("czNjcjN0"),
        "{inspect}"
    );
    let pretty = s.ok("vm1", &["config", "inspect", "--pretty", "app.conf"]);
    assert!(pretty.ends_with("Data:\nport=80\n\n"), "{pretty}");
    // The generic inspect finds them too, as docker's does, a config with its data.
    let name = ["inspect", "--format", "{{.Spec.Name}} {{json .Spec.Data}}"];
    let both = s.ok("vm1", &[&name[..], &["db_pass", "app.conf"]].concat());
    assert_eq!(both, "db_pass null\napp.conf \"cG9ydD04MAo=\"\n");
    let typed = s.ok(
        "vm1",
        &[
            "inspect", "--type", "config", "--format", "{{.ID}}", "app.conf",
        ],
    );
    let id = s.ok(
        "vm1",
        &["config", "inspect", "--format", "{{.ID}}", "app.conf"],
    );
    assert_eq!(typed, id);
    let err = s.fails("vm1", &["inspect", "--type", "secret", "app.conf"]);
    assert_eq!(
        err,
        "Error response from daemon: secret app.conf not found\n"
    );

    let err = s.fails(
        "vm1",
        &[
            "service", "create", "-d", "--name", "nope", "--secret", "missing", "busybox", "sleep",
            "600",
        ],
    );
    assert_eq!(err, "secret not found: missing\n");
    assert_eq!(s.ok("vm1", &["service", "ls", "-q"]), "");

    let target = dir.join("in-task.conf");
    s.ok(
        "vm1",
        &[
            "service",
            "create",
            "-d",
            "--name",
            "box",
            "--constraint",
            "node.hostname == vm2",
            "--secret",
            "db_pass",
            "--secret",
            "source=db_pass,target=pw,uid=1000,gid=1001,mode=0400",
            "--config",
            &format!("source=app.conf,target={}", target.display()),
            "busybox",
            "sleep",
            "600",
        ],
    );
    wait_running_on(&s, "box", &["vm2"]);
    let spec = s.ok(
        "vm1",
        &[
            "service",
            "inspect",
            "--format",
            "{{json .Spec.TaskTemplate.ContainerSpec.Secrets}}",
            "box",
        ],
    );
    assert!(
        spec.contains(r#""File":{"Name":"pw","UID":"1000","GID":"1001","Mode":256}"#)
            && spec.contains(r#""SecretName":"db_pass""#),
        "{spec}"
    );
    let exec = |cmd: &str| s.ok("vm1", &["exec", "box.1", "sh", "-c", cmd]);
    assert_eq!(exec("cat /run/secrets/db_pass"), "s3cr3t");
    assert_eq!(
        exec("stat -c '%a %u %g' /run/secrets/db_pass /run/secrets/pw"),
        "444 0 0\n400 1000 1001\n"
    );
    assert_eq!(exec("stat -f -c %T /run/secrets"), "tmpfs\n");
    assert_eq!(
        exec(&format!("cat {0}; stat -c %a {0}", target.display())),
        "port=80\n444\n"
    );
    // The config is bound in the task's mount namespace only: the host sees at most the
    // empty mount point the executor makes for a bind.
    assert_eq!(std::fs::read(&target).unwrap_or_default(), b"");
    // Only the task's node has the files.
    let files = |node: &str| {
        std::fs::read_dir(s.lab.data_root(node).join("task-files"))
            .map(|d| d.count())
            .unwrap_or(0)
    };
    assert_eq!((files("vm1"), files("vm2")), (0, 1));

    let err = s.fails("vm1", &["secret", "rm", "db_pass"]);
    assert_eq!(
        err,
        "Error response from daemon: rpc error: code = InvalidArgument desc = secret 'db_pass' is in use by the following service: box\n"
    );
    let err = s.fails("vm1", &["config", "rm", "app.conf"]);
    assert!(
        err.contains("config 'app.conf' is in use by the following service: box"),
        "{err}"
    );

    s.ok("vm1", &["service", "rm", "box"]);
    wait_until("the task's files gone", T, || {
        (files("vm2") == 0).then_some(())
    })
    .unwrap_or_else(|e| panic!("{e:#}\n{}", s.log_tail("vm2")));
    assert_eq!(s.ok("vm1", &["secret", "rm", "db_pass"]), "db_pass\n");
    assert_eq!(s.ok("vm1", &["config", "rm", "app.conf"]), "app.conf\n");
    assert_eq!(s.ok("vm1", &["secret", "ls", "-q"]), "");

    // A stack: its files relative to the compose file, created before its service,
    // immutable on redeploy, removed by stack rm after the service.
    let in_stack = dir.join("in-stack.conf");
    std::fs::write(dir.join("pw.txt"), "stack-pw").unwrap();
    let compose = dir.join("compose.yml");
    std::fs::write(
        &compose,
        format!(
            "services:\n  app:\n    image: busybox\n    command: [sleep, \"600\"]\n    deploy:\n      placement:\n        constraints: [node.hostname == vm2]\n    secrets:\n      - source: pw\n        target: db\n        mode: 0400\n    configs:\n      - source: conf\n        target: {}\nsecrets:\n  pw:\n    file: ./pw.txt\nconfigs:\n  conf:\n    file: ./app.conf\n",
            in_stack.display()
        ),
    )
    .unwrap();
    let deploy = ["stack", "deploy", "-c", compose.to_str().unwrap(), "st"];
    assert_eq!(
        s.ok("vm1", &deploy),
        "Creating network st_default\nCreating secret st_pw\nCreating config st_conf\nCreating service st_app\n"
    );
    wait_running_on(&s, "st_app", &["vm2"]);
    let exec = |cmd: &str| s.ok("vm1", &["exec", "st_app.1", "sh", "-c", cmd]);
    assert_eq!(
        exec(&format!(
            "cat /run/secrets/db {}; stat -c %a /run/secrets/db",
            in_stack.display()
        )),
        "stack-pwport=80\n400\n"
    );
    let labels = s.ok(
        "vm1",
        &["secret", "ls", "--format", "{{.Name}} {{.Labels}}"],
    );
    assert_eq!(labels, "st_pw com.docker.stack.namespace=st\n");
    std::fs::write(dir.join("pw.txt"), "changed").unwrap();
    let err = s.fails("vm1", &deploy);
    assert!(
        err.ends_with("failed to update secret st_pw: Error response from daemon: rpc error: code = InvalidArgument desc = only updates to Labels are allowed\n"),
        "{err}"
    );
    assert_eq!(
        s.ok("vm1", &["stack", "rm", "st"]),
        "Removing service st_app\nRemoving secret st_pw\nRemoving config st_conf\nRemoving network st_default\n"
    );
    assert_eq!(s.ok("vm1", &["secret", "ls", "-q"]), "");
    assert_eq!(s.ok("vm1", &["config", "ls", "-q"]), "");
    wait_until("the stack task's files gone", T, || {
        (files("vm2") == 0).then_some(())
    })
    .unwrap_or_else(|e| panic!("{e:#}\n{}", s.log_tail("vm2")));
    let _ = std::fs::remove_dir_all(&dir);
}
