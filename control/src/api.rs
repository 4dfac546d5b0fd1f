//! The local API between the `shoal` CLI and its `shoald`, over the root-only unix socket.
//!
//! Manager requests are forwarded by a non-leader manager to the leader unchanged, so the same
//! types also travel between managers.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::types::{Availability, Role};

/// The dispatcher heartbeat periods `swarm init` accepts. Below 100ms agents would call
/// the leader in a near-tight loop and the grace (three periods) would be shorter than a
/// busy leader's pauses, so nodes would flap Down/Ready (0s gave a grace of 0); above a day
/// a dead node would go unnoticed for days, and the millisecond arithmetic stays far from
/// overflowing. (swarmkit refuses only negative periods.)
pub const MIN_HEARTBEAT: std::time::Duration = std::time::Duration::from_millis(100);
pub const MAX_HEARTBEAT: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// A dispatcher heartbeat period in milliseconds, if it is in range.
pub fn check_heartbeat(period: std::time::Duration) -> Result<u64, String> {
    if !(MIN_HEARTBEAT..=MAX_HEARTBEAT).contains(&period) {
        return Err(format!(
            "invalid dispatcher heartbeat period {}: it must be between 100ms and 24h",
            humantime::format_duration(period)
        ));
    }
    u64::try_from(period.as_millis()).map_err(|_| "dispatcher heartbeat period too long".into())
}

/// docker's `validateStackName`: a stack name may not be empty, or only whitespace and
/// quotes (its services would be named `_web`, and its label would match nothing).
pub fn check_stack_name(name: &str) -> Result<(), String> {
    if name
        .trim_matches(|c: char| c.is_whitespace() || c == '"' || c == '\'')
        .is_empty()
    {
        return Err(format!("invalid stack name: {name:?}"));
    }
    Ok(())
}

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct InitRequest {
    pub advertise_addr: Option<String>,
    pub listen_addr: Option<String>,
    pub force_new_cluster: bool,
    pub dispatcher_heartbeat_ms: Option<u64>,
    pub task_history_limit: Option<u64>,
    pub default_addr_pool: Option<String>,
    pub default_addr_pool_mask_length: Option<u8>,
    pub data_path_port: Option<u16>,
    /// The availability this node starts with (`--availability`; active when absent).
    #[serde(default)]
    pub availability: Option<crate::types::Availability>,
    /// `--autolock`: managers' keys on disk are sealed by an unlock key.
    #[serde(default)]
    pub autolock: bool,
    /// `--cert-expiry`, in seconds (swarmkit's default 2160h when absent).
    #[serde(default)]
    pub cert_expiry_s: Option<u64>,
}

/// The settings `swarm update` changes (`None`: unchanged).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct SwarmUpdate {
    pub dispatcher_heartbeat_ms: Option<u64>,
    pub task_history_limit: Option<u64>,
    /// `--autolock=true|false`.
    #[serde(default)]
    pub autolock: Option<bool>,
    /// `swarm unlock-key --rotate`.
    #[serde(default)]
    pub rotate_unlock_key: bool,
    /// The new unlock key, made by the leader when autolock is turned on or the key
    /// rotated (what a client sends here is ignored).
    #[serde(default)]
    pub unlock_key: Option<String>,
    /// `--cert-expiry`, in seconds.
    #[serde(default)]
    pub cert_expiry_s: Option<u64>,
}

/// `network create` options (and a stack's declared networks).
#[derive(Serialize, Deserialize, Clone, Debug, Default)]
pub struct NetworkCreate {
    pub name: String,
    pub driver: String,
    pub subnet: Option<String>,
    pub gateway: Option<String>,
    pub attachable: bool,
    pub internal: bool,
    pub labels: std::collections::BTreeMap<String, String>,
    pub options: std::collections::BTreeMap<String, String>,
}

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct JoinRequest {
    pub token: String,
    pub remote_addr: String,
    pub advertise_addr: Option<String>,
    pub listen_addr: Option<String>,
    /// The availability this node starts with (`--availability`; active when absent).
    #[serde(default)]
    pub availability: Option<crate::types::Availability>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default)]
pub struct NodeUpdate {
    pub reference: String,
    pub label_add: Vec<(String, String)>,
    pub label_rm: Vec<String>,
    pub availability: Option<Availability>,
    pub role: Option<Role>,
}

/// A stack as the CLI loaded it from compose files.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct StackDeploy {
    pub name: String,
    pub services: Vec<shoal_spec::ServiceSpec>,
    /// Networks the stack declares (scoped names), and whether each is external.
    pub networks: Vec<(NetworkCreate, bool)>,
    pub prune: bool,
    /// The secrets and configs the stack declares (scoped names), in docker's order.
    #[serde(default)]
    pub secrets: Vec<StackObject>,
    #[serde(default)]
    pub configs: Vec<StackObject>,
}

/// A secret or config a stack declares: created (or its labels updated) unless external.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct StackObject {
    pub name: String,
    pub labels: std::collections::BTreeMap<String, String>,
    /// None for an external object, which must exist.
    pub data: Option<crate::secrets::Data>,
}

#[allow(clippy::large_enum_variant)]
#[derive(Serialize, Deserialize, Clone, Debug)]
pub enum ApiRequest {
    /// What this daemon is: node ID, swarm membership, role.
    Info,
    SwarmInit(InitRequest),
    SwarmJoin(JoinRequest),
    SwarmLeave {
        force: bool,
    },
    JoinToken {
        role: Role,
        rotate: bool,
    },
    /// `swarm update`: the cluster settings given change, the others stay.
    SwarmUpdate(SwarmUpdate),
    NodeList,
    NodeInspect {
        references: Vec<String>,
    },
    NodeUpdate(NodeUpdate),
    NodeRemove {
        reference: String,
        force: bool,
    },
    ServiceCreate {
        spec: shoal_spec::ServiceSpec,
    },
    /// Replace a service's spec; `version` is the Version.Index it was read at.
    ServiceUpdate {
        reference: String,
        version: u64,
        spec: shoal_spec::ServiceSpec,
    },
    ServiceRollback {
        reference: String,
    },
    ServiceRemove {
        reference: String,
    },
    /// Services (all, or those named) in docker's JSON, with running/desired counts.
    ServiceList {
        references: Vec<String>,
        stack: Option<String>,
    },
    ServiceInspect {
        references: Vec<String>,
    },
    /// A service's stored spec and version, for a client-side update.
    ServiceGetSpec {
        reference: String,
    },
    /// Tasks of services, of nodes, or of a stack.
    TaskList {
        services: Vec<String>,
        nodes: Vec<String>,
        stack: Option<String>,
        /// Only tasks made from their service's current spec (docker's `_up-to-date`
        /// filter, which its convergence progress uses).
        #[serde(default)]
        up_to_date: bool,
    },
    /// Any object by ID or name, as docker's `inspect` looks: network, service, task,
    /// node, secret, config.
    Inspect {
        references: Vec<String>,
    },
    /// A page of logs: from `cursor` (where the previous page ended), or from the start
    /// (the last `tail` lines) of each task not in it.
    Logs {
        reference: String,
        tail: Option<usize>,
        #[serde(default)]
        cursor: Option<LogCursor>,
    },
    StackDeploy(StackDeploy),
    /// Run a command in a running task (the connection then carries exec frames).
    Exec {
        reference: String,
        argv: Vec<String>,
        interactive: bool,
        tty: Option<crate::daemon::exec::Tty>,
    },
    /// Where a running task runs: by task ID, ID prefix or `<service>.<slot>` name.
    TaskLocation {
        reference: String,
    },
    StackList,
    StackRemove {
        name: String,
    },
    NetworkCreate(NetworkCreate),
    NetworkList,
    NetworkInspect {
        references: Vec<String>,
    },
    NetworkRemove {
        reference: String,
    },
    /// Where a node's daemon listens: by ID, ID prefix, hostname or `self`.
    NodeLocation {
        reference: String,
    },
    /// `shoal debug lb [NODE]`: the load balancer of this node, or of NODE.
    LbReport {
        node: Option<String>,
    },
    /// `secret create` / `config create`.
    SecretCreate {
        kind: crate::secrets::Kind,
        name: String,
        labels: std::collections::BTreeMap<String, String>,
        data: crate::secrets::Data,
    },
    /// `secret ls` / `config ls`, with the `-f` values by key (checked by the daemon).
    SecretList {
        kind: crate::secrets::Kind,
        filters: std::collections::BTreeMap<String, Vec<String>>,
    },
    SecretInspect {
        kind: crate::secrets::Kind,
        references: Vec<String>,
    },
    SecretRemove {
        kind: crate::secrets::Kind,
        reference: String,
    },
    /// `shoal info`: docker's `GET /info`, answered by the node itself.
    SystemInfo,
    /// `swarm unlock`: the unlock key, to open this node's sealed keys (answered here).
    SwarmUnlock {
        key: String,
    },
    /// `swarm unlock-key`: the swarm's unlock key ("" while autolock is off).
    UnlockKey,
    /// `network inspect --verbose`: each network with docker's `Peers` and `Services`
    /// (the tasks on it, by service), as the manager's cluster state has them.
    NetworkInspectVerbose {
        references: Vec<String>,
    },
    /// `inspect --type TYPE`: objects of that type only (docker's `allTypes`; those
    /// Shoal has none of are never found).
    InspectType {
        references: Vec<String>,
        object_type: String,
    },
    /// `swarm ca`: the swarm's root CA certificate (docker's `TLSInfo.TrustRoot`).
    TrustRoot,
    /// `swarm ca --rotate`: start a root CA rotation (or end or restart one).
    CaRotate(crate::ca_rotation::CaRotate),
}

impl ApiRequest {
    /// Requests that only a manager may serve (answered by the leader).
    pub fn needs_manager(&self) -> bool {
        matches!(
            self,
            ApiRequest::JoinToken { .. }
                | ApiRequest::SwarmUpdate(_)
                | ApiRequest::ServiceCreate { .. }
                | ApiRequest::ServiceUpdate { .. }
                | ApiRequest::ServiceRollback { .. }
                | ApiRequest::ServiceRemove { .. }
                | ApiRequest::ServiceList { .. }
                | ApiRequest::ServiceInspect { .. }
                | ApiRequest::ServiceGetSpec { .. }
                | ApiRequest::TaskList { .. }
                | ApiRequest::Inspect { .. }
                | ApiRequest::Logs { .. }
                | ApiRequest::StackDeploy(_)
                | ApiRequest::NetworkCreate(_)
                | ApiRequest::NetworkList
                | ApiRequest::NetworkInspect { .. }
                | ApiRequest::NetworkRemove { .. }
                | ApiRequest::TaskLocation { .. }
                | ApiRequest::NodeLocation { .. }
                | ApiRequest::StackList
                | ApiRequest::StackRemove { .. }
                | ApiRequest::NodeList
                | ApiRequest::NodeInspect { .. }
                | ApiRequest::NodeUpdate(_)
                | ApiRequest::NodeRemove { .. }
                | ApiRequest::SecretCreate { .. }
                | ApiRequest::SecretList { .. }
                | ApiRequest::SecretInspect { .. }
                | ApiRequest::SecretRemove { .. }
                | ApiRequest::UnlockKey
                | ApiRequest::NetworkInspectVerbose { .. }
                | ApiRequest::InspectType { .. }
                | ApiRequest::TrustRoot
                | ApiRequest::CaRotate(_)
        )
    }

    /// Requests that change the state (metrics label).
    pub fn kind(&self) -> &'static str {
        match self {
            ApiRequest::Info => "info",
            ApiRequest::SwarmInit(_) => "swarm_init",
            ApiRequest::SwarmJoin(_) => "swarm_join",
            ApiRequest::SwarmLeave { .. } => "swarm_leave",
            ApiRequest::JoinToken { .. } => "join_token",
            ApiRequest::SwarmUpdate(_) => "swarm_update",
            ApiRequest::NodeList => "node_list",
            ApiRequest::NodeInspect { .. } => "node_inspect",
            ApiRequest::NodeUpdate(_) => "node_update",
            ApiRequest::NodeRemove { .. } => "node_remove",
            ApiRequest::ServiceCreate { .. } => "service_create",
            ApiRequest::ServiceUpdate { .. } => "service_update",
            ApiRequest::ServiceRollback { .. } => "service_rollback",
            ApiRequest::ServiceRemove { .. } => "service_remove",
            ApiRequest::ServiceList { .. } => "service_list",
            ApiRequest::ServiceInspect { .. } => "service_inspect",
            ApiRequest::ServiceGetSpec { .. } => "service_get_spec",
            ApiRequest::TaskList { .. } => "task_list",
            ApiRequest::Inspect { .. } => "inspect",
            ApiRequest::Logs { .. } => "logs",
            ApiRequest::StackDeploy(_) => "stack_deploy",
            ApiRequest::Exec { .. } => "exec",
            ApiRequest::TaskLocation { .. } => "task_location",
            ApiRequest::StackList => "stack_list",
            ApiRequest::StackRemove { .. } => "stack_remove",
            ApiRequest::NetworkCreate(_) => "network_create",
            ApiRequest::NetworkList => "network_list",
            ApiRequest::NetworkInspect { .. } => "network_inspect",
            ApiRequest::NetworkRemove { .. } => "network_remove",
            ApiRequest::NodeLocation { .. } => "node_location",
            ApiRequest::LbReport { .. } => "lb_report",
            ApiRequest::SecretCreate { .. } => "secret_create",
            ApiRequest::SecretList { .. } => "secret_list",
            ApiRequest::SecretInspect { .. } => "secret_inspect",
            ApiRequest::SecretRemove { .. } => "secret_remove",
            ApiRequest::SystemInfo => "system_info",
            ApiRequest::SwarmUnlock { .. } => "swarm_unlock",
            ApiRequest::UnlockKey => "unlock_key",
            ApiRequest::NetworkInspectVerbose { .. } => "network_inspect",
            ApiRequest::InspectType { .. } => "inspect",
            ApiRequest::TrustRoot => "trust_root",
            ApiRequest::CaRotate(_) => "ca_rotate",
        }
    }
}

/// How much of each task's log a `service logs` reader has had: task ID -> byte offset.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct LogCursor {
    pub offsets: std::collections::BTreeMap<String, u64>,
    /// Tasks read to the end of their log after they had ended: nothing more will come,
    /// so `--follow` asks their nodes no more. (A CLI that predates it drops it: those
    /// tasks are then asked again, for nothing new.)
    #[serde(default, skip_serializing_if = "std::collections::BTreeSet::is_empty")]
    pub done: std::collections::BTreeSet<String>,
}

/// About how many bytes one page of `service logs` carries (each reply and each frame
/// stays far below the frame limit, however large the log).
pub const LOG_PAGE: usize = 1 << 20;

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct Info {
    pub node_id: Option<String>,
    pub role: Option<Role>,
    pub cluster_id: Option<String>,
    pub node_addr: Option<String>,
    pub leader_addr: Option<String>,
    pub managers: Vec<String>,
    /// Its keys are sealed and it waits for `swarm unlock` (docker's LocalNodeState
    /// "locked").
    #[serde(default)]
    pub locked: bool,
}

// Messages: built once, serialized, dropped; boxing variants would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Serialize, Deserialize, Clone, Debug)]
pub enum ApiReply {
    Info(Info),
    Initialized {
        node_id: String,
        worker_token: String,
        manager_addr: String,
        /// The unlock key under autolock, in the reply itself: the node is sealed by it
        /// before the reply leaves, and must not be sealed by a key nobody was shown.
        #[serde(default)]
        unlock_key: Option<String>,
    },
    Joined {
        role: Role,
    },
    Left,
    Token {
        token: String,
        manager_addr: String,
        rotated: bool,
    },
    /// Nodes in docker's JSON shape, and the ID of the node that was asked.
    Nodes {
        nodes: Vec<Value>,
        self_id: Option<String>,
    },
    /// Per reference: the node's JSON or "not found" error.
    Inspected {
        nodes: Vec<Result<Value, String>>,
    },
    Done,
    ServiceCreated {
        id: String,
    },
    ServiceSpec {
        id: String,
        version: u64,
        spec: shoal_spec::ServiceSpec,
    },
    /// Services in docker's JSON with (running, desired) task counts.
    Services {
        services: Vec<(Value, u64, u64)>,
    },
    /// Tasks in docker's JSON, with node ID -> display name.
    Tasks {
        tasks: Vec<Value>,
        node_names: std::collections::BTreeMap<String, String>,
    },
    Objects {
        objects: Vec<Result<Value, String>>,
    },
    /// A page of logs (at most about `LOG_PAGE` bytes); `more`: ask again with `cursor`
    /// for the rest. Follow polls with the last cursor.
    Logs {
        #[serde(with = "crate::wire::base64_bytes")]
        text: Vec<u8>,
        #[serde(default)]
        cursor: LogCursor,
        #[serde(default)]
        more: bool,
    },
    /// What stack deploy / rm did, in docker's words, one line each; `errors` are what
    /// failed on the way (stderr lines), after which the command exits 1.
    Lines {
        lines: Vec<String>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        errors: Vec<String>,
    },
    Stacks {
        stacks: Vec<(String, usize)>,
    },
    TaskLocation {
        task_id: String,
        node_id: String,
        listen_addr: String,
    },
    /// Networks in docker's JSON.
    Networks {
        networks: Vec<Value>,
    },
    NodeLocation {
        node_id: String,
        listen_addr: String,
    },
    LbReport(LbReport),
    /// Secrets or configs in docker's JSON (a secret's without its data).
    Secrets {
        items: Vec<Value>,
    },
    /// docker's `GET /info` JSON, for what Shoal has (see `crate::system_info`).
    SystemInfo {
        info: Value,
    },
    /// The swarm's unlock key, "" while autolock is off.
    UnlockKey {
        key: String,
    },
    /// The root CA certificate, PEM, with docker's `ClusterInfo.TLSInfo` (the issuer the
    /// swarm wants node certificates from) and `RootRotationInProgress`.
    TrustRoot {
        pem: String,
        #[serde(default)]
        tls_info: Value,
        #[serde(default)]
        rotation_in_progress: bool,
    },
}

/// One node's load balancer, as `shoal debug lb` prints it (`--format json`
/// prints this shape) and `/metrics` exports it. Counters are this node's:
/// each node balances the flows that enter through it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct LbReport {
    #[serde(rename = "NodeID")]
    pub node_id: String,
    pub hostname: String,
    /// Maglev table size (`shoald --lb-maglev-size`).
    pub maglev_size: u32,
    pub timeouts: LbTimeouts,
    pub conntrack: LbConntrack,
    pub services: Vec<LbServiceReport>,
    /// The overlay's fast path on this node.
    #[serde(default)]
    pub overlay: LbOverlay,
}

/// The overlay's fast path (VXLAN in eBPF) on a node: packets it carried since
/// its maps were made, and what it knows. Off with `shoald --no-overlay-fastpath`.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct LbOverlay {
    pub enabled: bool,
    /// Mesh flows entering this node may be answered by the backend's node
    /// (`shoald --lb-dsr`).
    #[serde(default)]
    pub direct_server_return: bool,
    /// Frames of local tasks encapsulated to other nodes.
    pub encapsulated: u64,
    /// Mesh requests encapsulated here, at the entry node, to a backend's node.
    pub mesh_encapsulated: u64,
    /// Frames decapsulated here into local tasks.
    pub decapsulated: u64,
    /// Mesh replies decapsulated here and sent on to their clients.
    pub mesh_replies: u64,
    /// Mesh replies of local tasks sent straight to their clients (direct server return).
    #[serde(default)]
    pub direct_replies: u64,
    /// Mesh packets between this node and its own tasks, past the bridge (both ways).
    #[serde(default)]
    pub mesh_local: u64,
    /// Mesh requests too large for the underlay once encapsulated, answered
    /// with an ICMP "fragmentation needed".
    #[serde(default)]
    pub frag_needed: u64,
    /// Mesh request fragments too large for the underlay once encapsulated,
    /// split in two that fit.
    #[serde(default)]
    pub split: u64,
    /// Overlay endpoints (local and remote tasks) and networks in its maps.
    pub endpoints: u64,
    pub networks: u64,
}

/// Conntrack idle timeouts, in nanoseconds (docker's unit for durations).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct LbTimeouts {
    pub tcp_syn: u64,
    pub tcp_established: u64,
    pub tcp_closing: u64,
    pub udp: u64,
}

/// Entries of the node's conntrack map: live flows by state, and `Expired`
/// ones (idle past their timeout, ignored, deleted by the next sweep).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct LbConntrack {
    pub live: u64,
    pub tcp_syn: u64,
    pub tcp_established: u64,
    pub tcp_closing: u64,
    pub udp: u64,
    pub expired: u64,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct LbServiceReport {
    pub name: String,
    /// `10.0.0.5:*` (a VIP) or `*:8080/tcp` (a published port).
    pub frontend: String,
    /// 0 while the service has no active backend.
    pub maglev_size: u32,
    /// Packets dropped for want of a backend.
    pub drops: u64,
    pub backends: Vec<LbBackendReport>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct LbBackendReport {
    /// The task's name (`web.1`), or its ID when this node does not know it.
    pub task: String,
    #[serde(rename = "TaskID")]
    pub task_id: String,
    /// The hostname of the task's node (its ID when unknown).
    pub node: String,
    /// `IP:port` (`IP:*` for a VIP's backends: the client's port is kept).
    pub addr: String,
    /// `active`, `terminating` (no new flows, keeps its own) or `down` (its node
    /// does not answer: no new flows, and its flows move).
    pub state: String,
    pub maglev_slots: u32,
    /// Fraction of the Maglev table (of new flows) this backend gets.
    pub maglev_share: f64,
    /// Toward the backend (client to backend); replies are not counted.
    pub packets: u64,
    pub bytes: u64,
    pub new_flows: u64,
    pub active_flows: u64,
}

/// An error as the CLI prints it. `from_daemon` errors get docker's
/// "Error response from daemon: " prefix.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct ApiError {
    pub message: String,
    pub from_daemon: bool,
}

impl ApiError {
    pub fn daemon(message: impl Into<String>) -> Self {
        ApiError {
            message: message.into(),
            from_daemon: true,
        }
    }
    pub fn plain(message: impl Into<String>) -> Self {
        ApiError {
            message: message.into(),
            from_daemon: false,
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.from_daemon {
            write!(f, "Error response from daemon: {}", self.message)
        } else {
            f.write_str(&self.message)
        }
    }
}

pub type ApiResult = Result<ApiReply, ApiError>;

/// docker's messages, verbatim with `shoal` for `docker`.
pub mod msg {
    pub const NOT_MANAGER_WORKER: &str = "This node is not a swarm manager. Worker nodes can't be used to view or modify cluster state. Please run this command on a manager node or promote the current node to a manager.";
    pub const NOT_IN_SWARM_MANAGER: &str = "This node is not a swarm manager. Use \"shoal swarm init\" or \"shoal swarm join\" to connect this node to swarm and try again.";
    pub const ALREADY_IN_SWARM: &str = "This node is already part of a swarm. Use \"shoal swarm leave\" to leave this swarm and join another one.";
    pub const NOT_IN_SWARM: &str = "This node is not part of a swarm";
    pub const NO_LEADER: &str = "rpc error: code = Unknown desc = The swarm does not have a leader. It's possible that too few managers are online. Make sure more than half of the managers are online.";
    /// moby's errSwarmLocked.
    pub const SWARM_LOCKED: &str = "Swarm is encrypted and needs to be unlocked before it can be used. Please use \"shoal swarm unlock\" to unlock it.";
    /// moby's Leave on a locked node without --force.
    pub const LEAVE_LOCKED: &str = "Swarm is encrypted and locked. Please unlock it first or use `--force` to ignore this message.";
    /// moby's errSwarmCertificatesExpired.
    pub const CERTS_EXPIRED: &str =
        "Swarm certificates have expired. To replace them, leave the swarm and join again.";
    /// moby's notLockedError.
    pub const NOT_LOCKED: &str = "swarm is not locked";
    /// moby's invalidUnlockKey.
    pub const INVALID_UNLOCK_KEY: &str = "swarm could not be unlocked: invalid key provided";
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// The cursor's ended tasks are new on the wire: a cursor from a CLI that predates
    /// them reads as none ended (those tasks are asked again, for nothing new).
    #[test]
    fn log_cursor_done_is_optional_on_the_wire() {
        let old: LogCursor = serde_json::from_str(r#"{"offsets":{"t1":12}}"#).unwrap();
        assert_eq!(old.offsets.get("t1"), Some(&12));
        assert!(old.done.is_empty());
        let mut c = old.clone();
        c.done.insert("t1".into());
        let back: LogCursor = serde_json::from_str(&serde_json::to_string(&c).unwrap()).unwrap();
        assert_eq!(back, c);
        assert_eq!(
            serde_json::to_string(&old).unwrap(),
            r#"{"offsets":{"t1":12}}"#
        );
    }

    #[test]
    fn stack_names_like_docker() {
        assert_eq!(check_stack_name(""), Err("invalid stack name: \"\"".into()));
        assert_eq!(
            check_stack_name(" '\" "),
            Err("invalid stack name: \" '\\\" \"".into())
        );
        assert_eq!(check_stack_name("webapp"), Ok(()));
    }

    /// 0s and 500us (a grace of 0: nodes flap, agents spin) and periods whose grace
    /// overflows are refused; the default and the tests' 1s pass.
    #[test]
    fn heartbeat_period_range() {
        assert_eq!(check_heartbeat(Duration::from_secs(5)), Ok(5000));
        assert_eq!(check_heartbeat(Duration::from_secs(1)), Ok(1000));
        assert_eq!(check_heartbeat(MIN_HEARTBEAT), Ok(100));
        assert_eq!(check_heartbeat(MAX_HEARTBEAT), Ok(86_400_000));
        for bad in [
            Duration::ZERO,
            Duration::from_micros(500),
            Duration::from_secs(6_200_000_000_000_000),
        ] {
            assert!(check_heartbeat(bad)
                .unwrap_err()
                .starts_with("invalid dispatcher heartbeat period"));
        }
        assert_eq!(
            check_heartbeat(Duration::from_micros(500)).unwrap_err(),
            "invalid dispatcher heartbeat period 500us: it must be between 100ms and 24h"
        );
    }
}
