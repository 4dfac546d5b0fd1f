//! A node's side of the overlay networks: `apply` makes one network's namespace, devices, task ports and remote entries match cluster state; `remove` tears it down.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use netlink_packet_route::link::InfoKind;
use rtnetlink::Handle;

use super::fdb::{Desired, FdbEntry, Neighbour};
use super::kernel::{
    ensure_bridge, ensure_host_port, ensure_uplink, ensure_vxlan, is_port, KernelOps, VxlanConfig,
    NETWORK_GROUP,
};
use super::nsfs::{is_netns, netlink_handle, netns_create, netns_delete, NsError};
use super::ops::port_name;
use super::ops::{reconcile_local, reconcile_remote, NetlinkOps};
use super::rtnl::{self, link_kind, link_mtu, link_name};
use super::{
    stable_hash, Extras, LocalEndpoint, NetError, OverlaySpec, PortHook, RemoteEndpoint, TaskPort,
    Uplink,
};

/// IANA's VXLAN port (RFC 7348).
pub const VXLAN_PORT: u16 = 4789;
/// Outer Ethernet-less encapsulation over IPv4: IP 20 + UDP 8 + VXLAN 8 + inner Ethernet 14.
pub const VXLAN_OVERHEAD: u32 = 50;
/// Where a node keeps its networks' namespace files, one per network id.
pub const DEFAULT_NETNS_DIR: &str = "/run/shoal/netns";

const MIN_MTU: u32 = 68;

/// A node's overlay configuration. Calls for one network must not overlap (the
/// agent's reconciler applies a network at a time); different nodes' overlays
/// in one process (as in tests) are independent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeOverlay {
    /// This node's VTEP address: the VXLAN devices' source address.
    pub underlay_ip: Ipv4Addr,
    /// The underlay interface, whose MTU sets the networks' MTU.
    pub underlay_ifname: String,
    /// UDP destination port of VXLAN, the same on all nodes.
    pub vxlan_port: u16,
    /// The namespace of the underlay, where the VXLAN sockets are bound; None: the
    /// caller's. In the lab this is the node's namespace.
    pub host_netns: Option<PathBuf>,
    /// Directory of the networks' namespace files (`<dir>/<network id>`); must be
    /// this node's own (in the lab: one per node).
    pub netns_dir: PathBuf,
    /// Called for every task port created (see [`PortHook`]).
    pub port_hook: Option<PortHook>,
    /// Give every network an uplink for the load balancer's overlay fast path
    /// (see [`Uplink`]).
    pub uplinks: bool,
}

/// What an apply did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ApplyReport {
    /// The network's namespace, bridge, VXLAN device or host port was created by this call.
    pub created: bool,
    /// The network had no local endpoints left and was removed from the node.
    pub removed: bool,
    /// The network's MTU on this node (None when removed).
    pub mtu: Option<u32>,
    /// Task ids attached by this call.
    pub attached: Vec<String>,
    /// Ports removed by this call (their endpoints are gone or changed).
    pub detached: Vec<String>,
    /// Local endpoints that could not be attached; the next apply retries them.
    pub failed: Vec<AttachFailure>,
    pub fdb_added: usize,
    pub fdb_removed: usize,
    pub neighbours_set: usize,
    pub neighbours_removed: usize,
    /// Remote endpoints ignored: on this node's own VTEP, or a MAC or IP claimed twice.
    pub skipped_remote: usize,
    pub elapsed: Duration,
    /// The host end's index of the network's host port, when asked for one.
    pub host_port_index: Option<u32>,
    /// The network's uplink, when the overlay has uplinks.
    pub uplink: Option<Uplink>,
    /// The uplink was made by this call (programs must be attached to it).
    pub uplink_created: bool,
    /// Every local endpoint attached now, with its port's index.
    pub ports: Vec<TaskPort>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachFailure {
    pub task_id: String,
    pub error: String,
}

/// What a network has on this node, for diagnostics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkStatus {
    pub network_id: String,
    pub netns: PathBuf,
    pub bridge: Option<String>,
    pub vxlan: Option<String>,
    pub mtu: Option<u32>,
    pub ports: Vec<String>,
    pub fdb: Vec<FdbEntry>,
    pub neighbours: Vec<Neighbour>,
}

impl NodeOverlay {
    /// Defaults: port 4789, the caller's namespace, [`DEFAULT_NETNS_DIR`].
    pub fn new(underlay_ip: Ipv4Addr, underlay_ifname: &str) -> Self {
        NodeOverlay {
            underlay_ip,
            underlay_ifname: underlay_ifname.to_string(),
            vxlan_port: VXLAN_PORT,
            host_netns: None,
            netns_dir: PathBuf::from(DEFAULT_NETNS_DIR),
            port_hook: None,
            uplinks: false,
        }
    }

    /// The namespace file of a network on this node.
    pub fn network_netns(&self, network_id: &str) -> PathBuf {
        self.netns_dir.join(network_id)
    }

    /// Makes the node's data plane for `net` match: the network's namespace,
    /// bridge and VXLAN device exist iff `local` is non-empty; every local endpoint
    /// is attached (veth into the bridge; IP, MAC, MTU and, if asked, default route
    /// inside the task); the VXLAN device's FDB and neighbour entries are exactly
    /// those for `remote` (one flood entry per distinct remote VTEP). Idempotent;
    /// an endpoint that fails to attach is reported, not fatal.
    pub async fn apply(
        &self,
        net: &OverlaySpec,
        local: &[LocalEndpoint],
        remote: &[RemoteEndpoint],
    ) -> Result<ApplyReport, NetError> {
        self.apply_with(net, local, remote, &Extras::default())
            .await
    }

    /// [`apply`](Self::apply), also keeping `extras`: the network even without
    /// local tasks, MAC-only FDB entries, and a host port on the bridge.
    pub async fn apply_with(
        &self,
        net: &OverlaySpec,
        local: &[LocalEndpoint],
        remote: &[RemoteEndpoint],
        extras: &Extras,
    ) -> Result<ApplyReport, NetError> {
        let started = Instant::now();
        validate(net, local)?;
        if local.is_empty() && !extras.keep {
            let removed = self.remove(&net.network_id).await?;
            return Ok(ApplyReport {
                removed,
                elapsed: started.elapsed(),
                ..ApplyReport::default()
            });
        }
        let mut report = ApplyReport::default();
        let path = self.network_netns(&net.network_id);
        if !is_netns(&path) {
            netns_create(&path, true)?;
            report.created = true;
        }
        let handle = netlink_handle(Some(&path)).await?;
        let host = netlink_handle(self.host_netns.as_deref()).await?;

        let bridge_name = bridge_name(net.vni);
        // An existing network keeps its MTU: bridge and ports must agree.
        let mtu = match rtnl::link_by_name(&handle, &bridge_name)
            .await?
            .as_ref()
            .and_then(link_mtu)
        {
            Some(mtu) => mtu,
            None => match net.mtu {
                Some(mtu) => mtu,
                None => self.mtu_from_underlay(&host).await?,
            },
        };
        let (bridge, bridge_created) = ensure_bridge(
            &handle,
            &bridge_name,
            self.bridge_mac(net.vni),
            mtu,
            net.gateway,
            net.subnet.prefix(),
        )
        .await?;
        let (vxlan, vxlan_created) = ensure_vxlan(
            &host,
            &handle,
            &path,
            &VxlanConfig {
                name: &vxlan_name(net.vni),
                vni: net.vni,
                local: self.underlay_ip,
                port: self.vxlan_port,
                mtu,
            },
            bridge,
        )
        .await?;
        report.created |= bridge_created || vxlan_created;
        report.mtu = Some(mtu);
        if let Some(port) = &extras.host_port {
            let (index, port_created) =
                ensure_host_port(&host, &handle, &path, bridge, mtu, port, net.vni).await?;
            report.host_port_index = Some(index);
            // A host port added to a network that was already there is new too: whoever
            // attaches programs to it must do so again.
            report.created |= port_created;
        }
        if self.uplinks {
            let (uplink, created) = ensure_uplink(&host, &handle, &path, mtu, net.vni).await?;
            report.uplink = Some(uplink);
            report.uplink_created = created;
        }

        let ops = KernelOps {
            handle,
            bridge,
            vxlan,
            mtu,
            prefix: net.subnet.prefix(),
            gateway: net.gateway,
            netns: path.clone(),
            port_hook: self.port_hook.clone(),
        };
        let (mut desired, skipped) = Desired::from_remote(remote, self.underlay_ip);
        desired.fdb.extend(
            extras
                .fdb
                .iter()
                .filter(|e| e.dst != self.underlay_ip && !e.is_flood()),
        );
        let remote_changes = reconcile_remote(&ops, &desired).await?;
        report.skipped_remote = skipped;
        report.fdb_added = remote_changes.fdb_added;
        report.fdb_removed = remote_changes.fdb_removed;
        report.neighbours_set = remote_changes.neighbours_set;
        report.neighbours_removed = remote_changes.neighbours_removed;

        let local_changes = reconcile_local(&ops, local).await?;
        report.attached = local_changes.attached;
        report.detached = local_changes.detached;
        report.failed = local_changes
            .failed
            .into_iter()
            .map(|(task_id, error)| AttachFailure { task_id, error })
            .collect();
        for failure in &report.failed {
            tracing::warn!(network = %net.network_id, task = %failure.task_id, error = %failure.error, "attaching task failed");
        }
        if self.uplinks {
            let links = rtnl::links(&ops.handle).await?;
            report.ports = local
                .iter()
                .filter_map(|ep| {
                    let name = port_name(ep);
                    let link = links.iter().find(|l| link_name(l) == Some(name.as_str()))?;
                    Some(TaskPort {
                        ip: ep.ip,
                        mac: ep.mac,
                        index: link.header.index,
                    })
                })
                .collect();
        }
        report.elapsed = started.elapsed();
        tracing::debug!(network = %net.network_id, ?report, "overlay applied");
        Ok(report)
    }

    /// Removes everything of a network on this node: task ports (and so the
    /// tasks' interfaces on it), VXLAN device, bridge and the network's
    /// namespace. Returns whether there was anything.
    pub async fn remove(&self, network_id: &str) -> Result<bool, NetError> {
        validate_network_id(network_id)?;
        let path = self.network_netns(network_id);
        if !is_netns(&path) {
            netns_delete(&path)?;
            return Ok(false);
        }
        let handle = netlink_handle(Some(&path)).await?;
        rtnl::del_group(&handle, NETWORK_GROUP).await?;
        // Anything not in the group (made by hand, say) goes one by one.
        for link in rtnl::links(&handle).await? {
            let name = link_name(&link).unwrap_or("?");
            if name != "lo" {
                rtnl::del_link(&handle, link.header.index, name).await?;
            }
        }
        drop(handle);
        netns_delete(&path)?;
        Ok(true)
    }

    /// Ids of the networks that have a namespace on this node.
    pub fn networks(&self) -> Result<Vec<String>, NetError> {
        let entries = match std::fs::read_dir(&self.netns_dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(NsError::Io(self.netns_dir.clone(), e).into()),
        };
        let mut ids: Vec<String> = entries
            .filter_map(|e| e.ok())
            .filter(|e| is_netns(&e.path()))
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        ids.sort();
        Ok(ids)
    }

    /// The devices, ports and entries of a network on this node; None when it has none.
    pub async fn status(&self, network_id: &str) -> Result<Option<NetworkStatus>, NetError> {
        validate_network_id(network_id)?;
        let path = self.network_netns(network_id);
        if !is_netns(&path) {
            return Ok(None);
        }
        let handle = netlink_handle(Some(&path)).await?;
        let links = rtnl::links(&handle).await?;
        let find = |kind: InfoKind| links.iter().find(|l| link_kind(l) == Some(&kind));
        let bridge = find(InfoKind::Bridge);
        let vxlan = find(InfoKind::Vxlan);
        let mut status = NetworkStatus {
            network_id: network_id.to_string(),
            netns: path,
            bridge: bridge.and_then(link_name).map(str::to_string),
            vxlan: vxlan.and_then(link_name).map(str::to_string),
            mtu: bridge.and_then(link_mtu),
            ports: Vec::new(),
            fdb: Vec::new(),
            neighbours: Vec::new(),
        };
        if let Some(bridge) = bridge {
            status.ports = links
                .iter()
                .filter(|l| is_port(l, bridge.header.index))
                .filter_map(link_name)
                .map(str::to_string)
                .collect();
        }
        if let Some(vxlan) = vxlan {
            let ops = KernelOps {
                handle,
                bridge: bridge.map_or(0, |b| b.header.index),
                vxlan: vxlan.header.index,
                mtu: 0,
                prefix: 0,
                gateway: Ipv4Addr::UNSPECIFIED,
                netns: status.netns.clone(),
                port_hook: None,
            };
            status.fdb = ops.fdb().await?;
            status.neighbours = ops.neighbours().await?;
        }
        Ok(Some(status))
    }

    /// The underlay interface's MTU, read in the host namespace.
    pub async fn underlay_mtu(&self) -> Result<u32, NetError> {
        let host = netlink_handle(self.host_netns.as_deref()).await?;
        link_mtu_of(&host, &self.underlay_ifname).await
    }

    async fn mtu_from_underlay(&self, host: &Handle) -> Result<u32, NetError> {
        let underlay = link_mtu_of(host, &self.underlay_ifname).await?;
        underlay
            .checked_sub(VXLAN_OVERHEAD)
            .filter(|mtu| *mtu >= MIN_MTU)
            .ok_or_else(|| {
                NetError::Invalid(format!(
                    "underlay {} has MTU {underlay}, too small for VXLAN",
                    self.underlay_ifname
                ))
            })
    }

    /// The bridge's (the gateway's) MAC: fixed, locally administered, distinct per
    /// node and network.
    fn bridge_mac(&self, vni: u32) -> [u8; 6] {
        let hash = stable_hash(&[&self.underlay_ip.octets(), &vni.to_be_bytes()]).to_be_bytes();
        [0x02, hash[0], hash[1], hash[2], hash[3], hash[4]]
    }
}

/// The MTU of `ifname` in the caller's network namespace, read from the kernel.
/// Blocks briefly; callable from inside or outside a tokio runtime.
pub fn underlay_mtu(ifname: &str) -> Result<u32, NetError> {
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_io()
                    .build()
                    .map_err(NsError::Thread)?;
                runtime.block_on(async {
                    let handle = netlink_handle(None).await?;
                    link_mtu_of(&handle, ifname).await
                })
            })
            .join()
            .map_err(|_| NsError::ThreadDied(format!("reading the MTU of {ifname}")))?
    })
}

async fn link_mtu_of(handle: &Handle, ifname: &str) -> Result<u32, NetError> {
    rtnl::link_by_name(handle, ifname)
        .await?
        .as_ref()
        .and_then(link_mtu)
        .ok_or_else(|| NetError::NoSuchLink(ifname.to_string()))
}

/// `sbr-<vni hex>`: at most 10 characters.
pub(crate) fn bridge_name(vni: u32) -> String {
    format!("sbr-{vni:x}")
}

/// `svx-<vni hex>`: at most 10 characters.
pub(crate) fn vxlan_name(vni: u32) -> String {
    format!("svx-{vni:x}")
}

fn validate(net: &OverlaySpec, local: &[LocalEndpoint]) -> Result<(), NetError> {
    let invalid = |what: String| Err(NetError::Invalid(what));
    validate_network_id(&net.network_id)?;
    if !(1..=0xFF_FFFF).contains(&net.vni) {
        return invalid(format!("VNI {} is outside 1..=16777215", net.vni));
    }
    if !net.subnet.contains(net.gateway) {
        return invalid(format!("gateway {} is outside {}", net.gateway, net.subnet));
    }
    if let Some(mtu) = net.mtu {
        if !(MIN_MTU..=65535).contains(&mtu) {
            return invalid(format!("MTU {mtu} is outside {MIN_MTU}..=65535"));
        }
    }
    for ep in local {
        if !net.subnet.contains(ep.ip) || ep.ip == net.gateway {
            return invalid(format!(
                "task {} address {} is not a host address of {} besides the gateway",
                ep.task_id, ep.ip, net.subnet
            ));
        }
        if ep.ifname.is_empty()
            || ep.ifname.len() > 15
            || ep.ifname.contains(['/', ':'])
            || ep.ifname.contains(char::is_whitespace)
        {
            return invalid(format!(
                "task {} interface name {:?} is not a valid link name",
                ep.task_id, ep.ifname
            ));
        }
        if ep.mac[0] & 1 != 0 || ep.mac == [0; 6] {
            return invalid(format!("task {} MAC is not a unicast address", ep.task_id));
        }
    }
    Ok(())
}

/// A network id names a file: letters, digits, '.', '_' and '-', not starting with '.'.
fn validate_network_id(id: &str) -> Result<(), NetError> {
    let ok = !id.is_empty()
        && id.len() <= 128
        && !id.starts_with('.')
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(NetError::Invalid(format!(
            "network id {id:?} must be letters, digits, '.', '_' or '-'"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::mac_for_ip;

    fn spec() -> OverlaySpec {
        OverlaySpec {
            network_id: "n1".into(),
            vni: 4100,
            subnet: "10.0.9.0/24".parse().unwrap(),
            gateway: Ipv4Addr::new(10, 0, 9, 1),
            mtu: None,
        }
    }

    fn endpoint(ip: Ipv4Addr) -> LocalEndpoint {
        LocalEndpoint {
            task_id: "t".into(),
            netns: "/run/netns/t".into(),
            ip,
            mac: mac_for_ip(ip),
            ifname: "eth0".into(),
            default_route: true,
        }
    }

    #[test]
    fn names_fit_ifnamsiz() {
        assert_eq!(bridge_name(4100), "sbr-1004");
        assert_eq!(vxlan_name(0xFF_FFFF), "svx-ffffff");
    }

    #[test]
    fn specs_are_checked() {
        assert!(validate(&spec(), &[endpoint(Ipv4Addr::new(10, 0, 9, 2))]).is_ok());
        let bad_vni = OverlaySpec { vni: 0, ..spec() };
        assert!(validate(&bad_vni, &[]).is_err());
        let bad_gw = OverlaySpec {
            gateway: Ipv4Addr::new(10, 0, 8, 1),
            ..spec()
        };
        assert!(validate(&bad_gw, &[]).is_err());
        assert!(validate(&spec(), &[endpoint(Ipv4Addr::new(10, 0, 8, 2))]).is_err());
        assert!(validate(&spec(), &[endpoint(Ipv4Addr::new(10, 0, 9, 1))]).is_err());
        let mut long = endpoint(Ipv4Addr::new(10, 0, 9, 2));
        long.ifname = "a-very-long-name0".into();
        assert!(validate(&spec(), &[long]).is_err());
        assert!(validate_network_id("../etc").is_err());
        assert!(validate_network_id("ab12-x_y.z").is_ok());
    }
}
