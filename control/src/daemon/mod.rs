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
mod probe;
mod secrets_api;
mod server;
mod services_api;
mod supervise;
mod task_files;
mod worker;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::task::JoinHandle;

use crate::metrics::Metrics;
use crate::peer::{PeerClient, TlsHandle, TlsMaterial};
use crate::raft::{store, RaftTiming};
use files::{DataRoot, Membership};
pub(crate) use lb::PROBE_PORT;
pub use manager::Manager;
use shoal_ca::seal::SealKey;

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
    /// The shortest `--cert-expiry` this node accepts as a manager (swarmkit's 1h; a lab
    /// may lower it to see renewals happen).
    pub min_cert_expiry: std::time::Duration,
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
    /// Why this manager's Raft store cannot be used (found at start): until `swarm leave
    /// --force`, the node serves nothing of the swarm and every command says this.
    pub(crate) store_problem: Mutex<Option<String>>,
    /// Serializes init, join, leave and role changes on this node.
    pub(crate) op_lock: tokio::sync::Mutex<()>,
    /// The keys in memory: the Raft store's and, under autolock, the swarm's unlock key.
    /// The lock is held while node-identity.pem is written, so writes never cross.
    pub(crate) keys: Mutex<NodeKeys>,
    /// Started with its keys sealed (autolock): until `swarm unlock`, the node serves
    /// nothing of the swarm and every command says it is locked.
    pub(crate) locked: std::sync::atomic::AtomicBool,
    /// When this node asks for a new certificate (a random point between 50% and 80% of
    /// the current one's lifetime, chosen when it is loaded: swarmkit's renewal), and when
    /// the current one ends.
    pub(crate) cert_times: Mutex<Option<CertTimes>>,
    /// What this node reports of its certificate and trust (docker's node `TLSInfo`),
    /// kept as the certificate and roots in use change.
    pub(crate) tls_report: Mutex<Option<crate::types::NodeTlsInfo>>,
    /// Held for the daemon's lifetime: one daemon per data root.
    _lock: nix::fcntl::Flock<std::fs::File>,
}

/// When this node's certificate is due for renewal, and when it ends.
#[derive(Clone, Copy, Debug)]
pub(crate) struct CertTimes {
    pub renew_at: std::time::SystemTime,
    pub not_after: std::time::SystemTime,
}

/// TLS configs from a CA, a key and its certificate, and the certificate's times (its
/// renewal point drawn at random, as swarmkit's): what a node switches to, checked whole.
fn tls_identity(ca: &str, key: &str, cert: &str) -> Result<(TlsMaterial, CertTimes), String> {
    let server = shoal_ca::tls::server_config(ca, cert, key).map_err(|e| e.to_string())?;
    let client = shoal_ca::tls::client_config(ca, cert, key).map_err(|e| e.to_string())?;
    let (from, until) = shoal_ca::validity_of_pem(cert).map_err(|e| e.to_string())?;
    let times = CertTimes {
        renew_at: shoal_ca::renewal_time(from, until, rand::random::<f64>()),
        not_after: until,
    };
    Ok((TlsMaterial { client, server }, times))
}

#[derive(Clone, Default)]
pub(crate) struct NodeKeys {
    /// What this manager's Raft store is sealed with (None: not made yet, or a worker).
    pub dek: Option<SealKey>,
    /// What it is being re-sealed with, from autolock being turned on until the store is
    /// (see `rotate_dek`); the store is sealed with this one or `dek`.
    pub pending_dek: Option<SealKey>,
    /// The swarm's unlock key, which seals `dek` and the node's TLS key on disk.
    pub kek: Option<SealKey>,
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
        // The Raft store holds the swarm's secrets and the node's key: root's alone, as
        // docker keeps /var/lib/docker/swarm (tasks see their files through bind mounts).
        std::fs::set_permissions(&root.0, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| DaemonError::Io(format!("restricting {}", root.0.display()), e))?;
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
        finish_interrupted_changes(&root, membership.as_ref())?;
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
            store_problem: Mutex::new(None),
            op_lock: tokio::sync::Mutex::new(()),
            keys: Mutex::new(NodeKeys::default()),
            locked: std::sync::atomic::AtomicBool::new(false),
            cert_times: Mutex::new(None),
            tls_report: Mutex::new(None),
            _lock: lock_file,
        });

        if let Some(m) = membership {
            let sealed = daemon
                .root
                .identity_is_sealed()
                .map_err(|e| DaemonError::Io("reading node-identity.pem".into(), e))?;
            if sealed {
                tracing::warn!(
                    node = %m.node_id,
                    "this node's keys are sealed (autolock): it serves nothing of the swarm \
                     until `shoal swarm unlock`"
                );
                daemon.set_locked(true);
            } else {
                daemon.resume_swarm(m).await?;
            }
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

    /// Take up this node's place in its swarm, as node.json and the keys on disk say:
    /// the certificates, the Raft store of a manager, the agent. At start, and at unlock.
    pub(crate) async fn resume_swarm(
        self: &Arc<Self>,
        mut m: Membership,
    ) -> Result<(), DaemonError> {
        tracing::info!(node = %m.node_id, role = %m.role, "restoring swarm membership");
        self.load_tls()
            .map_err(|e| DaemonError::Setup(format!("loading certificates: {e}")))?;
        if self.cert_expired() {
            // moby's errSwarmCertificatesExpired: no peer accepts this node any more.
            tracing::error!("{}", crate::api::msg::CERTS_EXPIRED);
            *lock(&self.store_problem) = Some(crate::api::msg::CERTS_EXPIRED.to_string());
            return Ok(());
        }
        if m.role == crate::types::Role::Worker {
            // A worker is never locked; one sealed (by an older shoald) is unsealed now.
            self.set_kek(None)
                .map_err(|e| DaemonError::Setup(format!("unsealing this worker's keys: {e}")))?;
        }
        if let Some(hint) = m.managers.first() {
            *lock(&self.leader_hint) = Some(hint.clone());
        }
        let mut usable = true;
        if m.role == crate::types::Role::Manager {
            let deks = self
                .raft_keys()
                .map_err(|e| DaemonError::Setup(format!("the raft store's key: {e}")))?;
            match open_store_at_start(&self.root, &mut m, &deks)? {
                Ok(opened) => {
                    if deks.len() > 1 {
                        tracing::info!(
                            already_resealed = opened.dek == deks[1],
                            "a rotation of the raft store's key was under way: finishing it"
                        );
                    }
                    *lock(&self.membership) = Some(m.clone());
                    let mgr = Manager::start(self, m.raft_id, opened)
                        .await
                        .map_err(DaemonError::Setup)?;
                    *lock(&self.manager) = Some(mgr);
                }
                Err(problem) => {
                    tracing::error!("{problem}");
                    *lock(&self.store_problem) = Some(problem);
                    usable = false;
                }
            }
        }
        if usable {
            self.start_swarm_tasks().await.map_err(DaemonError::Setup)?;
        }
        Ok(())
    }

    /// swarmkit's check of `--cert-expiry`.
    pub(crate) fn check_cert_expiry(&self, secs: u64) -> Result<(), crate::api::ApiError> {
        let min = self.cfg.min_cert_expiry;
        if std::time::Duration::from_secs(secs) < min {
            let min = i64::try_from(min.as_nanos()).unwrap_or(i64::MAX);
            return Err(crate::api::ApiError::daemon(format!(
                "rpc error: code = InvalidArgument desc = minimum certificate expiry time is: {}",
                crate::cli::go_duration(min)
            )));
        }
        Ok(())
    }

    pub(crate) fn is_locked(&self) -> bool {
        self.locked.load(std::sync::atomic::Ordering::SeqCst)
    }

    pub(crate) fn set_locked(&self, locked: bool) {
        self.locked
            .store(locked, std::sync::atomic::Ordering::SeqCst);
    }

    /// The key this manager's Raft store is sealed with: the one in node-identity.pem, or
    /// (a new store, or one made before stores were sealed) a new one, saved there first.
    pub(crate) fn raft_dek(&self) -> Result<SealKey, String> {
        let mut keys = lock(&self.keys);
        if let Some(dek) = &keys.dek {
            return Ok(dek.clone());
        }
        let kek = keys.kek.clone();
        let id = self.rewrite_identity(&keys, kek.as_ref(), |id| {
            let new = id.dek.is_none();
            if new {
                id.dek = Some(SealKey::generate());
            }
            new
        })?;
        let dek = id.dek.ok_or("no raft key after saving one")?;
        keys.dek = Some(dek.clone());
        keys.pending_dek = id.pending_dek;
        Ok(dek)
    }

    /// The keys this manager's Raft store may be sealed with: its key (see `raft_dek`),
    /// then the pending one while a rotation is under way.
    pub(crate) fn raft_keys(&self) -> Result<Vec<SealKey>, String> {
        let dek = self.raft_dek()?;
        let pending = lock(&self.keys).pending_dek.clone();
        Ok(std::iter::once(dek).chain(pending).collect())
    }

    /// Finish a rotation of the Raft store's key (swarmkit's raft DEK rotation), if one is
    /// pending: re-seal `store` with the pending key, then make it the key in
    /// node-identity.pem, dropping the old one. Every step is crash-safe: until the store
    /// is renamed it is sealed with the old key, after it with the pending one, and the
    /// identity holds both until the end (`raft_keys` tries both). Under the keys lock, so
    /// that no other write of the identity crosses it. Returns whether it rotated.
    pub(crate) fn rotate_dek(&self, store: &store::StateMachineStore) -> Result<bool, String> {
        let mut keys = lock(&self.keys);
        let Some(pending) = keys.pending_dek.clone() else {
            return Ok(false);
        };
        let resealed = store
            .rekey(&pending)
            .map_err(|e| format!("re-sealing the raft store: {e}"))?;
        let kek = keys.kek.clone();
        self.rewrite_identity(&keys, kek.as_ref(), |id| {
            if id.pending_dek.as_ref() != Some(&pending) {
                return false;
            }
            id.dek = id.pending_dek.take();
            true
        })?;
        keys.dek = Some(pending);
        keys.pending_dek = None;
        tracing::info!(
            resealed,
            "rotated the raft store's data encryption key: the previous key no longer opens it"
        );
        Ok(true)
    }

    /// Whether this node's certificate is past its end (it was down longer than what was
    /// left of it, so it could not renew it).
    fn cert_expired(&self) -> bool {
        lock(&self.cert_times).is_some_and(|t| t.not_after < std::time::SystemTime::now())
    }

    /// Drop the Raft store's key (a demoted node's store is gone).
    pub(crate) fn forget_dek(&self) -> Result<(), String> {
        let mut keys = lock(&self.keys);
        let kek = keys.kek.clone();
        self.rewrite_identity(&keys, kek.as_ref(), |id| {
            let pending = id.pending_dek.take().is_some();
            id.dek.take().is_some() || pending
        })?;
        keys.dek = None;
        keys.pending_dek = None;
        Ok(())
    }

    /// Seal this node's keys on disk with `kek` (the swarm's unlock key under autolock),
    /// or keep them in the clear (None), if that is not how they are now.
    ///
    /// From the clear to sealed (autolock turned on, or a manager that had its Raft key in
    /// the clear joining an autolocked swarm), a manager's Raft key is rotated, as swarmkit
    /// rotates its raft DEK then: a copy of node-identity.pem taken while the key was in
    /// the clear must not open what the store holds from now on. The new key is recorded
    /// as pending in the same write that seals the file (so a crash cannot lose the need),
    /// and `rotate_dek` re-seals the store with it. From one unlock key to another only the
    /// sealing changes (the Raft key was never in the clear), as in swarmkit.
    pub(crate) fn set_kek(&self, kek: Option<SealKey>) -> Result<(), String> {
        let mut keys = lock(&self.keys);
        if keys.kek == kek {
            return Ok(());
        }
        let locking = keys.kek.is_none() && kek.is_some();
        let id = self.rewrite_identity(&keys, kek.as_ref(), |id| {
            if locking && id.dek.is_some() && id.pending_dek.is_none() {
                id.pending_dek = Some(SealKey::generate());
            }
            // The TLS key sat in the clear until now: a new one, as swarmkit does.
            id.renew_cert |= locking;
            true
        })?;
        if id.renew_cert {
            self.mark_cert_due();
        }
        tracing::info!(
            sealed = kek.is_some(),
            "this node's keys on disk follow the swarm's autolock setting"
        );
        if locking && id.pending_dek.is_some() {
            tracing::info!(
                "the raft store's key was in the clear: rotating it (a new key, sealed)"
            );
        }
        if id.dek.is_some() {
            keys.dek = id.dek;
        }
        keys.pending_dek = id.pending_dek;
        keys.kek = kek;
        Ok(())
    }

    /// Have the agent renew this node's certificate (with a new key) at its next heartbeat.
    fn mark_cert_due(&self) {
        if let Some(t) = lock(&self.cert_times).as_mut() {
            t.renew_at = std::time::UNIX_EPOCH;
        }
    }

    /// node-identity.pem read with the key in use (`keys`, whose lock the caller holds),
    /// changed by `change`, and written sealed by `kek` unless `change` says nothing
    /// changed. Returns the identity as it now is.
    fn rewrite_identity(
        &self,
        keys: &NodeKeys,
        kek: Option<&SealKey>,
        change: impl FnOnce(&mut files::Identity) -> bool,
    ) -> Result<files::Identity, String> {
        let file = self.root.identity_file();
        let mut id = self
            .root
            .load_identity(keys.kek.as_ref())
            .map_err(|e| format!("{}: {e}", file.display()))?;
        if change(&mut id) {
            self.root
                .save_identity(&id, kek)
                .map_err(|e| format!("{}: {e}", file.display()))?;
        }
        Ok(id)
    }

    pub(crate) fn store_problem(&self) -> Option<String> {
        lock(&self.store_problem).clone()
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
            None => {
                // Under the keys lock: a re-seal in flight cannot write the identity back.
                let mut keys = lock(&self.keys);
                self.root
                    .wipe_swarm()
                    .map_err(|e| format!("removing swarm state: {e}"))?;
                *keys = NodeKeys::default();
            }
        }
        *lock(&self.membership) = m;
        Ok(())
    }

    /// Build TLS configs from the key and certificates on disk.
    pub(crate) fn load_tls(&self) -> Result<(), String> {
        let read =
            |p: PathBuf| std::fs::read_to_string(&p).map_err(|e| format!("{}: {e}", p.display()));
        let ca = read(self.root.ca_file())?;
        let mut keys = lock(&self.keys);
        let id = self
            .root
            .load_identity(keys.kek.as_ref())
            .map_err(|e| e.to_string())?;
        let (tls, mut times) = tls_identity(&ca, &id.key_pem, &id.cert_pem)?;
        if id.renew_cert {
            times.renew_at = std::time::UNIX_EPOCH;
        }
        self.tls.set(Some(tls));
        *lock(&self.cert_times) = Some(times);
        *lock(&self.tls_report) = Some(crate::types::NodeTlsInfo::of_node(&id.cert_pem, &ca));
        if id.dek.is_some() {
            keys.dek = id.dek;
            keys.pending_dek = id.pending_dek;
        }
        Ok(())
    }

    /// Store a new key/certificate (and CA) and switch to them.
    pub(crate) fn install_cert(
        &self,
        key_pem: &str,
        cert_pem: &str,
        ca_pem: Option<&str>,
    ) -> Result<(), String> {
        // Checked before anything is written: a key and certificate that do not make a TLS
        // identity under this CA would leave a node that refuses to start.
        let ca = match ca_pem {
            Some(ca) => ca.to_string(),
            None => {
                let p = self.root.ca_file();
                std::fs::read_to_string(&p).map_err(|e| format!("{}: {e}", p.display()))?
            }
        };
        let (tls, times) = tls_identity(&ca, key_pem, cert_pem)
            .map_err(|e| format!("the new certificate cannot be used: {e}"))?;
        if ca_pem.is_some() {
            let p = self.root.ca_file();
            files::write_atomic(&p, ca.as_bytes(), 0o600)
                .map_err(|e| format!("{}: {e}", p.display()))?;
        }
        {
            let keys = lock(&self.keys);
            let id = files::Identity {
                key_pem: key_pem.to_string(),
                cert_pem: cert_pem.to_string(),
                dek: keys.dek.clone(),
                pending_dek: keys.pending_dek.clone(),
                renew_cert: false,
            };
            self.root
                .save_identity(&id, keys.kek.as_ref())
                .map_err(|e| format!("{}: {e}", self.root.identity_file().display()))?;
        }
        self.tls.set(Some(tls));
        *lock(&self.cert_times) = Some(times);
        *lock(&self.tls_report) = Some(crate::types::NodeTlsInfo::of_node(cert_pem, &ca));
        Ok(())
    }

    /// Trust the roots `ca_pem` from now on (the swarm's, as the leader sends them: both
    /// roots during a root rotation, the new one alone after it), unless this node's own
    /// certificate would not chain to them (swarmkit's `UpdateRootCA` refuses that too).
    pub(crate) fn install_trust(&self, ca_pem: &str) -> Result<(), String> {
        let p = self.root.ca_file();
        let current = std::fs::read_to_string(&p).map_err(|e| format!("{}: {e}", p.display()))?;
        if current == ca_pem {
            return Ok(());
        }
        let keys = lock(&self.keys);
        let id = self
            .root
            .load_identity(keys.kek.as_ref())
            .map_err(|e| e.to_string())?;
        // Verified against those roots alone, the rest of the node's chain (a cross-signed
        // intermediate) as intermediates only: that it is signed by a certificate this
        // node holds says nothing about whether the roots vouch for that certificate.
        if let Err(e) = shoal_ca::chains_to(&id.cert_pem, ca_pem) {
            return Err(format!(
                "this node's certificate does not chain to the swarm's new root CA: {e}"
            ));
        }
        let (tls, _) = tls_identity(ca_pem, &id.key_pem, &id.cert_pem)
            .map_err(|e| format!("the swarm's roots cannot be used: {e}"))?;
        files::write_atomic(&p, ca_pem.as_bytes(), 0o600)
            .map_err(|e| format!("{}: {e}", p.display()))?;
        drop(keys);
        self.tls.set(Some(tls));
        *lock(&self.tls_report) = Some(crate::types::NodeTlsInfo::of_node(&id.cert_pem, ca_pem));
        Ok(())
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

/// Undo or finish what a crash interrupted, as the files show it: a store creation cut
/// short (never in use), files of a swarm without node.json (an interrupted `swarm init`,
/// `join` or `leave`: node.json is written last and removed last), a Raft store on a
/// worker (an interrupted promotion or demotion; the cluster tells it its role again).
fn finish_interrupted_changes(root: &DataRoot, m: Option<&Membership>) -> Result<(), DaemonError> {
    let io = |what: &str, e| DaemonError::Io(what.to_string(), e);
    match m {
        None => {
            if root.has_swarm_files() {
                tracing::warn!(
                    "files of a swarm without node.json (an interrupted swarm init, join \
                     or leave): removing them, this node is not in a swarm"
                );
                root.wipe_swarm()
                    .map_err(|e| io("removing the files of an unfinished swarm", e))?;
            }
        }
        Some(m) => {
            let raft = root.raft_file();
            if store::remove_leftovers(&raft)
                .map_err(|e| io("removing an unfinished raft store", e))?
            {
                tracing::warn!("removed a raft store whose creation was interrupted");
            }
            if m.role == crate::types::Role::Worker && raft.exists() {
                tracing::warn!(
                    "a raft store on a worker (an interrupted promotion or demotion): removing it"
                );
                std::fs::remove_file(&raft)
                    .map_err(|e| io(&format!("removing {}", raft.display()), e))?;
            }
        }
    }
    Ok(())
}

/// This manager's Raft store as a crash left it. An interrupted `--force-new-cluster`
/// is undone (its new store has nothing yet) or finished (it has); a store created for
/// a newer Raft ID than node.json names (a promotion interrupted between the two
/// writes) is that node's, and node.json follows it. A store that cannot be used is an
/// `Ok(Err(problem))`, with the way out; errors worth retrying (a store another process
/// holds, an I/O error) stop the start.
fn open_store_at_start(
    root: &DataRoot,
    m: &mut Membership,
    deks: &[SealKey],
) -> Result<Result<store::Opened, String>, DaemonError> {
    let path = root.raft_file();
    let backup = root.force_backup_file();
    let mut opened = store::open_with_keys(&path, deks);
    if backup.exists() {
        let interrupted = match &opened {
            Err(store::OpenError::Missing) => true,
            Ok(o) => o.pristine,
            Err(_) => false,
        };
        if interrupted {
            tracing::warn!(
                "an interrupted swarm init --force-new-cluster: putting back the previous raft store"
            );
            drop(opened);
            store::install(&backup, &path)
                .map_err(|e| DaemonError::Io(format!("moving {} back", backup.display()), e))?;
            opened = store::open_with_keys(&path, deks);
        } else if opened.is_ok() {
            tracing::info!(
                "a finished swarm init --force-new-cluster: removing the previous raft store"
            );
            std::fs::remove_file(&backup)
                .map_err(|e| DaemonError::Io(format!("removing {}", backup.display()), e))?;
        }
    }
    let opened = match opened {
        Ok(o) => o,
        Err(e) if e.is_unusable() => return Ok(Err(unusable_store_message(&path, &e, m))),
        Err(e) => {
            return Err(DaemonError::Setup(format!(
                "opening {}: {e}",
                path.display()
            )))
        }
    };
    if let Some(owner) = opened.owner.filter(|o| *o != m.raft_id) {
        tracing::warn!(
            node_json = m.raft_id,
            store = owner,
            "the raft store was made for a newer raft id (an interrupted promotion): taking it"
        );
        m.raft_id = owner;
        root.save_membership(m)
            .map_err(|e| DaemonError::Io("saving node.json".into(), e))?;
    }
    Ok(Ok(opened))
}

/// What a manager whose Raft store cannot be used is told, at start and on every command.
fn unusable_store_message(path: &std::path::Path, e: &store::OpenError, m: &Membership) -> String {
    format!(
        "this node is a manager of swarm {cluster} (node.json) but its Raft store {path} \
         cannot be used: {e}. This node's copy of the swarm's state is lost; it serves no \
         swarm command until you choose: `shoal swarm leave --force` makes it a node outside \
         any swarm (the file is kept as {path}.unusable-<time>), then `shoal swarm join` it \
         again (and `shoal node rm` its old entry on another manager), or `shoal swarm init` a \
         new swarm; or, with a good copy of the store, stop shoald, put the copy at {path} and \
         start shoald again",
        cluster = m.cluster_id,
        path = path.display(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Role;

    /// The Raft key of these tests' stores.
    fn dek() -> SealKey {
        static KEY: std::sync::OnceLock<SealKey> = std::sync::OnceLock::new();
        KEY.get_or_init(SealKey::generate).clone()
    }

    fn membership(role: Role, raft_id: u64) -> Membership {
        Membership {
            node_id: "n1".into(),
            raft_id,
            cluster_id: "c1".into(),
            role,
            addr: "127.0.0.1".into(),
            listen_port: 0,
            managers: Vec::new(),
            heartbeat_ms: 5000,
        }
    }

    fn root() -> (tempfile::TempDir, DataRoot) {
        let dir = tempfile::tempdir().unwrap();
        let root = DataRoot(dir.path().to_path_buf());
        (dir, root)
    }

    /// A crash during `swarm init` or `join` (node.json is written last) leaves files of a
    /// swarm without node.json, a complete store or a temporary one among them: start-up
    /// removes them all, and the node is simply not in a swarm.
    #[test]
    fn files_of_an_unfinished_init_are_removed_at_start() {
        let (_dir, root) = root();
        store::create(&root.raft_file(), 1).unwrap();
        std::fs::write(root.raft_creating_file(), vec![0u8; 4096]).unwrap();
        std::fs::write(root.ca_file(), b"ca").unwrap();
        std::fs::write(root.identity_file(), b"id").unwrap();
        finish_interrupted_changes(&root, None).unwrap();
        assert!(!root.has_swarm_files());
    }

    /// A promotion (or demotion) cut short leaves a worker with a store it does not use; a
    /// store creation cut short leaves a temporary file. Both go; a manager's store stays.
    #[test]
    fn leftover_stores_of_workers_and_creations_are_removed_at_start() {
        let (_dir, root) = root();
        store::create(&root.raft_file(), 1).unwrap();
        std::fs::write(root.raft_creating_file(), b"").unwrap();
        finish_interrupted_changes(&root, Some(&membership(Role::Manager, 1))).unwrap();
        assert!(root.raft_file().exists());
        assert!(!root.raft_creating_file().exists());
        finish_interrupted_changes(&root, Some(&membership(Role::Worker, 1))).unwrap();
        assert!(!root.raft_file().exists());
    }

    /// A manager whose store is missing, empty, zero-filled or cut short does not start on a
    /// fresh store: it gets a message naming the file and the way out, and the file is left
    /// as it was.
    #[test]
    fn a_manager_with_an_unusable_store_gets_the_way_out() {
        let (_dir, root) = root();
        let path = root.raft_file();
        store::create(&path, 1).unwrap();
        let good = std::fs::read(&path).unwrap();
        let cases: [(&str, Option<Vec<u8>>); 4] = [
            ("missing", None),
            ("empty", Some(Vec::new())),
            ("all zeros", Some(vec![0u8; good.len()])),
            ("cut short", Some(good[..good.len() / 2].to_vec())),
        ];
        for (what, content) in cases {
            let _ = std::fs::remove_file(&path);
            if let Some(c) = &content {
                std::fs::write(&path, c).unwrap();
            }
            let mut m = membership(Role::Manager, 1);
            let problem = match open_store_at_start(&root, &mut m, &[dek()]) {
                Ok(Err(problem)) => problem,
                Ok(Ok(_)) => panic!("{what}: a manager started on it"),
                Err(e) => panic!("{what}: start failed: {e}"),
            };
            assert!(problem.contains(&path.display().to_string()), "{problem}");
            assert!(problem.contains("swarm leave --force"), "{problem}");
            assert!(problem.contains(what), "{what}: {problem}");
            match content {
                Some(c) => assert_eq!(std::fs::read(&path).unwrap(), c, "{what}: file changed"),
                None => assert!(!path.exists(), "{what}: a store was created"),
            }
        }
    }

    /// A promotion cut short between the new store and node.json: the store, made for the
    /// new Raft ID, wins, and node.json is brought up to date.
    #[test]
    fn a_store_made_for_a_newer_raft_id_is_taken_with_its_id() {
        let (_dir, root) = root();
        store::create(&root.raft_file(), 22).unwrap();
        let mut m = membership(Role::Manager, 11);
        root.save_membership(&m).unwrap();
        let opened = open_store_at_start(&root, &mut m, &[dek()])
            .unwrap()
            .unwrap();
        assert_eq!(opened.owner, Some(22));
        assert_eq!(m.raft_id, 22);
        assert_eq!(root.load_membership().unwrap().unwrap().raft_id, 22);
    }

    /// `--force-new-cluster` cut short: before its new store holds anything, the old store
    /// comes back; once it does, the old one goes.
    #[test]
    fn an_interrupted_force_new_cluster_is_undone_or_finished() {
        let (_dir, root) = root();
        let (path, backup) = (root.raft_file(), root.force_backup_file());
        let mut m = membership(Role::Manager, 1);
        // The old store moved aside, the new one not yet in place.
        store::create(&backup, 1).unwrap();
        let opened = open_store_at_start(&root, &mut m, &[dek()])
            .unwrap()
            .unwrap();
        assert_eq!(opened.owner, Some(1));
        assert!(!backup.exists());
        drop(opened);
        // The new one in place, still empty.
        std::fs::rename(&path, &backup).unwrap();
        store::create(&path, 2).unwrap();
        let opened = open_store_at_start(&root, &mut m, &[dek()])
            .unwrap()
            .unwrap();
        assert_eq!((opened.owner, m.raft_id), (Some(1), 1));
        assert!(!backup.exists());
        drop(opened);
        // The new cluster formed (its store has a vote): the old store goes.
        std::fs::copy(&path, &backup).unwrap();
        store::create(&path, 2).unwrap();
        {
            let mut opened = store::open(&path, &dek()).unwrap();
            futures::executor::block_on(openraft::storage::RaftLogStorage::save_vote(
                &mut opened.log,
                &openraft::Vote::new(1, 2),
            ))
            .unwrap();
        }
        let opened = open_store_at_start(&root, &mut m, &[dek()])
            .unwrap()
            .unwrap();
        assert_eq!((opened.owner, m.raft_id), (Some(2), 2));
        assert!(!backup.exists());
    }

    /// A manager's identity (sealed by `kek` if given), CA and node.json, no store.
    fn manager_files(root: &DataRoot, dek: Option<SealKey>, kek: Option<&SealKey>) {
        manager_files_valid_for(root, dek, kek, shoal_ca::NODE_CERT_VALIDITY);
    }

    fn manager_files_valid_for(
        root: &DataRoot,
        dek: Option<SealKey>,
        kek: Option<&SealKey>,
        life: std::time::Duration,
    ) {
        let ca = shoal_ca::ClusterCa::generate().unwrap();
        let (key_pem, csr) = shoal_ca::new_node_key().unwrap();
        let cert_pem = ca
            .sign_csr_valid_for(&csr, "n1", Role::Manager, "c1", life)
            .unwrap();
        let id = files::Identity {
            key_pem,
            cert_pem,
            dek,
            pending_dek: None,
            renew_cert: false,
        };
        root.save_identity(&id, kek).unwrap();
        std::fs::write(root.ca_file(), ca.cert_pem()).unwrap();
        root.save_membership(&membership(Role::Manager, 1)).unwrap();
    }

    fn config(dir: &tempfile::TempDir, root: &DataRoot) -> DaemonConfig {
        DaemonConfig {
            data_root: root.0.clone(),
            socket: dir.path().join("shoal.sock"),
            listen_addr: "127.0.0.1:0".parse().unwrap(),
            metrics_addr: None,
            hostname: "test".into(),
            raft: RaftTiming::default(),
            dns_ttl: 5,
            lb: LbOptions::default(),
            swarm_port: SwarmPortLimits::default(),
            min_cert_expiry: std::time::Duration::from_secs(3600),
        }
    }

    /// A manager whose store is unusable still starts (as root) and answers every command
    /// with the way out, rather than exiting at each start with no command able to help.
    #[test]
    fn a_manager_with_a_zeroed_store_starts_and_says_why() {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(zeroed_store_start());
    }

    async fn zeroed_store_start() {
        assert!(
            nix::unistd::geteuid().is_root(),
            "shoald needs root; run the tests as root"
        );
        let (dir, root) = root();
        manager_files(&root, None, None);
        std::fs::write(root.raft_file(), vec![0u8; 1_589_248]).unwrap();
        let daemon = Daemon::start(config(&dir, &root)).await.expect("start");
        for req in [
            crate::api::ApiRequest::NodeList,
            crate::api::ApiRequest::SwarmLeave { force: false },
            crate::api::ApiRequest::SwarmInit(crate::api::InitRequest {
                advertise_addr: None,
                listen_addr: None,
                force_new_cluster: true,
                dispatcher_heartbeat_ms: None,
                task_history_limit: None,
                default_addr_pool: None,
                default_addr_pool_mask_length: None,
                data_path_port: None,
                autolock: false,
                cert_expiry_s: None,
                availability: None,
            }),
        ] {
            let e = daemon.handle_api(req).await.expect_err("served");
            assert!(e.message.contains("swarm leave --force"), "{}", e.message);
        }
        assert!(daemon
            .handle_api(crate::api::ApiRequest::Info)
            .await
            .is_ok());
        assert_eq!(
            std::fs::metadata(root.raft_file()).unwrap().len(),
            1_589_248
        );
    }

    /// A node whose keys are sealed (autolock) starts locked: it serves nothing of the
    /// swarm and says so in moby's words, refuses a malformed or wrong unlock key without
    /// changing anything, and can still leave with --force.
    #[test]
    fn a_node_with_sealed_keys_starts_locked() {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(locked_start());
    }

    async fn locked_start() {
        use crate::api::{msg, ApiReply, ApiRequest};
        assert!(
            nix::unistd::geteuid().is_root(),
            "shoald needs root; run the tests as root"
        );
        let (dir, root) = root();
        let kek = SealKey::generate();
        manager_files(&root, Some(dek()), Some(&kek));
        store::create(&root.raft_file(), 1).unwrap();
        let sealed = std::fs::read(root.identity_file()).unwrap();
        let daemon = Daemon::start(config(&dir, &root)).await.expect("start");
        assert!(
            daemon.manager().is_none(),
            "a locked node started its manager"
        );
        match daemon.handle_api(ApiRequest::Info).await {
            Ok(ApiReply::Info(info)) => assert!(info.locked),
            other => panic!("{other:?}"),
        }
        let err = |r: crate::api::ApiResult| r.expect_err("served").message;
        assert_eq!(
            err(daemon.handle_api(ApiRequest::NodeList).await),
            msg::SWARM_LOCKED
        );
        assert_eq!(
            err(daemon
                .handle_api(ApiRequest::SwarmLeave { force: false })
                .await),
            msg::LEAVE_LOCKED
        );
        let unlock = |key: String| ApiRequest::SwarmUnlock { key };
        assert_eq!(
            err(daemon.handle_api(unlock("hello".into())).await),
            "invalid key string"
        );
        assert_eq!(
            err(daemon
                .handle_api(unlock(SealKey::generate().to_unlock_key()))
                .await),
            msg::INVALID_UNLOCK_KEY
        );
        assert!(daemon.is_locked());
        assert_eq!(std::fs::read(root.identity_file()).unwrap(), sealed);
        match daemon
            .handle_api(ApiRequest::SwarmLeave { force: true })
            .await
        {
            Ok(ApiReply::Left) => {}
            other => panic!("{other:?}"),
        }
        assert!(!daemon.is_locked());
        assert!(!root.membership_file().exists() && !root.identity_file().exists());
        assert_eq!(
            err(daemon.handle_api(unlock(kek.to_unlock_key())).await),
            msg::NOT_IN_SWARM_MANAGER
        );
    }

    /// A node whose certificate ran out while it was down serves nothing of the swarm and
    /// says moby's words for it (no peer would accept it); it can still leave.
    #[test]
    fn a_node_with_an_expired_certificate_says_so() {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(expired_start());
    }

    async fn expired_start() {
        use crate::api::{msg, ApiReply, ApiRequest};
        assert!(
            nix::unistd::geteuid().is_root(),
            "shoald needs root; run the tests as root"
        );
        let (dir, root) = root();
        manager_files_valid_for(&root, Some(dek()), None, std::time::Duration::ZERO);
        store::create(&root.raft_file(), 1).unwrap();
        // Valid until the second it was signed in: expired once that second is past.
        let id = root.load_identity(None).unwrap();
        let (_, until) = shoal_ca::validity_of_pem(&id.cert_pem).unwrap();
        while std::time::SystemTime::now() <= until {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        let daemon = Daemon::start(config(&dir, &root)).await.expect("start");
        assert!(
            daemon.manager().is_none(),
            "a manager started on an expired certificate"
        );
        let e = daemon
            .handle_api(ApiRequest::NodeList)
            .await
            .expect_err("served");
        assert_eq!(e.message, msg::CERTS_EXPIRED);
        match daemon
            .handle_api(ApiRequest::SwarmLeave { force: true })
            .await
        {
            Ok(ApiReply::Left) => {}
            other => panic!("{other:?}"),
        }
        assert!(!root.membership_file().exists());
    }

    /// A manager killed during a rotation of its Raft store's key (node-identity.pem holds
    /// the key and the pending one) starts, whichever key the store was sealed with when
    /// it died (before the re-sealed copy was renamed over it, with a leftover copy beside
    /// it, or after), and finishes the rotation: the pending key becomes the key, the old
    /// one is gone from the identity and no longer opens the store.
    #[test]
    fn a_manager_killed_during_a_key_rotation_finishes_it_at_start() {
        assert!(
            nix::unistd::geteuid().is_root(),
            "shoald needs root; run the tests as root"
        );
        for resealed in [false, true] {
            let (dir, root) = root();
            let (old, new) = (SealKey::generate(), SealKey::generate());
            manager_files(&root, Some(old.clone()), None);
            let mut id = root.load_identity(None).unwrap();
            id.pending_dek = Some(new.clone());
            root.save_identity(&id, None).unwrap();
            let path = root.raft_file();
            store::create(&path, 1).unwrap();
            {
                let mut opened = store::open(&path, &old).unwrap();
                futures::executor::block_on(openraft::storage::RaftLogStorage::save_vote(
                    &mut opened.log,
                    &openraft::Vote::new(3, 1),
                ))
                .unwrap();
                if resealed {
                    assert!(opened.sm.rekey(&new).unwrap());
                }
            }
            if !resealed {
                std::fs::write(store::rekeying_path(&path), vec![0u8; 4096]).unwrap();
            }
            let rt = tokio::runtime::Runtime::new().unwrap();
            rt.block_on(async {
                let daemon = Daemon::start(config(&dir, &root)).await.expect("start");
                assert!(daemon.manager().is_some(), "resealed={resealed}");
                let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
                while root.load_identity(None).unwrap().pending_dek.is_some() {
                    assert!(
                        std::time::Instant::now() < deadline,
                        "resealed={resealed}: the rotation was not finished"
                    );
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
                daemon.stop_swarm_tasks().await;
            });
            drop(rt);
            let id = root.load_identity(None).unwrap();
            assert_eq!(id.dek.as_ref(), Some(&new), "resealed={resealed}");
            assert!(!store::rekeying_path(&path).exists());
            assert!(
                matches!(store::open(&path, &old), Err(store::OpenError::WrongKey)),
                "resealed={resealed}: the old key still opens the store"
            );
            let mut opened = store::open(&path, &new).expect("open with the new key");
            let vote = futures::executor::block_on(openraft::storage::RaftLogStorage::read_vote(
                &mut opened.log,
            ))
            .unwrap();
            assert_eq!(vote, Some(openraft::Vote::new(3, 1)), "resealed={resealed}");
        }
    }

    /// A node takes new roots only if its certificate chains to them: a cross-signed
    /// intermediate it holds does not make its certificate chain to any roots.
    #[test]
    fn trust_is_taken_only_for_roots_the_certificate_chains_to() {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let (dir, root) = root();
            let old = shoal_ca::ClusterCa::generate().unwrap();
            let new = shoal_ca::ClusterCa::generate().unwrap();
            let other = shoal_ca::ClusterCa::generate().unwrap();
            let cross = old.cross_sign(new.cert_pem()).unwrap();
            let (key_pem, csr) = shoal_ca::new_node_key().unwrap();
            let cert = new.sign_csr(&csr, "n1", Role::Worker, "c1").unwrap();
            let id = files::Identity {
                key_pem,
                cert_pem: format!("{cert}{cross}"),
                dek: None,
                pending_dek: None,
                renew_cert: false,
            };
            root.save_identity(&id, None).unwrap();
            std::fs::write(root.ca_file(), old.cert_pem()).unwrap();
            root.save_membership(&membership(Role::Worker, 0)).unwrap();
            let daemon = Daemon::start(config(&dir, &root)).await.expect("start");
            let trusted = || std::fs::read_to_string(root.ca_file()).unwrap();
            let e = daemon.install_trust(other.cert_pem()).unwrap_err();
            assert!(
                e.starts_with("this node's certificate does not chain to the swarm's new root CA"),
                "{e}"
            );
            assert_eq!(trusted(), old.cert_pem());
            let both = format!("{}{}", old.cert_pem(), new.cert_pem());
            daemon.install_trust(&both).unwrap();
            assert_eq!(trusted(), both);
            daemon.install_trust(new.cert_pem()).unwrap();
            assert_eq!(trusted(), new.cert_pem());
            daemon.stop_swarm_tasks().await;
        });
    }

    /// Autolock turned on seals a TLS key that sat in the clear: the node is to renew its
    /// certificate with a new key. The sealing write keeps that, so a restart before the
    /// renewal still does it; a new certificate clears it, and a change of unlock key
    /// (sealed to sealed) does not ask again.
    #[test]
    fn sealing_a_nodes_keys_asks_for_a_new_certificate() {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let (dir, root) = root();
            manager_files(&root, Some(dek()), None);
            store::create(&root.raft_file(), 1).unwrap();
            let daemon = Daemon::start(config(&dir, &root)).await.expect("start");
            let due = || {
                lock(&daemon.cert_times).is_some_and(|t| t.renew_at <= std::time::SystemTime::now())
            };
            assert!(!due(), "a fresh certificate is due");
            let kek = SealKey::generate();
            daemon.set_kek(Some(kek.clone())).unwrap();
            assert!(due(), "no renewal asked for after sealing");
            assert!(root.load_identity(Some(&kek)).unwrap().renew_cert);
            // As after a restart: the certificate is due from what the file says.
            *lock(&daemon.cert_times) = None;
            daemon.load_tls().unwrap();
            assert!(due(), "the renewal was forgotten");
            let id = root.load_identity(Some(&kek)).unwrap();
            daemon
                .install_cert(&id.key_pem, &id.cert_pem, None)
                .unwrap();
            assert!(!due());
            assert!(!root.load_identity(Some(&kek)).unwrap().renew_cert);
            daemon.set_kek(Some(SealKey::generate())).unwrap();
            assert!(!due(), "a change of unlock key asked for a renewal");
            daemon.stop_swarm_tasks().await;
        });
    }

    /// Autolock turned on (the node's keys go from the clear to sealed) records a new,
    /// pending Raft key in the same write, and a manager re-seals its store with it; a
    /// change of unlock key (sealed to sealed) and autolock turned off do not rotate it.
    #[test]
    fn sealing_a_managers_keys_rotates_its_raft_key_once() {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let (dir, root) = root();
            let old = SealKey::generate();
            manager_files(&root, Some(old.clone()), None);
            store::create(&root.raft_file(), 1).unwrap();
            let daemon = Daemon::start(config(&dir, &root)).await.expect("start");
            let mgr = daemon.manager().expect("a manager");
            let kek = SealKey::generate();
            daemon.set_kek(Some(kek.clone())).unwrap();
            let id = root.load_identity(Some(&kek)).unwrap();
            assert_eq!(id.dek.as_ref(), Some(&old));
            let new = id.pending_dek.expect("no pending key after sealing");
            assert_ne!(new, old);
            // Here, or by the manager's autolock loop just before (either way it is done).
            daemon.rotate_dek(&mgr.sm).unwrap();
            let id = root.load_identity(Some(&kek)).unwrap();
            assert_eq!((id.dek.as_ref(), id.pending_dek), (Some(&new), None));
            // Another unlock key, then autolock off: the Raft key stays.
            let kek2 = SealKey::generate();
            daemon.set_kek(Some(kek2.clone())).unwrap();
            daemon.set_kek(None).unwrap();
            let id = root.load_identity(None).unwrap();
            assert_eq!((id.dek.as_ref(), id.pending_dek), (Some(&new), None));
            assert!(!daemon.rotate_dek(&mgr.sm).unwrap());
            // On again: a new one.
            daemon.set_kek(Some(kek)).unwrap();
            daemon.rotate_dek(&mgr.sm).unwrap();
            assert!(lock(&daemon.keys).pending_dek.is_none());
            assert_ne!(lock(&daemon.keys).dek.as_ref(), Some(&new));
            daemon.stop_swarm_tasks().await;
        });
    }
}
