//! The compose model between loading and converting (docker's cli/compose/types).

// One per file, then merged: optional fields stay `None` when a file does not set them, so a
// later file overrides only what it sets.

use std::collections::BTreeMap;

use shoal_spec::{PlacementPreference, PortConfig, RestartCondition};

/// Where a value was written, for errors found after merging.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Origin {
    pub file: String,
    pub path: String,
}

#[derive(Clone, Debug, Default)]
pub(crate) struct ComposeFile {
    pub services: BTreeMap<String, ServiceConfig>,
    pub networks: BTreeMap<String, NetworkConfig>,
    pub volumes: BTreeMap<String, VolumeConfig>,
    pub secrets: BTreeMap<String, ObjectConfig>,
    pub configs: BTreeMap<String, ObjectConfig>,
}

#[derive(Clone, Debug, Default)]
pub(crate) struct ServiceConfig {
    /// The service's own place (`services.web` in the last file that defines it).
    pub origin: Origin,
    pub image: Option<String>,
    pub command: Option<Vec<String>>,
    pub entrypoint: Option<Vec<String>>,
    /// After `env_file` and environment lookups; `None` is a bare `KEY`.
    pub environment: BTreeMap<String, Option<String>>,
    pub hostname: Option<String>,
    pub user: Option<String>,
    pub working_dir: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub ports: Vec<PortConfig>,
    pub volumes: Vec<ServiceVolume>,
    /// Network key to its per-service settings; empty means the stack's `default` network.
    pub networks: BTreeMap<String, ServiceNetwork>,
    pub healthcheck: Option<Healthcheck>,
    pub stop_grace_period: Option<i64>,
    pub stop_signal: Option<String>,
    pub init: Option<bool>,
    /// `host:ip` entries, in the file's order (a mapping's sorted by host).
    pub extra_hosts: Vec<String>,
    pub dns: Vec<String>,
    pub dns_search: Vec<String>,
    pub sysctls: BTreeMap<String, String>,
    /// name -> (soft, hard); a single number is both.
    pub ulimits: BTreeMap<String, (i64, i64)>,
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    pub read_only: bool,
    pub tty: bool,
    /// The top-level `restart:` (used only without `deploy.restart_policy`).
    pub restart: Option<(String, Origin)>,
    pub secrets: Vec<ObjectRef>,
    pub configs: Vec<ObjectRef>,
    pub deploy: DeployConfig,
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum VolumeKind {
    Volume,
    Bind,
    Tmpfs,
    /// npipe, cluster, image: docker types Shoal does not run.
    Other(String),
}

#[derive(Clone, Debug)]
pub(crate) struct ServiceVolume {
    pub origin: Origin,
    pub kind: VolumeKind,
    /// Volume name (unscoped) or absolute host path; empty for anonymous volumes and tmpfs.
    pub source: String,
    pub target: String,
    pub read_only: bool,
}

#[derive(Clone, Debug, Default)]
pub(crate) struct ServiceNetwork {
    pub origin: Origin,
    pub aliases: Vec<String>,
}

#[derive(Clone, Debug, Default)]
pub(crate) struct Healthcheck {
    pub origin: Origin,
    pub test: Option<Vec<String>>,
    pub interval: Option<i64>,
    pub timeout: Option<i64>,
    pub start_period: Option<i64>,
    pub start_interval: Option<i64>,
    pub retries: Option<u64>,
    pub disable: Option<bool>,
}

/// A service's `secrets:` or `configs:` entry (short syntax: only the source).
#[derive(Clone, Debug, Default)]
pub(crate) struct ObjectRef {
    pub origin: Origin,
    pub source: String,
    pub target: Option<String>,
    pub uid: Option<String>,
    pub gid: Option<String>,
    pub mode: Option<u32>,
}

#[derive(Clone, Debug, Default)]
pub(crate) struct DeployConfig {
    pub mode: Option<(String, Origin)>,
    pub replicas: Option<u64>,
    pub labels: BTreeMap<String, String>,
    pub update_config: Option<UpdateConfig>,
    pub rollback_config: Option<UpdateConfig>,
    pub limits: Option<Resources>,
    pub reservations: Option<Resources>,
    pub restart_policy: Option<RestartPolicy>,
    pub constraints: Vec<String>,
    pub preferences: Vec<PlacementPreference>,
    pub max_replicas_per_node: Option<u64>,
    pub endpoint_mode: Option<shoal_spec::EndpointMode>,
}

#[derive(Clone, Debug, Default)]
pub(crate) struct UpdateConfig {
    pub parallelism: Option<u64>,
    pub delay: Option<i64>,
    pub failure_action: Option<shoal_spec::FailureAction>,
    pub monitor: Option<i64>,
    pub max_failure_ratio: Option<f32>,
    pub order: Option<shoal_spec::UpdateOrder>,
}

#[derive(Clone, Debug, Default)]
pub(crate) struct Resources {
    pub nano_cpus: Option<i64>,
    pub memory_bytes: Option<i64>,
    pub pids: Option<i64>,
}

#[derive(Clone, Debug, Default)]
pub(crate) struct RestartPolicy {
    pub condition: Option<RestartCondition>,
    pub delay: Option<i64>,
    pub max_attempts: Option<u64>,
    pub window: Option<i64>,
}

#[derive(Clone, Debug, Default)]
pub(crate) struct NetworkConfig {
    /// Explicit `name:` (or the external name).
    pub name: Option<String>,
    pub driver: Option<String>,
    pub driver_opts: BTreeMap<String, String>,
    pub subnet: Option<String>,
    pub gateway: Option<String>,
    pub external: bool,
    pub internal: bool,
    pub attachable: bool,
    pub labels: BTreeMap<String, String>,
}

#[derive(Clone, Debug, Default)]
pub(crate) struct VolumeConfig {
    pub name: Option<String>,
    pub driver: Option<String>,
    pub driver_opts: BTreeMap<String, String>,
    pub external: bool,
    pub labels: BTreeMap<String, String>,
}

/// A top-level secret or config.
#[derive(Clone, Debug, Default)]
pub(crate) struct ObjectConfig {
    pub name: Option<String>,
    pub external: bool,
    /// `file:`, made absolute against the compose file's directory.
    pub file: Option<String>,
    pub labels: BTreeMap<String, String>,
    /// A `driver:` was given (Shoal has no secret drivers).
    pub driver: bool,
    pub origin: Origin,
}
