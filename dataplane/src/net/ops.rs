//! The operations reconciliation needs from the kernel, as a trait, and the reconciliation of a network's remote entries and local ports over it.
//!
//! The kernel implementation is `kernel::KernelOps`; the tests below run the same
//! reconciliation against a recording fake, so the diff logic is checked without root.

use std::collections::{BTreeMap, BTreeSet};

use futures::{stream, StreamExt, TryStreamExt};

use super::fdb::{Desired, FdbEntry, Neighbour, Plan};
use super::{stable_hash, LocalEndpoint, NetError};

/// Requests in flight at once on one netlink socket: enough to hide the round
/// trips, few enough that the acks never overrun the socket's receive buffer.
const IN_FLIGHT: usize = 64;

/// The kernel objects of one network: the VXLAN device's entries and the bridge's task ports.
pub(crate) trait NetlinkOps {
    /// The `self` FDB entries of the VXLAN device.
    async fn fdb(&self) -> Result<Vec<FdbEntry>, NetError>;
    async fn add_fdb(&self, entry: FdbEntry) -> Result<(), NetError>;
    /// Deleting an entry that is not there succeeds.
    async fn del_fdb(&self, entry: FdbEntry) -> Result<(), NetError>;
    /// The neighbour entries on the VXLAN device.
    async fn neighbours(&self) -> Result<Vec<Neighbour>, NetError>;
    /// Adds, or replaces the MAC of, the entry for `neighbour.ip`.
    async fn set_neighbour(&self, neighbour: Neighbour) -> Result<(), NetError>;
    async fn del_neighbour(&self, neighbour: Neighbour) -> Result<(), NetError>;
    /// MACs the bridge has learned (dynamic entries) behind the VXLAN port.
    async fn learned(&self) -> Result<Vec<[u8; 6]>, NetError>;
    /// Makes the bridge forget a MAC it learned behind the VXLAN port; one that is
    /// not there (aged out meanwhile) is fine.
    async fn forget(&self, mac: [u8; 6]) -> Result<(), NetError>;
    /// Names of the task ports on the bridge.
    async fn ports(&self) -> Result<Vec<String>, NetError>;
    /// Creates port `port` for `ep` and configures the task's side; on failure
    /// nothing of it is left.
    async fn attach(&self, port: &str, ep: &LocalEndpoint) -> Result<(), NetError>;
    /// Removes the ports (and so the tasks' interfaces), all in one batch: the
    /// kernel waits for an RCU grace period per deletion request, not per link.
    async fn detach(&self, ports: &[String]) -> Result<(), NetError>;
}

/// What reconciling the remote entries changed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RemoteChanges {
    pub fdb_added: usize,
    pub fdb_removed: usize,
    pub neighbours_set: usize,
    pub neighbours_removed: usize,
    /// MACs the bridge had learned behind the VXLAN port that no remote task has.
    pub learned_forgotten: usize,
}

/// Makes the VXLAN device's FDB and neighbour entries exactly `desired`:
/// stale entries go first, then missing ones are added. The bridge keeps what it
/// learned behind the VXLAN port only for the MACs of remote tasks: the entries of
/// tasks that are gone (stopped, moved away, or on a node that left), and of
/// anything else of a node that left (its gateway), are forgotten too, instead of
/// lingering until they age out.
pub(crate) async fn reconcile_remote<O: NetlinkOps>(
    ops: &O,
    desired: &Desired,
) -> Result<RemoteChanges, NetError> {
    let (fdb, neighbours, learned) =
        futures::try_join!(ops.fdb(), ops.neighbours(), ops.learned())?;
    let plan = Plan::new(desired, &fdb, &neighbours);
    let remote_macs: BTreeSet<[u8; 6]> = desired
        .fdb
        .iter()
        .filter(|e| !e.is_flood())
        .map(|e| e.mac)
        .collect();
    let forget: BTreeSet<[u8; 6]> = learned
        .into_iter()
        .filter(|mac| !remote_macs.contains(mac))
        .collect();
    if plan.is_empty() && forget.is_empty() {
        return Ok(RemoteChanges::default());
    }
    run_all(plan.fdb_del.iter().map(|e| ops.del_fdb(*e))).await?;
    run_all(plan.neighbours_del.iter().map(|n| ops.del_neighbour(*n))).await?;
    run_all(forget.iter().map(|mac| ops.forget(*mac))).await?;
    run_all(plan.fdb_add.iter().map(|e| ops.add_fdb(*e))).await?;
    run_all(plan.neighbours_set.iter().map(|n| ops.set_neighbour(*n))).await?;
    Ok(RemoteChanges {
        fdb_added: plan.fdb_add.len(),
        fdb_removed: plan.fdb_del.len(),
        neighbours_set: plan.neighbours_set.len(),
        neighbours_removed: plan.neighbours_del.len(),
        learned_forgotten: forget.len(),
    })
}

async fn run_all<F>(ops: impl Iterator<Item = F>) -> Result<(), NetError>
where
    F: std::future::Future<Output = Result<(), NetError>>,
{
    stream::iter(ops)
        .buffer_unordered(IN_FLIGHT)
        .try_collect()
        .await
}

/// What reconciling the local ports changed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct LocalChanges {
    /// Task ids attached now.
    pub attached: Vec<String>,
    /// Ports removed (their tasks are gone or changed).
    pub detached: Vec<String>,
    /// Endpoints that could not be attached: (task id, error).
    pub failed: Vec<(String, String)>,
}

/// Makes the bridge's task ports exactly those of `local`: ports of endpoints no
/// longer wanted are removed, then missing ones attached. A port name is derived
/// from everything about the endpoint (see [`port_name`]), so a changed endpoint
/// is a new port and its old one goes. One endpoint failing to attach does not
/// stop the others; it is reported and retried by the next apply.
pub(crate) async fn reconcile_local<O: NetlinkOps>(
    ops: &O,
    local: &[LocalEndpoint],
) -> Result<LocalChanges, NetError> {
    let mut wanted: BTreeMap<String, &LocalEndpoint> = BTreeMap::new();
    for ep in local {
        wanted.entry(port_name(ep)).or_insert(ep);
    }
    let present = ops.ports().await?;
    let mut changes = LocalChanges {
        detached: present
            .iter()
            .filter(|p| !wanted.contains_key(*p))
            .cloned()
            .collect(),
        ..LocalChanges::default()
    };
    if !changes.detached.is_empty() {
        ops.detach(&changes.detached).await?;
    }
    let missing: Vec<(&String, &&LocalEndpoint)> = wanted
        .iter()
        .filter(|(port, _)| !present.contains(port))
        .collect();
    let results: Vec<(&LocalEndpoint, Result<(), NetError>)> = stream::iter(missing)
        .map(|(port, ep)| async move { (*ep, ops.attach(port, ep).await) })
        .buffer_unordered(IN_FLIGHT)
        .collect()
        .await;
    for (ep, result) in results {
        match result {
            Ok(()) => changes.attached.push(ep.task_id.clone()),
            Err(e) => changes.failed.push((ep.task_id.clone(), e.to_string())),
        }
    }
    changes.attached.sort();
    changes.failed.sort();
    Ok(changes)
}

/// The bridge-side veth name of an endpoint: `sv` and 13 hex digits of a hash of
/// everything that defines the endpoint (15 characters, the kernel's limit).
pub(crate) fn port_name(ep: &LocalEndpoint) -> String {
    let hash = stable_hash(&[
        ep.task_id.as_bytes(),
        ep.ifname.as_bytes(),
        ep.netns.as_os_str().as_encoded_bytes(),
        &ep.ip.octets(),
        &ep.mac,
        &[u8::from(ep.default_route)],
    ]);
    format!("sv{:013x}", hash >> 12)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::net::Ipv4Addr;
    use std::path::PathBuf;
    use std::sync::Mutex;

    use super::*;
    use crate::net::{mac_for_ip, RemoteEndpoint};

    const OWN: Ipv4Addr = Ipv4Addr::new(10, 79, 0, 1);
    const NODE_B: Ipv4Addr = Ipv4Addr::new(10, 79, 0, 2);
    const NODE_C: Ipv4Addr = Ipv4Addr::new(10, 79, 0, 3);

    /// A kernel in memory that records every change asked of it.
    #[derive(Default)]
    struct FakeOps {
        state: Mutex<FakeState>,
    }

    #[derive(Default)]
    struct FakeState {
        fdb: BTreeSet<FdbEntry>,
        neighbours: BTreeMap<Ipv4Addr, [u8; 6]>,
        /// MACs the bridge learned behind the VXLAN port.
        learned: BTreeSet<[u8; 6]>,
        ports: BTreeSet<String>,
        /// Task ids whose attach fails.
        broken: BTreeSet<String>,
        calls: Vec<String>,
    }

    impl FakeOps {
        fn calls(&self) -> Vec<String> {
            std::mem::take(&mut self.state.lock().unwrap().calls)
        }
    }

    impl NetlinkOps for FakeOps {
        async fn fdb(&self) -> Result<Vec<FdbEntry>, NetError> {
            Ok(self.state.lock().unwrap().fdb.iter().copied().collect())
        }
        async fn add_fdb(&self, entry: FdbEntry) -> Result<(), NetError> {
            let mut s = self.state.lock().unwrap();
            if !entry.is_flood() {
                s.fdb.retain(|e| e.mac != entry.mac);
            }
            s.fdb.insert(entry);
            s.calls.push(format!("fdb add {entry}"));
            Ok(())
        }
        async fn del_fdb(&self, entry: FdbEntry) -> Result<(), NetError> {
            let mut s = self.state.lock().unwrap();
            s.fdb.remove(&entry);
            s.calls.push(format!("fdb del {entry}"));
            Ok(())
        }
        async fn neighbours(&self) -> Result<Vec<Neighbour>, NetError> {
            let s = self.state.lock().unwrap();
            Ok(s.neighbours
                .iter()
                .map(|(&ip, &mac)| Neighbour { ip, mac })
                .collect())
        }
        async fn set_neighbour(&self, n: Neighbour) -> Result<(), NetError> {
            let mut s = self.state.lock().unwrap();
            s.neighbours.insert(n.ip, n.mac);
            s.calls.push(format!("neigh set {n}"));
            Ok(())
        }
        async fn del_neighbour(&self, n: Neighbour) -> Result<(), NetError> {
            let mut s = self.state.lock().unwrap();
            s.neighbours.remove(&n.ip);
            s.calls.push(format!("neigh del {n}"));
            Ok(())
        }
        async fn learned(&self) -> Result<Vec<[u8; 6]>, NetError> {
            Ok(self.state.lock().unwrap().learned.iter().copied().collect())
        }
        async fn forget(&self, mac: [u8; 6]) -> Result<(), NetError> {
            let mut s = self.state.lock().unwrap();
            s.learned.remove(&mac);
            s.calls
                .push(format!("forget {}", crate::net::format_mac(&mac)));
            Ok(())
        }
        async fn ports(&self) -> Result<Vec<String>, NetError> {
            Ok(self.state.lock().unwrap().ports.iter().cloned().collect())
        }
        async fn attach(&self, port: &str, ep: &LocalEndpoint) -> Result<(), NetError> {
            let mut s = self.state.lock().unwrap();
            if s.broken.contains(&ep.task_id) {
                return Err(NetError::Invalid(format!("{} is broken", ep.task_id)));
            }
            s.ports.insert(port.to_string());
            s.calls.push(format!("attach {}", ep.task_id));
            Ok(())
        }
        async fn detach(&self, ports: &[String]) -> Result<(), NetError> {
            let mut s = self.state.lock().unwrap();
            for port in ports {
                s.ports.remove(port);
            }
            s.calls.push(format!("detach {ports:?}"));
            Ok(())
        }
    }

    fn remote(last: u8, node: Ipv4Addr) -> RemoteEndpoint {
        let ip = Ipv4Addr::new(10, 0, 9, last);
        RemoteEndpoint {
            ip,
            mac: mac_for_ip(ip),
            node_addr: node,
        }
    }

    fn local(task: &str, last: u8) -> LocalEndpoint {
        let ip = Ipv4Addr::new(10, 0, 9, last);
        LocalEndpoint {
            task_id: task.to_string(),
            netns: PathBuf::from(format!("/run/netns/{task}")),
            ip,
            mac: mac_for_ip(ip),
            ifname: "eth0".to_string(),
            default_route: true,
        }
    }

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    fn desired(remote: &[RemoteEndpoint]) -> Desired {
        Desired::from_remote(remote, OWN).0
    }

    /// Missing entries are added: flood per VTEP, unicast per MAC, neighbour per IP.
    #[test]
    fn adds_missing_entries() {
        let ops = FakeOps::default();
        let want = desired(&[remote(2, NODE_B), remote(3, NODE_C)]);
        let changes = block_on(reconcile_remote(&ops, &want)).unwrap();
        assert_eq!(
            changes,
            RemoteChanges {
                fdb_added: 4,
                fdb_removed: 0,
                neighbours_set: 2,
                neighbours_removed: 0,
                learned_forgotten: 0,
            }
        );
        let s = ops.state.lock().unwrap();
        assert_eq!(s.fdb, want.fdb);
        assert_eq!(s.neighbours, want.neighbours);
    }

    /// Entries of endpoints no longer in cluster state are deleted, before any add.
    #[test]
    fn deletes_stale_entries_first() {
        let ops = FakeOps::default();
        block_on(reconcile_remote(
            &ops,
            &desired(&[remote(2, NODE_B), remote(3, NODE_C)]),
        ))
        .unwrap();
        ops.calls();
        let want = desired(&[remote(3, NODE_B)]);
        let changes = block_on(reconcile_remote(&ops, &want)).unwrap();
        let calls = ops.calls();
        let first_add = calls
            .iter()
            .position(|c| c.contains(" add ") || c.contains(" set "));
        let last_del = calls.iter().rposition(|c| c.contains(" del "));
        assert!(last_del < first_add, "deletes before adds: {calls:?}");
        assert_eq!(changes.neighbours_removed, 1);
        let s = ops.state.lock().unwrap();
        assert_eq!(s.fdb, want.fdb);
        assert_eq!(s.neighbours, want.neighbours);
    }

    /// Reconciling a second time with the same state asks the kernel for nothing.
    #[test]
    fn equal_state_changes_nothing() {
        let ops = FakeOps::default();
        let want = desired(&[remote(2, NODE_B), remote(3, NODE_C)]);
        block_on(reconcile_remote(&ops, &want)).unwrap();
        ops.calls();
        let changes = block_on(reconcile_remote(&ops, &want)).unwrap();
        assert_eq!(changes, RemoteChanges::default());
        assert!(ops.calls().is_empty());
    }

    /// What the bridge learned behind the VXLAN port is forgotten for every MAC that
    /// is no longer a remote task's (a task or node that left, a gone node's gateway)
    /// and kept for the others; nothing else is asked when there is nothing stale.
    #[test]
    fn learned_macs_of_gone_endpoints_are_forgotten() {
        let ops = FakeOps::default();
        let (b, c) = (remote(2, NODE_B), remote(3, NODE_C));
        block_on(reconcile_remote(&ops, &desired(&[b, c]))).unwrap();
        let gateway_c = [0x02, 0xaa, 0, 0, 0, 3];
        ops.state.lock().unwrap().learned = BTreeSet::from([b.mac, c.mac, gateway_c]);
        ops.calls();
        // Node C leaves: its task's and its gateway's learned entries go, B's stays.
        let changes = block_on(reconcile_remote(&ops, &desired(&[b]))).unwrap();
        assert_eq!(changes.learned_forgotten, 2);
        assert_eq!(ops.state.lock().unwrap().learned, BTreeSet::from([b.mac]));
        let calls = ops.calls();
        assert!(calls.contains(&format!("forget {}", crate::net::format_mac(&c.mac))));
        // Learned later, without any other change: still forgotten on the next apply.
        ops.state.lock().unwrap().learned.insert(gateway_c);
        let changes = block_on(reconcile_remote(&ops, &desired(&[b]))).unwrap();
        assert_eq!(changes.learned_forgotten, 1);
        let changes = block_on(reconcile_remote(&ops, &desired(&[b]))).unwrap();
        assert_eq!(changes, RemoteChanges::default());
    }

    /// A remote-less desired state empties the device.
    #[test]
    fn empty_remote_removes_everything() {
        let ops = FakeOps::default();
        block_on(reconcile_remote(&ops, &desired(&[remote(2, NODE_B)]))).unwrap();
        block_on(reconcile_remote(&ops, &desired(&[]))).unwrap();
        let s = ops.state.lock().unwrap();
        assert!(s.fdb.is_empty() && s.neighbours.is_empty());
    }

    /// Ports follow the local endpoints: new ones attached, gone ones detached, equal ones kept.
    #[test]
    fn ports_follow_local_endpoints() {
        let ops = FakeOps::default();
        let a = local("a", 2);
        let b = local("b", 3);
        let changes = block_on(reconcile_local(&ops, &[a.clone(), b.clone()])).unwrap();
        assert_eq!(changes.attached, vec!["a", "b"]);
        ops.calls();
        let changes = block_on(reconcile_local(&ops, &[a.clone(), b.clone()])).unwrap();
        assert_eq!(changes, LocalChanges::default());
        assert!(ops.calls().is_empty());
        let changes = block_on(reconcile_local(&ops, std::slice::from_ref(&b))).unwrap();
        assert_eq!(changes.detached, vec![port_name(&a)]);
        assert!(changes.attached.is_empty());
    }

    /// A changed endpoint (new IP) is a new port; the old one is removed.
    #[test]
    fn changed_endpoint_is_reattached() {
        let ops = FakeOps::default();
        let a = local("a", 2);
        block_on(reconcile_local(&ops, std::slice::from_ref(&a))).unwrap();
        let moved = local("a", 9);
        let changes = block_on(reconcile_local(&ops, std::slice::from_ref(&moved))).unwrap();
        assert_eq!(changes.detached, vec![port_name(&a)]);
        assert_eq!(changes.attached, vec!["a"]);
        assert_eq!(
            ops.state.lock().unwrap().ports,
            BTreeSet::from([port_name(&moved)])
        );
    }

    /// One endpoint failing to attach is reported; the others are attached.
    #[test]
    fn failed_attach_does_not_stop_others() {
        let ops = FakeOps::default();
        ops.state.lock().unwrap().broken.insert("bad".to_string());
        let changes =
            block_on(reconcile_local(&ops, &[local("bad", 2), local("good", 3)])).unwrap();
        assert_eq!(changes.attached, vec!["good"]);
        assert_eq!(changes.failed.len(), 1);
        assert_eq!(changes.failed[0].0, "bad");
    }

    /// Port names fit IFNAMSIZ and are stable.
    #[test]
    fn port_names_are_short_and_stable() {
        let name = port_name(&local("a", 2));
        assert_eq!(name.len(), 15);
        assert!(name.starts_with("sv"));
        assert_eq!(name, port_name(&local("a", 2)));
        assert_ne!(name, port_name(&local("b", 2)));
    }
}
