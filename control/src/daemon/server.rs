//! The swarm port: accepts mTLS connections and answers peer requests.
//!
//! Its defences against peers that hold connections or memory (see `SwarmPortLimits`):
//! a cap on connections overall and per source IP (over it: closed at once), a deadline
//! for the TLS handshake, a small frame limit and a single request for a peer without a
//! certificate of this swarm (only a Join is legitimate there), and an idle timeout
//! between an authenticated peer's requests. Clients (`PeerClient`) reopen a connection
//! the server closed, so Raft, heartbeats and forwarded calls are unaffected; an exec
//! session, once started, is not subject to the idle timeout.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use shoal_ca::NodeIdentity;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

use super::{Daemon, SwarmPortLimits};
use crate::api::{msg, ApiError};
use crate::peer::{LogChunk, PeerRequest, PeerResponse};
use crate::types::Role;
use crate::wire;

/// Counts the swarm port's open connections, overall and per source IP.
pub(crate) struct ConnLimiter {
    max: usize,
    max_per_ip: usize,
    open: Mutex<(usize, HashMap<IpAddr, usize>)>,
}

/// One admitted connection; its slot is freed when dropped.
pub(crate) struct ConnSlot {
    limiter: Arc<ConnLimiter>,
    ip: IpAddr,
}

#[derive(Debug, PartialEq)]
pub(crate) enum Refused {
    Total(usize),
    PerIp(usize),
}

impl ConnLimiter {
    pub(crate) fn new(max: usize, max_per_ip: usize) -> Arc<Self> {
        Arc::new(ConnLimiter {
            max,
            max_per_ip,
            open: Mutex::new((0, HashMap::new())),
        })
    }

    pub(crate) fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<ConnSlot, Refused> {
        let mut open = super::lock(&self.open);
        if open.0 >= self.max {
            return Err(Refused::Total(self.max));
        }
        let from_ip = open.1.entry(ip).or_insert(0);
        if *from_ip >= self.max_per_ip {
            return Err(Refused::PerIp(self.max_per_ip));
        }
        *from_ip += 1;
        open.0 += 1;
        Ok(ConnSlot {
            limiter: self.clone(),
            ip,
        })
    }

    #[cfg(test)]
    fn open(&self) -> usize {
        super::lock(&self.open).0
    }
}

impl Drop for ConnSlot {
    fn drop(&mut self) {
        let mut open = super::lock(&self.limiter.open);
        open.0 = open.0.saturating_sub(1);
        if let Some(n) = open.1.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.1.remove(&self.ip);
            }
        }
    }
}

/// A warning at most every 10 s, with how many were left out: a flood of refused
/// connections or failing accepts must not flood the log too.
struct RateLimitedWarn {
    last: Option<Instant>,
    suppressed: u64,
}

impl RateLimitedWarn {
    fn new() -> Self {
        RateLimitedWarn {
            last: None,
            suppressed: 0,
        }
    }

    /// Some(count left out since the last warning) if this one should be logged.
    fn hit(&mut self) -> Option<u64> {
        let now = Instant::now();
        if self
            .last
            .is_some_and(|l| now.duration_since(l) < Duration::from_secs(10))
        {
            self.suppressed += 1;
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.suppressed))
    }
}

pub(crate) async fn serve(daemon: Arc<Daemon>, listener: TcpListener) {
    let limits = daemon.cfg.swarm_port.clone();
    let limiter = ConnLimiter::new(limits.max_connections, limits.max_connections_per_ip);
    let mut accept_warn = RateLimitedWarn::new();
    let mut refuse_warn = RateLimitedWarn::new();
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                if let Some(suppressed) = accept_warn.hit() {
                    tracing::warn!(error = %e, suppressed, "accepting on the swarm port");
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let slot = match limiter.admit(peer.ip()) {
            Ok(slot) => slot,
            Err(why) => {
                // Closed at once: a peer over the cap holds nothing here.
                drop(tcp);
                if let Some(suppressed) = refuse_warn.hit() {
                    tracing::warn!(%peer, ?why, suppressed, "swarm port: connection refused, too many connections");
                }
                continue;
            }
        };
        let daemon = daemon.clone();
        let limits = limits.clone();
        tokio::spawn(async move {
            if let Err(e) = serve_conn(daemon, tcp, peer.ip().to_string(), &limits).await {
                tracing::debug!(%peer, error = %e, "peer connection ended");
            }
            drop(slot);
        });
    }
}

async fn serve_conn(
    daemon: Arc<Daemon>,
    tcp: TcpStream,
    peer_ip: String,
    limits: &SwarmPortLimits,
) -> Result<(), String> {
    let _ = tcp.set_nodelay(true);
    let tls = daemon.tls.get().ok_or("no certificate")?;
    let stream = tokio::time::timeout(
        limits.handshake_timeout,
        TlsAcceptor::from(tls.server).accept(tcp),
    )
    .await
    .map_err(|_| "tls: handshake timed out".to_string())?
    .map_err(|e| format!("tls: {e}"))?;
    let identity = shoal_ca::tls::peer_identity(stream.get_ref().1);
    let cluster_id = daemon
        .membership()
        .map(|m| m.cluster_id)
        .unwrap_or_default();
    // Only a peer with a certificate of this swarm may send large frames (Raft snapshots,
    // forwarded API calls); without one, the only message is a Join, on its own connection.
    let authenticated = identity
        .as_ref()
        .is_some_and(|i| !cluster_id.is_empty() && i.cluster_id == cluster_id);
    let (max_frame, idle) = if authenticated {
        (wire::MAX_FRAME, limits.idle_timeout)
    } else {
        (wire::MAX_UNAUTHENTICATED_FRAME, limits.handshake_timeout)
    };
    let mut conn = wire::framed_with_limit(stream, max_frame);
    loop {
        let req: PeerRequest = match tokio::time::timeout(idle, wire::recv(&mut conn)).await {
            Ok(Ok(r)) => r,
            Ok(Err(wire::WireError::Closed)) => return Ok(()),
            Ok(Err(e)) => return Err(e.to_string()),
            Err(_) => return Err("idle: closed".into()),
        };
        if let PeerRequest::Exec {
            task_id,
            argv,
            interactive,
            tty,
        } = req
        {
            if let Err(e) = check_manager(&daemon, identity.as_ref()).await {
                let refusal = super::exec::ExecFrame::Error(e);
                return wire::send(&mut conn, &refusal)
                    .await
                    .map_err(|e| e.to_string());
            }
            // An exec session may sit idle as long as its user does: no idle timeout.
            return super::exec::run_in_task(&daemon, &mut conn, &task_id, &argv, interactive, tty)
                .await
                .map_err(|e| e.to_string());
        }
        let resp = handle(&daemon, req, identity.as_ref(), &peer_ip).await;
        match tokio::time::timeout(
            idle.max(limits.handshake_timeout),
            wire::send(&mut conn, &resp),
        )
        .await
        {
            Ok(r) => r.map_err(|e| e.to_string())?,
            Err(_) => return Err("sending a reply timed out".into()),
        }
        if !authenticated {
            return Ok(());
        }
    }
}

/// Whether the peer may use a manager's rights here: its certificate says manager *and*
/// the cluster, as this node knows it, still has its node as a manager. A manager that was
/// demoted (or removed) keeps its certificate until it expires; the role is what counts.
async fn check_manager(daemon: &Daemon, identity: Option<&NodeIdentity>) -> Result<(), String> {
    let Some(id) = identity.filter(|i| i.role == Role::Manager) else {
        return Err(msg::NOT_MANAGER_WORKER.into());
    };
    if daemon.is_cluster_manager(&id.node_id).await {
        return Ok(());
    }
    tracing::warn!(
        node = %id.node_id,
        "refused a manager certificate: the node is not a manager of the swarm (demoted or removed)"
    );
    Err(msg::NOT_MANAGER_WORKER.into())
}

/// How long an agent's assignment poll waits for a change.
const ASSIGNMENT_POLL: std::time::Duration = std::time::Duration::from_millis(500);

/// Most bytes of a task's log a `TaskLogs` reply carries (base64 makes it 4/3 larger).
pub(crate) const LOG_CHUNK: usize = 256 << 10;

/// A piece of a task's log: from byte `from`, or (without it) from the start of its last
/// `tail` lines, or the start; at most `max` bytes, ending at a line's end when there is
/// more (unless one line is longer than `max`). Reads only what it returns (and, for
/// `tail`, the end of the file backwards), never the whole log.
pub(crate) fn read_log_chunk(
    root: &super::files::DataRoot,
    task_id: &str,
    from: Option<u64>,
    tail: Option<usize>,
    max: usize,
) -> Result<LogChunk, String> {
    use std::io::{Read, Seek, SeekFrom};
    if task_id.is_empty() || !task_id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(format!("task {task_id} not found"));
    }
    let path = root.path("tasks").join(task_id).join("log");
    let io = |e: std::io::Error| format!("task {task_id}: log: {e}");
    let mut file = std::fs::File::open(&path).map_err(io)?;
    let size = file.metadata().map_err(io)?.len();
    let start = match (from, tail) {
        // A log shorter than the offset was replaced: start over.
        (Some(o), _) => {
            if o > size {
                0
            } else {
                o
            }
        }
        (None, Some(n)) => tail_start(&mut file, size, n).map_err(io)?,
        (None, None) => 0,
    };
    let len = usize::try_from(size - start).unwrap_or(usize::MAX).min(max);
    let mut data = vec![0u8; len];
    file.seek(SeekFrom::Start(start)).map_err(io)?;
    file.read_exact(&mut data).map_err(io)?;
    if start + (len as u64) < size {
        if let Some(nl) = data.iter().rposition(|b| *b == b'\n') {
            data.truncate(nl + 1);
        }
    }
    Ok(LogChunk { data, start, size })
}

/// Where the last `n` lines of a log of `size` bytes begin (`--tail n`; none for 0, as
/// docker), reading backwards in blocks.
fn tail_start<R: std::io::Read + std::io::Seek>(
    r: &mut R,
    size: u64,
    n: usize,
) -> std::io::Result<u64> {
    use std::io::SeekFrom;
    if n == 0 {
        return Ok(size);
    }
    const BLOCK: u64 = 64 << 10;
    let mut buf = vec![0u8; BLOCK as usize];
    let mut end = size;
    let mut lines = 0;
    while end > 0 {
        let begin = end.saturating_sub(BLOCK);
        let block = &mut buf[..(end - begin) as usize];
        r.seek(SeekFrom::Start(begin))?;
        r.read_exact(block)?;
        for i in (0..block.len()).rev() {
            let at = begin + i as u64;
            // A newline ends a line; the log's own final newline starts none.
            if block[i] == b'\n' && at + 1 != size {
                lines += 1;
                if lines == n {
                    return Ok(at + 1);
                }
            }
        }
        end = begin;
    }
    Ok(0)
}

fn not_leader(daemon: &Daemon) -> PeerResponse {
    PeerResponse::NotLeader {
        leader: daemon.manager().and_then(|m| m.leader_addr()),
    }
}

async fn handle(
    daemon: &Arc<Daemon>,
    req: PeerRequest,
    identity: Option<&NodeIdentity>,
    peer_ip: &str,
) -> PeerResponse {
    if let PeerRequest::TaskLogs {
        task_id,
        tail,
        from,
        max,
    } = &req
    {
        // Any node serves its tasks' logs, to managers only.
        if let Err(e) = check_manager(daemon, identity).await {
            return PeerResponse::Error(e);
        }
        let max = max.map_or(LOG_CHUNK, |m| (m as usize).clamp(1, LOG_CHUNK));
        return PeerResponse::LogChunk(read_log_chunk(&daemon.root, task_id, *from, *tail, max));
    }
    if let PeerRequest::LbReport = &req {
        // Any node serves its load balancer's report, to managers only.
        if let Err(e) = check_manager(daemon, identity).await {
            return PeerResponse::Error(e);
        }
        return PeerResponse::LbReport(
            daemon
                .lb_report()
                .await
                .map(|r| (*r).clone())
                .map_err(|e| e.message),
        );
    }
    let Some(mgr) = daemon.manager() else {
        return PeerResponse::Error(msg::NOT_MANAGER_WORKER.into());
    };
    // Everything but joining needs a certificate from this cluster.
    let cluster_id = daemon
        .membership()
        .map(|m| m.cluster_id)
        .unwrap_or_default();
    let identity = match (&req, identity) {
        (PeerRequest::Join(_), _) => None,
        (_, Some(id)) if id.cluster_id == cluster_id => Some(id),
        _ => return PeerResponse::Error("a certificate from this swarm is required".into()),
    };
    let is_manager_peer = identity.is_some_and(|i| i.role == Role::Manager);
    match req {
        PeerRequest::Join(j) => {
            if !mgr.in_charge() {
                return not_leader(daemon);
            }
            match daemon.admit(&mgr, j, peer_ip.to_string()).await {
                Ok(a) => PeerResponse::Admitted(a),
                Err(e) => PeerResponse::Error(e.message),
            }
        }
        PeerRequest::AppendEntries { to, rpc } if is_manager_peer => {
            if let Err(e) = raft_addressed(&mgr, to, rpc.vote.leader_id().voted_for()) {
                return PeerResponse::Error(e);
            }
            PeerResponse::AppendEntries(mgr.raft.append_entries(rpc).await)
        }
        PeerRequest::Vote { to, rpc } if is_manager_peer => {
            if let Err(e) = raft_addressed(&mgr, to, rpc.vote.leader_id().voted_for()) {
                return PeerResponse::Error(e);
            }
            PeerResponse::Vote(mgr.raft.vote(rpc).await)
        }
        PeerRequest::InstallSnapshot { to, rpc } if is_manager_peer => {
            if let Err(e) = raft_addressed(&mgr, to, rpc.vote.leader_id().voted_for()) {
                return PeerResponse::Error(e);
            }
            PeerResponse::InstallSnapshot(mgr.raft.install_snapshot(rpc).await)
        }
        PeerRequest::Api { request, asked_on } if is_manager_peer => {
            if !mgr.is_leader() {
                return not_leader(daemon);
            }
            // Served on the leader, whose state is the cluster's: a demoted manager's
            // certificate still says manager, its node no longer is.
            if let Err(e) = check_manager(daemon, identity).await {
                return PeerResponse::Api(Err(ApiError::daemon(e)));
            }
            PeerResponse::Api(daemon.serve_manager_api(&mgr, request, &asked_on).await)
        }
        PeerRequest::RaftJoin if is_manager_peer => {
            if !mgr.in_charge() {
                return not_leader(daemon);
            }
            let id = identity.map(|i| i.node_id.clone()).unwrap_or_default();
            match daemon.raft_join(&mgr, &id).await {
                Ok(()) => PeerResponse::Done,
                Err(e) => PeerResponse::Error(e.message),
            }
        }
        PeerRequest::Heartbeat(hb) => {
            if !mgr.in_charge() {
                return not_leader(daemon);
            }
            let id = identity.map(|i| i.node_id.clone()).unwrap_or_default();
            match daemon.heartbeat(&mgr, &id, hb).await {
                Ok(r) => PeerResponse::Heartbeat(r),
                Err(e) => PeerResponse::Error(e),
            }
        }
        PeerRequest::RenewCert { csr_pem } => {
            if !mgr.in_charge() {
                return not_leader(daemon);
            }
            let id = identity.map(|i| i.node_id.clone()).unwrap_or_default();
            match daemon.renew_cert(&mgr, &id, &csr_pem).await {
                Ok(cert_pem) => PeerResponse::Cert { cert_pem },
                Err(e) => PeerResponse::Error(e.message),
            }
        }
        PeerRequest::Leave => {
            if !mgr.in_charge() {
                return not_leader(daemon);
            }
            let id = identity.map(|i| i.node_id.clone()).unwrap_or_default();
            let r = mgr
                .propose(crate::state::Command::SetNodeStatus {
                    node_id: id,
                    state: crate::types::NodeState::Down,
                    message: Some("node left the swarm".into()),
                    at: chrono::Utc::now(),
                })
                .await;
            match r {
                Ok(()) => PeerResponse::Done,
                Err(e) => PeerResponse::Error(e.message),
            }
        }
        PeerRequest::Assignments { since } => {
            if !mgr.in_charge() {
                return not_leader(daemon);
            }
            let id = identity.map(|i| i.node_id.clone()).unwrap_or_default();
            let mut applied = mgr.sm.applied();
            if *applied.borrow() <= since {
                let _ = tokio::time::timeout(ASSIGNMENT_POLL, applied.changed()).await;
            }
            let (index, tasks, finished, networks, lb, managers, files) = mgr.sm.read(|d| {
                let index = d.last_applied.map(|l| l.index).unwrap_or(0);
                let (tasks, finished) = crate::peer::node_tasks(&d.state, &id);
                let lb = crate::peer::lb_view(&d.state, &id);
                let mut ids: Vec<&str> = tasks
                    .iter()
                    .flat_map(|t| t.networks.iter().map(|a| a.network_id.as_str()))
                    .collect();
                // The routing mesh needs the ingress network on every node.
                if lb.services.iter().any(|s| !s.ports.is_empty()) {
                    ids.extend(
                        d.state
                            .networks
                            .values()
                            .filter(|n| n.ingress)
                            .map(|n| n.id.as_str()),
                    );
                }
                let networks = crate::peer::net_views_of(&d.state, ids);
                let managers = d.state.managers().map(|n| n.id.clone()).collect();
                let files = crate::peer::TaskFiles::of(&d.state, &tasks);
                (index, tasks, finished, networks, lb, managers, files)
            });
            PeerResponse::Assignments {
                index,
                tasks,
                networks,
                lb,
                managers,
                finished: Some(finished),
                files,
            }
        }
        PeerRequest::ReportTasks(reports) => {
            if !mgr.in_charge() {
                return not_leader(daemon);
            }
            let id = identity.map(|i| i.node_id.clone()).unwrap_or_default();
            // A node reports only its own tasks.
            let own: Vec<_> = mgr.sm.read(|d| {
                reports
                    .into_iter()
                    .filter(|r| {
                        d.state
                            .tasks
                            .get(&r.task_id)
                            .is_some_and(|t| t.node_id == id)
                    })
                    .collect()
            });
            if own.is_empty() {
                return PeerResponse::Done;
            }
            match mgr
                .propose(crate::state::Command::ReportTasks {
                    reports: own,
                    at: chrono::Utc::now(),
                })
                .await
            {
                Ok(()) => PeerResponse::Done,
                Err(e) => PeerResponse::Error(e.message),
            }
        }
        // Manager-only requests from a worker certificate.
        _ => PeerResponse::Api(Err(ApiError::daemon(msg::NOT_MANAGER_WORKER))),
    }
}

/// Raft traffic is taken only from members of our configuration, so a manager cut off by
/// `--force-new-cluster` cannot disturb the new group. A member with no configuration yet
/// (a learner being added) accepts its leader.
fn accepts_raft_from(mgr: &super::Manager, sender: Option<u64>) -> bool {
    let voters = mgr.voters();
    voters.is_empty() || sender.is_some_and(|s| mgr.knows_member(s))
}

/// A Raft message is taken only when it is for this member and from a member this one
/// knows. One for another member reached this node because the sender's membership names
/// a member that used to answer at this address (demoted, then promoted again as a new
/// member): counting this member's vote as that one's would count it twice.
fn raft_addressed(mgr: &super::Manager, to: u64, sender: Option<u64>) -> Result<(), String> {
    if to != mgr.raft_id {
        return Err(format!(
            "raft message for member {to:x}, this node is member {:x}",
            mgr.raft_id
        ));
    }
    if !accepts_raft_from(mgr, sender) {
        return Err("not a member of this raft group".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    /// The reference for `--tail N`: the last N lines; `--tail 0` none at all.
    fn last_lines(text: &[u8], n: usize) -> &[u8] {
        let start = tail_start(&mut Cursor::new(text), text.len() as u64, n).unwrap();
        &text[start as usize..]
    }

    #[test]
    fn tail_keeps_the_last_lines() {
        let log = b"one\ntwo\nthree\n";
        assert_eq!(last_lines(log, 0), b"");
        assert_eq!(last_lines(log, 1), b"three\n");
        assert_eq!(last_lines(log, 2), b"two\nthree\n");
        assert_eq!(last_lines(log, 9), log);
        assert_eq!(last_lines(b"a\nb", 1), b"b");
        assert_eq!(last_lines(b"", 3), b"");
    }

    /// Across the 64 KiB blocks it reads backwards in, the tail is the same as counting
    /// lines in memory.
    #[test]
    fn tail_across_blocks_matches_counting_lines() {
        let text: Vec<u8> = (0..30_000)
            .flat_map(|i| format!("line {i} {}\n", "x".repeat(i % 17)).into_bytes())
            .collect();
        assert!(text.len() > 3 * (64 << 10));
        for n in [1, 2, 999, 5_000, 29_999, 30_000, 40_000] {
            let want: Vec<&[u8]> = text.split_inclusive(|b| *b == b'\n').collect();
            let want: Vec<u8> = want[want.len().saturating_sub(n)..].concat();
            assert_eq!(last_lines(&text, n), &want[..], "tail {n}");
        }
    }

    fn root_with_log(log: &[u8]) -> (tempfile::TempDir, super::super::files::DataRoot) {
        let dir = tempfile::tempdir().unwrap();
        let root = super::super::files::DataRoot(dir.path().to_path_buf());
        let task = root.path("tasks").join("t1");
        std::fs::create_dir_all(&task).unwrap();
        std::fs::write(task.join("log"), log).unwrap();
        (dir, root)
    }

    /// A log larger than one chunk comes whole in pieces that end at line ends; with
    /// `tail`, the first piece starts at the last lines.
    #[test]
    fn log_chunks_cover_the_log_in_whole_lines() {
        let log: Vec<u8> = (0..100)
            .flat_map(|i| format!("{i:03} abcdefgh\n").into_bytes())
            .collect();
        let (_dir, root) = root_with_log(&log);
        let mut got = Vec::new();
        let mut from = None;
        loop {
            let c = read_log_chunk(&root, "t1", from, None, 50).unwrap();
            assert_eq!(c.start, from.unwrap_or(0));
            assert_eq!(c.size, log.len() as u64);
            assert!(c.data.ends_with(b"\n") && c.data.len() <= 50, "{c:?}");
            got.extend_from_slice(&c.data);
            from = Some(c.start + c.data.len() as u64);
            if from == Some(c.size) {
                break;
            }
        }
        assert_eq!(got, log);
        let c = read_log_chunk(&root, "t1", None, Some(2), 1 << 20).unwrap();
        assert_eq!(c.data, b"098 abcdefgh\n099 abcdefgh\n");
        // A line longer than the chunk still makes progress.
        let (_dir, root) = root_with_log(&[b'x'; 200]);
        let c = read_log_chunk(&root, "t1", None, None, 64).unwrap();
        assert_eq!(c.data.len(), 64);
        assert!(read_log_chunk(&root, "../t1", None, None, 64).is_err());
    }

    /// Over the overall or the per-IP cap a connection is refused; a closed one frees its
    /// slot.
    #[test]
    fn connection_caps_overall_and_per_ip() {
        let limiter = ConnLimiter::new(3, 2);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let a1 = limiter.admit(a).unwrap();
        let _a2 = limiter.admit(a).unwrap();
        assert_eq!(limiter.admit(a).err(), Some(Refused::PerIp(2)));
        let _b1 = limiter.admit(b).unwrap();
        assert_eq!(limiter.admit(b).err(), Some(Refused::Total(3)));
        drop(a1);
        assert_eq!(limiter.open(), 2);
        let _b2 = limiter.admit(b).unwrap();
        assert_eq!(limiter.admit(a).err(), Some(Refused::Total(3)));
    }

    /// The largest message a peer without a certificate legitimately sends, a Join, fits
    /// the small unauthenticated frame limit with room to spare.
    #[test]
    fn a_join_fits_the_unauthenticated_limit() {
        let (_key, csr_pem) = shoal_ca::new_node_key().unwrap();
        let mut description = crate::types::NodeDescription::of_this_host(&"h".repeat(255));
        description.engine_version = "v".repeat(64);
        let join = PeerRequest::Join(crate::peer::JoinSwarm {
            token: format!("SWMTKN-1-{}-{}", "a".repeat(64), "b".repeat(32)),
            csr_pem,
            description,
            advertise_addr: Some("[2001:db8::1234:5678:9abc:def0]".into()),
            listen_port: 2377,
            availability: Some(crate::types::Availability::Active),
        });
        let bytes = serde_json::to_vec(&join).unwrap().len();
        assert!(bytes * 8 < wire::MAX_UNAUTHENTICATED_FRAME, "{bytes}");
    }
}
