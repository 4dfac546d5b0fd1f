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
