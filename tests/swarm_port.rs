//! The swarm port's defences, over real sockets in a lab: connections over the per-IP cap
//! are closed at once, silent ones after the handshake timeout, idle authenticated ones
//! after the idle timeout (while the cluster keeps working), a huge frame from a peer
//! without a certificate is refused without the daemon's memory growing, and a large
//! task log comes through `service logs` whole; a node cannot join on a port a service
//! publishes; garbage on every port leaves the daemons working.

mod common;

use std::io::Read;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::*;
use shoal_control::peer::{self, PeerResponse};
use shoal_control::wire;
use shoal_dataplane::lab::CLIENT;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Whether the server closed `conn`: a read ends (EOF or reset) within `within`.
fn closed_within(conn: &mut TcpStream, within: Duration) -> bool {
    conn.set_read_timeout(Some(within)).unwrap();
    let mut buf = [0u8; 64];
    match conn.read(&mut buf) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => !matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
    }
}

/// Whether `conn` is still open right now (nothing to read, no EOF).
fn still_open(conn: &TcpStream) -> bool {
    conn.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 1];
    let open = matches!(conn.peek(&mut buf), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock);
    conn.set_nonblocking(false).unwrap();
    open
}

fn daemon_pid(s: &Swarm, node: &str) -> i32 {
    let path = s.lab.log_path(node).with_file_name("shoald.pid");
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .trim()
        .parse()
        .unwrap()
}

fn rss_kib(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("VmRSS")
}

#[test]
fn idle_and_excess_connections_are_closed_while_the_cluster_works() {
    const PER_IP: usize = 16;
    let s = Swarm::lab_with_daemon_args(
        "port",
        2,
        &[
            "--swarm-idle-timeout",
            "2s",
            "--swarm-handshake-timeout",
            "4s",
            "--swarm-max-connections-per-ip",
            "16",
        ],
    );
    s.form(&[("vm2", "manager")]);
    // vm2 forwards `node ls` to the leader on a pooled connection.
    assert_eq!(s.nodes("vm2").expect("node ls on vm2").len(), 2);
    let leader = format!("{}:2377", s.addr("vm1"));

    // From one address: the cap's worth of connections that say nothing, then one more.
    let (extra_closed_at_once, first_open_then, all_closed_later) =
        in_ns(&s.lab, CLIENT, move || {
            let mut held: Vec<TcpStream> = (0..PER_IP)
                .map(|_| TcpStream::connect(&leader).expect("connect"))
                .collect();
            let mut extra = TcpStream::connect(&leader).expect("connect");
            let extra_closed = closed_within(&mut extra, Duration::from_secs(3));
            // The extra one went because of the cap, not the handshake timeout: the
            // first is still open.
            let first_open = still_open(&held[0]);
            let all_closed = held
                .iter_mut()
                .all(|c| closed_within(c, Duration::from_secs(10)));
            (extra_closed, first_open, all_closed)
        });
    assert!(
        extra_closed_at_once,
        "a connection over the per-IP cap was not closed"
    );
    assert!(
        first_open_then,
        "connections under the cap were closed early"
    );
    assert!(
        all_closed_later,
        "connections that never finished the TLS handshake were not closed"
    );

    // An authenticated peer that sends nothing is closed after the idle timeout.
    let data = s.lab.data_root("vm2");
    let ca = std::fs::read_to_string(data.join("ca.pem")).unwrap();
    let id = shoal_control::daemon::files::DataRoot(data)
        .load_identity(None)
        .unwrap();
    let (key, cert) = (id.key_pem, id.cert_pem);
    let config = shoal_ca::tls::client_config(&ca, &cert, &key).unwrap();
    let leader = format!("{}:2377", s.addr("vm1"));
    let (idle_closed, after) = in_ns(&s.lab, "vm2", move || {
        runtime().block_on(async move {
            let mut conn = peer::connect(&leader, config).await.expect("mTLS connect");
            let started = Instant::now();
            let r = tokio::time::timeout(
                Duration::from_secs(15),
                wire::recv::<_, PeerResponse>(&mut conn),
            )
            .await;
            (matches!(r, Ok(Err(_))), started.elapsed())
        })
    });
    assert!(idle_closed, "an idle authenticated connection stayed open");
    assert!(
        after >= Duration::from_secs(1),
        "closed after {after:?}, before the idle timeout"
    );

    // vm2's pooled connection to the leader was idle as long: it reconnects.
    assert_eq!(s.nodes("vm2").expect("node ls on vm2").len(), 2);
    s.wait_node("vm1", "vm2", "Ready", "Reachable", Duration::from_secs(10));
    s.wait_node("vm2", "vm1", "Ready", "Leader", Duration::from_secs(10));
    let log = std::fs::read_to_string(s.lab.log_path("vm1")).unwrap();
    assert!(
        !log.contains("Too many open files"),
        "{}",
        s.log_tail("vm1")
    );
}

#[test]
fn a_huge_unauthenticated_frame_is_refused_without_memory() {
    let s = Swarm::lab("frame", 1);
    s.init("vm1");
    let token = s.token("vm1", "worker");
    let digest = shoal_ca::JoinToken::parse(&token).unwrap().ca_digest;
    let leader = format!("{}:2377", s.addr("vm1"));
    let pid = daemon_pid(&s, "vm1");
    let before = rss_kib(pid);

    // Three joiners (no client certificate) announce a 64 MiB - 1 frame and send 40 MB.
    let refused = in_ns(&s.lab, CLIENT, move || {
        runtime().block_on(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let config = shoal_ca::tls::join_client_config(&digest).unwrap();
            let mut conns = Vec::new();
            for _ in 0..3 {
                conns.push(peer::connect(&leader, config.clone()).await.expect("TLS"));
            }
            let mut refused = 0;
            let chunk = vec![b'['; 1 << 20];
            for conn in &mut conns {
                let tls = conn.get_mut();
                let mut sent = tls
                    .write_all(&((64u32 << 20) - 1).to_be_bytes())
                    .await
                    .is_ok();
                for _ in 0..40 {
                    if !sent {
                        break;
                    }
                    sent = matches!(
                        tokio::time::timeout(Duration::from_secs(5), tls.write_all(&chunk)).await,
                        Ok(Ok(()))
                    );
                }
                let mut buf = [0u8; 16];
                let closed = matches!(
                    tokio::time::timeout(Duration::from_secs(5), tls.read(&mut buf)).await,
                    Ok(Ok(0)) | Ok(Err(_))
                );
                if !sent || closed {
                    refused += 1;
                }
            }
            refused
        })
    });
    let after = rss_kib(pid);
    assert!(
        after < before + 16 * 1024,
        "shoald's RSS grew from {before} KiB to {after} KiB"
    );
    assert_eq!(refused, 3, "a huge unauthenticated frame was taken in");
    // The node still works, and a real join (which fits the small limit) too.
    assert_eq!(s.nodes("vm1").unwrap().len(), 1);
}

#[test]
fn service_logs_of_a_large_log() {
    let s = Swarm::lab("logs", 2);
    s.form(&[("vm2", "worker")]);
    // 200,000 lines of 100 bytes (20 MB) on the worker, then the task waits.
    let pad = "x".repeat(92);
    let script = format!("seq -w 1 200000 | sed 's/$/ {pad}/'; echo done; sleep 3600");
    s.ok(
        "vm1",
        &[
            "service",
            "create",
            "-d",
            "--name",
            "chatty",
            "--constraint",
            "node.role == worker",
            "busybox",
            "sh",
            "-c",
            &script,
        ],
    );
    s.wait_running("chatty", 1);
    wait_until("the task wrote its log", Duration::from_secs(60), || {
        let out = s.ok("vm1", &["service", "logs", "--tail", "1", "chatty"]);
        out.trim_end().ends_with("| done").then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", s.log_tails()));

    let out = s.shoal("vm1", &["service", "logs", "chatty"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 200_001, "{}", s.log_tail("vm1"));
    for (i, l) in lines[..200_000].iter().enumerate() {
        let (prefix, body) = l.split_once("    | ").expect("prefixed line");
        assert!(prefix.starts_with("chatty.1."), "{l}");
        assert_eq!(body, format!("{:06} {pad}", i + 1), "line {i}");
    }
    let tail = s.ok("vm1", &["service", "logs", "--tail", "3", "chatty"]);
    let tail: Vec<&str> = tail
        .lines()
        .map(|l| l.split_once("    | ").unwrap().1)
        .collect();
    assert_eq!(tail.len(), 3);
    assert!(
        tail[0].starts_with("199999 ") && tail[2] == "done",
        "{tail:?}"
    );
}

/// A node cannot join with a swarm port (`--listen-addr`) that a service publishes: the
/// load balancer would serve the service there, taking the node's own swarm traffic.
/// The joiner is told which port and which service, in one line, and is left outside
/// the swarm, free to join on another port; the service is untouched. A manager cannot
/// move onto such a port either (`swarm init --force-new-cluster --listen-addr`).
#[test]
fn a_node_cannot_join_on_a_published_port() {
    let s = Swarm::lab("joinport", 2);
    s.init("vm1");
    s.ok(
        "vm1",
        &[
            "service", "create", "-d", "--name", "web", "-p", "8080:80", "busybox", "sleep", "1000",
        ],
    );
    let id = s.ok("vm1", &["service", "inspect", "--format", "{{.ID}}", "web"]);
    let token = s.token("vm1", "worker");
    let remote = format!("{}:2377", s.addr("vm1"));
    let err = s.fails(
        "vm2",
        &[
            "swarm",
            "join",
            "--token",
            &token,
            "--listen-addr",
            "0.0.0.0:8080",
            &remote,
        ],
    );
    assert!(
        err.contains(&format!(
            "port '8080/tcp' is already in use by service 'web' ({}) as an ingress port, so it cannot be a node's swarm port; choose another --listen-addr port",
            id.trim()
        )),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    // Nothing half-joined: vm2 is outside any swarm, the swarm has one node.
    let err = s.fails("vm2", &["swarm", "leave"]);
    assert!(err.contains("This node is not part of a swarm"), "{err}");
    assert_eq!(s.nodes("vm1").expect("node ls").len(), 1);
    // Another port is fine; the service still publishes its port.
    let out = s.ok(
        "vm2",
        &[
            "swarm",
            "join",
            "--token",
            &token,
            "--listen-addr",
            "0.0.0.0:3377",
            &remote,
        ],
    );
    assert!(out.contains("joined a swarm as a worker"), "{out}");
    s.wait_node("vm1", "vm2", "Ready", "", Duration::from_secs(20));
    let ports = s.ok(
        "vm1",
        &[
            "service",
            "inspect",
            "--format",
            "{{range .Endpoint.Ports}}{{.PublishedPort}}{{end}}",
            "web",
        ],
    );
    assert_eq!(ports.trim(), "8080");

    // Nor can a manager move onto it when it forms a new cluster; it stays as it was.
    let err = s.fails(
        "vm1",
        &[
            "swarm",
            "init",
            "--force-new-cluster",
            "--advertise-addr",
            &s.addr("vm1"),
            "--listen-addr",
            "0.0.0.0:8080",
        ],
    );
    assert!(
        err.contains("port '8080/tcp' is already in use by service 'web'"),
        "{err}"
    );
    let rows = s.nodes("vm1").expect("node ls answers");
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert!(
        rows.iter().any(|r| r.0 == "vm1" && r.3 == "Leader"),
        "{rows:?}"
    );
}

/// A small xorshift64* generator: garbage that a failure's seed reproduces.
struct Junk(u64);

impl Junk {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// Garbage on every port a node listens on, from outside the swarm: random bytes and
/// broken frames on the swarm port (before and inside TLS), random datagrams on the
/// probe port and the data path port (also VXLAN headers of the swarm's own networks
/// around random frames), random frames on the local API socket, and random queries to
/// a task's embedded DNS. Afterwards the daemons are the same processes, their logs
/// have no panic, the mesh still answers on both nodes and the swarm still takes writes.
#[test]
fn garbage_on_every_port_leaves_the_swarm_working() {
    let s = Swarm::lab("junk", 2);
    s.form(&[("vm2", "worker")]);
    s.ok("vm1", &["network", "create", "-d", "overlay", "junknet"]);
    s.ok(
        "vm1",
        &[
            "service",
            "create",
            "-d",
            "--name",
            "web",
            "--replicas",
            "2",
            "--network",
            "junknet",
            "--publish",
            "8080:80",
            "demo",
            "shoal-whoami",
            "--listen",
            "0.0.0.0:80",
        ],
    );
    s.wait_running_on("web", &["vm1", "vm2"]);
    for node in ["vm1", "vm2"] {
        s.client_get_until(&format!("http://{}:8080/", s.addr(node)));
    }
    let pids = [daemon_pid(&s, "vm1"), daemon_pid(&s, "vm2")];
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    eprintln!("garbage seed {seed:#x}");
    let token = s.token("vm1", "worker");
    let digest = shoal_ca::JoinToken::parse(&token).unwrap().ca_digest;
    // The VNIs the swarm's networks use (from 4096 up): datagrams with their
    // VXLAN headers reach the overlay's decapsulation, not only the UDP socket.
    let vnis: Vec<u32> = (4096..4100).collect();
    let targets: Vec<String> = ["vm1", "vm2"].iter().map(|n| s.addr(n)).collect();

    let sent = in_ns(&s.lab, CLIENT, move || {
        use std::io::Write;
        let mut junk = Junk(seed);
        let mut sent = 0usize;
        let udp = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
        for addr in &targets {
            // Probe port and data path port: random datagrams of every size.
            for port in [7946u16, 4789] {
                for _ in 0..500 {
                    let n = junk.below(1473);
                    let bytes = junk.bytes(n);
                    if udp.send_to(&bytes, (addr.as_str(), port)).is_ok() {
                        sent += 1;
                    }
                }
            }
            // VXLAN (flags 0x08, a VNI of the swarm's) around random inner frames,
            // some with an IPv4 ethertype and a broken header behind it.
            for i in 0..1000 {
                let mut d = vec![0x08, 0, 0, 0];
                let vni = vnis[i % vnis.len()];
                d.extend_from_slice(&(vni << 8).to_be_bytes());
                let n = junk.below(1400);
                let mut inner = junk.bytes(n);
                if i % 2 == 0 && inner.len() >= 14 {
                    inner[12] = 0x08;
                    inner[13] = 0x00;
                    if inner.len() > 14 {
                        inner[14] = 0x40 | (junk.next() as u8 & 0x0f);
                    }
                }
                d.extend_from_slice(&inner);
                if udp.send_to(&d, (addr.as_str(), 4789)).is_ok() {
                    sent += 1;
                }
            }
            // The swarm port: random bytes where a TLS handshake should be.
            for _ in 0..20 {
                if let Ok(mut c) = TcpStream::connect((addr.as_str(), 2377)) {
                    let n = 1 + junk.below(20_000);
                    let _ = c.write_all(&junk.bytes(n));
                    sent += 1;
                }
            }
        }
        // Inside TLS (a joiner's handshake, no certificate): frames of random bytes,
        // then valid JSON of the wrong shape.
        let leader = format!("{}:2377", targets[0]);
        let bodies: Vec<Vec<u8>> = (0..20)
            .map(|i| match i % 4 {
                0 => br#"{"Join":{"token":7}}"#.to_vec(),
                1 => b"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[".to_vec(),
                _ => {
                    let n = junk.below(4000);
                    junk.bytes(n)
                }
            })
            .collect();
        sent + runtime().block_on(async move {
            use tokio::io::AsyncWriteExt;
            let config = shoal_ca::tls::join_client_config(&digest).unwrap();
            let mut sent = 0;
            for body in bodies {
                let Ok(mut conn) = peer::connect(&leader, config.clone()).await else {
                    continue;
                };
                let tls = conn.get_mut();
                let _ = tls.write_all(&(body.len() as u32).to_be_bytes()).await;
                let _ = tls.write_all(&body).await;
                let _ = tls.flush().await;
                sent += 1;
            }
            sent
        })
    });
    assert!(sent > 3000, "only {sent} pieces of garbage went out");

    // The local API socket (root's): random frames and a length past the limit.
    {
        use std::io::Write;
        let mut junk = Junk(seed.rotate_left(17) | 1);
        for node in ["vm1", "vm2"] {
            for i in 0..30 {
                let mut c = std::os::unix::net::UnixStream::connect(s.lab.socket(node))
                    .expect("connect to the API socket");
                let body = if i == 0 {
                    let _ = c.write_all(&u32::MAX.to_be_bytes());
                    Vec::new()
                } else {
                    let n = junk.below(3000);
                    junk.bytes(n)
                };
                let _ = c.write_all(&(body.len() as u32).to_be_bytes());
                let _ = c.write_all(&body);
            }
        }
    }

    // A task's embedded DNS: random datagrams and a random TCP stream.
    let task = s
        .ok(
            "vm1",
            &["service", "ps", "-q", "-f", "desired-state=running", "web"],
        )
        .lines()
        .next()
        .expect("a task of web")
        .to_string();
    s.ok(
        "vm1",
        &[
            "exec",
            &task,
            "bash",
            "-c",
            "for i in $(seq 300); do head -c $((RANDOM % 700)) /dev/urandom > /dev/udp/127.0.0.11/53; done; \
             head -c 5000 /dev/urandom > /dev/tcp/127.0.0.11/53 || true",
        ],
    );

    // Still the same daemons, nothing panicked, and everything still works.
    assert_eq!(
        [daemon_pid(&s, "vm1"), daemon_pid(&s, "vm2")],
        pids,
        "a daemon was restarted"
    );
    for (node, pid) in ["vm1", "vm2"].iter().zip(pids) {
        assert!(
            std::path::Path::new(&format!("/proc/{pid}")).exists(),
            "shoald on {node} died\n{}",
            s.log_tail(node)
        );
        let log = std::fs::read_to_string(s.lab.log_path(node)).unwrap_or_default();
        assert!(
            !log.contains("panicked"),
            "shoald on {node} panicked:\n{log}"
        );
    }
    for node in ["vm1", "vm2"] {
        let body = s.client_get_until(&format!("http://{}:8080/", s.addr(node)));
        assert!(field(&body, "Task").is_some(), "{body}");
    }
    let out = s.ok(
        "vm1",
        &[
            "exec",
            &task,
            "dig",
            "+short",
            "+tries=1",
            "+time=2",
            "@127.0.0.11",
            "tasks.web",
        ],
    );
    assert_eq!(out.lines().count(), 2, "tasks.web: {out}");
    s.ok("vm1", &["service", "scale", "-d", "web=3"]);
    s.wait_running("web", 3);
    assert_eq!(s.nodes("vm1").expect("node ls").len(), 2);
}
