//! The resolver's sockets in a task's namespace, its UDP and TCP loops, and forwarding to the upstream resolvers.

use std::fs::File;
use std::future::Future;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use nix::sched::{setns, CloneFlags};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{watch, Semaphore};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::timeout;
use tracing::{debug, error};

use super::answer::{self, Reply};
use super::{DnsError, DnsView, Upstreams, FORWARD_TIMEOUT, RESOLVER_ADDR};

/// Forwarded UDP queries waiting for an upstream at once; more are dropped (the
/// client retries), so a flood cannot pile up tasks and sockets.
const MAX_UDP_FORWARDS: usize = 256;

/// TCP clients at once; more are closed on accept.
const MAX_TCP_CLIENTS: usize = 64;

/// A TCP client idle this long (or this slow sending a query) is closed.
const TCP_IDLE_TIMEOUT: Duration = Duration::from_secs(10);

/// Largest DNS message (TCP's length prefix is 16 bits; so is UDP's payload).
const MAX_MESSAGE: usize = u16::MAX as usize;

/// A resolver bound to 127.0.0.11:53 (UDP and TCP) in one task's network
/// namespace. Dropping it stops it: its tasks are aborted and, with them, its
/// sockets closed.
pub struct Resolver {
    tasks: Vec<JoinHandle<()>>,
}

impl Resolver {
    /// Binds [`RESOLVER_ADDR`] over UDP and TCP in the namespace at `netns` (a
    /// bind-mounted netns file with `lo` up, so 127.0.0.11 is local) and serves
    /// queries from `view` as it is at each query. Unknown names with a dot are
    /// forwarded to `upstreams` (as they are at each query) from the caller's
    /// namespace. Needs a tokio runtime.
    pub async fn start(
        netns: &Path,
        view: watch::Receiver<Arc<DnsView>>,
        upstreams: impl Into<Upstreams>,
    ) -> Result<Resolver, DnsError> {
        let (udp, tcp) = bind_in_netns(netns).await?;
        let bind_error = |proto, e| DnsError::Bind(proto, RESOLVER_ADDR, netns.to_path_buf(), e);
        let udp = UdpSocket::from_std(udp).map_err(|e| bind_error("udp", e))?;
        let tcp = TcpListener::from_std(tcp).map_err(|e| bind_error("tcp", e))?;
        let upstreams: Upstreams = upstreams.into();
        let (udp, tcp) = (Arc::new(udp), Arc::new(tcp));
        let (v, u, ns) = (view.clone(), upstreams.clone(), netns.to_path_buf());
        let udp_loop = served_again_after_panic("udp", ns, move || {
            serve_udp(udp.clone(), v.clone(), u.clone())
        });
        let ns = netns.to_path_buf();
        let tcp_loop = served_again_after_panic("tcp", ns, move || {
            serve_tcp(tcp.clone(), view.clone(), upstreams.clone())
        });
        let tasks = vec![tokio::spawn(udp_loop), tokio::spawn(tcp_loop)];
        Ok(Resolver { tasks })
    }

    /// Stops the resolver and waits until its sockets are closed, so the address
    /// can be bound again at once (dropping it closes them moments later).
    pub async fn shutdown(mut self) {
        let tasks = std::mem::take(&mut self.tasks);
        for task in &tasks {
            task.abort();
        }
        for task in tasks {
            let _ = task.await;
        }
    }
}

impl Drop for Resolver {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Creates the listening sockets on a fresh thread that entered `netns`; a
/// socket stays in the namespace it was created in.
async fn bind_in_netns(
    netns: &Path,
) -> Result<(std::net::UdpSocket, std::net::TcpListener), DnsError> {
    let ns = File::open(netns).map_err(|e| DnsError::OpenNetns(netns.to_path_buf(), e))?;
    let path = netns.to_path_buf();
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("shoal-dns-netns".into())
        .spawn(move || {
            let bind = || {
                setns(&ns, CloneFlags::CLONE_NEWNET)
                    .map_err(|e| DnsError::EnterNetns(path.clone(), e))?;
                let bind_error = |proto, e| DnsError::Bind(proto, RESOLVER_ADDR, path.clone(), e);
                let udp = std::net::UdpSocket::bind(RESOLVER_ADDR)
                    .and_then(|s| s.set_nonblocking(true).map(|()| s))
                    .map_err(|e| bind_error("udp", e))?;
                let tcp = std::net::TcpListener::bind(RESOLVER_ADDR)
                    .and_then(|s| s.set_nonblocking(true).map(|()| s))
                    .map_err(|e| bind_error("tcp", e))?;
                Ok((udp, tcp))
            };
            let _ = tx.send(bind());
        })
        .map_err(DnsError::Thread)?;
    rx.await
        .map_err(|_| DnsError::ThreadDied(netns.to_path_buf()))?
}

/// Runs `serve()` again whenever it panics. No input makes the loops panic by design,
/// but should one ever (a bug), the task keeps its resolver: it would otherwise stop
/// answering in silence, as a tokio task keeps its panic to itself. The sockets stay
/// bound meanwhile; what the loop had in flight (forwarded queries, TCP clients) is
/// dropped with it.
async fn served_again_after_panic<F, Fut>(what: &'static str, netns: PathBuf, mut serve: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    while AssertUnwindSafe(serve()).catch_unwind().await.is_err() {
        error!(
            netns = %netns.display(),
            "dns: the {what} loop of a task's resolver panicked (a bug: please report it); serving again"
        );
        // Not a busy loop should it panic at once every time.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn serve_udp(
    socket: Arc<UdpSocket>,
    view: watch::Receiver<Arc<DnsView>>,
    upstreams: Upstreams,
) {
    let mut buf = vec![0; MAX_MESSAGE];
    // Dropped with this task on abort, which aborts the forwards in flight.
    let mut forwards = JoinSet::new();
    let forward_slots = Arc::new(Semaphore::new(MAX_UDP_FORWARDS));
    loop {
        let (len, client) = match socket.recv_from(&mut buf).await {
            Ok(received) => received,
            Err(e) => {
                debug!("dns: udp receive: {e}");
                continue;
            }
        };
        while forwards.try_join_next().is_some() {}
        let current = view.borrow().clone();
        match answer::reply(&current, &buf[..len]) {
            Reply::Local {
                response,
                udp_limit,
            } => {
                if let Some(bytes) = answer::encode(&response, udp_limit) {
                    if let Err(e) = socket.send_to(&bytes, client).await {
                        debug!("dns: udp reply to {client}: {e}");
                    }
                }
            }
            Reply::Forward(request) => {
                let Ok(slot) = forward_slots.clone().try_acquire_owned() else {
                    debug!("dns: too many forwarded queries in flight; dropping one from {client}");
                    continue;
                };
                let query = buf[..len].to_vec();
                let (socket, upstreams) = (socket.clone(), upstreams.clone());
                forwards.spawn(async move {
                    let _slot = slot;
                    let reply = match forward(&upstreams.current(), &query, Transport::Udp).await {
                        Some(reply) => Some(reply),
                        None => answer::encode(&answer::servfail(&request), MAX_MESSAGE),
                    };
                    if let Some(bytes) = reply {
                        if let Err(e) = socket.send_to(&bytes, client).await {
                            debug!("dns: udp reply to {client}: {e}");
                        }
                    }
                });
            }
            Reply::Drop => {}
        }
    }
}

async fn serve_tcp(
    listener: Arc<TcpListener>,
    view: watch::Receiver<Arc<DnsView>>,
    upstreams: Upstreams,
) {
    // Dropped with this task on abort, which closes the connections.
    let mut clients = JoinSet::new();
    loop {
        let (stream, client) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Such as EMFILE: wait rather than spin.
                debug!("dns: tcp accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        while clients.try_join_next().is_some() {}
        if clients.len() >= MAX_TCP_CLIENTS {
            debug!("dns: too many tcp clients; closing {client}");
            continue;
        }
        clients.spawn(serve_tcp_client(stream, view.clone(), upstreams.clone()));
    }
}

/// Answers length-prefixed queries on one connection, in order, until the
/// client closes it or idles.
async fn serve_tcp_client(
    mut stream: TcpStream,
    view: watch::Receiver<Arc<DnsView>>,
    upstreams: Upstreams,
) {
    loop {
        let Some(query) = timeout(TCP_IDLE_TIMEOUT, read_framed(&mut stream))
            .await
            .ok()
            .flatten()
        else {
            return;
        };
        let current = view.borrow().clone();
        let reply = match answer::reply(&current, &query) {
            Reply::Local { response, .. } => answer::encode(&response, MAX_MESSAGE),
            Reply::Forward(request) => {
                match forward(&upstreams.current(), &query, Transport::Tcp).await {
                    Some(reply) => Some(reply),
                    None => answer::encode(&answer::servfail(&request), MAX_MESSAGE),
                }
            }
            Reply::Drop => return,
        };
        let Some(reply) = reply else { return };
        if timeout(TCP_IDLE_TIMEOUT, write_framed(&mut stream, &reply))
            .await
            .map_or(true, |r| r.is_err())
        {
            return;
        }
    }
}

#[derive(Clone, Copy, Debug)]
enum Transport {
    Udp,
    Tcp,
}

/// Asks each upstream in turn, each for at most [`FORWARD_TIMEOUT`]; the first
/// reply to the query is passed back as it came. None: no upstream answered.
async fn forward(upstreams: &[SocketAddr], query: &[u8], transport: Transport) -> Option<Vec<u8>> {
    let id = answer::message_id(query)?;
    for &upstream in upstreams {
        let exchange = async {
            match transport {
                Transport::Udp => exchange_udp(upstream, query, id).await,
                Transport::Tcp => exchange_tcp(upstream, query, id).await,
            }
        };
        match timeout(FORWARD_TIMEOUT, exchange).await {
            Ok(Ok(reply)) => return Some(reply),
            Ok(Err(e)) => debug!("dns: forwarding over {transport:?} to {upstream}: {e}"),
            Err(_) => debug!("dns: forwarding over {transport:?} to {upstream}: timed out"),
        }
    }
    None
}

/// One query to one upstream from a fresh socket (a random source port per
/// query, the defence against spoofed replies besides the id), connected so
/// only the upstream's datagrams are received.
async fn exchange_udp(upstream: SocketAddr, query: &[u8], id: u16) -> std::io::Result<Vec<u8>> {
    let local: SocketAddr = match upstream {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let socket = UdpSocket::bind(local).await?;
    socket.connect(upstream).await?;
    socket.send(query).await?;
    let mut buf = vec![0; MAX_MESSAGE];
    loop {
        let len = socket.recv(&mut buf).await?;
        if answer::is_response_to(&buf[..len], id) {
            buf.truncate(len);
            return Ok(buf);
        }
    }
}

async fn exchange_tcp(upstream: SocketAddr, query: &[u8], id: u16) -> std::io::Result<Vec<u8>> {
    let mut stream = TcpStream::connect(upstream).await?;
    write_framed(&mut stream, query).await?;
    let reply = read_framed(&mut stream)
        .await
        .ok_or_else(|| std::io::Error::other("connection closed before a reply"))?;
    if !answer::is_response_to(&reply, id) {
        return Err(std::io::Error::other(
            "reply is not the response to the query",
        ));
    }
    Ok(reply)
}

/// One length-prefixed message (RFC 1035 4.2.2); None at end of stream or error.
async fn read_framed(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let len = stream.read_u16().await.ok()?;
    let mut message = vec![0; usize::from(len)];
    stream.read_exact(&mut message).await.ok()?;
    Some(message)
}

async fn write_framed(stream: &mut TcpStream, message: &[u8]) -> std::io::Result<()> {
    let len = u16::try_from(message.len())
        .map_err(|_| std::io::Error::other("a DNS message over 65535 bytes"))?;
    let mut framed = Vec::with_capacity(message.len() + 2);
    framed.extend_from_slice(&len.to_be_bytes());
    framed.extend_from_slice(message);
    stream.write_all(&framed).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A loop that panics is run again; one that returns is done.
    #[tokio::test]
    async fn a_panicking_loop_is_served_again() {
        let runs = Arc::new(AtomicUsize::new(0));
        let r = runs.clone();
        served_again_after_panic("udp", PathBuf::from("/test"), move || {
            let r = r.clone();
            async move {
                if r.fetch_add(1, Ordering::SeqCst) < 2 {
                    panic!("boom");
                }
            }
        })
        .await;
        assert_eq!(runs.load(Ordering::SeqCst), 3);
    }
}
