//! Prometheus metrics: Raft progress, nodes by status and role, API requests and latency.

use std::net::SocketAddr;
use std::sync::Arc;
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

use crate::daemon::Daemon;

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
        ] {
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

    /// Refresh the gauges from the daemon's current view, then encode everything.
    pub fn render(&self, daemon: &Daemon) -> String {
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
                            Response::builder()
                                .header("Content-Type", "text/plain; version=0.0.4")
                                .body(Full::new(Bytes::from(daemon.metrics.render(&daemon))))
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
