//! Service and task specs, field for field in docker's JSON shape (moby api/types/swarm),
//! so `service inspect` prints them as they are stored. Durations are i64 nanoseconds.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub mod availability;
pub mod constraint;
pub use availability::{Availability, AvailabilityError};
pub use constraint::{Constraint, ConstraintError, NodeFacts};

pub type Labels = BTreeMap<String, String>;

fn is_zero_u64(v: &u64) -> bool {
    *v == 0
}
fn is_zero_i64(v: &i64) -> bool {
    *v == 0
}
fn is_false(v: &bool) -> bool {
    !*v
}

pub const SECOND_NS: i64 = 1_000_000_000;

/// `docker service create/update` and compose `services.X`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "PascalCase")]
pub struct ServiceSpec {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(default)]
    pub labels: Labels,
    #[serde(default)]
    pub task_template: TaskSpec,
    #[serde(default)]
    pub mode: ServiceMode,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_config: Option<UpdateConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback_config: Option<UpdateConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint_spec: Option<EndpointSpec>,
}

impl ServiceSpec {
    fn ports(&self) -> impl Iterator<Item = &PortConfig> {
        self.endpoint_spec.iter().flat_map(|e| e.ports.iter())
    }

    /// Whether any port is published in ingress mode (the routing mesh).
    pub fn publishes_ingress(&self) -> bool {
        self.ports().any(|p| p.publish_mode == PublishMode::Ingress)
    }

    /// The ports published in host mode: each of the service's tasks holds them on its
    /// node. One without a published port gets its own, picked for the task on its node
    /// (docker's engine picks it from the node's ephemeral range).
    pub fn host_mode_ports(&self) -> Vec<PortConfig> {
        self.ports()
            .filter(|p| p.publish_mode == PublishMode::Host)
            .cloned()
            .collect()
    }
}

/// Exactly one of the modes is set.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct ServiceMode {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicated: Option<Replicated>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub global: Option<Global>,
}

impl Default for ServiceMode {
    fn default() -> Self {
        ServiceMode::replicated(1)
    }
}

impl ServiceMode {
    pub fn replicated(replicas: u64) -> Self {
        ServiceMode {
            replicated: Some(Replicated { replicas }),
            global: None,
        }
    }
    pub fn global() -> Self {
        ServiceMode {
            replicated: None,
            global: Some(Global {}),
        }
    }
    pub fn is_global(&self) -> bool {
        self.global.is_some()
    }
    /// Desired replicas of a replicated service (None for global).
    pub fn replicas(&self) -> Option<u64> {
        self.replicated.as_ref().map(|r| r.replicas)
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct Replicated {
    pub replicas: u64,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Global {}

/// What each task of a service runs, and where.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "PascalCase")]
pub struct TaskSpec {
    #[serde(default)]
    pub container_spec: ContainerSpec,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart_policy: Option<RestartPolicy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placement: Option<Placement>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub networks: Vec<NetworkAttachmentConfig>,
    /// Bumped by `service update --force` to redeploy every task.
    #[serde(default)]
    pub force_update: u64,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerSpec {
    #[serde(default)]
    pub image: String,
    #[serde(default, skip_serializing_if = "Labels::is_empty")]
    pub labels: Labels,
    /// Entrypoint override (docker's ContainerSpec.Command).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    /// Arguments (docker's ContainerSpec.Args).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub hostname: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub dir: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub user: String,
    /// Supplementary groups of the task's process (names in the group file, or numbers),
    /// added to those of its user.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    /// Run an init as the task's pid 1 that forwards signals to the command and reaps
    /// orphans (docker's `--init`, compose's `init:`); unset means no.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init: Option<bool>,
    /// The signal that asks the task to stop (`SIGINT`, `INT`, `2`); empty is SIGTERM.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub stop_signal: String,
    /// docker's `-t`: recorded and shown; the task's output still goes to its log, not
    /// to a pseudo-terminal.
    #[serde(rename = "TTY", default, skip_serializing_if = "is_false")]
    pub tty: bool,
    /// The task's root filesystem mounted read-only (its mounts stay as they are).
    #[serde(default, skip_serializing_if = "is_false")]
    pub read_only: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mounts: Vec<Mount>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_grace_period: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<HealthConfig>,
    /// Lines for the task's /etc/hosts in swarmkit's order, `IP hostname [aliases...]`
    /// (the CLI's `host:ip` turned around).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<String>,
    #[serde(rename = "DNSConfig", default, skip_serializing_if = "Option::is_none")]
    pub dns_config: Option<DnsConfig>,
    /// Kernel parameters set in the task's own namespaces (`net.*`, IPC ones).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub sysctls: BTreeMap<String, String>,
    /// `CAP_NET_ADMIN`, or `ALL`: added to docker's default set.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub capability_add: Vec<String>,
    /// `CAP_NET_RAW`, or `ALL`: taken from docker's default set.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub capability_drop: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ulimits: Vec<Ulimit>,
    /// Swarm secrets the task gets as files (in `/run/secrets/` unless absolute).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<SecretReference>,
    /// Swarm configs the task gets as files (at `/<target>` unless absolute).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub configs: Vec<ConfigReference>,
    /// The task's oom_score_adj (-1000 to 1000); 0 leaves the node's.
    #[serde(default, skip_serializing_if = "is_zero_i64")]
    pub oom_score_adj: i64,
}

/// docker's NormalizeCapability: upper case, `CAP_` prefixed (`ALL` and `RESET` as they are).
pub fn normalize_capability(cap: &str) -> String {
    let cap = cap.trim().to_ascii_uppercase();
    if cap == "ALL" || cap == "RESET" || cap.starts_with("CAP_") {
        cap
    } else {
        format!("CAP_{cap}")
    }
}

/// docker's EffectiveCapAddCapDrop (`--cap-add`/`--cap-drop`, compose's `cap_add`/
/// `cap_drop`): normalized, `ALL` alone when given, a capability both added and dropped
/// only added, `RESET` left out, each list sorted.
pub fn effective_cap_add_cap_drop(add: &[String], drop: &[String]) -> (Vec<String>, Vec<String>) {
    let normalized = |caps: &[String]| -> std::collections::BTreeSet<String> {
        let set: std::collections::BTreeSet<String> =
            caps.iter().map(|c| normalize_capability(c)).collect();
        if set.contains("ALL") {
            ["ALL".to_string()].into()
        } else {
            set
        }
    };
    let (add, drop) = (normalized(add), normalized(drop));
    let cap_drop = drop
        .iter()
        .filter(|c| !add.contains(*c) && *c != "RESET")
        .cloned()
        .collect();
    let cap_add = add.into_iter().filter(|c| c != "RESET").collect();
    (cap_add, cap_drop)
}

/// docker's DNSConfig: the task's resolv.conf.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "PascalCase")]
pub struct DnsConfig {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nameservers: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub search: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
}

/// One resource limit (`nofile`, `nproc`...); -1 is unlimited.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "PascalCase")]
pub struct Ulimit {
    pub name: String,
    pub hard: i64,
    pub soft: i64,
}

/// Where a secret or config appears in a task: docker's `SecretReferenceFileTarget` and
/// `ConfigReferenceFileTarget`. UID and GID are strings of digits, as in docker.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct FileTarget {
    pub name: String,
    #[serde(rename = "UID")]
    pub uid: String,
    #[serde(rename = "GID")]
    pub gid: String,
    /// Permission bits, as docker's `os.FileMode` (0o444 by default).
    pub mode: u32,
}

impl FileTarget {
    /// docker-cli's defaults: root-owned, read-only for everyone.
    pub fn new(name: &str) -> FileTarget {
        FileTarget {
            name: name.to_string(),
            uid: "0".into(),
            gid: "0".into(),
            mode: 0o444,
        }
    }
}

/// A service's use of a secret: docker's `SecretReference`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct SecretReference {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<FileTarget>,
    #[serde(rename = "SecretID", default)]
    pub secret_id: String,
    #[serde(default)]
    pub secret_name: String,
}

/// A service's use of a config: docker's `ConfigReference`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct ConfigReference {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<FileTarget>,
    #[serde(rename = "ConfigID", default)]
    pub config_id: String,
    #[serde(default)]
    pub config_name: String,
}

impl ContainerSpec {
    /// The command line a task runs: Command then Args, less a Command of just ""
    /// (docker's reset of the image's entrypoint, compose's `entrypoint: [""]`). Its first
    /// word, if any, is the program; it may be "" when the spec says so: Args of
    /// `service create busybox "" sleep 1` are kept as given, as docker runs them.
    pub fn argv(&self) -> Vec<String> {
        let command: &[String] = match self.command.as_slice() {
            [reset] if reset.is_empty() => &[],
            command => command,
        };
        command.iter().chain(&self.args).cloned().collect()
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "PascalCase")]
pub struct Mount {
    /// "volume" or "bind".
    #[serde(rename = "Type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub source: String,
    pub target: String,
    #[serde(default, skip_serializing_if = "is_false")]
    pub read_only: bool,
}

impl Mount {
    /// The mount types swarm's API has (swarmkit's Mount_MountType); moby's daemon refuses
    /// any other with [`Mount::invalid_type`]. Shoal's executor mounts volumes and binds.
    pub const TYPES: &'static [&'static str] = &["bind", "volume", "tmpfs", "npipe", "cluster"];

    /// moby's refusal of a mount type swarm's API does not have (`""` is its default,
    /// a bind mount, and never refused).
    pub fn invalid_type(kind: &str) -> Option<String> {
        (!kind.is_empty() && !Mount::TYPES.contains(&kind))
            .then(|| format!("invalid MountType: {kind:?}"))
    }

    /// docker's rule for local volume names, `[a-zA-Z0-9][a-zA-Z0-9_.-]+`: a plain name,
    /// so a volume's directory (`<data root>/volumes/<name>`) stays under the data root
    /// (`source=../../x` would not).
    pub fn is_volume_name(name: &str) -> bool {
        let mut chars = name.chars();
        chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
            && name.len() >= 2
            && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
    }
}

/// Healthcheck: Test is ["CMD", args...], ["CMD-SHELL", "cmd"] or ["NONE"].
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "PascalCase")]
pub struct HealthConfig {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub test: Vec<String>,
    #[serde(default, skip_serializing_if = "is_zero_i64")]
    pub interval: i64,
    #[serde(default, skip_serializing_if = "is_zero_i64")]
    pub timeout: i64,
    #[serde(default, skip_serializing_if = "is_zero_i64")]
    pub start_period: i64,
    /// Time between probes during the start period, until one succeeds (docker 25+,
    /// API 1.44); 0 means docker's default, 5s.
    #[serde(default, skip_serializing_if = "is_zero_i64")]
    pub start_interval: i64,
    #[serde(default, skip_serializing_if = "is_zero_u64")]
    pub retries: u64,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "PascalCase")]
pub struct ResourceRequirements {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<Limit>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reservations: Option<Limit>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "PascalCase")]
pub struct Limit {
    #[serde(rename = "NanoCPUs", default, skip_serializing_if = "is_zero_i64")]
    pub nano_cpus: i64,
    #[serde(default, skip_serializing_if = "is_zero_i64")]
    pub memory_bytes: i64,
    #[serde(default, skip_serializing_if = "is_zero_i64")]
    pub pids: i64,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "kebab-case")]
pub enum RestartCondition {
    None,
    OnFailure,
    #[default]
    Any,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "PascalCase")]
pub struct RestartPolicy {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<RestartCondition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<i64>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "PascalCase")]
pub struct Placement {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub constraints: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub preferences: Vec<PlacementPreference>,
    #[serde(default, skip_serializing_if = "is_zero_u64")]
    pub max_replicas: u64,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "PascalCase")]
pub struct PlacementPreference {
    pub spread: SpreadOver,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "PascalCase")]
pub struct SpreadOver {
    /// e.g. "node.labels.zone"
    pub spread_descriptor: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "PascalCase")]
pub struct NetworkAttachmentConfig {
    /// Network name or ID.
    pub target: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum FailureAction {
    #[default]
    Pause,
    Continue,
    Rollback,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "kebab-case")]
pub enum UpdateOrder {
    #[default]
    StopFirst,
    StartFirst,
}

/// update_config / rollback_config. Defaults as swarmkit: parallelism 1, delay 0,
/// failure_action pause, monitor 5s, max_failure_ratio 0, order stop-first.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct UpdateConfig {
    pub parallelism: u64,
    #[serde(default, skip_serializing_if = "is_zero_i64")]
    pub delay: i64,
    #[serde(default)]
    pub failure_action: FailureAction,
    #[serde(default)]
    pub monitor: i64,
    #[serde(default)]
    pub max_failure_ratio: f32,
    #[serde(default)]
    pub order: UpdateOrder,
}

impl Default for UpdateConfig {
    fn default() -> Self {
        UpdateConfig {
            parallelism: 1,
            delay: 0,
            failure_action: FailureAction::Pause,
            monitor: 5 * SECOND_NS,
            max_failure_ratio: 0.0,
            order: UpdateOrder::StopFirst,
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum EndpointMode {
    #[default]
    Vip,
    Dnsrr,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "PascalCase")]
pub struct EndpointSpec {
    #[serde(default)]
    pub mode: EndpointMode,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<PortConfig>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    #[default]
    Tcp,
    Udp,
    Sctp,
}

impl Protocol {
    /// Docker's name of the protocol, as in `8080/tcp`.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Sctp => "sctp",
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum PublishMode {
    #[default]
    Ingress,
    Host,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "PascalCase")]
pub struct PortConfig {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(default)]
    pub protocol: Protocol,
    pub target_port: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub published_port: Option<u16>,
    #[serde(default)]
    pub publish_mode: PublishMode,
}

/// Task states, in lifecycle order (docker's enum and casing).
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default,
)]
#[serde(rename_all = "lowercase")]
pub enum TaskState {
    #[default]
    New,
    Allocated,
    Pending,
    Assigned,
    Accepted,
    Preparing,
    Ready,
    Starting,
    Running,
    Complete,
    Shutdown,
    Failed,
    Rejected,
    Remove,
    Orphaned,
}

impl TaskState {
    pub fn as_str(self) -> &'static str {
        match self {
            TaskState::New => "new",
            TaskState::Allocated => "allocated",
            TaskState::Pending => "pending",
            TaskState::Assigned => "assigned",
            TaskState::Accepted => "accepted",
            TaskState::Preparing => "preparing",
            TaskState::Ready => "ready",
            TaskState::Starting => "starting",
            TaskState::Running => "running",
            TaskState::Complete => "complete",
            TaskState::Shutdown => "shutdown",
            TaskState::Failed => "failed",
            TaskState::Rejected => "rejected",
            TaskState::Remove => "remove",
            TaskState::Orphaned => "orphaned",
        }
    }

    /// The task will not run again (it ended, failed, or was stopped).
    pub fn is_terminal(self) -> bool {
        self > TaskState::Running
    }

    /// Progress number docker's progress bars use (new 1 .. running 9).
    pub fn progress_step(self) -> u32 {
        match self {
            TaskState::New => 1,
            TaskState::Allocated => 2,
            TaskState::Pending => 3,
            TaskState::Assigned => 4,
            TaskState::Accepted => 5,
            TaskState::Preparing => 6,
            TaskState::Ready => 7,
            TaskState::Starting => 8,
            _ => 9,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shapes serialize with docker's key names and casing.
    #[test]
    fn docker_shapes() {
        let spec = ServiceSpec {
            name: "web".into(),
            task_template: TaskSpec {
                container_spec: ContainerSpec {
                    image: "nginx:alpine".into(),
                    stop_grace_period: Some(10 * SECOND_NS),
                    ..Default::default()
                },
                restart_policy: Some(RestartPolicy {
                    condition: Some(RestartCondition::OnFailure),
                    ..Default::default()
                }),
                ..Default::default()
            },
            mode: ServiceMode::replicated(2),
            endpoint_spec: Some(EndpointSpec {
                mode: EndpointMode::Vip,
                ports: vec![PortConfig {
                    target_port: 80,
                    published_port: Some(8080),
                    ..Default::default()
                }],
            }),
            ..Default::default()
        };
        let v = serde_json::to_value(&spec).unwrap();
        assert_eq!(v["TaskTemplate"]["ContainerSpec"]["Image"], "nginx:alpine");
        assert_eq!(
            v["TaskTemplate"]["RestartPolicy"]["Condition"],
            "on-failure"
        );
        assert_eq!(v["Mode"]["Replicated"]["Replicas"], 2);
        assert_eq!(
            v["EndpointSpec"]["Ports"][0],
            serde_json::json!({"Protocol":"tcp","TargetPort":80,"PublishedPort":8080,"PublishMode":"ingress"})
        );
        assert_eq!(v["Labels"], serde_json::json!({}));
        let back: ServiceSpec = serde_json::from_value(v).unwrap();
        assert_eq!(back, spec);
        assert_eq!(
            serde_json::to_value(ServiceMode::global()).unwrap(),
            serde_json::json!({"Global":{}})
        );
    }

    #[test]
    fn task_states_order() {
        assert!(TaskState::Running < TaskState::Complete);
        assert!(TaskState::Failed.is_terminal());
        assert!(!TaskState::Running.is_terminal());
        assert_eq!(TaskState::Running.progress_step(), 9);
    }
}
