//! Prometheus metrics: Raft progress, nodes by status and role, API requests and latency,
//! and the node's load balancer per service and backend.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use prometheus::{
    Encoder, GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

use crate::api::LbReport;
use crate::daemon::Daemon;

/// Labels of a load-balancer backend's series.
const BACKEND_LABELS: &[&str] = &["service", "frontend", "task", "task_id", "node", "backend"];
/// Labels of a load-balancer service's series.
const SERVICE_LABELS: &[&str] = &["service", "frontend"];
const BACKEND_STATES: [&str; 3] = ["active", "terminating", "down"];

pub struct Metrics {
    registry: Registry,
    raft_term: IntGauge,
    raft_is_leader: IntGauge,
    raft_leader_id: GaugeVec,
    raft_last_log_index: IntGauge,
    raft_applied_index: IntGauge,
    raft_voters: IntGauge,
    nodes: IntGaugeVec,
    api_requests: IntCounterVec,
    api_latency: HistogramVec,
    lb: LbMetrics,
    /// One render at a time: the load balancer's series are rebuilt from zero.
    render_lock: Mutex<()>,
}

/// The load balancer's series, rebuilt from its report at every render, so
/// services and backends that left vanish. The kernel's counters are the
/// source: they restart from zero for a new backend (a new task_id) or when
/// shoald restarts, which Prometheus treats as counter resets.
struct LbMetrics {
    packets: IntCounterVec,
    bytes: IntCounterVec,
    new_flows: IntCounterVec,
    active_flows: IntGaugeVec,
    state: IntGaugeVec,
    maglev_slots: IntGaugeVec,
    maglev_share: GaugeVec,
    drops: IntCounterVec,
    maglev_size: IntGaugeVec,
    conntrack: IntGaugeVec,
    overlay_packets: IntCounterVec,
    overlay_entries: IntGaugeVec,
}

impl LbMetrics {
    fn new() -> Self {
        let opts = Opts::new;
        let with_state: Vec<&str> = BACKEND_LABELS.iter().copied().chain(["state"]).collect();
        let ok = "valid metric";
        LbMetrics {
            packets: IntCounterVec::new(
                opts(
                    "shoal_lb_backend_packets_total",
                    "Packets this node's load balancer sent to a backend (client to backend).",
                ),
                BACKEND_LABELS,
            )
            .expect(ok),
            bytes: IntCounterVec::new(
                opts(
                    "shoal_lb_backend_bytes_total",
                    "Bytes this node's load balancer sent to a backend (client to backend).",
                ),
                BACKEND_LABELS,
            )
            .expect(ok),
            new_flows: IntCounterVec::new(
                opts(
                    "shoal_lb_backend_new_flows_total",
                    "New flows (TCP connections, UDP flows) this node's load balancer gave a backend.",
                ),
                BACKEND_LABELS,
            )
            .expect(ok),
            active_flows: IntGaugeVec::new(
                opts(
                    "shoal_lb_backend_active_flows",
                    "Flows of a backend in this node's connection tracking, not idle past their timeout.",
                ),
                BACKEND_LABELS,
            )
            .expect(ok),
            state: IntGaugeVec::new(
                opts(
                    "shoal_lb_backend_state",
                    "1 for the backend's state (active, terminating, down), 0 for the others.",
                ),
                &with_state,
            )
            .expect(ok),
            maglev_slots: IntGaugeVec::new(
                opts(
                    "shoal_lb_backend_maglev_slots",
                    "Slots of the service's Maglev table that a backend owns.",
                ),
                BACKEND_LABELS,
            )
            .expect(ok),
            maglev_share: GaugeVec::new(
                opts(
                    "shoal_lb_backend_maglev_share",
                    "Fraction of the service's Maglev table (of its new flows) a backend gets.",
                ),
                BACKEND_LABELS,
            )
            .expect(ok),
            drops: IntCounterVec::new(
                opts(
                    "shoal_lb_service_drops_total",
                    "Packets to a service this node dropped for want of a backend.",
                ),
                SERVICE_LABELS,
            )
            .expect(ok),
            maglev_size: IntGaugeVec::new(
                opts(
                    "shoal_lb_service_maglev_size",
                    "Size of the service's Maglev table (0 while it has no active backend).",
                ),
                SERVICE_LABELS,
            )
            .expect(ok),
            conntrack: IntGaugeVec::new(
                opts(
                    "shoal_lb_conntrack_entries",
                    "This node's connection-tracking entries: live ones by state, and expired ones awaiting the sweep.",
                ),
                &["state"],
            )
            .expect(ok),
            overlay_packets: IntCounterVec::new(
                opts(
                    "shoal_overlay_fastpath_packets_total",
                    "Packets the overlay's eBPF fast path carried on this node, by what it did: encapsulated (a local task's frame to another node), mesh_encapsulated (a mesh request to a backend's node), decapsulated (into a local task), mesh_reply (a mesh reply on to its client), direct_reply (a local task's mesh reply straight to its client: direct server return), mesh_local (a mesh packet between this node and its own task, either way), frag_needed (a mesh request too large for the underlay once encapsulated, answered with an ICMP \"fragmentation needed\"), split (a mesh request fragment too large for it, sent as two).",
                ),
                &["path"],
            )
            .expect(ok),
            overlay_entries: IntGaugeVec::new(
                opts(
                    "shoal_overlay_fastpath_entries",
                    "What the overlay's fast path knows: endpoints (tasks' addresses) and networks; absent when it is off.",
                ),
                &["kind"],
            )
            .expect(ok),
        }
    }

    fn collectors(&self) -> Vec<Box<dyn prometheus::core::Collector>> {
        vec![
            Box::new(self.packets.clone()),
            Box::new(self.bytes.clone()),
            Box::new(self.new_flows.clone()),
            Box::new(self.active_flows.clone()),
            Box::new(self.state.clone()),
            Box::new(self.maglev_slots.clone()),
            Box::new(self.maglev_share.clone()),
            Box::new(self.drops.clone()),
            Box::new(self.maglev_size.clone()),
            Box::new(self.conntrack.clone()),
            Box::new(self.overlay_packets.clone()),
            Box::new(self.overlay_entries.clone()),
        ]
    }

    fn reset(&self) {
        self.packets.reset();
        self.bytes.reset();
        self.new_flows.reset();
        self.active_flows.reset();
        self.state.reset();
        self.maglev_slots.reset();
        self.maglev_share.reset();
        self.drops.reset();
        self.maglev_size.reset();
        self.conntrack.reset();
        self.overlay_packets.reset();
        self.overlay_entries.reset();
    }

    fn fill(&self, report: &LbReport) {
        let gauge = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        let c = &report.conntrack;
        for (state, n) in [
            ("tcp_syn", c.tcp_syn),
            ("tcp_established", c.tcp_established),
            ("tcp_closing", c.tcp_closing),
            ("udp", c.udp),
            ("expired", c.expired),
        ] {
            self.conntrack.with_label_values(&[state]).set(gauge(n));
        }
        let o = &report.overlay;
        if o.enabled {
            for (path, n) in [
                ("encapsulated", o.encapsulated),
                ("mesh_encapsulated", o.mesh_encapsulated),
                ("decapsulated", o.decapsulated),
                ("mesh_reply", o.mesh_replies),
                ("direct_reply", o.direct_replies),
                ("mesh_local", o.mesh_local),
                ("frag_needed", o.frag_needed),
                ("split", o.split),
            ] {
                self.overlay_packets.with_label_values(&[path]).inc_by(n);
            }
            for (kind, n) in [("endpoints", o.endpoints), ("networks", o.networks)] {
                self.overlay_entries
                    .with_label_values(&[kind])
                    .set(gauge(n));
            }
        }
        for s in &report.services {
            let svc = [s.name.as_str(), s.frontend.as_str()];
            self.drops.with_label_values(&svc).inc_by(s.drops);
            self.maglev_size
                .with_label_values(&svc)
                .set(i64::from(s.maglev_size));
            for b in &s.backends {
                let labels = [
                    s.name.as_str(),
                    s.frontend.as_str(),
                    b.task.as_str(),
                    b.task_id.as_str(),
                    b.node.as_str(),
                    b.addr.as_str(),
                ];
                self.packets.with_label_values(&labels).inc_by(b.packets);
                self.bytes.with_label_values(&labels).inc_by(b.bytes);
                self.new_flows
                    .with_label_values(&labels)
                    .inc_by(b.new_flows);
                self.active_flows
                    .with_label_values(&labels)
                    .set(gauge(b.active_flows));
                self.maglev_slots
                    .with_label_values(&labels)
                    .set(i64::from(b.maglev_slots));
                self.maglev_share
                    .with_label_values(&labels)
                    .set(b.maglev_share);
                for state in BACKEND_STATES {
                    let mut with_state = labels.to_vec();
                    with_state.push(state);
                    self.state
                        .with_label_values(&with_state)
                        .set(i64::from(b.state == state));
                }
            }
        }
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let g = |name: &str, help: &str| {
            IntGauge::with_opts(Opts::new(name, help)).expect("valid metric")
        };
        let m = Metrics {
            raft_term: g("shoal_raft_term", "Current Raft term seen by this manager."),
            raft_is_leader: g(
                "shoal_raft_is_leader",
                "1 if this manager is the Raft leader.",
            ),
            raft_leader_id: GaugeVec::new(
                Opts::new(
                    "shoal_raft_leader",
                    "1 for the node ID this manager follows as leader.",
                ),
                &["node_id"],
            )
            .expect("valid metric"),
            raft_last_log_index: g(
                "shoal_raft_last_log_index",
                "Index of the last entry in this manager's Raft log.",
            ),
            raft_applied_index: g(
                "shoal_raft_applied_index",
                "Index of the last Raft entry applied to the state machine.",
            ),
            raft_voters: g(
                "shoal_raft_voters",
                "Number of voting managers in the Raft configuration.",
            ),
            nodes: IntGaugeVec::new(
                Opts::new("shoal_nodes", "Nodes in the swarm by status and role."),
                &["state", "role"],
            )
            .expect("valid metric"),
            api_requests: IntCounterVec::new(
                Opts::new(
                    "shoal_api_requests_total",
                    "API requests served on the local socket.",
                ),
                &["request", "result"],
            )
            .expect("valid metric"),
            api_latency: HistogramVec::new(
                HistogramOpts::new(
                    "shoal_api_request_duration_seconds",
                    "Latency of API requests on the local socket.",
                )
                .buckets(vec![
                    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                ]),
                &["request"],
            )
            .expect("valid metric"),
            lb: LbMetrics::new(),
            render_lock: Mutex::new(()),
            registry,
        };
        let r = &m.registry;
        for c in [
            Box::new(m.raft_term.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(m.raft_is_leader.clone()),
            Box::new(m.raft_leader_id.clone()),
            Box::new(m.raft_last_log_index.clone()),
            Box::new(m.raft_applied_index.clone()),
            Box::new(m.raft_voters.clone()),
            Box::new(m.nodes.clone()),
            Box::new(m.api_requests.clone()),
            Box::new(m.api_latency.clone()),
        ]
        .into_iter()
        .chain(m.lb.collectors())
        {
            r.register(c).expect("metric registered once");
        }
        m
    }

    pub fn observe_api(&self, request: &str, ok: bool, took: Duration) {
        self.api_requests
            .with_label_values(&[request, if ok { "ok" } else { "error" }])
            .inc();
        self.api_latency
            .with_label_values(&[request])
            .observe(took.as_secs_f64());
    }

    /// Refresh the gauges from the daemon's current view and the load
    /// balancer's report (None: no load balancer here), then encode everything.
    pub fn render(&self, daemon: &Daemon, lb: Option<&LbReport>) -> String {
        let _one_at_a_time = self.render_lock.lock().unwrap_or_else(|p| p.into_inner());
        self.refresh_lb(lb);
        self.raft_leader_id.reset();
        self.nodes.reset();
        if let Some(mgr) = daemon.manager() {
            let m = mgr.raft.metrics().borrow().clone();
            self.raft_term.set(m.current_term as i64);
            self.raft_is_leader.set(i64::from(mgr.is_leader()));
            self.raft_last_log_index
                .set(m.last_log_index.unwrap_or(0) as i64);
            self.raft_applied_index
                .set(m.last_applied.map(|l| l.index).unwrap_or(0) as i64);
            self.raft_voters
                .set(m.membership_config.membership().voter_ids().count() as i64);
            let state = mgr.sm.state();
            if let Some(leader) = m.current_leader.and_then(|id| state.node_by_raft_id(id)) {
                self.raft_leader_id
                    .with_label_values(&[&leader.id])
                    .set(1.0);
            }
            for ((st, role), n) in state.node_counts() {
                self.nodes.with_label_values(&[st, role]).set(n as i64);
            }
        }
        self.encode()
    }

    fn refresh_lb(&self, lb: Option<&LbReport>) {
        self.lb.reset();
        if let Some(report) = lb {
            self.lb.fill(report);
        }
    }

    fn encode(&self) -> String {
        let mut buf = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }
}

/// Serve `/metrics` over HTTP on `addr`.
pub async fn serve(daemon: Arc<Daemon>, addr: SocketAddr) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let daemon = daemon.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req: Request<hyper::body::Incoming>| {
                    let daemon = daemon.clone();
                    async move {
                        let resp = if req.uri().path() == "/metrics" {
                            // No load balancer (not in a swarm, or it failed to load): no series.
                            let lb = daemon.lb_report().await.ok();
                            let text = daemon.metrics.render(&daemon, lb.as_deref());
                            Response::builder()
                                .header("Content-Type", "text/plain; version=0.0.4")
                                .body(Full::new(Bytes::from(text)))
                        } else {
                            Response::builder()
                                .status(StatusCode::NOT_FOUND)
                                .body(Full::new(Bytes::from("not found\n")))
                        };
                        resp.map_err(std::io::Error::other)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{LbBackendReport, LbConntrack, LbOverlay, LbServiceReport, LbTimeouts};

    fn report(backends: Vec<LbBackendReport>) -> LbReport {
        LbReport {
            node_id: "n1".into(),
            hostname: "vm1".into(),
            maglev_size: 7,
            timeouts: LbTimeouts {
                tcp_syn: 1,
                tcp_established: 2,
                tcp_closing: 3,
                udp: 4,
            },
            conntrack: LbConntrack {
                live: 3,
                tcp_syn: 0,
                tcp_established: 2,
                tcp_closing: 0,
                udp: 1,
                expired: 5,
            },
            services: vec![LbServiceReport {
                name: "web".into(),
                frontend: "*:8080/tcp".into(),
                maglev_size: 7,
                drops: 9,
                backends,
            }],
            overlay: LbOverlay {
                enabled: true,
                direct_server_return: false,
                encapsulated: 11,
                mesh_encapsulated: 12,
                decapsulated: 13,
                mesh_replies: 14,
                direct_replies: 15,
                mesh_local: 16,
                frag_needed: 17,
                split: 18,
                endpoints: 5,
                networks: 2,
            },
        }
    }

    fn backend(task: &str, state: &str, slots: u32) -> LbBackendReport {
        LbBackendReport {
            task: task.into(),
            task_id: format!("{task}-id"),
            node: "vm2".into(),
            addr: "10.0.0.7:80".into(),
            state: state.into(),
            maglev_slots: slots,
            maglev_share: f64::from(slots) / 7.0,
            packets: 40,
            bytes: 4000,
            new_flows: 4,
            active_flows: 2,
        }
    }

    /// Every render shows the report as it is now: counters carry the kernel's
    /// totals (not sums of renders), a backend that left has no series, and
    /// without a load balancer there are no load-balancer series at all.
    #[test]
    fn load_balancer_series_follow_the_latest_report() {
        let m = Metrics::new();
        let two = report(vec![
            backend("web.1", "active", 4),
            backend("web.2", "terminating", 0),
        ]);
        m.refresh_lb(Some(&two));
        m.refresh_lb(Some(&two));
        let text = m.encode();
        let l = r#"backend="10.0.0.7:80",frontend="*:8080/tcp",node="vm2",service="web",task="web.1",task_id="web.1-id""#;
        for line in [
            format!("shoal_lb_backend_packets_total{{{l}}} 40"),
            format!("shoal_lb_backend_bytes_total{{{l}}} 4000"),
            format!("shoal_lb_backend_new_flows_total{{{l}}} 4"),
            format!("shoal_lb_backend_active_flows{{{l}}} 2"),
            format!("shoal_lb_backend_maglev_slots{{{l}}} 4"),
            r#"shoal_lb_backend_state{backend="10.0.0.7:80",frontend="*:8080/tcp",node="vm2",service="web",state="active",task="web.1",task_id="web.1-id"} 1"#.into(),
            r#"shoal_lb_backend_state{backend="10.0.0.7:80",frontend="*:8080/tcp",node="vm2",service="web",state="down",task="web.1",task_id="web.1-id"} 0"#.into(),
            "shoal_lb_service_drops_total{frontend=\"*:8080/tcp\",service=\"web\"} 9".into(),
            "shoal_lb_service_maglev_size{frontend=\"*:8080/tcp\",service=\"web\"} 7".into(),
            "shoal_lb_conntrack_entries{state=\"tcp_established\"} 2".into(),
            "shoal_lb_conntrack_entries{state=\"expired\"} 5".into(),
            "shoal_overlay_fastpath_packets_total{path=\"encapsulated\"} 11".into(),
            "shoal_overlay_fastpath_packets_total{path=\"mesh_reply\"} 14".into(),
            "shoal_overlay_fastpath_packets_total{path=\"split\"} 18".into(),
            "shoal_overlay_fastpath_entries{kind=\"endpoints\"} 5".into(),
            "# TYPE shoal_lb_backend_packets_total counter".into(),
            "# TYPE shoal_lb_backend_active_flows gauge".into(),
        ] {
            assert!(text.contains(&line), "missing {line} in:\n{text}");
        }
        assert!(text.contains(r#"task="web.2""#), "{text}");

        m.refresh_lb(Some(&report(vec![backend("web.1", "active", 7)])));
        let text = m.encode();
        assert!(!text.contains(r#"task="web.2""#), "web.2 left: {text}");
        assert!(text.contains(&format!("shoal_lb_backend_maglev_slots{{{l}}} 7")));

        let mut off = report(vec![]);
        off.overlay.enabled = false;
        m.refresh_lb(Some(&off));
        assert!(!m.encode().contains("shoal_overlay_"), "{}", m.encode());

        m.refresh_lb(None);
        assert!(!m.encode().contains("shoal_lb_"), "{}", m.encode());
        assert!(!m.encode().contains("shoal_overlay_"), "{}", m.encode());
    }
}
