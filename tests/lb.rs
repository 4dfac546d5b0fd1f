//! The eBPF load balancer in real labs: the routing mesh from the lab's client
//! namespace through nodes with and without a task, the client's address seen
//! by the backend, VIPs between services, and failover while requests flow:
//! rolling update, drain, a node's power loss, a connection outliving its
//! backend's removal.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::*;

const CLIENT: &str = "client";

/// A 3-node swarm (vm1 manager, vm2 and vm3 workers).
fn swarm(prefix: &str) -> Swarm {
    let s = Swarm::lab(prefix, 3);
    s.form(&[("vm2", "worker"), ("vm3", "worker")]);
    s
}

/// Waits until `svc` has `n` running tasks.
fn wait_running(s: &Swarm, svc: &str, n: usize) {
    wait_until(
        &format!("{n} running tasks of {svc}"),
        Duration::from_secs(30),
        || {
            let out = s.ok(
                "vm1",
                &[
                    "service",
                    "ps",
                    "-f",
                    "desired-state=running",
                    "--format",
                    "{{.CurrentState}}",
                    svc,
                ],
            );
            (out.lines().filter(|l| l.starts_with("Running")).count() == n).then_some(())
        },
    )
    .unwrap_or_else(|e| panic!("{e}\n{}", s.log_tail("vm1")));
}

/// One HTTP request from the client namespace; the body on success.
fn curl(s: &Swarm, url: &str) -> Option<String> {
    let out = s
        .lab
        .exec(CLIENT, &["curl", "-sS", "-m", "2", url])
        .expect("curl");
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

fn field<'a>(body: &'a str, name: &str) -> Option<&'a str> {
    body.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(": "))
}

/// Requests `url` from the client, one new connection each, until `stop` is set
/// (bounded: at most 3,000 requests or 120 s); returns (when it was sent, the
/// node of the task that answered) per request, None for a failed one.
fn request_loop(s: &Swarm, url: &str, stop: &AtomicBool) -> Vec<(Instant, Option<String>)> {
    let mut out = Vec::new();
    let started = Instant::now();
    while !stop.load(Ordering::SeqCst)
        && out.len() < 3000
        && started.elapsed() < Duration::from_secs(120)
    {
        let sent = Instant::now();
        let body = curl(s, url);
        out.push((
            sent,
            body.and_then(|b| field(&b, "Node").map(str::to_string)),
        ));
    }
    out
}

/// Runs `during` while a request loop (see [`request_loop`]) goes on, then
/// stops the loop; returns what `during` returned and the samples.
fn with_requests<T: Send>(
    s: &Swarm,
    url: &str,
    during: impl FnOnce() -> T + Send,
) -> (T, Vec<(Instant, Option<String>)>) {
    let stop = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let looper = scope.spawn(|| request_loop(s, url, &stop));
        let value = during();
        stop.store(true, Ordering::SeqCst);
        (value, looper.join().unwrap())
    })
}

fn failures(samples: &[(Instant, Option<String>)]) -> usize {
    samples.iter().filter(|(_, t)| t.is_none()).count()
}

fn web(s: &Swarm, replicas: &str, publish: &str, extra: &[&str]) {
    let mut args = vec![
        "service",
        "create",
        "-d",
        "--name",
        "web",
        "--replicas",
        replicas,
        "--publish",
        publish,
        "--constraint",
        "node.hostname != vm1",
    ];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["demo", "shoal-whoami", "--listen", "0.0.0.0:80"]);
    s.ok("vm1", &args);
}

#[test]
fn mesh_answers_on_every_node_with_the_clients_address() {
    let s = swarm("lbmesh");
    web(
        &s,
        "1",
        "8080:80",
        &["--constraint", "node.hostname == vm2"],
    );
    wait_running(&s, "web", 1);
    // Every node answers, also vm1 and vm3 which run no task of the service.
    for node in ["vm1", "vm2", "vm3"] {
        let url = format!("http://{}:8080/", s.addr(node));
        let body = wait_until(&format!("{url} answers"), Duration::from_secs(10), || {
            curl(&s, &url)
        })
        .unwrap_or_else(|e| panic!("{e}\n{}", s.log_tail(node)));
        assert_eq!(field(&body, "Task"), Some("web.1"), "{body}");
        assert_eq!(field(&body, "Node"), Some("vm2"), "{body}");
        // The backend sees the client namespace's own address (moby#25526).
        let client = field(&body, "Client").expect("client line");
        assert!(
            client.starts_with("10.77.0.2:"),
            "backend saw {client}, not the client 10.77.0.2"
        );
    }
    // An unpublished port is not answered by the mesh.
    assert!(curl(&s, &format!("http://{}:8081/", s.addr("vm1"))).is_none());

    // From a node itself, with and without the task: its loopback address, the
    // name localhost and its own address. The backend sees the node's address
    // (a loopback client is SNATed to it: a backend cannot answer 127.0.0.1).
    for node in ["vm1", "vm2"] {
        let me = s.addr(node);
        for host in ["127.0.0.1", "localhost", me.as_str()] {
            let url = format!("http://{host}:8080/");
            let out = s
                .lab
                .exec(node, &["curl", "-sS", "-m", "2", &url])
                .expect("curl");
            let body = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success(),
                "{node}: {url}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert_eq!(field(&body, "Node"), Some("vm2"), "{node}: {url}: {body}");
            let client = field(&body, "Client").expect("client line");
            assert!(
                client.starts_with(&format!("{me}:")),
                "{node}: {url}: backend saw {client}, not {me}"
            );
        }
    }
}

#[test]
fn rolling_update_and_drain_lose_no_request() {
    let s = swarm("lbupd");
    web(
        &s,
        "2",
        "8080:80",
        &["--update-parallelism", "1", "--update-delay", "1s"],
    );
    wait_running(&s, "web", 2);
    let url = format!("http://{}:8080/", s.addr("vm1"));
    wait_until("the mesh answers", Duration::from_secs(10), || {
        curl(&s, &url)
    })
    .unwrap();

    let (_, samples) = with_requests(&s, &url, || {
        s.ok("vm1", &["service", "update", "--env-add", "V=2", "web"]);
    });
    assert!(
        samples.len() > 20,
        "only {} requests during the update",
        samples.len()
    );
    assert_eq!(
        failures(&samples),
        0,
        "requests failed during the rolling update ({} sent)",
        samples.len()
    );

    let (_, samples) = with_requests(&s, &url, || {
        s.ok("vm1", &["node", "update", "--availability", "drain", "vm2"]);
        wait_until("web all on vm3", Duration::from_secs(30), || {
            let out = s.ok(
                "vm1",
                &[
                    "service",
                    "ps",
                    "-f",
                    "desired-state=running",
                    "--format",
                    "{{.Node}} {{.CurrentState}}",
                    "web",
                ],
            );
            (out.lines().count() == 2 && out.lines().all(|l| l.starts_with("vm3 Running")))
                .then_some(())
        })
        .unwrap();
        // A while on the new placement too.
        let until = Instant::now() + Duration::from_secs(2);
        while Instant::now() < until {
            std::thread::sleep(Duration::from_millis(50));
        }
    });
    assert!(
        samples.len() > 20,
        "only {} requests during the drain",
        samples.len()
    );
    assert_eq!(
        failures(&samples),
        0,
        "requests failed during the drain ({} sent)",
        samples.len()
    );
}

#[test]
fn dead_node_costs_under_a_second_of_failures() {
    let s = swarm("lbdead");
    web(
        &s,
        "2",
        "8080:80",
        &["--constraint", "node.hostname != vm1"],
    );
    wait_running(&s, "web", 2);
    let url = format!("http://{}:8080/", s.addr("vm1"));
    wait_until("the mesh answers", Duration::from_secs(10), || {
        curl(&s, &url)
    })
    .unwrap();

    let (killed_at, samples) = with_requests(&s, &url, || {
        // Let requests flow to both backends first.
        std::thread::sleep(Duration::from_millis(1500));
        let killed_at = Instant::now();
        s.lab.stop("vm2").expect("power off vm2");
        // Bounded: 4 s after the loss, well before the manager's 15 s node-down grace.
        while killed_at.elapsed() < Duration::from_secs(4) {
            std::thread::sleep(Duration::from_millis(50));
        }
        killed_at
    });
    let after: Vec<_> = samples.iter().filter(|(t, _)| *t >= killed_at).collect();
    assert!(
        after.len() > 10,
        "only {} requests after the loss",
        after.len()
    );
    let failed: Vec<Duration> = after
        .iter()
        .filter(|(_, b)| b.is_none())
        .map(|(t, _)| t.duration_since(killed_at))
        .collect();
    eprintln!(
        "{} of {} requests failed after the loss, sent at {failed:?}",
        failed.len(),
        after.len()
    );
    // Every request sent more than 1 s after the node died succeeded: the
    // other nodes stopped sending it new flows within a second.
    let late: Vec<_> = failed
        .iter()
        .filter(|d| **d > Duration::from_secs(1))
        .collect();
    assert!(
        late.is_empty(),
        "requests sent {late:?} after the loss failed"
    );
    let served: std::collections::BTreeSet<_> = after
        .iter()
        .filter(|(t, _)| t.duration_since(killed_at) > Duration::from_secs(1))
        .filter_map(|(_, b)| b.clone())
        .collect();
    let order: Vec<_> = after
        .iter()
        .map(|(t, b)| (t.duration_since(killed_at).as_millis(), b.clone()))
        .collect();
    assert_eq!(
        served.into_iter().collect::<Vec<_>>(),
        vec!["vm3".to_string()],
        "after the failover only vm3 serves: {order:?}"
    );
}

#[test]
fn vip_reaches_a_service_on_other_nodes() {
    let s = swarm("lbvip");
    s.ok("vm1", &["network", "create", "front"]);
    s.ok(
        "vm1",
        &[
            "service",
            "create",
            "-d",
            "--name",
            "api",
            "--replicas",
            "2",
            "--network",
            "front",
            "--constraint",
            "node.hostname != vm1",
            "demo",
            "shoal-whoami",
            "--listen",
            "0.0.0.0:80",
        ],
    );
    s.ok(
        "vm1",
        &[
            "service",
            "create",
            "-d",
            "--name",
            "cli",
            "--network",
            "front",
            "--constraint",
            "node.hostname == vm1",
            "demo",
            "sleep",
            "600",
        ],
    );
    wait_running(&s, "api", 2);
    wait_running(&s, "cli", 1);
    let vip = s.ok(
        "vm1",
        &[
            "service",
            "inspect",
            "--format",
            "{{range .Endpoint.VirtualIPs}}{{.Addr}}{{end}}",
            "api",
        ],
    );
    let vip = vip.trim().split('/').next().unwrap().to_string();
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..30 {
        let out = s.shoal(
            "vm1",
            &[
                "exec",
                "cli.1",
                "curl",
                "-sS",
                "-m",
                "2",
                "-w",
                "\nremote=%{remote_ip}\n",
                "http://api/",
            ],
        );
        let body = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "curl to the VIP failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            body.contains(&format!("remote={vip}")),
            "answered by another address than the VIP {vip}: {body}"
        );
        seen.insert(field(&body, "Task").unwrap_or("?").to_string());
        if seen.len() == 2 {
            break;
        }
    }
    assert_eq!(seen.len(), 2, "the VIP spread over {seen:?} only");
}

/// A TCP server that keeps its connections through SIGTERM (until the grace
/// period's SIGKILL) and answers each line with its task id.
const LINGERING_SERVER: &str = r#"
import os, signal, socket, threading
signal.signal(signal.SIGTERM, signal.SIG_IGN)
name = os.environ.get("SHOAL_TASK_ID", "?")
srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("0.0.0.0", 80)); srv.listen(64)
def serve(c):
    f = c.makefile("rwb")
    for line in f:
        f.write((name + "\n").encode()); f.flush()
while True:
    c, _ = srv.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
"#;

/// One connection, one line: prints the task id that answered.
const ONE_SHOT: &str = "import socket,sys; s=socket.create_connection((sys.argv[1],9000),timeout=3); s.sendall(b'x\\n'); print(s.makefile().readline().strip())";

const CLIENT_SCRIPT: &str = r#"
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5)
f = s.makefile("rwb")
for line in sys.stdin:
    f.write(b"hi\n"); f.flush()
    print(f.readline().decode().strip(), flush=True)
"#;

#[test]
fn open_connection_outlives_its_backends_removal() {
    let s = swarm("lbkeep");
    s.ok(
        "vm1",
        &[
            "service",
            "create",
            "-d",
            "--name",
            "echo",
            "--mode",
            "global",
            "--publish",
            "9000:80",
            "--stop-grace-period",
            "60s",
            "--constraint",
            "node.hostname != vm1",
            "demo",
            "python3",
            "-c",
            LINGERING_SERVER,
        ],
    );
    wait_running(&s, "echo", 2);
    let vm1 = s.addr("vm1");
    let one_shot = |s: &Swarm| {
        let out = s
            .lab
            .exec(CLIENT, &["python3", "-c", ONE_SHOT, &vm1])
            .unwrap();
        let served = String::from_utf8_lossy(&out.stdout).trim().to_string();
        (!served.is_empty()).then_some(served)
    };
    wait_until("the mesh answers on 9000", Duration::from_secs(15), || {
        one_shot(&s)
    })
    .unwrap();
    let mut client = s
        .lab
        .command(CLIENT, &["python3", "-c", CLIENT_SCRIPT, &vm1, "9000"])
        .unwrap()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = client.stdin.take().unwrap();
    let mut stdout = BufReader::new(client.stdout.take().unwrap());
    let mut ask = || {
        stdin.write_all(b"go\n").unwrap();
        stdin.flush().unwrap();
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        line.trim().to_string()
    };
    let first = wait_until(
        "the connection is answered",
        Duration::from_secs(10),
        || {
            let t = ask();
            (!t.is_empty()).then_some(t)
        },
    )
    .unwrap();
    // Drain the node of the task serving this connection: it is asked to stop
    // and ignores SIGTERM for its 60 s grace.
    let node = s.ok("vm1", &["inspect", "--format", "{{.NodeID}}", &first]);
    let node = node.trim().to_string();
    s.ok("vm1", &["node", "update", "--availability", "drain", &node]);
    wait_until(
        "the drained task is stopping",
        Duration::from_secs(30),
        || {
            let out = s.ok("vm1", &["inspect", "--format", "{{.DesiredState}}", &first]);
            (out.trim() == "shutdown").then_some(())
        },
    )
    .unwrap();
    // New connections go elsewhere...
    for _ in 0..10 {
        let served = one_shot(&s).unwrap_or_default();
        assert!(
            !served.is_empty() && served != first,
            "a new connection went to the stopping task {first}: {served:?}"
        );
    }
    // ...while the old one still reaches its task.
    for _ in 0..3 {
        assert_eq!(ask(), first, "the open connection moved or broke");
    }
    drop(stdin);
    let _ = client.wait();
}
