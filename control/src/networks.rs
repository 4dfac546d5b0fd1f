//! Overlay network objects and their allocation: VNIs from 4096 up and /24 subnets from the
//! swarm's address pool, decided by the leader and replicated in Raft; docker's JSON view.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::state::ClusterState;
use crate::types::go_time;

pub const FIRST_VNI: u32 = 4096;
pub const MAX_VNI: u32 = (1 << 24) - 1;
pub const DEFAULT_POOL: &str = "10.0.0.0/8";
pub const DEFAULT_SUBNET_BITS: u8 = 24;

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct NetworkRecord {
    pub id: String,
    pub name: String,
    pub driver: String,
    pub labels: BTreeMap<String, String>,
    pub created_at: DateTime<Utc>,
    #[serde(default)]
    pub vni: u32,
    /// CIDR, e.g. "10.0.1.0/24".
    #[serde(default)]
    pub subnet: String,
    #[serde(default)]
    pub gateway: String,
    #[serde(default)]
    pub attachable: bool,
    #[serde(default)]
    pub ingress: bool,
    #[serde(default)]
    pub internal: bool,
    /// `--opt com.docker.network.driver.mtu=N`; None = underlay MTU - 50.
    #[serde(default)]
    pub mtu: Option<u32>,
}

/// An IPv4 prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Net {
    pub addr: u32,
    pub bits: u8,
}

impl Net {
    pub fn parse(s: &str) -> Result<Net, String> {
        let (ip, bits) = s
            .split_once('/')
            .ok_or_else(|| format!("invalid CIDR address: {s}"))?;
        let ip: Ipv4Addr = ip
            .parse()
            .map_err(|_| format!("invalid CIDR address: {s}"))?;
        let bits: u8 = bits
            .parse()
            .map_err(|_| format!("invalid CIDR address: {s}"))?;
        if bits > 32 {
            return Err(format!("invalid CIDR address: {s}"));
        }
        let mask = Self::mask(bits);
        Ok(Net {
            addr: u32::from(ip) & mask,
            bits,
        })
    }
    fn mask(bits: u8) -> u32 {
        if bits == 0 {
            0
        } else {
            u32::MAX << (32 - bits)
        }
    }
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & Self::mask(self.bits) == self.addr
    }
    pub fn overlaps(&self, other: &Net) -> bool {
        let bits = self.bits.min(other.bits);
        self.addr & Self::mask(bits) == other.addr & Self::mask(bits)
    }
    /// The first usable address: docker's default gateway (None for a /31 or /32, which
    /// have no host addresses to spare).
    pub fn first_host(&self) -> Option<Ipv4Addr> {
        if self.size() < 4 {
            return None;
        }
        self.addr.checked_add(1).map(Ipv4Addr::from)
    }
    /// The addresses tasks and VIPs may take: all but the network address, the first host
    /// (the default gateway) and the broadcast address. None when that leaves nothing.
    pub fn task_range(&self) -> Option<std::ops::RangeInclusive<u32>> {
        let first = u64::from(self.addr) + 2;
        let last = (u64::from(self.addr) + self.size()).checked_sub(2)?;
        if first > last {
            return None;
        }
        Some(u32::try_from(first).ok()?..=u32::try_from(last).ok()?)
    }
    pub fn size(&self) -> u64 {
        1u64 << (32 - self.bits)
    }
}

/// The longest prefix a swarm network may have. A /30 leaves one address beside its
/// gateway, which a service's VIP takes, so no task would get one; a /29 leaves five
/// (a VIP and four tasks). `swarm init --default-addr-pool-mask-length` has the same cap.
pub const MAX_SUBNET_BITS: u8 = 29;

/// Refuse a subnet too small to hold a gateway, a service VIP and a task.
pub fn check_subnet_size(subnet: &Net) -> Result<(), String> {
    if subnet.bits > MAX_SUBNET_BITS {
        return Err(format!(
            "invalid subnet {subnet}: too small for a swarm network (a gateway, service VIPs and tasks need at least a /{MAX_SUBNET_BITS})"
        ));
    }
    Ok(())
}

impl std::fmt::Display for Net {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", Ipv4Addr::from(self.addr), self.bits)
    }
}

/// The lowest VNI no network uses.
pub fn next_vni(state: &ClusterState) -> Result<u32, String> {
    let used: std::collections::BTreeSet<u32> = state.networks.values().map(|n| n.vni).collect();
    (FIRST_VNI..=MAX_VNI)
        .find(|v| !used.contains(v))
        .ok_or_else(|| "no VXLAN IDs left".to_string())
}

fn used_subnets(state: &ClusterState) -> Vec<Net> {
    state
        .networks
        .values()
        .filter_map(|n| Net::parse(&n.subnet).ok())
        .collect()
}

/// The first /N of the pool that overlaps no network's subnet.
pub fn next_subnet(state: &ClusterState, pool: &str, bits: u8) -> Result<Net, String> {
    let pool = Net::parse(pool)?;
    if bits < pool.bits {
        return Err(format!(
            "subnet size /{bits} is larger than the pool {pool}"
        ));
    }
    let used = used_subnets(state);
    let step = 1u64 << (32 - bits);
    let count = pool.size() / step;
    (0..count)
        .map(|i| Net {
            addr: (pool.addr as u64 + i * step) as u32,
            bits,
        })
        .find(|candidate| !used.iter().any(|u| u.overlaps(candidate)))
        .ok_or_else(|| {
            "could not find an available, non-overlapping IPv4 address pool among the defaults to assign to the network".to_string()
        })
}

/// Check a requested subnet against the existing ones (docker's overlap error).
pub fn check_subnet(state: &ClusterState, subnet: &Net) -> Result<(), String> {
    if used_subnets(state).iter().any(|u| u.overlaps(subnet)) {
        return Err(
            "invalid pool request: Pool overlaps with other one on this address space".into(),
        );
    }
    Ok(())
}

/// The message of a VNI or subnet that another network took between a create's
/// read of the state and its write (the create may pick again).
pub const ALLOCATION_TAKEN: &str = "rpc error: code = Aborted desc = network allocation changed";

/// Whether `net` may be stored beside the networks of `state` (other than
/// itself): its name, VNI and subnet are its own. Checked when the Raft entry
/// applies, not only when the request was read: two creates in flight at once
/// each allocated from the state they saw.
pub fn conflicts(state: &ClusterState, net: &NetworkRecord) -> Result<(), String> {
    // A network written again as it was allocated is no conflict (nor held up
    // by an old one).
    if let Some(old) = state.networks.get(&net.id) {
        if (&old.name, old.vni, &old.subnet) == (&net.name, net.vni, &net.subnet) {
            return Ok(());
        }
    }
    let others = || state.networks.values().filter(|n| n.id != net.id);
    if others().any(|n| n.name == net.name) {
        return Err(format!(
            "rpc error: code = AlreadyExists desc = network with name {} already exists",
            net.name
        ));
    }
    let subnet = Net::parse(&net.subnet).ok();
    let overlaps = |n: &NetworkRecord| {
        Net::parse(&n.subnet)
            .ok()
            .zip(subnet)
            .is_some_and(|(a, b)| a.overlaps(&b))
    };
    if others().any(|n| n.vni == net.vni || overlaps(n)) {
        return Err(ALLOCATION_TAKEN.to_string());
    }
    Ok(())
}

impl NetworkRecord {
    pub fn scope_label(&self) -> &str {
        "swarm"
    }

    /// `network inspect` JSON.
    /// The network as swarm objects embed it (a task's `NetworksAttachments[].Network`):
    /// moby's swarm.Network, keys in its order.
    pub fn swarm_json(&self) -> Value {
        let created = go_time(&self.created_at);
        let mut spec = serde_json::Map::new();
        spec.insert("Name".into(), json!(self.name));
        spec.insert("Labels".into(), json!(self.labels));
        spec.insert("DriverConfiguration".into(), json!({"Name": self.driver}));
        if self.internal {
            spec.insert("Internal".into(), json!(true));
        }
        if self.attachable {
            spec.insert("Attachable".into(), json!(true));
        }
        if self.ingress {
            spec.insert("Ingress".into(), json!(true));
        }
        spec.insert("IPAMOptions".into(), json!({"Driver": {"Name": "default"}}));
        spec.insert("Scope".into(), json!("swarm"));
        let mut config = serde_json::Map::new();
        config.insert("Subnet".into(), json!(self.subnet));
        if !self.gateway.is_empty() {
            config.insert("Gateway".into(), json!(self.gateway));
        }
        json!({
            "ID": self.id,
            "Version": {},
            "CreatedAt": created,
            "UpdatedAt": created,
            "Spec": spec,
            "DriverState": {
                "Name": self.driver,
                "Options": {
                    "com.docker.network.driver.overlay.vxlanid_list": self.vni.to_string(),
                },
            },
            "IPAMOptions": {
                "Driver": {"Name": "default"},
                "Configs": [config],
            },
        })
    }

    pub fn docker_json(&self) -> Value {
        let mut options = serde_json::Map::new();
        options.insert(
            "com.docker.network.driver.overlay.vxlanid_list".into(),
            json!(self.vni.to_string()),
        );
        if let Some(m) = self.mtu {
            options.insert("com.docker.network.driver.mtu".into(), json!(m.to_string()));
        }
        json!({
            "Name": self.name,
            "Id": self.id,
            "Created": go_time(&self.created_at),
            "Scope": "swarm",
            "Driver": self.driver,
            "EnableIPv4": true,
            "EnableIPv6": false,
            "IPAM": {
                "Driver": "default",
                "Options": null,
                "Config": [{"Subnet": self.subnet, "Gateway": self.gateway}],
            },
            "Internal": self.internal,
            "Attachable": self.attachable,
            "Ingress": self.ingress,
            "ConfigFrom": {"Network": ""},
            "ConfigOnly": false,
            "Containers": null,
            "Options": options,
            "Labels": self.labels,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(name: &str, vni: u32, subnet: &str) -> NetworkRecord {
        NetworkRecord {
            id: name.into(),
            name: name.into(),
            driver: "overlay".into(),
            labels: BTreeMap::new(),
            created_at: Utc::now(),
            vni,
            subnet: subnet.into(),
            gateway: String::new(),
            attachable: false,
            ingress: false,
            internal: false,
            mtu: None,
        }
    }

    /// A task's attachment shows its network as moby's swarm.Network.
    #[test]
    fn attachment_network_is_in_full() {
        let mut n = net("webapp_default", 4097, "10.0.1.0/24");
        n.gateway = "10.0.1.1".into();
        let v = n.swarm_json();
        let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
        assert_eq!(
            keys,
            [
                "ID",
                "Version",
                "CreatedAt",
                "UpdatedAt",
                "Spec",
                "DriverState",
                "IPAMOptions"
            ]
        );
        let spec: Vec<&String> = v["Spec"].as_object().unwrap().keys().collect();
        assert_eq!(
            spec,
            [
                "Name",
                "Labels",
                "DriverConfiguration",
                "IPAMOptions",
                "Scope"
            ]
        );
        assert_eq!(
            v["DriverState"],
            json!({"Name": "overlay", "Options": {"com.docker.network.driver.overlay.vxlanid_list": "4097"}})
        );
        assert_eq!(
            v["IPAMOptions"],
            json!({"Driver": {"Name": "default"}, "Configs": [{"Subnet": "10.0.1.0/24", "Gateway": "10.0.1.1"}]})
        );
    }

    /// Allocation skips what is used, and reuses what was freed.
    #[test]
    fn vnis_and_subnets_are_allocated_without_overlap() {
        let mut s = ClusterState::default();
        assert_eq!(next_vni(&s).unwrap(), 4096);
        assert_eq!(
            next_subnet(&s, DEFAULT_POOL, 24).unwrap().to_string(),
            "10.0.0.0/24"
        );
        s.networks.insert("a".into(), net("a", 4096, "10.0.0.0/24"));
        s.networks.insert("b".into(), net("b", 4097, "10.0.1.0/24"));
        assert_eq!(next_vni(&s).unwrap(), 4098);
        assert_eq!(
            next_subnet(&s, DEFAULT_POOL, 24).unwrap().to_string(),
            "10.0.2.0/24"
        );
        s.networks.remove("a");
        assert_eq!(next_vni(&s).unwrap(), 4096);
        assert_eq!(
            next_subnet(&s, DEFAULT_POOL, 24).unwrap().to_string(),
            "10.0.0.0/24"
        );
        // A user's /16 covering existing /24s overlaps.
        assert!(check_subnet(&s, &Net::parse("10.0.0.0/16").unwrap()).is_err());
        assert!(check_subnet(&s, &Net::parse("10.1.0.0/16").unwrap()).is_ok());
        // An exhausted pool is an error, not a panic.
        s.networks
            .insert("c".into(), net("c", 4099, "192.168.0.0/24"));
        assert!(next_subnet(&s, "192.168.0.0/24", 24).is_err());
        assert!(Net::parse("10.0.0.0/33").is_err());
        assert!(Net::parse("nope").is_err());
    }

    /// The top of the address space and subnets with no room for hosts give None, not an
    /// overflow (a record stored before sizes were checked must not panic the leader).
    #[test]
    fn host_addresses_do_not_overflow() {
        let n = |s: &str| Net::parse(s).unwrap();
        for tiny in ["255.255.255.254/31", "255.255.255.255/32", "10.0.0.0/31"] {
            assert_eq!(n(tiny).first_host(), None, "{tiny}");
            assert_eq!(n(tiny).task_range(), None, "{tiny}");
            assert!(check_subnet_size(&n(tiny)).is_err(), "{tiny}");
        }
        assert_eq!(
            n("10.0.0.0/30").task_range(),
            Some(0x0a00_0002..=0x0a00_0002)
        );
        assert!(check_subnet_size(&n("10.0.0.0/30")).is_err());
        let top = n("255.255.255.248/29");
        assert!(check_subnet_size(&top).is_ok());
        assert_eq!(top.first_host(), Some(Ipv4Addr::new(255, 255, 255, 249)));
        assert_eq!(top.task_range(), Some(0xffff_fffa..=0xffff_fffe));
        assert_eq!(n("0.0.0.0/0").task_range(), Some(2..=0xffff_fffe));
    }
}
