//! The overlay's fast path, as the load balancer's maps see it: which overlay
//! endpoints exist (local ones with their port, remote ones with their VTEP) and
//! each network's uplink. The programs are in `ebpf/include/overlay.h`.
//!
//! The agent calls [`LoadBalancer::sync_overlay`] after every apply of a network
//! with what that apply found, and [`LoadBalancer::retain_overlays`] with the
//! networks the node keeps. Endpoints are keyed by address alone (the swarm's
//! subnets never overlap); an address two entries claim differently is left out,
//! so its frames take the kernel's path, which is always there. Every write is
//! a change: nothing is rewritten that is already in the map.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::path::Path;

use aya::programs::TcAttachType;
use shoal_ebpf as abi;

use super::{LbError, LoadBalancer, SyncedMap, OV_UP_NET, OV_UP_NODE};
use crate::net::{RemoteEndpoint, TaskPort, Uplink};

/// One network's part of the fast path on this node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct NetState {
    vni: u32,
    /// The ingress network (mesh flows cross it).
    ingress: bool,
    /// The uplink the programs are attached to.
    uplink: Uplink,
    /// Its endpoints, as this network wants them in ov_eps.
    endpoints: Vec<(u32, abi::OvEp)>,
    /// Other nodes' VTEPs mesh replies may go to (the ingress network's).
    peers: Vec<u32>,
}

/// The fast path's maps.
pub(super) struct FastPath {
    eps: SyncedMap<u32, abi::OvEp>,
    nets: SyncedMap<u32, abi::OvNet>,
    /// Other nodes' VTEPs (value 1).
    vteps: SyncedMap<u32, u32>,
    stats: aya::maps::PerCpuArray<aya::maps::MapData, u64>,
    /// By network id.
    networks: HashMap<String, NetState>,
}

/// Packets the fast path handled on this node since its maps were made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FastPathReport {
    /// Whether it is on.
    pub enabled: bool,
    /// Frames tasks sent, encapsulated here.
    pub tx: u64,
    /// Mesh requests encapsulated here, at the entry node.
    pub tx_mesh: u64,
    /// Frames decapsulated here into tasks.
    pub rx: u64,
    /// Mesh replies decapsulated here and sent on to their clients.
    pub rx_reply: u64,
    /// Mesh replies sent from here straight to their clients (direct server return).
    pub tx_dsr: u64,
    /// Mesh packets between this node and its own tasks through the uplink (both ways).
    pub local: u64,
    /// Mesh requests too large to encapsulate, answered "fragmentation needed".
    pub frag_needed: u64,
    /// Mesh request fragments too large to encapsulate, split in two.
    pub split: u64,
    /// Endpoints and networks in the maps.
    pub endpoints: usize,
    pub networks: usize,
}

impl FastPath {
    pub(super) fn new(obj: &mut aya::Ebpf) -> Result<Self, LbError> {
        Ok(FastPath {
            eps: SyncedMap::take(obj, "ov_eps")?,
            nets: SyncedMap::take(obj, "ov_nets")?,
            vteps: SyncedMap::take(obj, "ov_vteps")?,
            stats: super::take(obj, "ov_stats")?,
            networks: HashMap::new(),
        })
    }

    /// Makes the maps hold what the networks want, writing only changes.
    fn write(&mut self) -> Result<(), LbError> {
        let (wanted, conflicts) = merge(self.networks.values().map(|n| n.endpoints.as_slice()));
        if conflicts > 0 {
            tracing::debug!(
                conflicts,
                "addresses claimed twice left to the kernel's overlay path"
            );
        }
        self.eps.sync(&wanted, "an overlay endpoint")?;
        let nets: HashMap<u32, abi::OvNet> = self
            .networks
            .values()
            .map(|n| {
                let net = abi::OvNet {
                    up_net: n.uplink.net_index,
                    up_node: n.uplink.node_index,
                    flags: if n.ingress { abi::OV_NET_F_INGRESS } else { 0 },
                    pad: 0,
                };
                (n.vni, net)
            })
            .collect();
        self.nets.sync(&nets, "an overlay network")?;
        let peers: HashMap<u32, u32> = self
            .networks
            .values()
            .flat_map(|n| n.peers.iter().map(|p| (*p, 1)))
            .collect();
        self.vteps.sync(&peers, "an overlay peer")
    }

    fn stat(&self, which: u32) -> u64 {
        self.stats
            .get(&which, 0)
            .map(|v| v.iter().sum())
            .unwrap_or(0)
    }
}

/// The union of every network's endpoints; an address claimed with two
/// different entries is left out (returned: how many such addresses).
fn merge<'a>(
    networks: impl Iterator<Item = &'a [(u32, abi::OvEp)]>,
) -> (HashMap<u32, abi::OvEp>, usize) {
    let mut wanted: HashMap<u32, abi::OvEp> = HashMap::new();
    let mut conflicted = std::collections::BTreeSet::new();
    for endpoints in networks {
        for (addr, ep) in endpoints {
            match wanted.get(addr) {
                Some(other) if other != ep => {
                    conflicted.insert(*addr);
                }
                _ => {
                    wanted.insert(*addr, *ep);
                }
            }
        }
    }
    for addr in &conflicted {
        wanted.remove(addr);
    }
    (wanted, conflicted.len())
}

/// A network's endpoints as ov_eps holds them: local ones by port, remote ones
/// (not on `own_vtep`) by VTEP.
fn endpoints(
    vni: u32,
    ports: &[TaskPort],
    remotes: &[RemoteEndpoint],
    own_vtep: Ipv4Addr,
) -> Vec<(u32, abi::OvEp)> {
    let key = |ip: Ipv4Addr| u32::from_ne_bytes(ip.octets());
    let local = ports.iter().map(|p| {
        let ep = abi::OvEp {
            vtep: 0,
            ifindex: p.index,
            vni,
            mac: p.mac,
            pad: [0; 2],
        };
        (key(p.ip), ep)
    });
    let remote = remotes
        .iter()
        .filter(|r| r.node_addr != own_vtep && !r.node_addr.is_unspecified())
        .map(|r| {
            let ep = abi::OvEp {
                vtep: key(r.node_addr),
                ifindex: 0,
                vni,
                mac: r.mac,
                pad: [0; 2],
            };
            (key(r.ip), ep)
        });
    // Within one network too, an address claimed twice is nobody's.
    let (merged, _) = merge(std::iter::once(
        local.chain(remote).collect::<Vec<_>>().as_slice(),
    ));
    let mut merged: Vec<(u32, abi::OvEp)> = merged.into_iter().collect();
    merged.sort_by_key(|(addr, _)| *addr);
    merged
}

impl LoadBalancer {
    /// Whether the overlay fast path is on (`Settings::overlay`).
    pub fn overlay_enabled(&self) -> bool {
        self.settings.overlay
    }

    /// After an apply of network `network_id` (VNI `vni`, namespace `netns`;
    /// `ingress`: the ingress network, whose `peers` are the other nodes'
    /// VTEPs mesh replies may go to):
    /// attaches the uplink's programs if it is new (or was re-made), and makes
    /// the maps hold the network's local endpoints (`ports`) and remote ones.
    #[allow(clippy::too_many_arguments)]
    pub fn sync_overlay(
        &mut self,
        network_id: &str,
        vni: u32,
        ingress: bool,
        netns: &Path,
        uplink: &Uplink,
        ports: &[TaskPort],
        remotes: &[RemoteEndpoint],
        peers: &[Ipv4Addr],
        vxlan_port: u16,
    ) -> Result<(), LbError> {
        if !self.settings.overlay {
            return Ok(());
        }
        if self.config.vxlan_port != vxlan_port {
            self.config.vxlan_port = vxlan_port;
            self.write_config()?;
        }
        let attached = self
            .fast
            .networks
            .get(network_id)
            .is_some_and(|n| n.uplink == *uplink && n.vni == vni);
        if !attached {
            self.attach(OV_UP_NODE, None, &uplink.node_name, TcAttachType::Ingress)?;
            self.attach(
                OV_UP_NET,
                Some(netns),
                &uplink.net_name,
                TcAttachType::Ingress,
            )?;
        }
        let own = Ipv4Addr::from(self.config.vtep.to_ne_bytes());
        let state = NetState {
            vni,
            ingress,
            uplink: uplink.clone(),
            endpoints: endpoints(vni, ports, remotes, own),
            peers: peers
                .iter()
                .filter(|p| **p != own)
                .map(|p| u32::from_ne_bytes(p.octets()))
                .collect(),
        };
        if self.fast.networks.get(network_id) != Some(&state) {
            self.fast.networks.insert(network_id.to_string(), state);
            self.fast.write()?;
        }
        Ok(())
    }

    /// Forgets every network but `keep` (by id): their endpoints leave the maps.
    pub fn retain_overlays(&mut self, keep: &[String]) -> Result<(), LbError> {
        let before = self.fast.networks.len();
        self.fast.networks.retain(|id, _| keep.contains(id));
        if self.fast.networks.len() != before || self.fast.nets.len() != self.fast.networks.len() {
            self.fast.write()?;
        }
        Ok(())
    }

    /// Forgets network `network_id` (it left this node).
    pub fn remove_overlay(&mut self, network_id: &str) -> Result<(), LbError> {
        if self.fast.networks.remove(network_id).is_some() {
            self.fast.write()?;
        }
        Ok(())
    }

    /// The fast path's counters and sizes.
    pub fn fast_path_report(&self) -> FastPathReport {
        FastPathReport {
            enabled: self.settings.overlay,
            tx: self.fast.stat(abi::OV_TX),
            tx_mesh: self.fast.stat(abi::OV_TX_MESH),
            rx: self.fast.stat(abi::OV_RX),
            rx_reply: self.fast.stat(abi::OV_RX_REPLY),
            tx_dsr: self.fast.stat(abi::OV_TX_DSR),
            local: self.fast.stat(abi::OV_LOCAL),
            frag_needed: self.fast.stat(abi::OV_FRAG_NEEDED),
            split: self.fast.stat(abi::OV_SPLIT),
            endpoints: self.fast.eps.len(),
            networks: self.fast.nets.len(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep(vtep: u32, ifindex: u32, vni: u32) -> abi::OvEp {
        abi::OvEp {
            vtep,
            ifindex,
            vni,
            mac: [2, 0x42, 0, 0, 0, 1],
            pad: [0; 2],
        }
    }

    #[test]
    fn an_address_claimed_twice_is_left_out() {
        let a = vec![(1, ep(0, 5, 10)), (2, ep(7, 0, 10))];
        let b = vec![(2, ep(8, 0, 11)), (3, ep(8, 0, 11)), (1, ep(0, 5, 10))];
        let (merged, conflicts) = merge([a.as_slice(), b.as_slice()].into_iter());
        assert_eq!(conflicts, 1);
        let mut keys: Vec<u32> = merged.keys().copied().collect();
        keys.sort();
        assert_eq!(keys, vec![1, 3]);
    }

    #[test]
    fn endpoints_skip_this_node_and_keep_ports() {
        let own = Ipv4Addr::new(10, 77, 0, 1);
        let ports = [TaskPort {
            ip: Ipv4Addr::new(10, 0, 1, 2),
            mac: [2, 0x42, 10, 0, 1, 2],
            index: 9,
        }];
        let remotes = [
            RemoteEndpoint {
                ip: Ipv4Addr::new(10, 0, 1, 3),
                mac: [2, 0x42, 10, 0, 1, 3],
                node_addr: Ipv4Addr::new(10, 77, 0, 2),
            },
            // Claims to be on this node: the local port decides, not the view.
            RemoteEndpoint {
                ip: Ipv4Addr::new(10, 0, 1, 4),
                mac: [2, 0x42, 10, 0, 1, 4],
                node_addr: own,
            },
            // The same address as the local task, from a stale view: nobody's.
            RemoteEndpoint {
                ip: Ipv4Addr::new(10, 0, 1, 2),
                mac: [2, 0x42, 10, 0, 1, 2],
                node_addr: Ipv4Addr::new(10, 77, 0, 3),
            },
        ];
        let got = endpoints(4097, &ports, &remotes, own);
        let key = |ip: [u8; 4]| u32::from_ne_bytes(ip);
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(got[0].0, key([10, 0, 1, 3]));
        assert_eq!(got[0].1.vtep, key([10, 77, 0, 2]));
        assert_eq!(got[0].1.vni, 4097);
    }
}
