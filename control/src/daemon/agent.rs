//! The agent: every node's session with the leader's dispatcher. It heartbeats, follows the
//! leader, and carries out role changes (promote/demote) decided by the cluster.

use std::sync::Arc;
use std::time::Duration;

use super::{lock, Daemon, Manager};
use crate::peer::{Heartbeat, PeerClient, PeerRequest, PeerResponse};
use crate::raft::store;
use crate::types::{NodeDescription, Role};

pub(crate) async fn run(daemon: Arc<Daemon>) {
    let mut client: Option<PeerClient> = None;
    let mut next_manager = 0usize;
    loop {
        let Some(m) = daemon.membership() else {
            return;
        };
        let target = lock(&daemon.leader_hint).clone().or_else(|| {
            let known = known_managers(&daemon, &m);
            let t = known.get(next_manager % known.len().max(1)).cloned();
            next_manager += 1;
            t
        });
        let Some(target) = target else {
            tokio::time::sleep(heartbeat_period(&m)).await;
            continue;
        };
        if client.as_ref().map(|c| c.addr()) != Some(target.as_str()) {
            client = Some(PeerClient::new(target.clone(), daemon.tls.clone()));
        }
        let Some(c) = client.as_mut() else { continue };
        let mut description = NodeDescription::of_this_host(&daemon.cfg.hostname);
        description.tls = lock(&daemon.tls_report).clone();
        let hb = Heartbeat {
            description,
            addr: m.addr.clone(),
            listen_addr: m.listen_addr(),
        };
        let period = heartbeat_period(&m);
        match c
            .call(
                &PeerRequest::Heartbeat(hb),
                period.max(Duration::from_secs(2)),
            )
            .await
        {
            Ok(PeerResponse::Heartbeat(reply)) => {
                *lock(&daemon.leader_hint) = Some(reply.leader.clone());
                let mut updated = m.clone();
                updated.managers = reply.managers.clone();
                updated.heartbeat_ms = reply.heartbeat_ms;
                if updated.managers != m.managers || updated.heartbeat_ms != m.heartbeat_ms {
                    if let Err(e) = daemon.set_membership(Some(updated)) {
                        tracing::warn!(error = %e, "saving membership");
                    }
                }
                // The swarm's roots (both during a root rotation): trusted before a
                // certificate from the new one is asked for.
                if !reply.trust_pem.is_empty() {
                    if let Err(e) = daemon.install_trust(&reply.trust_pem) {
                        tracing::warn!(error = %e, "taking the swarm's root CA");
                    }
                }
                // A manager promoted again has a fresh Raft ID: its Raft still runs under the
                // old one, which the leader may have removed without this node learning it.
                let repromoted = reply.role == Role::Manager && reply.raft_id != m.raft_id;
                if reply.role != m.role || repromoted {
                    let _guard = daemon.op_lock.lock().await;
                    if let Err(e) = change_role(&daemon, reply.role, reply.raft_id, c).await {
                        tracing::warn!(error = %e, role = %reply.role, "changing role");
                    }
                } else if reply.rotate_cert || cert_due(&daemon) {
                    let _guard = daemon.op_lock.lock().await;
                    match renew_cert(&daemon, m.role, c).await {
                        Ok(()) if reply.rotate_cert => {
                            tracing::info!("node certificate renewed for the root CA rotation")
                        }
                        Ok(()) => tracing::info!("node certificate renewed"),
                        Err(e) => tracing::warn!(error = %e, "renewing the node certificate"),
                    }
                } else if let Some(mgr) = daemon
                    .manager()
                    .filter(|mgr| !mgr.knows_member(mgr.raft_id))
                {
                    // A manager whose Raft was never added (an earlier attempt failed): ask again.
                    let mut fresh = PeerClient::new(c.addr().to_string(), daemon.tls.clone());
                    if let Err(e) = fresh
                        .call(&PeerRequest::RaftJoin, Duration::from_secs(45))
                        .await
                    {
                        tracing::warn!(error = %e, raft_id = mgr.raft_id, "joining raft");
                    }
                }
            }
            Ok(PeerResponse::NotLeader { leader }) => {
                // A node that is not the leader naming itself (a leader removed from Raft
                // still remembers itself as leader) is no hint: try the other managers.
                *lock(&daemon.leader_hint) = leader.filter(|l| *l != target);
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
            Ok(other) => {
                tracing::warn!(?other, "heartbeat refused");
                *lock(&daemon.leader_hint) = None;
            }
            Err(e) => {
                tracing::debug!(%target, error = %e, "heartbeat failed");
                *lock(&daemon.leader_hint) = None;
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        }
        // Not past the certificate's renewal point: a heartbeat period may be longer than
        // what is left of a short --cert-expiry.
        let until_renewal = lock(&daemon.cert_times)
            .and_then(|t| t.renew_at.duration_since(std::time::SystemTime::now()).ok())
            .unwrap_or_default();
        tokio::time::sleep(period.min(until_renewal.max(Duration::from_secs(1)))).await;
    }
}

/// Every manager address this node knows, to look for the leader at: node.json's list (the
/// leader's last reply), then, while this node holds Raft, its Raft group's members and the
/// managers of its replicated state. A leader demoted from itself right after another
/// manager joined never had a reply listing that manager, which is now the leader.
fn known_managers(daemon: &Daemon, m: &super::files::Membership) -> Vec<String> {
    let mut known = m.managers.clone();
    if let Some(mgr) = daemon.manager() {
        let in_state: Vec<String> = mgr
            .sm
            .read(|d| d.state.managers().map(|n| n.listen_addr.clone()).collect());
        for addr in mgr.member_addrs().into_iter().chain(in_state) {
            if !addr.is_empty() && !known.contains(&addr) {
                known.push(addr);
            }
        }
    }
    known
}

/// The agent's heartbeat period, clamped: a period stored before `swarm init` checked it
/// may be 0, which would make this loop spin.
fn heartbeat_period(m: &super::files::Membership) -> Duration {
    Duration::from_millis(m.heartbeat_ms)
        .clamp(crate::api::MIN_HEARTBEAT, crate::api::MAX_HEARTBEAT)
}

/// Whether this node's certificate has reached the point chosen for its renewal.
fn cert_due(daemon: &Daemon) -> bool {
    lock(&daemon.cert_times).is_some_and(|t| std::time::SystemTime::now() >= t.renew_at)
}

/// A new key and a certificate for it, signed by the leader for this node's role in the
/// cluster, which must be `role`; installed, and used from the next connection on.
async fn renew_cert(daemon: &Daemon, role: Role, leader: &mut PeerClient) -> Result<(), String> {
    let (key_pem, csr_pem) = shoal_ca::new_node_key().map_err(|e| e.to_string())?;
    let cert_pem = match leader
        .call(&PeerRequest::RenewCert { csr_pem }, Duration::from_secs(5))
        .await
        .map_err(|e| e.to_string())?
    {
        PeerResponse::Cert { cert_pem } => cert_pem,
        other => return Err(format!("certificate renewal refused: {other:?}")),
    };
    let granted = shoal_ca::identity_of_pem(&cert_pem).map_err(|e| e.to_string())?;
    if granted.role != role {
        return Err(format!("leader granted role {} not {role}", granted.role));
    }
    daemon.install_cert(&key_pem, &cert_pem, None)
}

/// Become what the cluster says: get a certificate for the new role, then start or stop Raft.
/// A manager runs Raft as `raft_id`, the ID the cluster gave it with its latest promotion.
async fn change_role(
    daemon: &Arc<Daemon>,
    role: Role,
    raft_id: u64,
    leader: &mut PeerClient,
) -> Result<(), String> {
    renew_cert(daemon, role, leader).await?;
    let mut m = daemon.membership().ok_or("not in a swarm")?;
    m.role = role;
    if role == Role::Manager {
        // Raft under an earlier ID stops; a new store for the new ID replaces its store
        // (atomically) before the new ID is saved. A restart in between finds the new store,
        // made for the new ID, and takes that ID (`Daemon::open_store_at_start`); a worker
        // finds a store it does not need, removed at start, and is told its role again.
        let stale = lock(&daemon.manager).take_if(|mgr| mgr.raft_id != raft_id);
        if let Some(old) = stale {
            tracing::info!(
                old = old.raft_id,
                new = raft_id,
                "promoted again: leaving the old raft id"
            );
            old.shutdown().await;
        }
        if daemon.manager().is_none() {
            let path = daemon.root.raft_file();
            store::create(&path, raft_id)
                .map_err(|e| format!("creating {}: {e}", path.display()))?;
        }
        m.raft_id = raft_id;
    }
    if role == Role::Worker {
        tracing::info!("demoted: stopping raft");
        let mgr = lock(&daemon.manager).take();
        if let Some(mgr) = mgr {
            mgr.shutdown().await;
        }
        // Workers are never locked (swarmkit gives them no unlock key). Unsealed with Raft
        // stopped (its autolock loop would seal again) and before node.json says worker: a
        // crash in between leaves a manager, which seals again, never a sealed worker.
        daemon.set_kek(None)?;
    }
    daemon.set_membership(Some(m.clone()))?;
    match role {
        Role::Manager => {
            tracing::info!(raft_id, "promoted: starting raft");
            if daemon.manager().is_none() {
                let mgr = Manager::open(daemon, m.raft_id).await?;
                *lock(&daemon.manager) = Some(mgr);
            }
            // A fresh client: the old connection still presents the worker certificate.
            let mut fresh = PeerClient::new(leader.addr().to_string(), daemon.tls.clone());
            match fresh
                .call(&PeerRequest::RaftJoin, Duration::from_secs(45))
                .await
            {
                Ok(PeerResponse::Done) => Ok(()),
                Ok(other) => Err(format!("joining raft: {other:?}")),
                Err(e) => Err(format!("joining raft: {e}")),
            }
        }
        Role::Worker => {
            let _ = std::fs::remove_file(daemon.root.raft_file());
            // The store it sealed is gone: a later promotion gets a new key.
            if !daemon.root.raft_file().exists() {
                daemon.forget_dek()?;
            }
            Ok(())
        }
    }
}
