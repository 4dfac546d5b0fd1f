//! The real overlay operations over rtnetlink: the bridge and VXLAN device of a network, FDB and neighbour entries, and task veths.

use std::fs::File;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::AsRawFd;
use std::path::Path;

use futures::TryStreamExt;
use netlink_packet_route::link::{InfoData, InfoKind, InfoVeth, LinkMessage};
use netlink_packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourMessage, NeighbourState,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use rtnetlink::packet_core::{NLM_F_APPEND, NLM_F_CREATE, NLM_F_REPLACE};
use rtnetlink::{Handle, LinkBridge, LinkUnspec, LinkVeth, LinkVxlan, RouteMessageBuilder};

use super::fdb::{FdbEntry, Neighbour};
use super::nsfs::{netlink_handle, NsError};
use super::ops::NetlinkOps;
use super::rtnl::{self, link_controller, link_kind, link_name, NetlinkError};
use super::{LocalEndpoint, NetError};

/// Link group of every link of a network (in its namespace), so that all of them
/// go in one deletion request.
pub(crate) const NETWORK_GROUP: u32 = 0x5348_4f4c;
/// Link group of ports about to be deleted together.
const DOOMED_GROUP: u32 = NETWORK_GROUP + 1;

/// The kernel objects of one network, seen from its namespace.
#[derive(Clone)]
pub(crate) struct KernelOps {
    /// rtnetlink in the network's namespace.
    pub handle: Handle,
    pub bridge: u32,
    pub vxlan: u32,
    pub mtu: u32,
    pub prefix: u8,
    pub gateway: Ipv4Addr,
    /// The network's namespace (for the port hook).
    pub netns: std::path::PathBuf,
    pub port_hook: Option<super::PortHook>,
}

/// How to build a network's VXLAN device.
pub(crate) struct VxlanConfig<'a> {
    pub name: &'a str,
    pub vni: u32,
    pub local: Ipv4Addr,
    pub port: u16,
    pub mtu: u32,
}

/// The bridge `name` in the network namespace, created (up, with `mac`, `mtu` and
/// the gateway address) when missing; returns its index.
pub(crate) async fn ensure_bridge(
    handle: &Handle,
    name: &str,
    mac: [u8; 6],
    mtu: u32,
    gateway: Ipv4Addr,
    prefix: u8,
) -> Result<(u32, bool), NetError> {
    let (index, created) = match rtnl::link_by_name(handle, name).await? {
        Some(link) => (link.header.index, false),
        None => {
            // An explicit MAC keeps the bridge's (the gateway's) address fixed;
            // otherwise it would follow the lowest port MAC as tasks come and go.
            let message = LinkBridge::new(name).mtu(mtu).address(mac.to_vec()).build();
            handle
                .link()
                .add(message)
                .execute()
                .await
                .map_err(|e| NetlinkError::new(format!("creating bridge {name}"), e))?;
            let link = rtnl::link_by_name(handle, name)
                .await?
                .ok_or_else(|| NetError::NoSuchLink(name.to_string()))?;
            (link.header.index, true)
        }
    };
    handle
        .address()
        .add(index, IpAddr::V4(gateway), prefix)
        .replace()
        .execute()
        .await
        .map_err(|e| NetlinkError::new(format!("adding {gateway}/{prefix} to {name}"), e))?;
    Ok((index, created))
}

/// The VXLAN device in the network namespace, created when missing. It is created
/// through `host` (the underlay's namespace) straight into the namespace `netns`,
/// so its UDP socket is bound in the host namespace and its frames are bridged in
/// the network's; then it is enslaved to `bridge` and brought up.
pub(crate) async fn ensure_vxlan(
    host: &Handle,
    handle: &Handle,
    netns: &Path,
    config: &VxlanConfig<'_>,
    bridge: u32,
) -> Result<(u32, bool), NetError> {
    let name = config.name;
    let (link, created) = match rtnl::link_by_name(handle, name).await? {
        Some(link) => (link, false),
        None => {
            let ns = File::open(netns).map_err(|e| NsError::Io(netns.to_path_buf(), e))?;
            // No learning (entries come from cluster state), proxy ARP from the
            // neighbour entries; TTL left at the kernel's default hop limit.
            // No outer UDP checksum (the kernel's default is one), as RFC 7348
            // recommends and as Docker's overlay and Shoal's fast path send:
            // the inner frame carries its own checksums, and receivers'
            // fast paths take such frames without checking anything.
            let message = LinkVxlan::new(name, config.vni)
                .local(config.local)
                .port(config.port)
                .learning(false)
                .proxy(true)
                .udp_csum(false)
                .mtu(config.mtu)
                .link_group(NETWORK_GROUP)
                .setns_by_fd(ns.as_raw_fd())
                .build();
            host.link().add(message).execute().await.map_err(|e| {
                NetlinkError::new(
                    format!(
                        "creating VXLAN device {name} (vni {}, local {}, dstport {})",
                        config.vni, config.local, config.port
                    ),
                    e,
                )
            })?;
            drop(ns);
            let link = rtnl::link_by_name(handle, name)
                .await?
                .ok_or_else(|| NetError::NoSuchLink(name.to_string()))?;
            (link, true)
        }
    };
    let index = link.header.index;
    if created || link_controller(&link) != Some(bridge) {
        let message = LinkUnspec::new_with_index(index)
            .controller(bridge)
            .up()
            .build();
        handle
            .link()
            .set(message)
            .execute()
            .await
            .map_err(|e| NetlinkError::new(format!("enslaving {name} to the bridge"), e))?;
    }
    Ok((index, created))
}

impl KernelOps {
    fn fdb_message(&self, entry: &FdbEntry) -> NeighbourMessage {
        let mut message = NeighbourMessage::default();
        message.header.family = AddressFamily::Bridge;
        message.header.ifindex = self.vxlan;
        message.header.state = NeighbourState::Permanent;
        message.header.flags = NeighbourFlags::Own;
        message.attributes = vec![
            NeighbourAttribute::LinkLayerAddress(entry.mac.to_vec()),
            NeighbourAttribute::Destination(NeighbourAddress::Inet(entry.dst)),
        ];
        message
    }

    fn neighbour_message(&self, neighbour: &Neighbour) -> NeighbourMessage {
        let mut message = NeighbourMessage::default();
        message.header.family = AddressFamily::Inet;
        message.header.ifindex = self.vxlan;
        message.header.state = NeighbourState::Permanent;
        message.attributes = vec![
            NeighbourAttribute::Destination(NeighbourAddress::Inet(neighbour.ip)),
            NeighbourAttribute::LinkLayerAddress(neighbour.mac.to_vec()),
        ];
        message
    }

    async fn dump_neighbours(
        &self,
        family: AddressFamily,
    ) -> Result<Vec<NeighbourMessage>, NetlinkError> {
        self.handle
            .neighbours()
            .get()
            .set_address_family(family)
            .execute()
            .try_filter(|n| futures::future::ready(n.header.ifindex == self.vxlan))
            .try_collect()
            .await
            .map_err(|e| NetlinkError::new("listing neighbour entries", e))
    }

    /// Veth `port` into the bridge, its peer created inside the task's namespace
    /// under its final name, then address, up and route set there.
    async fn create_port(&self, port: &str, ep: &LocalEndpoint) -> Result<(), NetError> {
        let task_ns = File::open(&ep.netns).map_err(|e| NsError::Io(ep.netns.clone(), e))?;
        let peer = LinkUnspec::new_with_name(&ep.ifname)
            .mtu(self.mtu)
            .address(ep.mac.to_vec())
            .setns_by_fd(task_ns.as_raw_fd())
            .build();
        let message = LinkVeth::new(port, &ep.ifname)
            .set_info_data(InfoData::Veth(InfoVeth::Peer(peer)))
            .mtu(self.mtu)
            .controller(self.bridge)
            .link_group(NETWORK_GROUP)
            .up()
            .build();
        self.handle
            .link()
            .add(message)
            .execute()
            .await
            .map_err(|e| {
                NetlinkError::new(
                    format!(
                        "creating veth {port} / {} in {}",
                        ep.ifname,
                        ep.netns.display()
                    ),
                    e,
                )
            })?;
        drop(task_ns);
        let link = rtnl::link_by_name(&self.handle, port)
            .await?
            .ok_or_else(|| NetError::NoSuchLink(port.to_string()))?;
        // Pin the task's MAC to its port (static, not local): a task that just
        // moved here is found before it sends anything.
        let mut pin = NeighbourMessage::default();
        pin.header.family = AddressFamily::Bridge;
        pin.header.ifindex = link.header.index;
        pin.header.state = NeighbourState::Noarp;
        pin.header.flags = NeighbourFlags::Controller;
        pin.attributes = vec![NeighbourAttribute::LinkLayerAddress(ep.mac.to_vec())];
        rtnl::request(
            &self.handle,
            RouteNetlinkMessage::NewNeighbour(pin),
            NLM_F_CREATE | NLM_F_REPLACE,
            || format!("pinning {} to {port}", super::format_mac(&ep.mac)),
        )
        .await?;
        self.configure_task_side(ep).await
    }

    async fn configure_task_side(&self, ep: &LocalEndpoint) -> Result<(), NetError> {
        let task = netlink_handle(Some(&ep.netns)).await?;
        let link = rtnl::link_by_name(&task, &ep.ifname)
            .await?
            .ok_or_else(|| {
                NetError::NoSuchLink(format!("{} in {}", ep.ifname, ep.netns.display()))
            })?;
        let index = link.header.index;
        // Up only now: veth refuses to open its peer before the pair is complete.
        task.link()
            .set(LinkUnspec::new_with_index(index).up().build())
            .execute()
            .await
            .map_err(|e| NetlinkError::new(format!("setting {} up", ep.ifname), e))?;
        task.address()
            .add(index, IpAddr::V4(ep.ip), self.prefix)
            .replace()
            .execute()
            .await
            .map_err(|e| {
                NetlinkError::new(
                    format!("adding {}/{} to {}", ep.ip, self.prefix, ep.ifname),
                    e,
                )
            })?;
        if ep.default_route {
            let route = RouteMessageBuilder::<Ipv4Addr>::new()
                .gateway(self.gateway)
                .output_interface(index)
                .build();
            task.route()
                .add(route)
                .replace()
                .execute()
                .await
                .map_err(|e| {
                    NetlinkError::new(
                        format!(
                            "adding default route via {} dev {}",
                            self.gateway, ep.ifname
                        ),
                        e,
                    )
                })?;
        }
        Ok(())
    }

    async fn delete_port(&self, port: &str) -> Result<(), NetError> {
        if let Some(link) = rtnl::link_by_name(&self.handle, port).await? {
            rtnl::del_link(&self.handle, link.header.index, port).await?;
        }
        Ok(())
    }
}

/// Whether `link` is one of our task ports on bridge `bridge`.
pub(crate) fn is_port(link: &LinkMessage, bridge: u32) -> bool {
    link_controller(link) == Some(bridge)
        && link_kind(link) == Some(&InfoKind::Veth)
        && !link_name(link).is_some_and(|n| n.starts_with(HOST_PORT_PREFIX))
}

/// Bridge-side name prefix of a network's host port (see [`ensure_host_port`]):
/// not a task's port, so task reconciliation leaves it alone.
pub(crate) const HOST_PORT_PREFIX: &str = "shp";

/// A veth from the host namespace into the network's bridge: `host_name` (with
/// `mac`, up, no address) in the host namespace, `shp<vni hex>` on the bridge.
/// The load balancer sends mesh traffic into the network through it and gets
/// the replies back. Returns the host end's index, and whether this call made it.
pub(crate) async fn ensure_host_port(
    host: &Handle,
    handle: &Handle,
    netns: &Path,
    bridge: u32,
    mtu: u32,
    port: &super::HostPort,
    vni: u32,
) -> Result<(u32, bool), NetError> {
    let pair = HostVeth {
        host_name: &port.name,
        net_name: &format!("{HOST_PORT_PREFIX}{vni:x}"),
        mtu,
        mac: Some(port.mac),
        bridge: Some(bridge),
    };
    let (_, host_index, created) = pair.ensure(host, handle, netns).await?;
    Ok((host_index, created))
}

/// A network's uplink for the overlay's fast path: a veth pair, `sup-<vni hex>`
/// in the host namespace and `sux-<vni hex>` in the network's, both up, no
/// addresses, on no bridge: the load balancer's programs move frames through it
/// with bpf_redirect_peer (see `ebpf/include/overlay.h`). It carries
/// encapsulated frames, so its MTU is the network's plus the VXLAN overhead.
/// Goes with the network's namespace. Returns it, and whether this call made it.
pub(crate) async fn ensure_uplink(
    host: &Handle,
    handle: &Handle,
    netns: &Path,
    mtu: u32,
    vni: u32,
) -> Result<(super::Uplink, bool), NetError> {
    let node_name = format!("{UPLINK_NODE_PREFIX}{vni:x}");
    let net_name = format!("{UPLINK_NET_PREFIX}{vni:x}");
    let pair = HostVeth {
        host_name: &node_name,
        net_name: &net_name,
        mtu: mtu + super::VXLAN_OVERHEAD,
        mac: None,
        bridge: None,
    };
    let (net_index, node_index, created) = pair.ensure(host, handle, netns).await?;
    let uplink = super::Uplink {
        node_name,
        node_index,
        net_name,
        net_index,
    };
    Ok((uplink, created))
}

/// A veth pair between the host namespace and a network's.
struct HostVeth<'a> {
    host_name: &'a str,
    net_name: &'a str,
    mtu: u32,
    /// The host end's MAC (else the kernel's pick).
    mac: Option<[u8; 6]>,
    /// The bridge the network's end is a port of.
    bridge: Option<u32>,
}

impl HostVeth<'_> {
    /// Made when the network's end is missing (a host end left without it is
    /// some other link that took the name: it goes first); the network's end
    /// joins the network's link group, so it goes with the network. Returns the
    /// network end's index, the host end's, and whether this call made them.
    async fn ensure(
        &self,
        host: &Handle,
        handle: &Handle,
        netns: &Path,
    ) -> Result<(u32, u32, bool), NetError> {
        let (host_name, net_name) = (self.host_name, self.net_name);
        let missing = rtnl::link_by_name(handle, net_name).await?.is_none();
        if missing {
            if let Some(stale) = rtnl::link_by_name(host, host_name).await? {
                rtnl::del_link(host, stale.header.index, host_name).await?;
            }
            let ns = File::open(netns).map_err(|e| NsError::Io(netns.to_path_buf(), e))?;
            let peer = LinkUnspec::new_with_name(net_name)
                .mtu(self.mtu)
                .setns_by_fd(ns.as_raw_fd())
                .build();
            let mut message = LinkVeth::new(host_name, net_name)
                .set_info_data(InfoData::Veth(InfoVeth::Peer(peer)))
                .mtu(self.mtu);
            if let Some(mac) = self.mac {
                message = message.address(mac.to_vec());
            }
            host.link()
                .add(message.up().build())
                .execute()
                .await
                .map_err(|e| NetlinkError::new(format!("creating veth {host_name}"), e))?;
        }
        let net = rtnl::link_by_name(handle, net_name)
            .await?
            .ok_or_else(|| NetError::NoSuchLink(net_name.to_string()))?;
        if missing {
            let mut message =
                LinkUnspec::new_with_index(net.header.index).link_group(NETWORK_GROUP);
            if let Some(bridge) = self.bridge {
                message = message.controller(bridge);
            }
            handle
                .link()
                .set(message.up().build())
                .execute()
                .await
                .map_err(|e| NetlinkError::new(format!("setting {net_name} up"), e))?;
        }
        let host_link = rtnl::link_by_name(host, host_name)
            .await?
            .ok_or_else(|| NetError::NoSuchLink(host_name.to_string()))?;
        Ok((net.header.index, host_link.header.index, missing))
    }
}

/// Names of a network's uplink ends (see [`ensure_uplink`]).
pub(crate) const UPLINK_NODE_PREFIX: &str = "sup-";
pub(crate) const UPLINK_NET_PREFIX: &str = "sux-";

impl NetlinkOps for KernelOps {
    async fn fdb(&self) -> Result<Vec<FdbEntry>, NetError> {
        let entries = self.dump_neighbours(AddressFamily::Bridge).await?;
        Ok(entries
            .iter()
            .filter(|n| n.header.flags.contains(NeighbourFlags::Own))
            .filter_map(|n| {
                let mut mac = None;
                let mut dst = None;
                for attr in &n.attributes {
                    match attr {
                        NeighbourAttribute::LinkLayerAddress(lla) => {
                            mac = <[u8; 6]>::try_from(lla.as_slice()).ok();
                        }
                        NeighbourAttribute::Destination(NeighbourAddress::Inet(ip)) => {
                            dst = Some(*ip);
                        }
                        NeighbourAttribute::Destination(NeighbourAddress::Other(raw)) => {
                            dst = <[u8; 4]>::try_from(raw.as_slice()).ok().map(Ipv4Addr::from);
                        }
                        _ => {}
                    }
                }
                Some(FdbEntry {
                    mac: mac?,
                    dst: dst?,
                })
            })
            .collect())
    }

    async fn add_fdb(&self, entry: FdbEntry) -> Result<(), NetError> {
        // Flood entries accumulate, one per VTEP; a unicast MAC has one VTEP.
        let mode = if entry.is_flood() {
            NLM_F_APPEND
        } else {
            NLM_F_REPLACE
        };
        rtnl::request(
            &self.handle,
            RouteNetlinkMessage::NewNeighbour(self.fdb_message(&entry)),
            NLM_F_CREATE | mode,
            || format!("adding fdb entry {entry}"),
        )
        .await
        .or_else(|e| if e.is_exists() { Ok(()) } else { Err(e) })?;
        Ok(())
    }

    async fn del_fdb(&self, entry: FdbEntry) -> Result<(), NetError> {
        rtnl::request(
            &self.handle,
            RouteNetlinkMessage::DelNeighbour(self.fdb_message(&entry)),
            0,
            || format!("deleting fdb entry {entry}"),
        )
        .await
        .or_else(|e| if e.is_missing() { Ok(()) } else { Err(e) })?;
        Ok(())
    }

    async fn neighbours(&self) -> Result<Vec<Neighbour>, NetError> {
        let entries = self.dump_neighbours(AddressFamily::Inet).await?;
        Ok(entries
            .iter()
            .filter_map(|n| {
                let mut ip = None;
                let mut mac = None;
                for attr in &n.attributes {
                    match attr {
                        NeighbourAttribute::Destination(NeighbourAddress::Inet(a)) => ip = Some(*a),
                        NeighbourAttribute::LinkLayerAddress(lla) => {
                            mac = <[u8; 6]>::try_from(lla.as_slice()).ok();
                        }
                        _ => {}
                    }
                }
                Some(Neighbour { ip: ip?, mac: mac? })
            })
            .collect())
    }

    async fn set_neighbour(&self, neighbour: Neighbour) -> Result<(), NetError> {
        rtnl::request(
            &self.handle,
            RouteNetlinkMessage::NewNeighbour(self.neighbour_message(&neighbour)),
            NLM_F_CREATE | NLM_F_REPLACE,
            || format!("adding neighbour {neighbour}"),
        )
        .await?;
        Ok(())
    }

    async fn del_neighbour(&self, neighbour: Neighbour) -> Result<(), NetError> {
        rtnl::request(
            &self.handle,
            RouteNetlinkMessage::DelNeighbour(self.neighbour_message(&neighbour)),
            0,
            || format!("deleting neighbour {neighbour}"),
        )
        .await
        .or_else(|e| if e.is_missing() { Ok(()) } else { Err(e) })?;
        Ok(())
    }

    async fn learned(&self) -> Result<Vec<[u8; 6]>, NetError> {
        let entries = self.dump_neighbours(AddressFamily::Bridge).await?;
        Ok(entries
            .iter()
            .filter(|n| {
                // The bridge's dynamic entries (a bridge entry names its bridge in
                // NDA_MASTER; the device's own entries are flagged self): not its
                // own (permanent), not pinned (static), not put there by another
                // controller (extern_learn).
                n.attributes
                    .iter()
                    .any(|a| matches!(a, NeighbourAttribute::Controller(_)))
                    && !n.header.flags.contains(NeighbourFlags::Own)
                    && !n.header.flags.contains(NeighbourFlags::ExtLearned)
                    && matches!(
                        n.header.state,
                        NeighbourState::Reachable | NeighbourState::Stale
                    )
            })
            .filter_map(|n| {
                n.attributes.iter().find_map(|attr| match attr {
                    NeighbourAttribute::LinkLayerAddress(lla) => {
                        <[u8; 6]>::try_from(lla.as_slice()).ok()
                    }
                    _ => None,
                })
            })
            .collect())
    }

    async fn forget(&self, mac: [u8; 6]) -> Result<(), NetError> {
        let mut message = NeighbourMessage::default();
        message.header.family = AddressFamily::Bridge;
        message.header.ifindex = self.vxlan;
        message.header.flags = NeighbourFlags::Controller;
        message.attributes = vec![NeighbourAttribute::LinkLayerAddress(mac.to_vec())];
        rtnl::request(
            &self.handle,
            RouteNetlinkMessage::DelNeighbour(message),
            0,
            || {
                format!(
                    "forgetting learned {} on the VXLAN port",
                    super::format_mac(&mac)
                )
            },
        )
        .await
        .or_else(|e| if e.is_missing() { Ok(()) } else { Err(e) })?;
        Ok(())
    }

    async fn ports(&self) -> Result<Vec<String>, NetError> {
        Ok(rtnl::links(&self.handle)
            .await?
            .iter()
            .filter(|l| is_port(l, self.bridge))
            .filter_map(|l| link_name(l).map(str::to_string))
            .collect())
    }

    async fn attach(&self, port: &str, ep: &LocalEndpoint) -> Result<(), NetError> {
        let mut result = self.create_port(port, ep).await;
        if let (Ok(()), Some(hook)) = (&result, &self.port_hook) {
            result = (hook.0)(&self.netns, port).map_err(NetError::Invalid);
        }
        if result.is_err() {
            // Half-made ports would pass for attached on the next apply.
            let _ = self.delete_port(port).await;
        }
        result
    }

    async fn detach(&self, ports: &[String]) -> Result<(), NetError> {
        for port in ports {
            if let Some(link) = rtnl::link_by_name(&self.handle, port).await? {
                let message = LinkUnspec::new_with_index(link.header.index)
                    .link_group(DOOMED_GROUP)
                    .build();
                self.handle
                    .link()
                    .set(message)
                    .execute()
                    .await
                    .map_err(|e| NetlinkError::new(format!("marking {port} for deletion"), e))?;
            }
        }
        rtnl::del_group(&self.handle, DOOMED_GROUP).await?;
        Ok(())
    }
}
