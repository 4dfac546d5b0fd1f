//! `shoal node ...`: ls, inspect, update, promote, demote, rm.

use std::cmp::Ordering;

use clap::{Args, Subcommand};
use serde_json::{json, Value};

use super::{call, unexpected, CliResult};
use crate::api::{ApiError, ApiReply, ApiRequest, NodeUpdate};
use crate::types::{Availability, Role};

#[derive(Subcommand, Debug)]
pub enum NodeCommand {
    /// List nodes in the swarm
    #[command(alias = "list")]
    Ls {
        /// Only display IDs
        #[arg(short, long)]
        quiet: bool,
        /// Format output using a custom template
        #[arg(long)]
        format: Option<String>,
    },
    /// Display detailed information on one or more nodes
    Inspect {
        /// Print the information in a human friendly format
        #[arg(long)]
        pretty: bool,
        /// Format output using a custom template
        #[arg(short, long)]
        format: Option<String>,
        #[arg(required = true)]
        nodes: Vec<String>,
    },
    /// Update a node
    Update(UpdateArgs),
    /// Promote one or more nodes to manager in the swarm
    Promote {
        #[arg(required = true)]
        nodes: Vec<String>,
    },
    /// Demote one or more nodes from manager in the swarm
    Demote {
        #[arg(required = true)]
        nodes: Vec<String>,
    },
    /// List tasks running on one or more nodes, defaults to current node
    Ps {
        #[arg(long)]
        no_trunc: bool,
        #[arg(short, long)]
        quiet: bool,
        #[arg(short, long)]
        filter: Vec<String>,
        #[arg(long)]
        format: Option<String>,
        nodes: Vec<String>,
    },
    /// Remove one or more nodes from the swarm
    #[command(alias = "remove")]
    Rm {
        /// Force remove a node from the swarm
        #[arg(short, long)]
        force: bool,
        #[arg(required = true)]
        nodes: Vec<String>,
    },
}

#[derive(Args, Debug)]
pub struct UpdateArgs {
    /// Add or update a node label (key=value)
    #[arg(long)]
    label_add: Vec<String>,
    /// Remove a node label if exists
    #[arg(long)]
    label_rm: Vec<String>,
    /// Availability of the node ("active", "pause", "drain")
    #[arg(long)]
    availability: Option<Availability>,
    /// Role of the node ("worker", "manager")
    #[arg(long, value_parser = parse_role)]
    role: Option<Role>,
    node: String,
}

fn parse_role(s: &str) -> Result<Role, String> {
    match s {
        "worker" => Ok(Role::Worker),
        "manager" => Ok(Role::Manager),
        _ => Err(format!(
            "invalid role {s}, only worker and manager are supported"
        )),
    }
}

const NODE_TABLE: &str = "{{.ID}} {{if .Self}}*{{else}} {{ end }}\t{{.Hostname}}\t{{.Status}}\t{{.Availability}}\t{{.ManagerStatus}}\t{{.EngineVersion}}";
const NODE_HEADERS: &[(&str, &str)] = &[
    ("ID", "ID"),
    ("Self", ""),
    ("Hostname", "HOSTNAME"),
    ("Status", "STATUS"),
    ("Availability", "AVAILABILITY"),
    ("ManagerStatus", "MANAGER STATUS"),
    ("EngineVersion", "ENGINE VERSION"),
    ("TLSStatus", "TLS STATUS"),
];

fn s<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    let mut cur = v;
    for p in path {
        cur = &cur[*p];
    }
    cur.as_str().unwrap_or("")
}

/// A `node ls` row: the placeholders docker's node formatter offers.
fn node_row(node: &Value, self_id: Option<&str>) -> Value {
    let manager_status = if node.get("ManagerStatus").is_some() {
        if node["ManagerStatus"]["Leader"].as_bool() == Some(true) {
            "Leader".to_string()
        } else {
            shoal_format::pretty_print(s(node, &["ManagerStatus", "Reachability"]))
        }
    } else {
        String::new()
    };
    json!({
        "ID": s(node, &["ID"]),
        "Self": Some(s(node, &["ID"])) == self_id,
        "Hostname": s(node, &["Description", "Hostname"]),
        "Status": shoal_format::pretty_print(s(node, &["Status", "State"])),
        "Availability": shoal_format::pretty_print(s(node, &["Spec", "Availability"])),
        "ManagerStatus": manager_status,
        "EngineVersion": s(node, &["Description", "Engine", "EngineVersion"]),
        "TLSStatus": "Ready",
    })
}

/// Natural order ("vm2" < "vm10"), as docker sorts names.
pub(crate) fn natural_cmp(a: &str, b: &str) -> Ordering {
    let (mut a, mut b) = (a.as_bytes(), b.as_bytes());
    while !a.is_empty() && !b.is_empty() {
        if a[0].is_ascii_digit() && b[0].is_ascii_digit() {
            let na = a.iter().take_while(|c| c.is_ascii_digit()).count();
            let nb = b.iter().take_while(|c| c.is_ascii_digit()).count();
            let (da, db) = (&a[..na], &b[..nb]);
            let ta = trim_zeros(da);
            let tb = trim_zeros(db);
            let ord = ta.len().cmp(&tb.len()).then_with(|| ta.cmp(tb));
            if ord != Ordering::Equal {
                return ord;
            }
            a = &a[na..];
            b = &b[nb..];
        } else {
            if a[0] != b[0] {
                return a[0].cmp(&b[0]);
            }
            a = &a[1..];
            b = &b[1..];
        }
    }
    a.len().cmp(&b.len())
}

fn trim_zeros(d: &[u8]) -> &[u8] {
    let z = d.iter().take_while(|c| **c == b'0').count();
    &d[z.min(d.len().saturating_sub(1))..]
}

fn print(out: Result<String, shoal_format::FormatError>) -> CliResult {
    match out {
        Ok(text) => {
            print!("{text}");
            Ok(())
        }
        Err(e) => Err(ApiError::plain(e.to_string())),
    }
}

pub async fn run(host: &str, cmd: NodeCommand) -> CliResult {
    match cmd {
        NodeCommand::Ls { quiet, format } => {
            let (nodes, self_id) = match call(host, ApiRequest::NodeList).await? {
                ApiReply::Nodes { nodes, self_id } => (nodes, self_id),
                other => return Err(unexpected(other)),
            };
            let mut rows: Vec<Value> = nodes
                .iter()
                .map(|n| node_row(n, self_id.as_deref()))
                .collect();
            rows.sort_by(|a, b| {
                natural_cmp(s(a, &["Hostname"]), s(b, &["Hostname"]))
                    .then_with(|| s(a, &["ID"]).cmp(s(b, &["ID"])))
            });
            let format = if quiet {
                Some("{{.ID}}".to_string())
            } else {
                format
            };
            print(shoal_format::render_list(
                format.as_deref(),
                NODE_TABLE,
                NODE_HEADERS,
                &rows,
            ))
        }
        NodeCommand::Inspect {
            pretty,
            format,
            nodes,
        } => {
            let found = match call(
                host,
                ApiRequest::NodeInspect {
                    references: nodes.clone(),
                },
            )
            .await?
            {
                ApiReply::Inspected { nodes } => nodes,
                other => return Err(unexpected(other)),
            };
            let (values, missing) = super::split_found(&nodes, found);
            if pretty {
                for v in &values {
                    print!("{}", pretty_node(v));
                }
            } else {
                print(shoal_format::render_inspect(&values, format.as_deref()))?;
            }
            super::missing_error(&missing, |_, e| format!("Error response from daemon: {e}"))
        }
        NodeCommand::Update(a) => {
            let mut label_add = Vec::new();
            for l in &a.label_add {
                let (k, v) = l.split_once('=').unwrap_or((l.as_str(), ""));
                if k.is_empty() {
                    return Err(ApiError::plain(format!("invalid label: {l}")));
                }
                label_add.push((k.to_string(), v.to_string()));
            }
            let update = NodeUpdate {
                reference: a.node.clone(),
                label_add,
                label_rm: a.label_rm,
                availability: a.availability,
                role: a.role,
            };
            call(host, ApiRequest::NodeUpdate(update)).await?;
            println!("{}", a.node);
            Ok(())
        }
        NodeCommand::Ps {
            no_trunc,
            quiet,
            filter,
            format,
            nodes,
        } => {
            let nodes = if nodes.is_empty() {
                vec!["self".to_string()]
            } else {
                nodes
            };
            let mut resolved = Vec::new();
            for n in &nodes {
                match call(
                    host,
                    ApiRequest::NodeInspect {
                        references: vec![n.clone()],
                    },
                )
                .await?
                {
                    ApiReply::Inspected { mut nodes } => {
                        let v = nodes
                            .pop()
                            .unwrap_or(Err(format!("node {n} not found")))
                            .map_err(ApiError::daemon)?;
                        resolved.push(s(&v, &["ID"]).to_string());
                    }
                    other => return Err(unexpected(other)),
                }
            }
            let (mut list, names) = match call(
                host,
                ApiRequest::TaskList {
                    services: vec![],
                    nodes: resolved,
                    stack: None,
                    up_to_date: false,
                },
            )
            .await?
            {
                ApiReply::Tasks { tasks, node_names } => (tasks, node_names),
                other => return Err(unexpected(other)),
            };
            for f in &filter {
                if let Some(v) = f.strip_prefix("desired-state=") {
                    list.retain(|t| t["DesiredState"].as_str() == Some(v));
                }
            }
            super::tasks::print(&list, &names, no_trunc, quiet, format)
        }
        NodeCommand::Promote { nodes } => set_roles(host, nodes, Role::Manager).await,
        NodeCommand::Demote { nodes } => set_roles(host, nodes, Role::Worker).await,
        NodeCommand::Rm { force, nodes } => {
            super::remove_each(host, nodes, |reference| ApiRequest::NodeRemove {
                reference,
                force,
            })
            .await
        }
    }
}

async fn set_roles(host: &str, nodes: Vec<String>, role: Role) -> CliResult {
    for n in nodes {
        let current = match call(
            host,
            ApiRequest::NodeInspect {
                references: vec![n.clone()],
            },
        )
        .await?
        {
            ApiReply::Inspected { mut nodes } => {
                nodes.pop().unwrap_or(Err(format!("node {n} not found")))
            }
            other => return Err(unexpected(other)),
        }
        .map_err(ApiError::daemon)?;
        let id = s(&current, &["ID"]).to_string();
        if s(&current, &["Spec", "Role"]) == role.to_string() {
            match role {
                Role::Manager => println!("Node {id} is already a manager."),
                Role::Worker => println!("Node {id} is already a worker."),
            }
            continue;
        }
        let update = NodeUpdate {
            reference: id,
            role: Some(role),
            ..Default::default()
        };
        call(host, ApiRequest::NodeUpdate(update)).await?;
        match role {
            Role::Manager => println!("Node {n} promoted to a manager in the swarm."),
            Role::Worker => println!("Manager {n} demoted in the swarm."),
        }
    }
    Ok(())
}

fn pretty_node(v: &Value) -> String {
    let mut out = String::new();
    let mut line = |k: &str, val: &str| out.push_str(&format!("{k}{val}\n"));
    line("ID:\t\t\t", s(v, &["ID"]));
    if let Some(name) = v["Spec"]["Name"].as_str() {
        line("Name:\t\t\t", name);
    }
    if let Some(labels) = v["Spec"]["Labels"].as_object().filter(|l| !l.is_empty()) {
        line("Labels:", "");
        for (k, val) in labels {
            line(" - ", &format!("{k}={}", val.as_str().unwrap_or("")));
        }
    }
    line("Hostname:\t\t", s(v, &["Description", "Hostname"]));
    line("Joined at:\t\t", s(v, &["CreatedAt"]));
    line("Status:", "");
    line(
        " State:\t\t\t",
        &shoal_format::pretty_print(s(v, &["Status", "State"])),
    );
    line(
        " Availability:\t\t",
        &shoal_format::pretty_print(s(v, &["Spec", "Availability"])),
    );
    line(" Address:\t\t", s(v, &["Status", "Addr"]));
    if v.get("ManagerStatus").is_some() {
        line("Manager Status:", "");
        line(" Address:\t\t", s(v, &["ManagerStatus", "Addr"]));
        line(
            " Raft Status:\t\t",
            &shoal_format::pretty_print(s(v, &["ManagerStatus", "Reachability"])),
        );
        let leader = v["ManagerStatus"]["Leader"].as_bool() == Some(true);
        line(" Leader:\t\t", if leader { "Yes" } else { "No" });
    }
    line("Platform:", "");
    line(
        " Operating System:\t",
        s(v, &["Description", "Platform", "OS"]),
    );
    line(
        " Architecture:\t\t",
        s(v, &["Description", "Platform", "Architecture"]),
    );
    line("Resources:", "");
    let cpus = v["Description"]["Resources"]["NanoCPUs"]
        .as_i64()
        .unwrap_or(0)
        / 1_000_000_000;
    line(" CPUs:\t\t\t", &cpus.to_string());
    let mem = v["Description"]["Resources"]["MemoryBytes"]
        .as_i64()
        .unwrap_or(0) as f64;
    line(
        " Memory:\t\t",
        format!("{:.4}GiB", mem / (1u64 << 30) as f64).trim_end_matches('0'),
    );
    line("Plugins:", "");
    line(" Network:\t\t", "overlay");
    line(" Volume:\t\t", "local");
    line(
        "Engine Version:\t\t",
        s(v, &["Description", "Engine", "EngineVersion"]),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn natural_order_puts_vm2_before_vm10() {
        let mut v = vec!["vm10", "vm2", "vm1", "client"];
        v.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(v, ["client", "vm1", "vm2", "vm10"]);
    }

    #[test]
    fn row_marks_leader_and_self() {
        let node = json!({"ID": "abc", "Description": {"Hostname": "vm1", "Engine": {"EngineVersion": "0.1.0"}},
            "Status": {"State": "ready"}, "Spec": {"Availability": "drain"},
            "ManagerStatus": {"Leader": true, "Reachability": "reachable"}});
        let row = node_row(&node, Some("abc"));
        assert_eq!(row["Self"], json!(true));
        assert_eq!(row["ManagerStatus"], "Leader");
        assert_eq!(row["Status"], "Ready");
        assert_eq!(row["Availability"], "Drain");
        let worker =
            json!({"ID": "def", "Status": {"State": "down"}, "Spec": {"Availability": "active"}});
        assert_eq!(node_row(&worker, Some("abc"))["ManagerStatus"], "");
    }
}
