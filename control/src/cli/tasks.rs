//! Task tables (`service ps`, `stack ps`, `node ps`) as docker prints them.

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::node::natural_cmp;

pub const TASK_TABLE: &str = "{{.ID}}\t{{.Name}}\t{{.Image}}\t{{.Node}}\t{{.DesiredState}}\t{{.CurrentState}}\t{{.Error}}\t{{.Ports}}";
pub const TASK_HEADERS: &[(&str, &str)] = &[
    ("ID", "ID"),
    ("Name", "NAME"),
    ("Image", "IMAGE"),
    ("Node", "NODE"),
    ("DesiredState", "DESIRED STATE"),
    ("CurrentState", "CURRENT STATE"),
    ("Error", "ERROR"),
    ("Ports", "PORTS"),
];

fn s<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    let mut cur = v;
    for p in path {
        cur = &cur[*p];
    }
    cur.as_str().unwrap_or("")
}

/// Image without its digest, as docker shows it.
pub fn strip_digest(image: &str) -> &str {
    image.split('@').next().unwrap_or(image)
}

/// "Running 2 seconds ago"
pub fn current_state(state: &str, ts: &str, now: DateTime<Utc>) -> String {
    let since = DateTime::parse_from_rfc3339(ts)
        .map(|t| (now - t.with_timezone(&Utc)).to_std().unwrap_or_default())
        .unwrap_or_default();
    format!(
        "{} {} ago",
        shoal_format::pretty_print(state),
        shoal_format::human_duration(since).to_lowercase()
    )
}

/// Display name of a task: `<service>.<slot>` or `<service>.<node id>`.
pub fn task_name(t: &Value) -> String {
    let svc = s(t, &["ServiceName"]);
    match t["Slot"].as_u64() {
        Some(slot) => format!("{svc}.{slot}"),
        None => format!("{svc}.{}", s(t, &["NodeID"])),
    }
}

/// PORTS of a task table: its `Status.PortStatus` (host-mode ports of a running task),
/// `*:8081->80/tcp`, joined with ",".
fn ports(t: &Value) -> String {
    let Some(ports) = t["Status"]["PortStatus"]["Ports"].as_array() else {
        return String::new();
    };
    ports
        .iter()
        .map(|p| {
            format!(
                "*:{}->{}/{}",
                p["PublishedPort"].as_u64().unwrap_or(0),
                p["TargetPort"].as_u64().unwrap_or(0),
                p["Protocol"].as_str().unwrap_or("tcp")
            )
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Rows for a task table: sorted by name (natural), newest first within a name, older
/// ones prefixed ` \_ ` in table formats.
pub fn rows(
    tasks: &[Value],
    names: &std::collections::BTreeMap<String, String>,
    no_trunc: bool,
    table: bool,
) -> Vec<Value> {
    let now = Utc::now();
    let mut sorted: Vec<&Value> = tasks.iter().collect();
    sorted.sort_by(|a, b| {
        natural_cmp(&task_name(a), &task_name(b))
            .then_with(|| s(b, &["CreatedAt"]).cmp(s(a, &["CreatedAt"])))
    });
    let mut out = Vec::new();
    let mut last_name = String::new();
    for t in sorted {
        let name = task_name(t);
        let display = if table && name == last_name {
            format!(" \\_ {name}")
        } else {
            name.clone()
        };
        last_name = name;
        let id = s(t, &["ID"]);
        let image = s(t, &["Spec", "ContainerSpec", "Image"]);
        let err = s(t, &["Status", "Err"]);
        let error = if err.is_empty() {
            String::new()
        } else if no_trunc {
            err.to_string()
        } else {
            format!("\"{}\"", shoal_format::ellipsis(err, 30))
        };
        let node_id = s(t, &["NodeID"]);
        out.push(json!({
            "ID": if no_trunc { id.to_string() } else { shoal_format::truncate_id(id) },
            "Name": display,
            "Image": if no_trunc { image } else { strip_digest(image) },
            "Node": names.get(node_id).cloned().unwrap_or_else(|| node_id.to_string()),
            "DesiredState": shoal_format::pretty_print(s(t, &["DesiredState"])),
            "CurrentState": current_state(s(t, &["Status", "State"]), s(t, &["Status", "Timestamp"]), now),
            "Error": error,
            "Ports": ports(t),
        }));
    }
    out
}

/// Print a task table with docker's options.
pub fn print(
    tasks: &[Value],
    names: &std::collections::BTreeMap<String, String>,
    no_trunc: bool,
    quiet: bool,
    format: Option<String>,
) -> Result<(), crate::api::ApiError> {
    let format = if quiet {
        Some("{{.ID}}".to_string())
    } else {
        format
    };
    let table = format.as_deref().is_none_or(|f| f.starts_with("table"));
    let rows = rows(tasks, names, no_trunc, table);
    let text = shoal_format::render_list(format.as_deref(), TASK_TABLE, TASK_HEADERS, &rows)
        .map_err(|e| crate::api::ApiError::plain(e.to_string()))?;
    print!("{text}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// PORTS of `service ps` come from the task's PortStatus, as docker prints them.
    #[test]
    fn ports_column_from_port_status() {
        let t = json!({"Status": {"PortStatus": {"Ports": [
            {"Protocol": "tcp", "TargetPort": 80, "PublishedPort": 8081, "PublishMode": "host"},
            {"Protocol": "udp", "TargetPort": 53, "PublishedPort": 5353, "PublishMode": "host"}
        ]}}});
        assert_eq!(ports(&t), "*:8081->80/tcp,*:5353->53/udp");
        assert_eq!(ports(&json!({"Status": {"PortStatus": {}}})), "");
    }
}
