//! The agent's load-balancer side: turns the leader's [`LbView`] into what the
//! node's eBPF load balancer serves, and the ingress network's extras the mesh
//! needs (the load-balancer port, and every other node's load-balancer MAC).

use std::collections::{BTreeMap, HashSet};
use std::net::Ipv4Addr;

use shoal_dataplane::lb::{self, BackendSpec, BackendState, Frontend, Proto, ServiceSpec};
use shoal_dataplane::net::{mac_for_ip, Extras, FdbEntry, HostPort};

use crate::peer::{LbBackend, LbPort, LbView, NetView};

/// The host end of the load-balancer port (in the node's namespace).
pub(crate) const LB_PORT: &str = "shoal-lb";

/// The seed of the flow hash: one constant for every node of every cluster, so
/// all nodes pick the same backend for a flow.
pub(crate) const MAGLEV_SEED: u32 = 0x5348_4f4c;

/// Whether the node's load balancer serves any published port: one of the
/// routing mesh, or a host-mode port of one of the node's own tasks.
pub(crate) fn mesh_active(view: &LbView) -> bool {
    view.services.iter().any(|s| {
        !s.ports.is_empty()
            || s.backends
                .iter()
                .any(|b| b.node_id == view.node && !b.host_ports.is_empty())
    })
}

/// What the ingress network keeps on this node while the mesh is active.
pub(crate) fn ingress_extras(view: &LbView, my_addr: Ipv4Addr) -> Extras {
    let fdb = view
        .nodes
        .iter()
        .filter_map(|n| n.addr.parse::<Ipv4Addr>().ok())
        .filter(|a| *a != my_addr)
        .map(|a| FdbEntry {
            mac: lb::lb_mac(a),
            dst: a,
        })
        .collect();
    Extras {
        keep: true,
        fdb,
        host_port: Some(HostPort {
            name: LB_PORT.to_string(),
            mac: lb::lb_mac(my_addr),
        }),
    }
}

/// The services of the node's load balancer: one frontend per published port
/// (backends at their ingress address and target port) and one per VIP
/// (backends on the VIP's network, any port). Backends on `down` nodes are
/// kept, marked down, so their flows move and none are sent there.
///
/// A port published in host mode is a frontend only on a node that runs a task
/// publishing it, with only that node's tasks as backends: other nodes do not
/// answer on it (the packet goes on to the node's own stack, which refuses it).
/// The routing mesh wins a port both claim (the manager refuses that anyway).
pub(crate) fn specs(view: &LbView, nets: &[NetView], down: &HashSet<String>) -> Vec<ServiceSpec> {
    let ingress = nets
        .iter()
        .find(|n| n.network.ingress)
        .map(|n| n.network.id.as_str());
    let mut out = Vec::new();
    let mut host: BTreeMap<Frontend, ServiceSpec> = BTreeMap::new();
    for s in &view.services {
        let backend = |b: &LbBackend, network: &str, port: u16| -> Option<BackendSpec> {
            let (_, addr) = b.addrs.iter().find(|(n, _)| n == network)?;
            let addr: Ipv4Addr = addr.parse().ok()?;
            Some(BackendSpec {
                name: b.task_id.clone(),
                addr,
                port,
                mac: mac_for_ip(addr),
                state: if down.contains(&b.node_id) {
                    BackendState::Down
                } else if b.terminating {
                    BackendState::Terminating
                } else {
                    BackendState::Active
                },
            })
        };
        let backends_on = |network: &str, port: u16| -> Vec<BackendSpec> {
            s.backends
                .iter()
                .filter_map(|b| backend(b, network, port))
                .collect()
        };
        if let Some(ingress) = ingress {
            for p in &s.ports {
                out.push(ServiceSpec {
                    name: s.name.clone(),
                    frontend: node_port(p),
                    backends: backends_on(ingress, p.target),
                });
            }
            let local = s
                .backends
                .iter()
                .filter(|b| !view.node.is_empty() && b.node_id == view.node);
            for b in local {
                for p in &b.host_ports {
                    let Some(be) = backend(b, ingress, p.target) else {
                        continue;
                    };
                    let frontend = node_port(p);
                    // Tasks of two services can share a node's port for a moment
                    // (one stopping, the next starting): the stopping one keeps
                    // its flows, the new one takes the new flows.
                    host.entry(frontend)
                        .or_insert_with(|| ServiceSpec {
                            name: s.name.clone(),
                            frontend,
                            backends: Vec::new(),
                        })
                        .backends
                        .push(be);
                }
            }
        }
        for (network, vip) in &s.vips {
            let Ok(vip) = vip.parse() else { continue };
            out.push(ServiceSpec {
                name: s.name.clone(),
                frontend: Frontend::Vip(vip),
                backends: backends_on(network, 0),
            });
        }
    }
    let mesh: HashSet<Frontend> = out.iter().map(|s| s.frontend).collect();
    out.extend(host.into_values().filter(|s| !mesh.contains(&s.frontend)));
    out
}

fn node_port(p: &LbPort) -> Frontend {
    Frontend::NodePort {
        proto: if p.udp { Proto::Udp } else { Proto::Tcp },
        port: p.published,
    }
}

/// UDP port of the data-plane liveness probes between nodes (docker's gossip port).
pub(crate) const PROBE_PORT: u16 = 7946;
/// How often each node is probed.
const PROBE_EVERY: std::time::Duration = std::time::Duration::from_millis(100);
/// A node that has not answered for this long takes no new flows (and its flows
/// move); it is back at its first answer. Rescheduling its tasks is the
/// manager's business, after the much longer heartbeat grace.
const PROBE_DOWN_AFTER: std::time::Duration = std::time::Duration::from_millis(400);
const PROBE_MAGIC: &[u8; 8] = b"SHOALPRB";

/// Liveness of the other nodes as the data plane sees it.
#[derive(Default)]
pub(crate) struct Liveness {
    /// Node id -> address, from the last view.
    pub nodes: Vec<(String, Ipv4Addr)>,
    pub down: HashSet<String>,
}

/// Answers other nodes' probes and probes them; calls `changed` with the new
/// set of unreachable nodes whenever it changes. Runs until aborted.
pub(crate) async fn probe_loop(
    my_addr: Ipv4Addr,
    liveness: std::sync::Arc<std::sync::Mutex<Liveness>>,
    changed: impl Fn(HashSet<String>) + Send + 'static,
) {
    use std::collections::HashMap;
    use std::time::Instant;
    let socket = match tokio::net::UdpSocket::bind((my_addr, PROBE_PORT)).await {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "data-plane probes unavailable: a dead node's backends stay in the load balancer until the manager marks it down");
            return;
        }
    };
    // A node is given PROBE_DOWN_AFTER from when it was first seen to answer.
    let mut last_answer: HashMap<Ipv4Addr, Instant> = HashMap::new();
    let mut tick = tokio::time::interval(PROBE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut buf = [0u8; 64];
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let nodes = super::lock(&liveness).nodes.clone();
                let now = Instant::now();
                for (_, a) in &nodes {
                    last_answer.entry(*a).or_insert(now);
                }
                for (_, addr) in &nodes {
                    if *addr != my_addr {
                        let mut probe = [0u8; 9];
                        probe[..8].copy_from_slice(PROBE_MAGIC);
                        let _ = socket.send_to(&probe, (*addr, PROBE_PORT)).await;
                    }
                }
                let down: HashSet<String> = nodes
                    .iter()
                    .filter(|(_, a)| *a != my_addr)
                    .filter(|(_, a)| {
                        last_answer
                            .get(a)
                            .is_some_and(|t| now.duration_since(*t) > PROBE_DOWN_AFTER)
                    })
                    .map(|(id, _)| id.clone())
                    .collect();
                let mut l = super::lock(&liveness);
                if l.down != down {
                    tracing::info!(?down, "data-plane liveness changed");
                    l.down = down.clone();
                    drop(l);
                    changed(down);
                }
            }
            got = socket.recv_from(&mut buf) => {
                let Ok((n, from)) = got else { continue };
                if n != 9 || &buf[..8] != PROBE_MAGIC {
                    continue; // not ours: ignore garbage
                }
                let std::net::SocketAddr::V4(from4) = from else { continue };
                if buf[8] == 0 {
                    buf[8] = 1;
                    let _ = socket.send_to(&buf[..9], from).await;
                } else {
                    last_answer.insert(*from4.ip(), Instant::now());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::peer::{LbBackend, LbService};

    fn ingress() -> NetView {
        NetView {
            network: crate::networks::NetworkRecord {
                id: "ing".into(),
                name: "ingress".into(),
                driver: "overlay".into(),
                labels: Default::default(),
                created_at: chrono::Utc::now(),
                vni: 4096,
                subnet: "10.0.0.0/24".into(),
                gateway: "10.0.0.1".into(),
                attachable: false,
                ingress: true,
                internal: false,
                mtu: None,
            },
            endpoints: Vec::new(),
            services: Vec::new(),
            vxlan_port: 4789,
        }
    }

    fn task(id: &str, node: &str, addr: &str, host: &[(u16, u16)]) -> LbBackend {
        LbBackend {
            task_id: id.into(),
            name: String::new(),
            node_id: node.into(),
            addrs: vec![("ing".into(), addr.into())],
            terminating: false,
            host_ports: host
                .iter()
                .map(|&(published, target)| LbPort {
                    udp: false,
                    published,
                    target,
                })
                .collect(),
        }
    }

    fn service(name: &str, ports: &[LbPort], backends: Vec<LbBackend>) -> LbService {
        LbService {
            id: format!("id-{name}"),
            name: name.into(),
            ports: ports.to_vec(),
            vips: Vec::new(),
            backends,
        }
    }

    fn view(node: &str, services: Vec<LbService>) -> LbView {
        LbView {
            services,
            nodes: Vec::new(),
            node: node.into(),
        }
    }

    const PORT_8081: Frontend = Frontend::NodePort {
        proto: Proto::Tcp,
        port: 8081,
    };

    /// A host-mode port is served only by a node that runs a task publishing it, and
    /// only to that node's tasks; other nodes do not serve it at all.
    #[test]
    fn host_port_served_by_its_tasks_node_only() {
        let web = || {
            service(
                "web",
                &[],
                vec![
                    task("t2", "n2", "10.0.0.2", &[(8081, 80)]),
                    task("t3", "n3", "10.0.0.3", &[(8081, 80)]),
                ],
            )
        };
        let nets = [ingress()];
        let none = HashSet::new();
        let on_n2 = specs(&view("n2", vec![web()]), &nets, &none);
        assert_eq!(on_n2.len(), 1);
        assert_eq!(on_n2[0].frontend, PORT_8081);
        let backends: Vec<(&str, Ipv4Addr, u16)> = on_n2[0]
            .backends
            .iter()
            .map(|b| (b.name.as_str(), b.addr, b.port))
            .collect();
        assert_eq!(backends, [("t2", Ipv4Addr::new(10, 0, 0, 2), 80)]);
        assert!(mesh_active(&view("n2", vec![web()])));

        assert!(specs(&view("n1", vec![web()]), &nets, &none).is_empty());
        assert!(!mesh_active(&view("n1", vec![web()])));
        // A view that names no node (an older leader) serves no host-mode port.
        assert!(specs(&view("", vec![web()]), &nets, &none).is_empty());
    }

    /// Two services' tasks on one node's port (one stopping, one starting) share its
    /// frontend; a mesh port of the same number wins over a host-mode one.
    #[test]
    fn host_port_frontends_merge_and_yield_to_the_mesh() {
        let nets = [ingress()];
        let none = HashSet::new();
        let mut old = task("t-old", "n2", "10.0.0.4", &[(8081, 80)]);
        old.terminating = true;
        let services = vec![
            service("old", &[], vec![old]),
            service(
                "new",
                &[],
                vec![task("t-new", "n2", "10.0.0.5", &[(8081, 8080)])],
            ),
        ];
        let out = specs(&view("n2", services), &nets, &none);
        assert_eq!(out.len(), 1);
        let states: Vec<(&str, u16, BackendState)> = out[0]
            .backends
            .iter()
            .map(|b| (b.name.as_str(), b.port, b.state))
            .collect();
        assert_eq!(
            states,
            [
                ("t-old", 80, BackendState::Terminating),
                ("t-new", 8080, BackendState::Active)
            ]
        );

        let mesh = LbPort {
            udp: false,
            published: 8081,
            target: 80,
        };
        let services = vec![
            service("mesh", &[mesh], vec![task("t-m", "n3", "10.0.0.6", &[])]),
            service(
                "host",
                &[],
                vec![task("t-h", "n2", "10.0.0.7", &[(8081, 80)])],
            ),
        ];
        let out = specs(&view("n2", services), &nets, &none);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].name, "mesh");
    }
}
