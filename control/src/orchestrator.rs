//! The leader's orchestrators, as one pure reconciliation step: from the cluster state,
//! decide which tasks to create, place, stop and forget (replicated and global services,
//! restart policy, drain and node loss, rolling updates with rollback, and swarmkit's task
//! reaper: history beyond the limit, and tasks whose desired state is `remove` once they
//! have stopped).
//!
//! `reconcile` returns Raft commands; the leader proposes them. Timing memory that need not
//! survive a leader change (when an update batch finished) is kept in `UpdateClock`.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Duration, Utc};
use shoal_scheduler::{Availability, HostPort, NodeInfo, Scheduler, ServiceReq};
use shoal_spec::{
    Constraint, FailureAction, PortConfig, RestartCondition, ServiceSpec, TaskSpec, TaskState,
    UpdateConfig, UpdateOrder,
};

use crate::services::{ServiceRecord, TaskRecord, TaskStatusRec, UpdateState, UpdateStatus};
use crate::state::{ClusterState, Command};
use crate::types::{NodeRecord, NodeState};

/// Status message of a task that ended and, by its restart policy, stays ended.
const NOT_RESTARTED: &str = "finished: not restarted";
/// The most replicas a service may ask for. Each task is a real process in its own
/// namespaces, so no node runs anywhere near this many; the cap keeps a typo
/// (`--replicas 1000000000`) from making the leader build a task record per slot (out of
/// memory, on every new leader too), and keeps a node's Assignments reply, which may carry
/// all of them, far below `wire::MAX_FRAME` (a test checks).
pub const MAX_REPLICAS: u64 = 10_000;
/// New tasks one reconcile round creates for empty slots; the rest come in the next
/// rounds (one per Raft apply), so a scale-up's Raft entry stays small.
const NEW_TASKS_PER_ROUND: usize = 1_000;
const ASSIGNED: &str = "scheduler assigned task to node";

/// Leader-local memory for rolling updates: when each service's last batch finished.
#[derive(Default)]
pub struct UpdateClock {
    last_batch_done: HashMap<String, DateTime<Utc>>,
}

fn ns(d: i64) -> Duration {
    Duration::nanoseconds(d)
}

fn node_info(n: &NodeRecord) -> NodeInfo {
    NodeInfo {
        id: n.id.clone(),
        hostname: n.description.hostname.clone(),
        addr: n.addr.clone(),
        role: n.spec.role.to_string(),
        os: n.description.os.clone(),
        arch: n.description.architecture.clone(),
        labels: n.spec.labels.clone(),
        ready: n.state == NodeState::Ready,
        availability: n.spec.availability,
        nano_cpus: n.description.nano_cpus,
        memory_bytes: n.description.memory_bytes,
    }
}

/// What the scheduler needs to know of a service.
struct Req {
    service_id: String,
    constraints: Vec<Constraint>,
    preferences: Vec<String>,
    max_replicas: u64,
    cpus: i64,
    memory: i64,
    host_ports: Vec<HostPort>,
}

/// The scheduler's view of ports published in host mode.
fn host_ports(ports: &[PortConfig]) -> Vec<HostPort> {
    ports
        .iter()
        .filter_map(|p| {
            Some(HostPort {
                protocol: p.protocol,
                port: p.published_port?,
            })
        })
        .collect()
}

impl Req {
    /// A task of service `id` made from `spec`, publishing `ports` in host mode.
    fn of(id: &str, spec: &TaskSpec, ports: &[PortConfig]) -> Req {
        let placement = spec.placement.clone().unwrap_or_default();
        let reservations = spec
            .resources
            .as_ref()
            .and_then(|r| r.reservations.clone())
            .unwrap_or_default();
        Req {
            service_id: id.to_string(),
            // Specs are validated when accepted; a constraint that no longer parses
            // matches nothing rather than everything.
            constraints: Constraint::parse_all(&placement.constraints).unwrap_or_else(|_| {
                vec![Constraint {
                    key: shoal_spec::constraint::Key::NodeId,
                    op: shoal_spec::constraint::Op::Eq,
                    value: String::new(),
                }]
            }),
            preferences: placement
                .preferences
                .iter()
                .map(|p| p.spread.spread_descriptor.clone())
                .collect(),
            max_replicas: placement.max_replicas,
            cpus: reservations.nano_cpus,
            memory: reservations.memory_bytes,
            host_ports: host_ports(ports),
        }
    }

    /// A task of this service as it stands.
    fn of_service(svc: &ServiceRecord) -> Req {
        Req::of(
            &svc.id,
            &svc.spec.task_template,
            &svc.spec.host_mode_ports(),
        )
    }

    /// An existing task, with what it was made with.
    fn of_task(t: &TaskRecord) -> Req {
        Req::of(&t.service_id, &t.spec, &t.host_ports)
    }
    fn as_req(&self) -> ServiceReq<'_> {
        ServiceReq {
            service_id: &self.service_id,
            constraints: &self.constraints,
            preferences: &self.preferences,
            max_replicas: self.max_replicas,
            reservation_cpus: self.cpus,
            reservation_memory: self.memory,
            host_ports: &self.host_ports,
        }
    }
}

/// Is this task still meant to run (not told to stop)?
fn active(t: &TaskRecord) -> bool {
    t.desired_state <= TaskState::Running
}

/// A new task of `svc`: pending placement, or already assigned when made for a given node
/// (global services).
pub(crate) fn new_task(
    svc: &ServiceRecord,
    slot: u64,
    node_id: &str,
    now: DateTime<Utc>,
) -> TaskRecord {
    let (state, message) = if node_id.is_empty() {
        (TaskState::Pending, "pending task scheduling")
    } else {
        (TaskState::Assigned, ASSIGNED)
    };
    TaskRecord {
        id: crate::ids::new_id(),
        version: 0,
        created_at: now,
        updated_at: now,
        service_id: svc.id.clone(),
        service_name: svc.spec.name.clone(),
        slot,
        node_id: node_id.to_string(),
        spec: svc.spec.task_template.clone(),
        spec_version: svc.spec_version,
        status: TaskStatusRec {
            timestamp: Some(now),
            state,
            message: message.into(),
            ..Default::default()
        },
        desired_state: TaskState::Running,
        health: None,
        networks: Vec::new(),
        host_ports: svc.spec.host_mode_ports(),
        by_update: false,
        running_at: None,
    }
}

/// Whether a service's tasks attach to the ingress network: for the routing mesh, and
/// for host-mode ports too, which the node's load balancer serves the same way (DNAT to
/// the task's ingress address), only on the task's own node and only to its own tasks.
pub fn needs_ingress(spec: &ServiceSpec) -> bool {
    spec.publishes_ingress() || !spec.host_mode_ports().is_empty()
}

/// The networks a service's tasks attach to: its own (by ID), and ingress first when it
/// publishes ports (see [`needs_ingress`]).
pub fn service_networks(state: &ClusterState, spec: &ServiceSpec) -> Vec<String> {
    let mut nets: Vec<String> = spec
        .task_template
        .networks
        .iter()
        .filter(|a| state.networks.contains_key(&a.target))
        .map(|a| a.target.clone())
        .collect();
    if needs_ingress(spec) {
        if let Some(ingress) = ingress_id(state) {
            nets.insert(0, ingress.to_string());
        }
    }
    nets
}

fn ingress_id(state: &ClusterState) -> Option<&str> {
    state
        .networks
        .values()
        .find(|n| n.ingress)
        .map(|n| n.id.as_str())
}

/// Whether a task still publishes what its service's spec asks: the same host-mode ports,
/// and on the ingress network exactly when the service needs it. A task that does not must
/// be replaced: its ports are held (and served) only by the tasks made with them.
fn endpoint_current(state: &ClusterState, t: &TaskRecord, spec: &ServiceSpec) -> bool {
    let on_ingress = ingress_id(state)
        .is_none_or(|id| t.networks.iter().any(|a| a.network_id == id) == needs_ingress(spec));
    on_ingress && crate::host_ports::match_spec(&t.host_ports, &spec.host_mode_ports())
}

/// swarmkit's `!IsTaskDirty`: a task made from its service's current spec version, or
/// one whose spec and published ports are what the service asks now.
pub(crate) fn task_up_to_date(state: &ClusterState, t: &TaskRecord, svc: &ServiceRecord) -> bool {
    t.spec_version == svc.spec_version
        || (t.spec == svc.spec.task_template && endpoint_current(state, t, &svc.spec))
}

/// Addresses in use per network: live tasks' and services' VIPs.
fn used_addresses(
    state: &ClusterState,
    changed: &BTreeMap<String, TaskRecord>,
    services: &[ServiceRecord],
) -> HashMap<String, std::collections::HashSet<std::net::Ipv4Addr>> {
    let alive = |t: &TaskRecord| !t.status.state.is_terminal() || active(t);
    let mut used: HashMap<String, std::collections::HashSet<std::net::Ipv4Addr>> = HashMap::new();
    let mut mark = |a: &crate::services::TaskAttachment| {
        if let Some(ip) = a.addr.split('/').next().and_then(|i| i.parse().ok()) {
            used.entry(a.network_id.clone()).or_default().insert(ip);
        }
    };
    let tasks = state
        .tasks
        .values()
        .filter(|t| !changed.contains_key(&t.id))
        .chain(changed.values());
    for t in tasks.filter(|t| alive(t)) {
        t.networks.iter().for_each(&mut mark);
    }
    let svcs = state
        .services
        .values()
        .filter(|s| !services.iter().any(|n| n.id == s.id))
        .chain(services.iter());
    for s in svcs {
        s.vips.iter().for_each(&mut mark);
    }
    used
}

/// The lowest free host address of a network (skipping its gateway), marked used.
fn next_address(
    state: &ClusterState,
    net_id: &str,
    used: &mut HashMap<String, std::collections::HashSet<std::net::Ipv4Addr>>,
) -> Option<crate::services::TaskAttachment> {
    use std::net::Ipv4Addr;
    let net = state.networks.get(net_id)?;
    let subnet = crate::networks::Net::parse(&net.subnet).ok()?;
    let gateway: Option<Ipv4Addr> = net.gateway.parse().ok();
    let taken = used.entry(net_id.to_string()).or_default();
    let ip = subnet
        .task_range()?
        .map(Ipv4Addr::from)
        .find(|ip| Some(*ip) != gateway && !taken.contains(ip))?;
    taken.insert(ip);
    Some(crate::services::TaskAttachment {
        network_id: net_id.to_string(),
        addr: format!("{ip}/{}", subnet.bits),
    })
}

/// Give services their VIPs (endpoint mode vip) and every new task an address on each of
/// its networks. What is in use is derived from live tasks and services: nothing needs
/// freeing when they go.
fn allocate_addresses(plan: &mut Plan) {
    let state = plan.state;
    let mut used = used_addresses(state, &plan.changed, &plan.services);
    for svc in state.services.values() {
        let vip_mode = svc
            .spec
            .endpoint_spec
            .as_ref()
            .is_none_or(|e| e.mode == shoal_spec::EndpointMode::Vip);
        let nets = service_networks(state, &svc.spec);
        // The ingress VIP is the mesh's; a service publishing only in host mode has none,
        // as in docker.
        let ingress = ingress_id(state);
        let want: Vec<&String> = if vip_mode {
            nets.iter()
                .filter(|n| svc.spec.publishes_ingress() || Some(n.as_str()) != ingress)
                .collect()
        } else {
            Vec::new()
        };
        let has: Vec<&String> = svc.vips.iter().map(|v| &v.network_id).collect();
        if want == has {
            continue;
        }
        let mut s = plan
            .services
            .iter()
            .find(|p| p.id == svc.id)
            .cloned()
            .unwrap_or_else(|| svc.clone());
        let mut vips = Vec::new();
        for n in want {
            match s.vips.iter().find(|v| &v.network_id == n) {
                Some(v) => vips.push(v.clone()),
                None => vips.extend(next_address(state, n, &mut used)),
            }
        }
        s.vips = vips;
        plan.services.retain(|p| p.id != s.id);
        plan.services.push(s);
    }
    for t in plan.changed.values_mut() {
        if !t.networks.is_empty() || !active(t) {
            continue;
        }
        let Some(svc) = state.services.get(&t.service_id) else {
            continue;
        };
        for net_id in service_networks(state, &svc.spec) {
            t.networks.extend(next_address(state, &net_id, &mut used));
        }
    }
}

/// Give every task placed this round a port of its node's ephemeral range for each
/// host-mode port its service leaves unpublished (see [`crate::host_ports`]), in the same
/// Raft entry that assigns it, so its node never sees it without its ports. A task whose
/// node has no port left is rejected with the reason (docker's engine fails it there), and
/// its restart policy decides what follows.
fn allocate_host_ports(plan: &mut Plan) {
    let needs_port = |t: &TaskRecord| {
        active(t)
            && !t.node_id.is_empty()
            && !t.status.state.is_terminal()
            && t.host_ports.iter().any(|p| p.published_port.is_none())
    };
    if !plan.changed.values().any(needs_port) {
        return;
    }
    let state = plan.state;
    let live = state
        .tasks
        .values()
        .filter(|t| !plan.changed.contains_key(&t.id))
        .chain(plan.changed.values())
        .filter(|t| !t.status.state.is_terminal() && !needs_port(t));
    let mut picker = crate::host_ports::PortPicker::new(
        state.services.values().map(|s| &s.spec),
        live,
        state
            .nodes
            .values()
            .map(|n| (n.id.as_str(), n.listen_port())),
        crate::services::data_path_port(state),
    );
    for t in plan.changed.values_mut().filter(|t| needs_port(t)) {
        let range = state
            .nodes
            .get(&t.node_id)
            .and_then(|n| n.description.ephemeral_ports)
            .unwrap_or(crate::host_ports::DEFAULT_EPHEMERAL_PORTS);
        if let Err(e) = picker.fill(&t.node_id, range, &mut t.host_ports) {
            t.status.state = TaskState::Rejected;
            t.status.message = "rejected".into();
            t.status.err = Some(e.to_string());
            t.status.timestamp = Some(plan.now);
        }
    }
}

/// Only the placement differs, so a task whose node still fits can keep running.
fn placement_only_change(old: &TaskSpec, new: &TaskSpec) -> bool {
    let mut a = old.clone();
    let mut b = new.clone();
    a.placement = None;
    b.placement = None;
    a == b
}

struct Plan<'a> {
    state: &'a ClusterState,
    now: DateTime<Utc>,
    sched: Scheduler,
    /// Tasks changed this round, by ID (the latest version wins).
    changed: BTreeMap<String, TaskRecord>,
    services: Vec<ServiceRecord>,
    deletes: Vec<String>,
    /// Tasks created this round for empty slots (bounded by NEW_TASKS_PER_ROUND).
    new_tasks: usize,
}

impl Plan<'_> {
    fn task(&self, id: &str) -> TaskRecord {
        self.changed
            .get(id)
            .cloned()
            .unwrap_or_else(|| self.state.tasks[id].clone())
    }

    fn put(&mut self, mut t: TaskRecord) {
        t.updated_at = self.now;
        self.changed.insert(t.id.clone(), t);
    }

    fn shutdown(&mut self, id: &str, message: Option<&str>) {
        let mut t = self.task(id);
        // Never back: a task to be removed stays so.
        if t.desired_state >= TaskState::Shutdown {
            return;
        }
        t.desired_state = TaskState::Shutdown;
        if let Some(m) = message {
            if !t.status.state.is_terminal() {
                t.status.message = m.to_string();
            }
        }
        self.put(t);
    }

    /// swarmkit's `TaskStateRemove`: the task's slot is gone (scale down) or its service
    /// is (`service rm`). Its node stops it as it stops any task (leaving the load balancer
    /// first, then the stop grace), and [`reap_removed`] forgets it once it has stopped, so
    /// it leaves `service ps` instead of lingering as history. A desired state never goes
    /// back (`shutdown` < `remove`, so a task already told to shut down gets it too).
    fn remove(&mut self, id: &str) {
        let mut t = self.task(id);
        if t.desired_state >= TaskState::Remove {
            return;
        }
        t.desired_state = TaskState::Remove;
        self.put(t);
    }

    /// Delete a task (and drop what this round changed in it).
    fn forget(&mut self, id: &str) {
        self.changed.remove(id);
        if self.state.tasks.contains_key(id) {
            self.deletes.push(id.to_string());
        }
    }

    /// A task that ended stays ended (its restart policy says so).
    fn finish(&mut self, id: &str) {
        let mut done = self.task(id);
        done.desired_state = TaskState::Shutdown;
        done.status.message = NOT_RESTARTED.into();
        self.put(done);
    }

    /// Put a new task through the scheduler: assigned to a node, or pending with the reason.
    fn schedule(&mut self, mut t: TaskRecord, req: &Req) {
        if t.node_id.is_empty() {
            match self.sched.place(&req.as_req()) {
                Ok(node) => {
                    t.node_id = node;
                    t.status.state = TaskState::Assigned;
                    t.status.message = ASSIGNED.into();
                    t.status.err = None;
                    t.status.timestamp = Some(self.now);
                }
                Err(why) => {
                    if t.status.err.as_deref() != Some(why.as_str()) {
                        t.status.err = Some(why);
                        t.status.timestamp = Some(self.now);
                    } else if !self.changed.contains_key(&t.id)
                        && self.state.tasks.contains_key(&t.id)
                    {
                        return; // nothing new to say
                    }
                }
            }
        }
        self.put(t);
    }
}

/// One reconciliation round. Returns the commands to propose (possibly none).
pub fn reconcile(
    state: &ClusterState,
    now: DateTime<Utc>,
    clock: &mut UpdateClock,
) -> Vec<Command> {
    let nodes: Vec<NodeInfo> = state.nodes.values().map(node_info).collect();
    let mut sched = Scheduler::new(nodes);
    for t in state.tasks.values() {
        if active(t) && !t.node_id.is_empty() && !t.status.state.is_terminal() {
            let req = Req::of_task(t);
            sched.add_existing(
                &t.service_id,
                &t.node_id,
                req.cpus,
                req.memory,
                &req.host_ports,
            );
        }
    }
    let mut plan = Plan {
        state,
        now,
        sched,
        changed: BTreeMap::new(),
        services: Vec::new(),
        deletes: Vec::new(),
        new_tasks: 0,
    };

    for id in retire_replaced(state) {
        plan.shutdown(&id, None);
    }

    let mut by_service: HashMap<&str, Vec<&TaskRecord>> = HashMap::new();
    for t in state.tasks.values() {
        by_service.entry(t.service_id.as_str()).or_default().push(t);
    }

    // Tasks of removed services: every one is to be removed (swarmkit's
    // SetServiceTasksRemove; `RemoveService` already marked those meant to run), and
    // [`reap_removed`] forgets each once it has stopped.
    for t in state.tasks.values() {
        if !state.services.contains_key(&t.service_id) {
            plan.remove(&t.id);
        }
    }

    for svc in state.services.values() {
        let tasks = by_service.remove(svc.id.as_str()).unwrap_or_default();
        reconcile_service(&mut plan, svc, &tasks, clock);
    }

    reap_removed(&mut plan);
    allocate_addresses(&mut plan);
    allocate_host_ports(&mut plan);
    let mut cmds = Vec::new();
    if !plan.services.is_empty() {
        for s in std::mem::take(&mut plan.services) {
            // The record was read at s.version; a user's update since then wins.
            cmds.push(Command::PutService {
                expected_version: Some(s.version),
                service: Box::new(s),
            });
        }
    }
    if !plan.changed.is_empty() {
        cmds.push(Command::PutTasks {
            tasks: plan.changed.into_values().collect(),
        });
    }
    if !plan.deletes.is_empty() {
        plan.deletes.sort();
        plan.deletes.dedup();
        cmds.push(Command::DeleteTasks { ids: plan.deletes });
    }
    cmds
}

/// A task that runs nowhere any more: it ended, was never placed, or its node is gone or
/// down (nothing will report it stopping; were the node to come back, it stops a task its
/// leader no longer lists).
fn stopped(state: &ClusterState, t: &TaskRecord) -> bool {
    t.status.state.is_terminal()
        || t.status.state < TaskState::Assigned
        || t.node_id.is_empty()
        || state
            .nodes
            .get(&t.node_id)
            .is_none_or(|n| n.state == NodeState::Down)
}

/// swarmkit's task reaper for tasks whose desired state is `remove`: delete each once it
/// has stopped (swarmkit: observed state below assigned or at least complete), so a
/// scaled-down slot or a removed service leaves `service ps` and `node ps` as it leaves
/// docker's. Until then it is listed with DESIRED STATE `Remove`, and stays in the load
/// balancer as a terminating backend: no new flows, its open ones kept while it stops.
fn reap_removed(plan: &mut Plan) {
    let ids: std::collections::BTreeSet<String> = plan
        .state
        .tasks
        .keys()
        .chain(plan.changed.keys())
        .cloned()
        .collect();
    for id in ids {
        let t = plan.task(&id);
        if t.desired_state == TaskState::Remove && stopped(plan.state, &t) {
            plan.forget(&id);
        }
    }
}

/// Node is gone, down or drained: its tasks must move.
fn node_lost(state: &ClusterState, node_id: &str) -> Option<&'static str> {
    match state.nodes.get(node_id) {
        None => Some("node removed"),
        Some(n) if n.state == NodeState::Down => Some("node is down"),
        Some(n) if n.spec.availability == Availability::Drain => Some("node is drained"),
        _ => None,
    }
}

/// swarmkit's restart supervisor's `shouldRestart`: whether the task `dead` (ended, or
/// on a node that is lost) is replaced, by its restart condition (`none` never;
/// `on-failure` unless it completed) and max attempts (the restarts made in its slot,
/// within the window). The restart delay is not its business: the replacement is made
/// at once and started once the delay is over ([`start_due`]).
fn should_restart(svc: &ServiceRecord, slot_tasks: &[&TaskRecord], dead: &TaskRecord) -> bool {
    let policy = svc
        .spec
        .task_template
        .restart_policy
        .clone()
        .unwrap_or_default();
    let condition = policy.condition.unwrap_or_default();
    let restart = match condition {
        RestartCondition::None => false,
        RestartCondition::OnFailure => dead.status.state != TaskState::Complete,
        RestartCondition::Any => true,
    };
    if !restart {
        return false;
    }
    let died_at = dead.status.timestamp.unwrap_or(dead.updated_at);
    if let Some(max) = policy.max_attempts.filter(|m| *m > 0) {
        // swarmkit's shouldRestart: the restarts of this spec version in the slot (every
        // task made for it but its first), made before the task ended and, with a window,
        // within the window before that.
        let window = policy.window.filter(|w| *w > 0).map(ns);
        let mut made: Vec<&TaskRecord> = slot_tasks
            .iter()
            .copied()
            .filter(|t| t.spec_version == svc.spec_version)
            .collect();
        made.sort_by_key(|t| (t.created_at, t.id.clone()));
        let restarts = made
            .iter()
            .skip(1)
            .filter(|t| t.created_at <= died_at)
            .filter(|t| window.is_none_or(|w| t.created_at > died_at - w))
            .count() as u64;
        if restarts >= max {
            return false;
        }
    }
    true
}

/// How long swarmkit's restart supervisor waits for the task a restart replaces to stop
/// before it starts the replacement all the same (its `TaskTimeout`).
const OLD_TASK_TIMEOUT: Duration = Duration::minutes(1);

/// A replacement the restart supervisor made, held with desired state `ready` (its node
/// prepares it, and `service ps` lists it as `Ready`): a task made for a slot to replace
/// one that ended, or whose node was lost.
fn restart_task(svc: &ServiceRecord, slot: u64, node_id: &str, now: DateTime<Utc>) -> TaskRecord {
    let mut t = new_task(svc, slot, node_id, now);
    t.desired_state = TaskState::Ready;
    t
}

/// swarmkit's `DelayStart`: a replacement held `ready` starts (desired state `running`)
/// once the restart delay (none when the task it replaces is on a drained node) has
/// passed since it was made, and the task it replaces has stopped (or its node is down),
/// or has not stopped within [`OLD_TASK_TIMEOUT`] after that.
fn start_due(
    state: &ClusterState,
    t: &TaskRecord,
    group: &[&TaskRecord],
    now: DateTime<Utc>,
) -> bool {
    let replaced = group
        .iter()
        .filter(|o| o.id != t.id && o.created_at <= t.created_at)
        .max_by_key(|o| (o.created_at, o.id.clone()));
    let drained = replaced
        .and_then(|o| state.nodes.get(&o.node_id))
        .is_some_and(|n| n.spec.availability == Availability::Drain);
    let delay = if drained {
        Duration::zero()
    } else {
        let policy = t.spec.restart_policy.clone().unwrap_or_default();
        ns(policy.delay.unwrap_or(5_000_000_000))
    };
    let waited = now - t.created_at;
    if waited < delay {
        return false;
    }
    replaced.is_none_or(|o| stopped(state, o)) || waited >= delay + OLD_TASK_TIMEOUT
}

/// Start `t` if it is a replacement whose delay is over (see [`start_due`]; `group`: the
/// tasks of its slot, or for a global service of its node).
fn start_if_due(plan: &mut Plan, t: &TaskRecord, group: &[&TaskRecord]) {
    if t.desired_state == TaskState::Ready && start_due(plan.state, t, group, plan.now) {
        let mut started = plan.task(&t.id);
        if started.desired_state == TaskState::Ready {
            started.desired_state = TaskState::Running;
            plan.put(started);
        }
    }
}

fn reconcile_service(
    plan: &mut Plan,
    svc: &ServiceRecord,
    tasks: &[&TaskRecord],
    clock: &mut UpdateClock,
) {
    let now = plan.now;
    let req = Req::of_service(svc);

    // Forget history beyond the limit, per slot (global: per node).
    let mut groups: BTreeMap<(u64, &str), Vec<&TaskRecord>> = BTreeMap::new();
    for t in tasks {
        let key = if t.slot == 0 {
            (0, t.node_id.as_str())
        } else {
            (t.slot, "")
        };
        groups.entry(key).or_default().push(t);
    }
    for list in groups.values_mut() {
        list.sort_by_key(|t| std::cmp::Reverse(t.created_at));
    }
    // Pending tasks get another chance at placement (not those of slots a scale-down
    // removes this round: they are forgotten instead).
    let replicas = svc.spec.mode.replicas().unwrap_or(0).min(MAX_REPLICAS);
    for t in tasks {
        let removed_slot = !svc.spec.mode.is_global() && t.slot > replicas;
        if active(t) && t.node_id.is_empty() && !removed_slot {
            let t = plan.task(&t.id);
            plan.schedule(t, &req);
        }
    }

    if svc.spec.mode.is_global() {
        reconcile_global(plan, svc, tasks, &req);
    } else {
        reconcile_replicated(plan, svc, tasks, &req, &groups);
    }
    rolling_update(plan, svc, tasks, &req, clock);
    prune_history(plan, svc, &groups);
    let _ = now;
}

/// swarmkit's task reaper: a slot (global: a node) keeps at most the history limit of tasks
/// *in all*, the live one included (so 5 means the running task and 4 finished ones), or
/// max_attempts + 1 when the restart policy sets max_attempts. The oldest finished go
/// first; tasks this round creates count too, so the list never grows past the limit.
fn prune_history(
    plan: &mut Plan,
    svc: &ServiceRecord,
    groups: &BTreeMap<(u64, &str), Vec<&TaskRecord>>,
) {
    let mut keep = plan
        .state
        .cluster
        .as_ref()
        .map(|c| c.task_history)
        .unwrap_or(5) as usize;
    if let Some(m) = svc
        .spec
        .task_template
        .restart_policy
        .as_ref()
        .and_then(|r| r.max_attempts)
        .filter(|&m| m > 0)
    {
        // Any u64 is a valid max_attempts (docker takes one): saturate, never overflow.
        keep = usize::try_from(m).unwrap_or(usize::MAX).saturating_add(1);
    }
    let mut fresh: BTreeMap<(u64, String), usize> = BTreeMap::new();
    for t in plan.changed.values() {
        if t.service_id == svc.id && !plan.state.tasks.contains_key(&t.id) {
            let key = if t.slot == 0 {
                (0, t.node_id.clone())
            } else {
                (t.slot, String::new())
            };
            *fresh.entry(key).or_default() += 1;
        }
    }
    for (&(slot, node), list) in groups {
        let total = list.len() + fresh.get(&(slot, node.to_string())).copied().unwrap_or(0);
        let excess = total.saturating_sub(keep);
        // `list` is newest first; each task as this round leaves it.
        let finished: Vec<String> = list
            .iter()
            .rev()
            .map(|t| plan.task(&t.id))
            .filter(|t| !active(t) && t.status.state.is_terminal())
            .map(|t| t.id)
            .collect();
        plan.deletes.extend(finished.into_iter().take(excess));
    }
}

fn reconcile_replicated(
    plan: &mut Plan,
    svc: &ServiceRecord,
    tasks: &[&TaskRecord],
    req: &Req,
    groups: &BTreeMap<(u64, &str), Vec<&TaskRecord>>,
) {
    // A service stored before `validate` capped replicas gets no more than the cap.
    let replicas = svc.spec.mode.replicas().unwrap_or(0).min(MAX_REPLICAS);
    let now = plan.now;
    for slot in 1..=replicas {
        let slot_tasks: Vec<&TaskRecord> = groups.get(&(slot, "")).cloned().unwrap_or_default();
        let live: Vec<&TaskRecord> = slot_tasks.iter().copied().filter(|t| active(t)).collect();
        if live.is_empty() {
            // A slot whose last task stopped for good (restart none / attempts used up)
            // stays empty; otherwise it gets a task.
            // A spec change that leaves the task as it was (a scale, a label) does not
            // bring it back (swarmkit's updater finds it clean); an update does.
            let stopped_for_good = slot_tasks.first().is_some_and(|t| {
                t.status.message == NOT_RESTARTED && task_up_to_date(plan.state, t, svc)
            });
            if !stopped_for_good && plan.new_tasks < NEW_TASKS_PER_ROUND {
                plan.new_tasks += 1;
                let t = new_task(svc, slot, "", now);
                plan.schedule(t, req);
            }
            continue;
        }
        // swarmkit's replicated orchestrator hands a task whose node is lost (down,
        // removed or drained), or that ended, to the restart supervisor: it is told to
        // shut down, and replaced only if its restart policy says so, by a task held
        // `ready` until the restart delay is over.
        for t in &live {
            let lost = node_lost(plan.state, &t.node_id).filter(|_| !t.node_id.is_empty());
            if lost.is_none() && !t.status.state.is_terminal() {
                continue;
            }
            if should_restart(svc, &slot_tasks, t) {
                plan.shutdown(&t.id, lost);
                let n = restart_task(svc, slot, "", now);
                plan.schedule(n, req);
            } else {
                plan.finish(&t.id);
            }
        }
        for t in &live {
            start_if_due(plan, t, &slot_tasks);
        }
    }
    // Scale down: the tasks of slots above the replica count are to be removed (swarmkit
    // sets TaskStateRemove, not shutdown: the slot goes, its task is not replaced).
    for t in tasks {
        if t.slot > replicas && active(t) {
            plan.remove(&t.id);
        }
    }
    // A removed slot's history goes with it once nothing in it is still stopping (swarmkit
    // deletes the tasks of slots left with no task to run, its "dead slots", when it next
    // reconciles the service), so `service ps` lists only the slots the service has.
    for (&(slot, _), list) in groups.range((replicas + 1, "")..) {
        let finished = list.iter().all(|t| {
            let t = plan.task(&t.id);
            !active(&t) && stopped(plan.state, &t)
        });
        if slot > replicas && finished {
            for t in list {
                plan.forget(&t.id);
            }
        }
    }
}

fn reconcile_global(plan: &mut Plan, svc: &ServiceRecord, tasks: &[&TaskRecord], req: &Req) {
    let now = plan.now;
    let eligible: Vec<String> = plan
        .state
        .nodes
        .values()
        .filter(|n| n.state == NodeState::Ready && n.spec.availability == Availability::Active)
        .filter(|n| plan.sched.fits(&req.as_req(), &n.id, true))
        .map(|n| n.id.clone())
        .collect();
    for t in tasks {
        if !active(t) {
            continue;
        }
        let lost = node_lost(plan.state, &t.node_id);
        let fits = eligible.contains(&t.node_id)
            || plan
                .state
                .nodes
                .get(&t.node_id)
                .is_some_and(|n| n.spec.availability == Availability::Pause);
        let group: Vec<&TaskRecord> = tasks
            .iter()
            .copied()
            .filter(|x| x.node_id == t.node_id)
            .collect();
        if lost.is_some() || !fits {
            // swarmkit's global orchestrator shuts the tasks of a lost node down; when the
            // node is back, it gets a task again only if the restart policy would restart
            // the last one (its UpdatableTasksInSlot): with condition none it stays empty.
            if lost.is_some() && !should_restart(svc, &group, t) {
                plan.finish(&t.id);
            } else {
                plan.shutdown(&t.id, lost);
            }
        } else if t.status.state.is_terminal() {
            if should_restart(svc, &group, t) {
                plan.shutdown(&t.id, None);
                plan.put(restart_task(svc, 0, &t.node_id, now));
            } else {
                plan.finish(&t.id);
            }
        } else {
            start_if_due(plan, t, &group);
        }
    }
    for node in eligible {
        let has = tasks.iter().any(|t| {
            t.node_id == node && (active(t) || plan.changed.get(&t.id).is_some_and(active))
        }) || plan
            .changed
            .values()
            .any(|t| t.service_id == svc.id && t.node_id == node && active(t));
        let on_node: Vec<&TaskRecord> = tasks
            .iter()
            .copied()
            .filter(|t| t.node_id == node)
            .collect();
        if !has && !stays_stopped(plan.state, svc, &on_node) {
            let n = new_task(svc, 0, &node, now);
            plan.sched
                .add_existing(&svc.id, &node, req.cpus, req.memory, &req.host_ports);
            plan.put(n);
        }
    }
}

/// swarmkit's global orchestrator on a node that fits and runs no task of the service
/// (`UpdatableTasksInSlot`, then `IsTaskDirty`): the node's newest task stays its task,
/// and none is added, when the restart policy would not restart it and it is not dirty
/// (made from the current spec, or one that differs only in placement, which the node
/// meets). However it stopped: it ended, its node was lost or drained, or it no longer
/// met the constraints. Not during a rollback, which always adds one.
fn stays_stopped(state: &ClusterState, svc: &ServiceRecord, on_node: &[&TaskRecord]) -> bool {
    let rolling_back = svc
        .update_status
        .as_ref()
        .is_some_and(|u| u.state == UpdateState::RollbackStarted);
    let Some(newest) = on_node.iter().max_by_key(|t| (t.created_at, t.id.as_str())) else {
        return false;
    };
    !rolling_back
        && !should_restart(svc, on_node, newest)
        && (task_up_to_date(state, newest, svc)
            || placement_only_change(&newest.spec, &svc.spec.task_template))
}

/// The rolling updater: replace tasks made from an older spec, `parallelism` at a time,
/// `delay` apart, watching each batch for `monitor`; on failure pause, continue or roll back.
fn rolling_update(
    plan: &mut Plan,
    svc: &ServiceRecord,
    tasks: &[&TaskRecord],
    req: &Req,
    clock: &mut UpdateClock,
) {
    let now = plan.now;
    let rolling_back = svc
        .update_status
        .as_ref()
        .is_some_and(|u| u.state == UpdateState::RollbackStarted);
    let cfg: UpdateConfig = if rolling_back {
        svc.spec.rollback_config.clone().unwrap_or_default()
    } else {
        svc.spec.update_config.clone().unwrap_or_default()
    };
    let current: Vec<TaskRecord> = tasks.iter().map(|t| plan.task(&t.id)).collect();
    // Outdated tasks still meant to run. Placement-only changes keep tasks whose node fits.
    let mut outdated = Vec::new();
    for t in current
        .iter()
        .filter(|t| active(t) && t.spec_version < svc.spec_version)
    {
        // swarmkit's IsTaskDirty: the same spec and endpoint, wherever the task runs
        // (also on a paused node), or only placement changed and its node still fits.
        let same = t.spec == svc.spec.task_template;
        if endpoint_current(plan.state, t, &svc.spec)
            && (same
                || (placement_only_change(&t.spec, &svc.spec.task_template)
                    && !t.node_id.is_empty()
                    && plan.sched.fits(&req.as_req(), &t.node_id, true)))
        {
            let mut kept = t.clone();
            kept.spec = svc.spec.task_template.clone();
            kept.spec_version = svc.spec_version;
            // Kept, not made by the update now under way: its failure is not the update's.
            kept.by_update = false;
            plan.put(kept);
        } else {
            outdated.push(t.clone());
        }
    }
    // The tasks this update made (at the service's spec version), as this round leaves them.
    let made: Vec<TaskRecord> = current
        .iter()
        .filter(|t| t.by_update && t.spec_version == svc.spec_version)
        .map(|t| plan.task(&t.id))
        .collect();
    let status = match svc.update_status.clone() {
        Some(status) => status,
        // swarmkit's updater: tasks to update and no update under way start one (a spec
        // change resets the status, so `service update SVC` resumes a paused update).
        None if !outdated.is_empty() => {
            let started = UpdateStatus {
                state: UpdateState::Updating,
                started_at: now,
                completed_at: None,
                message: "update in progress".into(),
            };
            let mut s = svc.clone();
            s.update_status = Some(started.clone());
            s.updated_at = now;
            plan.services.push(s);
            started
        }
        // No update in progress (e.g. a service created with tasks up to date).
        None => return,
    };
    if !status.state.in_progress() {
        return;
    }
    // swarmkit's failure count: tasks this update made that failed (or ended while meant to
    // run) before running, or within `monitor` of starting to run, against the slots the
    // update touches; restarts of them and older tasks do not count.
    let monitor = ns(cfg.monitor);
    let new_tasks: Vec<&TaskRecord> = current
        .iter()
        .filter(|t| t.spec_version == svc.spec_version)
        .collect();
    let failed: Vec<&TaskRecord> = made
        .iter()
        .filter(|t| {
            matches!(t.status.state, TaskState::Failed | TaskState::Rejected)
                || (t.status.state == TaskState::Complete && active(t))
        })
        .filter(|t| {
            let ended = t.status.timestamp.unwrap_or(t.updated_at);
            t.running_at.is_none_or(|r| ended - r <= monitor)
        })
        .collect();
    let slot_of = |t: &TaskRecord| {
        if t.slot == 0 {
            (0, t.node_id.clone())
        } else {
            (t.slot, String::new())
        }
    };
    let dirty_slots: std::collections::BTreeSet<(u64, String)> =
        outdated.iter().chain(made.iter()).map(slot_of).collect();
    let total = dirty_slots.len().max(1);
    if !failed.is_empty()
        && cfg.failure_action != FailureAction::Continue
        && failed.len() as f32 / total as f32 > cfg.max_failure_ratio
    {
        let mut culprits: Vec<&&TaskRecord> = failed.iter().collect();
        culprits.sort_by_key(|t| (t.status.timestamp, t.id.clone()));
        let culprit = culprits[0].id.clone();
        if let (FailureAction::Rollback, false, Some(_)) =
            (cfg.failure_action, rolling_back, &svc.previous_spec)
        {
            plan.services.push(rolled_back_after_failure(
                svc,
                status.started_at,
                &culprit,
                now,
            ));
            return;
        }
        let mut s = svc.clone();
        s.update_status = Some(UpdateStatus {
            state: if rolling_back {
                UpdateState::RollbackPaused
            } else {
                UpdateState::Paused
            },
            started_at: status.started_at,
            completed_at: None,
            message: if rolling_back {
                format!("rollback paused due to failure or early termination of task {culprit}")
            } else {
                format!("update paused due to failure or early termination of task {culprit}")
            },
        });
        s.updated_at = now;
        plan.services.push(s);
        return;
    }
    // A batch is in flight while new tasks are not yet running (with a healthcheck:
    // healthy, as docker's executor reports a task running only once it is), or old ones
    // not yet stopped.
    let starting = new_tasks
        .iter()
        .any(|t| active(t) && !t.is_running() && !t.status.state.is_terminal());
    let stopping = current.iter().any(|t| {
        !active(t)
            && t.spec_version < svc.spec_version
            && !t.status.state.is_terminal()
            && plan
                .state
                .nodes
                .get(&t.node_id)
                .is_some_and(|n| n.state == NodeState::Ready)
    });
    if starting || stopping {
        clock.last_batch_done.remove(&svc.id);
        return;
    }
    // The delay is between batches (swarmkit's worker waits after each): the first goes
    // at once.
    let done_at = if made.is_empty() {
        None
    } else {
        Some(*clock.last_batch_done.entry(svc.id.clone()).or_insert(now))
    };
    // Watch the last batch for `monitor` before calling the update done (swarmkit: for
    // delay + 1s when the delay is not shorter).
    let watch = if cfg.delay >= cfg.monitor {
        ns(cfg.delay) + Duration::seconds(1)
    } else {
        monitor
    };
    if outdated.is_empty() {
        let recent = new_tasks.iter().filter(|t| t.is_running()).all(|t| {
            t.running_at
                .or(t.status.timestamp)
                .is_none_or(|ts| now - ts >= watch)
        });
        if recent {
            let mut s = svc.clone();
            s.update_status = Some(UpdateStatus {
                state: if rolling_back {
                    UpdateState::RollbackCompleted
                } else {
                    UpdateState::Completed
                },
                started_at: status.started_at,
                completed_at: Some(now),
                message: if rolling_back {
                    "rollback completed".into()
                } else {
                    "update completed".into()
                },
            });
            s.updated_at = now;
            plan.services.push(s);
            clock.last_batch_done.remove(&svc.id);
        }
        return;
    }
    if done_at.is_some_and(|at| now - at < ns(cfg.delay)) {
        return;
    }
    // A slot that already has a task of this version (start-first, its old task waiting
    // for it to run; or a restart) gets no other: its old task goes once that one runs.
    let replaced: std::collections::BTreeSet<(u64, String)> = current
        .iter()
        .map(|t| plan.task(&t.id))
        .filter(|t| active(t) && t.spec_version == svc.spec_version)
        .map(|t| slot_of(&t))
        .collect();
    let pending: Vec<&TaskRecord> = outdated
        .iter()
        .filter(|t| !replaced.contains(&slot_of(t)))
        .collect();
    let parallelism = if cfg.parallelism == 0 {
        pending.len()
    } else {
        cfg.parallelism as usize
    };
    for old in pending.into_iter().take(parallelism) {
        let start_first = cfg.order == UpdateOrder::StartFirst;
        let mut fresh = new_task(
            svc,
            old.slot,
            if old.slot == 0 { &old.node_id } else { "" },
            now,
        );
        fresh.by_update = true;
        if !start_first {
            plan.shutdown(&old.id, None);
            // The old task's resources are freed before the new one is placed.
            let r = Req::of_task(old);
            plan.sched
                .remove_existing(&svc.id, &old.node_id, r.cpus, r.memory, &r.host_ports);
        } else {
            // start-first: the old task stops once the new one runs (below, next rounds).
            let mut o = plan.task(&old.id);
            o.status.message = "replaced by start-first update".into();
            plan.put(o);
        }
        if old.slot == 0 {
            plan.put(fresh);
        } else {
            plan.schedule(fresh, req);
        }
    }
    clock.last_batch_done.remove(&svc.id);
}

/// start-first: once a slot's new task runs, its outdated sibling stops.
fn retire_replaced(state: &ClusterState) -> Vec<String> {
    let mut out = Vec::new();
    for t in state.tasks.values() {
        if !active(t) || t.status.message != "replaced by start-first update" {
            continue;
        }
        let newer_running = state.tasks.values().any(|n| {
            n.service_id == t.service_id
                && n.slot == t.slot
                && (t.slot != 0 || n.node_id == t.node_id)
                && n.id != t.id
                && n.spec_version > t.spec_version
                && n.is_running()
        });
        if newer_running {
            out.push(t.id.clone());
        }
    }
    out
}

/// A new spec for a service: what `service update` and `stack deploy` propose.
pub fn updated_service(
    svc: &ServiceRecord,
    spec: ServiceSpec,
    now: DateTime<Utc>,
) -> ServiceRecord {
    let mut s = svc.clone();
    s.previous_spec = Some(svc.spec.clone());
    s.previous_dynamic_ports = svc.dynamic_ports.clone();
    // What a task publishes is part of it (swarmkit compares Task.Endpoint): a task made
    // without a host-mode port, or without an ingress address, cannot serve one.
    s.spec = spec;
    s.spec_version += 1;
    s.updated_at = now;
    // swarmkit's UpdateService resets the status on every spec change; the orchestrator
    // starts an update (and a status) only when some task is out of date. A change no task
    // needs (a scale, a placement every task's node still fits) shows none, and docker's
    // progress then waits for the service to converge, as for any update.
    s.update_status = None;
    s
}

/// failure_action rollback, swarmkit's rollbackUpdate: the previous spec comes back and
/// none is kept (a rollback is not rolled back), the update's start time stays. Its ports
/// published without a number go back as given, numbered again as the entry applies (see
/// [`rolled_back_service`]).
pub(crate) fn rolled_back_after_failure(
    svc: &ServiceRecord,
    started_at: DateTime<Utc>,
    culprit: &str,
    now: DateTime<Utc>,
) -> ServiceRecord {
    let mut s = svc.clone();
    if let Some(prev) = s.previous_spec.take() {
        s.spec = prev;
        s.dynamic_ports = std::mem::take(&mut s.previous_dynamic_ports);
    }
    s.spec_version += 1;
    s.update_status = Some(UpdateStatus {
        state: UpdateState::RollbackStarted,
        started_at,
        completed_at: None,
        message: format!(
            "update rolled back due to failure or early termination of task {culprit}"
        ),
    });
    s.updated_at = now;
    s
}

/// `service rollback`: the previous spec comes back and the current one becomes the
/// previous, as swarmkit's controlapi does. The ports it published without a number
/// come back as given: the state machine numbers them again when the entry applies,
/// keeping a port the service publishes now for the same target, as swarmkit's allocator
/// does, so a rollback never fails on a dynamic port another service took meanwhile.
pub fn rolled_back_service(
    svc: &ServiceRecord,
    now: DateTime<Utc>,
) -> Result<ServiceRecord, String> {
    let Some(prev) = svc.previous_spec.clone() else {
        return Err(format!(
            "rpc error: code = FailedPrecondition desc = service {} does not have a previous spec",
            svc.id
        ));
    };
    let mut s = svc.clone();
    s.previous_spec = Some(svc.spec.clone());
    s.previous_dynamic_ports = svc.dynamic_ports.clone();
    s.spec = prev;
    s.dynamic_ports = svc.previous_dynamic_ports.clone();
    s.spec_version += 1;
    s.updated_at = now;
    s.update_status = Some(UpdateStatus {
        state: UpdateState::RollbackStarted,
        started_at: now,
        completed_at: None,
        message: "manually requested rollback".into(),
    });
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::new_node_record;
    use crate::types::{NodeDescription, Role};
    use shoal_spec::{ContainerSpec, RestartPolicy, ServiceMode};

    fn cluster(nodes: &[&str]) -> ClusterState {
        let mut s = ClusterState::default();
        for (i, h) in nodes.iter().enumerate() {
            let n = new_node_record(
                format!("node{i}"),
                i as u64 + 1,
                Role::Manager,
                NodeDescription {
                    hostname: h.to_string(),
                    os: "linux".into(),
                    architecture: "x86_64".into(),
                    nano_cpus: 2_000_000_000,
                    memory_bytes: 1 << 30,
                    engine_version: "0".into(),
                    ephemeral_ports: None,
                    tls: None,
                },
                "10.0.0.1".into(),
                "10.0.0.1:2377".into(),
                Utc::now(),
            );
            s.nodes.insert(n.id.clone(), n);
        }
        s
    }

    fn service(replicas: u64) -> ServiceRecord {
        let now = Utc::now();
        ServiceRecord {
            id: "svc1".into(),
            version: 1,
            created_at: now,
            updated_at: now,
            spec: ServiceSpec {
                name: "web".into(),
                task_template: TaskSpec {
                    container_spec: ContainerSpec {
                        image: "demo:1".into(),
                        args: vec!["sleep".into(), "60".into()],
                        ..Default::default()
                    },
                    ..Default::default()
                },
                mode: ServiceMode::replicated(replicas),
                ..Default::default()
            },
            previous_spec: None,
            spec_version: 1,
            update_status: None,
            vips: Vec::new(),
            dynamic_ports: Vec::new(),
            previous_dynamic_ports: Vec::new(),
        }
    }

    /// Apply reconcile's commands to the state (as Raft would) and return them.
    fn step(state: &mut ClusterState, clock: &mut UpdateClock, now: DateTime<Utc>) -> usize {
        let cmds = reconcile(state, now, clock);
        let n = cmds.len();
        for (i, c) in cmds.iter().enumerate() {
            state.apply(c, 100 + i as u64);
        }
        n
    }

    fn run_all(state: &mut ClusterState) {
        let ids: Vec<String> = state.tasks.keys().cloned().collect();
        for id in ids {
            // A down node reports nothing.
            let node = &state.tasks[&id].node_id;
            if state
                .nodes
                .get(node)
                .is_some_and(|n| n.state == NodeState::Down)
            {
                continue;
            }
            let t = state.tasks.get_mut(&id).unwrap();
            if t.desired_state == TaskState::Running && t.status.state == TaskState::Assigned {
                t.status.state = TaskState::Running;
                t.status.timestamp = Some(Utc::now() - Duration::seconds(60));
            }
            // Told to shut down or to be removed: the node stops it.
            if t.desired_state > TaskState::Running && !t.status.state.is_terminal() {
                t.status.state = TaskState::Shutdown;
            }
        }
    }

    /// The tasks of `svc` as `service ps` lists them: (slot, desired, observed), sorted.
    fn ps(state: &ClusterState, svc: &str) -> Vec<(u64, TaskState, TaskState)> {
        let mut v: Vec<(u64, TaskState, TaskState)> = state
            .tasks
            .values()
            .filter(|t| t.service_id == svc)
            .map(|t| (t.slot, t.desired_state, t.status.state))
            .collect();
        v.sort();
        v
    }

    /// A finished task of `svc` in `slot` (history), made `age` seconds ago.
    fn history(state: &mut ClusterState, svc: &ServiceRecord, slot: u64, node: &str, age: i64) {
        let mut t = new_task(svc, slot, node, Utc::now() - Duration::seconds(age));
        t.desired_state = TaskState::Shutdown;
        t.status.state = TaskState::Shutdown;
        state.tasks.insert(t.id.clone(), t);
    }

    /// Scale down as swarmkit does it: the tasks of the slots that go get desired state
    /// `remove` (not `shutdown`) and stay listed while their node stops them; once they
    /// have stopped, they and their slots' history are deleted, so `service ps` lists only
    /// the slots the service has. The slot that stays keeps its history.
    #[test]
    fn scale_down_removes_the_slots_tasks_once_stopped() {
        use TaskState::{Remove, Running, Shutdown};
        let mut s = cluster(&["vm1", "vm2"]);
        let svc = service(3);
        s.services.insert("svc1".into(), svc.clone());
        let mut clock = UpdateClock::default();
        step(&mut s, &mut clock, Utc::now());
        run_all(&mut s);
        history(&mut s, &svc, 1, "node0", 600);
        history(&mut s, &svc, 3, "node1", 600);

        let mut scaled = svc.clone();
        scaled.spec.mode = ServiceMode::replicated(1);
        s.services.insert("svc1".into(), scaled);
        step(&mut s, &mut clock, Utc::now());
        assert_eq!(
            ps(&s, "svc1"),
            [
                (1, Running, Running),
                (1, Shutdown, Shutdown),
                (2, Remove, Running),
                (3, Shutdown, Shutdown),
                (3, Remove, Running),
            ],
            "stopping: listed with desired state remove, history kept meanwhile"
        );
        assert_eq!(
            step(&mut s, &mut clock, Utc::now()),
            0,
            "nothing to do until they stop"
        );

        run_all(&mut s);
        step(&mut s, &mut clock, Utc::now());
        assert_eq!(
            ps(&s, "svc1"),
            [(1, Running, Running), (1, Shutdown, Shutdown)],
            "stopped: the removed slots are gone, the slot kept has its history"
        );
        assert_eq!(step(&mut s, &mut clock, Utc::now()), 0, "and it settles");
    }

    /// A removed slot's task that was never placed (pending) is forgotten at once, without
    /// being placed first; a removed task on a node that is down is too (no node will
    /// report it stopping; were it to come back, it stops a task it is no longer given).
    #[test]
    fn removed_tasks_that_run_nowhere_go_at_once() {
        let mut s = cluster(&["vm1", "vm2"]);
        let svc = service(1);
        s.services.insert("svc1".into(), svc.clone());
        let now = Utc::now();
        for (slot, node) in [(1, "node0"), (2, "node1"), (3, "")] {
            let mut t = new_task(&svc, slot, node, now);
            if !node.is_empty() {
                t.status.state = TaskState::Running;
            }
            s.tasks.insert(t.id.clone(), t);
        }
        s.nodes.get_mut("node1").unwrap().state = NodeState::Down;
        let mut clock = UpdateClock::default();
        step(&mut s, &mut clock, now);
        assert_eq!(
            ps(&s, "svc1"),
            [(1, TaskState::Running, TaskState::Running)]
        );
    }

    /// `service rm`: every task of the service is to be removed (swarmkit's
    /// SetServiceTasksRemove, also one still stopping from an update), those that ended go at
    /// once, the others once their node has stopped them.
    #[test]
    fn removed_service_tasks_go_once_stopped() {
        use TaskState::{Remove, Running, Shutdown};
        let mut s = cluster(&["vm1"]);
        let svc = service(2);
        s.services.insert("svc1".into(), svc.clone());
        let mut clock = UpdateClock::default();
        step(&mut s, &mut clock, Utc::now());
        run_all(&mut s);
        history(&mut s, &svc, 1, "node0", 600);
        let mut stopping = new_task(&svc, 2, "node0", Utc::now() - Duration::seconds(300));
        stopping.desired_state = Shutdown;
        stopping.status.state = Running;
        s.tasks.insert(stopping.id.clone(), stopping);
        s.apply(
            &Command::RemoveService {
                service_id: "svc1".into(),
                at: Utc::now(),
            },
            50,
        );
        step(&mut s, &mut clock, Utc::now());
        assert_eq!(
            ps(&s, "svc1"),
            [
                (1, Remove, Running),
                (2, Remove, Running),
                (2, Remove, Running)
            ]
        );
        run_all(&mut s);
        step(&mut s, &mut clock, Utc::now());
        assert_eq!(ps(&s, "svc1"), []);
    }

    /// Scaled back up before the removed tasks stopped: the slots get new tasks at once,
    /// and the old ones still go once stopped.
    #[test]
    fn scale_up_while_removed_tasks_stop() {
        use TaskState::{Assigned, Remove, Running};
        let mut s = cluster(&["vm1", "vm2"]);
        let svc = service(2);
        s.services.insert("svc1".into(), svc.clone());
        let mut clock = UpdateClock::default();
        step(&mut s, &mut clock, Utc::now());
        run_all(&mut s);
        let mut one = svc.clone();
        one.spec.mode = ServiceMode::replicated(1);
        s.services.insert("svc1".into(), one);
        step(&mut s, &mut clock, Utc::now());
        assert_eq!(
            ps(&s, "svc1"),
            [(1, Running, Running), (2, Remove, Running)]
        );
        s.services.insert("svc1".into(), svc.clone());
        step(&mut s, &mut clock, Utc::now());
        assert_eq!(
            ps(&s, "svc1"),
            [
                (1, Running, Running),
                (2, Running, Assigned),
                (2, Remove, Running)
            ]
        );
        run_all(&mut s);
        step(&mut s, &mut clock, Utc::now());
        assert_eq!(
            ps(&s, "svc1"),
            [(1, Running, Running), (2, Running, Running)]
        );
    }

    /// Graceful removal: a scaled-down task still running stays in every node's load
    /// balancer as a terminating backend (its flows kept, no new ones) until it has
    /// stopped, and then leaves it.
    #[test]
    fn removed_task_is_a_terminating_backend_until_stopped() {
        let mut s = with_ingress(cluster(&["vm1"]));
        let svc = publishing("svc1", "web", 2, &["8080:80"]);
        s.services.insert(svc.id.clone(), svc.clone());
        let mut clock = UpdateClock::default();
        step(&mut s, &mut clock, Utc::now());
        run_all(&mut s);
        let backends = |s: &ClusterState| -> Vec<(String, bool)> {
            let view = crate::peer::lb_view(s, "node0");
            view.services[0]
                .backends
                .iter()
                .map(|b| (b.name.clone(), b.terminating))
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect()
        };
        assert_eq!(
            backends(&s),
            [("web.1".to_string(), false), ("web.2".to_string(), false)]
        );
        let mut one = svc.clone();
        one.spec.mode = ServiceMode::replicated(1);
        s.services.insert("svc1".into(), one);
        step(&mut s, &mut clock, Utc::now());
        assert_eq!(
            backends(&s),
            [("web.1".to_string(), false), ("web.2".to_string(), true)]
        );
        run_all(&mut s);
        step(&mut s, &mut clock, Utc::now());
        assert_eq!(backends(&s), [("web.1".to_string(), false)]);
    }

    fn running_nodes(state: &ClusterState) -> Vec<String> {
        let mut v: Vec<String> = state
            .tasks
            .values()
            .filter(|t| t.desired_state == TaskState::Running)
            .map(|t| state.nodes[&t.node_id].description.hostname.clone())
            .collect();
        v.sort();
        v
    }

    /// docker's progress counts only up-to-date tasks: after `--force` none are; after a
    /// scale (no template change) all still are, and a finished update's status is reset.
    #[test]
    fn force_makes_tasks_outdated_scale_does_not() {
        let mut s = cluster(&["vm1"]);
        let mut svc = service(2);
        svc.update_status = Some(UpdateStatus {
            state: UpdateState::Completed,
            started_at: Utc::now(),
            completed_at: Some(Utc::now()),
            message: "update completed".into(),
        });
        s.services.insert("svc1".into(), svc.clone());
        let mut clock = UpdateClock::default();
        step(&mut s, &mut clock, Utc::now());
        let tasks: Vec<TaskRecord> = s.tasks.values().cloned().collect();
        assert_eq!(tasks.len(), 2);
        let mut spec = svc.spec.clone();
        spec.mode = ServiceMode::replicated(3);
        let scaled = updated_service(&svc, spec.clone(), Utc::now());
        assert!(scaled.update_status.is_none());
        assert!(tasks.iter().all(|t| task_up_to_date(&s, t, &scaled)));
        spec.task_template.force_update += 1;
        let forced = updated_service(&scaled, spec, Utc::now());
        assert!(tasks.iter().all(|t| !task_up_to_date(&s, t, &forced)));
        // The orchestrator, not the update itself, starts the update: tasks are outdated.
        assert!(forced.update_status.is_none());
        s.services.insert("svc1".into(), forced);
        step(&mut s, &mut clock, Utc::now());
        assert_eq!(
            s.services["svc1"].update_status.as_ref().unwrap().state,
            UpdateState::Updating
        );
    }

    /// A placement change every task's node still fits is no update: no task is replaced
    /// and no update status appears (swarmkit resets it on the spec change and its updater
    /// finds no dirty slot), so docker's progress waits for convergence instead of
    /// returning on a "completed" update. One a task's node no longer fits is an update.
    #[test]
    fn a_placement_change_tasks_still_fit_is_no_update() {
        let mut s = cluster(&["vm1", "vm2"]);
        s.services.insert("svc1".into(), service(2));
        let mut clock = UpdateClock::default();
        step(&mut s, &mut clock, Utc::now());
        run_all(&mut s);
        let before: Vec<String> = tasks_of(&s, "svc1").iter().map(|t| t.id.clone()).collect();
        let constrained = |s: &ClusterState, c: &str| {
            let svc = s.services["svc1"].clone();
            let mut spec = svc.spec.clone();
            spec.task_template.placement = Some(shoal_spec::Placement {
                constraints: vec![c.into()],
                ..Default::default()
            });
            updated_service(&svc, spec, Utc::now())
        };
        let svc = constrained(&s, "node.hostname != vm9");
        s.services.insert("svc1".into(), svc);
        for _ in 0..3 {
            step(&mut s, &mut clock, Utc::now() + Duration::seconds(30));
            run_all(&mut s);
        }
        let after: Vec<String> = tasks_of(&s, "svc1").iter().map(|t| t.id.clone()).collect();
        assert_eq!(before, after);
        assert_eq!(s.services["svc1"].update_status, None);

        let svc = constrained(&s, "node.hostname != vm2");
        s.services.insert("svc1".into(), svc);
        step(&mut s, &mut clock, Utc::now());
        assert_eq!(
            s.services["svc1"].update_status.as_ref().map(|u| u.state),
            Some(UpdateState::Updating)
        );
    }

    /// A slot keeps at most 5 tasks in all (the running one and 4 finished), the oldest
    /// finished going first, as swarmkit's task reaper keeps them.
    #[test]
    fn history_counts_the_running_task() {
        let mut s = cluster(&["vm1"]);
        let svc = service(1);
        s.services.insert("svc1".into(), svc.clone());
        let base = Utc::now() - Duration::seconds(600);
        let mut ids = Vec::new();
        for i in 0..7 {
            let mut t = new_task(&svc, 1, "node0", base + Duration::seconds(i));
            if i < 6 {
                t.desired_state = TaskState::Shutdown;
                t.status.state = TaskState::Shutdown;
            } else {
                t.status.state = TaskState::Running;
            }
            ids.push(t.id.clone());
            s.tasks.insert(t.id.clone(), t);
        }
        let mut clock = UpdateClock::default();
        step(&mut s, &mut clock, Utc::now());
        let mut left: Vec<&String> = s.tasks.keys().collect();
        left.sort();
        let mut want: Vec<&String> = ids[2..].iter().collect();
        want.sort();
        assert_eq!(left, want);
    }

    /// Any u64 is a valid max_attempts (`--restart-max-attempts 18446744073709551615`, or
    /// compose's `max_attempts`): the history it keeps saturates instead of overflowing,
    /// which panicked the leader's orchestrator for good.
    #[test]
    fn huge_max_attempts_keeps_history_without_overflow() {
        let mut s = cluster(&["vm1"]);
        let mut svc = service(1);
        svc.spec.task_template.restart_policy = Some(RestartPolicy {
            max_attempts: Some(u64::MAX),
            ..Default::default()
        });
        s.services.insert("svc1".into(), svc.clone());
        for age in 1..=8 {
            history(&mut s, &svc, 1, "node0", 600 + age);
        }
        let mut clock = UpdateClock::default();
        step(&mut s, &mut clock, Utc::now());
        let finished = s
            .tasks
            .values()
            .filter(|t| t.status.state == TaskState::Shutdown)
            .count();
        assert_eq!(finished, 8, "max_attempts + 1 keeps all of them");
        assert_eq!(
            s.tasks
                .values()
                .filter(|t| t.desired_state == TaskState::Running)
                .count(),
            1
        );
    }

    /// Replicas are created and spread over the nodes; a second round changes nothing.
    #[test]
    fn replicas_spread_and_settle() {
        let mut s = cluster(&["vm1", "vm2"]);
        s.services.insert("svc1".into(), service(2));
        let mut clock = UpdateClock::default();
        step(&mut s, &mut clock, Utc::now());
        assert_eq!(running_nodes(&s), ["vm1", "vm2"]);
        run_all(&mut s);
        assert_eq!(
            step(&mut s, &mut clock, Utc::now()),
            0,
            "reconcile is idempotent"
        );
    }

    /// swarmkit's restart supervisor: a task that ends is told to shut down at once and,
    /// if its restart condition says so, replaced at once by a task held with desired
    /// state `ready` (its node prepares it) until the restart delay is over; then it
    /// starts. With condition none the slot stays empty.
    #[test]
    fn restart_policy() {
        use TaskState::{Assigned, Failed, Ready, Running, Shutdown};
        for (condition, expect_restart) in [
            (RestartCondition::Any, true),
            (RestartCondition::None, false),
        ] {
            let mut s = cluster(&["vm1"]);
            let mut svc = service(1);
            svc.spec.task_template.restart_policy = Some(RestartPolicy {
                condition: Some(condition),
                delay: Some(5_000_000_000),
                ..Default::default()
            });
            svc.spec.task_template.container_spec.args = vec!["true".into()];
            s.services.insert("svc1".into(), svc);
            let mut clock = UpdateClock::default();
            let t0 = Utc::now();
            step(&mut s, &mut clock, t0);
            run_all(&mut s);
            for t in s.tasks.values_mut() {
                t.status.state = Failed;
                t.status.timestamp = Some(t0);
            }
            step(&mut s, &mut clock, t0 + Duration::seconds(1));
            if !expect_restart {
                for at in [1, 10, 60] {
                    step(&mut s, &mut clock, t0 + Duration::seconds(at));
                    assert_eq!(ps(&s, "svc1"), [(1, Shutdown, Failed)], "{condition:?}");
                }
                continue;
            }
            // During the delay: the failed task is shut down, its replacement held ready.
            assert_eq!(
                ps(&s, "svc1"),
                [(1, Ready, Assigned), (1, Shutdown, Failed)]
            );
            step(&mut s, &mut clock, t0 + Duration::seconds(5));
            assert_eq!(
                ps(&s, "svc1"),
                [(1, Ready, Assigned), (1, Shutdown, Failed)]
            );
            // Once it is over (5s after the replacement was made), it starts.
            step(&mut s, &mut clock, t0 + Duration::seconds(6));
            assert_eq!(
                ps(&s, "svc1"),
                [(1, Running, Assigned), (1, Shutdown, Failed)]
            );
            run_all(&mut s);
            assert_eq!(
                ps(&s, "svc1"),
                [(1, Running, Running), (1, Shutdown, Failed)]
            );
        }
    }

    /// A node goes down: as swarmkit's orchestrators, its tasks are told to shut down,
    /// and replaced only as their restart policy says (condition none: never). A
    /// replicated task is replaced on another node (after the restart delay); a global
    /// service's node gets a task again when it is back, unless the condition is none.
    #[test]
    fn node_loss_follows_the_restart_policy() {
        use TaskState::{Running, Shutdown};
        for condition in [
            RestartCondition::None,
            RestartCondition::OnFailure,
            RestartCondition::Any,
        ] {
            let restarts = condition != RestartCondition::None;
            for global in [false, true] {
                let mut s = cluster(&["vm1", "vm2"]);
                let mut svc = service(1);
                if global {
                    svc.spec.mode = ServiceMode::global();
                }
                svc.spec.task_template.restart_policy = Some(RestartPolicy {
                    condition: Some(condition),
                    delay: Some(0),
                    ..Default::default()
                });
                s.services.insert("svc1".into(), svc);
                let mut clock = UpdateClock::default();
                step(&mut s, &mut clock, Utc::now());
                run_all(&mut s);
                let on_vm1 = |s: &ClusterState| {
                    let mut v: Vec<(TaskState, TaskState)> = s
                        .tasks
                        .values()
                        .filter(|t| t.node_id == "node0")
                        .map(|t| (t.desired_state, t.status.state))
                        .collect();
                    v.sort();
                    v
                };
                assert_eq!(
                    on_vm1(&s),
                    [(Running, Running)],
                    "{condition:?} global={global}"
                );
                s.nodes.get_mut("node0").unwrap().state = NodeState::Down;
                for _ in 0..3 {
                    step(&mut s, &mut clock, Utc::now());
                    run_all(&mut s);
                }
                let what = format!("{condition:?} global={global}: {:?}", ps(&s, "svc1"));
                // The lost task is told to shut down (its node reports nothing more).
                assert_eq!(on_vm1(&s), [(Shutdown, Running)], "{what}");
                let running = |s: &ClusterState| {
                    s.tasks
                        .values()
                        .filter(|t| t.desired_state == Running && t.status.state == Running)
                        .count()
                };
                if global {
                    // vm2's own task, untouched.
                    assert_eq!(running(&s), 1, "{what}");
                    s.nodes.get_mut("node0").unwrap().state = NodeState::Ready;
                    for t in s.tasks.values_mut().filter(|t| t.node_id == "node0") {
                        t.status.state = Shutdown; // back, it stops the task
                    }
                    for _ in 0..3 {
                        step(&mut s, &mut clock, Utc::now());
                        run_all(&mut s);
                    }
                    let what = format!("{condition:?} global back: {:?}", ps(&s, "svc1"));
                    assert_eq!(running(&s), if restarts { 2 } else { 1 }, "{what}");
                } else {
                    assert_eq!(running(&s), usize::from(restarts), "{what}");
                }
            }
        }
    }

    /// Drain moves tasks; a rolling update (stop-first, parallelism 1) replaces one at a time.
    #[test]
    fn drain_and_rolling_update() {
        let mut s = cluster(&["vm1", "vm2"]);
        s.services.insert("svc1".into(), service(2));
        let mut clock = UpdateClock::default();
        step(&mut s, &mut clock, Utc::now());
        run_all(&mut s);
        s.nodes.get_mut("node1").unwrap().spec.availability = Availability::Drain;
        step(&mut s, &mut clock, Utc::now());
        run_all(&mut s);
        // The replacement starts once the drained task has stopped (no restart delay).
        step(&mut s, &mut clock, Utc::now());
        run_all(&mut s);
        assert_eq!(running_nodes(&s), ["vm1", "vm1"]);
        s.nodes.get_mut("node1").unwrap().spec.availability = Availability::Active;

        let svc = s.services["svc1"].clone();
        let mut spec = svc.spec.clone();
        spec.task_template.container_spec.image = "demo:2".into();
        let updated = updated_service(&svc, spec, Utc::now());
        s.services.insert("svc1".into(), updated);
        step(&mut s, &mut clock, Utc::now());
        let new = |s: &ClusterState| {
            s.tasks
                .values()
                .filter(|t| {
                    t.desired_state == TaskState::Running && t.spec.container_spec.image == "demo:2"
                })
                .count()
        };
        assert_eq!(new(&s), 1, "parallelism 1: one task at a time");
        run_all(&mut s);
        step(&mut s, &mut clock, Utc::now());
        run_all(&mut s);
        step(&mut s, &mut clock, Utc::now());
        assert_eq!(new(&s), 2);
        run_all(&mut s);
        step(&mut s, &mut clock, Utc::now() + Duration::seconds(10));
        assert_eq!(
            s.services["svc1"].update_status.as_ref().unwrap().state,
            UpdateState::Completed
        );
    }

    fn with_ingress(mut s: ClusterState) -> ClusterState {
        s.networks.insert(
            "ingress-id".into(),
            crate::networks::NetworkRecord {
                id: "ingress-id".into(),
                name: "ingress".into(),
                driver: "overlay".into(),
                labels: Default::default(),
                created_at: Utc::now(),
                vni: 4096,
                subnet: "10.0.0.0/24".into(),
                gateway: "10.0.0.1".into(),
                attachable: false,
                ingress: true,
                internal: false,
                mtu: None,
            },
        );
        s
    }

    /// A network stored before subnet sizes were checked (a /31 at the top of the address
    /// space) leaves tasks without an address on it, instead of overflowing and killing
    /// the orchestrator on every leader.
    #[test]
    fn stored_tiny_subnet_does_not_panic() {
        for tiny in ["255.255.255.254/31", "255.255.255.255/32", "10.0.0.0/31"] {
            let mut s = with_ingress(cluster(&["vm1"]));
            s.networks.get_mut("ingress-id").unwrap().subnet = tiny.into();
            let svc = publishing("svc1", "web", 2, &["8080:80"]);
            s.services.insert(svc.id.clone(), svc);
            let mut clock = UpdateClock::default();
            step(&mut s, &mut clock, Utc::now());
            let tasks = tasks_of(&s, "svc1");
            assert_eq!(tasks.len(), 2, "{tiny}");
            assert!(tasks.iter().all(|t| t.networks.is_empty()), "{tiny}");
        }
    }

    fn publishing(id: &str, name: &str, replicas: u64, ports: &[&str]) -> ServiceRecord {
        let mut svc = service(replicas);
        svc.id = id.into();
        svc.spec.name = name.into();
        svc.spec.endpoint_spec = Some(shoal_spec::EndpointSpec {
            ports: ports
                .iter()
                .flat_map(|p| crate::cli::service_opts::port(p).unwrap())
                .collect(),
            ..Default::default()
        });
        svc
    }

    fn tasks_of<'a>(s: &'a ClusterState, svc: &str) -> Vec<&'a TaskRecord> {
        let mut v: Vec<&TaskRecord> = s
            .tasks
            .values()
            .filter(|t| t.service_id == svc && t.desired_state == TaskState::Running)
            .collect();
        v.sort_by_key(|t| t.slot);
        v
    }

    fn hostnames(s: &ClusterState, tasks: &[&TaskRecord]) -> Vec<String> {
        let mut v: Vec<String> = tasks
            .iter()
            .filter_map(|t| s.nodes.get(&t.node_id))
            .map(|n| n.description.hostname.clone())
            .collect();
        v.sort();
        v
    }

    /// A host-mode port is held per node: the service's tasks spread one per node, hold
    /// the port they were made with, sit on the ingress network (the load balancer
    /// reaches them there) while the service gets no ingress VIP; a task that finds every
    /// allowed node's port taken stays pending with docker's explanation, and another
    /// service asking the same port waits for it.
    #[test]
    fn host_mode_ports_are_a_node_resource() {
        let mut s = with_ingress(cluster(&["vm1", "vm2", "vm3"]));
        let mut web = publishing("svc1", "web", 3, &["mode=host,published=8081,target=80"]);
        web.spec.task_template.placement = Some(shoal_spec::Placement {
            constraints: vec!["node.hostname != vm1".into()],
            ..Default::default()
        });
        s.services.insert("svc1".into(), web);
        let mut clock = UpdateClock::default();
        step(&mut s, &mut clock, Utc::now());
        run_all(&mut s);
        let tasks = tasks_of(&s, "svc1");
        assert_eq!(tasks.len(), 3);
        let placed: Vec<&TaskRecord> = tasks
            .iter()
            .copied()
            .filter(|t| !t.node_id.is_empty())
            .collect();
        assert_eq!(hostnames(&s, &placed), ["vm2", "vm3"]);
        for t in &placed {
            assert_eq!(t.host_ports[0].published_port, Some(8081));
            assert_eq!(t.networks[0].network_id, "ingress-id");
            // `inspect TASK` and `service ps` show it as docker's agent reports it.
            assert_eq!(
                t.docker_json()["Status"]["PortStatus"],
                serde_json::json!({"Ports": [{"Protocol": "tcp", "TargetPort": 80, "PublishedPort": 8081, "PublishMode": "host"}]})
            );
        }
        let pending = tasks.iter().find(|t| t.node_id.is_empty()).unwrap();
        assert_eq!(
            pending.docker_json()["Status"]["PortStatus"],
            serde_json::json!({})
        );
        assert_eq!(
            pending.status.err.as_deref(),
            Some("no suitable node (host-mode port already in use on 2 nodes; scheduling constraints not satisfied on 1 node)")
        );
        assert!(s.services["svc1"].vips.is_empty(), "no ingress VIP");

        // Another service on the same port and protocol: vm1 is the only free node.
        let mut api = publishing("svc2", "api", 2, &["mode=host,published=8081,target=80"]);
        api.spec.task_template.container_spec.image = "api:1".into();
        s.services.insert("svc2".into(), api);
        step(&mut s, &mut clock, Utc::now());
        run_all(&mut s);
        let api_tasks = tasks_of(&s, "svc2");
        assert_eq!(hostnames(&s, &api_tasks), ["vm1"]);
        assert_eq!(
            api_tasks
                .iter()
                .find(|t| t.node_id.is_empty())
                .and_then(|t| t.status.err.as_deref()),
            Some("no suitable node (host-mode port already in use on 3 nodes)")
        );
        // Once web is scaled down to one task, its other node's port is free for api.
        let mut web = s.services["svc1"].clone();
        web.spec.mode = ServiceMode::replicated(1);
        s.services.insert("svc1".into(), web);
        step(&mut s, &mut clock, Utc::now());
        run_all(&mut s);
        step(&mut s, &mut clock, Utc::now());
        run_all(&mut s);
        assert_eq!(hostnames(&s, &tasks_of(&s, "svc2")).len(), 2);
    }

    /// Publishing a port in host mode on a running service replaces its tasks (a rolling
    /// update): only tasks made with the port hold and serve it, on the ingress network.
    #[test]
    fn publish_add_host_port_replaces_tasks() {
        let mut s = with_ingress(cluster(&["vm1", "vm2"]));
        s.services
            .insert("svc1".into(), publishing("svc1", "web", 2, &[]));
        let mut clock = UpdateClock::default();
        step(&mut s, &mut clock, Utc::now());
        run_all(&mut s);
        assert!(tasks_of(&s, "svc1").iter().all(|t| t.networks.is_empty()));

        let svc = s.services["svc1"].clone();
        let mut spec = svc.spec.clone();
        spec.endpoint_spec = publishing("x", "x", 1, &["mode=host,published=8081,target=80"])
            .spec
            .endpoint_spec;
        let updated = updated_service(&svc, spec, Utc::now());
        s.services.insert("svc1".into(), updated);
        step(&mut s, &mut clock, Utc::now());
        assert_eq!(
            s.services["svc1"].update_status.as_ref().map(|u| u.state),
            Some(UpdateState::Updating)
        );
        for _ in 0..6 {
            step(&mut s, &mut clock, Utc::now() + Duration::seconds(30));
            run_all(&mut s);
        }
        let tasks = tasks_of(&s, "svc1");
        assert_eq!(hostnames(&s, &tasks), ["vm1", "vm2"]);
        for t in tasks {
            assert_eq!(t.host_ports.len(), 1, "{t:?}");
            assert_eq!(t.networks[0].network_id, "ingress-id");
        }
        // A change that leaves the endpoint as it was (scale) is no update.
        let svc = s.services["svc1"].clone();
        let mut spec = svc.spec.clone();
        spec.mode = ServiceMode::replicated(2);
        spec.labels.insert("k".into(), "v".into());
        assert!(updated_service(&svc, spec, Utc::now())
            .update_status
            .is_none_or(|u| u.state == UpdateState::Completed));
    }

    fn picked(s: &ClusterState, svc: &str) -> Vec<(String, Option<u16>)> {
        let mut v: Vec<(String, Option<u16>)> = tasks_of(s, svc)
            .iter()
            .map(|t| {
                let node = s.nodes.get(&t.node_id);
                let host = node.map_or(String::new(), |n| n.description.hostname.clone());
                (host, t.host_ports[0].published_port)
            })
            .collect();
        v.sort();
        v
    }

    /// A host-mode port without a published port: each task gets its own port of its
    /// node's ephemeral range when it is placed (tasks on one node never share one, and
    /// ingress or named host-mode ports are skipped); the choice is kept in the task, so
    /// later rounds (a restarted or new leader) leave it alone; the task's PortStatus and
    /// the service's endpoint show what docker shows.
    #[test]
    fn unpublished_host_port_is_picked_per_task_on_its_node() {
        let mut s = with_ingress(cluster(&["vm1", "vm2"]));
        for n in s.nodes.values_mut() {
            n.description.ephemeral_ports = Some((40000, 40010));
        }
        s.services.insert(
            "mesh".into(),
            publishing(
                "mesh",
                "mesh",
                0,
                &["40000:80", "mode=host,published=40001,target=80"],
            ),
        );
        s.services.insert(
            "svc1".into(),
            publishing("svc1", "web", 4, &["mode=host,target=80"]),
        );
        let mut clock = UpdateClock::default();
        step(&mut s, &mut clock, Utc::now());
        run_all(&mut s);
        let vm = |h: &str, p: u16| (h.to_string(), Some(p));
        assert_eq!(
            picked(&s, "svc1"),
            [
                vm("vm1", 40002),
                vm("vm1", 40003),
                vm("vm2", 40002),
                vm("vm2", 40003)
            ]
        );
        let t = tasks_of(&s, "svc1")[0].clone();
        let published = t.host_ports[0].published_port.unwrap();
        assert_eq!(
            t.docker_json()["Status"]["PortStatus"],
            serde_json::json!({"Ports": [{"Protocol": "tcp", "TargetPort": 80, "PublishedPort": published, "PublishMode": "host"}]})
        );
        assert_eq!(t.networks[0].network_id, "ingress-id");
        assert_eq!(
            s.services["svc1"].docker_json()["Endpoint"]["Ports"],
            serde_json::json!([{"Protocol": "tcp", "TargetPort": 80, "PublishMode": "host"}])
        );

        // Nothing changes in later rounds: the tasks are current and keep their ports.
        let before = s.tasks.clone();
        for _ in 0..3 {
            assert_eq!(step(&mut s, &mut clock, Utc::now()), 0);
        }
        assert_eq!(s.tasks, before);

        // A replacement takes a free port again; a node without a reported range uses
        // Linux's default one.
        let gone = t.id.clone();
        s.tasks.get_mut(&gone).unwrap().status.state = TaskState::Failed;
        s.tasks.get_mut(&gone).unwrap().status.timestamp = Some(Utc::now() - Duration::seconds(60));
        for n in s.nodes.values_mut() {
            n.description.ephemeral_ports = None;
        }
        step(&mut s, &mut clock, Utc::now());
        // Started once the restart delay is over.
        step(&mut s, &mut clock, Utc::now() + Duration::seconds(10));
        run_all(&mut s);
        let fresh = tasks_of(&s, "svc1")
            .into_iter()
            .find(|x| x.slot == t.slot && x.id != gone)
            .unwrap()
            .clone();
        assert_eq!(fresh.host_ports[0].published_port, Some(32768));
    }

    /// A node's own swarm port (TCP) is never picked for a task on it, even inside its
    /// ephemeral range (`swarm join --listen-addr :40000`): the node's load balancer would
    /// not serve it. Other nodes may use that port, and the node may use it for UDP.
    #[test]
    fn unpublished_host_port_skips_the_nodes_swarm_port() {
        let mut s = with_ingress(cluster(&["vm1", "vm2"]));
        for n in s.nodes.values_mut() {
            n.description.ephemeral_ports = Some((40000, 40010));
            if n.description.hostname == "vm1" {
                n.listen_addr = "10.0.0.1:40000".into();
            }
        }
        s.services.insert(
            "svc1".into(),
            publishing(
                "svc1",
                "web",
                2,
                &["mode=host,target=80", "mode=host,target=53,protocol=udp"],
            ),
        );
        let mut clock = UpdateClock::default();
        step(&mut s, &mut clock, Utc::now());
        run_all(&mut s);
        let mut ports: Vec<(String, Vec<Option<u16>>)> = tasks_of(&s, "svc1")
            .into_iter()
            .map(|t| {
                (
                    s.nodes[&t.node_id].description.hostname.clone(),
                    t.host_ports.iter().map(|p| p.published_port).collect(),
                )
            })
            .collect();
        ports.sort();
        assert_eq!(
            ports,
            [
                ("vm1".to_string(), vec![Some(40001), Some(40000)]),
                ("vm2".to_string(), vec![Some(40000), Some(40000)]),
            ]
        );
    }

    /// A node whose range is used up takes no more such tasks: the task is rejected and
    /// says why.
    #[test]
    fn unpublished_host_port_without_a_free_port_is_rejected() {
        let mut s = with_ingress(cluster(&["vm1"]));
        for n in s.nodes.values_mut() {
            n.description.ephemeral_ports = Some((40000, 40001));
        }
        s.services.insert(
            "svc1".into(),
            publishing("svc1", "web", 3, &["mode=host,target=80"]),
        );
        let mut clock = UpdateClock::default();
        step(&mut s, &mut clock, Utc::now());
        run_all(&mut s);
        let tasks = tasks_of(&s, "svc1");
        let waiting: Vec<&&TaskRecord> = tasks
            .iter()
            .filter(|t| t.status.state == TaskState::Rejected)
            .collect();
        assert_eq!(waiting.len(), 1, "{tasks:?}");
        assert_eq!(
            waiting[0].status.err.as_deref(),
            Some("no free host port for 80/tcp on node node0 (range 40000-40001 in use)")
        );
        assert_eq!(waiting[0].host_ports[0].published_port, None);
    }

    /// A huge replica count (stored before `validate` capped it) is created in bounded
    /// rounds and never beyond the cap, and a node's Assignments reply carrying every task
    /// stays far below the wire's frame limit.
    #[test]
    fn scale_up_is_batched_and_capped() {
        let mut state = cluster(&["vm1", "vm2", "vm3"]);
        let svc = service(MAX_REPLICAS + 5);
        state.services.insert(svc.id.clone(), svc);
        let mut clock = UpdateClock::default();
        step(&mut state, &mut clock, Utc::now());
        assert_eq!(state.tasks.len(), NEW_TASKS_PER_ROUND);
        for _ in 0..MAX_REPLICAS as usize / NEW_TASKS_PER_ROUND + 2 {
            step(&mut state, &mut clock, Utc::now());
        }
        assert_eq!(state.tasks.len() as u64, MAX_REPLICAS);
        let all: Vec<&TaskRecord> = state.tasks.values().collect();
        let bytes = serde_json::to_vec(&all).unwrap().len();
        assert!(
            bytes < crate::wire::MAX_FRAME / 8,
            "{bytes} bytes for {MAX_REPLICAS} tasks"
        );
    }

    /// A service of `replicas` tasks running demo:1, then updated to demo:2 with `cfg`.
    fn updating(replicas: u64, cfg: UpdateConfig) -> (ClusterState, UpdateClock) {
        let mut s = cluster(&["vm1", "vm2"]);
        let mut svc = service(replicas);
        svc.spec.task_template.restart_policy = Some(RestartPolicy {
            delay: Some(0),
            ..Default::default()
        });
        s.services.insert("svc1".into(), svc);
        let mut clock = UpdateClock::default();
        step(&mut s, &mut clock, Utc::now());
        run_all(&mut s);
        let svc = s.services["svc1"].clone();
        let mut spec = svc.spec.clone();
        spec.task_template.container_spec.image = "demo:2".into();
        spec.update_config = Some(cfg);
        s.services
            .insert("svc1".into(), updated_service(&svc, spec, Utc::now()));
        (s, clock)
    }

    /// Live tasks of the new image, and of the old one.
    fn images(s: &ClusterState) -> (usize, usize) {
        let live = |img: &str| {
            s.tasks
                .values()
                .filter(|t| active(t) && t.spec.container_spec.image == img)
                .count()
        };
        (live("demo:2"), live("demo:1"))
    }

    fn update_state(s: &ClusterState) -> UpdateState {
        s.services["svc1"].update_status.as_ref().unwrap().state
    }

    /// The new tasks the node has started fail (exit 1).
    fn fail_new(s: &mut ClusterState, n: usize) {
        let ids: Vec<String> = s
            .tasks
            .values()
            .filter(|t| {
                active(t)
                    && t.spec.container_spec.image == "demo:2"
                    && !t.status.state.is_terminal()
            })
            .map(|t| t.id.clone())
            .take(n)
            .collect();
        for id in ids {
            let t = s.tasks.get_mut(&id).unwrap();
            t.status.state = TaskState::Failed;
            t.status.timestamp = Some(Utc::now());
        }
    }

    /// docker: "To restart a paused update run `docker service update <SERVICE-ID>`": an
    /// update without changes resumes it (swarmkit resets the status; tasks still to update
    /// start a new one), and it completes.
    #[test]
    fn service_update_resumes_a_paused_update() {
        let (mut s, mut clock) = updating(3, UpdateConfig::default());
        step(&mut s, &mut clock, Utc::now());
        assert_eq!(images(&s), (1, 2));
        fail_new(&mut s, 1);
        step(&mut s, &mut clock, Utc::now());
        assert_eq!(update_state(&s), UpdateState::Paused);
        let msg = &s.services["svc1"].update_status.as_ref().unwrap().message;
        assert!(
            msg.starts_with("update paused due to failure or early termination of task "),
            "{msg}"
        );
        for _ in 0..3 {
            run_all(&mut s);
            step(&mut s, &mut clock, Utc::now());
        }
        // Paused: the failed task is restarted (restart policy), the others wait.
        assert_eq!(images(&s), (1, 2));

        let svc = s.services["svc1"].clone();
        let again = updated_service(&svc, svc.spec.clone(), Utc::now());
        s.services.insert("svc1".into(), again);
        step(&mut s, &mut clock, Utc::now());
        assert_eq!(update_state(&s), UpdateState::Updating);
        for _ in 0..6 {
            run_all(&mut s);
            step(&mut s, &mut clock, Utc::now());
        }
        assert_eq!(images(&s), (3, 0));
        step(&mut s, &mut clock, Utc::now() + Duration::seconds(10));
        assert_eq!(update_state(&s), UpdateState::Completed);
    }

    /// A service update that changes nothing the tasks run (a label) redeploys nothing,
    /// starts no update, and leaves tasks on a paused node alone (swarmkit's IsTaskDirty
    /// looks at the spec, not at where the task runs).
    #[test]
    fn unchanged_template_redeploys_nothing() {
        let mut s = cluster(&["vm1", "vm2"]);
        s.services.insert("svc1".into(), service(2));
        let mut clock = UpdateClock::default();
        step(&mut s, &mut clock, Utc::now());
        run_all(&mut s);
        s.nodes.get_mut("node0").unwrap().spec.availability = Availability::Pause;
        let before: Vec<String> = s.tasks.keys().cloned().collect();
        let svc = s.services["svc1"].clone();
        let mut spec = svc.spec.clone();
        spec.labels.insert("x".into(), "y".into());
        s.services
            .insert("svc1".into(), updated_service(&svc, spec, Utc::now()));
        for _ in 0..3 {
            step(&mut s, &mut clock, Utc::now());
            run_all(&mut s);
        }
        let after: Vec<String> = s.tasks.keys().cloned().collect();
        assert_eq!(before, after);
        assert!(s.tasks.values().all(active));
        assert!(s.services["svc1"].update_status.is_none());
    }

    /// max_failure_ratio counts failed tasks the update made against the slots it updates
    /// (swarmkit: failures / dirty slots > ratio), not against every task made since, so
    /// restarts do not dilute it. parallelism 0 replaces every task at once.
    #[test]
    fn failure_ratio_counts_against_the_updated_slots() {
        let cfg = UpdateConfig {
            parallelism: 0,
            max_failure_ratio: 0.5,
            ..Default::default()
        };
        let (mut s, mut clock) = updating(4, cfg);
        step(&mut s, &mut clock, Utc::now());
        assert_eq!(images(&s), (4, 0), "parallelism 0: all at once");
        run_all(&mut s);
        // They started running now: the monitor period is on.
        for t in s.tasks.values_mut() {
            if t.by_update {
                t.status.timestamp = Some(Utc::now());
                t.running_at = Some(Utc::now());
            }
        }
        // 2 of 4 failed: 0.5 is not above the ratio; the update goes on.
        fail_new(&mut s, 2);
        step(&mut s, &mut clock, Utc::now());
        assert_eq!(update_state(&s), UpdateState::Updating);
        run_all(&mut s);
        step(&mut s, &mut clock, Utc::now());
        run_all(&mut s);
        // Their restarts are not the update's: one more of the update's own makes 3 of 4.
        let restarted: Vec<String> = s
            .tasks
            .values()
            .filter(|t| active(t) && !t.by_update)
            .map(|t| t.id.clone())
            .collect();
        assert_eq!(restarted.len(), 2);
        for id in &restarted {
            let t = s.tasks.get_mut(id).unwrap();
            t.status.state = TaskState::Failed;
        }
        step(&mut s, &mut clock, Utc::now());
        assert_eq!(update_state(&s), UpdateState::Updating);
        let own = s
            .tasks
            .values()
            .find(|t| active(t) && t.by_update && t.status.state == TaskState::Running)
            .unwrap()
            .id
            .clone();
        s.tasks.get_mut(&own).unwrap().status.state = TaskState::Failed;
        step(&mut s, &mut clock, Utc::now());
        assert_eq!(update_state(&s), UpdateState::Paused);
        let msg = &s.services["svc1"].update_status.as_ref().unwrap().message;
        assert!(msg.starts_with("update paused due to failure"), "{msg}");
    }

    /// A new task that fails after running longer than `monitor` is not the update's
    /// failure: the restart policy replaces it and the update goes on.
    #[test]
    fn failure_after_the_monitor_period_does_not_pause() {
        let cfg = UpdateConfig {
            delay: 60 * 1_000_000_000,
            monitor: 5 * 1_000_000_000,
            ..Default::default()
        };
        let (mut s, mut clock) = updating(2, cfg);
        let t0 = Utc::now();
        step(&mut s, &mut clock, t0);
        let new = s
            .tasks
            .values()
            .find(|t| t.spec.container_spec.image == "demo:2")
            .unwrap()
            .id
            .clone();
        run_all(&mut s);
        {
            let t = s.tasks.get_mut(&new).unwrap();
            t.status.state = TaskState::Running;
            t.status.timestamp = Some(t0);
            t.running_at = Some(t0);
        }
        step(&mut s, &mut clock, t0);
        {
            let t = s.tasks.get_mut(&new).unwrap();
            t.status.state = TaskState::Failed;
            t.status.timestamp = Some(t0 + Duration::seconds(20));
        }
        step(&mut s, &mut clock, t0 + Duration::seconds(20));
        assert_eq!(update_state(&s), UpdateState::Updating);
        // Within the monitor period it would have paused the update.
        let (mut s, mut clock) = updating(2, UpdateConfig::default());
        step(&mut s, &mut clock, t0);
        run_all(&mut s);
        for t in s.tasks.values_mut() {
            if t.spec.container_spec.image == "demo:2" {
                t.running_at = Some(t0);
                t.status.state = TaskState::Failed;
                t.status.timestamp = Some(t0 + Duration::seconds(3));
            }
        }
        step(&mut s, &mut clock, t0 + Duration::seconds(3));
        assert_eq!(update_state(&s), UpdateState::Paused);
    }

    /// With a healthcheck, the next batch waits for the new task to be healthy (docker's
    /// executor reports it running only then), and a start-first old task stops only then.
    #[test]
    fn update_waits_for_healthy() {
        for order in [UpdateOrder::StopFirst, UpdateOrder::StartFirst] {
            let cfg = UpdateConfig {
                order,
                ..Default::default()
            };
            let (mut s, mut clock) = updating(2, cfg);
            let svc = s.services.get_mut("svc1").unwrap();
            svc.spec.task_template.container_spec.healthcheck = Some(shoal_spec::HealthConfig {
                test: vec!["CMD".into(), "true".into()],
                ..Default::default()
            });
            step(&mut s, &mut clock, Utc::now());
            run_all(&mut s);
            for t in s.tasks.values_mut() {
                if t.spec.container_spec.image == "demo:2" {
                    t.health = Some("starting".into());
                }
            }
            for _ in 0..3 {
                step(&mut s, &mut clock, Utc::now());
                run_all(&mut s);
            }
            let old_running = if order == UpdateOrder::StartFirst {
                2
            } else {
                1
            };
            assert_eq!(images(&s), (1, old_running), "{order:?}: waits for healthy");
            for t in s.tasks.values_mut() {
                if t.spec.container_spec.image == "demo:2" {
                    t.health = Some("healthy".into());
                }
            }
            step(&mut s, &mut clock, Utc::now());
            run_all(&mut s);
            step(&mut s, &mut clock, Utc::now());
            assert_eq!(images(&s).0, 2, "{order:?}: next batch once healthy");
        }
    }

    /// failure_action rollback: the previous spec comes back, none is kept (swarmkit's
    /// rollbackUpdate; `service rollback` then has nothing to go back to), the start time
    /// stays, and the rollback uses rollback_config.
    #[test]
    fn automatic_rollback_drops_the_previous_spec() {
        let cfg = UpdateConfig {
            failure_action: FailureAction::Rollback,
            ..Default::default()
        };
        let (mut s, mut clock) = updating(2, cfg);
        s.services.get_mut("svc1").unwrap().spec.rollback_config = Some(UpdateConfig {
            parallelism: 0,
            ..Default::default()
        });
        step(&mut s, &mut clock, Utc::now());
        let started = s.services["svc1"]
            .update_status
            .as_ref()
            .unwrap()
            .started_at;
        run_all(&mut s);
        fail_new(&mut s, 1);
        step(&mut s, &mut clock, Utc::now());
        let svc = &s.services["svc1"];
        let st = svc.update_status.as_ref().unwrap();
        assert_eq!(st.state, UpdateState::RollbackStarted);
        assert_eq!(st.started_at, started);
        assert!(st
            .message
            .starts_with("update rolled back due to failure or early termination of task "));
        assert_eq!(svc.spec.task_template.container_spec.image, "demo:1");
        assert!(svc.previous_spec.is_none());
        for _ in 0..4 {
            run_all(&mut s);
            step(&mut s, &mut clock, Utc::now());
        }
        assert_eq!(images(&s), (0, 2));
        step(&mut s, &mut clock, Utc::now() + Duration::seconds(10));
        let st = s.services["svc1"].update_status.clone().unwrap();
        assert_eq!(
            (st.state, st.message.as_str()),
            (UpdateState::RollbackCompleted, "rollback completed")
        );
    }

    /// The only live task of slot 1, failed at `at`.
    fn fail_live(s: &mut ClusterState, at: DateTime<Utc>) -> String {
        let t = s
            .tasks
            .values_mut()
            .find(|t| active(t) && !t.status.state.is_terminal())
            .unwrap();
        t.status.state = TaskState::Failed;
        t.status.timestamp = Some(at);
        t.id.clone()
    }

    /// max_attempts with a window counts restarts (tasks made to replace one), as
    /// swarmkit's restart supervisor does, within the window before the failure: the
    /// first task, made before the window, is not one, and does not let one more through.
    #[test]
    fn max_attempts_counts_restarts_in_the_window() {
        let mut s = cluster(&["vm1"]);
        let mut svc = service(1);
        svc.spec.task_template.restart_policy = Some(RestartPolicy {
            delay: Some(0),
            max_attempts: Some(1),
            window: Some(10_000_000_000),
            ..Default::default()
        });
        s.services.insert("svc1".into(), svc);
        let mut clock = UpdateClock::default();
        let t0 = Utc::now() - Duration::seconds(100);
        step(&mut s, &mut clock, t0);
        run_all(&mut s);
        // Fails 20s after it was made: out of the window, restarted.
        fail_live(&mut s, t0 + Duration::seconds(20));
        step(&mut s, &mut clock, t0 + Duration::seconds(20));
        assert_eq!(s.tasks.len(), 2, "restarted");
        step(&mut s, &mut clock, t0 + Duration::seconds(20));
        run_all(&mut s);
        // The restart fails 5s later: one restart in the window is max_attempts.
        let last = fail_live(&mut s, t0 + Duration::seconds(25));
        step(&mut s, &mut clock, t0 + Duration::seconds(25));
        step(&mut s, &mut clock, t0 + Duration::seconds(26));
        assert_eq!(s.tasks[&last].status.message, NOT_RESTARTED);
        assert_eq!(
            s.tasks
                .values()
                .filter(|t| !t.status.state.is_terminal())
                .count(),
            0
        );
    }

    /// A slot whose task ended for good (restart condition none) stays empty through a
    /// change that leaves its task as it was (`service scale`, a label), as in swarmkit,
    /// and gets a new task from an update of what it runs.
    #[test]
    fn stopped_for_good_stays_stopped_on_scale() {
        let mut s = cluster(&["vm1"]);
        let mut svc = service(1);
        svc.spec.task_template.restart_policy = Some(RestartPolicy {
            condition: Some(RestartCondition::None),
            ..Default::default()
        });
        s.services.insert("svc1".into(), svc);
        let mut clock = UpdateClock::default();
        step(&mut s, &mut clock, Utc::now());
        run_all(&mut s);
        for t in s.tasks.values_mut() {
            t.status.state = TaskState::Complete;
        }
        step(&mut s, &mut clock, Utc::now());
        let live = |s: &ClusterState, slot: u64| {
            s.tasks
                .values()
                .filter(|t| t.slot == slot && active(t))
                .count()
        };
        assert_eq!(live(&s, 1), 0);
        let svc = s.services["svc1"].clone();
        let mut spec = svc.spec.clone();
        spec.mode = ServiceMode::replicated(2);
        s.services
            .insert("svc1".into(), updated_service(&svc, spec, Utc::now()));
        step(&mut s, &mut clock, Utc::now());
        assert_eq!(
            (live(&s, 1), live(&s, 2)),
            (0, 1),
            "scale: slot 1 stays ended"
        );
        let svc = s.services["svc1"].clone();
        let mut spec = svc.spec.clone();
        spec.task_template.container_spec.image = "demo:2".into();
        s.services
            .insert("svc1".into(), updated_service(&svc, spec, Utc::now()));
        step(&mut s, &mut clock, Utc::now());
        assert_eq!(live(&s, 1), 1, "an update runs the slot again");
    }

    /// A global service's task stopped because its node stopped fitting (a constraint
    /// that no longer matches, or a drain) comes back when the node fits again only as
    /// swarmkit's global orchestrator decides: when the restart policy would restart the
    /// node's newest task (UpdatableTasksInSlot), so with condition none it stays stopped,
    /// even once the node has reported the task stopped (its own status message).
    #[test]
    fn global_task_back_on_a_fitting_node_follows_the_restart_policy() {
        use TaskState::{Running, Shutdown};
        for condition in [
            RestartCondition::None,
            RestartCondition::OnFailure,
            RestartCondition::Any,
        ] {
            let restarts = condition != RestartCondition::None;
            for drain in [false, true] {
                let mut s = cluster(&["vm1", "vm2"]);
                for n in s.nodes.values_mut() {
                    n.spec.labels.insert("run".into(), "yes".into());
                }
                let mut svc = service(1);
                svc.spec.mode = ServiceMode::global();
                svc.spec.task_template.placement = Some(shoal_spec::Placement {
                    constraints: vec!["node.labels.run==yes".into()],
                    ..Default::default()
                });
                svc.spec.task_template.restart_policy = Some(RestartPolicy {
                    condition: Some(condition),
                    delay: Some(0),
                    ..Default::default()
                });
                s.services.insert("svc1".into(), svc);
                let mut clock = UpdateClock::default();
                let settle = |s: &mut ClusterState, clock: &mut UpdateClock| {
                    for _ in 0..3 {
                        step(s, clock, Utc::now());
                        run_all(s);
                        // The node reports the tasks it stopped, with its own message.
                        for t in s.tasks.values_mut() {
                            if t.status.state == Shutdown {
                                t.status.message = "shutdown".into();
                            }
                        }
                    }
                };
                settle(&mut s, &mut clock);
                let running = |s: &ClusterState| {
                    s.tasks
                        .values()
                        .filter(|t| t.desired_state == Running && t.status.state == Running)
                        .count()
                };
                assert_eq!(running(&s), 2, "{condition:?} drain={drain}");
                let node = s.nodes.get_mut("node0").unwrap();
                if drain {
                    node.spec.availability = Availability::Drain;
                } else {
                    node.spec.labels.remove("run");
                }
                settle(&mut s, &mut clock);
                let what = format!("{condition:?} drain={drain}: {:?}", ps(&s, "svc1"));
                assert_eq!(running(&s), 1, "{what}");
                let node = s.nodes.get_mut("node0").unwrap();
                if drain {
                    node.spec.availability = Availability::Active;
                } else {
                    node.spec.labels.insert("run".into(), "yes".into());
                }
                settle(&mut s, &mut clock);
                let what = format!("{condition:?} drain={drain} back: {:?}", ps(&s, "svc1"));
                assert_eq!(running(&s), if restarts { 2 } else { 1 }, "{what}");
            }
        }
    }
}
