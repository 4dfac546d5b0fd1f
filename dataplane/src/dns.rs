//! The embedded DNS resolver each task gets at 127.0.0.11:53: service, alias and `tasks.` names from the cluster, the rest forwarded to the node's resolvers.
//!
//! Docker's behaviour, with one change: the TTL is short (default
//! [`DEFAULT_TTL`], 5 s) where swarm's 600 s keeps clients on dead task IPs.
//!
//! - **What a task may resolve** is a [`DnsView`] built by the agent from cluster
//!   state for that task's networks only, so a task never learns the names of
//!   services it shares no network with. The view is swapped through a
//!   `tokio::sync::watch` channel and the next query sees it.
//! - **Local answers**: A records for a known name (in the view's order, or
//!   shuffled per query for dnsrr services and `tasks.` names); NOERROR with no
//!   answers for other types of a known name (so a client asking AAAA then A
//!   does not give up); NXDOMAIN for an unknown single-label name, which can only
//!   be a service that does not exist (or is not on a shared network).
//! - **Task names**: as docker names a swarm task's container on each of its
//!   networks while its service binding is active (running, healthy, not asked
//!   to stop), a task answers to its container name (`web.1.<task id>`, or
//!   `<service>.<node id>.<task id>` for a global task), its short ID and its
//!   hostname, for tasks that share a network with the asker only. A name of
//!   that container-name shape that the view does not hold is NXDOMAIN here,
//!   never forwarded: no other resolver can know it.
//! - **`<name>.<network>`**: any of those names followed by the name of one
//!   of the task's networks answers that name on that network alone, as
//!   docker's resolver tries `a.b.c` whole, then `a.b` on network `c`, then `a`
//!   on network `b.c` (so the name a reverse lookup gives resolves back).
//! - **Reverse lookups** (`in-addr.arpa`) of addresses on the task's networks
//!   are answered here, as docker does: a task's address gives its container
//!   name and network (`web.1.<task id>.app.`), a VIP its service's name and
//!   network (which docker leaves to the node's resolvers); another address in
//!   those networks' subnets is NXDOMAIN. Only other addresses are forwarded.
//! - **Forwarded**: unknown names with a dot go to the node's resolvers
//!   (the nameservers of /etc/resolv.conf, read again when it changes: see
//!   [`Upstreams`]) from the namespace of the caller of
//!   [`Resolver::start`] (the node daemon's), not from the task's: overlay
//!   networks have no route out, and the node's resolvers are reachable from the
//!   node. UDP queries are forwarded over UDP, TCP ones over TCP (a truncated UDP
//!   answer makes the client retry over TCP, which must then reach the upstream
//!   over TCP too). Each upstream in turn gets [`FORWARD_TIMEOUT`]; with none, or
//!   all failing, the client gets SERVFAIL.
//! - **Sockets** are created on a short-lived thread that entered the task's
//!   namespace (setns is per thread) and handed to tokio, so no runtime thread
//!   ever changes namespace.

mod answer;
mod server;

use std::collections::{HashMap, HashSet};
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::errno::Errno;

pub use self::server::Resolver;

/// Where every task's resolver listens, inside the task's network namespace.
pub const RESOLVER_ADDR: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(127, 0, 0, 11), 53);

/// TTL of local answers unless the view says otherwise.
pub const DEFAULT_TTL: u32 = 5;

/// How long one upstream resolver gets to answer a forwarded query.
pub const FORWARD_TIMEOUT: Duration = Duration::from_secs(2);

/// Errors of starting a resolver; each carries the namespace it concerns.
#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    #[error("opening network namespace {0}: {1}")]
    OpenNetns(PathBuf, #[source] io::Error),
    #[error("entering network namespace {0}: {1}")]
    EnterNetns(PathBuf, #[source] Errno),
    #[error("binding the resolver to {1} ({0}) in {2}: {3}")]
    Bind(&'static str, SocketAddrV4, PathBuf, #[source] io::Error),
    #[error("cannot start a thread to enter a namespace: {0}")]
    Thread(#[source] io::Error),
    #[error("the namespace thread for {0} died")]
    ThreadDied(PathBuf),
}

/// What one task may resolve: built by the agent from cluster state for that task's networks.
#[derive(Clone, Debug, PartialEq)]
pub struct DnsView {
    /// lowercase name -> addresses, already in the order to answer for vip-style names.
    /// Keys include "<service>", "<stack-scoped service>", aliases, "tasks.<service>",
    /// and the names of the tasks on the task's networks: container name
    /// (`web.1.<task id>`), short task ID and hostname.
    pub names: HashMap<String, Vec<Ipv4Addr>>,
    /// The same names network by network, by the network's name as it is
    /// spelled: `<name>.<network>` answers `<name>`'s addresses on that network
    /// alone, as docker's resolver does (so the name a reverse lookup gives
    /// resolves back). Every network of the task has an entry.
    pub networks: HashMap<String, HashMap<String, Vec<Ipv4Addr>>>,
    /// names whose answers are shuffled on each query (dnsrr services and tasks.* names)
    pub shuffle: HashSet<String>,
    /// Reverse names: address -> the name a PTR query for it answers, without
    /// the final dot (docker's `<task container name>.<network>`, such as
    /// `web.1.<task id>.app`; `<service>.<network>` for a VIP).
    pub ptr: HashMap<Ipv4Addr, String>,
    /// The subnets of the task's networks: a PTR query for another address in
    /// one of them is NXDOMAIN here, never forwarded (it would leak internal
    /// addresses to the node's resolvers, which cannot know them anyway).
    pub subnets: Vec<(Ipv4Addr, u8)>,
    pub ttl: u32,
}

impl Default for DnsView {
    fn default() -> Self {
        Self {
            names: HashMap::new(),
            networks: HashMap::new(),
            shuffle: HashSet::new(),
            ptr: HashMap::new(),
            subnets: Vec::new(),
            ttl: DEFAULT_TTL,
        }
    }
}

/// Builds the answer for one query message. Returns Some(response bytes) when
/// answered locally: A records for a known name; PTR records for a known
/// address, NXDOMAIN for another one in the view's subnets; NOERROR with no answers for a
/// known name with another query type (AAAA etc.); NXDOMAIN for an unknown
/// single-label name; FORMERR/NOTIMP, as a header alone, for queries that are
/// not one standard question. Returns None when the query should be forwarded (unknown names with
/// a dot, and the root) or cannot be answered at all (not a DNS query).
///
/// The response is not truncated to a UDP size; the [`Resolver`] does that.
pub fn answer(view: &DnsView, query: &[u8]) -> Option<Vec<u8>> {
    match answer::reply(view, query) {
        answer::Reply::Local { response, .. } => answer::encode(&response, usize::MAX),
        answer::Reply::Forward(_) | answer::Reply::Drop => None,
    }
}

/// The /etc/resolv.conf content a task on networks gets: "nameserver 127.0.0.11", a
/// "search" line when `search` names domains and an "options" line when `options` has
/// any (the agent gives `ndots:0` unless the service sets ndots).
pub fn task_resolv_conf(search: &[String], options: &[String]) -> String {
    resolv_conf(&[RESOLVER_ADDR.ip().to_string()], search, options)
}

/// An /etc/resolv.conf: a "nameserver" line per server, then a "search" line and an
/// "options" line, each only when it has anything to say.
pub fn resolv_conf(nameservers: &[String], search: &[String], options: &[String]) -> String {
    let mut conf = String::new();
    for ns in nameservers {
        conf.push_str(&format!("nameserver {ns}\n"));
    }
    if !search.is_empty() {
        conf.push_str(&format!("search {}\n", search.join(" ")));
    }
    if !options.is_empty() {
        conf.push_str(&format!("options {}\n", options.join(" ")));
    }
    conf
}

/// The node's resolv.conf.
pub const HOST_RESOLV_CONF: &str = "/etc/resolv.conf";

/// The node's resolvers from its /etc/resolv.conf, to forward to (see [`parse_resolv_conf`]).
/// An unreadable file gives none, so forwarded queries get SERVFAIL.
pub fn host_resolvers() -> Vec<SocketAddr> {
    read_resolvers(Path::new(HOST_RESOLV_CONF))
}

fn read_resolvers(path: &Path) -> Vec<SocketAddr> {
    match std::fs::read_to_string(path) {
        Ok(text) => parse_resolv_conf(&text),
        Err(e) => {
            tracing::warn!(
                "reading {}: {e}; names outside the cluster will not resolve",
                path.display()
            );
            Vec::new()
        }
    }
}

/// A resolv.conf read again at most this long after it was last read, even
/// if it looks unchanged (a rewrite within one clock tick keeps its mtime).
const RESOLV_CONF_MAX_AGE: Duration = Duration::from_secs(5);

/// Where forwarded queries go: a fixed list, or the nameservers of a
/// resolv.conf file, read again as soon as it changes (its inode, size or
/// mtime, checked at each forward: one stat) and at least every
/// [`RESOLV_CONF_MAX_AGE`]. Clones share one cache.
#[derive(Clone)]
pub struct Upstreams(Arc<UpstreamSource>);

enum UpstreamSource {
    Fixed(Arc<[SocketAddr]>),
    File {
        path: PathBuf,
        cache: Mutex<Option<ReadResolvConf>>,
    },
}

struct ReadResolvConf {
    stamp: Option<FileStamp>,
    read_at: Instant,
    servers: Arc<[SocketAddr]>,
}

/// What tells a changed file: device, inode, size, mtime.
#[derive(PartialEq)]
struct FileStamp(u64, u64, u64, i64, i64);

impl Upstreams {
    /// The nameservers of the resolv.conf at `path` (see [`parse_resolv_conf`]).
    pub fn resolv_conf(path: impl Into<PathBuf>) -> Upstreams {
        Upstreams(Arc::new(UpstreamSource::File {
            path: path.into(),
            cache: Mutex::new(None),
        }))
    }

    /// The upstreams to ask now.
    pub fn current(&self) -> Arc<[SocketAddr]> {
        let (path, cache) = match &*self.0 {
            UpstreamSource::Fixed(servers) => return servers.clone(),
            UpstreamSource::File { path, cache } => (path, cache),
        };
        let stamp = std::fs::metadata(path).ok().map(|m| {
            use std::os::unix::fs::MetadataExt;
            FileStamp(m.dev(), m.ino(), m.size(), m.mtime(), m.mtime_nsec())
        });
        let mut cache = cache.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = cache.as_ref() {
            if c.stamp == stamp && c.read_at.elapsed() < RESOLV_CONF_MAX_AGE {
                return c.servers.clone();
            }
        }
        let servers: Arc<[SocketAddr]> = read_resolvers(path).into();
        if cache.as_ref().is_some_and(|c| c.servers != servers) {
            tracing::info!(path = %path.display(), ?servers, "upstream resolvers changed");
        }
        *cache = Some(ReadResolvConf {
            stamp,
            read_at: Instant::now(),
            servers: servers.clone(),
        });
        servers
    }
}

impl From<Vec<SocketAddr>> for Upstreams {
    fn from(servers: Vec<SocketAddr>) -> Upstreams {
        Upstreams(Arc::new(UpstreamSource::Fixed(servers.into())))
    }
}

/// The `nameserver` addresses of a resolv.conf, port 53, in order. Loopback
/// ones (127.x, ::1: a local stub such as systemd-resolved) and unparsable ones
/// (such as a link-local address with a zone) are skipped.
pub fn parse_resolv_conf(text: &str) -> Vec<SocketAddr> {
    text.lines()
        .filter_map(|line| {
            let line = line.split(['#', ';']).next().unwrap_or_default();
            let mut words = line.split_whitespace();
            if words.next() != Some("nameserver") {
                return None;
            }
            let ip: IpAddr = words.next()?.parse().ok()?;
            (!ip.is_loopback() && !ip.is_unspecified()).then_some(SocketAddr::new(ip, 53))
        })
        .collect()
}
