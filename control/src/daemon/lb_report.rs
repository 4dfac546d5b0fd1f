//! What the node's load balancer reports, for `/metrics` and `shoal debug lb`:
//! read from the eBPF maps at most once a second (the read walks the conntrack
//! map, and holds the load balancer while it does), with the task and node
//! names of the agent's last view, and served here or fetched from another node.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use shoal_dataplane::lb::{BackendState, LoadBalancer, Report};

use super::{lock, Daemon};
use crate::api::{
    msg, ApiError, ApiReply, ApiRequest, ApiResult, LbBackendReport, LbConntrack, LbOverlay,
    LbReport, LbServiceReport, LbTimeouts,
};
use crate::peer::{LbView, NetView, PeerClient, PeerRequest, PeerResponse};

/// How long a report is reused: scrapes and `debug lb` polls in a burst read
/// the maps once.
const REPORT_TTL: Duration = Duration::from_secs(1);
/// How long another node gets to answer `debug lb NODE`.
const PEER_TIMEOUT: Duration = Duration::from_secs(10);

/// The load balancer and the agent's last load-balancer inputs (for names), as
/// the agent's worker set them up.
#[derive(Clone)]
struct Source {
    lb: Arc<Mutex<LoadBalancer>>,
    inputs: Arc<Mutex<(LbView, Vec<NetView>)>>,
}

/// Where the node's load balancer stands.
#[derive(Clone, Default)]
enum Stage {
    /// Not loaded yet (the worker loads it as the node enters a swarm).
    #[default]
    Starting,
    Running(Source),
    /// Loading failed, or the node has no underlay interface (logged).
    Unavailable,
}

/// The daemon's handle on its load balancer's report.
#[derive(Default)]
pub(crate) struct LbStatus {
    stage: Mutex<Stage>,
    /// The last report and when it was read; an async lock, held while a
    /// report is read, so concurrent callers wait for that one.
    cache: tokio::sync::Mutex<Option<(Instant, Arc<LbReport>)>>,
}

impl LbStatus {
    /// The worker loaded the node's load balancer.
    pub(crate) fn attach(
        &self,
        lb: Arc<Mutex<LoadBalancer>>,
        inputs: Arc<Mutex<(LbView, Vec<NetView>)>>,
    ) {
        *lock(&self.stage) = Stage::Running(Source { lb, inputs });
    }

    /// The worker could not load it (it logged why).
    pub(crate) fn unavailable(&self) {
        *lock(&self.stage) = Stage::Unavailable;
    }

    /// The node left the swarm (or its worker stopped): the next worker loads it again.
    pub(crate) fn detach(&self) {
        *lock(&self.stage) = Stage::Starting;
        if let Ok(mut cache) = self.cache.try_lock() {
            *cache = None;
        }
    }
}

impl Daemon {
    /// This node's load balancer report, at most [`REPORT_TTL`] old.
    pub(crate) async fn lb_report(&self) -> Result<Arc<LbReport>, ApiError> {
        let mut cache = self.lb_status.cache.lock().await;
        let stage = lock(&self.lb_status.stage).clone();
        let usable = match (self.membership(), stage) {
            (Some(_), Stage::Running(source)) => Ok(source),
            (None, _) => Err(msg::NOT_IN_SWARM),
            (Some(_), Stage::Starting) => {
                Err("the load balancer of this node is starting; try again in a moment")
            }
            (Some(_), Stage::Unavailable) => {
                Err("the load balancer is not running on this node (see shoald's log)")
            }
        };
        let source = match usable {
            Ok(source) => source,
            Err(why) => {
                *cache = None;
                return Err(ApiError::daemon(why));
            }
        };
        if let Some((at, report)) = cache.as_ref() {
            if at.elapsed() < REPORT_TTL {
                return Ok(report.clone());
            }
        }
        let m = self.membership();
        let node_id = m.map(|m| m.node_id).unwrap_or_default();
        let hostname = self.cfg.hostname.clone();
        let lb_cfg = self.cfg.lb.clone();
        // Off the runtime: the conntrack walk is one syscall pair per entry.
        let read = tokio::task::spawn_blocking(move || {
            let started = Instant::now();
            let (raw, fast) = {
                let lb = lock(&source.lb);
                (lb.report(), lb.fast_path_report())
            };
            let took = started.elapsed();
            let view = lock(&source.inputs).0.clone();
            tracing::debug!(?took, flows = raw.conntrack.live(), "load balancer report");
            LbReport {
                node_id,
                hostname,
                maglev_size: lb_cfg.maglev_size,
                timeouts: LbTimeouts {
                    tcp_syn: nanos(lb_cfg.timeouts.tcp_syn),
                    tcp_established: nanos(lb_cfg.timeouts.tcp_established),
                    tcp_closing: nanos(lb_cfg.timeouts.tcp_closing),
                    udp: nanos(lb_cfg.timeouts.udp),
                },
                conntrack: conntrack(&raw),
                services: services_named(&raw, &view),
                overlay: LbOverlay {
                    enabled: fast.enabled,
                    direct_server_return: lb_cfg.dsr,
                    encapsulated: fast.tx,
                    mesh_encapsulated: fast.tx_mesh,
                    decapsulated: fast.rx,
                    mesh_replies: fast.rx_reply,
                    direct_replies: fast.tx_dsr,
                    mesh_local: fast.local,
                    frag_needed: fast.frag_needed,
                    split: fast.split,
                    endpoints: fast.endpoints as u64,
                    networks: fast.networks as u64,
                },
            }
        })
        .await
        .map_err(|e| ApiError::daemon(format!("reading the load balancer: {e}")))?;
        let report = Arc::new(read);
        *cache = Some((Instant::now(), report.clone()));
        Ok(report)
    }

    /// `shoal debug lb [NODE]`: here, or on NODE (found through the managers,
    /// then asked directly, as `exec` reaches a task's node).
    pub(crate) async fn serve_lb_report(self: &Arc<Self>, node: Option<String>) -> ApiResult {
        let Some(m) = self.membership() else {
            return Err(ApiError::daemon(msg::NOT_IN_SWARM));
        };
        let Some(reference) = node.filter(|n| n != "self") else {
            return Ok(ApiReply::LbReport((*self.lb_report().await?).clone()));
        };
        let located =
            Box::pin(self.manager_request(ApiRequest::NodeLocation { reference })).await?;
        let ApiReply::NodeLocation {
            node_id,
            listen_addr,
        } = located
        else {
            return Err(ApiError::daemon(format!("unexpected reply {located:?}")));
        };
        if node_id == m.node_id {
            return Ok(ApiReply::LbReport((*self.lb_report().await?).clone()));
        }
        let mut peer = PeerClient::to_node(listen_addr.clone(), &node_id, self.tls.clone());
        match peer.call(&PeerRequest::LbReport, PEER_TIMEOUT).await {
            Ok(PeerResponse::LbReport(Ok(report))) => Ok(ApiReply::LbReport(report)),
            Ok(PeerResponse::LbReport(Err(e))) | Ok(PeerResponse::Error(e)) => {
                Err(ApiError::daemon(e))
            }
            Ok(other) => Err(ApiError::daemon(format!(
                "unexpected reply from node {node_id}: {other:?}"
            ))),
            Err(e) => Err(ApiError::daemon(format!(
                "reaching node {node_id} at {listen_addr}: {e}"
            ))),
        }
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

fn conntrack(raw: &Report) -> LbConntrack {
    let c = raw.conntrack;
    LbConntrack {
        live: c.live(),
        tcp_syn: c.tcp_syn,
        tcp_established: c.tcp_established,
        tcp_closing: c.tcp_closing,
        udp: c.udp,
        expired: c.expired,
    }
}

/// The services with names for people: task names and node hostnames from the
/// agent's view (IDs where the view has none, e.g. a task that just left).
fn services_named(raw: &Report, view: &LbView) -> Vec<LbServiceReport> {
    raw.services
        .iter()
        .map(|s| LbServiceReport {
            name: s.name.clone(),
            frontend: s.frontend.to_string(),
            maglev_size: s.maglev_size,
            drops: s.drops,
            backends: s
                .backends
                .iter()
                .map(|b| {
                    let known = view
                        .services
                        .iter()
                        .flat_map(|vs| vs.backends.iter())
                        .find(|vb| vb.task_id == b.name);
                    let node = known.map(|vb| {
                        view.nodes
                            .iter()
                            .find(|n| n.id == vb.node_id && !n.hostname.is_empty())
                            .map_or_else(|| vb.node_id.clone(), |n| n.hostname.clone())
                    });
                    LbBackendReport {
                        task: known
                            .map(|vb| vb.name.clone())
                            .filter(|n| !n.is_empty())
                            .unwrap_or_else(|| b.name.clone()),
                        task_id: b.name.clone(),
                        node: node.unwrap_or_default(),
                        addr: if b.port == 0 {
                            format!("{}:*", b.addr)
                        } else {
                            format!("{}:{}", b.addr, b.port)
                        },
                        state: match b.state {
                            BackendState::Active => "active",
                            BackendState::Terminating => "terminating",
                            BackendState::Down => "down",
                        }
                        .to_string(),
                        maglev_slots: b.maglev_slots,
                        maglev_share: if s.maglev_size == 0 {
                            0.0
                        } else {
                            f64::from(b.maglev_slots) / f64::from(s.maglev_size)
                        },
                        packets: b.packets,
                        bytes: b.bytes,
                        new_flows: b.new_flows,
                        active_flows: b.active_flows,
                    }
                })
                .collect(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use shoal_dataplane::lb::{BackendReport, ConntrackReport, Frontend, Proto, ServiceReport};

    use super::*;
    use crate::peer::{LbBackend, LbNode, LbService};

    fn backend(name: &str, port: u16, state: BackendState, slots: u32) -> BackendReport {
        BackendReport {
            name: name.into(),
            addr: Ipv4Addr::new(10, 0, 0, 7),
            port,
            state,
            maglev_slots: slots,
            packets: 3,
            bytes: 180,
            new_flows: 1,
            active_flows: 1,
        }
    }

    /// Task and node names come from the view; a backend the view no longer
    /// lists keeps its ID; VIP backends show any port; shares are of the table.
    #[test]
    fn reports_name_tasks_and_nodes_and_compute_shares() {
        let raw = Report {
            services: vec![
                ServiceReport {
                    name: "web".into(),
                    frontend: Frontend::NodePort {
                        proto: Proto::Tcp,
                        port: 8080,
                    },
                    maglev_size: 7,
                    drops: 2,
                    backends: vec![
                        backend("t1", 80, BackendState::Active, 7),
                        backend("gone", 80, BackendState::Terminating, 0),
                    ],
                },
                ServiceReport {
                    name: "web".into(),
                    frontend: Frontend::Vip(Ipv4Addr::new(10, 0, 1, 2)),
                    maglev_size: 0,
                    drops: 0,
                    backends: vec![backend("t1", 0, BackendState::Down, 0)],
                },
            ],
            conntrack: ConntrackReport {
                tcp_syn: 1,
                tcp_established: 2,
                tcp_closing: 0,
                udp: 3,
                expired: 4,
            },
        };
        let view = LbView {
            services: vec![LbService {
                id: "s".into(),
                name: "web".into(),
                ports: Vec::new(),
                vips: Vec::new(),
                backends: vec![LbBackend {
                    task_id: "t1".into(),
                    name: "web.1".into(),
                    node_id: "n2".into(),
                    addrs: Vec::new(),
                    terminating: false,
                    host_ports: Vec::new(),
                }],
            }],
            nodes: vec![LbNode {
                id: "n2".into(),
                addr: "10.77.0.12".into(),
                hostname: "vm2".into(),
            }],
            node: "n2".into(),
            data_path_port: None,
        };
        let c = conntrack(&raw);
        assert_eq!((c.live, c.udp, c.expired), (6, 3, 4));
        let services = services_named(&raw, &view);
        let mesh = &services[0];
        assert_eq!(mesh.frontend, "*:8080/tcp");
        assert_eq!(mesh.drops, 2);
        let b = &mesh.backends[0];
        assert_eq!(
            (
                b.task.as_str(),
                b.node.as_str(),
                b.addr.as_str(),
                b.state.as_str()
            ),
            ("web.1", "vm2", "10.0.0.7:80", "active")
        );
        assert_eq!(b.maglev_share, 1.0);
        let gone = &mesh.backends[1];
        assert_eq!(
            (gone.task.as_str(), gone.node.as_str(), gone.state.as_str()),
            ("gone", "", "terminating")
        );
        assert_eq!(gone.maglev_share, 0.0);
        let vip = &services[1];
        assert_eq!(vip.frontend, "10.0.1.2:*");
        assert_eq!(vip.backends[0].addr, "10.0.0.7:*");
        assert_eq!(vip.backends[0].state, "down");
        assert_eq!(vip.backends[0].maglev_share, 0.0);
    }
}
