//! Cluster foundation in real labs: forming with tokens, Raft failover and quorum, roles,
//! labels, availability, restarts and `--force-new-cluster`. One lab per test, run serially.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::*;

const T: Duration = Duration::from_secs(20);

/// Three managers and a worker join with tokens, and every manager lists the same nodes
/// with the same roles; the worker is refused manager commands with docker's message.
#[test]
fn managers_and_worker_form_and_agree() {
    let s = Swarm::lab("form", 4);
    let init = s.init("vm1");
    assert!(init.contains("Swarm initialized: current node ("), "{init}");
    assert!(
        init.contains("shoal swarm join --token SWMTKN-1-"),
        "{init}"
    );
    assert!(init.contains(&format!("{}:2377", s.addr("vm1"))), "{init}");
    let jt = s.ok("vm1", &["swarm", "join-token", "worker"]);
    assert!(jt.starts_with("To add a worker to this swarm, run the following command:\n\n    shoal swarm join --token SWMTKN-1-"), "{jt}");

    for (n, role) in [("vm2", "manager"), ("vm3", "manager"), ("vm4", "worker")] {
        let out = s.join(n, "vm1", role);
        assert_eq!(out.trim(), format!("This node joined a swarm as a {role}."));
    }
    for n in ["vm2", "vm3"] {
        s.wait_node("vm1", n, "Ready", "Reachable", T);
    }
    s.wait_node("vm1", "vm4", "Ready", "", T);

    let view = |on: &str| -> BTreeSet<(String, String)> {
        s.nodes(on)
            .expect("node ls")
            .into_iter()
            .map(|r| {
                (
                    r.0,
                    if r.3.is_empty() {
                        "worker".into()
                    } else {
                        "manager".into()
                    },
                )
            })
            .collect()
    };
    let expected = view("vm1");
    assert_eq!(expected.len(), 4);
    for m in ["vm2", "vm3"] {
        assert_eq!(view(m), expected, "node ls on {m} disagrees with vm1");
    }
    // `*` marks the node asked, in docker's table.
    let table = s.ok("vm2", &["node", "ls"]);
    assert!(table.starts_with("ID                            HOSTNAME   STATUS    AVAILABILITY   MANAGER STATUS   ENGINE VERSION\n"), "{table}");
    let vm2_line = table
        .lines()
        .find(|l| l.contains(" vm2 "))
        .expect("vm2 row");
    assert!(vm2_line.contains(" * "), "{table}");

    let err = s.fails("vm4", &["node", "ls"]);
    assert_eq!(
        err.trim(),
        format!("Error response from daemon: {WORKER_REFUSED}")
    );
    s.fails("vm4", &["node", "update", "--label-add", "a=b", "vm4"]);
    // A worker's certificate gives no manager role, even at the port.
    let inspect = s.ok(
        "vm1",
        &[
            "node",
            "inspect",
            "--format",
            "{{.Spec.Role}} {{.Status.State}}",
            "vm4",
        ],
    );
    assert_eq!(inspect.trim(), "worker ready");
}

/// Bad tokens are refused with one clear line, and leave nothing half-joined.
#[test]
fn bad_tokens_are_refused() {
    let s = Swarm::lab("tok", 3);
    s.init("vm1");
    let remote = format!("{}:2377", s.addr("vm1"));
    let good = s.token("vm1", "worker");

    // Wrong secret, right CA.
    let (digest_part, _) = good.rsplit_once('-').unwrap();
    let wrong_secret = format!("{digest_part}-{}", "0".repeat(25));
    let err = s.fails("vm2", &["swarm", "join", "--token", &wrong_secret, &remote]);
    assert!(
        err.contains("A valid join token is necessary to join this cluster"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");

    // Right secret, wrong CA digest: the joiner refuses the manager before sending the secret.
    let secret = good.rsplit_once('-').unwrap().1;
    // swarmkit's words name the digest the token holds as sha256 hex: here 1.
    let wrong_ca = format!("SWMTKN-1-{}1-{secret}", "0".repeat(49));
    let err = s.fails("vm2", &["swarm", "join", "--token", &wrong_ca, &remote]);
    assert_eq!(
        err,
        format!(
            "Error response from daemon: remote CA does not match fingerprint. Expected: {}1\n",
            "0".repeat(63)
        )
    );

    // Garbage.
    let err = s.fails(
        "vm2",
        &["swarm", "join", "--token", "SWMTKN-1-nope", &remote],
    );
    assert!(err.to_lowercase().contains("invalid join token"), "{err}");

    // Unreachable manager.
    let err = s.fails(
        "vm2",
        &["swarm", "join", "--token", &good, "10.77.0.99:2377"],
    );
    assert!(err.contains("could not reach a swarm manager"), "{err}");

    // Nothing half-joined: vm2 is still outside any swarm and can join now.
    let err = s.fails("vm2", &["swarm", "leave"]);
    assert!(err.contains("This node is not part of a swarm"), "{err}");
    assert_eq!(s.nodes("vm1").unwrap().len(), 1);

    // A worker token makes a worker, never a manager; `--availability` is the one it
    // starts with.
    s.ok(
        "vm2",
        &[
            "swarm",
            "join",
            "--token",
            &good,
            "--availability",
            "drain",
            &remote,
        ],
    );
    let role = s.ok(
        "vm1",
        &[
            "node",
            "inspect",
            "--format",
            "{{.Spec.Role}} {{.Spec.Availability}}",
            "vm2",
        ],
    );
    assert_eq!(role.trim(), "worker drain");
    // Joining twice.
    let err = s.fails("vm2", &["swarm", "join", "--token", &good, &remote]);
    assert!(
        err.contains("This node is already part of a swarm"),
        "{err}"
    );
    let err = s.fails(
        "vm1",
        &["swarm", "init", "--advertise-addr", &s.addr("vm1")],
    );
    assert!(
        err.contains("This node is already part of a swarm"),
        "{err}"
    );

    // docker's messages for an unknown role and for objects that are not there: what was
    // found (`[]`) on stdout, one error per missing reference on stderr, exit 1.
    for (args, out_want, err_want) in [
        (&["swarm", "join-token", "foo"][..], "", "unknown role foo\n"),
        (
            &["node", "inspect", "nosuch", "other"][..],
            "[]\n",
            "Error response from daemon: node nosuch not found\nError response from daemon: node other not found\n",
        ),
        (
            &["network", "inspect", "nosuch"][..],
            "[]\n",
            "Error response from daemon: network nosuch not found\n",
        ),
        (&["inspect", "nosuch"][..], "[]\n", "error: no such object: nosuch\n"),
    ] {
        let out = s.shoal("vm1", args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert_eq!(String::from_utf8_lossy(&out.stdout), out_want, "{args:?}");
        assert_eq!(String::from_utf8_lossy(&out.stderr), err_want, "{args:?}");
    }

    // TLSInfo names the CA: base64 DER of its subject and SubjectPublicKeyInfo.
    let tls = s.ok(
        "vm1",
        &[
            "node",
            "inspect",
            "--format",
            "{{.Description.TLSInfo.CertIssuerSubject}} {{.Description.TLSInfo.CertIssuerPublicKey}}",
            "self",
        ],
    );
    assert!(
        tls.starts_with("MBMxETAPBgNVBAMMCHN3YXJtLWNh MFkw"),
        "{tls}"
    );

    // Rotation: the old token stops working for new joins, joined nodes are undisturbed.
    let rotated = s.ok("vm1", &["swarm", "join-token", "--rotate", "worker"]);
    assert!(
        rotated.starts_with("Successfully rotated worker join token.\n\n"),
        "{rotated}"
    );
    let remote3 = remote.clone();
    let err = s.fails("vm3", &["swarm", "join", "--token", &good, &remote3]);
    assert!(err.contains("A valid join token is necessary"), "{err}");
    s.wait_node("vm1", "vm2", "Ready", "", T);
    let new = s.token("vm1", "worker");
    assert_ne!(new, good);
    s.ok("vm3", &["swarm", "join", "--token", &new, &remote3]);
}

/// kill -9 of the leader: a new leader within the election timeout, writes go on, and the
/// old leader comes back and catches up with no write lost.
#[test]
fn leader_failover_loses_no_write() {
    let s = Swarm::lab("fail", 3);
    s.form(&[("vm2", "manager"), ("vm3", "manager")]);
    assert_eq!(s.wait_leader("vm2", T), "vm1");
    s.ok("vm1", &["node", "update", "--label-add", "before=1", "vm2"]);

    s.lab.stop("vm1").unwrap();
    let stopped = Instant::now();
    let leader = s.wait_leader("vm2", T);
    assert_ne!(leader, "vm1");
    eprintln!("new leader {leader} seen after {:?}", stopped.elapsed());
    // A write right after failover.
    wait_until("a write after failover", T, || {
        s.shoal("vm2", &["node", "update", "--label-add", "after=2", "vm3"])
            .status
            .success()
            .then_some(())
    })
    .unwrap();
    s.wait_node("vm2", "vm1", "Down", "Unreachable", T);

    s.lab.start("vm1").unwrap();
    s.wait_node("vm2", "vm1", "Ready", "Reachable", T);
    // The old leader has both writes.
    wait_until("vm1 caught up", T, || {
        (s.labels("vm1", "vm2")?.contains("\"before\":\"1\"")
            && s.labels("vm1", "vm3")?.contains("\"after\":\"2\""))
        .then_some(())
    })
    .unwrap();
}

/// With 2 of 3 managers down, writes fail fast with docker's no-leader error; when one
/// returns, writes succeed again.
#[test]
fn quorum_loss_fails_fast_then_recovers() {
    let s = Swarm::lab("quor", 3);
    s.form(&[("vm2", "manager"), ("vm3", "manager")]);
    s.lab.stop("vm2").unwrap();
    s.lab.stop("vm3").unwrap();
    wait_until("the no-quorum error", T, || {
        let started = Instant::now();
        let out = s.shoal("vm1", &["node", "update", "--label-add", "x=1", "vm1"]);
        let took = started.elapsed();
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        (!out.status.success() && err.contains(NO_LEADER)).then_some(took)
    })
    .map(|took| {
        assert!(
            took < Duration::from_secs(6),
            "no-quorum error took {took:?}"
        )
    })
    .unwrap();

    s.lab.start("vm2").unwrap();
    wait_until("a write with quorum back", T, || {
        s.shoal("vm1", &["node", "update", "--label-add", "x=1", "vm1"])
            .status
            .success()
            .then_some(())
    })
    .unwrap();
    assert!(s.labels("vm2", "vm1").unwrap().contains("\"x\":\"1\""));
}

/// promote / demote / labels / availability round trips, and refusals that protect quorum.
#[test]
fn roles_labels_availability_round_trip() {
    let s = Swarm::lab("role", 3);
    s.form(&[("vm2", "worker"), ("vm3", "worker")]);

    let out = s.ok("vm1", &["node", "promote", "vm2"]);
    assert_eq!(out.trim(), "Node vm2 promoted to a manager in the swarm.");
    s.wait_node("vm1", "vm2", "Ready", "Reachable", T);
    // vm2 now serves manager commands itself.
    wait_until("vm2 serving node ls", T, || s.nodes("vm2")).unwrap();
    let again = s.ok("vm1", &["node", "promote", "vm2"]);
    assert!(again.contains("is already a manager."), "{again}");

    let out = s.ok("vm1", &["node", "demote", "vm2"]);
    assert_eq!(out.trim(), "Manager vm2 demoted in the swarm.");
    s.wait_node("vm1", "vm2", "Ready", "", T);
    wait_until("vm2 refusing manager commands", T, || {
        let err = String::from_utf8_lossy(&s.shoal("vm2", &["node", "ls"]).stderr).to_string();
        err.contains(WORKER_REFUSED).then_some(())
    })
    .unwrap();
    // The last manager cannot be demoted.
    let err = s.fails("vm1", &["node", "demote", "vm1"]);
    assert!(
        err.contains("attempting to demote the last manager of the swarm"),
        "{err}"
    );

    s.ok(
        "vm1",
        &[
            "node",
            "update",
            "--label-add",
            "os=linux",
            "--label-add",
            "zone=a",
            "vm3",
        ],
    );
    assert_eq!(
        s.labels("vm1", "vm3").unwrap(),
        r#"{"os":"linux","zone":"a"}"#
    );
    s.ok("vm1", &["node", "update", "--label-rm", "zone", "vm3"]);
    assert_eq!(s.labels("vm1", "vm3").unwrap(), r#"{"os":"linux"}"#);
    // docker-cli checks a key to remove itself (mergeNodeUpdate): its error, no daemon's
    // prefix; a key added by the same command is there to remove.
    let err = s.fails("vm1", &["node", "update", "--label-rm", "nope", "vm3"]);
    assert_eq!(err, "key nope doesn't exist in node's labels\n");
    s.ok(
        "vm1",
        &[
            "node",
            "update",
            "--label-add",
            "tmp=1",
            "--label-rm",
            "tmp",
            "vm3",
        ],
    );
    assert_eq!(s.labels("vm1", "vm3").unwrap(), r#"{"os":"linux"}"#);
    // swarm update: docker's line; with no flag, its help and nothing changed.
    assert_eq!(
        s.ok("vm1", &["swarm", "update", "--task-history-limit", "3"]),
        "Swarm updated.\n"
    );
    let help = s.ok("vm1", &["swarm", "update"]);
    assert!(
        help.starts_with("Usage:  shoal swarm update [OPTIONS]\n\nUpdate the swarm\n"),
        "{help}"
    );
    // node ls filters: docker's keys and matching, and its daemon's words for a bad one.
    let vm3_id = s.ok("vm1", &["node", "inspect", "--format", "{{.ID}}", "vm3"]);
    assert_eq!(
        s.ok("vm1", &["node", "ls", "-q", "-f", "node.label=os=linux"]),
        vm3_id
    );
    assert_eq!(
        s.ok(
            "vm1",
            &[
                "node",
                "ls",
                "-f",
                "role=manager",
                "--format",
                "{{.Hostname}}"
            ]
        ),
        "vm1\n"
    );
    assert_eq!(
        s.fails("vm1", &["node", "ls", "-f", "role=boss"]),
        "Error response from daemon: Invalid role filter: 'boss'\n"
    );

    for a in ["drain", "pause", "active"] {
        s.ok("vm1", &["node", "update", "--availability", a, "vm3"]);
        let got = s.ok(
            "vm1",
            &[
                "node",
                "inspect",
                "--format",
                "{{.Spec.Availability}}",
                "vm3",
            ],
        );
        assert_eq!(got.trim(), a);
    }
    // A bad availability or role is the daemon's error (exit status 1), in moby's words.
    assert_eq!(
        s.fails("vm1", &["node", "update", "--availability", "off", "vm3"]),
        "Error response from daemon: invalid Availability: \"off\"\n"
    );
    // Unknown nodes and removal rules.
    let err = s.fails("vm1", &["node", "update", "--availability", "drain", "vm9"]);
    assert!(err.contains("node vm9 not found"), "{err}");
    let err = s.fails("vm1", &["node", "rm", "vm3"]);
    assert!(err.contains("is not down and can't be removed"), "{err}");
    s.lab.stop("vm3").unwrap();
    s.wait_node("vm1", "vm3", "Down", "", T);
    s.ok("vm1", &["node", "rm", "vm3"]);
    assert_eq!(s.nodes("vm1").unwrap().len(), 2);
}

/// Every node restarted (kill -9 all, then start): the whole state is preserved and the
/// nodes rejoin by themselves.
#[test]
fn full_restart_preserves_state() {
    let s = Swarm::lab("rest", 3);
    s.form(&[("vm2", "manager"), ("vm3", "worker")]);
    s.ok(
        "vm1",
        &[
            "node",
            "update",
            "--label-add",
            "os=linux",
            "--availability",
            "drain",
            "vm3",
        ],
    );
    let before = s.ok(
        "vm1",
        &[
            "node",
            "inspect",
            "--format",
            "{{.ID}} {{.Spec.Role}} {{json .Spec.Labels}} {{.Spec.Availability}}",
            "vm1",
            "vm2",
            "vm3",
        ],
    );
    let token = s.token("vm1", "worker");
    for n in ["vm1", "vm2", "vm3"] {
        s.lab.stop(n).unwrap();
    }
    for n in ["vm1", "vm2", "vm3"] {
        s.lab.start(n).unwrap();
    }
    s.wait_leader("vm1", T);
    s.wait_node("vm1", "vm3", "Ready", "", T);
    s.wait_node("vm1", "vm2", "Ready", "Reachable", T);
    let after = s.ok(
        "vm1",
        &[
            "node",
            "inspect",
            "--format",
            "{{.ID}} {{.Spec.Role}} {{json .Spec.Labels}} {{.Spec.Availability}}",
            "vm1",
            "vm2",
            "vm3",
        ],
    );
    assert_eq!(before, after);
    assert_eq!(s.token("vm2", "worker"), token);
}

/// `swarm init --force-new-cluster` on the last manager standing brings writes back, with
/// the state it had.
#[test]
fn force_new_cluster_recovers() {
    let s = Swarm::lab("force", 3);
    s.form(&[("vm2", "manager"), ("vm3", "manager")]);
    s.ok("vm1", &["node", "update", "--label-add", "keep=me", "vm1"]);
    s.lab.stop("vm2").unwrap();
    s.lab.stop("vm3").unwrap();
    wait_until("quorum lost", T, || {
        let out = s.shoal("vm1", &["node", "update", "--label-add", "y=1", "vm1"]);
        (!out.status.success()).then_some(())
    })
    .unwrap();
    let out = s.ok("vm1", &["swarm", "init", "--force-new-cluster"]);
    assert!(out.contains("Swarm initialized"), "{out}");
    s.ok("vm1", &["node", "update", "--label-add", "y=2", "vm1"]);
    let labels = s.labels("vm1", "vm1").unwrap();
    assert!(
        labels.contains("\"keep\":\"me\"") && labels.contains("\"y\":\"2\""),
        "{labels}"
    );
    // The lost managers are still listed, down, until demoted and removed; as in
    // swarmkit they are no longer Raft members, so they have no ManagerStatus (an empty
    // MANAGER STATUS), though their role is still manager.
    s.wait_node("vm1", "vm2", "Down", "", T);
    s.wait_node("vm1", "vm3", "Down", "", T);
    let inspect = s.ok("vm1", &["node", "inspect", "vm2"]);
    assert!(!inspect.contains("ManagerStatus"), "{inspect}");
    assert_eq!(
        s.ok(
            "vm1",
            &["node", "inspect", "--format", "{{.Spec.Role}}", "vm2"]
        ),
        "manager\n"
    );
    s.ok("vm1", &["node", "demote", "vm2"]);
    s.ok("vm1", &["node", "rm", "vm2"]);
    // Not a Raft member, so it needs no demotion to go (swarmkit's RemoveNode).
    s.ok("vm1", &["node", "rm", "vm3"]);
    let hosts = s.ok("vm1", &["node", "ls", "--format", "{{.Hostname}}"]);
    assert_eq!(hosts, "vm1\n");
}

/// A `--force-new-cluster` that fails loses nothing: a bad address is refused before
/// anything is stopped or moved, and a failure after that (the swarm port taken) puts back
/// the old Raft store and node.json, and the manager runs on as before, also after a restart.
#[test]
fn failed_force_new_cluster_loses_nothing() {
    let s = Swarm::lab("forcefail", 1);
    s.init("vm1");
    s.ok("vm1", &["node", "update", "--label-add", "keep=me", "vm1"]);
    let e = s.fails(
        "vm1",
        &[
            "swarm",
            "init",
            "--force-new-cluster",
            "--advertise-addr",
            "nosuchif0",
        ],
    );
    assert!(e.contains("advertise address must be"), "{e}");
    s.ok("vm1", &["node", "update", "--label-add", "a=1", "vm1"]);

    // The metrics listener holds port 9323: the new swarm listener cannot bind it.
    let taken = format!("{}:9323", s.addr("vm1"));
    let e = s.fails(
        "vm1",
        &[
            "swarm",
            "init",
            "--force-new-cluster",
            "--advertise-addr",
            &taken,
        ],
    );
    assert!(e.contains("--force-new-cluster failed"), "{e}");
    assert!(
        !e.contains("restoring the previous state also failed"),
        "{e}"
    );
    wait_until("the old manager writes again", T, || {
        let out = s.shoal("vm1", &["node", "update", "--label-add", "b=1", "vm1"]);
        out.status.success().then_some(())
    })
    .unwrap();
    let data = s.lab.data_root("vm1");
    assert!(data.join("raft.redb").exists());
    assert!(!data.join("raft.redb.before-force-new-cluster").exists());

    s.lab.stop("vm1").unwrap();
    s.lab.start("vm1").unwrap();
    wait_until("writes after a restart", T, || {
        let out = s.shoal("vm1", &["node", "update", "--label-add", "c=1", "vm1"]);
        out.status.success().then_some(())
    })
    .unwrap();
    let labels = s.labels("vm1", "vm1").unwrap();
    for l in [
        "\"keep\":\"me\"",
        "\"a\":\"1\"",
        "\"b\":\"1\"",
        "\"c\":\"1\"",
    ] {
        assert!(labels.contains(l), "{l} in {labels}");
    }
}

/// A worker leaving shows Down on the managers; a manager is warned before leaving.
#[test]
fn leave_marks_node_down() {
    let s = Swarm::lab("leave", 2);
    s.form(&[("vm2", "worker")]);
    let out = s.ok("vm2", &["swarm", "leave"]);
    assert_eq!(out.trim(), "Node left the swarm.");
    s.wait_node("vm1", "vm2", "Down", "", T);
    let err = s.fails("vm1", &["swarm", "leave"]);
    assert!(
        err.contains("Removing the last manager erases all current state of the swarm"),
        "{err}"
    );
    // vm2 can join again as a new node.
    s.join("vm2", "vm1", "worker");
    assert_eq!(s.nodes("vm1").unwrap().len(), 3);
}

/// `/metrics` serves Raft, node and API metrics that pass `promtool check metrics`.
#[test]
fn metrics_pass_promtool() {
    let s = Swarm::lab("metr", 2);
    s.form(&[("vm2", "worker")]);
    s.ok("vm1", &["node", "ls"]);
    let url = format!("http://{}:9323/metrics", s.addr("vm1"));
    let out = s.lab.exec("vm1", &["curl", "-sf", &url]).unwrap();
    assert!(
        out.status.success(),
        "curl {url}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    for needle in [
        "shoal_raft_term ",
        "shoal_raft_is_leader 1",
        "shoal_raft_applied_index ",
        "shoal_nodes{role=\"manager\",state=\"ready\"} 1",
        "shoal_nodes{role=\"worker\",state=\"ready\"} 1",
        "shoal_api_requests_total{request=\"node_list\",result=\"ok\"}",
        "shoal_api_request_duration_seconds_bucket",
    ] {
        assert!(text.contains(needle), "missing {needle} in:\n{text}");
    }
    let check = s
        .lab
        .exec(
            "vm1",
            &[
                "sh",
                "-c",
                &format!("curl -sf {url} | promtool check metrics"),
            ],
        )
        .unwrap();
    assert!(
        check.status.success(),
        "promtool: {}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
}

/// One daemon per data root, and shoald refuses to run without root.
#[test]
fn one_daemon_per_data_root() {
    let s = Swarm::lab("lock", 1);
    let shoald = std::path::Path::new(SHOAL).with_file_name("shoald");
    let data = s.lab.data_root("vm1");
    let out = std::process::Command::new(&shoald)
        .args([
            "--data-root",
            data.to_str().unwrap(),
            "-H",
            "unix:///tmp/shoal-lock-test.sock",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("another shoald is already running with data root"),
        "{err}"
    );
    // Without root (nobody), a clear refusal.
    let out = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(&shoald)
        .args(["--data-root", "/tmp/shoal-nonroot-test"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("shoald needs root"), "{err}");
}

/// `swarm init` picks the advertise address when the host has one candidate, and asks for
/// one, with docker's message, when an interface has two.
#[test]
fn init_detects_the_advertise_address() {
    let s = Swarm::lab("adv", 2);
    // Usage errors in docker's words and statuses: a flag error is 125 (pflag's words,
    // then the usage line), a wrong argument count 1; neither asks the daemon.
    for (args, code, want) in [
        (
            &["swarm", "init", "--bogus"][..],
            125,
            "unknown flag: --bogus\n\nUsage:  shoal swarm init [OPTIONS]\n\nRun 'shoal swarm init --help' for more information\n",
        ),
        (
            &["swarm", "init", "--dispatcher-heartbeat", "5"][..],
            125,
            "invalid argument \"5\" for \"--dispatcher-heartbeat\" flag: time: missing unit in duration \"5\"\n\nUsage:  shoal swarm init [OPTIONS]\n\nRun 'shoal swarm init --help' for more information\n",
        ),
        (
            &["service", "create", "--update-delay", "5", "demo:1"][..],
            125,
            "invalid argument \"5\" for \"--update-delay\" flag: time: missing unit in duration \"5\"\n\nUsage:  shoal service create [OPTIONS] IMAGE [COMMAND] [ARG...]\n\nRun 'shoal service create --help' for more information\n",
        ),
        (
            &["swarm", "init", "--force-new-cluster=maybe"][..],
            125,
            "invalid argument \"maybe\" for \"--force-new-cluster\" flag: strconv.ParseBool: parsing \"maybe\": invalid syntax\n\nUsage:  shoal swarm init [OPTIONS]\n\nRun 'shoal swarm init --help' for more information\n",
        ),
        (
            &["swarm", "init", "extra"][..],
            1,
            "shoal: 'shoal swarm init' accepts no arguments\n\nUsage:  shoal swarm init [OPTIONS]\n\nRun 'shoal swarm init --help' for more information\n",
        ),
        (
            &["swarm", "init", "--availability", "off"][..],
            1,
            "invalid availability \"off\", only active, pause and drain are supported\n",
        ),
    ] {
        let out = s.shoal("vm1", args);
        assert_eq!(out.status.code(), Some(code), "{args:?}");
        assert_eq!(String::from_utf8_lossy(&out.stderr), want, "{args:?}");
    }
    assert!(s
        .shoal("vm1", &["swarm", "init", "--help"])
        .status
        .success());
    // `--availability` (any case): the node starts with it.
    s.ok("vm1", &["swarm", "init", "--availability", "Pause"]);
    let availability = |node: &str| {
        s.ok(
            "vm1",
            &[
                "node",
                "inspect",
                "--format",
                "{{.Spec.Availability}}",
                node,
            ],
        )
    };
    assert_eq!(availability("self"), "pause\n");
    let addr = s.ok(
        "vm1",
        &[
            "node",
            "inspect",
            "--format",
            "{{.Status.Addr}} {{.ManagerStatus.Addr}}",
            "self",
        ],
    );
    assert_eq!(addr.trim(), "10.77.0.11 10.77.0.11:2377");
    // A second address on vm2's eth0 (inside vm2's namespace only).
    let out = s
        .lab
        .exec(
            "vm2",
            &["ip", "addr", "add", "10.77.0.51/24", "dev", "eth0"],
        )
        .unwrap();
    assert!(out.status.success());
    let err = s.fails("vm2", &["swarm", "init"]);
    assert_eq!(
        err.trim(),
        "Error response from daemon: could not choose an IP address to advertise since this system has multiple addresses on interface eth0 (10.77.0.12 and 10.77.0.51) - specify one with --advertise-addr"
    );
    // `node ls -q` prints full IDs only; `--pretty` is human text.
    let ids = s.ok("vm1", &["node", "ls", "-q"]);
    assert_eq!(ids.trim().len(), 25, "{ids}");
    let pretty = s.ok("vm1", &["node", "inspect", "--pretty", "self"]);
    assert!(
        pretty.contains("\nHostname:              \tvm1\n")
            && pretty.contains("\n Leader:\t\tYes\n")
            && pretty.contains("\nTLS Info:\n TrustRoot:\n-----BEGIN CERTIFICATE-----\n"),
        "{pretty}"
    );
}

/// Every listed manager's `node ls` rows of managers, as (hostname, "STATUS MANAGER-STATUS"),
/// once all of them answer and agree.
fn agreed_managers(s: &Swarm, managers: &[&str]) -> Option<BTreeSet<(String, String)>> {
    let mut agreed = None;
    for m in managers {
        let rows: BTreeSet<(String, String)> = s
            .nodes(m)?
            .into_iter()
            .filter(|r| !r.3.is_empty())
            .map(|r| (r.0, format!("{} {}", r.1, r.3)))
            .collect();
        match &agreed {
            None => agreed = Some(rows),
            Some(a) if *a == rows => {}
            Some(_) => return None,
        }
    }
    agreed
}

/// `shoal_raft_voters` on a manager's `/metrics`.
fn raft_voters(s: &Swarm, node: &str) -> Option<u64> {
    let url = format!("http://{}:9323/metrics", s.addr(node));
    let out = s.lab.exec(node, &["curl", "-sf", &url]).ok()?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("shoal_raft_voters ")?.trim().parse().ok())
}

/// Waits until `managers` all list exactly themselves as the managers, all Ready, one the
/// Leader and the others Reachable, and each counts them all as Raft voters.
fn wait_managers_converge(s: &Swarm, managers: &[&str], what: &str) {
    wait_until(&format!("{what}: {managers:?} agree"), T, || {
        let rows = agreed_managers(s, managers)?;
        let hosts: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
        let leaders = rows.iter().filter(|r| r.1 == "Ready Leader").count();
        let reachable = rows.iter().filter(|r| r.1 == "Ready Reachable").count();
        (hosts == managers && leaders == 1 && reachable == managers.len() - 1).then_some(())
    })
    .unwrap_or_else(|e| {
        let views: Vec<_> = managers.iter().map(|m| (m, s.nodes(m))).collect();
        panic!("{e:#}\n{views:?}\n{}", s.log_tails())
    });
    wait_until(&format!("{what}: raft voters"), T, || {
        managers
            .iter()
            .all(|m| raft_voters(s, m) == Some(managers.len() as u64))
            .then_some(())
    })
    .unwrap_or_else(|e| {
        let voters: Vec<_> = managers.iter().map(|m| (m, raft_voters(s, m))).collect();
        panic!("{e:#}\n{voters:?}\n{}", s.log_tails())
    });
}

/// vm1 initialized with docker's default 5 s heartbeat (a node learns its new role only
/// with its next heartbeat), vm2 and vm3 joined as managers.
fn three_managers_slow_heartbeat(prefix: &str) -> Swarm {
    let s = Swarm::lab(prefix, 3);
    let addr = s.addr("vm1");
    s.ok(
        "vm1",
        &[
            "swarm",
            "init",
            "--advertise-addr",
            &addr,
            "--dispatcher-heartbeat",
            "5s",
        ],
    );
    for n in ["vm2", "vm3"] {
        s.join(n, "vm1", "manager");
    }
    wait_managers_converge(&s, &["vm1", "vm2", "vm3"], "formed");
    s
}

/// A manager demoted and promoted again before it noticed the demotion (its next
/// heartbeat had not come, or it was down meanwhile) becomes a full manager again: Ready
/// and Reachable on every manager, a Raft voter everywhere, and one that counts for quorum.
#[test]
fn demote_then_promote_before_the_node_noticed() {
    let s = three_managers_slow_heartbeat("repro");
    let all = ["vm1", "vm2", "vm3"];

    // Promoted once Raft has removed it, between two of its heartbeats.
    s.ok("vm1", &["node", "demote", "vm2"]);
    wait_until("vm2 out of the raft voters", T, || {
        (raft_voters(&s, "vm1") == Some(2)).then_some(())
    })
    .unwrap();
    s.ok("vm1", &["node", "promote", "vm2"]);
    wait_managers_converge(&s, &all, "promoted after raft removed it");

    // Demoted and promoted while it is down.
    s.lab.stop("vm2").unwrap();
    s.ok("vm1", &["node", "demote", "vm2"]);
    wait_until("vm2 out of the raft voters", T, || {
        (raft_voters(&s, "vm1") == Some(2)).then_some(())
    })
    .unwrap();
    s.ok("vm1", &["node", "promote", "vm2"]);
    s.lab.start("vm2").unwrap();
    wait_managers_converge(&s, &all, "promoted while down");

    // Promoted right after the demotion, before Raft may have removed it.
    s.ok("vm1", &["node", "demote", "vm2"]);
    s.ok("vm1", &["node", "promote", "vm2"]);
    wait_managers_converge(&s, &all, "promoted at once");

    // The leader itself, demoted and promoted again from another manager.
    let leader = s.wait_leader("vm2", T);
    let other = all.iter().find(|m| **m != leader).unwrap();
    s.ok(other, &["node", "demote", &leader]);
    wait_until("the old leader promoted again", T, || {
        s.shoal(other, &["node", "promote", &leader])
            .status
            .success()
            .then_some(())
    })
    .unwrap_or_else(|e| panic!("{e:#}\n{}", s.log_tails()));
    wait_managers_converge(&s, &all, "the leader promoted again");

    // vm2 counts: with another manager gone, vm2 and the third are a quorum and take writes.
    let leader = s.wait_leader("vm2", T);
    let gone = if leader == "vm2" {
        "vm1"
    } else {
        leader.as_str()
    };
    s.lab.stop(gone).unwrap();
    wait_until("a write without one manager", T, || {
        s.shoal("vm2", &["node", "update", "--label-add", "after=1", "vm2"])
            .status
            .success()
            .then_some(())
    })
    .unwrap_or_else(|e| panic!("{e:#}\n{}", s.log_tails()));
}

/// A worker promoted and demoted again quickly, before it takes up the manager role or
/// just as Raft counts it, ends a worker: Ready with no manager status on every manager,
/// refused manager commands, and out of Raft (the managers count only each other as voters).
#[test]
fn promote_then_demote_quickly_ends_a_worker() {
    let s = Swarm::lab("mirror", 3);
    s.form(&[("vm2", "manager"), ("vm3", "worker")]);
    let managers = ["vm1", "vm2"];
    for round in 0..4 {
        s.ok("vm1", &["node", "promote", "vm3"]);
        if round % 2 == 1 {
            wait_until(&format!("round {round}: vm3 a raft voter"), T, || {
                (raft_voters(&s, "vm1") == Some(3)).then_some(())
            })
            .unwrap_or_else(|e| panic!("{e:#}\n{}", s.log_tails()));
        }
        s.ok("vm1", &["node", "demote", "vm3"]);
        wait_managers_converge(&s, &managers, &format!("round {round}"));
        wait_until(&format!("round {round}: vm3 a Ready worker"), T, || {
            managers
                .iter()
                .all(|m| {
                    s.nodes(m).is_some_and(|rows| {
                        rows.iter()
                            .any(|r| r.0 == "vm3" && r.1 == "Ready" && r.3.is_empty())
                    })
                })
                .then_some(())
        })
        .unwrap_or_else(|e| panic!("{e:#}\n{}", s.log_tails()));
        wait_until(
            &format!("round {round}: vm3 refusing manager commands"),
            T,
            || {
                let err =
                    String::from_utf8_lossy(&s.shoal("vm3", &["node", "ls"]).stderr).to_string();
                err.contains(WORKER_REFUSED).then_some(())
            },
        )
        .unwrap_or_else(|e| panic!("{e:#}\n{}", s.log_tails()));
    }
}

/// A node that loses power at any moment of `swarm init` starts again and is usable: either
/// outside any swarm (`swarm init` works) or the manager it was becoming (`node ls` works),
/// never a daemon that refuses to start ("raft.redb: invalid data" on a zero-filled store)
/// or a manager without state that has no leader for ever. The kill comes as each step of
/// the init shows on disk (certificates, the store, node.json), and after a few delays; the
/// outcome is checked whichever step it actually hit.
#[test]
fn killed_during_swarm_init_starts_again_usable() {
    use std::process::Stdio;

    let s = Swarm::lab("kinit", 1);
    let addr = s.addr("vm1");
    let root = s.lab.data_root("vm1");
    let init = ["swarm", "init", "--advertise-addr", addr.as_str()];
    let init_argv = [&[SHOAL][..], &init[..]].concat();
    let on_disk = |name: &'static str| {
        let path = root.join(name);
        move || path.exists()
    };
    type Moment = (&'static str, Box<dyn Fn() -> bool>);
    let mut moments: Vec<Moment> = vec![
        ("certificates written", Box::new(on_disk("ca.pem"))),
        ("store being made", Box::new(on_disk("raft.redb.creating"))),
        ("store in place", Box::new(on_disk("raft.redb"))),
        ("node.json written", Box::new(on_disk("node.json"))),
    ];
    for ms in [0u64, 20, 50, 100] {
        let since = Instant::now();
        moments.push((
            "a delay",
            Box::new(move || since.elapsed() >= Duration::from_millis(ms)),
        ));
    }
    for (round, (moment, reached)) in moments.iter().enumerate() {
        let mut cli = s
            .lab
            .command("vm1", &init_argv)
            .unwrap()
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Poll tightly: the steps are milliseconds apart. An init that finished first is a
        // round like any other.
        let deadline = Instant::now() + T;
        while !reached() && cli.try_wait().unwrap().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_micros(200));
        }
        s.lab.stop("vm1").unwrap();
        let _ = cli.wait();
        s.lab
            .start("vm1")
            .unwrap_or_else(|e| panic!("round {round} ({moment}): vm1 does not start: {e:#}"));
        // Usable: the manager it became, or a node outside any swarm that can make one.
        let outcome = wait_until("vm1 usable after the kill", T, || {
            if s.shoal("vm1", &["node", "ls"]).status.success() {
                return Some("manager");
            }
            s.shoal("vm1", &init)
                .status
                .success()
                .then_some("initialized again")
        })
        .unwrap_or_else(|e| {
            panic!(
                "round {round} ({moment}): {e}; node ls: {}; init: {}\n{}",
                String::from_utf8_lossy(&s.shoal("vm1", &["node", "ls"]).stderr),
                String::from_utf8_lossy(&s.shoal("vm1", &init).stderr),
                s.log_tail("vm1")
            )
        });
        eprintln!("round {round}, killed at {moment}: {outcome}");
        let rows = s.nodes("vm1").expect("node ls");
        assert_eq!(rows.len(), 1, "round {round}: {rows:?}");
        assert_eq!(rows[0].3, "Leader", "round {round}: {rows:?}");
        s.ok("vm1", &["swarm", "leave", "--force"]);
    }
}

/// A leader demoted from itself, right after a second manager joined (before its next
/// 5 s heartbeat could tell it of that manager), hands leadership to the other manager and
/// becomes a Ready worker, refused manager commands with docker's message — not a node
/// stuck without a leader, as it was when it knew no manager but itself.
#[test]
fn leader_demoted_from_itself_becomes_a_worker() {
    let s = Swarm::lab("selfdem", 2);
    let addr = s.addr("vm1");
    s.ok(
        "vm1",
        &[
            "swarm",
            "init",
            "--advertise-addr",
            &addr,
            "--dispatcher-heartbeat",
            "5s",
        ],
    );
    s.join("vm2", "vm1", "manager");
    s.wait_node("vm1", "vm2", "Ready", "Reachable", T);
    let out = s.ok("vm1", &["node", "demote", "vm1"]);
    assert_eq!(out.trim(), "Manager vm1 demoted in the swarm.");
    let wait = Duration::from_secs(40);
    wait_until("vm2 the leader and vm1 a Ready worker on vm2", wait, || {
        let rows = s.nodes("vm2")?;
        let vm2 = rows.iter().any(|r| r.0 == "vm2" && r.3 == "Leader");
        let vm1 = rows
            .iter()
            .any(|r| r.0 == "vm1" && r.1 == "Ready" && r.3.is_empty());
        (vm2 && vm1).then_some(())
    })
    .unwrap_or_else(|e| panic!("{e:#}\n{:?}\n{}", s.nodes("vm2"), s.log_tails()));
    wait_until("vm1 refusing manager commands", wait, || {
        let err = String::from_utf8_lossy(&s.shoal("vm1", &["node", "ls"]).stderr).to_string();
        (err.trim() == format!("Error response from daemon: {WORKER_REFUSED}")).then_some(())
    })
    .unwrap_or_else(|e| {
        let out = s.shoal("vm1", &["node", "ls"]);
        panic!(
            "{e:#}\n{}\n{}",
            String::from_utf8_lossy(&out.stderr),
            s.log_tails()
        )
    });
    // It stays one: still Ready, a worker, on vm2 a few heartbeats on.
    s.wait_node("vm2", "vm1", "Ready", "", T);
}

/// `shoal info` reports the node's part in the swarm as `docker info` does: inactive
/// before `swarm init`, active after; the manager can serve the cluster and counts its
/// nodes and managers, the worker cannot and names its managers; the node IDs are the
/// ones the managers list. A manager whose Raft store is gone is in error, with the
/// reason, until it leaves.
#[test]
fn info_reports_the_node_s_part_in_the_swarm() {
    let s = Swarm::lab("info", 2);
    let info = |node: &str, format: &str| -> String {
        let out = s.ok(node, &["info", "--format", format]);
        out.strip_suffix('\n').unwrap_or(&out).to_string()
    };
    assert_eq!(info("vm1", "{{.Swarm.LocalNodeState}}"), "inactive");
    assert_eq!(
        info("vm1", "{{json .Swarm}}"),
        r#"{"NodeID":"","NodeAddr":"","LocalNodeState":"inactive","ControlAvailable":false,"Error":"","RemoteManagers":null}"#
    );
    let text = s.ok("vm1", &["system", "info"]);
    assert!(
        text.contains(
            "\nServer:\n Containers: 0\n  Running: 0\n  Paused: 0\n  Stopped: 0\n Images: 0\n Server Version: "
        )
            && text.contains("\n Swarm: inactive\n Kernel Version: "),
        "{text}"
    );
    assert!(text.contains("\n Name: vm1\n"), "{text}");

    s.form(&[("vm2", "worker")]);
    let (vm1, vm2) = (s.addr("vm1"), s.addr("vm2"));
    let id = |of: &str| {
        s.ok("vm1", &["node", "inspect", of, "--format", "{{.ID}}"])
            .trim()
            .to_string()
    };
    let (vm1_id, vm2_id) = (id("self"), id("vm2"));
    let state = "{{.Swarm.LocalNodeState}} {{.Swarm.ControlAvailable}} {{.Swarm.NodeID}}";
    assert_eq!(info("vm1", state), format!("active true {vm1_id}"));
    assert_eq!(info("vm2", state), format!("active false {vm2_id}"));
    assert_eq!(info("vm1", "{{.Swarm.Nodes}} {{.Swarm.Managers}}"), "2 1");
    let swarm = info("vm1", "{{json .Swarm}}");
    assert!(
        swarm.starts_with(&format!(
            r#"{{"NodeID":"{vm1_id}","NodeAddr":"{vm1}","LocalNodeState":"active","ControlAvailable":true,"Error":"","RemoteManagers":[{{"NodeID":"{vm1_id}","Addr":"{vm1}:2377"}}],"Nodes":2,"Managers":1,"Cluster":{{"ID":""#
        )),
        "{swarm}"
    );
    assert_eq!(
        info("vm1", "{{.Swarm.Cluster.Spec.EncryptionConfig.AutoLockManagers}} {{.Swarm.Cluster.DataPathPort}}"),
        "false 4789"
    );
    assert_eq!(
        info("vm2", "{{json .Swarm}}"),
        format!(
            r#"{{"NodeID":"{vm2_id}","NodeAddr":"{vm2}","LocalNodeState":"active","ControlAvailable":false,"Error":"","RemoteManagers":[{{"Addr":"{vm1}:2377"}}]}}"#
        )
    );
    let text = s.ok("vm1", &["info"]);
    assert!(
        text.contains(&format!(
            " Swarm: active\n  NodeID: {vm1_id}\n  Is Manager: true\n  ClusterID: "
        )) && text.contains("\n  Managers: 1\n  Nodes: 2\n")
            && text.contains("\n   Heartbeat Period: 1 second\n")
            && text.contains("\n  Autolock Managers: false\n")
            && text.contains(&format!(
                "\n  Node Address: {vm1}\n  Manager Addresses:\n   {vm1}:2377\n Kernel Version: "
            )),
        "{text}"
    );
    // Each node counts its own tasks as docker counts its containers.
    s.ok(
        "vm1",
        &[
            "service",
            "create",
            "-d",
            "--name",
            "idle",
            "--constraint",
            "node.hostname == vm2",
            "busybox",
            "sleep",
            "1000",
        ],
    );
    s.wait_running("idle", 1);
    let counts = "{{.Containers}} {{.ContainersRunning}} {{.ContainersStopped}} {{.Images}}";
    assert_eq!(info("vm2", counts), "1 1 0 0");
    assert_eq!(info("vm1", counts), "0 0 0 0");
    let text = s.ok("vm2", &["info"]);
    assert!(
        text.contains("\n Containers: 1\n  Running: 1\n  Paused: 0\n  Stopped: 0\n"),
        "{text}"
    );
    s.ok("vm1", &["service", "rm", "idle"]);
    wait_until("vm2 runs no task", Duration::from_secs(20), || {
        info("vm2", "{{.ContainersRunning}}").eq("0").then_some(())
    })
    .unwrap();

    let text = s.ok("vm2", &["info"]);
    assert!(
        text.contains(&format!(
            " Swarm: active\n  NodeID: {vm2_id}\n  Is Manager: false\n  Node Address: {vm2}\n  Manager Addresses:\n   {vm1}:2377\n Kernel Version: "
        )),
        "{text}"
    );

    // The manager's Raft store is lost: the node is in error and says why.
    s.lab.stop("vm1").unwrap();
    std::fs::remove_file(s.lab.data_root("vm1").join("raft.redb")).unwrap();
    s.lab.start("vm1").unwrap();
    assert_eq!(info("vm1", state), format!("error false {vm1_id}"));
    let error = info("vm1", "{{.Swarm.Error}}");
    assert!(error.contains("cannot be used"), "{error}");
    let text = s.ok("vm1", &["info"]);
    assert!(
        text.contains(&format!(
            " Swarm: error\n  NodeID: {vm1_id}\n  Error: {error}\n  Is Manager: false\n  Node Address: {vm1}\n"
        )),
        "{text}"
    );
    s.ok("vm1", &["swarm", "leave", "--force"]);
    assert_eq!(info("vm1", "{{.Swarm.LocalNodeState}}"), "inactive");
}
