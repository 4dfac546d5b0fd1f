//! Overlay networks on a node: per network a bridge and a VXLAN device, tasks attached by veth, and FDB/neighbour entries programmed from cluster state.
//!
//! The control plane computes, per network, what the node should have (the local
//! task endpoints and every remote one) and calls [`NodeOverlay::apply`]; apply is
//! idempotent and converges the kernel to exactly that. Everything goes through
//! rtnetlink; nothing is ever added to the namespace the caller runs in unless it
//! names it as the host namespace.
//!
//! Design, and why:
//! - **One network namespace per network per node** holds the network's bridge
//!   (`sbr-<vni hex>`, with the gateway address) and VXLAN device
//!   (`svx-<vni hex>`). The VXLAN device is created from the host namespace
//!   straight into the network namespace, so its UDP socket (port 4789 by
//!   default) lives in the host namespace on the underlay, while its frames are
//!   bridged in the network namespace. This is Docker's layout. It keeps the
//!   networks isolated from each other and from the host without firewall rules
//!   (no namespace has two networks' addresses, so nothing routes between them
//!   whatever `ip_forward` says), lets subnets overlap, keeps every node's gateway
//!   off the host's routing table, and makes removal total: deleting the links and
//!   the namespace leaves nothing behind. The cost is one namespace per network,
//!   created once (about a millisecond); no per-packet cost, since the veth,
//!   bridge and VXLAN hops are the same as in the host namespace.
//! - **No learning, no multicast, no floods to find MACs**: the VXLAN device has
//!   `nolearning`; for every remote VTEP an all-zeros FDB entry (`bridge fdb
//!   append 00:00:00:00:00:00 dst VTEP`) carries broadcast and multicast; for every
//!   remote task a permanent `MAC dst VTEP self` entry carries unicast. ARP is
//!   answered on the node by the VXLAN device's `proxy` mode from permanent
//!   neighbour entries (remote task IP -> MAC) on the VXLAN device, so ARP
//!   requests never cross the wire, and every node can own the same gateway
//!   address on its own bridge without two gateways answering.
//! - **Tasks** get a veth pair: the host end (`sv<hash>`) enslaved to the bridge,
//!   the peer created directly inside the task's namespace under its final name
//!   (`eth0`, `eth1`, ...) with the task's MAC, MTU, address and, if asked, the
//!   default route via the gateway. A static bridge FDB entry pins the task's MAC
//!   to its port, so a task that moves onto this node is reachable before it sends
//!   a frame.
//! - **MTU** is the spec's, else the underlay interface's MTU (read from the
//!   kernel in the host namespace) minus the 50 bytes of VXLAN over IPv4; bridge,
//!   VXLAN and both veth ends get it, so GRO/TSO work on full-size segments.
//! - **Wire format** is plain RFC 7348: UDP to the configured port, VNI in the
//!   header; a hand-made `ip link add ... type vxlan` talks to it (see the tests).
//!   Because the VXLAN proxy answers ARP on the node, ARP replies from tasks never
//!   leave it: a VTEP that is not a Shoal node needs a neighbour entry for each
//!   task it talks to, as Shoal nodes have.
//! - **Bridge learning stays on for the VXLAN port**: the bridge only learns "this
//!   MAC is behind the VXLAN device" (which VTEP is decided by the static FDB), and
//!   without it every frame to a remote task would also be copied to every local
//!   port.
//! - **An uplink per network** (`sup-<vni hex>` in the host namespace,
//!   `sux-<vni hex>` in the network's, on no bridge, MTU = the network's + 50),
//!   when the node runs the load balancer's overlay fast path
//!   ([`NodeOverlay::uplinks`]): its programs encapsulate a task's frames for
//!   other nodes at the task's port and move them through the uplink to the
//!   underlay, and decapsulate frames for local tasks on the underlay and move
//!   them through it into the task (`ebpf/include/overlay.h`). The bridge, the
//!   VXLAN device and the FDB/neighbour entries stay exactly as described here:
//!   they carry what the fast path leaves alone (ARP, broadcasts, peers that are
//!   not Shoal tasks), and everything when it is off. An apply reports the
//!   uplink and every local port's index ([`ApplyReport::uplink`],
//!   [`ApplyReport::ports`]) for the load balancer's maps.
//! - **Deletion is batched**: all of a network's links carry one link group, and
//!   stale ports are moved to another, so each is deleted with one request; the
//!   kernel waits an RCU grace period (tens of ms) per request, not per link.
//! - A network's VNI, subnet and MTU are fixed for its id; changing them means
//!   removing the network first. Calls for one network must not overlap.

mod fdb;
mod kernel;
mod nsfs;
mod ops;
mod overlay;
mod rtnl;

use std::fmt;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::str::FromStr;

pub use self::fdb::{FdbEntry, Neighbour};
pub use self::nsfs::{
    bridge_netfilter_off, netlink_handle, netns_create, netns_delete, task_netns_create,
    task_netns_delete, NsError,
};
pub use self::overlay::{
    underlay_mtu, ApplyReport, AttachFailure, NetworkStatus, NodeOverlay, DEFAULT_NETNS_DIR,
    VXLAN_OVERHEAD, VXLAN_PORT,
};
pub use self::rtnl::NetlinkError;

/// Errors of the overlay data plane; each variant says what was being done.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error(transparent)]
    Netns(#[from] NsError),
    #[error(transparent)]
    Netlink(#[from] NetlinkError),
    #[error("invalid overlay configuration: {0}")]
    Invalid(String),
    #[error("link {0} not found")]
    NoSuchLink(String),
}

/// One network's identity and addressing, the same on every node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverlaySpec {
    /// Cluster-wide network id; names the network's namespace file on each node.
    pub network_id: String,
    /// VXLAN network identifier, 1..=0xFFFFFF.
    pub vni: u32,
    pub subnet: Ipv4Net,
    /// Address of the bridge on every node, and the tasks' default gateway.
    pub gateway: Ipv4Addr,
    /// None: the underlay interface's MTU minus [`VXLAN_OVERHEAD`].
    pub mtu: Option<u32>,
}

/// A task's interface on a network, on this node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalEndpoint {
    pub task_id: String,
    /// The task's network namespace: a file with an nsfs bind mount (see [`task_netns_create`]).
    pub netns: PathBuf,
    pub ip: Ipv4Addr,
    pub mac: [u8; 6],
    /// Interface name inside the task: eth0, eth1, ...
    pub ifname: String,
    /// Whether the task's default route goes via this network's gateway; true for
    /// at most one network per task (a task has one default route).
    pub default_route: bool,
}

/// A task on a network on another node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RemoteEndpoint {
    pub ip: Ipv4Addr,
    pub mac: [u8; 6],
    /// Underlay address of the task's node: the VTEP its frames go to.
    pub node_addr: Ipv4Addr,
}

/// A port from the host namespace into a network's bridge (the load balancer's
/// way into the ingress network); see [`NodeOverlay::apply_with`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPort {
    /// The host end's name (at most 15 characters).
    pub name: String,
    /// The host end's MAC: frames sent into the bridge come from it.
    pub mac: [u8; 6],
}

/// A network's uplink: a veth pair between the host namespace and the
/// network's, on no bridge, through which the load balancer's overlay fast
/// path moves VXLAN frames (encapsulated by eBPF at a task's port, decapsulated
/// by eBPF on the underlay) without the bridge or the kernel VXLAN device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uplink {
    /// The end in the host namespace, and its index there.
    pub node_name: String,
    pub node_index: u32,
    /// The end in the network's namespace, and its index there.
    pub net_name: String,
    pub net_index: u32,
}

/// A local endpoint's port on the bridge, by index in the network's namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TaskPort {
    pub ip: Ipv4Addr,
    pub mac: [u8; 6],
    pub index: u32,
}

/// More than the tasks: what [`NodeOverlay::apply_with`] also keeps.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Extras {
    /// Keep the network on this node even with no local task.
    pub keep: bool,
    /// MAC-only FDB entries to other VTEPs (other nodes' host ports).
    pub fdb: Vec<FdbEntry>,
    /// The host port to have on the bridge.
    pub host_port: Option<HostPort>,
}

/// Called with (network namespace, port name) for every task port just created on
/// a bridge, before the task is told it is attached (the load balancer attaches
/// its programs there). An error fails the attach, which the next apply retries.
#[derive(Clone)]
#[allow(clippy::type_complexity)]
pub struct PortHook(
    pub std::sync::Arc<dyn Fn(&std::path::Path, &str) -> Result<(), String> + Send + Sync>,
);

impl fmt::Debug for PortHook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PortHook")
    }
}

impl PartialEq for PortHook {
    fn eq(&self, other: &Self) -> bool {
        std::sync::Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for PortHook {}

/// An IPv4 prefix such as 10.0.1.0/24.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv4Net {
    addr: Ipv4Addr,
    prefix: u8,
}

impl Ipv4Net {
    /// The network with `prefix` leading bits of `addr` (host bits are cleared).
    pub fn new(addr: Ipv4Addr, prefix: u8) -> Result<Self, NetError> {
        if prefix > 32 {
            return Err(NetError::Invalid(format!("prefix length {prefix} > 32")));
        }
        let net = Ipv4Net { addr, prefix };
        Ok(Ipv4Net {
            addr: Ipv4Addr::from(u32::from(addr) & net.mask()),
            prefix,
        })
    }

    pub fn addr(&self) -> Ipv4Addr {
        self.addr
    }

    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & self.mask() == u32::from(self.addr)
    }

    fn mask(&self) -> u32 {
        u32::MAX
            .checked_shl(32 - u32::from(self.prefix))
            .unwrap_or(0)
    }
}

impl FromStr for Ipv4Net {
    type Err = NetError;

    fn from_str(s: &str) -> Result<Self, NetError> {
        let bad = || NetError::Invalid(format!("{s:?} is not an IPv4 prefix like 10.0.1.0/24"));
        let (addr, prefix) = s.split_once('/').ok_or_else(bad)?;
        Ipv4Net::new(
            addr.parse().map_err(|_| bad())?,
            prefix.parse().map_err(|_| bad())?,
        )
    }
}

impl fmt::Display for Ipv4Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// A task's MAC from its IP, Docker's scheme: 02:42 then the four address bytes.
pub fn mac_for_ip(ip: Ipv4Addr) -> [u8; 6] {
    let [a, b, c, d] = ip.octets();
    [0x02, 0x42, a, b, c, d]
}

/// FNV-1a over `parts` (each ended by a 0xff byte): names and MACs derived from it
/// stay the same across runs and Rust versions, unlike std's hasher.
pub(crate) fn stable_hash(parts: &[&[u8]]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for &b in part.iter().chain(&[0xff]) {
            hash ^= u64::from(b);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    hash
}

/// `aa:bb:cc:dd:ee:ff`, as iproute2 prints it.
pub fn format_mac(mac: &[u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_parse_and_contain() {
        let net: Ipv4Net = "10.0.9.7/24".parse().unwrap();
        assert_eq!(net.to_string(), "10.0.9.0/24");
        assert!(net.contains(Ipv4Addr::new(10, 0, 9, 200)));
        assert!(!net.contains(Ipv4Addr::new(10, 0, 10, 1)));
        let all: Ipv4Net = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(Ipv4Addr::new(192, 168, 1, 1)));
        assert!("10.0.0.0/33".parse::<Ipv4Net>().is_err());
        assert!("10.0.0.0".parse::<Ipv4Net>().is_err());
    }

    #[test]
    fn macs_follow_docker() {
        let mac = mac_for_ip(Ipv4Addr::new(10, 0, 9, 2));
        assert_eq!(format_mac(&mac), "02:42:0a:00:09:02");
    }
}
