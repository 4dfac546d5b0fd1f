//! The forwarding state a network needs for its remote tasks (VXLAN FDB and neighbour entries), and the plan that turns what the kernel has into it.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::Ipv4Addr;

use super::{format_mac, RemoteEndpoint};

/// A `self` FDB entry of the VXLAN device: frames for `mac` go to VTEP `dst`; the
/// all-zeros MAC is the flood entry that carries broadcast and multicast.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FdbEntry {
    pub mac: [u8; 6],
    pub dst: Ipv4Addr,
}

impl FdbEntry {
    pub const FLOOD_MAC: [u8; 6] = [0; 6];

    pub fn flood(dst: Ipv4Addr) -> Self {
        FdbEntry {
            mac: Self::FLOOD_MAC,
            dst,
        }
    }

    /// Flood entries may be many per device (one per VTEP, appended); any other
    /// MAC has one destination.
    pub fn is_flood(&self) -> bool {
        self.mac == Self::FLOOD_MAC
    }
}

impl fmt::Display for FdbEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} dst {}", format_mac(&self.mac), self.dst)
    }
}

/// A permanent neighbour (ARP) entry on the VXLAN device, answered by its proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Neighbour {
    pub ip: Ipv4Addr,
    pub mac: [u8; 6],
}

impl fmt::Display for Neighbour {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} lladdr {}", self.ip, format_mac(&self.mac))
    }
}

/// What the VXLAN device of a network should hold for the given remote endpoints.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Desired {
    pub fdb: BTreeSet<FdbEntry>,
    pub neighbours: BTreeMap<Ipv4Addr, [u8; 6]>,
}

impl Desired {
    /// Flood entries for every distinct remote VTEP, one unicast entry per MAC and
    /// one neighbour per IP. Endpoints claiming our own underlay address are
    /// skipped (they would loop back to us) and so are later duplicates of a MAC or
    /// IP (the first wins, so the result does not flap between applies); both are
    /// counted in the second value.
    pub fn from_remote(remote: &[RemoteEndpoint], own_vtep: Ipv4Addr) -> (Self, usize) {
        let mut skipped = 0;
        let mut by_mac: BTreeMap<[u8; 6], Ipv4Addr> = BTreeMap::new();
        let mut desired = Desired::default();
        for ep in remote {
            if ep.node_addr == own_vtep || ep.mac == FdbEntry::FLOOD_MAC {
                skipped += 1;
                continue;
            }
            if by_mac.contains_key(&ep.mac) || desired.neighbours.contains_key(&ep.ip) {
                skipped += 1;
                continue;
            }
            by_mac.insert(ep.mac, ep.node_addr);
            desired.neighbours.insert(ep.ip, ep.mac);
            desired.fdb.insert(FdbEntry::flood(ep.node_addr));
        }
        desired
            .fdb
            .extend(by_mac.into_iter().map(|(mac, dst)| FdbEntry { mac, dst }));
        (desired, skipped)
    }
}

/// Changes that turn the kernel's entries into the desired ones. Deletions go
/// first: a MAC that moved to another VTEP is deleted at the old one and added at
/// the new one (meanwhile its frames follow the flood entries, so still arrive).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Plan {
    pub fdb_del: Vec<FdbEntry>,
    pub fdb_add: Vec<FdbEntry>,
    pub neighbours_del: Vec<Neighbour>,
    /// Added, or replaced when the IP's MAC changed.
    pub neighbours_set: Vec<Neighbour>,
}

impl Plan {
    pub fn new(desired: &Desired, fdb: &[FdbEntry], neighbours: &[Neighbour]) -> Self {
        let actual_fdb: BTreeSet<FdbEntry> = fdb.iter().copied().collect();
        let actual_neighbours: BTreeMap<Ipv4Addr, [u8; 6]> =
            neighbours.iter().map(|n| (n.ip, n.mac)).collect();
        Plan {
            fdb_del: actual_fdb.difference(&desired.fdb).copied().collect(),
            fdb_add: desired.fdb.difference(&actual_fdb).copied().collect(),
            neighbours_del: neighbours
                .iter()
                .filter(|n| !desired.neighbours.contains_key(&n.ip))
                .copied()
                .collect(),
            neighbours_set: desired
                .neighbours
                .iter()
                .filter(|(ip, mac)| actual_neighbours.get(ip) != Some(mac))
                .map(|(&ip, &mac)| Neighbour { ip, mac })
                .collect(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.fdb_del.is_empty()
            && self.fdb_add.is_empty()
            && self.neighbours_del.is_empty()
            && self.neighbours_set.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::mac_for_ip;

    const OWN: Ipv4Addr = Ipv4Addr::new(10, 79, 0, 1);
    const NODE_B: Ipv4Addr = Ipv4Addr::new(10, 79, 0, 2);
    const NODE_C: Ipv4Addr = Ipv4Addr::new(10, 79, 0, 3);

    fn remote(ip: [u8; 4], node: Ipv4Addr) -> RemoteEndpoint {
        let ip = Ipv4Addr::from(ip);
        RemoteEndpoint {
            ip,
            mac: mac_for_ip(ip),
            node_addr: node,
        }
    }

    /// One flood entry per distinct VTEP, one unicast entry per MAC, one neighbour per IP.
    #[test]
    fn desired_state_has_one_flood_entry_per_vtep() {
        let (desired, skipped) = Desired::from_remote(
            &[
                remote([10, 0, 9, 2], NODE_B),
                remote([10, 0, 9, 3], NODE_B),
                remote([10, 0, 9, 4], NODE_C),
            ],
            OWN,
        );
        assert_eq!(skipped, 0);
        let floods: Vec<_> = desired.fdb.iter().filter(|e| e.is_flood()).collect();
        assert_eq!(floods.len(), 2);
        assert_eq!(desired.fdb.len(), 5);
        assert_eq!(desired.neighbours.len(), 3);
    }

    /// Our own VTEP and duplicate MACs or IPs never become entries; the first claim wins.
    #[test]
    fn own_vtep_and_duplicates_are_skipped() {
        let mut moved = remote([10, 0, 9, 2], NODE_C);
        moved.ip = Ipv4Addr::new(10, 0, 9, 99);
        let (desired, skipped) = Desired::from_remote(
            &[
                remote([10, 0, 9, 2], NODE_B),
                moved,
                remote([10, 0, 9, 5], OWN),
            ],
            OWN,
        );
        assert_eq!(skipped, 2);
        assert_eq!(
            desired.fdb,
            BTreeSet::from([
                FdbEntry::flood(NODE_B),
                FdbEntry {
                    mac: mac_for_ip(Ipv4Addr::new(10, 0, 9, 2)),
                    dst: NODE_B
                }
            ])
        );
    }

    /// Equal state plans nothing.
    #[test]
    fn equal_state_is_a_no_op() {
        let (desired, _) = Desired::from_remote(&[remote([10, 0, 9, 2], NODE_B)], OWN);
        let fdb: Vec<_> = desired.fdb.iter().copied().collect();
        let neighbours: Vec<_> = desired
            .neighbours
            .iter()
            .map(|(&ip, &mac)| Neighbour { ip, mac })
            .collect();
        assert!(Plan::new(&desired, &fdb, &neighbours).is_empty());
    }

    /// A MAC that moved is deleted at its old VTEP and added at the new one; the
    /// old VTEP's flood entry goes when no task is left there.
    #[test]
    fn moved_task_replaces_its_entries() {
        let (before, _) = Desired::from_remote(&[remote([10, 0, 9, 2], NODE_B)], OWN);
        let (after, _) = Desired::from_remote(&[remote([10, 0, 9, 2], NODE_C)], OWN);
        let fdb: Vec<_> = before.fdb.iter().copied().collect();
        let neighbours: Vec<_> = before
            .neighbours
            .iter()
            .map(|(&ip, &mac)| Neighbour { ip, mac })
            .collect();
        let plan = Plan::new(&after, &fdb, &neighbours);
        let mac = mac_for_ip(Ipv4Addr::new(10, 0, 9, 2));
        assert_eq!(
            plan.fdb_del,
            vec![FdbEntry::flood(NODE_B), FdbEntry { mac, dst: NODE_B }]
        );
        assert_eq!(
            plan.fdb_add,
            vec![FdbEntry::flood(NODE_C), FdbEntry { mac, dst: NODE_C }]
        );
        assert!(plan.neighbours_del.is_empty());
        assert!(plan.neighbours_set.is_empty());
    }
}
