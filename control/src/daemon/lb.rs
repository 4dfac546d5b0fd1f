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

/// Keeps the node's own ports out of its load balancer: its swarm port (TCP), the
/// data path port (VXLAN, UDP) and the probe port (UDP). The managers refuse to publish
/// them, but a cluster's state may still hold one (written by an older leader, or a node
/// that joined with another swarm port than the others): served, the load balancer would
/// take the swarm's own traffic before the node's sockets see it, and cut the node off
/// from the very managers that could tell it the service is gone. Logs each port once
/// while it stays published.
#[derive(Debug, Default)]
pub(crate) struct OwnPorts {
    warned: std::collections::BTreeSet<(bool, u16)>,
}

impl OwnPorts {
    /// `view` without node ports (ingress, or host mode of local tasks) that are one of
    /// `own`, each `(udp, port)`.
    pub(crate) fn filter(&mut self, view: &LbView, own: &[(bool, u16)]) -> LbView {
        let is_own = |p: &LbPort| own.contains(&(p.udp, p.published));
        let mut found = std::collections::BTreeSet::new();
        let mut out = view.clone();
        for s in &mut out.services {
            let mut note = |p: &LbPort| {
                let key = (p.udp, p.published);
                found.insert(key);
                if !self.warned.contains(&key) {
                    tracing::warn!(
                        service = %s.name,
                        port = p.published,
                        proto = if p.udp { "udp" } else { "tcp" },
                        "service {} publishes port {}/{}, one of this node's own swarm ports: not served here, so the node stays in the swarm (remove the port from the service)",
                        s.name,
                        p.published,
                        if p.udp { "udp" } else { "tcp" }
                    );
                }
            };
            s.ports.retain(|p| {
                let mine = is_own(p);
                if mine {
                    note(p);
                }
                !mine
            });
            for b in &mut s.backends {
                b.host_ports.retain(|p| {
                    let mine = is_own(p);
                    if mine {
                        note(p);
                    }
                    !mine
                });
            }
        }
        self.warned = found;
        out
    }
}

fn node_port(p: &LbPort) -> Frontend {
    Frontend::NodePort {
        proto: if p.udp { Proto::Udp } else { Proto::Tcp },
        port: p.published,
    }
}

/// UDP port of the data-plane liveness probes between nodes (docker's gossip port).
/// The probes are answered by the node's data plane (`ebpf/include/lb_probe.h`), so a
/// node whose shoald restarts is not taken for dead; this loop sends them, takes the
/// answers, and answers probes the data plane leaves to it (the nonce-less ones of
/// earlier versions, and any while the programs are not attached).
pub(crate) const PROBE_PORT: u16 = shoal_ebpf::LB_PROBE_PORT;
/// How often each node is probed.
const PROBE_EVERY: std::time::Duration = std::time::Duration::from_millis(100);
/// A node that has not answered for this long takes no new flows (and its flows
/// move); it is back at its first answer. Rescheduling its tasks is the
/// manager's business, after the much longer heartbeat grace.
const PROBE_DOWN_AFTER: std::time::Duration = std::time::Duration::from_millis(400);
const PROBE_MAGIC: &[u8; 8] = b"SHOALPRB";
/// A probe: magic, [`KIND_PROBE`], an 8-byte random nonce. The answer is the
/// same with [`KIND_ANSWER`], echoing the nonce.
const PROBE_LEN: usize = shoal_ebpf::LB_PROBE_LEN;
const KIND_PROBE: u8 = shoal_ebpf::LB_PROBE_KIND;
const KIND_ANSWER: u8 = shoal_ebpf::LB_PROBE_ANSWER;
/// The nonce-less probe of earlier versions (magic, 0); answered with (magic, 1)
/// so such a peer still sees this node alive. Its answers never count here.
const OLD_PROBE_LEN: usize = 9;
const OLD_KIND_PROBE: u8 = 0;
const OLD_KIND_ANSWER: u8 = 1;
/// Probes in flight per node at most (older ones are forgotten, and their
/// answers no longer count).
const MAX_IN_FLIGHT: usize = 8;

/// Liveness of the other nodes as the data plane sees it.
#[derive(Default)]
pub(crate) struct Liveness {
    /// Node id -> address, from the last view.
    pub nodes: Vec<(String, Ipv4Addr)>,
    pub down: HashSet<String>,
}

/// What one probed node has shown of itself.
struct Peer {
    /// When the last probe it answered was sent (when it was first listed,
    /// until it answers one): a node is given [`PROBE_DOWN_AFTER`] from there.
    alive_at: std::time::Instant,
    /// (nonce, sent at) of the probes it has not answered yet, oldest first.
    in_flight: std::collections::VecDeque<(u64, std::time::Instant)>,
}

/// The probing logic without the socket: which probes to send, what an
/// incoming datagram means, and which nodes are down.
///
/// An answer counts only if it comes from a listed node's address and
/// [`PROBE_PORT`] and echoes the nonce of a probe sent to that node that is
/// neither answered already nor older than [`PROBE_DOWN_AFTER`]. So a forged
/// answer must guess a fresh 64-bit nonce, and nothing but listed nodes is
/// ever remembered.
pub(crate) struct Prober {
    my_addr: Ipv4Addr,
    nodes: Vec<(String, Ipv4Addr)>,
    peers: std::collections::HashMap<Ipv4Addr, Peer>,
}

impl Prober {
    pub(crate) fn new(my_addr: Ipv4Addr) -> Prober {
        Prober {
            my_addr,
            nodes: Vec::new(),
            peers: Default::default(),
        }
    }

    /// Takes the current node list: nodes no longer listed are forgotten, new
    /// ones are given [`PROBE_DOWN_AFTER`] from `now` to answer.
    pub(crate) fn set_nodes(&mut self, nodes: &[(String, Ipv4Addr)], now: std::time::Instant) {
        if self.nodes == nodes {
            return;
        }
        self.nodes = nodes.to_vec();
        let my_addr = self.my_addr;
        let listed: HashSet<Ipv4Addr> = nodes
            .iter()
            .map(|(_, a)| *a)
            .filter(|a| *a != my_addr)
            .collect();
        self.peers.retain(|a, _| listed.contains(a));
        for a in listed {
            self.peers.entry(a).or_insert_with(|| Peer {
                alive_at: now,
                in_flight: Default::default(),
            });
        }
    }

    /// One round: a probe with a fresh nonce for every other listed node.
    pub(crate) fn probes(
        &mut self,
        now: std::time::Instant,
        mut nonce: impl FnMut() -> u64,
    ) -> Vec<(std::net::SocketAddrV4, [u8; PROBE_LEN])> {
        let mut out = Vec::with_capacity(self.peers.len());
        for (addr, peer) in &mut self.peers {
            while peer.in_flight.len() >= MAX_IN_FLIGHT
                || peer
                    .in_flight
                    .front()
                    .is_some_and(|(_, sent)| now.duration_since(*sent) > PROBE_DOWN_AFTER)
            {
                peer.in_flight.pop_front();
            }
            let n = nonce();
            peer.in_flight.push_back((n, now));
            out.push((
                std::net::SocketAddrV4::new(*addr, PROBE_PORT),
                probe_message(KIND_PROBE, n),
            ));
        }
        out
    }

    /// What a datagram from `from` means: a probe gets its answer (returned, to
    /// send back to `from`); an answer to one of our probes in flight marks its
    /// node alive as of when that probe was sent; anything else is ignored.
    pub(crate) fn receive(&mut self, from: std::net::SocketAddr, msg: &[u8]) -> Option<Vec<u8>> {
        if msg.len() < OLD_PROBE_LEN || &msg[..8] != PROBE_MAGIC {
            return None;
        }
        match (msg.len(), msg[8]) {
            (PROBE_LEN, KIND_PROBE) => Some(vec_with_kind(msg, KIND_ANSWER)),
            (OLD_PROBE_LEN, OLD_KIND_PROBE) => Some(vec_with_kind(msg, OLD_KIND_ANSWER)),
            (PROBE_LEN, KIND_ANSWER) => {
                let std::net::SocketAddr::V4(from) = from else {
                    return None;
                };
                if from.port() != PROBE_PORT {
                    return None;
                }
                let nonce = u64::from_be_bytes(msg[9..PROBE_LEN].try_into().ok()?);
                let peer = self.peers.get_mut(from.ip())?;
                let i = peer.in_flight.iter().position(|(n, _)| *n == nonce)?;
                let sent = peer.in_flight[i].1;
                // This probe and every older one are settled: none counts again.
                peer.in_flight.drain(..=i);
                peer.alive_at = peer.alive_at.max(sent);
                None
            }
            _ => None,
        }
    }

    /// The listed nodes (other than this one) that answered no probe sent in
    /// the last [`PROBE_DOWN_AFTER`].
    pub(crate) fn down(&self, now: std::time::Instant) -> HashSet<String> {
        self.nodes
            .iter()
            .filter(|(_, a)| {
                self.peers
                    .get(a)
                    .is_some_and(|p| now.duration_since(p.alive_at) > PROBE_DOWN_AFTER)
            })
            .map(|(id, _)| id.clone())
            .collect()
    }
}

fn probe_message(kind: u8, nonce: u64) -> [u8; PROBE_LEN] {
    let mut m = [0u8; PROBE_LEN];
    m[..8].copy_from_slice(PROBE_MAGIC);
    m[8] = kind;
    m[9..].copy_from_slice(&nonce.to_be_bytes());
    m
}

fn vec_with_kind(msg: &[u8], kind: u8) -> Vec<u8> {
    let mut v = msg.to_vec();
    v[8] = kind;
    v
}

/// Answers other nodes' probes and probes them; calls `changed` with the new
/// set of unreachable nodes whenever it changes. Runs until aborted.
pub(crate) async fn probe_loop(
    my_addr: Ipv4Addr,
    liveness: std::sync::Arc<std::sync::Mutex<Liveness>>,
    changed: impl Fn(HashSet<String>) + Send + 'static,
) {
    use std::time::Instant;
    let socket = match tokio::net::UdpSocket::bind((my_addr, PROBE_PORT)).await {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "data-plane probes unavailable: a dead node's backends stay in the load balancer until the manager marks it down");
            return;
        }
    };
    let mut prober = Prober::new(my_addr);
    let mut tick = tokio::time::interval(PROBE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut buf = [0u8; 64];
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let nodes = super::lock(&liveness).nodes.clone();
                let now = Instant::now();
                prober.set_nodes(&nodes, now);
                for (to, probe) in prober.probes(now, rand::random) {
                    let _ = socket.send_to(&probe, to).await;
                }
                let down = prober.down(now);
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
                if let Some(answer) = prober.receive(from, &buf[..n]) {
                    let _ = socket.send_to(&answer, from).await;
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
            data_path_port: None,
        }
    }

    const PORT_8081: Frontend = Frontend::NodePort {
        proto: Proto::Tcp,
        port: 8081,
    };

    /// The node's own ports (swarm port TCP, VXLAN and probe UDP) are never served,
    /// whatever the view says (an older leader's state): ingress or host mode; the
    /// other protocol of those ports is.
    #[test]
    fn own_ports_are_never_served() {
        let port = |udp, published| LbPort {
            udp,
            published,
            target: 80,
        };
        let v = view(
            "n1",
            vec![service(
                "hij",
                &[
                    port(false, 2377),
                    port(true, 4789),
                    port(true, 2377),
                    port(false, 8080),
                ],
                vec![task("t1", "n1", "10.0.0.5", &[(2377, 80)])],
            )],
        );
        let mut own = OwnPorts::default();
        let own_ports = [(false, 2377), (true, 4789), (true, 7946)];
        let f = own.filter(&v, &own_ports);
        let frontends: Vec<Frontend> = specs(&f, &[ingress()], &HashSet::new())
            .iter()
            .map(|s| s.frontend)
            .collect();
        assert_eq!(
            frontends,
            [
                Frontend::NodePort {
                    proto: Proto::Udp,
                    port: 2377
                },
                Frontend::NodePort {
                    proto: Proto::Tcp,
                    port: 8080
                },
            ]
        );
        assert_eq!(own.warned.len(), 2, "each noted once");
        // Gone from the view: forgotten, so a later one is logged again.
        own.filter(&view("n1", Vec::new()), &own_ports);
        assert!(own.warned.is_empty());
    }

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

    mod probes {
        use super::super::*;
        use std::net::{SocketAddr, SocketAddrV4};
        use std::time::{Duration, Instant};

        const ME: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 11);
        const VM2: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 12);
        const VM3: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 13);

        fn nodes(list: &[(&str, Ipv4Addr)]) -> Vec<(String, Ipv4Addr)> {
            list.iter().map(|(id, a)| (id.to_string(), *a)).collect()
        }

        fn three() -> Vec<(String, Ipv4Addr)> {
            nodes(&[("n1", ME), ("n2", VM2), ("n3", VM3)])
        }

        fn from(a: Ipv4Addr) -> SocketAddr {
            SocketAddr::V4(SocketAddrV4::new(a, PROBE_PORT))
        }

        /// The answer a live node sends to the probe we sent it.
        fn answer_of(probes: &[(SocketAddrV4, [u8; PROBE_LEN])], to: Ipv4Addr) -> Vec<u8> {
            let (_, probe) = probes.iter().find(|(a, _)| *a.ip() == to).unwrap();
            Prober::new(to).receive(from(ME), probe).unwrap()
        }

        fn ids(down: HashSet<String>) -> Vec<String> {
            let mut v: Vec<String> = down.into_iter().collect();
            v.sort();
            v
        }

        /// `n` probe rounds, 100 ms apart, the first at `start`, with
        /// `answering` nodes answering; returns the time of the last round
        /// (when the probe loop computes which nodes are down).
        fn rounds(p: &mut Prober, start: Instant, n: u32, answering: &[Ipv4Addr]) -> Instant {
            let mut nonce = 0u64;
            let mut t = start;
            for i in 0..n {
                t = start + PROBE_EVERY * i;
                let probes = p.probes(t, || {
                    nonce += 1;
                    nonce.wrapping_mul(0x9e37_79b9_7f4a_7c15)
                });
                for a in answering {
                    let ans = answer_of(&probes, *a);
                    assert_eq!(p.receive(from(*a), &ans), None);
                }
            }
            t
        }

        /// A node that stops answering is down at the fifth round it misses
        /// (PROBE_DOWN_AFTER after its last answered probe), and up again at
        /// its first answer.
        #[test]
        fn silent_node_goes_down_and_comes_back_at_its_first_answer() {
            let t0 = Instant::now();
            let mut p = Prober::new(ME);
            p.set_nodes(&three(), t0);
            let t = rounds(&mut p, t0, 5, &[VM2, VM3]);
            assert!(p.down(t).is_empty());
            // vm2 goes silent: still up for 4 rounds, down at the fifth.
            let t = rounds(&mut p, t + PROBE_EVERY, 4, &[VM3]);
            assert!(p.down(t).is_empty());
            let t = rounds(&mut p, t + PROBE_EVERY, 1, &[VM3]);
            assert_eq!(ids(p.down(t)), ["n2"]);
            // One answered round brings it back.
            let t = rounds(&mut p, t + PROBE_EVERY, 1, &[VM2, VM3]);
            assert!(p.down(t).is_empty());
        }

        /// The lab's attack: vm2 silent, forged answers "from" vm2 (any nonce
        /// but the one sent, the old nonce-less format, another port) keep it down.
        #[test]
        fn forged_answers_do_not_keep_a_silent_node_up() {
            let t0 = Instant::now();
            let mut p = Prober::new(ME);
            p.set_nodes(&three(), t0);
            let mut t = t0;
            let mut next = 1000u64;
            for _ in 0..10 {
                let probes = p.probes(t, || {
                    next += 1;
                    next
                });
                // The old nonce-less answer the review forged.
                let mut old = PROBE_MAGIC.to_vec();
                old.push(OLD_KIND_ANSWER);
                assert_eq!(p.receive(from(VM2), &old), None);
                // Guessed nonces.
                for n in [0u64, u64::MAX] {
                    let forged = probe_message(KIND_ANSWER, n);
                    assert_eq!(p.receive(from(VM2), &forged), None);
                }
                // The right nonce from the right address but another port.
                let right = answer_of(&probes, VM2);
                let other_port = SocketAddr::V4(SocketAddrV4::new(VM2, 40000));
                assert_eq!(p.receive(other_port, &right), None);
                // vm2's real answer delivered to vm3's slot.
                assert_eq!(p.receive(from(VM3), &right), None);
                t += PROBE_EVERY;
            }
            assert_eq!(ids(p.down(t)), ["n2", "n3"]);
        }

        /// An answer counts once: replaying it later does not revive a node.
        #[test]
        fn a_replayed_answer_counts_once() {
            let t0 = Instant::now();
            let mut p = Prober::new(ME);
            p.set_nodes(&nodes(&[("n1", ME), ("n2", VM2)]), t0);
            let probes = p.probes(t0, || 7);
            let ans = answer_of(&probes, VM2);
            assert_eq!(p.receive(from(VM2), &ans), None);
            // vm2 then goes silent; its old answer is replayed every round.
            let mut t = t0 + PROBE_EVERY;
            for _ in 0..6 {
                p.probes(t, || 8);
                p.receive(from(VM2), &ans);
                t += PROBE_EVERY;
            }
            assert_eq!(ids(p.down(t)), ["n2"]);
        }

        /// A probe answered late (within PROBE_DOWN_AFTER) still counts, as of
        /// when it was sent; one older than that does not.
        #[test]
        fn late_answers_count_as_of_their_probe() {
            let t0 = Instant::now();
            let mut p = Prober::new(ME);
            p.set_nodes(&nodes(&[("n1", ME), ("n2", VM2)]), t0);
            let first = p.probes(t0, || 1);
            let ans = answer_of(&first, VM2);
            let mut t = t0;
            for i in 2..=6 {
                t += PROBE_EVERY;
                p.probes(t, || i);
            }
            // 500 ms after it was sent, the first probe is forgotten.
            assert_eq!(ids(p.down(t)), ["n2"]);
            assert_eq!(p.receive(from(VM2), &ans), None);
            assert_eq!(ids(p.down(t)), ["n2"]);
            // An answer to the probe sent 100 ms ago brings it back.
            let recent = probe_message(KIND_ANSWER, 5);
            p.receive(from(VM2), &recent);
            assert!(p.down(t).is_empty());
        }

        /// Datagrams from addresses that are not listed nodes leave no trace,
        /// and a node that leaves the list is forgotten.
        #[test]
        fn only_listed_nodes_are_remembered() {
            let t0 = Instant::now();
            let mut p = Prober::new(ME);
            p.set_nodes(&three(), t0);
            for i in 0..1000u32 {
                let spoofed = Ipv4Addr::from(0x0a00_0000 + i);
                let forged = probe_message(KIND_ANSWER, u64::from(i));
                assert_eq!(p.receive(from(spoofed), &forged), None);
            }
            assert_eq!(p.peers.len(), 2);
            p.set_nodes(&nodes(&[("n1", ME), ("n3", VM3)]), t0);
            assert_eq!(p.peers.keys().copied().collect::<Vec<_>>(), [VM3]);
            assert!(p.probes(t0, || 1).iter().all(|(a, _)| *a.ip() == VM3));
            // Itself it never probes nor counts down.
            assert!(p.down(t0 + Duration::from_secs(10)).contains("n3"));
            assert!(!p.down(t0 + Duration::from_secs(10)).contains("n1"));
        }

        /// Probes are answered (an older peer's nonce-less probe too, so it
        /// sees this node alive); garbage and short datagrams are not.
        #[test]
        fn probes_are_answered_and_garbage_ignored() {
            let mut p = Prober::new(ME);
            let probe = probe_message(KIND_PROBE, 42);
            assert_eq!(
                p.receive(from(VM2), &probe),
                Some(probe_message(KIND_ANSWER, 42).to_vec())
            );
            let mut old = PROBE_MAGIC.to_vec();
            old.push(OLD_KIND_PROBE);
            let mut old_answer = PROBE_MAGIC.to_vec();
            old_answer.push(OLD_KIND_ANSWER);
            assert_eq!(p.receive(from(VM2), &old), Some(old_answer));
            for junk in [&b""[..], b"SHOALPRB", b"SHOALPRX\x02aaaaaaaa", &[0xff; 64]] {
                assert_eq!(p.receive(from(VM2), junk), None);
            }
            let mut long = probe.to_vec();
            long.push(0);
            assert_eq!(p.receive(from(VM2), &long), None);
        }
    }
}
