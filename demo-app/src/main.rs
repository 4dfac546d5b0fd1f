//! shoal-whoami: a tiny, fast whoami-style HTTP (and optional UDP echo) demo backend for Shoal services and load-balancer benchmarks.

use std::convert::Infallible;
use std::ffi::CStr;
use std::io::Write as _;
use std::net::{Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::process::ExitCode;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::body::{Body, Bytes, Frame, Incoming, SizeHint};
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, Version};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpSocket, UdpSocket};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{mpsc, watch};

const USAGE: &str = "\
usage: shoal-whoami [--listen ADDR] [--version V] [--name TEXT] [--threads N] [--udp]

  --listen ADDR   TCP (and UDP) address to serve on: IP:PORT, :PORT or PORT [0.0.0.0:80]
  --version V     version reported in responses and by GET /version [1.0]
  --name TEXT     optional name, reported as a 'Name:' line
  --threads N     tokio worker threads [number of CPUs]
  --udp           also answer UDP datagrams on the same address

GET /            whoami text: host, task, node, version, client, request line and headers
GET /?size=N     the same plus N payload bytes (also /data?size=N; K/M suffixes; max 64 MiB)
GET /health      200 \"ok\"
GET /version     the version string
Env: SHOAL_TASK_NAME, SHOAL_NODE_HOSTNAME (shown as Task/Node, \"-\" when unset).
SIGTERM/SIGINT: stop accepting, finish in-flight requests, exit 0 within 1 s.
";

/// Largest payload `?size=` may request.
const MAX_PAYLOAD: u64 = 64 << 20;
/// Payload is sent as slices of one static buffer: no allocation per request.
const CHUNK: usize = 64 * 1024;
static PAYLOAD: [u8; CHUNK] = payload_pattern();
/// In-flight requests get this long after SIGTERM before we exit anyway.
const DRAIN_GRACE: Duration = Duration::from_millis(800);

const fn payload_pattern() -> [u8; CHUNK] {
    let mut buf = [0u8; CHUNK];
    let mut i = 0;
    while i < CHUNK {
        buf[i] = if i % 64 == 63 {
            b'\n'
        } else {
            b'a' + (i % 26) as u8
        };
        i += 1;
    }
    buf
}

#[derive(Debug)]
struct Config {
    listen: SocketAddr,
    version: String,
    name: Option<String>,
    threads: usize,
    udp: bool,
}

fn parse_listen(s: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = s.parse() {
        return Ok(addr);
    }
    let port = s.strip_prefix(':').unwrap_or(s);
    port.parse::<u16>()
        .map(|p| SocketAddr::from((Ipv4Addr::UNSPECIFIED, p)))
        .map_err(|_| format!("invalid --listen address {s:?}"))
}

/// Parses the command line; `Ok(None)` means help was requested.
fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Option<Config>, String> {
    let mut cfg = Config {
        listen: SocketAddr::from((Ipv4Addr::UNSPECIFIED, 80)),
        version: "1.0".to_owned(),
        name: None,
        threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
        udp: false,
    };
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_owned(), Some(v.to_owned())),
            _ => (arg.clone(), None),
        };
        let mut value = |name: &str| {
            inline
                .clone()
                .or_else(|| args.next())
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match flag.as_str() {
            "-h" | "--help" => return Ok(None),
            "--udp" => cfg.udp = true,
            "--listen" => cfg.listen = parse_listen(&value("--listen")?)?,
            "--version" => cfg.version = value("--version")?,
            "--name" => cfg.name = Some(value("--name")?),
            "--threads" => {
                let v = value("--threads")?;
                cfg.threads = match v.parse::<usize>() {
                    Ok(n) if n > 0 => n,
                    _ => return Err(format!("invalid --threads {v:?}")),
                };
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(Some(cfg))
}

/// The hostname of this process's UTS namespace.
fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: buf is a valid writable buffer of the given length; gethostname writes at
    // most that many bytes, and we NUL-terminate defensively (the last byte is never passed).
    let rc = unsafe { gethostname(buf.as_mut_ptr().cast(), buf.len() - 1) };
    if rc == 0 {
        if let Ok(name) = CStr::from_bytes_until_nul(&buf) {
            let name = name.to_string_lossy();
            if !name.is_empty() {
                return name.into_owned();
            }
        }
    }
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".to_owned())
}

extern "C" {
    fn gethostname(name: *mut std::ffi::c_char, len: usize) -> std::ffi::c_int;
}

/// Everything computed once at startup and shared by all connections.
struct State {
    /// "Served by host: ..\nTask: ..\nNode: ..\nVersion: ..\n[Name: ..\n]Client: "
    http_prefix: Vec<u8>,
    /// "Served by host: ..\nClient: "
    udp_prefix: Vec<u8>,
    version: Bytes,
    hostname: String,
}

impl State {
    fn new(cfg: &Config) -> State {
        let hostname = hostname();
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let task = env("SHOAL_TASK_NAME").unwrap_or_else(|| "-".to_owned());
        let node = env("SHOAL_NODE_HOSTNAME").unwrap_or_else(|| "-".to_owned());
        let mut http_prefix = format!(
            "Served by host: {hostname}\nTask: {task}\nNode: {node}\nVersion: {}\n",
            cfg.version
        );
        if let Some(name) = &cfg.name {
            http_prefix.push_str(&format!("Name: {name}\n"));
        }
        http_prefix.push_str("Client: ");
        State {
            http_prefix: http_prefix.into_bytes(),
            udp_prefix: format!("Served by host: {hostname}\nClient: ").into_bytes(),
            version: Bytes::from(cfg.version.clone()),
            hostname,
        }
    }

    /// Renders the whoami text: prefix, client address, blank line, request line, headers.
    fn render(&self, peer: SocketAddr, req: &Request<Incoming>) -> Bytes {
        let headers = req.headers();
        let header_len: usize = headers
            .iter()
            .map(|(k, v)| k.as_str().len() + v.len() + 3)
            .sum();
        let uri = req.uri();
        let uri_len = uri.path().len() + uri.query().map_or(0, |q| q.len() + 1);
        let mut out = Vec::with_capacity(self.http_prefix.len() + 64 + uri_len + header_len + 16);
        out.extend_from_slice(&self.http_prefix);
        let _ = write!(out, "{peer}\n\n");
        out.extend_from_slice(req.method().as_str().as_bytes());
        out.push(b' ');
        out.extend_from_slice(uri.path().as_bytes());
        if let Some(q) = uri.query() {
            out.push(b'?');
            out.extend_from_slice(q.as_bytes());
        }
        out.push(b' ');
        out.extend_from_slice(version_str(req.version()).as_bytes());
        out.push(b'\n');
        for (name, value) in headers {
            // Canonical (Go-style) header case, like whoami: "user-agent" -> "User-Agent".
            let mut upper = true;
            for &b in name.as_str().as_bytes() {
                out.push(if upper { b.to_ascii_uppercase() } else { b });
                upper = b == b'-';
            }
            out.extend_from_slice(b": ");
            out.extend_from_slice(value.as_bytes());
            out.push(b'\n');
        }
        Bytes::from(out)
    }
}

fn version_str(v: Version) -> &'static str {
    match v {
        Version::HTTP_09 => "HTTP/0.9",
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_2 => "HTTP/2.0",
        Version::HTTP_3 => "HTTP/3.0",
        _ => "HTTP/1.1",
    }
}

/// Parses `size=N` (optional K/M/G suffix, optional trailing B/iB) from a query string.
fn query_size(query: Option<&str>) -> u64 {
    let Some(query) = query else { return 0 };
    for pair in query.split('&') {
        let Some(v) = pair.strip_prefix("size=") else {
            continue;
        };
        let v = v.trim_end_matches(['b', 'B']).trim_end_matches('i');
        let (digits, mult) = match v.as_bytes().last() {
            Some(b'k' | b'K') => (&v[..v.len() - 1], 1u64 << 10),
            Some(b'm' | b'M') => (&v[..v.len() - 1], 1 << 20),
            Some(b'g' | b'G') => (&v[..v.len() - 1], 1 << 30),
            _ => (v, 1),
        };
        return digits
            .parse::<u64>()
            .map_or(0, |n| n.saturating_mul(mult).min(MAX_PAYLOAD));
    }
    0
}

/// Response body: one head chunk followed by `remaining` bytes sliced from [`PAYLOAD`].
struct WhoamiBody {
    head: Bytes,
    remaining: u64,
}

impl Body for WhoamiBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = &mut *self;
        if !this.head.is_empty() {
            return Poll::Ready(Some(Ok(Frame::data(std::mem::take(&mut this.head)))));
        }
        if this.remaining == 0 {
            return Poll::Ready(None);
        }
        let n = this.remaining.min(CHUNK as u64) as usize;
        this.remaining -= n as u64;
        Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(&PAYLOAD[..n])))))
    }

    fn is_end_stream(&self) -> bool {
        self.head.is_empty() && self.remaining == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.head.len() as u64 + self.remaining)
    }
}

fn handle(state: &State, peer: SocketAddr, req: &Request<Incoming>) -> Response<WhoamiBody> {
    let (head, remaining) = match req.uri().path() {
        "/health" => (Bytes::from_static(b"ok"), 0),
        "/version" => (state.version.clone(), 0),
        _ => (state.render(peer, req), query_size(req.uri().query())),
    };
    let mut resp = Response::new(WhoamiBody { head, remaining });
    resp.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

/// Normalises IPv4-mapped IPv6 peers (when listening on [::]) to plain IPv4.
fn canonical(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(addr.ip().to_canonical(), addr.port())
}

/// Accept loop: one task per connection, each holding a `done` sender until it ends.
async fn serve_tcp(
    listener: TcpListener,
    state: Arc<State>,
    mut shutdown: watch::Receiver<bool>,
    done: mpsc::Sender<()>,
) {
    let mut builder = http1::Builder::new();
    builder.keep_alive(true);
    loop {
        let (stream, peer) = tokio::select! {
            biased;
            _ = shutdown.changed() => break,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // E.g. EMFILE: back off instead of spinning.
                    eprintln!("shoal-whoami: accept: {e}");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let peer = canonical(peer);
        let state = state.clone();
        let mut shutdown = shutdown.clone();
        let done = done.clone();
        let builder = builder.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req: Request<Incoming>| {
                std::future::ready(Ok::<_, Infallible>(handle(&state, peer, &req)))
            });
            let conn = builder.serve_connection(TokioIo::new(stream), svc);
            tokio::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                _ = shutdown.changed() => {
                    // Closes idle keep-alive connections now, in-flight ones after their response.
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
            drop(done);
        });
    }
}

/// UDP echo: answers each datagram with the host and the client's address.
async fn serve_udp(sock: UdpSocket, state: Arc<State>, mut shutdown: watch::Receiver<bool>) {
    let mut buf = vec![0u8; 65536];
    let mut out = Vec::with_capacity(state.udp_prefix.len() + 64);
    loop {
        let peer = tokio::select! {
            biased;
            _ = shutdown.changed() => break,
            r = sock.recv_from(&mut buf) => match r {
                Ok((_, peer)) => peer,
                // ICMP errors from earlier sends surface here; just carry on.
                Err(_) => continue,
            },
        };
        out.clear();
        out.extend_from_slice(&state.udp_prefix);
        let _ = writeln!(out, "{}", canonical(peer));
        let _ = sock.send_to(&out, peer).await;
    }
}

async fn bind_tcp(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let sock = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    sock.set_reuseaddr(true)?;
    sock.bind(addr)?;
    sock.listen(4096)
}

async fn run(cfg: Config) -> Result<(), String> {
    // Signal handlers first, so a SIGTERM right after the startup line is never lost.
    let mut term = signal(SignalKind::terminate()).map_err(|e| format!("SIGTERM handler: {e}"))?;
    let mut int = signal(SignalKind::interrupt()).map_err(|e| format!("SIGINT handler: {e}"))?;

    let state = Arc::new(State::new(&cfg));
    let listener = bind_tcp(cfg.listen)
        .await
        .map_err(|e| format!("listen on {}: {e}", cfg.listen))?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    let udp = if cfg.udp {
        // Same port as TCP, also when --listen asked for port 0.
        Some(
            UdpSocket::bind(local)
                .await
                .map_err(|e| format!("udp bind on {local}: {e}"))?,
        )
    } else {
        None
    };

    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let (done_tx, mut done_rx) = mpsc::channel::<()>(1);
    let acceptor = tokio::spawn(serve_tcp(
        listener,
        state.clone(),
        shutdown_rx.clone(),
        done_tx,
    ));
    let udp_task = udp.map(|sock| tokio::spawn(serve_udp(sock, state.clone(), shutdown_rx)));

    eprintln!(
        "shoal-whoami: listening on {local} (http{}) host={} version={} threads={}",
        if cfg.udp { "+udp" } else { "" },
        state.hostname,
        cfg.version,
        cfg.threads,
    );

    let sig = tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    };
    let _ = shutdown_tx.send(true);
    // The acceptor drops the listener (stop accepting) and its `done` sender when it returns.
    let _ = acceptor.await;
    if let Some(t) = udp_task {
        let _ = t.await;
    }
    // recv() yields None once every connection task has dropped its sender.
    let drained = tokio::time::timeout(DRAIN_GRACE, done_rx.recv())
        .await
        .is_ok();
    eprintln!(
        "shoal-whoami: {sig}: shut down{}",
        if drained {
            ""
        } else {
            " (in-flight requests cut off after grace period)"
        }
    );
    Ok(())
}

fn main() -> ExitCode {
    let cfg = match parse_args(std::env::args().skip(1)) {
        Ok(Some(cfg)) => cfg,
        Ok(None) => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("shoal-whoami: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cfg.threads)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("shoal-whoami: runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let res = rt.block_on(run(cfg));
    rt.shutdown_timeout(Duration::from_millis(100));
    match res {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("shoal-whoami: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &[&str]) -> Result<Option<Config>, String> {
        parse_args(s.iter().map(|s| s.to_string()))
    }

    #[test]
    fn parses_arguments() {
        let c = args(&[
            "--listen",
            "127.0.0.1:8080",
            "--version=2.0",
            "--name",
            "x",
            "--threads",
            "3",
            "--udp",
        ])
        .unwrap()
        .unwrap();
        assert_eq!(c.listen, "127.0.0.1:8080".parse().unwrap());
        assert_eq!((c.version.as_str(), c.name.as_deref()), ("2.0", Some("x")));
        assert_eq!((c.threads, c.udp), (3, true));
        assert_eq!(
            args(&["--listen", ":81"]).unwrap().unwrap().listen,
            "0.0.0.0:81".parse().unwrap()
        );
        assert!(args(&["--help"]).unwrap().is_none());
        assert!(args(&["--threads", "0"]).is_err());
        assert!(args(&["--bogus"]).is_err());
        assert!(args(&["--listen"]).is_err());
    }

    #[test]
    fn parses_sizes() {
        assert_eq!(query_size(None), 0);
        assert_eq!(query_size(Some("size=1000")), 1000);
        assert_eq!(query_size(Some("a=b&size=2k")), 2048);
        assert_eq!(query_size(Some("size=1MiB")), 1 << 20);
        assert_eq!(query_size(Some("size=999999999999")), MAX_PAYLOAD);
        assert_eq!(query_size(Some("size=junk")), 0);
    }
}
