//! `shoal debug ...`: looks inside a node's data plane. `debug lb [NODE]` prints
//! the load balancer's services, backends with their state and Maglev share,
//! counters, and connection-tracking counts.

use std::time::Duration;

use clap::Subcommand;
use serde_json::{json, Value};

use super::{call, unexpected, CliResult};
use crate::api::{ApiError, ApiReply, ApiRequest, LbReport};

#[derive(Subcommand, Debug)]
pub enum DebugCommand {
    /// Show a node's load balancer: services, backends (state, Maglev share,
    /// packets, bytes, flows) and connection tracking
    Lb {
        /// Print the report as JSON ('json') or through a Go template
        #[arg(short, long)]
        format: Option<String>,
        /// A node (ID, ID prefix or hostname); default: the node this CLI talks to
        node: Option<String>,
    },
}

const SERVICE_TABLE: &str = "{{.Service}}\t{{.Frontend}}\t{{.MaglevSize}}\t{{.Drops}}";
const SERVICE_HEADERS: &[(&str, &str)] = &[
    ("Service", "SERVICE"),
    ("Frontend", "FRONTEND"),
    ("MaglevSize", "MAGLEV SIZE"),
    ("Drops", "DROPS"),
];
const BACKEND_TABLE: &str = "{{.Service}}\t{{.Frontend}}\t{{.Task}}\t{{.TaskID}}\t{{.Node}}\t{{.Backend}}\t{{.State}}\t{{.Slots}}\t{{.Share}}\t{{.Packets}}\t{{.Bytes}}\t{{.NewFlows}}\t{{.ActiveFlows}}";
const BACKEND_HEADERS: &[(&str, &str)] = &[
    ("Service", "SERVICE"),
    ("Frontend", "FRONTEND"),
    ("Task", "TASK"),
    ("TaskID", "TASK ID"),
    ("Node", "NODE"),
    ("Backend", "BACKEND"),
    ("State", "STATE"),
    ("Slots", "SLOTS"),
    ("Share", "SHARE"),
    ("Packets", "PACKETS"),
    ("Bytes", "BYTES"),
    ("NewFlows", "NEW FLOWS"),
    ("ActiveFlows", "ACTIVE FLOWS"),
];

pub async fn run(host: &str, cmd: DebugCommand) -> CliResult {
    match cmd {
        DebugCommand::Lb { format, node } => {
            let report = match call(host, ApiRequest::LbReport { node }).await? {
                ApiReply::LbReport(r) => r,
                other => return Err(unexpected(other)),
            };
            let text = match format.as_deref() {
                None | Some("") | Some("table") => render_table(&report),
                Some("json") => {
                    serde_json::to_string(&report).map_err(|e| ApiError::plain(e.to_string()))?
                        + "\n"
                }
                Some(template) => {
                    let value = serde_json::to_value(&report)
                        .map_err(|e| ApiError::plain(e.to_string()))?;
                    shoal_format::render_template(template, &value)
                        .map_err(|e| ApiError::plain(e.to_string()))?
                        + "\n"
                }
            };
            print!("{text}");
            Ok(())
        }
    }
}

/// The overlay fast path's line of `debug lb`.
fn overlay_line(o: &crate::api::LbOverlay) -> String {
    if !o.enabled {
        return "fast path off (the kernel VXLAN device carries everything)".to_string();
    }
    format!(
        "fast path on, {} endpoints on {} networks; encapsulated {}, decapsulated {}, mesh requests {}, mesh replies {}, direct replies {}, local mesh {}, too large {} (ICMP) + {} (split); direct server return {}",
        o.endpoints, o.networks, o.encapsulated, o.decapsulated, o.mesh_encapsulated, o.mesh_replies, o.direct_replies, o.mesh_local, o.frag_needed, o.split,
        if o.direct_server_return { "on" } else { "off" }
    )
}

/// The node, conntrack and timeouts, then a table of services and one of
/// backends (services in the report's order, tasks in natural order).
fn render_table(r: &LbReport) -> String {
    let c = &r.conntrack;
    let t = &r.timeouts;
    let d = |ns: u64| humantime::format_duration(Duration::from_nanos(ns)).to_string();
    let mut out = format!(
        "Node:        {} ({})\n\
         Conntrack:   {} live flows (tcp syn {}, tcp established {}, tcp closing {}, udp {}), {} expired awaiting sweep\n\
         Timeouts:    tcp syn {}, tcp established {}, tcp closing {}, udp {}\n\
         Maglev size: {}\n\
         Overlay:     {}\n\n",
        r.hostname,
        r.node_id,
        c.live,
        c.tcp_syn,
        c.tcp_established,
        c.tcp_closing,
        c.udp,
        c.expired,
        d(t.tcp_syn),
        d(t.tcp_established),
        d(t.tcp_closing),
        d(t.udp),
        r.maglev_size,
        overlay_line(&r.overlay),
    );
    let services: Vec<Value> = r
        .services
        .iter()
        .map(|s| {
            json!({
                "Service": s.name,
                "Frontend": s.frontend,
                "MaglevSize": s.maglev_size.to_string(),
                "Drops": s.drops.to_string(),
            })
        })
        .collect();
    let mut backends: Vec<Value> = Vec::new();
    for s in &r.services {
        let mut sorted: Vec<_> = s.backends.iter().collect();
        sorted.sort_by(|a, b| super::node::natural_cmp(&a.task, &b.task));
        for b in sorted {
            backends.push(json!({
                "Service": s.name,
                "Frontend": s.frontend,
                "Task": b.task,
                "TaskID": shoal_format::truncate_id(&b.task_id),
                "Node": b.node,
                "Backend": b.addr,
                "State": b.state,
                "Slots": b.maglev_slots.to_string(),
                "Share": format!("{:.1}%", b.maglev_share * 100.0),
                "Packets": b.packets.to_string(),
                "Bytes": human_size(b.bytes),
                "NewFlows": b.new_flows.to_string(),
                "ActiveFlows": b.active_flows.to_string(),
            }));
        }
    }
    for (table, headers, rows) in [
        (SERVICE_TABLE, SERVICE_HEADERS, &services),
        (BACKEND_TABLE, BACKEND_HEADERS, &backends),
    ] {
        // Fixed templates over rows of strings: rendering cannot fail.
        out.push_str(&shoal_format::render_list(None, table, headers, rows).unwrap_or_default());
        if table == SERVICE_TABLE {
            out.push('\n');
        }
    }
    out
}

/// docker's `units.HumanSize`: decimal units, four significant digits (`1.234kB`).
fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 7] = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    let mut v = bytes as f64;
    let mut unit = 0;
    while v >= 1000.0 && unit < UNITS.len() - 1 {
        v /= 1000.0;
        unit += 1;
    }
    let decimals = if v >= 100.0 {
        1
    } else if v >= 10.0 {
        2
    } else {
        3
    };
    let mut text = format!("{v:.decimals$}");
    if text.contains('.') {
        text = text.trim_end_matches('0').trim_end_matches('.').to_string();
    }
    format!("{text}{}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{LbBackendReport, LbConntrack, LbServiceReport, LbTimeouts};

    #[test]
    fn sizes_read_like_dockers() {
        assert_eq!(human_size(0), "0B");
        assert_eq!(human_size(999), "999B");
        assert_eq!(human_size(1234), "1.234kB");
        assert_eq!(human_size(1_200_000), "1.2MB");
        assert_eq!(human_size(123_456_789), "123.5MB");
    }

    /// The table a user reads: node, flows by state, timeouts, then one row per
    /// service and one per backend (natural task order), columns aligned.
    #[test]
    fn table_shows_services_and_backends() {
        let backend = |task: &str, slots: u32| LbBackendReport {
            task: task.into(),
            task_id: format!("{task}xxxxxxxxxxxxxxxxxxxxx"),
            node: "vm2".into(),
            addr: "10.0.0.7:80".into(),
            state: "active".into(),
            maglev_slots: slots,
            maglev_share: f64::from(slots) / 16381.0,
            packets: 12,
            bytes: 1234,
            new_flows: 3,
            active_flows: 1,
        };
        let r = LbReport {
            node_id: "abc".into(),
            hostname: "vm1".into(),
            maglev_size: 16381,
            timeouts: LbTimeouts {
                tcp_syn: 60_000_000_000,
                tcp_established: 6 * 3600 * 1_000_000_000,
                tcp_closing: 10_000_000_000,
                udp: 300_000_000_000,
            },
            conntrack: LbConntrack {
                live: 3,
                tcp_syn: 0,
                tcp_established: 2,
                tcp_closing: 0,
                udp: 1,
                expired: 4,
            },
            services: vec![LbServiceReport {
                name: "web".into(),
                frontend: "*:8080/tcp".into(),
                maglev_size: 16381,
                drops: 0,
                backends: vec![backend("web.10", 8190), backend("web.9", 8191)],
            }],
            overlay: crate::api::LbOverlay {
                enabled: true,
                direct_server_return: false,
                encapsulated: 1,
                mesh_encapsulated: 2,
                decapsulated: 3,
                mesh_replies: 4,
                direct_replies: 7,
                mesh_local: 8,
                frag_needed: 9,
                split: 10,
                endpoints: 5,
                networks: 6,
            },
        };
        let text = render_table(&r);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "Node:        vm1 (abc)");
        assert_eq!(
            lines[1],
            "Conntrack:   3 live flows (tcp syn 0, tcp established 2, tcp closing 0, udp 1), 4 expired awaiting sweep"
        );
        assert_eq!(
            lines[2],
            "Timeouts:    tcp syn 1m, tcp established 6h, tcp closing 10s, udp 5m"
        );
        assert_eq!(
            lines[4],
            "Overlay:     fast path on, 5 endpoints on 6 networks; encapsulated 1, decapsulated 3, mesh requests 2, mesh replies 4, direct replies 7, local mesh 8, too large 9 (ICMP) + 10 (split); direct server return off"
        );
        assert_eq!(lines[6], "SERVICE   FRONTEND     MAGLEV SIZE   DROPS");
        assert_eq!(lines[7], "web       *:8080/tcp   16381         0");
        assert_eq!(
            lines[9],
            "SERVICE   FRONTEND     TASK      TASK ID        NODE      BACKEND       STATE     SLOTS     SHARE     PACKETS   BYTES     NEW FLOWS   ACTIVE FLOWS"
        );
        assert_eq!(
            lines[10],
            "web       *:8080/tcp   web.9     web.9xxxxxxx   vm2       10.0.0.7:80   active    8191      50.0%     12        1.234kB   3           1",
            "natural task order"
        );
        assert!(lines[11].contains("web.10"), "{text}");
    }
}
