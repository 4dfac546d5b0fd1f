//! The manager role: this node's Raft member, and what the leader alone does with it
//! (admission, dispatcher, role reconciler, and serving the cluster API).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use openraft::{BasicNode, ChangeMembers, ServerState};
use serde_json::Value;
use shoal_ca::JoinToken;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::{lock, Daemon};
use crate::api::{msg, ApiError, ApiReply, ApiRequest, ApiResult, NodeUpdate};
use crate::peer::{Admitted, Heartbeat, HeartbeatReply, JoinSwarm};
use crate::raft::network::Network;
use crate::raft::store::{self, StateMachineStore};
use crate::raft::Raft;
use crate::state::{new_node_record, ClusterState, Command, CommandResult, NodeSpecPatch};
use crate::types::{ManagerView, NodeRecord, NodeState, Role};

/// How long a write may wait for a quorum before the client is told there is none.
const WRITE_TIMEOUT: Duration = Duration::from_secs(4);
const READ_TIMEOUT: Duration = Duration::from_secs(3);
/// Pause between leadership confirmation rounds of one read.
const READ_RETRY: Duration = Duration::from_millis(50);

pub struct Manager {
    pub raft: Raft,
    pub sm: StateMachineStore,
    pub raft_id: u64,
    /// Writes waiting to be proposed; the batcher turns what has queued into one entry.
    proposals: mpsc::Sender<Proposal>,
    /// Serializes membership changes (joins and the reconciler): Raft takes one at a time.
    membership_lock: tokio::sync::Mutex<()>,
    loops: std::sync::Mutex<Vec<JoinHandle<()>>>,
}

impl Manager {
    /// Open this node's existing Raft store (see `store::create` for a new one) and start
    /// its Raft member (and the leader loops, which idle unless this member leads).
    pub async fn open(daemon: &Arc<Daemon>, raft_id: u64) -> Result<Arc<Manager>, String> {
        let path = daemon.root.raft_file();
        let deks = daemon.raft_keys()?;
        let opened = store::open_with_keys(&path, &deks)
            .map_err(|e| format!("opening {}: {e}", path.display()))?;
        Manager::start(daemon, raft_id, opened).await
    }

    /// Start Raft member `raft_id` on a store already opened.
    pub async fn start(
        daemon: &Arc<Daemon>,
        raft_id: u64,
        opened: store::Opened,
    ) -> Result<Arc<Manager>, String> {
        let store::Opened { log, sm, .. } = opened;
        let config = daemon
            .cfg
            .raft
            .config()
            .validate()
            .map_err(|e| format!("raft config: {e}"))?;
        let raft = Raft::new(
            raft_id,
            Arc::new(config),
            Network {
                tls: daemon.tls.clone(),
            },
            log,
            sm.clone(),
        )
        .await
        .map_err(|e| format!("starting raft: {e}"))?;
        let (proposals, queue) = mpsc::channel(MAX_BATCH * 4);
        let mgr = Arc::new(Manager {
            raft,
            sm,
            raft_id,
            proposals,
            membership_lock: tokio::sync::Mutex::new(()),
            loops: std::sync::Mutex::new(Vec::new()),
        });
        // The leader's loops read the store each round, so one that panics (a bug) is
        // started again rather than leave a manager that answers while nothing schedules.
        let restart = super::supervise::OnPanic::Restart;
        let (d, m) = (Arc::downgrade(daemon), mgr.clone());
        let l1 = super::supervise::spawn("liveness", restart, move || {
            liveness_loop(d.clone(), m.clone())
        });
        let (d, m) = (Arc::downgrade(daemon), mgr.clone());
        let l2 = super::supervise::spawn("raft membership", restart, move || {
            reconcile_loop(d.clone(), m.clone())
        });
        // The batcher owns the proposal queue: it cannot start again without it.
        let mut queue = Some(queue);
        let raft = mgr.raft.clone();
        let l3 = super::supervise::spawn("proposals", super::supervise::OnPanic::Exit, move || {
            let (raft, q) = (raft.clone(), queue.take());
            async move {
                if let Some(q) = q {
                    batcher(raft, q).await
                }
            }
        });
        let (d, m) = (Arc::downgrade(daemon), mgr.clone());
        let l4 = super::supervise::spawn("orchestrators", restart, move || {
            orchestrate_loop(d.clone(), m.clone())
        });
        let (d, m) = (Arc::downgrade(daemon), mgr.clone());
        let l5 = super::supervise::spawn("autolock", restart, move || {
            autolock_loop(d.clone(), m.clone())
        });
        let (d, m) = (Arc::downgrade(daemon), mgr.clone());
        let l6 = super::supervise::spawn("root rotation", restart, move || {
            root_rotation_loop(d.clone(), m.clone())
        });
        lock(&mgr.loops).extend([l1, l2, l3, l4, l5, l6]);
        Ok(mgr)
    }

    pub async fn shutdown(&self) {
        for l in lock(&self.loops).drain(..) {
            l.abort();
        }
        // A rotation of the store's key under way (the autolock loop's) ends before the
        // caller goes on to move or remove the file, and none starts after.
        self.sm.close();
        let _ = self.raft.shutdown().await;
    }

    pub fn is_leader(&self) -> bool {
        let m = self.raft.metrics();
        let m = m.borrow();
        m.state == ServerState::Leader && m.current_leader == Some(self.raft_id)
    }

    /// The leader, with its state machine caught up: it has applied an entry of its own
    /// term (the blank entry every new leader commits first), so every entry committed
    /// before it was elected is in the state it reads. Until then a new leader's state can
    /// miss the last entries of the old one (a follower applies only what it has heard is
    /// committed): a node told its assignments from that state would stop a task just
    /// created, and the orchestrator would place one twice. Direct reads of the state
    /// machine on the leader (assignments, reports, heartbeats, the leader's loops) wait for
    /// this; API reads confirm leadership with `read_state` instead.
    pub fn in_charge(&self) -> bool {
        if !self.is_leader() {
            return false;
        }
        let term = self.raft.metrics().borrow().current_term;
        caught_up(self.sm.read(|d| d.last_applied), term)
    }

    /// `IP:port` of the current leader, if one is known.
    pub fn leader_addr(&self) -> Option<String> {
        let m = self.raft.metrics();
        let m = m.borrow();
        let leader = m.current_leader?;
        m.membership_config
            .membership()
            .get_node(&leader)
            .map(|n| n.addr.clone())
    }

    /// `IP:port` of every member (voter or learner) of the Raft group as this node knows it.
    pub fn member_addrs(&self) -> Vec<String> {
        let m = self.raft.metrics();
        let m = m.borrow();
        m.membership_config
            .membership()
            .nodes()
            .map(|(_, n)| n.addr.clone())
            .collect()
    }

    pub fn voters(&self) -> BTreeSet<u64> {
        let m = self.raft.metrics();
        let m = m.borrow();
        m.membership_config.membership().voter_ids().collect()
    }

    pub fn learners(&self) -> BTreeSet<u64> {
        let m = self.raft.metrics();
        let m = m.borrow();
        m.membership_config.membership().learner_ids().collect()
    }

    /// Members (voters or learners) other than `raft_id` reached at `addr`.
    pub fn members_at(&self, addr: &str, raft_id: u64) -> BTreeSet<u64> {
        let m = self.raft.metrics();
        let m = m.borrow();
        m.membership_config
            .membership()
            .nodes()
            .filter(|(id, n)| **id != raft_id && n.addr == addr)
            .map(|(id, _)| *id)
            .collect()
    }

    /// Is `raft_id` part of this member's configuration (voter or learner)?
    pub fn knows_member(&self, raft_id: u64) -> bool {
        let m = self.raft.metrics();
        let m = m.borrow();
        let membership = m.membership_config.membership();
        membership.get_node(&raft_id).is_some()
    }

    pub fn view(&self, state: &ClusterState) -> ManagerView {
        let m = self.raft.metrics();
        let m = m.borrow();
        ManagerView {
            leader_node_id: m
                .current_leader
                .and_then(|id| state.node_by_raft_id(id))
                .map(|n| n.id.clone()),
            voters: m.membership_config.membership().voter_ids().collect(),
            learners: m.membership_config.membership().learner_ids().collect(),
        }
    }

    /// Propose a command; fail fast with docker's "no leader" error when there is no quorum.
    /// Concurrent proposals are batched into one log entry (see `batcher`).
    pub async fn propose(&self, cmd: Command) -> Result<(), ApiError> {
        if !self.has_quorum() {
            return Err(ApiError::daemon(msg::NO_LEADER));
        }
        let (tx, rx) = oneshot::channel();
        if self.proposals.send((cmd, tx)).await.is_err() {
            return Err(ApiError::daemon(msg::NO_LEADER));
        }
        match tokio::time::timeout(WRITE_TIMEOUT, rx).await {
            Ok(Ok(Ok(result))) => outcome(&result),
            Ok(Ok(Err(e))) => {
                tracing::warn!(error = %e, "write failed");
                Err(ApiError::daemon(msg::NO_LEADER))
            }
            _ => Err(ApiError::daemon(msg::NO_LEADER)),
        }
    }

    /// The leader heard from a quorum recently (always true for a single manager).
    pub fn has_quorum(&self) -> bool {
        let m = self.raft.metrics();
        let m = m.borrow();
        if m.state != ServerState::Leader {
            return false;
        }
        let voters = m.membership_config.membership().voter_ids().count();
        if voters <= 1 {
            return true;
        }
        let limit = self_election_max(&self.raft) * 2;
        matches!(m.millis_since_quorum_ack, Some(ms) if ms <= limit)
    }

    /// A linearizable read of the state: the leader confirms it still leads first.
    ///
    /// One confirmation round gives each voter only a heartbeat interval to answer; a voter
    /// busy for longer (a manager that has just joined is loading its eBPF programs) fails
    /// the round without anything being wrong. Such a round is retried until READ_TIMEOUT;
    /// losing leadership fails at once.
    pub async fn read_state(&self) -> Result<ClusterState, ApiError> {
        let deadline = tokio::time::Instant::now() + READ_TIMEOUT;
        loop {
            match tokio::time::timeout_at(deadline, self.raft.ensure_linearizable()).await {
                Ok(Ok(_)) => return Ok(self.sm.state()),
                Ok(Err(openraft::error::RaftError::APIError(
                    openraft::error::CheckIsLeaderError::QuorumNotEnough(e),
                ))) if tokio::time::Instant::now() + READ_RETRY < deadline => {
                    tracing::debug!(error = %e, "leadership not confirmed, retrying the read");
                    tokio::time::sleep(READ_RETRY).await;
                }
                _ => return Err(ApiError::daemon(msg::NO_LEADER)),
            }
        }
    }
}

type Proposal = (Command, oneshot::Sender<Result<CommandResult, String>>);

/// Has a leader of `term` applied an entry of its own term yet?
fn caught_up(last_applied: Option<crate::raft::LogId>, term: u64) -> bool {
    last_applied.is_some_and(|l| l.leader_id.term >= term)
}

/// Most commands in one log entry.
const MAX_BATCH: usize = 256;

/// Turn queued proposals into log entries: whatever has queued while the previous entry was
/// being committed goes into the next one, so under load one fsync (and one replication
/// round) commits many writes, and a lone write is not delayed at all.
async fn batcher(raft: Raft, mut queue: mpsc::Receiver<Proposal>) {
    let mut batch: Vec<Proposal> = Vec::with_capacity(MAX_BATCH);
    while queue.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let (cmds, waiters): (Vec<Command>, Vec<_>) = batch.drain(..).unzip();
        let single = cmds.len() == 1;
        let entry = if single {
            cmds.into_iter()
                .next()
                .unwrap_or(Command::Batch(Vec::new()))
        } else {
            Command::Batch(cmds)
        };
        let result = tokio::time::timeout(WRITE_TIMEOUT, raft.client_write(entry)).await;
        match result {
            Ok(Ok(resp)) if single => {
                for w in waiters {
                    let _ = w.send(Ok(resp.data.clone()));
                }
            }
            Ok(Ok(resp)) => {
                for (w, r) in waiters.into_iter().zip(resp.data.batch) {
                    let _ = w.send(Ok(r));
                }
            }
            Ok(Err(e)) => {
                for w in waiters {
                    let _ = w.send(Err(e.to_string()));
                }
            }
            Err(_) => {
                for w in waiters {
                    let _ = w.send(Err("timed out waiting for a quorum".into()));
                }
            }
        }
    }
}

fn self_election_max(raft: &Raft) -> u64 {
    raft.config().election_timeout_max
}

/// What a proposer gets for an applied command. A refused command inside a Batch (a
/// stack deploy's PutService, say) is the proposer's error too, not a silent success.
fn outcome(result: &CommandResult) -> Result<(), ApiError> {
    match result.first_error() {
        Some(e) => Err(ApiError::daemon(e)),
        None => Ok(()),
    }
}

/// How long a node may go without a heartbeat before it is marked Down: three periods.
/// Clamped and saturating: a cluster stored before `swarm init` checked the period may
/// hold 0 (nodes would flap) or a period whose triple overflows.
fn heartbeat_grace(heartbeat_ms: u64) -> Duration {
    Duration::from_millis(heartbeat_ms)
        .clamp(crate::api::MIN_HEARTBEAT, crate::api::MAX_HEARTBEAT)
        .saturating_mul(3)
}

/// Leader: mark nodes Down when their heartbeats stop, and Ready when they come back
/// (the latter happens in `heartbeat`).
async fn liveness_loop(daemon: std::sync::Weak<Daemon>, mgr: Arc<Manager>) {
    loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let Some(daemon) = daemon.upgrade() else {
            return;
        };
        if !mgr.in_charge() {
            lock(&daemon.dispatcher).leader_term = None;
            continue;
        }
        let term = mgr.raft.metrics().borrow().current_term;
        let state = mgr.sm.state();
        let Some(cluster) = state.cluster.as_ref() else {
            continue;
        };
        let grace = heartbeat_grace(cluster.heartbeat_ms);
        let now = Instant::now();
        let mut down = Vec::new();
        {
            let mut d = lock(&daemon.dispatcher);
            if d.leader_term != Some(term) {
                // A new leader gives every node a full grace period from now.
                d.leader_term = Some(term);
                d.last_seen = state.nodes.keys().map(|id| (id.clone(), now)).collect();
            }
            for node in state.nodes.values() {
                let seen = *d.last_seen.entry(node.id.clone()).or_insert(now);
                if node.state != NodeState::Down && now.duration_since(seen) > grace {
                    down.push(node.id.clone());
                }
            }
        }
        for node_id in down {
            tracing::info!(node = %node_id, "heartbeat failure: marking node down");
            let _ = mgr
                .propose(Command::SetNodeStatus {
                    node_id,
                    state: NodeState::Down,
                    message: Some("heartbeat failure".into()),
                    at: Utc::now(),
                })
                .await;
        }
    }
}

/// Leader: finish a root CA rotation once every node holds a certificate from the new
/// root (swarmkit's root rotation reconciler; nodes learn they must rotate from their
/// heartbeat replies). The rotation is in the Raft state, so a new leader carries on.
async fn root_rotation_loop(daemon: std::sync::Weak<Daemon>, mgr: Arc<Manager>) {
    let mut applied = mgr.sm.applied();
    loop {
        let _ = tokio::time::timeout(Duration::from_millis(500), applied.changed()).await;
        if daemon.upgrade().is_none() {
            return;
        }
        if !mgr.in_charge() || !mgr.has_quorum() {
            continue;
        }
        let state = mgr.sm.state();
        let Some(rotation) = state
            .cluster
            .as_ref()
            .and_then(|c| c.root_rotation.as_ref())
        else {
            continue;
        };
        if !crate::ca_rotation::unconverged(&state).is_empty() {
            continue;
        }
        let Ok(rotation_digest) = shoal_ca::ca_digest(&rotation.ca_cert_pem) else {
            continue;
        };
        let finish = Command::FinishRootRotation {
            rotation_digest,
            worker_secret: JoinToken::generate("").secret,
            manager_secret: JoinToken::generate("").secret,
        };
        match mgr.propose(finish).await {
            Ok(()) => tracing::info!("completed root rotation"),
            Err(e) => tracing::warn!(error = %e.message, "could not complete root rotation"),
        }
    }
}

/// Leader: run the orchestrators whenever the state changes (and at least every 250 ms, for
/// timers: restart delays, update delays and monitors).
async fn orchestrate_loop(daemon: std::sync::Weak<Daemon>, mgr: Arc<Manager>) {
    let mut clock = crate::orchestrator::UpdateClock::default();
    let mut applied = mgr.sm.applied();
    loop {
        let _ = tokio::time::timeout(Duration::from_millis(250), applied.changed()).await;
        if daemon.upgrade().is_none() {
            return;
        }
        if !mgr.in_charge() || !mgr.has_quorum() {
            continue;
        }
        let state = mgr.sm.state();
        let mut cmds = crate::orchestrator::reconcile(&state, Utc::now(), &mut clock);
        let cmd = match cmds.len() {
            0 => continue,
            1 => cmds.remove(0),
            _ => Command::Batch(cmds),
        };
        if let Err(e) = mgr.propose(cmd).await {
            tracing::warn!(error = %e, "orchestrator write");
        }
    }
}

/// Leader: keep Raft voters equal to the nodes whose role is manager (swarmkit's role manager).
async fn reconcile_loop(daemon: std::sync::Weak<Daemon>, mgr: Arc<Manager>) {
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        if daemon.upgrade().is_none() {
            return;
        }
        if !mgr.in_charge() || !mgr.has_quorum() {
            continue;
        }
        let _membership = mgr.membership_lock.lock().await;
        let state = mgr.sm.state();
        let wanted: BTreeSet<u64> = state.managers().map(|n| n.raft_id).collect();
        let voters = mgr.voters();
        let learners = mgr.learners();
        // Demoted or removed managers leave the voters (never the last one).
        let stale: BTreeSet<u64> = voters.difference(&wanted).copied().collect();
        if !stale.is_empty() && stale.len() < voters.len() {
            tracing::info!(?stale, "removing demoted managers from raft");
            if let Err(e) = mgr
                .raft
                .change_membership(ChangeMembers::RemoveVoters(stale), false)
                .await
            {
                tracing::warn!(error = %e, "removing voters");
            }
            continue;
        }
        // Learners that are managers become voters once caught up; others are dropped.
        let ready: BTreeSet<u64> = learners.intersection(&wanted).copied().collect();
        if !ready.is_empty() {
            let _ = mgr
                .raft
                .change_membership(ChangeMembers::AddVoterIds(ready), false)
                .await;
        }
        let gone: BTreeSet<u64> = learners.difference(&wanted).copied().collect();
        if !gone.is_empty() {
            let _ = mgr
                .raft
                .change_membership(ChangeMembers::RemoveNodes(gone), false)
                .await;
        }
    }
}

fn join_token_error() -> ApiError {
    ApiError::daemon(
        "rpc error: code = InvalidArgument desc = A valid join token is necessary to join this cluster",
    )
}

impl Daemon {
    /// Leader: admit a node that presented a valid token.
    pub(crate) async fn admit(
        &self,
        mgr: &Manager,
        req: JoinSwarm,
        peer_ip: String,
    ) -> Result<Admitted, ApiError> {
        let state = mgr.read_state().await?;
        let cluster = state
            .cluster
            .as_ref()
            .ok_or_else(|| ApiError::daemon("cluster not initialized"))?;
        let token = JoinToken::parse(&req.token).map_err(|_| join_token_error())?;
        let digest = shoal_ca::ca_digest(&cluster.ca_cert_pem)
            .map_err(|e| ApiError::daemon(e.to_string()))?;
        if token.ca_digest != digest {
            return Err(join_token_error());
        }
        let role = if token.matches_secret(&cluster.manager_secret) {
            Role::Manager
        } else if token.matches_secret(&cluster.worker_secret) {
            Role::Worker
        } else {
            return Err(join_token_error());
        };
        crate::services::listen_port_conflict(&state, req.listen_port).map_err(ApiError::daemon)?;
        crate::services::join_lb_capacity(&state, &req.description.hostname)
            .map_err(ApiError::daemon)?;
        let node_id = crate::ids::new_id();
        let raft_id = crate::ids::new_raft_id();
        let addr = req.advertise_addr.clone().unwrap_or(peer_ip);
        let listen_addr = format!("{addr}:{}", req.listen_port);
        // During a root rotation, by the new root's key, with the cross-signed intermediate.
        let (ca, chain) = cluster
            .signer()
            .map_err(|e| ApiError::daemon(e.to_string()))?;
        let cert_pem = ca
            .sign_csr_valid_for(
                &req.csr_pem,
                &node_id,
                role,
                &cluster.id,
                cluster.cert_expiry(),
            )
            .map_err(|e| ApiError::daemon(format!("invalid certificate request: {e}")))?
            + &chain;
        let mut record = new_node_record(
            node_id.clone(),
            raft_id,
            role,
            req.description.clone(),
            addr.clone(),
            listen_addr,
            Utc::now(),
        );
        record.spec.availability = req.availability.unwrap_or_default();
        mgr.propose(Command::AddNode { node: record }).await?;
        lock(&self.dispatcher)
            .last_seen
            .insert(node_id.clone(), Instant::now());
        let mut managers: Vec<String> = state.managers().map(|n| n.listen_addr.clone()).collect();
        if role == Role::Manager {
            managers.push(format!("{addr}:{}", req.listen_port));
        }
        Ok(Admitted {
            node_id,
            raft_id,
            role,
            cluster_id: cluster.id.clone(),
            cert_pem,
            ca_pem: cluster.trust_pem(),
            managers,
            heartbeat_ms: cluster.heartbeat_ms,
            addr,
        })
    }

    /// Leader: a manager node with its Raft running becomes a learner, then a voter.
    pub(crate) async fn raft_join(&self, mgr: &Manager, node_id: &str) -> Result<(), ApiError> {
        let state = mgr.read_state().await?;
        let node = state
            .nodes
            .get(node_id)
            .ok_or_else(|| ApiError::daemon(format!("node {node_id} not found")))?;
        if node.spec.role != Role::Manager {
            return Err(ApiError::daemon(format!("node {node_id} is not a manager")));
        }
        let _membership = mgr.membership_lock.lock().await;
        if mgr.voters().contains(&node.raft_id) {
            return Ok(());
        }
        // Any other member at the node's address (its own earlier Raft ID: it was demoted,
        // then promoted under a fresh one) leaves first. Raft reaches members by address, so
        // the one Raft the node runs would answer for both IDs, holding two votes.
        let old_ids = mgr.members_at(&node.listen_addr, node.raft_id);
        if !old_ids.is_empty() {
            tracing::info!(node = %node_id, ?old_ids, "removing older raft ids at the node's address");
            let voters = mgr.voters();
            let (old_voters, old_learners): (BTreeSet<u64>, BTreeSet<u64>) =
                old_ids.into_iter().partition(|id| voters.contains(id));
            if !old_voters.is_empty() {
                remove_members(mgr, ChangeMembers::RemoveVoters(old_voters)).await?;
            }
            if !old_learners.is_empty() {
                remove_members(mgr, ChangeMembers::RemoveNodes(old_learners)).await?;
            }
        }
        let add = mgr.raft.add_learner(
            node.raft_id,
            BasicNode {
                addr: node.listen_addr.clone(),
            },
            true,
        );
        match tokio::time::timeout(Duration::from_secs(30), add).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(ApiError::daemon(format!("adding raft learner: {e}"))),
            Err(_) => return Err(ApiError::daemon("timed out adding the node to raft")),
        }
        let ids: BTreeSet<u64> = [node.raft_id].into();
        match tokio::time::timeout(
            Duration::from_secs(10),
            mgr.raft
                .change_membership(ChangeMembers::AddVoterIds(ids), false),
        )
        .await
        {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(ApiError::daemon(format!("adding raft voter: {e}"))),
            Err(_) => Err(ApiError::daemon(msg::NO_LEADER)),
        }
    }

    /// Leader: an agent's heartbeat. Status changes are Raft writes; heartbeats are not.
    pub(crate) async fn heartbeat(
        self: &Arc<Self>,
        mgr: &Arc<Manager>,
        node_id: &str,
        hb: Heartbeat,
    ) -> Result<HeartbeatReply, String> {
        let state = mgr.sm.state();
        let node = state
            .nodes
            .get(node_id)
            .ok_or_else(|| format!("node {node_id} not found"))?;
        let cluster = state.cluster.as_ref().ok_or("cluster not initialized")?;
        lock(&self.dispatcher)
            .last_seen
            .insert(node_id.to_string(), Instant::now());
        // What the node reports now, not what the state has of it yet: a node that has
        // just rotated is not told to again.
        let rotate_cert = crate::ca_rotation::must_rotate(cluster, hb.description.tls.as_ref());
        let mut changes = Vec::new();
        if node.description != hb.description
            || node.addr != hb.addr
            || node.listen_addr != hb.listen_addr
        {
            changes.push(Command::SetNodeDescription {
                node_id: node_id.to_string(),
                description: hb.description,
                addr: hb.addr,
                listen_addr: hb.listen_addr,
                at: Utc::now(),
            });
        }
        if node.state != NodeState::Ready {
            changes.push(Command::SetNodeStatus {
                node_id: node_id.to_string(),
                state: NodeState::Ready,
                message: None,
                at: Utc::now(),
            });
        }
        if !changes.is_empty() {
            let mgr = mgr.clone();
            tokio::spawn(async move {
                for c in changes {
                    let _ = mgr.propose(c).await;
                }
            });
        }
        let me = self
            .membership()
            .map(|m| m.listen_addr())
            .unwrap_or_default();
        Ok(HeartbeatReply {
            role: acting_role(mgr, node),
            raft_id: node.raft_id,
            managers: state.managers().map(|n| n.listen_addr.clone()).collect(),
            leader: me,
            heartbeat_ms: cluster.heartbeat_ms,
            trust_pem: cluster.trust_pem(),
            rotate_cert,
        })
    }

    /// Leader: sign a new certificate for a node's current role.
    pub(crate) async fn renew_cert(
        &self,
        mgr: &Manager,
        node_id: &str,
        csr_pem: &str,
    ) -> Result<String, ApiError> {
        let state = mgr.read_state().await?;
        let cluster = state
            .cluster
            .as_ref()
            .ok_or_else(|| ApiError::daemon("cluster not initialized"))?;
        let node = state
            .nodes
            .get(node_id)
            .ok_or_else(|| ApiError::daemon(format!("node {node_id} not found")))?;
        let (ca, chain) = cluster
            .signer()
            .map_err(|e| ApiError::daemon(e.to_string()))?;
        let cert = ca
            .sign_csr_valid_for(
                csr_pem,
                node_id,
                acting_role(mgr, node),
                &cluster.id,
                cluster.cert_expiry(),
            )
            .map_err(|e| ApiError::daemon(format!("invalid certificate request: {e}")))?;
        Ok(cert + &chain)
    }

    /// Leader: serve a manager API request asked on node `asked_on`.
    pub(crate) async fn serve_manager_api(
        &self,
        mgr: &Manager,
        req: ApiRequest,
        asked_on: &str,
    ) -> ApiResult {
        match req {
            ApiRequest::JoinToken { role, rotate } => {
                let mut state = mgr.read_state().await?;
                if rotate {
                    let secret = JoinToken::generate("").secret;
                    mgr.propose(Command::RotateToken { role, secret }).await?;
                    state = mgr.sm.state();
                }
                let cluster = state
                    .cluster
                    .as_ref()
                    .ok_or_else(|| ApiError::daemon("cluster not initialized"))?;
                let digest = shoal_ca::ca_digest(&cluster.ca_cert_pem)
                    .map_err(|e| ApiError::daemon(e.to_string()))?;
                let token = JoinToken {
                    ca_digest: digest,
                    secret: cluster.secret(role).to_string(),
                };
                let manager_addr = state
                    .nodes
                    .get(asked_on)
                    .filter(|n| n.is_manager())
                    .or_else(|| state.node_by_raft_id(mgr.raft_id))
                    .map(|n| n.listen_addr.clone())
                    .unwrap_or_default();
                Ok(ApiReply::Token {
                    token: token.to_string(),
                    manager_addr,
                    rotated: rotate,
                })
            }
            ApiRequest::SwarmUpdate(mut update) => {
                if let Some(ms) = update.dispatcher_heartbeat_ms {
                    crate::api::check_heartbeat(Duration::from_millis(ms))
                        .map_err(ApiError::daemon)?;
                }
                if let Some(s) = update.cert_expiry_s {
                    self.check_cert_expiry(s)?;
                }
                // The key is the leader's to make; the state machine takes it only when
                // autolock goes on or the key is rotated.
                let keyed = update.autolock == Some(true) || update.rotate_unlock_key;
                update.unlock_key =
                    keyed.then(|| shoal_ca::seal::SealKey::generate().to_unlock_key());
                mgr.propose(Command::UpdateCluster { update }).await?;
                if !keyed {
                    return Ok(ApiReply::Done);
                }
                // The key now in force, in the reply: managers seal with it within a second,
                // and a client that then loses the daemon must have been shown it.
                let key = mgr
                    .sm
                    .state()
                    .cluster
                    .and_then(|c| c.unlock_key)
                    .unwrap_or_default();
                Ok(ApiReply::UnlockKey { key })
            }
            ApiRequest::TrustRoot => {
                let state = mgr.read_state().await?;
                Ok(match state.cluster.as_ref() {
                    Some(c) => ApiReply::TrustRoot {
                        pem: c.ca_cert_pem.clone(),
                        tls_info: c.tls_info_json(),
                        rotation_in_progress: c.root_rotation.is_some(),
                    },
                    None => ApiReply::TrustRoot {
                        pem: String::new(),
                        tls_info: Value::Null,
                        rotation_in_progress: false,
                    },
                })
            }
            ApiRequest::CaRotate(req) => {
                use crate::ca_rotation::{decide, Decision};
                if let Some(s) = req.cert_expiry_s {
                    self.check_cert_expiry(s)?;
                }
                let state = mgr.read_state().await?;
                let cluster = state
                    .cluster
                    .as_ref()
                    .ok_or_else(|| ApiError::daemon("cluster not initialized"))?;
                let based_on = shoal_ca::ca_digest(&cluster.ca_cert_pem)
                    .map_err(|e| ApiError::daemon(e.to_string()))?;
                let rotation = match decide(cluster, &req).map_err(ApiError::daemon)? {
                    Decision::Start(r) => Some(r),
                    Decision::Abort => None,
                    Decision::Unchanged => cluster.root_rotation.clone(),
                };
                if let Some(r) = &rotation {
                    tracing::info!(
                        new_root = %shoal_ca::ca_digest(&r.ca_cert_pem).unwrap_or_default(),
                        "root CA rotation"
                    );
                }
                mgr.propose(Command::SetRootRotation {
                    rotation,
                    based_on,
                    cert_expiry_s: req.cert_expiry_s,
                })
                .await?;
                Ok(ApiReply::Done)
            }
            ApiRequest::UnlockKey => {
                let state = mgr.read_state().await?;
                let key = state
                    .cluster
                    .as_ref()
                    .and_then(|c| c.unlock_key.clone())
                    .unwrap_or_default();
                Ok(ApiReply::UnlockKey { key })
            }
            ApiRequest::NodeList => {
                let state = mgr.read_state().await?;
                let view = mgr.view(&state);
                let ca = ca_pem(&state);
                let nodes: Vec<Value> = state
                    .nodes
                    .values()
                    .map(|n| n.docker_json(&view, &ca))
                    .collect();
                Ok(ApiReply::Nodes {
                    nodes,
                    self_id: Some(asked_on.to_string()),
                })
            }
            ApiRequest::NodeInspect { references } => {
                let state = mgr.read_state().await?;
                let view = mgr.view(&state);
                let ca = ca_pem(&state);
                let nodes = references
                    .iter()
                    .map(|r| {
                        let r = if r == "self" { asked_on } else { r.as_str() };
                        state.resolve_node(r).map(|n| n.docker_json(&view, &ca))
                    })
                    .collect();
                Ok(ApiReply::Inspected { nodes })
            }
            ApiRequest::NodeUpdate(update) => {
                self.update_node(mgr, update, asked_on).await?;
                Ok(ApiReply::Done)
            }
            ApiRequest::NodeRemove { reference, force } => {
                let state = mgr.read_state().await?;
                let node = state.resolve_node(&reference).map_err(ApiError::daemon)?;
                let raft_member = node.raft_member(&mgr.view(&state));
                removable(node, raft_member, force).map_err(ApiError::daemon)?;
                mgr.propose(Command::RemoveNode {
                    node_id: node.id.clone(),
                })
                .await?;
                lock(&self.dispatcher).last_seen.remove(&node.id);
                Ok(ApiReply::Done)
            }
            other => self.serve_service_api(mgr, other).await,
        }
    }

    /// Writes resolve the node in the leader's applied state (no read barrier needed: the
    /// patch itself is ordered by Raft and checked again when applied).
    async fn update_node(
        &self,
        mgr: &Manager,
        update: NodeUpdate,
        asked_on: &str,
    ) -> Result<(), ApiError> {
        let state = mgr.sm.state();
        let reference = if update.reference == "self" {
            asked_on
        } else {
            update.reference.as_str()
        };
        let node = state.resolve_node(reference).map_err(ApiError::daemon)?;
        if update.role == Some(Role::Worker) && node.is_manager() {
            check_demote(mgr, &state, node.raft_id)?;
        }
        mgr.propose(Command::PatchNodeSpec {
            node_id: node.id.clone(),
            patch: NodeSpecPatch {
                label_add: update.label_add,
                label_rm: update.label_rm,
                availability: update.availability,
                role: update.role,
            },
            promoted_raft_id: (update.role == Some(Role::Manager)).then(crate::ids::new_raft_id),
            at: Utc::now(),
        })
        .await
    }
}

/// The role a node is told to act in (its certificate's, and whether it runs Raft), as
/// swarmkit's role manager decides a node's observed role: a demoted manager stays one
/// until it has left the Raft voters. Told at once, it would take a worker certificate
/// while its vote is still needed to remove it (in a swarm of two managers, both votes),
/// and the leader, unable to reach it as a manager, would lose its quorum for good.
fn acting_role(mgr: &Manager, node: &NodeRecord) -> Role {
    if node.spec.role == Role::Worker && mgr.voters().contains(&node.raft_id) {
        Role::Manager
    } else {
        node.spec.role
    }
}

/// Commit a membership change that removes members, within the time of a write.
async fn remove_members(
    mgr: &Manager,
    change: ChangeMembers<u64, BasicNode>,
) -> Result<(), ApiError> {
    match tokio::time::timeout(
        Duration::from_secs(10),
        mgr.raft.change_membership(change, false),
    )
    .await
    {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(ApiError::daemon(format!("removing raft members: {e}"))),
        Err(_) => Err(ApiError::daemon(msg::NO_LEADER)),
    }
}

/// Refuse a demotion that would remove the last manager or lose quorum.
fn check_demote(mgr: &Manager, state: &ClusterState, raft_id: u64) -> Result<(), ApiError> {
    if state.managers().count() <= 1 {
        return Err(ApiError::daemon(
            "rpc error: code = FailedPrecondition desc = attempting to demote the last manager of the swarm",
        ));
    }
    let view = mgr.view(state);
    let voters_after: Vec<u64> = mgr.voters().into_iter().filter(|v| *v != raft_id).collect();
    let reachable_after = voters_after
        .iter()
        .filter(|v| {
            state
                .node_by_raft_id(**v)
                .is_some_and(|n| n.reachability(&view) == "reachable")
        })
        .count();
    if reachable_after < voters_after.len() / 2 + 1 {
        return Err(ApiError::daemon(
            "rpc error: code = FailedPrecondition desc = can't remove member from the raft: this would result in a loss of quorum",
        ));
    }
    Ok(())
}

/// Whether `node rm` may remove `node`, as swarmkit's RemoveNode: never a manager still
/// in the Raft group (one left out by --force-new-cluster can go without a demotion);
/// without --force, not a Ready node (down, unknown and disconnected ones may go).
fn removable(node: &NodeRecord, raft_member: bool, force: bool) -> Result<(), String> {
    if node.is_manager() && raft_member {
        return Err(format!(
            "rpc error: code = FailedPrecondition desc = node {} is a cluster manager and is a member of the raft cluster. It must be demoted to worker before removal",
            node.id
        ));
    }
    if node.state == NodeState::Ready && !force {
        return Err(format!(
            "rpc error: code = FailedPrecondition desc = node {} is not down and can't be removed",
            node.id
        ));
    }
    Ok(())
}

fn ca_pem(state: &ClusterState) -> String {
    state
        .cluster
        .as_ref()
        .map(|c| c.ca_cert_pem.clone())
        .unwrap_or_default()
}

/// Nodes by raft ID for a membership (used by the swarm init path).
pub(crate) fn single_member(raft_id: u64, addr: String) -> BTreeMap<u64, BasicNode> {
    [(raft_id, BasicNode { addr })].into()
}

/// Every manager: keep this node's keys on disk sealed by the swarm's unlock key while
/// autolock is on, and in the clear while it is off (swarmkit's KEK manager). A change
/// waits until this member holds a cluster and has applied all of its log: a state
/// machine loaded behind the log (after a restart) must not undo a later change on disk,
/// nor seal with a key since turned off or rotated away.
async fn autolock_loop(daemon: std::sync::Weak<Daemon>, mgr: Arc<Manager>) {
    let mut applied = mgr.sm.applied();
    // After a failed rotation of the store's key, the next try waits this long.
    const ROTATE_RETRY: Duration = Duration::from_secs(30);
    let mut rotate_at = Instant::now();
    loop {
        let Some(d) = daemon.upgrade() else {
            return;
        };
        let caught_up = {
            let m = mgr.raft.metrics();
            let m = m.borrow();
            m.last_log_index.is_some() && m.last_applied.map(|l| l.index) >= m.last_log_index
        };
        let want = mgr
            .sm
            .read(|s| s.state.cluster.as_ref().map(|c| c.unlock_key.clone()))
            .filter(|_| caught_up);
        if let Some(want) = want {
            let want = match want
                .as_deref()
                .map(shoal_ca::seal::SealKey::parse_unlock_key)
            {
                None => None,
                Some(Ok(k)) => Some(k),
                Some(Err(e)) => {
                    tracing::error!(error = %e, "the swarm's unlock key in the raft store is not one");
                    None
                }
            };
            let have = lock(&d.keys).kek.clone();
            if want != have {
                if let Err(e) = d.set_kek(want) {
                    tracing::warn!(error = %e, "sealing this node's keys with the unlock key");
                }
            }
        }
        // A new key for the store (autolock just turned on here, or a rotation a crash
        // cut short): re-seal the store with it. It takes the store's lock for a moment
        // (a copy of the store is written), holding Raft's reads and writes meanwhile.
        if lock(&d.keys).pending_dek.is_some() && Instant::now() >= rotate_at {
            if let Err(e) = d.rotate_dek(&mgr.sm) {
                tracing::warn!(error = %e, "rotating the raft store's key; trying again later");
                rotate_at = Instant::now() + ROTATE_RETRY;
            }
        }
        drop(d);
        let _ = tokio::time::timeout(Duration::from_secs(1), applied.changed()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A command refused inside a Batch (as the batcher makes) or an Atomic (a stack
    /// deploy) is its proposer's error, also when the Atomic is inside a Batch.
    #[test]
    fn a_refused_command_in_a_batch_is_an_error() {
        let mut state = crate::state::ClusterState::default();
        let rm = || Command::RemoveNode {
            node_id: "zzz".into(),
        };
        let r = state.apply(&Command::Batch(vec![rm()]), 1);
        assert_eq!(outcome(&r).unwrap_err().message, "node zzz not found");
        let r = state.apply(&Command::Batch(vec![Command::Atomic(vec![rm()])]), 1);
        assert_eq!(
            outcome(&r).unwrap_err().message,
            "failed to remove node zzz: node zzz not found"
        );
        let ok = state.apply(&Command::Batch(Vec::new()), 2);
        assert!(outcome(&ok).is_ok());
    }

    /// A stored period of 0 still gives a grace, and a huge one does not overflow.
    #[test]
    fn heartbeat_grace_is_bounded() {
        assert_eq!(heartbeat_grace(5000), Duration::from_secs(15));
        assert_eq!(heartbeat_grace(0), Duration::from_millis(300));
        assert_eq!(
            heartbeat_grace(6_200_000_000_000_000_000),
            Duration::from_secs(3 * 24 * 3600)
        );
        assert_eq!(
            heartbeat_grace(u64::MAX),
            Duration::from_secs(3 * 24 * 3600)
        );
    }

    /// A leader is in charge only once it has applied an entry of its own term: entries
    /// of earlier terms it applied say nothing about what the old leader committed last.
    #[test]
    fn a_new_leader_is_in_charge_after_applying_its_own_entry() {
        let id = |term: u64, node: u64, index: u64| {
            openraft::LogId::new(openraft::CommittedLeaderId::new(term, node), index)
        };
        assert!(!caught_up(None, 1));
        assert!(!caught_up(Some(id(4, 1, 120)), 5));
        assert!(caught_up(Some(id(5, 2, 121)), 5));
        assert!(caught_up(Some(id(5, 2, 125)), 5));
    }

    /// As swarmkit: without --force only a Ready node is refused; a manager still in
    /// the Raft group is refused even with it.
    #[test]
    fn node_rm_refuses_ready_nodes_and_raft_members() {
        let mut node = new_node_record(
            "n1".into(),
            7,
            Role::Worker,
            Default::default(),
            "10.0.0.1:2377".into(),
            "0.0.0.0:2377".into(),
            Utc::now(),
        );
        for (state, ok) in [
            (NodeState::Ready, false),
            (NodeState::Down, true),
            (NodeState::Unknown, true),
            (NodeState::Disconnected, true),
        ] {
            node.state = state;
            assert_eq!(removable(&node, false, false).is_ok(), ok, "{state:?}");
            assert!(removable(&node, false, true).is_ok(), "{state:?} --force");
        }
        node.state = NodeState::Ready;
        assert_eq!(
            removable(&node, false, false).unwrap_err(),
            "rpc error: code = FailedPrecondition desc = node n1 is not down and can't be removed"
        );
        node.spec.role = Role::Manager;
        node.state = NodeState::Down;
        assert!(removable(&node, false, false).is_ok(), "left out of Raft");
        assert!(removable(&node, true, true)
            .unwrap_err()
            .contains("is a member of the raft cluster"));
    }
}
