//! `shoal info` / `shoal system info`: docker's `docker info` (cli
//! `cli/command/system/info.go`) for what Shoal has: the `Client:` and `Server:` sections
//! restricted to it, the Swarm part as docker prints it, or a `--format` template over
//! docker's JSON.

use clap::Subcommand;
use serde_json::{json, Map, Value};

use super::call;
use crate::api::{ApiError, ApiReply, ApiRequest};

#[derive(Subcommand, Debug)]
pub enum SystemCommand {
    /// Display system-wide information
    Info {
        #[arg(short, long, help = super::help::INSPECT_FORMAT_HELP)]
        format: Option<String>,
    },
}

/// docker's status for a template that does not parse (cli.StatusError{StatusCode: 64}).
const TEMPLATE_PARSE_STATUS: i32 = 64;

/// Runs `shoal info`; the exit status is docker's.
pub async fn run(host: &str, format: Option<String>) -> i32 {
    let server = match call(host, ApiRequest::SystemInfo).await {
        Ok(ApiReply::SystemInfo { info }) => Ok(info),
        Ok(other) => Err(super::unexpected(other)),
        Err(e) => Err(e),
    };
    match format.as_deref().filter(|f| !f.is_empty()) {
        None => pretty_print(server),
        Some(format) => format_info(server, format),
    }
}

/// Without `--format`: the sections, then what failed. A daemon that cannot be reached is
/// the command's error; an error of the daemon's is a `Server:` error (docker's
/// ServerErrors), printed as `ERROR: ...`, and the command fails with docker's words.
fn pretty_print(server: Result<Value, ApiError>) -> i32 {
    println!("{}", client_text());
    println!("Server:");
    match server {
        Ok(info) => {
            let (text, warnings) = server_text(&info);
            print!("{text}");
            for w in warnings {
                eprintln!("{w}");
            }
            0
        }
        Err(e) if !e.from_daemon => {
            eprintln!("{e}");
            1
        }
        Err(e) => {
            eprintln!("ERROR: {e}");
            eprintln!("errors pretty printing info");
            1
        }
    }
}

/// `--format`: the template over docker's JSON (`json` is `{{json .}}`), then a newline.
fn format_info(server: Result<Value, ApiError>, format: &str) -> i32 {
    let info = match server {
        Ok(info) => info,
        Err(e) => {
            eprintln!("{e}");
            return 1;
        }
    };
    let template = if format == "json" {
        "{{json .}}"
    } else {
        format
    };
    let value = with_client_info(info);
    match shoal_format::render_inspect_partial(std::slice::from_ref(&value), Some(template)) {
        Err(e) => {
            eprintln!("{e}");
            TEMPLATE_PARSE_STATUS
        }
        Ok((out, errors)) => {
            print!("{out}");
            match errors.into_iter().next() {
                None => 0,
                Some(
                    shoal_format::FormatError::Execute(e) | shoal_format::FormatError::Parse(e),
                ) => {
                    // docker returns the template's own error, without a prefix.
                    eprintln!("{e}");
                    1
                }
            }
        }
    }
}

/// docker's JSON: the server's fields, then `ClientInfo` (this CLI).
fn with_client_info(info: Value) -> Value {
    let mut m = match info {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    m.insert(
        "ClientInfo".into(),
        json!({
            "Version": crate::VERSION,
            "Os": std::env::consts::OS,
            "Arch": go_arch(std::env::consts::ARCH),
        }),
    );
    Value::Object(m)
}

/// Go's GOARCH name of a Rust target architecture.
fn go_arch(arch: &str) -> &str {
    match arch {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64",
        "loongarch64" => "loong64",
        other => other,
    }
}

/// docker's `Client:` section, for what Shoal's CLI has.
fn client_text() -> String {
    format!("Client:\n Version:    {}\n", crate::VERSION)
}

/// docker's `prettyPrintServerInfo` for the fields Shoal's daemon gives: stdout's text
/// (ending in docker's blank line) and the warnings, which docker prints on stderr.
pub(crate) fn server_text(info: &Value) -> (String, Vec<String>) {
    let mut out = String::new();
    let mut line = |s: String| {
        out.push_str(&s);
        out.push('\n');
    };
    let text = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    let non_empty = |line: &mut dyn FnMut(String), label: &str, value: String| {
        if !value.is_empty() {
            line(format!("{label} {value}"));
        }
    };
    let count = |k: &str| info.get(k).and_then(Value::as_u64).unwrap_or(0);
    line(format!(" Containers: {}", count("Containers")));
    line(format!("  Running: {}", count("ContainersRunning")));
    line(format!("  Paused: {}", count("ContainersPaused")));
    line(format!("  Stopped: {}", count("ContainersStopped")));
    line(format!(" Images: {}", count("Images")));
    non_empty(&mut line, " Server Version:", text(info, "ServerVersion"));
    let swarm = &info["Swarm"];
    line(format!(" Swarm: {}", text(swarm, "LocalNodeState")));
    for l in swarm_lines(swarm) {
        line(l);
    }
    non_empty(&mut line, " Kernel Version:", text(info, "KernelVersion"));
    non_empty(
        &mut line,
        " Operating System:",
        text(info, "OperatingSystem"),
    );
    non_empty(&mut line, " OSType:", text(info, "OSType"));
    non_empty(&mut line, " Architecture:", text(info, "Architecture"));
    if let Some(n) = info.get("NCPU").and_then(Value::as_i64) {
        line(format!(" CPUs: {n}"));
    }
    if let Some(m) = info.get("MemTotal").and_then(Value::as_i64) {
        line(format!(" Total Memory: {}", super::bytes_size(m as f64)));
    }
    non_empty(&mut line, " Name:", text(info, "Name"));
    non_empty(&mut line, " ID:", text(info, "ID"));
    if let Some(dir) = info.get("DockerRootDir").and_then(Value::as_str) {
        line(format!(" Docker Root Dir: {dir}"));
    }
    line(String::new());
    let warnings = info["Warnings"]
        .as_array()
        .map(|w| {
            w.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    (out, warnings)
}

/// docker's `printSwarmInfo`: nothing for an inactive or locked node; NodeID, any error,
/// Is Manager, the cluster (a manager that can serve it), Node Address and the managers.
fn swarm_lines(s: &Value) -> Vec<String> {
    let state = s["LocalNodeState"].as_str().unwrap_or("");
    if matches!(state, "inactive" | "locked") {
        return Vec::new();
    }
    let text = |v: &Value| v.as_str().unwrap_or("").to_string();
    let int = |v: &Value| v.as_i64().unwrap_or(0);
    let boolean = |v: &Value| v.as_bool().unwrap_or(false);
    let mut out = vec![format!("  NodeID: {}", text(&s["NodeID"]))];
    let error = text(&s["Error"]);
    if !error.is_empty() {
        out.push(format!("  Error: {error}"));
    }
    let control = boolean(&s["ControlAvailable"]);
    out.push(format!("  Is Manager: {control}"));
    let cluster = s.get("Cluster").filter(|c| c.is_object());
    if let Some(c) = cluster.filter(|_| control && error.is_empty() && state != "error") {
        let spec = &c["Spec"];
        out.push(format!("  ClusterID: {}", text(&c["ID"])));
        out.push(format!("  Managers: {}", int(&s["Managers"])));
        out.push(format!("  Nodes: {}", int(&s["Nodes"])));
        if let Some(pools) = c["DefaultAddrPool"].as_array() {
            let pools: String = pools.iter().map(|p| format!("{}  ", text(p))).collect();
            out.push(format!("  Default Address Pool: {pools}"));
            out.push(format!("  SubnetSize: {}", int(&c["SubnetSize"])));
        }
        let port = int(&c["DataPathPort"]);
        if port > 0 {
            out.push(format!("  Data Path Port: {port}"));
        }
        out.push("  Orchestration:".into());
        out.push(format!(
            "   Task History Retention Limit: {}",
            int(&spec["Orchestration"]["TaskHistoryRetentionLimit"])
        ));
        let raft = &spec["Raft"];
        out.push("  Raft:".into());
        out.push(format!(
            "   Snapshot Interval: {}",
            int(&raft["SnapshotInterval"])
        ));
        if let Some(keep) = raft.get("KeepOldSnapshots").and_then(Value::as_i64) {
            out.push(format!("   Number of Old Snapshots to Retain: {keep}"));
        }
        out.push(format!(
            "   Heartbeat Tick: {}",
            int(&raft["HeartbeatTick"])
        ));
        out.push(format!("   Election Tick: {}", int(&raft["ElectionTick"])));
        let human = |ns: i64| {
            shoal_format::human_duration(std::time::Duration::from_nanos(ns.max(0) as u64))
        };
        out.push("  Dispatcher:".into());
        out.push(format!(
            "   Heartbeat Period: {}",
            human(int(&spec["Dispatcher"]["HeartbeatPeriod"]))
        ));
        let ca = &spec["CAConfig"];
        out.push("  CA Configuration:".into());
        out.push(format!(
            "   Expiry Duration: {}",
            human(int(&ca["NodeCertExpiry"]))
        ));
        out.push(format!("   Force Rotate: {}", int(&ca["ForceRotate"])));
        let signing = text(&ca["SigningCACert"]);
        if !signing.trim().is_empty() {
            out.push(format!("   Signing CA Certificate: \n{}\n", signing.trim()));
        }
        if let Some(cas) = ca["ExternalCAs"].as_array().filter(|a| !a.is_empty()) {
            out.push("   External CAs:".into());
            for e in cas {
                out.push(format!(
                    "     {}: {}",
                    text(&e["Protocol"]),
                    text(&e["URL"])
                ));
            }
        }
        out.push(format!(
            "  Autolock Managers: {}",
            boolean(&spec["EncryptionConfig"]["AutoLockManagers"])
        ));
        out.push(format!(
            "  Root Rotation In Progress: {}",
            boolean(&c["RootRotationInProgress"])
        ));
    }
    out.push(format!("  Node Address: {}", text(&s["NodeAddr"])));
    let mut managers: Vec<String> = s["RemoteManagers"]
        .as_array()
        .map(|a| a.iter().map(|p| text(&p["Addr"])).collect())
        .unwrap_or_default();
    if !managers.is_empty() {
        managers.sort();
        out.push("  Manager Addresses:".into());
        for m in managers {
            out.push(format!("   {m}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raft::RaftTiming;
    use crate::system_info::{self as si, Peer, SwarmFacts};

    fn host() -> si::Host {
        si::Host {
            kernel_version: "6.8.0-45-generic".into(),
            operating_system: "Ubuntu 24.04.1 LTS".into(),
            os_version: "24.04".into(),
            architecture: "x86_64".into(),
            ncpu: 4,
            mem_total: 8_232_407_040,
            name: "vm1".into(),
            root_dir: "/var/lib/shoal".into(),
            tasks: si::TaskCounts {
                running: 2,
                stopped: 1,
            },
        }
    }

    fn server(facts: &SwarmFacts) -> (String, Vec<String>) {
        server_text(&si::info_json(&host(), si::swarm_json(facts)))
    }

    /// docker's container counts, for the host's 2 running tasks and 1 that ended.
    const TASK_LINES: &str =
        " Containers: 3\n  Running: 2\n  Paused: 0\n  Stopped: 1\n Images: 0\n";

    fn host_lines() -> &'static str {
        " Kernel Version: 6.8.0-45-generic\n Operating System: Ubuntu 24.04.1 LTS\n OSType: linux\n Architecture: x86_64\n CPUs: 4\n Total Memory: 7.667GiB\n Name: vm1\n Docker Root Dir: /var/lib/shoal\n\n"
    }

    #[test]
    fn outside_a_swarm_swarm_is_inactive_and_nothing_more() {
        let (text, warnings) = server(&SwarmFacts {
            state: "inactive",
            ..Default::default()
        });
        assert_eq!(
            text,
            format!(
                "{} Server Version: {}\n Swarm: inactive\n{}",
                TASK_LINES,
                crate::VERSION,
                host_lines()
            )
        );
        assert!(warnings.is_empty());
    }

    /// A manager prints docker's whole Swarm section, in docker's words and units.
    #[test]
    fn manager_prints_the_cluster() {
        let mut c = crate::state::tests::cluster();
        c.id = "kzc0cp3e5eh6lmvsu6c2r0g6f".into();
        let (text, _) = server(&SwarmFacts {
            state: "active",
            node_id: Some("rb1bpfv8r8atppvsv7tcopkjp".into()),
            node_addr: Some("192.168.1.10".into()),
            control_available: true,
            remote_managers: vec![Peer {
                node_id: Some("rb1bpfv8r8atppvsv7tcopkjp".into()),
                addr: "192.168.1.10:2377".into(),
            }],
            counts: Some((3, 1)),
            cluster: Some(si::cluster_json(&c, &RaftTiming::default())),
            ..Default::default()
        });
        let swarm = " Swarm: active
  NodeID: rb1bpfv8r8atppvsv7tcopkjp
  Is Manager: true
  ClusterID: kzc0cp3e5eh6lmvsu6c2r0g6f
  Managers: 1
  Nodes: 3
  Default Address Pool: 10.0.0.0/8  
  SubnetSize: 24
  Data Path Port: 4789
  Orchestration:
   Task History Retention Limit: 5
  Raft:
   Snapshot Interval: 10000
   Number of Old Snapshots to Retain: 0
   Heartbeat Tick: 1
   Election Tick: 4
  Dispatcher:
   Heartbeat Period: 5 seconds
  CA Configuration:
   Expiry Duration: 3 months
   Force Rotate: 0
  Autolock Managers: false
  Root Rotation In Progress: false
  Node Address: 192.168.1.10
  Manager Addresses:
   192.168.1.10:2377
";
        assert_eq!(
            text,
            format!(
                "{} Server Version: {}\n{swarm}{}",
                TASK_LINES,
                crate::VERSION,
                host_lines()
            )
        );
    }

    /// A worker prints what docker's does: no cluster, its managers' addresses sorted.
    #[test]
    fn worker_prints_node_and_managers_only() {
        let (text, _) = server(&crate::system_info::tests::worker_facts());
        assert!(
            text.contains(
                " Swarm: active\n  NodeID: w1\n  Is Manager: false\n  Node Address: 10.0.0.2\n  Manager Addresses:\n   10.0.0.1:2377\n   10.0.0.3:2377\n Kernel Version:"
            ),
            "{text}"
        );
    }

    /// A manager whose Raft store is unusable: state error, the message, no cluster.
    #[test]
    fn error_state_prints_the_error_and_no_cluster() {
        let c = crate::state::tests::cluster();
        let (text, warnings) = server(&SwarmFacts {
            state: "error",
            error: Some("the raft store is unusable".into()),
            node_id: Some("m1".into()),
            node_addr: Some("10.0.0.1".into()),
            counts: Some((2, 2)),
            cluster: Some(si::cluster_json(&c, &RaftTiming::default())),
            ..Default::default()
        });
        assert!(
            text.contains(
                " Swarm: error\n  NodeID: m1\n  Error: the raft store is unusable\n  Is Manager: false\n  Node Address: 10.0.0.1\n Kernel Version:"
            ),
            "{text}"
        );
        assert!(warnings.is_empty());
    }

    /// Two managers: moby's warning goes to stderr, after the sections.
    #[test]
    fn two_managers_warning_is_returned_for_stderr() {
        let (_, warnings) = server(&SwarmFacts {
            state: "active",
            control_available: true,
            counts: Some((2, 2)),
            ..Default::default()
        });
        assert_eq!(warnings, [si::TWO_MANAGERS_WARNING]);
    }

    /// `--format` sees docker's field names, `{{json .Swarm}}` keeps docker's key order,
    /// and `json` is the whole object with `ClientInfo` last.
    #[test]
    fn templates_see_docker_s_field_names() {
        let info = with_client_info(si::info_json(
            &host(),
            si::swarm_json(&SwarmFacts {
                state: "active",
                node_id: Some("w1".into()),
                node_addr: Some("10.0.0.2".into()),
                ..Default::default()
            }),
        ));
        let render =
            |t: &str| shoal_format::render_inspect(std::slice::from_ref(&info), Some(t)).unwrap();
        assert_eq!(
            render("{{.Swarm.LocalNodeState}} {{.Swarm.NodeID}} {{.Swarm.ControlAvailable}}"),
            "active w1 false\n"
        );
        assert_eq!(
            render("{{json .Swarm}}"),
            "{\"NodeID\":\"w1\",\"NodeAddr\":\"10.0.0.2\",\"LocalNodeState\":\"active\",\"ControlAvailable\":false,\"Error\":\"\",\"RemoteManagers\":null}\n"
        );
        let whole: Value = serde_json::from_str(&render("{{json .}}")).unwrap();
        let keys: Vec<&String> = whole.as_object().unwrap().keys().collect();
        assert_eq!(keys.last().unwrap().as_str(), "ClientInfo");
        assert_eq!(whole["Name"], "vm1");
    }

    #[test]
    fn go_arch_names() {
        assert_eq!(go_arch("x86_64"), "amd64");
        assert_eq!(go_arch("aarch64"), "arm64");
        assert_eq!(go_arch("riscv64"), "riscv64");
    }
}
