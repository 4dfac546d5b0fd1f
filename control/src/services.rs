//! Services and tasks as replicated in Raft, the commands that change them, and their
//! docker-shaped JSON views.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use shoal_spec::{
    PortConfig, Protocol, PublishMode, ServiceSpec, TaskSpec, TaskState, UpdateConfig,
};

use crate::state::ClusterState;
use crate::types::{go_time, version_json};

/// swarmkit's `checkPortConflicts`: an ingress port is every node's, so it conflicts with
/// the same port and protocol published by any other service, in either mode; two services
/// may publish one port in host mode (the scheduler keeps their tasks on different nodes).
/// The error is the API's message. Checked when a request is read and again when its Raft
/// entry applies ([`ClusterState::apply`]), where two creates in flight meet.
pub fn published_conflict(
    state: &ClusterState,
    spec: &ServiceSpec,
    except: Option<&str>,
) -> Result<(), String> {
    let Some(e) = &spec.endpoint_spec else {
        return Ok(());
    };
    let wanted = |mode: PublishMode| {
        e.ports
            .iter()
            .filter(move |p| p.publish_mode == mode)
            .filter_map(|p| Some((p.published_port?, p.protocol)))
            .collect::<Vec<_>>()
    };
    let (ingress, host) = (wanted(PublishMode::Ingress), wanted(PublishMode::Host));
    if ingress.is_empty() && host.is_empty() {
        return Ok(());
    }
    for &(pp, protocol) in ingress.iter().chain(&host) {
        if let Some(what) = swarm_port_use(state, pp, protocol) {
            return Err(format!(
                "rpc error: code = InvalidArgument desc = port '{pp}/{}' is reserved for the swarm itself: it is {what}; choose another published port",
                protocol.as_str()
            ));
        }
    }
    // By name, so the service an error names does not depend on random ids.
    let mut others: Vec<_> = state
        .services
        .values()
        .filter(|s| Some(s.id.as_str()) != except)
        .collect();
    others.sort_by(|a, b| a.spec.name.cmp(&b.spec.name));
    for other in others {
        for op in other
            .spec
            .endpoint_spec
            .iter()
            .flat_map(|oe| oe.ports.iter())
        {
            let Some(pp) = op.published_port else {
                continue;
            };
            let key = (pp, op.protocol);
            let how = match op.publish_mode {
                PublishMode::Host if ingress.contains(&key) => "a host-published port",
                PublishMode::Ingress if ingress.contains(&key) || host.contains(&key) => {
                    "an ingress port"
                }
                _ => continue,
            };
            return Err(format!(
                "rpc error: code = InvalidArgument desc = port '{pp}' is already in use by service '{}' ({}) as {how}",
                other.spec.name, other.id
            ));
        }
    }
    // A port picked for a task's unpublished host-mode port is its node's too, while the
    // task lives: the mesh would take it from the task. (Ports a service names are its
    // spec's, checked above.)
    let named = |service_id: &str, key: (u16, Protocol)| {
        state.services.get(service_id).is_some_and(|s| {
            s.spec
                .endpoint_spec
                .iter()
                .flat_map(|e| e.ports.iter())
                .any(|p| p.published_port == Some(key.0) && p.protocol == key.1)
        })
    };
    let mut tasks: Vec<_> = state
        .tasks
        .values()
        .filter(|t| !t.status.state.is_terminal() && !t.node_id.is_empty())
        .collect();
    tasks.sort_by_key(|t| t.name());
    for t in tasks {
        for tp in &t.host_ports {
            let Some(pp) = tp.published_port else {
                continue;
            };
            if ingress.contains(&(pp, tp.protocol)) && !named(&t.service_id, (pp, tp.protocol)) {
                return Err(format!(
                "rpc error: code = InvalidArgument desc = port '{pp}' is already in use by service '{}' ({}) as a host-published port of task {}",
                    t.service_name,
                    t.service_id,
                    t.name()
                ));
            }
        }
    }
    Ok(())
}

/// swarmkit's range for ingress ports published without a number (`-p 80`, compose's
/// `- "80"`): its port allocator's dynamic range.
pub const DYNAMIC_PORTS: std::ops::RangeInclusive<u16> = 30000..=32767;

/// Give every ingress port of `spec` published without a number one of [`DYNAMIC_PORTS`],
/// as swarmkit's port allocator does: the port the service already publishes for the same
/// name, target and protocol (`existing`, so an update or a stack redeploy keeps it), else
/// the lowest one of that protocol that no other service publishes, no live task holds and
/// the swarm does not use itself. Returns the ports that are the allocator's (assigned
/// now, or earlier and kept), which `service inspect` shows only under `Endpoint.Ports`,
/// as docker does; the spec stored keeps them filled in, so every reader of published
/// ports (the mesh, conflict checks, `service ls`) sees them.
pub fn assign_dynamic_ports(
    state: &ClusterState,
    spec: &mut ServiceSpec,
    existing: Option<&ServiceRecord>,
) -> Result<Vec<(u16, Protocol)>, String> {
    assign(state, spec, existing, true)
}

/// [`assign_dynamic_ports`] for a spec as given, whose numbered ports are all the user's:
/// what the state machine does as a service write applies (the proposer's own picks
/// unnumbered again, see [`ServiceRecord::spec_as_given`]), so a number the user gave
/// stays theirs even where it is the one the allocator had given the service.
pub fn number_dynamic_ports(
    state: &ClusterState,
    spec: &mut ServiceSpec,
    existing: Option<&ServiceRecord>,
) -> Result<Vec<(u16, Protocol)>, String> {
    assign(state, spec, existing, false)
}

/// `stored`: numbered ports may be ones the allocator gave `existing` (a spec sent back
/// as stored, as `service update` does).
fn assign(
    state: &ClusterState,
    spec: &mut ServiceSpec,
    existing: Option<&ServiceRecord>,
    stored: bool,
) -> Result<Vec<(u16, Protocol)>, String> {
    let Some(e) = spec.endpoint_spec.as_mut() else {
        return Ok(Vec::new());
    };
    let own_id = existing.map(|s| s.id.as_str());
    // What is taken, read only for a port to number: the state machine numbers them as
    // each service write applies, and most (the orchestrator's) have none to number.
    let used = || {
        let mut used: std::collections::HashSet<(u16, Protocol)> = state
            .services
            .values()
            .filter(|s| Some(s.id.as_str()) != own_id)
            .flat_map(|s| s.spec.endpoint_spec.iter().flat_map(|e| e.ports.iter()))
            .chain(
                state
                    .tasks
                    .values()
                    .filter(|t| !t.status.state.is_terminal())
                    .flat_map(|t| t.host_ports.iter()),
            )
            .filter_map(|p| Some((p.published_port?, p.protocol)))
            .collect();
        used.extend(
            e.ports
                .iter()
                .filter_map(|p| Some((p.published_port?, p.protocol))),
        );
        used
    };
    let mut used = e
        .ports
        .iter()
        .any(|p| p.publish_mode == PublishMode::Ingress && p.published_port.is_none())
        .then(used)
        .unwrap_or_default();
    let same = |a: &PortConfig, b: &PortConfig| {
        a.name == b.name && a.target_port == b.target_port && a.protocol == b.protocol
    };
    let old_ports: Vec<&PortConfig> = existing
        .iter()
        .flat_map(|s| s.spec.endpoint_spec.iter().flat_map(|e| e.ports.iter()))
        .filter(|p| p.publish_mode == PublishMode::Ingress && p.published_port.is_some())
        .collect();
    let mut dynamic = Vec::new();
    for p in e.ports.iter_mut() {
        if p.publish_mode != PublishMode::Ingress {
            continue;
        }
        if let Some(pp) = p.published_port {
            // Kept from an earlier assignment (an update sends the stored spec back).
            let was_dynamic = stored
                && existing.is_some_and(|s| s.dynamic_ports.contains(&(pp, p.protocol)))
                && old_ports
                    .iter()
                    .any(|o| same(o, p) && o.published_port == Some(pp));
            if was_dynamic {
                dynamic.push((pp, p.protocol));
            }
            continue;
        }
        let kept = old_ports
            .iter()
            .filter(|o| same(o, p))
            .filter_map(|o| o.published_port)
            .find(|&pp| !used.contains(&(pp, p.protocol)));
        let pick = kept.or_else(|| {
            DYNAMIC_PORTS.clone().find(|&pp| {
                !used.contains(&(pp, p.protocol)) && swarm_port_use(state, pp, p.protocol).is_none()
            })
        });
        let Some(pp) = pick else {
            return Err(format!(
                "rpc error: code = ResourceExhausted desc = no free port in the dynamic range {}-{} to publish {}/{}",
                DYNAMIC_PORTS.start(),
                DYNAMIC_PORTS.end(),
                p.target_port,
                p.protocol.as_str()
            ));
        };
        p.published_port = Some(pp);
        used.insert((pp, p.protocol));
        dynamic.push((pp, p.protocol));
    }
    Ok(dynamic)
}

/// Most ports (entries of `EndpointSpec.Ports`, each port and protocol of a range one)
/// a service publishes. Docker has none, but every published port costs every node a
/// load-balancer frontend, a Maglev table (64 KiB at the default size) and a bound socket:
/// `-p 1-65535:1-65535` would take gigabytes of kernel memory and the daemon's file
/// descriptors on every node.
pub const MAX_PUBLISHED_PORTS: usize = 1000;

/// The API's error for a service that publishes more than [`MAX_PUBLISHED_PORTS`], if it
/// does. Checked when a request is read and again when its Raft entry applies.
pub fn too_many_published_ports(spec: &ServiceSpec) -> Option<String> {
    let n = spec.endpoint_spec.as_ref().map_or(0, |e| e.ports.len());
    (n > MAX_PUBLISHED_PORTS).then(|| {
        format!(
            "rpc error: code = InvalidArgument desc = EndpointSpec: too many published ports ({n}): a service publishes at most {MAX_PUBLISHED_PORTS} (each port and protocol of a range counts)"
        )
    })
}

/// The VXLAN port of a swarm that was not given one (`swarm init --data-path-port`).
pub const DEFAULT_DATA_PATH_PORT: u16 = 4789;

/// The swarm's data path port.
pub fn data_path_port(state: &ClusterState) -> u16 {
    state
        .cluster
        .as_ref()
        .map_or(DEFAULT_DATA_PATH_PORT, |c| c.data_path_port)
}

/// One of the swarm's own uses of a port on a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SwarmPort {
    /// The node's swarm port (TCP): Raft, the dispatcher and joins. Each node's own.
    Listen,
    /// The data path port (UDP): VXLAN. The same on every node.
    DataPath,
    /// The load balancer's liveness probes between nodes (UDP). The same on every node.
    Probe,
}

/// The swarm's own ports on a node whose swarm port is `listen_port` (`None`: not known,
/// so only the ports every node shares), in a swarm whose data path port is
/// `data_path_port`: each port, its protocol and its use. The one list of them: the
/// managers refuse to publish these ([`swarm_port_use`]), never pick one for a task's
/// host port ([`crate::host_ports::PortPicker`]), and a node's load balancer never
/// serves one (the worker's filter).
pub fn node_swarm_ports(
    listen_port: Option<u16>,
    data_path_port: u16,
) -> Vec<(u16, Protocol, SwarmPort)> {
    let mut ports = vec![
        (data_path_port, Protocol::Udp, SwarmPort::DataPath),
        (crate::daemon::PROBE_PORT, Protocol::Udp, SwarmPort::Probe),
    ];
    ports.extend(listen_port.map(|p| (p, Protocol::Tcp, SwarmPort::Listen)));
    ports
}

/// What of the swarm's own ([`node_swarm_ports`]) uses `port`/`protocol` on the nodes, if
/// anything: a node's swarm port (each node's own, from its record), the data path port
/// or the load balancer's probe port. The load balancer answers a published port before
/// the node's sockets see it, so publishing one of these would take the swarm's own
/// traffic.
pub fn swarm_port_use(state: &ClusterState, port: u16, protocol: Protocol) -> Option<String> {
    let dp = data_path_port(state);
    let use_on = |listen: Option<u16>| {
        node_swarm_ports(listen, dp)
            .into_iter()
            .find(|&(p, proto, _)| p == port && proto == protocol)
            .map(|(_, _, what)| what)
    };
    match use_on(None) {
        Some(SwarmPort::DataPath) => {
            return Some("the swarm's data path port (VXLAN, `swarm init --data-path-port`)".into())
        }
        Some(SwarmPort::Probe) => {
            return Some(
                "the swarm's probe port (the load balancer's liveness probes between nodes)".into(),
            )
        }
        Some(SwarmPort::Listen) | None => {}
    }
    let mut nodes: Vec<&str> = state
        .nodes
        .values()
        .filter(|n| use_on(n.listen_port()) == Some(SwarmPort::Listen))
        .map(|n| n.description.hostname.as_str())
        .collect();
    nodes.sort_unstable();
    match nodes.as_slice() {
        [] => None,
        [_, _, ..] if nodes.len() == state.nodes.len() => {
            Some("the swarm port of every node (Raft, the dispatcher and joins)".into())
        }
        [one] => Some(format!(
            "the swarm port of node {one} (Raft, the dispatcher and joins)"
        )),
        [first, rest @ ..] => Some(format!(
            "the swarm port of nodes {first} and {} more (Raft, the dispatcher and joins)",
            rest.len()
        )),
    }
}

/// The error for a node whose swarm port (TCP) would be `listen_port`, if a service
/// publishes that port (in either mode, as [`published_conflict`] refuses to publish a
/// node's swarm port): the load balancer would take the swarm's own traffic on that node,
/// or the service would lose the port there. Checked when the leader admits a node
/// (`swarm join --listen-addr`) and again when its Raft entry applies, and before a
/// manager takes another swarm port (`swarm init --force-new-cluster --listen-addr`).
pub fn listen_port_conflict(state: &ClusterState, listen_port: u16) -> Result<(), String> {
    // By name, so the service an error names does not depend on random ids.
    let mut services: Vec<_> = state.services.values().collect();
    services.sort_by(|a, b| a.spec.name.cmp(&b.spec.name));
    for svc in services {
        let ports = svc.spec.endpoint_spec.iter().flat_map(|e| e.ports.iter());
        for p in ports {
            if p.published_port != Some(listen_port) || p.protocol != Protocol::Tcp {
                continue;
            }
            let how = match p.publish_mode {
                PublishMode::Ingress => "an ingress port",
                PublishMode::Host => "a host-published port",
            };
            return Err(format!(
                "rpc error: code = InvalidArgument desc = port '{listen_port}/tcp' is already in use by service '{}' ({}) as {how}, so it cannot be a node's swarm port; choose another --listen-addr port",
                svc.spec.name, svc.id
            ));
        }
    }
    Ok(())
}

/// What a service asks of every node's load balancer, at most: its frontends (each
/// published port and protocol, and a VIP per network, the ingress network's if it
/// publishes there) and their backends (one per frontend and task; a global service's
/// tasks counted as one per node).
fn lb_footprint(spec: &ServiceSpec, nodes: u64) -> (u64, u64) {
    let ports = spec
        .endpoint_spec
        .as_ref()
        .map_or(&[][..], |e| &e.ports[..]);
    let ingress = ports.iter().any(|p| p.publish_mode == PublishMode::Ingress);
    let frontends =
        ports.len() as u64 + spec.task_template.networks.len() as u64 + u64::from(ingress);
    let tasks = spec.mode.replicas().unwrap_or(nodes);
    (frontends, frontends.saturating_mul(tasks))
}

/// The load balancer's maps are of fixed size (`ebpf/include/shoal_lb.h`): a service that
/// would not fit beside the others is refused here, rather than programmed in part on
/// every node. `except` is the service `spec` replaces. A spec that asks no more of the
/// maps than the one it replaces is never refused, so a cluster already past them (an
/// older leader's write, a global service on more nodes) can still be changed and shrunk.
/// Checked when a request is read and again when its Raft entry applies
/// ([`ClusterState::apply`]), where two requests in flight meet.
pub fn lb_capacity(
    state: &ClusterState,
    spec: &ServiceSpec,
    except: Option<&str>,
) -> Result<(), String> {
    let nodes = state.nodes.len().max(1) as u64;
    let (new_frontends, new_backends) = lb_footprint(spec, nodes);
    let (old_frontends, old_backends) = except
        .and_then(|id| state.services.get(id))
        .map_or((0, 0), |s| lb_footprint(&s.spec, nodes));
    if new_frontends <= old_frontends && new_backends <= old_backends {
        return Ok(());
    }
    let (mut frontends, mut backends) = (new_frontends, new_backends);
    for other in state
        .services
        .values()
        .filter(|s| Some(s.id.as_str()) != except)
    {
        let (f, b) = lb_footprint(&other.spec, nodes);
        frontends += f;
        backends = backends.saturating_add(b);
    }
    let max_frontends = u64::from(shoal_dataplane::lb::MAX_FRONTENDS);
    let max_backends = u64::from(shoal_dataplane::lb::MAX_BACKENDS);
    if frontends > max_frontends && new_frontends > old_frontends {
        return Err(format!(
            "rpc error: code = ResourceExhausted desc = the load balancer has room for {max_frontends} published ports and VIPs on each node; with service {} the cluster would need {frontends}: publish fewer ports",
            spec.name
        ));
    }
    if backends > max_backends && new_backends > old_backends {
        return Err(format!(
            "rpc error: code = ResourceExhausted desc = the load balancer has room for {max_backends} backends (tasks times their published ports and VIPs) on each node; with service {} the cluster would need {backends}: publish fewer ports or run fewer replicas",
            spec.name
        ));
    }
    Ok(())
}

/// The error for a node that would join (`hostname`) if the tasks the global services
/// would then run on it did not fit the load balancer: every node's load balancer holds
/// every backend (the routing mesh), so one node more asks each of them for a backend per
/// global service's frontend, and past its maps every node's load balancer would be
/// programmed in part (only a warning in each node's log). The join is refused instead,
/// before anything changes: no swarm user expects services that worked to stop being
/// served because a node joined. Checked when the leader admits a node and again when its
/// Raft entry applies. Every listed node counts, down ones too, as in [`lb_capacity`].
pub fn join_lb_capacity(state: &ClusterState, hostname: &str) -> Result<(), String> {
    let nodes = state.nodes.len() as u64;
    let need = |nodes: u64| {
        state
            .services
            .values()
            .map(|s| lb_footprint(&s.spec, nodes).1)
            .fold(0u64, u64::saturating_add)
    };
    let (before, after) = (need(nodes.max(1)), need(nodes + 1));
    let max_backends = u64::from(shoal_dataplane::lb::MAX_BACKENDS);
    if after > max_backends && after > before {
        return Err(format!(
            "rpc error: code = ResourceExhausted desc = the load balancer has room for {max_backends} backends (tasks times their published ports and VIPs) on each node; with node {hostname} the cluster would need {after}, as every global service runs a task on each node: scale down or remove global services, publish fewer ports, or remove nodes that are down (`shoal node rm`), then join again"
        ));
    }
    Ok(())
}

/// docker's UpdateStatus.State values.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum UpdateState {
    Updating,
    Paused,
    Completed,
    RollbackStarted,
    RollbackPaused,
    RollbackCompleted,
}

impl UpdateState {
    pub fn as_str(self) -> &'static str {
        match self {
            UpdateState::Updating => "updating",
            UpdateState::Paused => "paused",
            UpdateState::Completed => "completed",
            UpdateState::RollbackStarted => "rollback_started",
            UpdateState::RollbackPaused => "rollback_paused",
            UpdateState::RollbackCompleted => "rollback_completed",
        }
    }
    pub fn in_progress(self) -> bool {
        matches!(self, UpdateState::Updating | UpdateState::RollbackStarted)
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct UpdateStatus {
    pub state: UpdateState,
    pub started_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
    pub message: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct ServiceRecord {
    pub id: String,
    pub version: u64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub spec: ServiceSpec,
    #[serde(default)]
    pub previous_spec: Option<ServiceSpec>,
    /// Bumped at every spec change; each task records the one it was made from.
    pub spec_version: u64,
    #[serde(default)]
    pub update_status: Option<UpdateStatus>,
    /// The service's virtual IP on each of its networks (endpoint mode vip).
    #[serde(default)]
    pub vips: Vec<TaskAttachment>,
    /// Ingress ports the spec published without a number, and the dynamic-range port each
    /// was given (see [`assign_dynamic_ports`]); the stored spec has them filled in.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dynamic_ports: Vec<(u16, Protocol)>,
    /// `dynamic_ports` of `previous_spec`: what a rollback gives back to the allocator.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub previous_dynamic_ports: Vec<(u16, Protocol)>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
pub struct TaskStatusRec {
    pub timestamp: Option<DateTime<Utc>>,
    pub state: TaskState,
    pub message: String,
    #[serde(default)]
    pub err: Option<String>,
    #[serde(default)]
    pub pid: Option<i32>,
    #[serde(default)]
    pub exit_code: Option<i32>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct TaskRecord {
    pub id: String,
    pub version: u64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub service_id: String,
    pub service_name: String,
    /// Replica slot (1..N); 0 for global tasks.
    pub slot: u64,
    /// Assigned node; empty while pending.
    pub node_id: String,
    pub spec: TaskSpec,
    pub spec_version: u64,
    pub status: TaskStatusRec,
    pub desired_state: TaskState,
    /// Health from the healthcheck, when one is defined ("starting", "healthy", "unhealthy").
    #[serde(default)]
    pub health: Option<String>,
    /// The task's address on each network it attaches to, in attachment order.
    #[serde(default)]
    pub networks: Vec<TaskAttachment>,
    /// The ports it publishes in host mode, as its service's spec had them when it was
    /// made (swarmkit's Task.Endpoint): held on its node by the scheduler, and served by
    /// that node's load balancer while the task runs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub host_ports: Vec<PortConfig>,
    /// Made by the rolling updater (not by a restart, a scale-up or a node's loss): while
    /// its service is at this task's spec version, its failure counts against the update
    /// (swarmkit's `Updater.updatedTasks`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub by_update: bool,
    /// When the task first counted as running (running and, with a healthcheck, healthy):
    /// the update's monitor period runs from there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub running_at: Option<DateTime<Utc>>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct TaskAttachment {
    pub network_id: String,
    /// CIDR form, e.g. "10.0.1.5/24".
    pub addr: String,
}

impl TaskRecord {
    /// `<service>.<slot>` or `<service>.<node id>` for global tasks.
    pub fn name(&self) -> String {
        if self.slot == 0 {
            format!("{}.{}", self.service_name, self.node_id)
        } else {
            format!("{}.{}", self.service_name, self.slot)
        }
    }

    /// The executor's name for the task's process: `<service>.<slot>.<task id>`.
    pub fn container_name(&self) -> String {
        format!("{}.{}", self.name(), self.id)
    }

    /// The task's hostname: its spec's, else the first 12 characters of its ID
    /// (docker's default, the short container ID). Also one of the names the
    /// embedded DNS answers with its address.
    pub fn hostname(&self) -> String {
        let spec = &self.spec.container_spec.hostname;
        if spec.is_empty() {
            self.short_id().to_string()
        } else {
            spec.clone()
        }
    }

    /// The first 12 characters of the task's ID: what stands for docker's short
    /// container ID (a task runs one process, named by its task ID).
    pub fn short_id(&self) -> &str {
        self.id.get(..12).unwrap_or(&self.id)
    }

    /// Counts as running for REPLICAS and convergence: running and, with a
    /// healthcheck, healthy.
    pub fn is_running(&self) -> bool {
        self.status.state == TaskState::Running
            && self.health.as_deref().is_none_or(|h| h == "healthy")
    }

    /// Its process runs: the task is running, or starting (started, its healthcheck
    /// not passed yet), as a container docker can exec into.
    pub fn process_runs(&self) -> bool {
        matches!(self.status.state, TaskState::Starting | TaskState::Running)
    }

    /// Asked to stop (desired state past running) but not stopped yet. Docker
    /// disables such a task's service binding before it stops the container, so
    /// the embedded DNS no longer names it (`tasks.<svc>`, a dnsrr name, its
    /// reverse lookup), while its endpoint stays so its open connections work.
    pub fn is_leaving(&self) -> bool {
        self.desired_state > TaskState::Running && !self.status.state.is_terminal()
    }

    /// What the embedded DNS answers for its service: running (and healthy) and
    /// not leaving.
    pub fn in_dns(&self) -> bool {
        self.is_running() && !self.is_leaving()
    }
}

/// A task state report from an agent (state only ever moves forward).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct TaskReport {
    pub task_id: String,
    pub status: TaskStatusRec,
    #[serde(default)]
    pub health: Option<String>,
}

fn update_config_json(c: Option<&UpdateConfig>) -> Value {
    let d = UpdateConfig::default();
    let c = c.unwrap_or(&d);
    let mut m = Map::new();
    m.insert("Parallelism".into(), json!(c.parallelism));
    if c.delay != 0 {
        m.insert("Delay".into(), json!(c.delay));
    }
    m.insert("FailureAction".into(), json!(c.failure_action));
    m.insert("Monitor".into(), json!(c.monitor));
    m.insert("MaxFailureRatio".into(), json!(c.max_failure_ratio));
    m.insert("Order".into(), json!(c.order));
    Value::Object(m)
}

/// moby's TaskSpec field order.
const TASK_TEMPLATE_KEYS: &[&str] = &[
    "ContainerSpec",
    "PluginSpec",
    "NetworkAttachmentSpec",
    "Resources",
    "RestartPolicy",
    "Placement",
    "Networks",
    "LogDriver",
    "ForceUpdate",
    "Runtime",
];

/// moby's ContainerSpec field order.
const CONTAINER_SPEC_KEYS: &[&str] = &[
    "Image",
    "Labels",
    "Command",
    "Args",
    "Hostname",
    "Env",
    "Dir",
    "User",
    "Groups",
    "Privileges",
    "Init",
    "StopSignal",
    "TTY",
    "OpenStdin",
    "ReadOnly",
    "Mounts",
    "StopGracePeriod",
    "Healthcheck",
    "Hosts",
    "DNSConfig",
    "Secrets",
    "Configs",
    "Isolation",
    "Sysctls",
    "CapabilityAdd",
    "CapabilityDrop",
    "Ulimits",
    "OomScoreAdj",
];

/// A stored task template as the daemon shows it, in moby's key order. The docker CLI
/// always sends `Init` and a `DNSConfig`, stack deploy neither (unless set), so a
/// template from `service create` shows `"Init": false` and `"DNSConfig": {}`; the daemon
/// converts every isolation to `"default"`.
pub fn task_template_json(tt: &shoal_spec::TaskSpec) -> Value {
    let mut v = serde_json::to_value(tt).unwrap_or_else(|_| json!({}));
    let from_stack = tt
        .container_spec
        .labels
        .contains_key(shoal_compose::LABEL_NAMESPACE);
    if let Some(cs) = v.get_mut("ContainerSpec").and_then(Value::as_object_mut) {
        if !from_stack {
            cs.entry("Init").or_insert(json!(false));
            cs.entry("DNSConfig").or_insert(json!({}));
        }
        cs.entry("Isolation").or_insert(json!("default"));
    }
    let cs = v["ContainerSpec"].take();
    v["ContainerSpec"] = reorder(cs, CONTAINER_SPEC_KEYS);
    reorder(v, TASK_TEMPLATE_KEYS)
}

/// The spec as `service inspect` shows it: swarmkit's defaults filled in (its
/// `InterpolateService`, which also gives a stack's service the `DNSConfig` and every
/// service the `Placement` it lacks).
pub fn spec_with_defaults(spec: &ServiceSpec) -> Value {
    let mut v = serde_json::to_value(spec).unwrap_or_else(|_| json!({}));
    v["TaskTemplate"] = task_template_json(&spec.task_template);
    let tt = &mut v["TaskTemplate"];
    if tt["ContainerSpec"].get("StopGracePeriod").is_none() {
        tt["ContainerSpec"]["StopGracePeriod"] = json!(10_000_000_000i64);
    }
    if tt["ContainerSpec"].get("DNSConfig").is_none() {
        tt["ContainerSpec"]["DNSConfig"] = json!({});
    }
    if tt.get("Resources").is_none() {
        tt["Resources"] = json!({"Limits": {}, "Reservations": {}});
    }
    if tt.get("Placement").is_none() {
        tt["Placement"] = json!({});
    }
    let rp = spec
        .task_template
        .restart_policy
        .clone()
        .unwrap_or_default();
    tt["RestartPolicy"] = json!({
        "Condition": rp.condition.unwrap_or_default(),
        "Delay": rp.delay.unwrap_or(5_000_000_000),
        "MaxAttempts": rp.max_attempts.unwrap_or(0),
    });
    if let Some(w) = rp.window {
        tt["RestartPolicy"]["Window"] = json!(w);
    }
    tt["ForceUpdate"] = json!(spec.task_template.force_update);
    tt["Runtime"] = json!("container");
    let cs = tt["ContainerSpec"].take();
    tt["ContainerSpec"] = reorder(cs, CONTAINER_SPEC_KEYS);
    let reordered = reorder(tt.take(), TASK_TEMPLATE_KEYS);
    v["TaskTemplate"] = reordered;
    v["UpdateConfig"] = update_config_json(spec.update_config.as_ref());
    v["RollbackConfig"] = update_config_json(spec.rollback_config.as_ref());
    if v.get("EndpointSpec").is_none() {
        v["EndpointSpec"] = json!({"Mode": "vip"});
    }
    reorder(
        v,
        &[
            "Name",
            "Labels",
            "TaskTemplate",
            "Mode",
            "UpdateConfig",
            "RollbackConfig",
            "EndpointSpec",
        ],
    )
}

fn reorder(v: Value, keys: &[&str]) -> Value {
    let Value::Object(mut m) = v else { return v };
    let mut out = Map::new();
    for k in keys {
        if let Some(x) = m.remove(*k) {
            out.insert((*k).to_string(), x);
        }
    }
    out.extend(m);
    Value::Object(out)
}

/// `spec` as the user gave it: its ingress ports numbered by the allocator (`dynamic`)
/// without their number.
fn unnumbered(spec: &ServiceSpec, dynamic: &[(u16, Protocol)]) -> ServiceSpec {
    let mut spec = spec.clone();
    for p in spec
        .endpoint_spec
        .iter_mut()
        .flat_map(|e| e.ports.iter_mut())
    {
        if p.publish_mode == PublishMode::Ingress
            && p.published_port
                .is_some_and(|pp| dynamic.contains(&(pp, p.protocol)))
        {
            p.published_port = None;
        }
    }
    spec
}

impl ServiceRecord {
    /// A service just created: version 0, spec version 1, nothing allocated yet.
    pub fn new(id: String, spec: ServiceSpec) -> Self {
        let now = chrono::Utc::now();
        ServiceRecord {
            id,
            version: 0,
            created_at: now,
            updated_at: now,
            spec,
            previous_spec: None,
            spec_version: 1,
            update_status: None,
            vips: Vec::new(),
            dynamic_ports: Vec::new(),
            previous_dynamic_ports: Vec::new(),
        }
    }

    /// The spec as the user gave it (the stored one has the allocator's ports numbered).
    pub fn spec_as_given(&self) -> ServiceSpec {
        unnumbered(&self.spec, &self.dynamic_ports)
    }

    /// The previous spec as the user gave it.
    pub fn previous_spec_as_given(&self) -> Option<ServiceSpec> {
        self.previous_spec
            .as_ref()
            .map(|p| unnumbered(p, &self.previous_dynamic_ports))
    }

    /// `service inspect` JSON.
    pub fn docker_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("ID".into(), json!(self.id));
        m.insert("Version".into(), version_json(self.version));
        m.insert("CreatedAt".into(), json!(go_time(&self.created_at)));
        m.insert("UpdatedAt".into(), json!(go_time(&self.updated_at)));
        // The spec as the user gave it: ports the allocator numbered show no number there,
        // only under Endpoint.Ports (swarmkit keeps them in Endpoint, not in the spec).
        let given = self.spec_as_given();
        m.insert("Spec".into(), spec_with_defaults(&given));
        if let Some(p) = self.previous_spec_as_given() {
            m.insert("PreviousSpec".into(), spec_with_defaults(&p));
        }
        let mut endpoint = Map::new();
        endpoint.insert(
            "Spec".into(),
            serde_json::to_value(given.endpoint_spec.clone().unwrap_or_default())
                .unwrap_or(json!({})),
        );
        let ports = self
            .spec
            .endpoint_spec
            .as_ref()
            .map(|e| e.ports.as_slice())
            .unwrap_or_default();
        if !ports.is_empty() {
            endpoint.insert("Ports".into(), json!(ports));
        }
        if !self.vips.is_empty() {
            let vips: Vec<Value> = self
                .vips
                .iter()
                .map(|v| json!({"NetworkID": v.network_id, "Addr": v.addr}))
                .collect();
            endpoint.insert("VirtualIPs".into(), Value::Array(vips));
        }
        m.insert("Endpoint".into(), Value::Object(endpoint));
        if let Some(u) = &self.update_status {
            let mut s = Map::new();
            s.insert("State".into(), json!(u.state.as_str()));
            s.insert("StartedAt".into(), json!(go_time(&u.started_at)));
            if let Some(c) = &u.completed_at {
                s.insert("CompletedAt".into(), json!(go_time(c)));
            }
            s.insert("Message".into(), json!(u.message));
            m.insert("UpdateStatus".into(), Value::Object(s));
        }
        Value::Object(m)
    }
}

impl TaskRecord {
    /// `inspect TASK` JSON with each attachment's network in full, as docker shows it.
    pub fn docker_json_in(
        &self,
        networks: &std::collections::BTreeMap<String, crate::networks::NetworkRecord>,
    ) -> Value {
        let mut v = self.docker_json();
        if let Some(list) = v
            .get_mut("NetworksAttachments")
            .and_then(Value::as_array_mut)
        {
            for a in list {
                let id = a["Network"]["ID"].as_str().unwrap_or("").to_string();
                if let Some(n) = networks.get(&id) {
                    a["Network"] = n.swarm_json();
                }
            }
        }
        v
    }

    /// `inspect TASK` JSON (attachments name only their network's ID).
    pub fn docker_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("ID".into(), json!(self.id));
        m.insert("Version".into(), version_json(self.version));
        m.insert("CreatedAt".into(), json!(go_time(&self.created_at)));
        m.insert("UpdatedAt".into(), json!(go_time(&self.updated_at)));
        m.insert("Labels".into(), json!({}));
        m.insert("Spec".into(), task_template_json(&self.spec));
        m.insert("ServiceID".into(), json!(self.service_id));
        if self.slot != 0 {
            m.insert("Slot".into(), json!(self.slot));
        }
        if !self.node_id.is_empty() {
            m.insert("NodeID".into(), json!(self.node_id));
        }
        let mut st = Map::new();
        if let Some(t) = &self.status.timestamp {
            st.insert("Timestamp".into(), json!(go_time(t)));
        }
        st.insert("State".into(), json!(self.status.state.as_str()));
        st.insert("Message".into(), json!(self.status.message));
        if let Some(e) = &self.status.err {
            st.insert("Err".into(), json!(e));
        }
        if let Some(pid) = self.status.pid {
            let mut cs = Map::new();
            cs.insert("ContainerID".into(), json!(self.container_name()));
            cs.insert("PID".into(), json!(pid));
            if let Some(code) = self.status.exit_code {
                cs.insert("ExitCode".into(), json!(code));
            }
            st.insert("ContainerStatus".into(), Value::Object(cs));
        }
        // Host-mode ports are the started task's own, as docker's agent reports them.
        if self.process_runs() && !self.host_ports.is_empty() {
            st.insert("PortStatus".into(), json!({ "Ports": self.host_ports }));
        } else {
            st.insert("PortStatus".into(), json!({}));
        }
        m.insert("Status".into(), Value::Object(st));
        m.insert("DesiredState".into(), json!(self.desired_state.as_str()));
        if !self.networks.is_empty() {
            let attachments: Vec<Value> = self
                .networks
                .iter()
                .map(|a| json!({"Network": {"ID": a.network_id}, "Addresses": [a.addr]}))
                .collect();
            m.insert("NetworksAttachments".into(), Value::Array(attachments));
        }
        if let Some(h) = &self.health {
            m.insert("Health".into(), json!(h));
        }
        m.insert("Volumes".into(), Value::Null);
        Value::Object(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(v: &Value) -> Vec<&str> {
        v.as_object().unwrap().keys().map(String::as_str).collect()
    }

    /// `service inspect`: TaskTemplate and ContainerSpec keys in moby's order; a CLI-made
    /// service shows Init and DNSConfig as the docker CLI sends them, a stack's does not.
    #[test]
    fn inspect_keys_follow_moby_order() {
        let mut spec = ServiceSpec {
            name: "web".into(),
            ..Default::default()
        };
        spec.task_template.container_spec.image = "nginx:alpine".into();
        spec.task_template.container_spec.args = vec!["sleep".into(), "1".into()];
        spec.task_template.placement = Some(shoal_spec::Placement {
            constraints: vec!["node.role==manager".into()],
            ..Default::default()
        });
        let v = spec_with_defaults(&spec);
        let tt = &v["TaskTemplate"];
        assert_eq!(
            keys(tt),
            [
                "ContainerSpec",
                "Resources",
                "RestartPolicy",
                "Placement",
                "ForceUpdate",
                "Runtime"
            ]
        );
        assert_eq!(
            keys(&tt["ContainerSpec"]),
            [
                "Image",
                "Args",
                "Init",
                "StopGracePeriod",
                "DNSConfig",
                "Isolation"
            ]
        );
        assert_eq!(tt["ContainerSpec"]["Init"], json!(false));
        assert_eq!(tt["ContainerSpec"]["DNSConfig"], json!({}));
        assert_eq!(tt["ContainerSpec"]["Isolation"], json!("default"));

        // The stored template (a task's, no defaults) of a stack's service has no
        // DNSConfig, as docker's stack deploy sends none; `service inspect` inserts it.
        spec.task_template
            .container_spec
            .labels
            .insert(shoal_compose::LABEL_NAMESPACE.into(), "webapp".into());
        assert_eq!(
            keys(&task_template_json(&spec.task_template)["ContainerSpec"]),
            ["Image", "Labels", "Args", "Isolation"]
        );
        let v = spec_with_defaults(&spec);
        assert_eq!(
            keys(&v["TaskTemplate"]["ContainerSpec"]),
            [
                "Image",
                "Labels",
                "Args",
                "StopGracePeriod",
                "DNSConfig",
                "Isolation"
            ]
        );
        assert_eq!(v["TaskTemplate"]["ContainerSpec"]["DNSConfig"], json!({}));
    }

    /// swarmkit's InterpolateService gives a service without a Placement an empty one,
    /// so `service inspect` always shows `"Placement": {}` at least.
    #[test]
    fn inspect_inserts_an_empty_placement() {
        let mut spec = ServiceSpec {
            name: "plain".into(),
            ..Default::default()
        };
        spec.task_template.container_spec.image = "busybox".into();
        let v = spec_with_defaults(&spec);
        assert_eq!(v["TaskTemplate"]["Placement"], json!({}));
        assert_eq!(
            keys(&v["TaskTemplate"]),
            [
                "ContainerSpec",
                "Resources",
                "RestartPolicy",
                "Placement",
                "ForceUpdate",
                "Runtime"
            ]
        );
        // The last constraint removed: an empty placement, shown as `{}` too.
        spec.task_template.placement = Some(shoal_spec::Placement::default());
        assert_eq!(
            spec_with_defaults(&spec)["TaskTemplate"]["Placement"],
            json!({})
        );
    }
}
