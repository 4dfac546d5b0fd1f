//! The agent's load-balancer side: turns the leader's [`LbView`] into what the
//! node's eBPF load balancer serves, and the ingress network's extras the mesh
//! needs (the load-balancer port, and every other node's load-balancer MAC).

use std::collections::HashSet;
use std::net::Ipv4Addr;

use shoal_dataplane::lb::{self, BackendSpec, BackendState, Frontend, Proto, ServiceSpec};
use shoal_dataplane::net::{mac_for_ip, Extras, FdbEntry, HostPort};

use crate::peer::{LbView, NetView};

/// The host end of the load-balancer port (in the node's namespace).
pub(crate) const LB_PORT: &str = "shoal-lb";

/// The seed of the flow hash: one constant for every node of every cluster, so
/// all nodes pick the same backend for a flow.
pub(crate) const MAGLEV_SEED: u32 = 0x5348_4f4c;

/// Whether the routing mesh has any published port.
pub(crate) fn mesh_active(view: &LbView) -> bool {
    view.services.iter().any(|s| !s.ports.is_empty())
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
pub(crate) fn specs(view: &LbView, nets: &[NetView], down: &HashSet<String>) -> Vec<ServiceSpec> {
    let ingress = nets
        .iter()
        .find(|n| n.network.ingress)
        .map(|n| n.network.id.as_str());
    let mut out = Vec::new();
    for s in &view.services {
        let backends_on = |network: &str, port: u16| -> Vec<BackendSpec> {
            s.backends
                .iter()
                .filter_map(|b| {
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
                })
                .collect()
        };
        if let Some(ingress) = ingress {
            for p in &s.ports {
                out.push(ServiceSpec {
                    name: s.name.clone(),
                    frontend: Frontend::NodePort {
                        proto: if p.udp { Proto::Udp } else { Proto::Tcp },
                        port: p.published,
                    },
                    backends: backends_on(ingress, p.target),
                });
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
    out
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
