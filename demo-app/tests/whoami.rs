//! End-to-end tests: run the shoal-whoami binary and talk HTTP/UDP to it over loopback.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const TIMEOUT: Duration = Duration::from_secs(5);

/// A running server; killed on drop if a test fails before shutting it down.
struct Server {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the binary on 127.0.0.1 port 0 and learns the port from its startup line.
fn start(extra: &[&str], env: &[(&str, &str)]) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_shoal-whoami"))
        .args(["--listen", "127.0.0.1:0", "--threads", "2"])
        .args(extra)
        .env_remove("SHOAL_TASK_NAME")
        .env_remove("SHOAL_NODE_HOSTNAME")
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn shoal-whoami");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let line = rx.recv_timeout(TIMEOUT).expect("startup line within 5 s");
    let addr = line
        .split_whitespace()
        .find_map(|w| w.parse::<SocketAddr>().ok())
        .unwrap_or_else(|| panic!("no address in startup line {line:?}"));
    assert!(line.contains("listening on"), "{line}");
    Server { child, addr }
}

fn sigterm(server: &Server) {
    let ok = Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .expect("run kill")
        .success();
    assert!(ok, "kill -TERM failed");
}

fn wait_exit(server: &mut Server, limit: Duration) -> Option<ExitStatus> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if let Some(st) = server.child.try_wait().unwrap() {
            return Some(st);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    None
}

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect_timeout(&addr, TIMEOUT).expect("connect");
    s.set_read_timeout(Some(TIMEOUT)).unwrap();
    s.set_write_timeout(Some(TIMEOUT)).unwrap();
    s
}

/// Reads one Content-Length-delimited response; returns (status, headers, body).
fn read_response(r: &mut BufReader<TcpStream>) -> (u16, String, Vec<u8>) {
    let mut head = String::new();
    loop {
        let mut line = String::new();
        assert!(
            r.read_line(&mut line).expect("read head") > 0,
            "EOF in head"
        );
        if line == "\r\n" {
            break;
        }
        head.push_str(&line);
    }
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    let len: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().unwrap())
        })
        .expect("content-length");
    let mut body = vec![0; len];
    r.read_exact(&mut body).expect("read body");
    (status, head, body)
}

fn get(addr: SocketAddr, path: &str) -> (u16, String, Vec<u8>) {
    let mut s = connect(addr);
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: test\r\nUser-Agent: whoami-test\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    read_response(&mut BufReader::new(s))
}

fn field<'a>(body: &'a str, key: &str) -> &'a str {
    body.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(": "))
        .unwrap_or_else(|| panic!("no {key} line in {body:?}"))
}

fn our_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .expect("read hostname")
        .trim()
        .to_owned()
}

#[test]
fn whoami_page_health_version_payload() {
    let server = start(
        &["--version", "1.7", "--name", "demo"],
        &[
            ("SHOAL_TASK_NAME", "webapp_web.1"),
            ("SHOAL_NODE_HOSTNAME", "vm2"),
        ],
    );
    let (status, head, body) = get(server.addr, "/");
    assert_eq!(status, 200);
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/plain"),
        "{head}"
    );
    let body = String::from_utf8(body).unwrap();
    assert!(body.starts_with("Served by host: "), "{body}");
    assert_eq!(field(&body, "Served by host"), our_hostname());
    assert_eq!(field(&body, "Task"), "webapp_web.1");
    assert_eq!(field(&body, "Node"), "vm2");
    assert_eq!(field(&body, "Version"), "1.7");
    assert_eq!(field(&body, "Name"), "demo");
    assert!(field(&body, "Client").starts_with("127.0.0.1:"), "{body}");
    assert!(body.contains("\n\nGET / HTTP/1.1\n"), "{body}");
    assert_eq!(field(&body, "Host"), "test");
    assert_eq!(field(&body, "User-Agent"), "whoami-test");

    for path in ["/?size=1000", "/data?size=1000"] {
        let (status, _, body) = get(server.addr, path);
        assert_eq!(status, 200);
        assert!(body.len() >= 1000, "{path}: {} bytes", body.len());
    }
    let (_, _, big) = get(server.addr, "/?size=200000");
    assert!(big.len() >= 200_000);
    let (_, _, capped) = get(server.addr, "/?size=1G");
    assert!(capped.len() >= 64 << 20 && capped.len() < (64 << 20) + 4096);

    let (status, _, body) = get(server.addr, "/health");
    assert_eq!((status, body.as_slice()), (200, &b"ok"[..]));
    assert_eq!(get(server.addr, "/version").2, b"1.7");
}

#[test]
fn defaults_and_keep_alive() {
    let server = start(&[], &[]);
    let s = connect(server.addr);
    let mut w = s.try_clone().unwrap();
    let mut r = BufReader::new(s);
    for _ in 0..3 {
        w.write_all(b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n")
            .unwrap();
        assert_eq!(read_response(&mut r).2, b"ok");
    }
    // Pipelined requests on the same connection.
    w.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\nGET /version HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let body = String::from_utf8(read_response(&mut r).2).unwrap();
    assert_eq!(field(&body, "Task"), "-");
    assert_eq!(field(&body, "Node"), "-");
    assert_eq!(field(&body, "Version"), "1.0");
    assert!(!body.contains("Name: "));
    assert_eq!(read_response(&mut r).2, b"1.0");
}

#[test]
fn udp_echo() {
    let server = start(&["--udp"], &[]);
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut buf = [0u8; 1024];
    // UDP may drop; retry a few times within a bounded budget.
    let mut reply = None;
    for _ in 0..10 {
        sock.send_to(b"ping", server.addr).unwrap();
        if let Ok((n, from)) = sock.recv_from(&mut buf) {
            assert_eq!(from, server.addr);
            reply = Some(String::from_utf8(buf[..n].to_vec()).unwrap());
            break;
        }
    }
    let reply = reply.expect("UDP reply");
    let expected = format!(
        "Served by host: {}\nClient: {}\n",
        our_hostname(),
        sock.local_addr().unwrap()
    );
    assert_eq!(reply, expected);
}

#[test]
fn sigterm_exits_zero_quickly() {
    let mut server = start(&["--udp"], &[]);
    // An idle keep-alive connection must not hold up shutdown.
    let idle = connect(server.addr);
    let mut w = idle.try_clone().unwrap();
    let mut r = BufReader::new(idle);
    w.write_all(b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    assert_eq!(read_response(&mut r).2, b"ok");

    let t = Instant::now();
    sigterm(&server);
    let status = wait_exit(&mut server, Duration::from_secs(3)).expect("exit after SIGTERM");
    let took = t.elapsed();
    assert_eq!(status.code(), Some(0), "{status}");
    assert!(took < Duration::from_secs(1), "took {took:?}");
    // The idle connection was closed by the server.
    let mut rest = Vec::new();
    assert_eq!(r.read_to_end(&mut rest).unwrap_or(0), 0);
    // And nothing listens any more.
    assert!(TcpStream::connect_timeout(&server.addr, Duration::from_millis(500)).is_err());
}

#[test]
fn sigterm_finishes_in_flight_request() {
    let mut server = start(&[], &[]);
    // A 32 MiB response (more than socket buffers hold) the client reads only after SIGTERM: in flight during shutdown.
    let s = connect(server.addr);
    let mut w = s.try_clone().unwrap();
    w.write_all(b"GET /?size=32M HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let mut r = BufReader::new(s);
    std::thread::sleep(Duration::from_millis(100));
    sigterm(&server);
    let (status, head, body) = read_response(&mut r);
    assert_eq!(status, 200, "{head}");
    assert!(body.len() >= 32 << 20);
    let st = wait_exit(&mut server, Duration::from_secs(2)).expect("exit after SIGTERM");
    assert_eq!(st.code(), Some(0));
}
