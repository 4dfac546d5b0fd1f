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

impl NetworkRecord {
    /// `network inspect --verbose`: [`docker_json`](Self::docker_json) with docker's
    /// `Peers` and `Services` (moby's buildPeerInfoResources and
    /// buildServiceAttachments), filled from the cluster state rather than from one
    /// node's gossip: every task whose process runs with an address on this network,
    /// grouped by service name. Both are left out when empty, as docker's omitempty
    /// does.
    ///
    /// A service shows its VIP on this network (`""` in endpoint mode dnsrr), its
    /// ingress-mode published ports as `Target: T, Publish: P` on the ingress network
    /// only (`[]` elsewhere: docker gossips ports only there) and `LocalLBIndex` 0
    /// (Shoal's load balancer has no firewall marks). A task shows its container name
    /// (`<service>.<slot>.<task id>`), an endpoint ID derived from the task and the
    /// network, its address on the network and, as the overlay driver's `Info`, the
    /// `Host IP` of its node. `Peers` are the nodes of those tasks (every ready node
    /// on the ingress network while a service publishes a port through the mesh), by
    /// hostname and address.
    pub fn docker_json_verbose(&self, state: &ClusterState) -> Value {
        use std::collections::BTreeSet;

        use crate::types::NodeState;

        let mut tasks: Vec<&crate::services::TaskRecord> = state
            .tasks
            .values()
            .filter(|t| t.process_runs() && !t.node_id.is_empty())
            .filter(|t| t.networks.iter().any(|a| a.network_id == self.id))
            .collect();
        tasks.sort_by(|a, b| (a.slot, a.name(), &a.id).cmp(&(b.slot, b.name(), &b.id)));
        let ip = |cidr: &str| cidr.split('/').next().unwrap_or("").to_string();
        let mut peers: BTreeSet<&str> = tasks.iter().map(|t| t.node_id.as_str()).collect();
        let mesh = state.services.values().any(|s| s.spec.publishes_ingress());
        if self.ingress && mesh {
            peers.extend(
                state
                    .nodes
                    .values()
                    .filter(|n| n.state == NodeState::Ready)
                    .map(|n| n.id.as_str()),
            );
        }
        let mut services: BTreeMap<String, serde_json::Map<String, Value>> = BTreeMap::new();
        for t in &tasks {
            let svc = state.services.get(&t.service_id);
            let name = svc.map_or(t.service_name.as_str(), |s| s.spec.name.as_str());
            let entry = services.entry(name.to_string()).or_insert_with(|| {
                let vip = svc
                    .and_then(|s| s.vips.iter().find(|v| v.network_id == self.id))
                    .map(|v| ip(&v.addr))
                    .unwrap_or_default();
                let ports: Vec<String> = match svc {
                    Some(s) if self.ingress => s
                        .spec
                        .endpoint_spec
                        .iter()
                        .flat_map(|e| e.ports.iter())
                        .filter(|p| p.publish_mode == shoal_spec::PublishMode::Ingress)
                        .map(|p| {
                            format!(
                                "Target: {}, Publish: {}",
                                p.target_port,
                                p.published_port.unwrap_or(0)
                            )
                        })
                        .collect(),
                    _ => Vec::new(),
                };
                let mut m = serde_json::Map::new();
                m.insert("VIP".into(), json!(vip));
                m.insert("Ports".into(), json!(ports));
                m.insert("LocalLBIndex".into(), json!(0));
                m.insert("Tasks".into(), json!([]));
                m
            });
            let addr = t
                .networks
                .iter()
                .find(|a| a.network_id == self.id)
                .map(|a| ip(&a.addr))
                .unwrap_or_default();
            let host_ip = state
                .nodes
                .get(&t.node_id)
                .map(|n| n.addr.clone())
                .unwrap_or_default();
            if let Some(list) = entry.get_mut("Tasks").and_then(Value::as_array_mut) {
                list.push(json!({
                    "Name": t.container_name(),
                    "EndpointID": endpoint_id(&t.id, &self.id),
                    "EndpointIP": addr,
                    "Info": {"Host IP": host_ip},
                }));
            }
        }
        let peers: Vec<Value> = {
            let mut list: Vec<(&str, &str)> = peers
                .iter()
                .filter_map(|id| state.nodes.get(*id))
                .map(|n| (n.description.hostname.as_str(), n.addr.as_str()))
                .collect();
            list.sort();
            list.into_iter()
                .map(|(name, ip)| json!({"Name": name, "IP": ip}))
                .collect()
        };
        let mut v = self.docker_json();
        if let Some(m) = v.as_object_mut() {
            if !peers.is_empty() {
                m.insert("Peers".into(), Value::Array(peers));
            }
            if !services.is_empty() {
                let services: serde_json::Map<String, Value> = services
                    .into_iter()
                    .map(|(k, v)| (k, Value::Object(v)))
                    .collect();
                m.insert("Services".into(), Value::Object(services));
            }
        }
        v
    }
}

/// A task's endpoint on a network, named as docker names endpoints (64 hex digits):
/// Shoal keeps no endpoint objects, so the name is derived from the task and network
/// IDs, the same at every inspect.
fn endpoint_id(task_id: &str, network_id: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!("{task_id}/{network_id}"));
    digest.iter().map(|b| format!("{b:02x}")).collect()
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

    /// `network inspect --verbose`: docker's Peers and Services, in moby's shapes, of the
    /// tasks whose processes run on the network; ports only on ingress; nothing added
    /// where no task runs.
    #[test]
    fn verbose_inspect_shows_services_tasks_and_peers() {
        use crate::services::{ServiceRecord, TaskAttachment};
        use crate::types::{NodeDescription, NodeState, Role};
        use shoal_spec::TaskState;

        let mut s = ClusterState::default();
        let mut back = net("back", 4097, "10.0.1.0/24");
        back.id = "backid".into();
        let mut ingress = net("ingress", 4096, "10.0.0.0/24");
        ingress.id = "ingid".into();
        ingress.ingress = true;
        s.networks.insert(back.id.clone(), back.clone());
        s.networks.insert(ingress.id.clone(), ingress.clone());
        for (id, host, addr) in [
            ("n1", "alpha", "192.168.9.1"),
            ("n2", "beta", "192.168.9.2"),
        ] {
            let mut n = crate::state::new_node_record(
                id.into(),
                1,
                Role::Worker,
                NodeDescription {
                    hostname: host.into(),
                    ..Default::default()
                },
                addr.into(),
                format!("{addr}:2377"),
                Utc::now(),
            );
            n.state = NodeState::Ready;
            s.nodes.insert(id.into(), n);
        }
        let mut spec = shoal_spec::ServiceSpec {
            name: "web".into(),
            ..Default::default()
        };
        spec.endpoint_spec = Some(shoal_spec::EndpointSpec {
            ports: crate::cli::service_opts::port("8080:80").unwrap(),
            ..Default::default()
        });
        let mut web = ServiceRecord::new("svcid".into(), spec);
        let at = |net: &str, addr: &str| TaskAttachment {
            network_id: net.into(),
            addr: addr.into(),
        };
        web.vips = vec![at("ingid", "10.0.0.2/24"), at("backid", "10.0.1.2/24")];
        s.services.insert(web.id.clone(), web.clone());
        let task = |id: &str, slot: u64, node: &str, state: TaskState, n: u8| {
            let mut t = crate::orchestrator::new_task(&web, slot, node, Utc::now());
            t.id = id.into();
            t.status.state = state;
            t.networks = vec![
                at("ingid", &format!("10.0.0.{n}/24")),
                at("backid", &format!("10.0.1.{n}/24")),
            ];
            t
        };
        for t in [
            task("t2", 2, "n2", TaskState::Running, 4),
            task("t1", 1, "n1", TaskState::Running, 3),
            task("t0", 1, "n1", TaskState::Shutdown, 5),
        ] {
            s.tasks.insert(t.id.clone(), t);
        }

        let v = back.docker_json_verbose(&s);
        let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
        assert_eq!(keys.last().map(|k| k.as_str()), Some("Services"));
        assert_eq!(
            v["Peers"],
            json!([{"Name": "alpha", "IP": "192.168.9.1"}, {"Name": "beta", "IP": "192.168.9.2"}])
        );
        let task_json = |name: &str, id: &str, ip: &str, host: &str| {
            json!({"Name": name, "EndpointID": endpoint_id(id, "backid"),
                   "EndpointIP": ip, "Info": {"Host IP": host}})
        };
        assert_eq!(
            v["Services"],
            json!({"web": {
                "VIP": "10.0.1.2",
                "Ports": [],
                "LocalLBIndex": 0,
                "Tasks": [
                    task_json("web.1.t1", "t1", "10.0.1.3", "192.168.9.1"),
                    task_json("web.2.t2", "t2", "10.0.1.4", "192.168.9.2"),
                ],
            }})
        );
        let service: Vec<&String> = v["Services"]["web"].as_object().unwrap().keys().collect();
        assert_eq!(service, ["VIP", "Ports", "LocalLBIndex", "Tasks"]);
        let t: Vec<&String> = v["Services"]["web"]["Tasks"][0]
            .as_object()
            .unwrap()
            .keys()
            .collect();
        assert_eq!(t, ["Name", "EndpointID", "EndpointIP", "Info"]);
        assert_eq!(endpoint_id("t1", "backid").len(), 64);

        // On ingress, the published ports as libnetwork prints them.
        let v = ingress.docker_json_verbose(&s);
        assert_eq!(
            v["Services"]["web"]["Ports"],
            json!(["Target: 80, Publish: 8080"])
        );
        assert_eq!(v["Services"]["web"]["VIP"], "10.0.0.2");

        // Without running tasks there is nothing to add: docker_json as it is.
        s.tasks.clear();
        assert_eq!(back.docker_json_verbose(&s), back.docker_json());
        assert!(back.docker_json().get("Services").is_none());
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
