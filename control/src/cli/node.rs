//! `shoal node ...`: ls, inspect, update, promote, demote, rm.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use clap::{Args, Subcommand};
use serde_json::{json, Value};

use super::task_filter::TaskFilter;
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
        #[arg(long, help = super::help::FORMAT_HELP)]
        format: Option<String>,
        /// Filter output based on conditions provided
        #[arg(short, long, value_name = "filter")]
        filter: Vec<String>,
    },
    /// Display detailed information on one or more nodes
    Inspect {
        /// Print the information in a human friendly format
        #[arg(long)]
        pretty: bool,
        #[arg(short, long, help = super::help::INSPECT_FORMAT_HELP)]
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
        /// Do not truncate output
        #[arg(long)]
        no_trunc: bool,
        /// Only display task IDs
        #[arg(short, long)]
        quiet: bool,
        /// Filter output based on conditions provided
        #[arg(short, long, value_name = "filter")]
        filter: Vec<String>,
        /// Pretty-print tasks using a Go template
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
    /// Add or update a node label ("key=value")
    #[arg(long)]
    label_add: Vec<String>,
    /// Remove a node label if exists
    #[arg(long)]
    label_rm: Vec<String>,
    /// Availability of the node ("active", "pause", "drain")
    #[arg(long)]
    availability: Option<String>,
    /// Role of the node ("worker", "manager")
    #[arg(long)]
    role: Option<String>,
    node: String,
}

/// `node update --role/--availability`: docker's CLI sends them as typed, and its daemon
/// (moby convert.NodeSpecToGRPC) takes them in any case and refuses anything else in
/// these words (exit status 1, not a usage error).
fn parse_role(s: &str) -> Result<Role, ApiError> {
    match s.to_ascii_lowercase().as_str() {
        "worker" => Ok(Role::Worker),
        "manager" => Ok(Role::Manager),
        _ => Err(ApiError::daemon(format!("invalid Role: {s:?}"))),
    }
}

fn parse_availability(s: &str) -> Result<Availability, ApiError> {
    s.parse()
        .map_err(|_| ApiError::daemon(format!("invalid Availability: {s:?}")))
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

/// The keys `node ls -f` takes (moby daemon/cluster/filters.go newListNodesFilters).
const NODE_FILTERS: &[&str] = &["name", "id", "label", "role", "membership", "node.label"];

/// The nodes of `node ls -f ...`: the filter checked as docker's daemon checks it, and
/// matched as swarmkit's ListNodes does (controlapi/node.go): `name` and `id` are
/// prefixes of the hostname and the ID, `label` matches the engine's labels and
/// `node.label` the node's own, `role` (the observed role) and `membership` are names in
/// any case; values of one key are alternatives, except labels, which must all match;
/// keys must all match.
fn filter_nodes<'a>(nodes: &'a [Value], filter: &TaskFilter) -> Result<Vec<&'a Value>, ApiError> {
    filter.check_accepted(NODE_FILTERS)?;
    let names = |key: &str, known: &[&str], what: &str| -> Result<Vec<String>, ApiError> {
        let mut out = Vec::new();
        for v in filter.values(key) {
            let lower = v.to_lowercase();
            if known.contains(&lower.as_str()) {
                out.push(lower);
            } else if !v.is_empty() {
                return Err(ApiError::daemon(format!("Invalid {what} filter: '{v}'")));
            }
        }
        Ok(out)
    };
    let roles = names("role", &["worker", "manager"], "role")?;
    // Every node of a Shoal swarm is accepted: a join is complete or it never happened.
    let memberships = names("membership", &["accepted", "pending"], "membership")?;
    Ok(nodes
        .iter()
        .filter(|n| {
            filter.any_prefix("name", s(n, &["Description", "Hostname"]))
                && filter.any_prefix("id", s(n, &["ID"]))
                && filter.labels_match("label", |k| {
                    n["Description"]["Engine"]["Labels"][k].as_str()
                })
                && filter.labels_match("node.label", |k| n["Spec"]["Labels"][k].as_str())
                && (roles.is_empty() || roles.iter().any(|r| r == observed_role(n)))
                && (memberships.is_empty() || memberships.iter().any(|m| m == "accepted"))
        })
        .collect())
}

/// The role a node has now, which swarmkit's `role` filter matches (its Node.Role, not
/// the Spec.Role asked for): a promoted node is a manager at once, a demoted one only once
/// it has left the Raft group, that is once it has no ManagerStatus.
fn observed_role(n: &Value) -> &'static str {
    if s(n, &["Spec", "Role"]) == "manager" || n.get("ManagerStatus").is_some() {
        "manager"
    } else {
        "worker"
    }
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
        NodeCommand::Ls {
            quiet,
            format,
            filter,
        } => {
            let filter = TaskFilter::parse(&filter)?;
            let (nodes, self_id) = match call(host, ApiRequest::NodeList).await? {
                ApiReply::Nodes { nodes, self_id } => (nodes, self_id),
                other => return Err(unexpected(other)),
            };
            let mut rows: Vec<Value> = filter_nodes(&nodes, &filter)?
                .into_iter()
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
            // docker-cli's updateNodes: the node as it is first, then the labels merged
            // on the CLI, where a key to remove must be there (its error is the CLI's).
            let (label_add, label_rm) = if a.label_rm.is_empty() {
                (label_add, Vec::new())
            } else {
                let current = node_labels(host, &a.node).await?;
                merge_labels(&current, &label_add, &a.label_rm).map_err(ApiError::plain)?
            };
            let update = NodeUpdate {
                reference: a.node.clone(),
                label_add,
                label_rm,
                availability: a
                    .availability
                    .as_deref()
                    .map(parse_availability)
                    .transpose()?,
                role: a.role.as_deref().map(parse_role).transpose()?,
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
            let filter = TaskFilter::parse(&filter)?;
            let mut resolved = Vec::new();
            for n in &nodes {
                resolved.push(node_id(host, n).await?);
            }
            let (all, names) = match call(
                host,
                ApiRequest::TaskList {
                    services: vec![],
                    nodes: vec![],
                    stack: None,
                    up_to_date: filter.has("_up-to-date"),
                },
            )
            .await?
            {
                ApiReply::Tasks { tasks, node_names } => (tasks, node_names),
                other => return Err(unexpected(other)),
            };
            let base = super::service::resolve_filter(host, &filter).await?;
            let list = node_ps_tasks(&all, &filter, &base, &resolved);
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

/// What `node ps` lists, as docker's CLI asks for it: for each node named, the
/// tasks the filter matches with that node added to its `node` values (so with
/// `-f node=...` the tasks of either), one list after the other.
fn node_ps_tasks(
    all: &[serde_json::Value],
    filter: &TaskFilter,
    base: &super::service::ResolvedFilter,
    nodes: &[String],
) -> Vec<serde_json::Value> {
    let mut list = Vec::new();
    for id in nodes {
        let mut filter = filter.clone();
        filter.add("node", id);
        let mut resolved = base.clone();
        resolved.nodes.insert(id.clone());
        list.extend(all.iter().filter(|t| resolved.matches(&filter, t)).cloned());
    }
    list
}

/// The ID of the node `reference` names (`self`, an ID, a hostname or an ID prefix),
/// or the daemon's error.
pub async fn node_id(host: &str, reference: &str) -> Result<String, ApiError> {
    match call(
        host,
        ApiRequest::NodeInspect {
            references: vec![reference.to_string()],
        },
    )
    .await?
    {
        ApiReply::Inspected { mut nodes } => {
            let v = nodes
                .pop()
                .unwrap_or(Err(format!("node {reference} not found")))
                .map_err(ApiError::daemon)?;
            Ok(s(&v, &["ID"]).to_string())
        }
        other => Err(unexpected(other)),
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
    // docker's nodeInspectPrettyTemplate: labels are column-aligned with spaces then one
    // tab, values tab-separated; `Joined at` is PrettyPrint of Go's time (so `utc`).
    let mut out = format!("ID:\t\t\t{}", s(v, &["ID"]));
    let name = s(v, &["Spec", "Name"]);
    if !name.is_empty() {
        out.push_str(&format!("\nName:\t\t\t{name}"));
    }
    let kv = |m: &serde_json::Map<String, Value>, out: &mut String| {
        let sorted: BTreeMap<&String, &Value> = m.iter().collect();
        for (k, val) in sorted {
            let val = val.as_str().unwrap_or("");
            out.push_str(&format!("\n - {k}"));
            if !val.is_empty() {
                out.push_str(&format!("={val}"));
            }
        }
    };
    if let Some(labels) = v["Spec"]["Labels"].as_object().filter(|l| !l.is_empty()) {
        out.push_str("\nLabels:");
        kv(labels, &mut out);
    }
    out.push_str(&format!(
        "\nHostname:              \t{}",
        s(v, &["Description", "Hostname"])
    ));
    let joined = super::go_time_string(s(v, &["CreatedAt"]));
    out.push_str(&format!(
        "\nJoined at:             \t{}",
        shoal_format::pretty_print(&joined)
    ));
    out.push_str(&format!(
        "\nStatus:\n State:\t\t\t{}",
        shoal_format::pretty_print(s(v, &["Status", "State"]))
    ));
    let message = s(v, &["Status", "Message"]);
    if !message.is_empty() {
        out.push_str(&format!(
            "\n Message:              \t{}",
            shoal_format::pretty_print(message)
        ));
    }
    out.push_str(&format!(
        "\n Availability:         \t{}",
        shoal_format::pretty_print(s(v, &["Spec", "Availability"]))
    ));
    let addr = s(v, &["Status", "Addr"]);
    if !addr.is_empty() {
        out.push_str(&format!("\n Address:\t\t{addr}"));
    }
    if v.get("ManagerStatus").is_some() {
        let leader = v["ManagerStatus"]["Leader"].as_bool() == Some(true);
        out.push_str(&format!(
            "\nManager Status:\n Address:\t\t{}\n Raft Status:\t\t{}\n Leader:\t\t{}",
            s(v, &["ManagerStatus", "Addr"]),
            shoal_format::pretty_print(s(v, &["ManagerStatus", "Reachability"])),
            if leader { "Yes" } else { "No" }
        ));
    }
    let d = &v["Description"];
    out.push_str(&format!(
        "\nPlatform:\n Operating System:\t{}\n Architecture:\t\t{}",
        s(d, &["Platform", "OS"]),
        s(d, &["Platform", "Architecture"])
    ));
    let cpus = d["Resources"]["NanoCPUs"].as_i64().unwrap_or(0) / 1_000_000_000;
    let mem = d["Resources"]["MemoryBytes"].as_i64().unwrap_or(0);
    let mem = if mem == 0 {
        String::new()
    } else {
        super::bytes_size(mem as f64)
    };
    out.push_str(&format!(
        "\nResources:\n CPUs:\t\t\t{cpus}\n Memory:\t\t{mem}"
    ));
    // Plugin names by type, types in order.
    let mut plugins: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for p in d["Engine"]["Plugins"].as_array().into_iter().flatten() {
        plugins
            .entry(s(p, &["Type"]).to_string())
            .or_default()
            .push(s(p, &["Name"]).to_string());
    }
    if !plugins.is_empty() {
        out.push_str("\nPlugins:");
        for (kind, names) in &plugins {
            out.push_str(&format!("\n {kind}:"));
            if !names.is_empty() {
                out.push_str(&format!("\t\t{}", names.join(", ")));
            }
        }
    }
    out.push_str(&format!(
        "\nEngine Version:\t\t{}",
        s(d, &["Engine", "EngineVersion"])
    ));
    if let Some(labels) = d["Engine"]["Labels"].as_object().filter(|l| !l.is_empty()) {
        out.push_str("\nEngine Labels:");
        kv(labels, &mut out);
    }
    let tls = &d["TLSInfo"];
    let (root, subject, key) = (
        s(tls, &["TrustRoot"]),
        s(tls, &["CertIssuerSubject"]),
        s(tls, &["CertIssuerPublicKey"]),
    );
    if !(root.is_empty() && subject.is_empty() && key.is_empty()) {
        out.push_str(&format!(
            "\nTLS Info:\n TrustRoot:\n{root}\n Issuer Subject:\t{subject}\n Issuer Public Key:\t{key}"
        ));
    }
    out.push('\n');
    out
}

/// The labels of the node `reference` names (`self` too), or the daemon's error.
async fn node_labels(host: &str, reference: &str) -> Result<BTreeMap<String, String>, ApiError> {
    let found = match call(
        host,
        ApiRequest::NodeInspect {
            references: vec![reference.to_string()],
        },
    )
    .await?
    {
        ApiReply::Inspected { mut nodes } => nodes.pop(),
        other => return Err(unexpected(other)),
    };
    let node = found
        .unwrap_or_else(|| Err(format!("node {reference} not found")))
        .map_err(ApiError::daemon)?;
    Ok(node["Spec"]["Labels"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect()
        })
        .unwrap_or_default())
}

/// Labels to set and label keys to remove.
type LabelPatch = (Vec<(String, String)>, Vec<String>);

/// docker-cli's mergeNodeUpdate for labels: `--label-add` applied first, then each
/// `--label-rm` key, which must be there by then (`key k doesn't exist in node's
/// labels`). Returns the patch that takes `current` there, labels to set and keys to
/// remove, so that the daemon applies the change to the node as it is then.
fn merge_labels(
    current: &BTreeMap<String, String>,
    add: &[(String, String)],
    rm: &[String],
) -> Result<LabelPatch, String> {
    let mut labels = current.clone();
    labels.extend(add.iter().cloned());
    for k in rm {
        if labels.remove(k).is_none() {
            return Err(format!("key {k} doesn't exist in node's labels"));
        }
    }
    let set = labels
        .iter()
        .filter(|(k, v)| current.get(*k) != Some(*v))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let removed = current
        .keys()
        .filter(|k| !labels.contains_key(*k))
        .cloned()
        .collect();
    Ok((set, removed))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `--label-add` first, then `--label-rm`, each removed key there by then, as
    /// docker-cli's mergeNodeUpdate; the patch sent is what changes.
    #[test]
    fn node_labels_merge_as_docker_cli() {
        let current: BTreeMap<String, String> = [
            ("os".to_string(), "linux".to_string()),
            ("zone".to_string(), "a".to_string()),
        ]
        .into();
        let kv = |k: &str, v: &str| (k.to_string(), v.to_string());
        let keys = |ks: &[&str]| ks.iter().map(|k| k.to_string()).collect::<Vec<_>>();
        assert_eq!(
            merge_labels(&current, &[], &keys(&["nope"])),
            Err("key nope doesn't exist in node's labels".into())
        );
        assert_eq!(
            merge_labels(&current, &[], &keys(&["zone", "zone"])),
            Err("key zone doesn't exist in node's labels".into())
        );
        assert_eq!(
            merge_labels(&current, &[kv("new", "1")], &keys(&["new", "zone"])),
            Ok((vec![], keys(&["zone"])))
        );
        assert_eq!(
            merge_labels(
                &current,
                &[kv("os", "linux"), kv("zone", "b")],
                &keys(&["os"])
            ),
            Ok((vec![kv("zone", "b")], keys(&["os"])))
        );
    }

    /// `node ps NODE -f node=X` lists the tasks of NODE or X, as docker's CLI
    /// adds NODE to the filter's `node` values; other keys still all apply; with
    /// two nodes named, each gets its own list (X's tasks in both).
    #[test]
    fn node_ps_adds_the_named_node_to_the_node_filter() {
        let task = |id: &str, node: &str, desired: &str| {
            json!({"ID": id, "ServiceID": "s1", "ServiceName": "web", "Slot": 1,
                   "NodeID": node, "DesiredState": desired})
        };
        let all = [
            task("a", "n1", "running"),
            task("b", "n2", "running"),
            task("c", "n3", "running"),
            task("d", "n2", "shutdown"),
        ];
        let ids = |args: &[&str], filter_nodes: &[&str], named: &[&str]| -> Vec<String> {
            let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
            let filter = TaskFilter::parse(&args).unwrap();
            let base = super::super::service::ResolvedFilter {
                nodes: filter_nodes.iter().map(|n| n.to_string()).collect(),
                ..Default::default()
            };
            let named: Vec<String> = named.iter().map(|n| n.to_string()).collect();
            node_ps_tasks(&all, &filter, &base, &named)
                .iter()
                .map(|t| t["ID"].as_str().unwrap().to_string())
                .collect()
        };
        assert_eq!(ids(&[], &[], &["n1"]), ["a"]);
        assert_eq!(ids(&["node=vm2"], &["n2"], &["n1"]), ["a", "b", "d"]);
        assert_eq!(
            ids(&["node=vm2", "desired-state=running"], &["n2"], &["n1"]),
            ["a", "b"]
        );
        assert_eq!(ids(&["node=vm2"], &["n2"], &["n2"]), ["b", "d"]);
        assert_eq!(
            ids(&["node=vm3"], &["n3"], &["n1", "n2"]),
            ["a", "c", "b", "c", "d"]
        );
        assert_eq!(ids(&[], &[], &["n1", "n2"]), ["a", "b", "d"]);
    }

    /// docker's node pretty layout, line for line.
    #[test]
    fn pretty_node_is_docker_s_layout() {
        let node = json!({"ID": "rb1bpfv8r8atppvsv7tcopkjp", "CreatedAt": "2026-11-27T06:32:29.65Z",
            "Spec": {"Labels": {"os": "linux", "b": ""}, "Role": "manager", "Availability": "active"},
            "Description": {"Hostname": "vm1", "Platform": {"Architecture": "x86_64", "OS": "linux"},
                "Resources": {"NanoCPUs": 2000000000i64, "MemoryBytes": 25331986432i64},
                "Engine": {"EngineVersion": "0.1.0", "Plugins": [{"Type": "Network", "Name": "overlay"}, {"Type": "Volume", "Name": "local"}]},
                "TLSInfo": {"TrustRoot": "-----BEGIN CERTIFICATE-----\nX\n-----END CERTIFICATE-----\n", "CertIssuerSubject": "MBM=", "CertIssuerPublicKey": "MFk="}},
            "Status": {"State": "ready", "Addr": "10.77.0.11"},
            "ManagerStatus": {"Leader": true, "Reachability": "reachable", "Addr": "10.77.0.11:2377"}});
        assert_eq!(
            pretty_node(&node),
            "ID:\t\t\trb1bpfv8r8atppvsv7tcopkjp\n\
             Labels:\n - b\n - os=linux\n\
             Hostname:              \tvm1\n\
             Joined at:             \t2026-11-27 06:32:29.65 +0000 utc\n\
             Status:\n State:\t\t\tReady\n Availability:         \tActive\n Address:\t\t10.77.0.11\n\
             Manager Status:\n Address:\t\t10.77.0.11:2377\n Raft Status:\t\tReachable\n Leader:\t\tYes\n\
             Platform:\n Operating System:\tlinux\n Architecture:\t\tx86_64\n\
             Resources:\n CPUs:\t\t\t2\n Memory:\t\t23.59GiB\n\
             Plugins:\n Network:\t\toverlay\n Volume:\t\tlocal\n\
             Engine Version:\t\t0.1.0\n\
             TLS Info:\n TrustRoot:\n-----BEGIN CERTIFICATE-----\nX\n-----END CERTIFICATE-----\n\n \
             Issuer Subject:\tMBM=\n Issuer Public Key:\tMFk=\n"
        );
    }

    /// `node ls -f`: docker's keys, values and messages, and swarmkit's matching.
    #[test]
    fn node_ls_filters_as_docker_does() {
        let node = |id: &str, host: &str, role: &str, labels: Value| {
            json!({"ID": id, "Spec": {"Labels": labels, "Role": role, "Availability": "active"},
                   "Description": {"Hostname": host, "Engine": {"EngineVersion": "0.1.0"}}})
        };
        let nodes = [
            node("aaa1", "vm1", "manager", json!({"os": "linux"})),
            node("aab2", "vm2", "manager", json!({"os": "bsd", "ssd": ""})),
            node("bbb3", "vm10", "worker", json!({})),
        ];
        let hosts = |args: &[&str]| -> Result<Vec<String>, String> {
            let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
            let filter = TaskFilter::parse(&args).map_err(|e| e.to_string())?;
            Ok(filter_nodes(&nodes, &filter)
                .map_err(|e| e.to_string())?
                .iter()
                .map(|n| s(n, &["Description", "Hostname"]).to_string())
                .collect())
        };
        assert_eq!(hosts(&[]).unwrap(), ["vm1", "vm2", "vm10"]);
        assert_eq!(hosts(&["role=manager"]).unwrap(), ["vm1", "vm2"]);
        assert_eq!(hosts(&["role=WORKER"]).unwrap(), ["vm10"]);
        assert_eq!(hosts(&["role=worker", "role=manager"]).unwrap().len(), 3);
        // swarmkit matches the observed role: a node demoted but still in Raft (it has
        // ManagerStatus) is a manager until it has left.
        let mut demoting = node("ccc4", "vm4", "worker", json!({}));
        demoting["ManagerStatus"] = json!({"Reachability": "reachable"});
        let nodes = [demoting];
        let matched = |role: &str| {
            let filter = TaskFilter::parse(&[format!("role={role}")]).unwrap();
            filter_nodes(&nodes, &filter).unwrap().len()
        };
        assert_eq!((matched("manager"), matched("worker")), (1, 0));
        assert_eq!(hosts(&["name=vm1"]).unwrap(), ["vm1", "vm10"]);
        assert_eq!(hosts(&["id=aa"]).unwrap(), ["vm1", "vm2"]);
        assert_eq!(hosts(&["id=aa", "name=vm2"]).unwrap(), ["vm2"]);
        assert_eq!(hosts(&["node.label=os"]).unwrap(), ["vm1", "vm2"]);
        assert_eq!(hosts(&["node.label=os=bsd"]).unwrap(), ["vm2"]);
        assert_eq!(
            hosts(&["node.label=os", "node.label=ssd"]).unwrap(),
            ["vm2"]
        );
        // `label` is the engine's labels, which these nodes have none of.
        assert_eq!(hosts(&["label=os"]).unwrap(), Vec::<String>::new());
        assert_eq!(hosts(&["membership=accepted"]).unwrap().len(), 3);
        assert_eq!(
            hosts(&["membership=pending"]).unwrap(),
            Vec::<String>::new()
        );
        assert_eq!(
            hosts(&["bogus=1"]).unwrap_err(),
            "Error response from daemon: invalid filter 'bogus'"
        );
        assert_eq!(
            hosts(&["role=boss"]).unwrap_err(),
            "Error response from daemon: Invalid role filter: 'boss'"
        );
        assert_eq!(
            hosts(&["membership=maybe"]).unwrap_err(),
            "Error response from daemon: Invalid membership filter: 'maybe'"
        );
        assert_eq!(
            hosts(&["role"]).unwrap_err(),
            "invalid argument \"role\" for \"-f, --filter\" flag: bad format of filter (expected name=value)"
        );
    }

    /// `node update --role/--availability`: any case; anything else is refused with
    /// moby's words, as an error from the daemon.
    #[test]
    fn update_role_and_availability_as_docker_s_daemon_takes_them() {
        assert_eq!(parse_role("Manager").unwrap(), Role::Manager);
        assert_eq!(parse_availability("DRAIN").unwrap(), Availability::Drain);
        assert_eq!(
            parse_role("boss").unwrap_err().to_string(),
            r#"Error response from daemon: invalid Role: "boss""#
        );
        assert_eq!(
            parse_availability("off").unwrap_err().to_string(),
            r#"Error response from daemon: invalid Availability: "off""#
        );
    }

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
