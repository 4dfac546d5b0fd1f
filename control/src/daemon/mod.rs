//! shoald: the node daemon. Every node runs the agent; managers also run Raft, and the
//! leader runs the dispatcher, admission and the role reconciler.

mod agent;
pub mod exec;
pub mod files;
mod lb;
mod lb_report;
mod local;
mod manager;
mod networks_api;
mod port_hold;
mod server;
mod services_api;
mod supervise;
mod worker;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::task::JoinHandle;

use crate::metrics::Metrics;
use crate::peer::{PeerClient, TlsHandle, TlsMaterial};
use crate::raft::RaftTiming;
use files::{DataRoot, Membership};
pub(crate) use lb::PROBE_PORT;
pub use manager::Manager;

/// Where a daemon keeps its state and listens.
#[derive(Clone, Debug)]
pub struct DaemonConfig {
    pub data_root: PathBuf,
    pub socket: PathBuf,
    pub listen_addr: SocketAddr,
    pub metrics_addr: Option<SocketAddr>,
    pub hostname: String,
    pub raft: RaftTiming,
    /// TTL of the embedded DNS's answers, in seconds.
    pub dns_ttl: u32,
    pub lb: LbOptions,
    pub swarm_port: SwarmPortLimits,
}

/// How the swarm port (2377) protects itself from peers that hold connections.
#[derive(Clone, Debug)]
pub struct SwarmPortLimits {
    /// For the TLS handshake, and for a peer without a certificate to send its request.
    pub handshake_timeout: std::time::Duration,
    /// Between requests of an authenticated peer (clients reconnect on their next call).
    pub idle_timeout: std::time::Duration,
    /// Connections held at once, overall and from one IP; more are closed at once.
    pub max_connections: usize,
    pub max_connections_per_ip: usize,
}

impl Default for SwarmPortLimits {
    fn default() -> Self {
        SwarmPortLimits {
            handshake_timeout: std::time::Duration::from_secs(5),
            idle_timeout: std::time::Duration::from_secs(120),
            max_connections: 4096,
            max_connections_per_ip: 256,
        }
    }
}

/// The load balancer's settings (the same on every node of a cluster).
#[derive(Clone, Debug)]
pub struct LbOptions {
    /// Maglev table size, a prime.
    pub maglev_size: u32,
    pub timeouts: shoal_dataplane::lb::Timeouts,
    /// How long a backend asked to stop keeps running, out of every load
    /// balancer, before it is signalled.
    pub drain_delay: std::time::Duration,
    /// SNAT mesh flows entering this node (the backend sees the node's address).
    pub snat: bool,
    /// The overlay's fast path (VXLAN in eBPF); off: the kernel VXLAN device
    /// carries everything.
    pub overlay_fastpath: bool,
    /// Direct server return for mesh flows entering this node.
    pub dsr: bool,
}

impl Default for LbOptions {
    fn default() -> Self {
        LbOptions {
            maglev_size: shoal_dataplane::lb::DEFAULT_MAGLEV_SIZE,
            timeouts: shoal_dataplane::lb::Timeouts::default(),
            drain_delay: std::time::Duration::from_secs(1),
            snat: false,
            overlay_fastpath: true,
            dsr: false,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("shoald needs root (it manages namespaces, links and cgroups); run it as root")]
    NotRoot,
    #[error("another shoald is already running with data root {0}")]
    Locked(PathBuf),
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
    #[error("{0}")]
    Setup(String),
}

/// The leader's memory of agent heartbeats (not replicated: a new leader starts afresh).
#[derive(Default)]
pub(crate) struct Dispatcher {
    pub last_seen: HashMap<String, Instant>,
    pub leader_term: Option<u64>,
}

pub struct Daemon {
    pub(crate) cfg: DaemonConfig,
    pub(crate) root: DataRoot,
    pub(crate) membership: Mutex<Option<Membership>>,
    pub(crate) tls: TlsHandle,
    pub(crate) manager: Mutex<Option<Arc<Manager>>>,
    pub(crate) leader_hint: Mutex<Option<String>>,
    /// Task state reports the leader has not taken yet (no leader known, or the call
    /// failed): sent again with the next ones, the latest per task.
    pub(crate) unsent_reports: Mutex<Vec<crate::services::TaskReport>>,
    /// Idle connections to the leader for forwarded API calls (one per call in flight).
    pub(crate) leader_pool: Mutex<Vec<PeerClient>>,
    /// The cluster's manager node IDs as the leader last sent them with this node's
    /// assignments (None before the first): whose manager certificates count here when
    /// this node has no cluster state of its own (see `is_cluster_manager`).
    pub(crate) known_managers:
        tokio::sync::watch::Sender<Option<std::collections::HashSet<String>>>,
    pub(crate) dispatcher: Mutex<Dispatcher>,
    pub(crate) metrics: Metrics,
    /// The node's load balancer, for `/metrics` and `shoal debug lb`.
    pub(crate) lb_status: lb_report::LbStatus,
    /// Agent loop and swarm listener: running while the node is in a swarm.
    pub(crate) swarm_tasks: Mutex<Vec<JoinHandle<()>>>,
    /// Serializes init, join, leave and role changes on this node.
    pub(crate) op_lock: tokio::sync::Mutex<()>,
    /// Held for the daemon's lifetime: one daemon per data root.
    _lock: nix::fcntl::Flock<std::fs::File>,
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Daemon {
    /// Take the data root, restore any swarm membership, and start serving.
    pub async fn start(cfg: DaemonConfig) -> Result<Arc<Daemon>, DaemonError> {
        if !nix::unistd::geteuid().is_root() {
            return Err(DaemonError::NotRoot);
        }
        let root = DataRoot(cfg.data_root.clone());
        std::fs::create_dir_all(&root.0)
            .map_err(|e| DaemonError::Io(format!("creating {}", root.0.display()), e))?;
        let lock_file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(root.lock_file())
            .map_err(|e| DaemonError::Io("opening the lock file".into(), e))?;
        let lock_file =
            match nix::fcntl::Flock::lock(lock_file, nix::fcntl::FlockArg::LockExclusiveNonblock) {
                Ok(l) => l,
                Err(_) => return Err(DaemonError::Locked(root.0.clone())),
            };
        let membership = root
            .load_membership()
            .map_err(|e| DaemonError::Io("reading node.json".into(), e))?;
        let daemon = Arc::new(Daemon {
            cfg: cfg.clone(),
            root,
            membership: Mutex::new(membership.clone()),
            tls: TlsHandle::default(),
            manager: Mutex::new(None),
            leader_hint: Mutex::new(None),
            unsent_reports: Mutex::new(Vec::new()),
            leader_pool: Mutex::new(Vec::new()),
            known_managers: tokio::sync::watch::channel(None).0,
            dispatcher: Mutex::new(Dispatcher::default()),
            metrics: Metrics::new(),
            lb_status: lb_report::LbStatus::default(),
            swarm_tasks: Mutex::new(Vec::new()),
            op_lock: tokio::sync::Mutex::new(()),
            _lock: lock_file,
        });

        if let Some(m) = membership {
            tracing::info!(node = %m.node_id, role = %m.role, "restoring swarm membership");
            daemon
                .load_tls()
                .map_err(|e| DaemonError::Setup(format!("loading certificates: {e}")))?;
            if let Some(hint) = m.managers.first() {
                *lock(&daemon.leader_hint) = Some(hint.clone());
            }
            if m.role == crate::types::Role::Manager {
                let mgr = Manager::open(&daemon, m.raft_id)
                    .await
                    .map_err(DaemonError::Setup)?;
                *lock(&daemon.manager) = Some(mgr);
            }
            daemon
                .start_swarm_tasks()
                .await
                .map_err(DaemonError::Setup)?;
        }
        local::serve_socket(daemon.clone())
            .await
            .map_err(|e| DaemonError::Io(format!("API socket {}", cfg.socket.display()), e))?;
        if let Some(addr) = cfg.metrics_addr {
            crate::metrics::serve(daemon.clone(), addr)
                .await
                .map_err(|e| DaemonError::Io(format!("metrics listener {addr}"), e))?;
        }
        Ok(daemon)
    }

    pub(crate) fn membership(&self) -> Option<Membership> {
        lock(&self.membership).clone()
    }

    pub(crate) fn manager(&self) -> Option<Arc<Manager>> {
        lock(&self.manager).clone()
    }

    /// Whether node `node_id` is a manager of the cluster now: in this node's replicated
    /// state if it is a manager that knows the node (the leader's is the cluster's, a
    /// follower's trails it by moments), else in the managers the leader sends with this
    /// node's assignments (a worker, or a manager whose Raft is still catching up). When
    /// that list does not have the node (or has not come yet: a node that just started
    /// or joined), the next one is awaited: the worker loop brings one at least every
    /// half second while the leader is reachable. Unknown is no.
    pub(crate) async fn is_cluster_manager(&self, node_id: &str) -> bool {
        if let Some(mgr) = self.manager() {
            let role = mgr
                .sm
                .read(|d| d.state.nodes.get(node_id).map(|n| n.is_manager()));
            if let Some(is) = role {
                return is;
            }
        }
        let mut known = self.known_managers.subscribe();
        let listed = |k: &Option<std::collections::HashSet<String>>| {
            k.as_ref().is_some_and(|m| m.contains(node_id))
        };
        if listed(&known.borrow_and_update()) {
            return true;
        }
        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), known.changed()).await;
        let is = listed(&known.borrow());
        is
    }

    pub(crate) fn set_membership(&self, m: Option<Membership>) -> Result<(), String> {
        match &m {
            Some(m) => self
                .root
                .save_membership(m)
                .map_err(|e| format!("saving node.json: {e}"))?,
            None => self
                .root
                .wipe_swarm()
                .map_err(|e| format!("removing swarm state: {e}"))?,
        }
        *lock(&self.membership) = m;
        Ok(())
    }

    /// Build TLS configs from the key and certificates on disk.
    pub(crate) fn load_tls(&self) -> Result<(), String> {
        let read =
            |p: PathBuf| std::fs::read_to_string(&p).map_err(|e| format!("{}: {e}", p.display()));
        let ca = read(self.root.ca_file())?;
        let (key, cert) = self.root.load_identity().map_err(|e| e.to_string())?;
        let server = shoal_ca::tls::server_config(&ca, &cert, &key).map_err(|e| e.to_string())?;
        let client = shoal_ca::tls::client_config(&ca, &cert, &key).map_err(|e| e.to_string())?;
        self.tls.set(Some(TlsMaterial { client, server }));
        Ok(())
    }

    /// Store a new key/certificate (and CA) and switch to them.
    pub(crate) fn install_cert(
        &self,
        key_pem: &str,
        cert_pem: &str,
        ca_pem: Option<&str>,
    ) -> Result<(), String> {
        if let Some(ca) = ca_pem {
            let p = self.root.ca_file();
            files::write_atomic(&p, ca.as_bytes(), 0o600)
                .map_err(|e| format!("{}: {e}", p.display()))?;
        }
        self.root
            .save_identity(key_pem, cert_pem)
            .map_err(|e| format!("{}: {e}", self.root.identity_file().display()))?;
        self.load_tls()
    }

    /// Start what runs while this node is in a swarm: the swarm listener and the agent.
    pub(crate) async fn start_swarm_tasks(self: &Arc<Self>) -> Result<(), String> {
        let m = self.membership().ok_or("not in a swarm")?;
        let bind = SocketAddr::new(self.cfg.listen_addr.ip(), m.listen_port);
        let listener = tokio::net::TcpListener::bind(bind)
            .await
            .map_err(|e| format!("listening on {bind}: {e}"))?;
        // The listener is taken by the first run: a panic of the server exits rather
        // than serve without it.
        let mut listener = Some(listener);
        let d = self.clone();
        let server = supervise::spawn("swarm port", supervise::OnPanic::Exit, move || {
            let d = d.clone();
            let l = listener.take();
            async move {
                if let Some(l) = l {
                    server::serve(d, l).await
                }
            }
        });
        let d = self.clone();
        let agent = supervise::spawn("agent", supervise::OnPanic::Exit, move || {
            agent::run(d.clone())
        });
        let d = self.clone();
        let worker = supervise::spawn("worker", supervise::OnPanic::Exit, move || {
            worker::run(d.clone())
        });
        let mut tasks = lock(&self.swarm_tasks);
        tasks.push(server);
        tasks.push(agent);
        tasks.push(worker);
        Ok(())
    }

    pub(crate) async fn stop_swarm_tasks(&self) {
        let tasks: Vec<_> = lock(&self.swarm_tasks).drain(..).collect();
        for t in tasks {
            t.abort();
            let _ = t.await;
        }
        self.lb_status.detach();
        let mgr = lock(&self.manager).take();
        if let Some(mgr) = mgr {
            mgr.shutdown().await;
        }
        lock(&self.leader_pool).clear();
        self.known_managers.send_replace(None);
        *lock(&self.leader_hint) = None;
    }
}
