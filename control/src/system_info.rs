//! `shoal info`: docker's `GET /info` (moby `api/types/system.Info`) for what Shoal has.
//!
//! Shoal has no engine, images or containers: the reply has docker's top-level shape and
//! key order for the host facts Shoal can give, and docker's `Swarm` object (moby
//! `api/types/swarm.Info`) whole, filled as moby's `Cluster.Info` fills it. Fields Shoal
//! has no meaning for are left out rather than given made-up values.

use serde_json::{json, Map, Value};

use crate::raft::RaftTiming;
use crate::types::{go_time, ClusterInfo};

/// moby's warning for a swarm of two managers (daemon/cluster swarm.go `Info`).
pub const TWO_MANAGERS_WARNING: &str =
    "WARNING: Running Swarm in a two-manager configuration. This configuration provides
         no fault tolerance, and poses a high risk to lose control over the cluster.
         Refer to https://docs.docker.com/engine/swarm/admin_guide/ to configure the
         Swarm for fault-tolerance.";

/// The machine a daemon runs on, as docker's info describes it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Host {
    pub kernel_version: String,
    /// os-release's PRETTY_NAME.
    pub operating_system: String,
    /// os-release's VERSION_ID.
    pub os_version: String,
    /// `uname -m` (`x86_64`).
    pub architecture: String,
    pub ncpu: usize,
    pub mem_total: i64,
    pub name: String,
    /// The daemon's data root (docker's `DockerRootDir`).
    pub root_dir: String,
    /// This node's tasks, as docker counts its containers.
    pub tasks: TaskCounts,
}

/// The tasks whose directories this node's executor holds: running ones, and those
/// that ended and are kept for their logs until the task history drops them (docker's
/// stopped containers). Shoal never pauses a task.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TaskCounts {
    pub running: usize,
    pub stopped: usize,
}

impl TaskCounts {
    /// Counts the task directories under `tasks_dir`.
    pub fn of(tasks_dir: &std::path::Path) -> TaskCounts {
        let Ok(exec) = shoal_executor::Executor::new(tasks_dir.to_path_buf()) else {
            return TaskCounts::default();
        };
        let mut counts = TaskCounts::default();
        // Never waits: `info` answers on the daemon's runtime.
        for id in exec.list() {
            if exec.is_running(&id) {
                counts.running += 1;
            } else {
                counts.stopped += 1;
            }
        }
        counts
    }
}

impl Host {
    pub fn of_this_host(hostname: &str, root_dir: &std::path::Path) -> Host {
        let os_release = std::fs::read_to_string("/etc/os-release")
            .or_else(|_| std::fs::read_to_string("/usr/lib/os-release"))
            .unwrap_or_default();
        let pretty = os_release_value(&os_release, "PRETTY_NAME");
        Host {
            kernel_version: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .map(|s| s.trim().to_string())
                .unwrap_or_default(),
            // moby's GetOperatingSystem: "Linux" when os-release names none.
            operating_system: match pretty {
                Some(p) if !p.is_empty() => p,
                _ if os_release.is_empty() => String::new(),
                _ => "Linux".into(),
            },
            os_version: os_release_value(&os_release, "VERSION_ID").unwrap_or_default(),
            architecture: std::env::consts::ARCH.to_string(),
            ncpu: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(0),
            mem_total: crate::types::NodeDescription::of_this_host(hostname).memory_bytes,
            name: hostname.to_string(),
            root_dir: root_dir.display().to_string(),
            tasks: TaskCounts::default(),
        }
    }
}

/// A key of an os-release file, unquoted.
fn os_release_value(text: &str, key: &str) -> Option<String> {
    text.lines().find_map(|l| {
        let (k, v) = l.trim().split_once('=')?;
        if k != key {
            return None;
        }
        let v = v.trim();
        let unquoted = v
            .strip_prefix('"')
            .and_then(|s| s.strip_suffix('"'))
            .or_else(|| v.strip_prefix('\'').and_then(|s| s.strip_suffix('\'')))
            .unwrap_or(v);
        Some(unquoted.replace("\\\"", "\"").replace("\\\\", "\\"))
    })
}

/// One of the managers a node knows (moby's `swarm.Peer`). A worker knows its managers'
/// addresses only: their node IDs are left out.
#[derive(Clone, Debug, PartialEq)]
pub struct Peer {
    pub node_id: Option<String>,
    pub addr: String,
}

/// The node's part in a swarm, as moby's `Cluster.Info` gathers it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SwarmFacts {
    /// `inactive`, `pending`, `active`, `error` or `locked`.
    pub state: &'static str,
    pub error: Option<String>,
    pub node_id: Option<String>,
    pub node_addr: Option<String>,
    /// A manager that can serve cluster requests (moby's `IsActiveManager`).
    pub control_available: bool,
    pub remote_managers: Vec<Peer>,
    /// Nodes and managers (Raft members) in the manager's state.
    pub counts: Option<(usize, usize)>,
    /// The cluster as [`cluster_json`] gives it (a manager's own Raft state).
    pub cluster: Option<Value>,
}

/// Whether the cluster's managers lock at rest (`Spec.EncryptionConfig.AutoLockManagers`):
/// while the swarm holds an unlock key.
pub fn autolock_managers(cluster: &ClusterInfo) -> bool {
    cluster.unlock_key.is_some()
}

/// docker's `Swarm.Cluster` (moby `swarm.ClusterInfo`: the swarm without its join tokens).
///
/// Left out: `Version` and `UpdatedAt` (Shoal keeps neither for the cluster object).
/// The Raft settings are this manager's (`shoald --raft-*`): swarmkit counts in ticks of
/// one second, Shoal in milliseconds, so a tick here is the Raft heartbeat interval:
/// `HeartbeatTick` is 1 and `ElectionTick` the election timeout's lower bound in
/// heartbeats. Shoal keeps one snapshot (`KeepOldSnapshots` 0).
pub fn cluster_json(c: &ClusterInfo, raft: &RaftTiming) -> Value {
    let config = raft.config();
    let heartbeat = raft.heartbeat_ms.max(1);
    let election_tick = raft.election_min_ms.div_ceil(heartbeat);
    let cert_expiry = i64::try_from(c.cert_expiry().as_nanos()).unwrap_or(i64::MAX);
    json!({
        "ID": c.id,
        "CreatedAt": go_time(&c.created_at),
        "Spec": {
            "Name": "default",
            "Labels": {},
            "Orchestration": {"TaskHistoryRetentionLimit": c.task_history},
            "Raft": {
                "SnapshotInterval": raft.snapshot_every,
                "KeepOldSnapshots": 0,
                "LogEntriesForSlowFollowers": config.max_in_snapshot_log_to_keep,
                "ElectionTick": election_tick,
                "HeartbeatTick": 1,
            },
            "Dispatcher": {"HeartbeatPeriod": c.heartbeat_ms.saturating_mul(1_000_000)},
            "CAConfig": {"NodeCertExpiry": cert_expiry},
            "TaskDefaults": {},
            "EncryptionConfig": {"AutoLockManagers": autolock_managers(c)},
        },
        "TLSInfo": c.tls_info_json(),
        "RootRotationInProgress": c.root_rotation.is_some(),
        "DefaultAddrPool": [c.addr_pool],
        "SubnetSize": c.subnet_bits,
        "DataPathPort": c.data_path_port,
    })
}

/// docker's `Swarm` object: key order and omissions as moby's `swarm.Info` marshals.
pub fn swarm_json(f: &SwarmFacts) -> Value {
    let mut m = Map::new();
    m.insert("NodeID".into(), json!(f.node_id.as_deref().unwrap_or("")));
    m.insert(
        "NodeAddr".into(),
        json!(f.node_addr.as_deref().unwrap_or("")),
    );
    m.insert("LocalNodeState".into(), json!(f.state));
    m.insert("ControlAvailable".into(), json!(f.control_available));
    m.insert("Error".into(), json!(f.error.as_deref().unwrap_or("")));
    let remotes = if f.remote_managers.is_empty() {
        Value::Null
    } else {
        let mut peers = f.remote_managers.clone();
        peers.sort_by(|a, b| a.addr.cmp(&b.addr));
        Value::Array(
            peers
                .into_iter()
                .map(|p| {
                    let mut o = Map::new();
                    if let Some(id) = p.node_id {
                        o.insert("NodeID".into(), json!(id));
                    }
                    o.insert("Addr".into(), json!(p.addr));
                    Value::Object(o)
                })
                .collect(),
        )
    };
    m.insert("RemoteManagers".into(), remotes);
    if let Some((nodes, managers)) = f.counts {
        if nodes > 0 {
            m.insert("Nodes".into(), json!(nodes));
        }
        if managers > 0 {
            m.insert("Managers".into(), json!(managers));
        }
    }
    if let Some(c) = &f.cluster {
        m.insert("Cluster".into(), c.clone());
    }
    let warnings = swarm_warnings(f);
    if !warnings.is_empty() {
        m.insert("Warnings".into(), json!(warnings));
    }
    Value::Object(m)
}

/// moby's: two managers give no fault tolerance (said only of a working swarm).
fn swarm_warnings(f: &SwarmFacts) -> Vec<String> {
    let working = !matches!(f.state, "inactive" | "locked" | "error");
    match f.counts {
        Some((_, 2)) if working && f.control_available && f.error.is_none() => {
            vec![TWO_MANAGERS_WARNING.into()]
        }
        _ => Vec::new(),
    }
}

/// The whole reply: moby's `system.Info` keys in its order, for what Shoal fills.
pub fn info_json(host: &Host, swarm: Value) -> Value {
    let mut m = Map::new();
    let t = host.tasks;
    m.insert("Containers".into(), json!(t.running + t.stopped));
    m.insert("ContainersRunning".into(), json!(t.running));
    m.insert("ContainersPaused".into(), json!(0));
    m.insert("ContainersStopped".into(), json!(t.stopped));
    // Shoal runs no images: tasks are processes on the host's filesystem.
    m.insert("Images".into(), json!(0));
    let mut text = |k: &str, v: &str| {
        if !v.is_empty() {
            m.insert(k.into(), json!(v));
        }
    };
    text("KernelVersion", &host.kernel_version);
    text("OperatingSystem", &host.operating_system);
    text("OSVersion", &host.os_version);
    text("OSType", std::env::consts::OS);
    text("Architecture", &host.architecture);
    m.insert("NCPU".into(), json!(host.ncpu));
    m.insert("MemTotal".into(), json!(host.mem_total));
    let mut text = |k: &str, v: &str| {
        if !v.is_empty() {
            m.insert(k.into(), json!(v));
        }
    };
    text("DockerRootDir", &host.root_dir);
    text("Name", &host.name);
    text("ServerVersion", crate::VERSION);
    // moby's system router adds the swarm's warnings to the daemon's.
    let warnings = swarm.get("Warnings").cloned().unwrap_or(Value::Null);
    m.insert("Swarm".into(), swarm);
    m.insert("Warnings".into(), warnings);
    Value::Object(m)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn cluster() -> ClusterInfo {
        let mut c = crate::state::tests::cluster();
        c.created_at = chrono::DateTime::parse_from_rfc3339("2026-11-27T06:32:29.5Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        c
    }

    fn keys(v: &Value) -> Vec<&str> {
        v.as_object().unwrap().keys().map(String::as_str).collect()
    }

    /// Outside a swarm: moby's zero `swarm.Info` (empty strings, `RemoteManagers` null,
    /// no counts, no cluster).
    #[test]
    fn inactive_swarm_is_moby_s_zero_value() {
        let s = swarm_json(&SwarmFacts {
            state: "inactive",
            ..Default::default()
        });
        assert_eq!(
            serde_json::to_string(&s).unwrap(),
            r#"{"NodeID":"","NodeAddr":"","LocalNodeState":"inactive","ControlAvailable":false,"Error":"","RemoteManagers":null}"#
        );
    }

    /// A manager: every field in moby's order, the cluster's settings in docker's units.
    #[test]
    fn manager_swarm_has_docker_s_fields() {
        let c = cluster();
        let s = swarm_json(&SwarmFacts {
            state: "active",
            node_id: Some("n1".into()),
            node_addr: Some("10.0.0.1".into()),
            control_available: true,
            remote_managers: vec![Peer {
                node_id: Some("n1".into()),
                addr: "10.0.0.1:2377".into(),
            }],
            counts: Some((3, 1)),
            cluster: Some(cluster_json(&c, &RaftTiming::default())),
            ..Default::default()
        });
        assert_eq!(
            keys(&s),
            [
                "NodeID",
                "NodeAddr",
                "LocalNodeState",
                "ControlAvailable",
                "Error",
                "RemoteManagers",
                "Nodes",
                "Managers",
                "Cluster"
            ]
        );
        assert_eq!(
            s["RemoteManagers"],
            json!([{"NodeID": "n1", "Addr": "10.0.0.1:2377"}])
        );
        let cl = &s["Cluster"];
        assert_eq!(
            keys(cl),
            [
                "ID",
                "CreatedAt",
                "Spec",
                "TLSInfo",
                "RootRotationInProgress",
                "DefaultAddrPool",
                "SubnetSize",
                "DataPathPort"
            ]
        );
        assert_eq!(cl["CreatedAt"], "2026-11-27T06:32:29.5Z");
        assert_eq!(
            cl["Spec"],
            json!({
                "Name": "default", "Labels": {},
                "Orchestration": {"TaskHistoryRetentionLimit": 5},
                "Raft": {"SnapshotInterval": 10000, "KeepOldSnapshots": 0,
                    "LogEntriesForSlowFollowers": 500, "ElectionTick": 4, "HeartbeatTick": 1},
                "Dispatcher": {"HeartbeatPeriod": 5_000_000_000u64},
                "CAConfig": {"NodeCertExpiry": 7_776_000_000_000_000u64},
                "TaskDefaults": {},
                "EncryptionConfig": {"AutoLockManagers": false}
            })
        );
        assert_eq!(cl["DefaultAddrPool"], json!(["10.0.0.0/8"]));
        assert_eq!(cl["SubnetSize"], 24);
        assert_eq!(cl["DataPathPort"], 4789);
        assert!(s.get("Warnings").is_none());
    }

    /// A worker's facts: its node, two managers by address only (their IDs unknown).
    pub(crate) fn worker_facts() -> SwarmFacts {
        SwarmFacts {
            state: "active",
            node_id: Some("w1".into()),
            node_addr: Some("10.0.0.2".into()),
            remote_managers: vec![
                Peer {
                    node_id: None,
                    addr: "10.0.0.3:2377".into(),
                },
                Peer {
                    node_id: None,
                    addr: "10.0.0.1:2377".into(),
                },
            ],
            ..Default::default()
        }
    }

    /// A worker knows its managers' addresses, not their IDs; it has no counts or cluster.
    #[test]
    fn worker_swarm_has_no_cluster() {
        let s = swarm_json(&worker_facts());
        assert_eq!(
            serde_json::to_string(&s).unwrap(),
            r#"{"NodeID":"w1","NodeAddr":"10.0.0.2","LocalNodeState":"active","ControlAvailable":false,"Error":"","RemoteManagers":[{"Addr":"10.0.0.1:2377"},{"Addr":"10.0.0.3:2377"}]}"#
        );
    }

    /// Two managers: moby's warning, in the swarm's and in the daemon's warnings; not
    /// when the node is in error.
    #[test]
    fn two_managers_warn() {
        let facts = SwarmFacts {
            state: "active",
            control_available: true,
            counts: Some((2, 2)),
            ..Default::default()
        };
        let info = info_json(&Host::default(), swarm_json(&facts));
        assert_eq!(info["Warnings"], json!([TWO_MANAGERS_WARNING]));
        assert_eq!(info["Swarm"]["Warnings"], json!([TWO_MANAGERS_WARNING]));
        let error = SwarmFacts {
            state: "error",
            error: Some("bad".into()),
            ..facts
        };
        let info = info_json(&Host::default(), swarm_json(&error));
        assert_eq!(info["Warnings"], Value::Null);
        assert_eq!(info["Swarm"]["Error"], "bad");
    }

    /// The top level keeps moby's key order and leaves out what Shoal does not have.
    #[test]
    fn info_keys_in_moby_s_order() {
        let host = Host {
            kernel_version: "6.8.0".into(),
            operating_system: "Ubuntu 24.04.1 LTS".into(),
            os_version: "24.04".into(),
            architecture: "x86_64".into(),
            ncpu: 4,
            mem_total: 8 << 30,
            name: "vm1".into(),
            root_dir: "/var/lib/shoal".into(),
            tasks: TaskCounts {
                running: 2,
                stopped: 1,
            },
        };
        let info = info_json(
            &host,
            swarm_json(&SwarmFacts {
                state: "inactive",
                ..Default::default()
            }),
        );
        assert_eq!(
            keys(&info),
            [
                "Containers",
                "ContainersRunning",
                "ContainersPaused",
                "ContainersStopped",
                "Images",
                "KernelVersion",
                "OperatingSystem",
                "OSVersion",
                "OSType",
                "Architecture",
                "NCPU",
                "MemTotal",
                "DockerRootDir",
                "Name",
                "ServerVersion",
                "Swarm",
                "Warnings"
            ]
        );
        assert_eq!(info["ServerVersion"], crate::VERSION);
        assert_eq!(info["OSType"], "linux");
        assert_eq!(
            [
                &info["Containers"],
                &info["ContainersRunning"],
                &info["ContainersPaused"],
                &info["ContainersStopped"],
                &info["Images"]
            ],
            [3, 2, 0, 1, 0]
        );
    }

    #[test]
    fn os_release_values_unquoted() {
        let text = "NAME=\"Ubuntu\"\nVERSION_ID=\"24.04\"\nPRETTY_NAME='Debian GNU/Linux 12 (bookworm)'\nID=debian\n";
        assert_eq!(
            os_release_value(text, "PRETTY_NAME").as_deref(),
            Some("Debian GNU/Linux 12 (bookworm)")
        );
        assert_eq!(
            os_release_value(text, "VERSION_ID").as_deref(),
            Some("24.04")
        );
        assert_eq!(os_release_value(text, "ID").as_deref(), Some("debian"));
        assert_eq!(os_release_value(text, "MISSING"), None);
    }
}
