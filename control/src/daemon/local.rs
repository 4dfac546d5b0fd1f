//! The local API on the unix socket: swarm init/join/leave here, cluster requests on the leader.

use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use shoal_ca::{ClusterCa, JoinToken};
use tokio::net::{UnixListener, UnixStream};

use super::files::Membership;
use super::manager::single_member;
use super::{lock, Daemon, Manager};
use crate::api::{msg, ApiError, ApiReply, ApiRequest, ApiResult, Info, InitRequest, JoinRequest};
use crate::peer::{self, PeerClient, PeerRequest, PeerResponse};
use crate::raft::store;
use crate::state::{new_node_record, Command};
use crate::types::{ClusterInfo, NodeDescription, Role};
use crate::wire;

const DEFAULT_HEARTBEAT_MS: u64 = 5000;
/// Connections kept open to the leader for forwarded calls.
const MAX_POOLED_LEADER_CONNS: usize = 32;

pub(crate) async fn serve_socket(daemon: Arc<Daemon>) -> std::io::Result<()> {
    let path = daemon.cfg.socket.clone();
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    // We hold the data root lock, so a socket file left here is stale.
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    tokio::spawn(async move {
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    tokio::spawn(serve_client(daemon.clone(), stream));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accepting on the API socket");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    });
    Ok(())
}

async fn serve_client(daemon: Arc<Daemon>, stream: UnixStream) {
    let mut conn = wire::framed(stream);
    loop {
        let req: ApiRequest = match wire::recv(&mut conn).await {
            Ok(r) => r,
            // A request this daemon cannot read (a client of another version, a value
            // JSON cannot carry) gets an answer saying so, not a closed connection.
            Err(wire::WireError::Decode(e)) => {
                tracing::warn!(error = %e, "unreadable request on the API socket");
                let reply: ApiResult = Err(ApiError::daemon(format!("invalid request: {e}")));
                if wire::send(&mut conn, &reply).await.is_err() {
                    return;
                }
                continue;
            }
            Err(_) => return,
        };
        if let ApiRequest::Exec {
            reference,
            argv,
            interactive,
            tty,
        } = req
        {
            let _ = super::exec::serve(&daemon, &mut conn, reference, argv, interactive, tty).await;
            return;
        }
        let kind = req.kind();
        let started = Instant::now();
        let result = daemon.handle_api(req).await;
        daemon
            .metrics
            .observe_api(kind, result.is_ok(), started.elapsed());
        if wire::send(&mut conn, &result).await.is_err() {
            return;
        }
    }
}

impl Daemon {
    pub async fn handle_api(self: &Arc<Self>, req: ApiRequest) -> ApiResult {
        if self.is_locked() {
            return match req {
                ApiRequest::Info => Ok(ApiReply::Info(self.info())),
                ApiRequest::SwarmUnlock { key } => {
                    let _g = self.op_lock.lock().await;
                    self.unlock(&key).await
                }
                ApiRequest::SwarmLeave { force: true } => {
                    let _g = self.op_lock.lock().await;
                    let left = self.leave(true).await?;
                    self.set_locked(false);
                    Ok(left)
                }
                ApiRequest::SwarmLeave { force: false } => Err(ApiError::daemon(msg::LEAVE_LOCKED)),
                ApiRequest::SwarmInit(_) | ApiRequest::SwarmJoin(_) => {
                    Err(ApiError::daemon(msg::ALREADY_IN_SWARM))
                }
                ApiRequest::SystemInfo => Ok(self.system_info()),
                _ => Err(ApiError::daemon(msg::SWARM_LOCKED)),
            };
        }
        if let Some(problem) = self.store_problem() {
            return match req {
                ApiRequest::Info => Ok(ApiReply::Info(self.info())),
                ApiRequest::SwarmLeave { force: true } => {
                    let _g = self.op_lock.lock().await;
                    self.leave_without_store().await
                }
                ApiRequest::SystemInfo => Ok(self.system_info()),
                _ => Err(ApiError::daemon(problem)),
            };
        }
        match req {
            ApiRequest::Info => Ok(ApiReply::Info(self.info())),
            ApiRequest::SwarmInit(r) => {
                let _g = self.op_lock.lock().await;
                self.init(r).await
            }
            ApiRequest::SwarmJoin(r) => {
                let _g = self.op_lock.lock().await;
                self.join(r).await
            }
            ApiRequest::SwarmLeave { force } => {
                let _g = self.op_lock.lock().await;
                self.leave(force).await
            }
            ApiRequest::LbReport { node } => self.serve_lb_report(node).await,
            ApiRequest::SystemInfo => Ok(self.system_info()),
            ApiRequest::SwarmUnlock { .. } => {
                // moby's UnlockSwarm on a node that is not locked.
                match (self.membership(), self.manager()) {
                    (None, _) => Err(ApiError::daemon(msg::NOT_IN_SWARM_MANAGER)),
                    (Some(_), None) => Err(ApiError::daemon(msg::NOT_MANAGER_WORKER)),
                    (Some(_), Some(_)) => Err(ApiError::daemon(msg::NOT_LOCKED)),
                }
            }
            req => self.manager_request(req).await,
        }
    }

    /// `swarm unlock`: open the keys sealed on disk with `key`, then take up the node's
    /// place in the swarm as a start does. A wrong key changes nothing.
    async fn unlock(self: &Arc<Self>, key: &str) -> ApiResult {
        let Some(m) = self.membership() else {
            return Err(ApiError::daemon(msg::NOT_IN_SWARM_MANAGER));
        };
        let kek = shoal_ca::seal::SealKey::parse_unlock_key(key)
            .map_err(|e| ApiError::daemon(e.to_string()))?;
        match self.root.load_identity(Some(&kek)) {
            Ok(_) => {}
            Err(super::files::IdentityError::WrongKey) => {
                return Err(ApiError::daemon(msg::INVALID_UNLOCK_KEY))
            }
            Err(e) => return Err(ApiError::daemon(e.to_string())),
        }
        lock(&self.keys).kek = Some(kek.clone());
        self.set_locked(false);
        tracing::info!("unlocked: taking up this node's place in the swarm");
        if let Err(e) = self.resume_swarm(m).await {
            self.stop_swarm_tasks().await;
            // Sealed again by the key that opened it (its manager may have re-sealed with a
            // newer one in the meantime), so that the same key unlocks it next time.
            if let Err(e) = self.set_kek(Some(kek)) {
                tracing::warn!(error = %e, "sealing the keys again after a failed unlock");
            }
            self.set_locked(true);
            lock(&self.keys).kek = None;
            return Err(ApiError::daemon(format!(
                "swarm component could not be started: {e}"
            )));
        }
        Ok(ApiReply::Done)
    }

    fn info(&self) -> Info {
        let m = self.membership();
        let mgr = self.manager();
        Info {
            node_id: m.as_ref().map(|m| m.node_id.clone()),
            role: m.as_ref().map(|m| m.role),
            cluster_id: m.as_ref().map(|m| m.cluster_id.clone()),
            node_addr: m.as_ref().map(|m| m.addr.clone()),
            leader_addr: mgr.and_then(|g| g.leader_addr()),
            managers: m.map(|m| m.managers).unwrap_or_default(),
            locked: self.is_locked(),
        }
    }

    /// Serve on the leader: here if we lead, else forwarded over mTLS.
    pub(crate) async fn manager_request(self: &Arc<Self>, req: ApiRequest) -> ApiResult {
        if let Some(problem) = self.store_problem() {
            return Err(ApiError::daemon(problem));
        }
        let Some(m) = self.membership() else {
            return Err(ApiError::daemon(msg::NOT_IN_SWARM_MANAGER));
        };
        let Some(mgr) = self.manager() else {
            return Err(ApiError::daemon(msg::NOT_MANAGER_WORKER));
        };
        if mgr.is_leader() {
            return self.serve_manager_api(&mgr, req, &m.node_id).await;
        }
        let Some(leader) = mgr.leader_addr() else {
            return Err(ApiError::daemon(msg::NO_LEADER));
        };
        let pooled = {
            let mut pool = lock(&self.leader_pool);
            pool.retain(|c| c.addr() == leader);
            pool.pop()
        };
        let mut client =
            pooled.unwrap_or_else(|| PeerClient::new(leader.clone(), self.tls.clone()));
        let call = PeerRequest::Api {
            request: req,
            asked_on: m.node_id.clone(),
        };
        let result = match client.call(&call, Duration::from_secs(10)).await {
            Ok(PeerResponse::Api(r)) => r,
            Ok(PeerResponse::NotLeader { .. }) | Err(_) => {
                return Err(ApiError::daemon(msg::NO_LEADER))
            }
            Ok(other) => {
                return Err(ApiError::daemon(format!(
                    "unexpected reply from leader: {other:?}"
                )))
            }
        };
        let mut pool = lock(&self.leader_pool);
        if pool.len() < MAX_POOLED_LEADER_CONNS {
            pool.push(client);
        }
        result
    }

    async fn init(self: &Arc<Self>, req: InitRequest) -> ApiResult {
        if req.force_new_cluster {
            return self.force_new_cluster(req).await;
        }
        if self.membership().is_some() {
            return Err(ApiError::daemon(msg::ALREADY_IN_SWARM));
        }
        let (addr, port) =
            self.resolve_addrs(req.advertise_addr.as_deref(), req.listen_addr.as_deref())?;
        let heartbeat_ms = match req.dispatcher_heartbeat_ms {
            Some(ms) => {
                crate::api::check_heartbeat(Duration::from_millis(ms)).map_err(ApiError::daemon)?
            }
            None => DEFAULT_HEARTBEAT_MS,
        };
        let pool = req
            .default_addr_pool
            .clone()
            .unwrap_or_else(|| crate::networks::DEFAULT_POOL.to_string());
        let pool_net = crate::networks::Net::parse(&pool).map_err(ApiError::daemon)?;
        let subnet_bits = req
            .default_addr_pool_mask_length
            .unwrap_or(crate::networks::DEFAULT_SUBNET_BITS);
        if subnet_bits < pool_net.bits || subnet_bits > crate::networks::MAX_SUBNET_BITS {
            return Err(ApiError::daemon(format!(
                "invalid default address pool mask length {subnet_bits} for pool {pool}"
            )));
        }
        let cert_expiry_s = req
            .cert_expiry_s
            .unwrap_or(shoal_ca::NODE_CERT_VALIDITY.as_secs());
        self.check_cert_expiry(cert_expiry_s)?;
        let data_path_port = req.data_path_port.unwrap_or(4789);
        if !(1024..=49151).contains(&data_path_port) {
            return Err(ApiError::daemon(format!(
                "data path port {data_path_port} is out of range (1024 - 49151)"
            )));
        }
        let node_id = crate::ids::new_id();
        let raft_id = crate::ids::new_raft_id();
        let cluster_id = crate::ids::new_id();
        let ca = ClusterCa::generate().map_err(|e| ApiError::daemon(e.to_string()))?;
        let (key_pem, csr_pem) =
            shoal_ca::new_node_key().map_err(|e| ApiError::daemon(e.to_string()))?;
        let cert_pem = ca
            .sign_csr_valid_for(
                &csr_pem,
                &node_id,
                Role::Manager,
                &cluster_id,
                Duration::from_secs(cert_expiry_s),
            )
            .map_err(|e| ApiError::daemon(e.to_string()))?;
        let membership = Membership {
            node_id: node_id.clone(),
            raft_id,
            cluster_id: cluster_id.clone(),
            role: Role::Manager,
            addr: addr.clone(),
            listen_port: port,
            managers: vec![format!("{addr}:{port}")],
            heartbeat_ms,
        };
        let listen_addr = membership.listen_addr();
        // node.json is written last, once the swarm exists in the Raft store: a crash before
        // leaves a node outside any swarm (start-up removes the other files), never one that
        // says it is a manager without a usable store.
        let result = async {
            self.install_cert(&key_pem, &cert_pem, Some(ca.cert_pem()))?;
            let path = self.root.raft_file();
            store::create(&path, raft_id)
                .map_err(|e| format!("creating {}: {e}", path.display()))?;
            let mgr = Manager::open(self, raft_id).await?;
            *lock(&self.manager) = Some(mgr.clone());
            mgr.raft
                .initialize(single_member(raft_id, listen_addr.clone()))
                .await
                .map_err(|e| format!("initializing raft: {e}"))?;
            wait_leader(&mgr, Duration::from_secs(10)).await?;
            let now = Utc::now();
            let cluster = ClusterInfo {
                id: cluster_id.clone(),
                created_at: now,
                ca_cert_pem: ca.cert_pem().to_string(),
                ca_key_pem: ca.key_pem().to_string(),
                worker_secret: JoinToken::generate("").secret,
                manager_secret: JoinToken::generate("").secret,
                heartbeat_ms,
                task_history: req.task_history_limit.unwrap_or(5),
                addr_pool: pool.clone(),
                subnet_bits,
                data_path_port,
                unlock_key: req
                    .autolock
                    .then(|| shoal_ca::seal::SealKey::generate().to_unlock_key()),
                cert_expiry_s,
                root_rotation: None,
            };
            // The ingress network exists from the start (10.0.0.0/24 from the default pool).
            let fresh = crate::state::ClusterState {
                cluster: Some(cluster.clone()),
                ..Default::default()
            };
            let ingress = super::networks_api::allocate(
                &fresh,
                &crate::api::NetworkCreate {
                    name: "ingress".into(),
                    ..Default::default()
                },
                true,
            )
            .map_err(|e| e.message)?;
            let mut node = new_node_record(
                node_id.clone(),
                raft_id,
                Role::Manager,
                NodeDescription::of_this_host(&self.cfg.hostname),
                addr.clone(),
                listen_addr.clone(),
                now,
            );
            node.spec.availability = req.availability.unwrap_or_default();
            mgr.propose(Command::Atomic(vec![
                Command::Init {
                    cluster: Box::new(cluster.clone()),
                    node,
                },
                Command::PutNetwork { network: ingress },
            ]))
            .await
            .map_err(|e| e.message)?;
            // Sealed before node.json says this node is in the swarm.
            if let Some(key) = &cluster.unlock_key {
                let kek =
                    shoal_ca::seal::SealKey::parse_unlock_key(key).map_err(|e| e.to_string())?;
                self.set_kek(Some(kek))?;
            }
            self.set_membership(Some(membership.clone()))?;
            self.start_swarm_tasks().await?;
            Ok::<ClusterInfo, String>(cluster)
        }
        .await;
        match result {
            Ok(cluster) => Ok(ApiReply::Initialized {
                node_id,
                worker_token: JoinToken {
                    ca_digest: ca.digest(),
                    secret: cluster.worker_secret,
                }
                .to_string(),
                manager_addr: listen_addr,
                unlock_key: cluster.unlock_key,
            }),
            Err(e) => {
                self.stop_swarm_tasks().await;
                let _ = self.set_membership(None);
                self.tls.set(None);
                Err(ApiError::daemon(e))
            }
        }
    }

    /// Recover a swarm that lost quorum: this manager alone forms a new Raft group with the
    /// state it has, keeping the CA, tokens, nodes and everything else.
    ///
    /// Everything that can be checked (the addresses) is checked before anything is
    /// stopped or moved; a failure after that puts back the old Raft store and node.json
    /// and restarts the old manager, so a failed attempt loses nothing.
    async fn force_new_cluster(self: &Arc<Self>, req: InitRequest) -> ApiResult {
        let Some(old_membership) = self.membership() else {
            return Err(ApiError::daemon(
                "rpc error: code = Unknown desc = --force-new-cluster requires a node that was a swarm manager",
            ));
        };
        let Some(old) = self.manager() else {
            return Err(ApiError::daemon(msg::NOT_MANAGER_WORKER));
        };
        let state = old.sm.state();
        drop(old);
        if state.cluster.is_none() {
            return Err(ApiError::daemon(
                "this manager has no swarm state to recover",
            ));
        }
        let mut m = old_membership.clone();
        if let Some(a) = req.advertise_addr.as_deref() {
            let (addr, port) = self.resolve_addrs(Some(a), req.listen_addr.as_deref())?;
            m.addr = addr;
            m.listen_port = port;
        }
        if m.listen_port != old_membership.listen_port {
            crate::services::listen_port_conflict(&state, m.listen_port)
                .map_err(ApiError::daemon)?;
        }
        let raft_id = crate::ids::new_raft_id();
        m.raft_id = raft_id;
        m.managers = vec![m.listen_addr()];

        self.stop_swarm_tasks().await;
        // The new store is made whole before the old one moves aside, and node.json changes
        // only once the new cluster holds the state: start-up puts the old store back if a
        // crash comes before that (see `Daemon::open_store_at_start`).
        let old_raft = self.root.raft_file();
        let backup = self.root.force_backup_file();
        let fresh = match store::prepare(&old_raft, raft_id) {
            Ok(fresh) => fresh,
            Err(e) => {
                let e = format!("creating a new raft store: {e}");
                return Err(self
                    .restore_after_failed_force(&old_membership, None, e)
                    .await);
            }
        };
        if let Err(e) = std::fs::rename(&old_raft, &backup) {
            let _ = std::fs::remove_file(&fresh);
            let e = format!("moving the old raft store aside: {e}");
            return Err(self
                .restore_after_failed_force(&old_membership, None, e)
                .await);
        }
        let result = async {
            store::install(&fresh, &old_raft)
                .map_err(|e| format!("installing the new raft store: {e}"))?;
            let mgr = Manager::open(self, raft_id).await?;
            *lock(&self.manager) = Some(mgr.clone());
            mgr.raft
                .initialize(single_member(raft_id, m.listen_addr()))
                .await
                .map_err(|e| format!("initializing raft: {e}"))?;
            wait_leader(&mgr, Duration::from_secs(10)).await?;
            mgr.propose(Command::ForceNewCluster {
                state: Box::new(state),
                node_id: m.node_id.clone(),
                raft_id,
                at: Utc::now(),
            })
            .await
            .map_err(|e| e.message)?;
            self.set_membership(Some(m.clone()))?;
            self.start_swarm_tasks().await
        }
        .await;
        match result {
            Ok(()) => {
                let _ = std::fs::remove_file(&backup);
                let cluster = self
                    .manager()
                    .and_then(|g| g.sm.state().cluster)
                    .ok_or_else(|| ApiError::daemon("recovered state has no cluster"))?;
                let digest = shoal_ca::ca_digest(&cluster.ca_cert_pem)
                    .map_err(|e| ApiError::daemon(e.to_string()))?;
                Ok(ApiReply::Initialized {
                    node_id: m.node_id.clone(),
                    worker_token: JoinToken {
                        ca_digest: digest,
                        secret: cluster.worker_secret,
                    }
                    .to_string(),
                    manager_addr: m.listen_addr(),
                    unlock_key: None,
                })
            }
            Err(e) => Err(self
                .restore_after_failed_force(&old_membership, Some(&backup), e)
                .await),
        }
    }

    /// Undo a failed `--force-new-cluster`: the old Raft store (moved to `backup`) and the
    /// old node.json back in place, and the old manager running again, as before.
    async fn restore_after_failed_force(
        self: &Arc<Self>,
        old: &Membership,
        backup: Option<&std::path::Path>,
        error: String,
    ) -> ApiError {
        self.stop_swarm_tasks().await;
        let mut problems = Vec::new();
        if let Some(backup) = backup {
            // Over the new, half-made store.
            if let Err(e) = std::fs::rename(backup, self.root.raft_file()) {
                problems.push(format!(
                    "putting back the old raft store (it is in {}): {e}",
                    backup.display()
                ));
            }
        }
        if let Err(e) = self.set_membership(Some(old.clone())) {
            problems.push(e);
        }
        if problems.is_empty() {
            // The stopped manager's loops were aborted, not awaited: the store they hold
            // may take a moment to close.
            let mut reopened = Manager::open(self, old.raft_id).await;
            for _ in 0..20 {
                if reopened.is_ok() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
                reopened = Manager::open(self, old.raft_id).await;
            }
            match reopened {
                Ok(mgr) => {
                    *lock(&self.manager) = Some(mgr);
                    if let Some(hint) = old.managers.first() {
                        *lock(&self.leader_hint) = Some(hint.clone());
                    }
                    if let Err(e) = self.start_swarm_tasks().await {
                        problems.push(e);
                    }
                }
                Err(e) => problems.push(format!("reopening the old raft store: {e}")),
            }
        }
        for p in &problems {
            tracing::error!(problem = %p, "restoring after a failed --force-new-cluster");
        }
        let mut msg = format!("--force-new-cluster failed: {error}");
        if !problems.is_empty() {
            msg.push_str(&format!(
                "; restoring the previous state also failed ({}): restart shoald",
                problems.join("; ")
            ));
        }
        ApiError::daemon(msg)
    }

    async fn join(self: &Arc<Self>, req: JoinRequest) -> ApiResult {
        if self.membership().is_some() {
            return Err(ApiError::daemon(msg::ALREADY_IN_SWARM));
        }
        let token = JoinToken::parse(&req.token).map_err(|e| ApiError::daemon(e.to_string()))?;
        let mut remote = with_port(&req.remote_addr, 2377);
        let advertise = match req.advertise_addr.as_deref() {
            Some(a) => Some(self.resolve_addrs(Some(a), req.listen_addr.as_deref())?.0),
            None => None,
        };
        let port = self.resolve_listen_port(req.listen_addr.as_deref())?;
        let (key_pem, csr_pem) =
            shoal_ca::new_node_key().map_err(|e| ApiError::daemon(e.to_string()))?;
        let config = shoal_ca::tls::join_client_config(&token.ca_digest)
            .map_err(|e| ApiError::daemon(e.to_string()))?;
        let ask = PeerRequest::Join(peer::JoinSwarm {
            token: req.token.clone(),
            csr_pem,
            description: NodeDescription::of_this_host(&self.cfg.hostname),
            advertise_addr: advertise,
            listen_port: port,
            availability: req.availability,
        });
        let mut admitted = None;
        for _ in 0..5 {
            let mut conn = match peer::connect(&remote, config.clone()).await {
                Ok(c) => c,
                Err(e) => {
                    // The manager's CA is not the token's: swarmkit's words alone.
                    if let Some(m) = shoal_ca::tls::ca_mismatch(&e) {
                        return Err(ApiError::daemon(m));
                    }
                    return Err(ApiError::daemon(join_connect_error(
                        &remote,
                        &e.to_string(),
                    )));
                }
            };
            match tokio::time::timeout(Duration::from_secs(15), wire::call(&mut conn, &ask)).await {
                Ok(Ok(PeerResponse::Admitted(a))) => {
                    admitted = Some(a);
                    break;
                }
                Ok(Ok(PeerResponse::NotLeader { leader: Some(l) })) => remote = l,
                Ok(Ok(PeerResponse::NotLeader { leader: None })) => {
                    return Err(ApiError::daemon(msg::NO_LEADER))
                }
                Ok(Ok(PeerResponse::Error(e))) => return Err(ApiError::daemon(e)),
                Ok(Ok(other)) => {
                    return Err(ApiError::daemon(format!("unexpected reply: {other:?}")))
                }
                Ok(Err(e)) => {
                    return Err(ApiError::daemon(join_connect_error(
                        &remote,
                        &e.to_string(),
                    )))
                }
                Err(_) => {
                    return Err(ApiError::daemon(format!(
                        "timed out joining the swarm at {remote}"
                    )))
                }
            }
        }
        let a = admitted.ok_or_else(|| ApiError::daemon("could not find the swarm's leader"))?;
        let membership = Membership {
            node_id: a.node_id.clone(),
            raft_id: a.raft_id,
            cluster_id: a.cluster_id.clone(),
            role: a.role,
            addr: a.addr.clone(),
            listen_port: port,
            managers: a.managers.clone(),
            heartbeat_ms: a.heartbeat_ms,
        };
        let result = async {
            self.install_cert(&key_pem, &a.cert_pem, Some(&a.ca_pem))?;
            // The store before node.json: a manager's node.json always has its store (a
            // crash in between leaves files without node.json, which start-up removes).
            if a.role == Role::Manager {
                let path = self.root.raft_file();
                store::create(&path, a.raft_id)
                    .map_err(|e| format!("creating {}: {e}", path.display()))?;
            }
            self.set_membership(Some(membership.clone()))?;
            *lock(&self.leader_hint) = Some(remote.clone());
            if a.role == Role::Manager {
                let mgr = Manager::open(self, a.raft_id).await?;
                *lock(&self.manager) = Some(mgr);
            }
            // The swarm port must be up before the leader starts replicating to us.
            self.start_swarm_tasks().await?;
            if a.role == Role::Manager {
                let mut client = PeerClient::new(remote.clone(), self.tls.clone());
                match client
                    .call(&PeerRequest::RaftJoin, Duration::from_secs(45))
                    .await
                {
                    Ok(PeerResponse::Done) => {}
                    Ok(other) => return Err(format!("joining raft: {other:?}")),
                    Err(e) => return Err(format!("joining raft: {e}")),
                }
            }
            Ok(())
        }
        .await;
        match result {
            Ok(()) => Ok(ApiReply::Joined { role: a.role }),
            Err(e) => {
                // Leave nothing half-joined: tell the leader, forget everything.
                let mut client = PeerClient::new(remote, self.tls.clone());
                let _ = client
                    .call(&PeerRequest::Leave, Duration::from_secs(2))
                    .await;
                self.stop_swarm_tasks().await;
                let _ = self.set_membership(None);
                self.tls.set(None);
                Err(ApiError::daemon(e))
            }
        }
    }

    async fn leave(self: &Arc<Self>, force: bool) -> ApiResult {
        let Some(_m) = self.membership() else {
            return Err(ApiError::daemon(msg::NOT_IN_SWARM));
        };
        if let Some(mgr) = self.manager() {
            if !force {
                let state = mgr.sm.state();
                let view = mgr.view(&state);
                let (mut reachable, mut unreachable) = (0, 0);
                // moby's managerStats: the nodes with ManagerStatus (Raft members).
                for n in state.nodes.values().filter(|n| n.raft_member(&view)) {
                    match n.reachability(&view) {
                        "reachable" => reachable += 1,
                        "unreachable" => unreachable += 1,
                        _ => {}
                    }
                }
                return Err(ApiError::daemon(manager_leave_refusal(
                    reachable,
                    unreachable,
                )));
            }
        }
        let leader = lock(&self.leader_hint).clone();
        if let Some(leader) = leader {
            let mut client = PeerClient::new(leader, self.tls.clone());
            let _ = client
                .call(&PeerRequest::Leave, Duration::from_secs(2))
                .await;
        }
        self.stop_swarm_tasks().await;
        super::worker::teardown(self).await;
        self.tls.set(None);
        self.set_membership(None).map_err(ApiError::daemon)?;
        Ok(ApiReply::Left)
    }

    /// `swarm leave --force` on a manager whose Raft store is unusable (see
    /// `Daemon::open_store_at_start`): the file is kept aside, not deleted, and the node
    /// leaves as any other.
    async fn leave_without_store(self: &Arc<Self>) -> ApiResult {
        let path = self.root.raft_file();
        if path.exists() {
            let aside = path.with_extension(format!("redb.unusable-{}", Utc::now().timestamp()));
            std::fs::rename(&path, &aside).map_err(|e| {
                ApiError::daemon(format!(
                    "moving {} aside to {}: {e}",
                    path.display(),
                    aside.display()
                ))
            })?;
            tracing::warn!(kept = %aside.display(), "leaving the swarm without a usable raft store");
        }
        let left = self.leave(true).await?;
        *lock(&self.store_problem) = None;
        Ok(left)
    }

    fn resolve_listen_port(&self, listen: Option<&str>) -> Result<u16, ApiError> {
        match listen {
            None => Ok(self.cfg.listen_addr.port()),
            Some(l) => {
                let port = l.rsplit_once(':').map(|(_, p)| p).unwrap_or(l);
                port.parse()
                    .map_err(|_| ApiError::daemon(format!("invalid listen address {l}")))
            }
        }
    }

    /// The advertise IP and swarm port, as docker chooses them.
    fn resolve_addrs(
        &self,
        advertise: Option<&str>,
        listen: Option<&str>,
    ) -> Result<(String, u16), ApiError> {
        let port = self.resolve_listen_port(listen)?;
        let ip = match advertise {
            Some(a) => {
                let (host, p) = match a.parse::<std::net::SocketAddr>() {
                    Ok(sa) => (sa.ip().to_string(), Some(sa.port())),
                    Err(_) => (a.to_string(), None),
                };
                let ip = match host.parse::<IpAddr>() {
                    Ok(ip) => ip.to_string(),
                    Err(_) => interface_addr(&host)?,
                };
                return Ok((ip, p.unwrap_or(port)));
            }
            None => auto_advertise_addr()?,
        };
        Ok((ip, port))
    }
}

/// This node's swarm state as moby's `LocalNodeState`, and the error that goes with it.
/// The one place it is decided: `shoal info` and anything else that reports it read it here.
pub(crate) fn local_node_state(d: &Daemon) -> (&'static str, Option<String>) {
    // Keys sealed by the unlock key, waiting for `swarm unlock` (moby's errSwarmLocked).
    if d.is_locked() {
        return ("locked", Some(msg::SWARM_LOCKED.to_string()));
    }
    // A manager whose Raft store cannot be used serves nothing of the swarm.
    if let Some(problem) = d.store_problem() {
        return ("error", Some(problem));
    }
    if d.membership().is_some() {
        return ("active", None);
    }
    // Not in a swarm yet, but `swarm init` or `swarm join` is under way (they hold the
    // operation lock until the node is in, and set the membership last).
    if d.op_lock.try_lock().is_err() {
        return ("pending", None);
    }
    ("inactive", None)
}

impl Daemon {
    /// `shoal info`: docker's `GET /info`, from this node alone. As moby's `Cluster.Info`,
    /// a manager adds the cluster and its node counts, from its own Raft state.
    fn system_info(&self) -> ApiReply {
        use crate::system_info::{self as si, Peer, SwarmFacts};
        let (state, error) = local_node_state(self);
        let m = self.membership();
        let mut facts = SwarmFacts {
            state,
            error,
            node_id: m.as_ref().map(|m| m.node_id.clone()),
            node_addr: m.as_ref().map(|m| m.addr.clone()),
            remote_managers: m
                .as_ref()
                .map(|m| {
                    m.managers
                        .iter()
                        .map(|a| Peer {
                            node_id: None,
                            addr: a.clone(),
                        })
                        .collect()
                })
                .unwrap_or_default(),
            ..Default::default()
        };
        let mgr = self.manager().filter(|_| state == "active");
        if let Some(mgr) = mgr {
            facts.control_available = true;
            let cluster_state = mgr.sm.state();
            let view = mgr.view(&cluster_state);
            let members: Vec<_> = cluster_state
                .nodes
                .values()
                .filter(|n| n.raft_member(&view))
                .collect();
            if !members.is_empty() {
                facts.remote_managers = members
                    .iter()
                    .map(|n| Peer {
                        node_id: Some(n.id.clone()),
                        addr: n.listen_addr.clone(),
                    })
                    .collect();
            }
            facts.counts = Some((cluster_state.nodes.len(), members.len()));
            facts.cluster = cluster_state
                .cluster
                .as_ref()
                .map(|c| si::cluster_json(c, &self.cfg.raft));
            // moby asks the leader for the nodes: without one, that fails.
            if !mgr.is_leader() && mgr.leader_addr().is_none() {
                facts.error = Some(msg::NO_LEADER.to_string());
            }
        }
        let mut host = si::Host::of_this_host(&self.cfg.hostname, &self.cfg.data_root);
        host.tasks = si::TaskCounts::of(&self.root.path("tasks"));
        ApiReply::SystemInfo {
            info: si::info_json(&host, si::swarm_json(&facts)),
        }
    }
}

fn with_port(addr: &str, default: u16) -> String {
    if addr.parse::<std::net::SocketAddr>().is_ok()
        || addr
            .rsplit_once(':')
            .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
    {
        addr.to_string()
    } else {
        format!("{addr}:{default}")
    }
}

fn join_connect_error(remote: &str, err: &str) -> String {
    if err.contains("does not match") || err.contains("certificate") || err.contains("fingerprint")
    {
        format!("remote CA does not match fingerprint of the join token (manager {remote}): {err}")
    } else {
        format!("could not reach a swarm manager at {remote}: {err}")
    }
}

async fn wait_leader(mgr: &Manager, timeout: Duration) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if mgr.in_charge() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Err("raft did not elect this node leader".into())
}

/// Non-loopback IPv4 addresses by interface.
fn host_addrs() -> Vec<(String, IpAddr)> {
    let Ok(addrs) = nix::ifaddrs::getifaddrs() else {
        return Vec::new();
    };
    addrs
        .filter_map(|ifa| {
            let sin = ifa.address.as_ref()?.as_sockaddr_in()?;
            let ip = IpAddr::V4(sin.ip());
            (!ip.is_loopback()).then(|| (ifa.interface_name.clone(), ip))
        })
        .collect()
}

fn interface_addr(name: &str) -> Result<String, ApiError> {
    let found: Vec<IpAddr> = host_addrs()
        .into_iter()
        .filter(|(n, _)| n == name)
        .map(|(_, ip)| ip)
        .collect();
    match found.as_slice() {
        [ip] => Ok(ip.to_string()),
        [] => Err(ApiError::daemon(
            "advertise address must be a non-zero IP address or network interface (with optional port number)",
        )),
        [a, b, ..] => Err(ApiError::daemon(format!(
            "interface {name} has more than one IPv4 address ({a} and {b})"
        ))),
    }
}

fn auto_advertise_addr() -> Result<String, ApiError> {
    let addrs = host_addrs();
    match addrs.as_slice() {
        [(_, ip)] => Ok(ip.to_string()),
        [] => Err(ApiError::daemon(
            "could not find the system's IP address - specify one with --advertise-addr",
        )),
        [(n1, a), (n2, b), ..] if n1 == n2 => Err(ApiError::daemon(format!(
            "could not choose an IP address to advertise since this system has multiple addresses on interface {n1} ({a} and {b}) - specify one with --advertise-addr"
        ))),
        _ => Err(ApiError::daemon(
            "could not choose an IP address to advertise since this system has multiple interfaces - specify one with --advertise-addr",
        )),
    }
}

/// Why `swarm leave` without `--force` refuses on a manager, in moby's words (daemon/cluster
/// swarm.go Leave): the quorum sentence only when this departure would lose quorum
/// (`reachable - 2 <= unreachable`, counting the managers as `node ls` shows them), and
/// for the last manager its own sentence, which ends in a space as moby's does.
pub(crate) fn manager_leave_refusal(reachable: i64, unreachable: i64) -> String {
    let mut msg =
        "You are attempting to leave the swarm on a node that is participating as a manager. "
            .to_string();
    if reachable - 2 <= unreachable {
        if reachable == 1 && unreachable == 0 {
            msg += "Removing the last manager erases all current state of the swarm. Use `--force` to ignore this message. ";
            return msg;
        }
        msg += &format!(
            "Removing this node leaves {} managers out of {}. Without a Raft quorum your swarm will be inaccessible. ",
            reachable - 1,
            reachable + unreachable
        );
    }
    msg + "The only way to restore a swarm that has lost consensus is to reinitialize it with `--force-new-cluster`. Use `--force` to suppress this message."
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `swarm leave` on a manager: moby's words for the last manager, for a departure
    /// that loses quorum, and for one that does not.
    #[test]
    fn manager_leave_refusal_is_moby_s() {
        let head =
            "You are attempting to leave the swarm on a node that is participating as a manager. ";
        let tail = "The only way to restore a swarm that has lost consensus is to reinitialize it with `--force-new-cluster`. Use `--force` to suppress this message.";
        assert_eq!(
            manager_leave_refusal(1, 0),
            format!("{head}Removing the last manager erases all current state of the swarm. Use `--force` to ignore this message. ")
        );
        assert_eq!(
            manager_leave_refusal(2, 0),
            format!("{head}Removing this node leaves 1 managers out of 2. Without a Raft quorum your swarm will be inaccessible. {tail}")
        );
        assert_eq!(
            manager_leave_refusal(2, 1),
            format!("{head}Removing this node leaves 1 managers out of 3. Without a Raft quorum your swarm will be inaccessible. {tail}")
        );
        assert_eq!(manager_leave_refusal(3, 0), format!("{head}{tail}"));
    }
}
