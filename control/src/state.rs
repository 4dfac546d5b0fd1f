//! The replicated state machine: cluster state and the commands that change it.
//!
//! Every change to the swarm is one `Command` in the Raft log; `ClusterState::apply` is the
//! only code that mutates state, and it is deterministic so every manager ends up identical.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use shoal_spec::TaskState;

use crate::services::{ServiceRecord, TaskRecord, TaskReport};
use crate::types::{
    Availability, ClusterInfo, NodeDescription, NodeRecord, NodeSpec, NodeState, Role,
};

/// One entry of the replicated log.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub enum Command {
    /// `swarm init`: the cluster and its first manager.
    Init {
        cluster: Box<ClusterInfo>,
        node: NodeRecord,
    },
    /// A node admitted with a valid join token.
    AddNode {
        node: NodeRecord,
    },
    /// `node update` and promote/demote, as a patch applied to the spec current at apply
    /// time, so concurrent updates of one node never overwrite each other.
    PatchNodeSpec {
        node_id: String,
        patch: NodeSpecPatch,
        /// The Raft ID the node takes if this patch makes it a manager: a manager enters
        /// Raft under a fresh ID each time, never one Raft may have removed (a node demoted
        /// and promoted again before it noticed still runs Raft under its old ID, which the
        /// leader no longer replicates to).
        #[serde(default)]
        promoted_raft_id: Option<u64>,
        at: DateTime<Utc>,
    },
    /// The dispatcher saw a node come or go.
    SetNodeStatus {
        node_id: String,
        state: NodeState,
        message: Option<String>,
        at: DateTime<Utc>,
    },
    /// A node reconnected with a new description or address (e.g. after a restart).
    SetNodeDescription {
        node_id: String,
        description: NodeDescription,
        addr: String,
        listen_addr: String,
        at: DateTime<Utc>,
    },
    RemoveNode {
        node_id: String,
    },
    /// `swarm join-token --rotate`.
    RotateToken {
        role: Role,
        secret: String,
    },
    /// `swarm ca --rotate`: start a root rotation (or start it over), or with `None`
    /// end one (the root given is the current one), as the leader decided from the
    /// cluster whose root had digest `based_on`; refused if the root has changed since (a
    /// rotation that finished meanwhile: the new root was cross-signed by the old one).
    SetRootRotation {
        rotation: Option<crate::types::RootRotation>,
        based_on: String,
        #[serde(default)]
        cert_expiry_s: Option<u64>,
    },
    /// Every node holds a certificate of the new root: it becomes the swarm's only root,
    /// with new join tokens (swarmkit's `finishRootRotation`). Refused unless the rotation
    /// under way is still the one to the root with digest `rotation_digest`.
    FinishRootRotation {
        rotation_digest: String,
        worker_secret: String,
        manager_secret: String,
    },
    /// `swarm update`: the settings given change, the others stay.
    UpdateCluster {
        update: crate::api::SwarmUpdate,
    },
    /// Create or replace a service (stamped with this entry's index as its version). With
    /// `expected_version`, only if the stored service is still at that version: a decision
    /// made from a read that has since changed is refused, not applied over the change.
    PutService {
        service: Box<ServiceRecord>,
        #[serde(default)]
        expected_version: Option<u64>,
    },
    /// `service rm`: the service goes; its tasks are told to shut down and are deleted by
    /// the orchestrator once they have stopped.
    RemoveService {
        service_id: String,
        at: DateTime<Utc>,
    },
    /// Orchestrator and scheduler decisions: whole task records, created or replaced.
    PutTasks {
        tasks: Vec<TaskRecord>,
    },
    /// Agents' reports: a task's observed state only moves forward.
    ReportTasks {
        reports: Vec<TaskReport>,
        at: DateTime<Utc>,
    },
    /// Forget finished tasks beyond the history limit, and those of removed services.
    DeleteTasks {
        ids: Vec<String>,
    },
    PutNetwork {
        network: NetworkRecord,
    },
    RemoveNetwork {
        network_id: String,
    },
    /// `secret create` / `config create`, or (same ID) a change of its labels: the only
    /// change swarm allows to either.
    PutSecret {
        kind: crate::secrets::Kind,
        record: crate::secrets::SecretRecord,
    },
    /// `secret rm` / `config rm`: refused while a service references it.
    RemoveSecret {
        kind: crate::secrets::Kind,
        id: String,
    },
    /// Several independent commands proposed together (one log entry, one fsync); each
    /// succeeds or fails on its own, in order. The proposal batcher relies on this: it
    /// puts unrelated clients' writes in one entry, and one refusal must not fail the rest.
    Batch(Vec<Command>),
    /// Commands that take effect together or not at all (a stack deploy): each is checked
    /// against the state the previous ones leave, and if one is refused none is applied.
    Atomic(Vec<Command>),
    /// `swarm init --force-new-cluster`: the surviving manager's state, restored into a new
    /// single-member Raft group in which this node has a fresh Raft ID.
    ForceNewCluster {
        state: Box<ClusterState>,
        node_id: String,
        raft_id: u64,
        at: DateTime<Utc>,
    },
}

impl Command {
    /// What this command does, naming its object, for the error of a refused command.
    fn describe(&self) -> String {
        match self {
            Command::Init { .. } => "initialize the cluster".into(),
            Command::AddNode { node } => format!("add node {}", node.id),
            Command::PatchNodeSpec { node_id, .. }
            | Command::SetNodeStatus { node_id, .. }
            | Command::SetNodeDescription { node_id, .. } => format!("update node {node_id}"),
            Command::RemoveNode { node_id } => format!("remove node {node_id}"),
            Command::RotateToken { .. } => "rotate the join token".into(),
            Command::UpdateCluster { .. } => "update the swarm".into(),
            Command::SetRootRotation { .. } | Command::FinishRootRotation { .. } => {
                "rotate the root CA".into()
            }
            Command::PutService {
                service,
                expected_version: Some(_),
            } => format!("update service {}", service.spec.name),
            Command::PutService { service, .. } => {
                format!("create service {}", service.spec.name)
            }
            Command::RemoveService { service_id, .. } => format!("remove service {service_id}"),
            Command::PutTasks { .. } | Command::ReportTasks { .. } => "update tasks".into(),
            Command::DeleteTasks { .. } => "delete tasks".into(),
            Command::PutNetwork { network } => format!("create network {}", network.name),
            Command::RemoveNetwork { network_id } => format!("remove network {network_id}"),
            Command::PutSecret { kind, record } => {
                format!("create {} {}", kind.word(), record.name)
            }
            Command::RemoveSecret { kind, id } => format!("remove {} {id}", kind.word()),
            Command::Batch(_) | Command::Atomic(_) => "apply a batch".into(),
            Command::ForceNewCluster { .. } => "force a new cluster".into(),
        }
    }
}

/// A change to a node's spec; absent parts stay as they are.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct NodeSpecPatch {
    pub label_add: Vec<(String, String)>,
    pub label_rm: Vec<String>,
    pub availability: Option<Availability>,
    pub role: Option<Role>,
}

/// Result of applying one command; errors are deterministic rejections (same on every manager).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct CommandResult {
    pub error: Option<String>,
    /// Per-command results of a `Batch`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub batch: Vec<CommandResult>,
}

impl CommandResult {
    fn ok() -> Self {
        CommandResult::default()
    }
    /// The first error of this command or, for a `Batch`, of any command in it (a batch
    /// applies each command on its own, so its own `error` stays empty when one fails).
    pub fn first_error(&self) -> Option<&str> {
        self.error
            .as_deref()
            .or_else(|| self.batch.iter().find_map(CommandResult::first_error))
    }
    fn err(msg: impl Into<String>) -> Self {
        CommandResult {
            error: Some(msg.into()),
            batch: Vec::new(),
        }
    }
}

/// Everything replicated about the swarm.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct ClusterState {
    pub cluster: Option<ClusterInfo>,
    pub nodes: BTreeMap<String, NodeRecord>,
    #[serde(default)]
    pub services: BTreeMap<String, ServiceRecord>,
    #[serde(default)]
    pub tasks: BTreeMap<String, TaskRecord>,
    #[serde(default)]
    pub networks: BTreeMap<String, NetworkRecord>,
    #[serde(default)]
    pub secrets: BTreeMap<String, crate::secrets::SecretRecord>,
    #[serde(default)]
    pub configs: BTreeMap<String, crate::secrets::SecretRecord>,
}

pub use crate::networks::NetworkRecord;

/// A service's published ports: what the port conflict check depends on. (In the spec's
/// order: a reordering is checked again, which is harmless.)
fn published_ports(
    spec: &shoal_spec::ServiceSpec,
) -> Vec<(u16, shoal_spec::Protocol, shoal_spec::PublishMode)> {
    spec.endpoint_spec
        .iter()
        .flat_map(|e| e.ports.iter())
        .filter_map(|p| Some((p.published_port?, p.protocol, p.publish_mode)))
        .collect()
}

impl ClusterState {
    /// The secrets or the configs.
    pub fn objects(
        &self,
        kind: crate::secrets::Kind,
    ) -> &BTreeMap<String, crate::secrets::SecretRecord> {
        match kind {
            crate::secrets::Kind::Secret => &self.secrets,
            crate::secrets::Kind::Config => &self.configs,
        }
    }

    pub fn objects_mut(
        &mut self,
        kind: crate::secrets::Kind,
    ) -> &mut BTreeMap<String, crate::secrets::SecretRecord> {
        match kind {
            crate::secrets::Kind::Secret => &mut self.secrets,
            crate::secrets::Kind::Config => &mut self.configs,
        }
    }

    /// Apply one committed command at log index `index`.
    pub fn apply(&mut self, cmd: &Command, index: u64) -> CommandResult {
        match cmd {
            Command::Init { cluster, node } => {
                if self.cluster.is_some() {
                    return CommandResult::err("cluster already initialized");
                }
                self.cluster = Some((**cluster).clone());
                let mut node = node.clone();
                node.version = index;
                self.nodes.insert(node.id.clone(), node);
                CommandResult::ok()
            }
            Command::AddNode { node } => {
                if self.nodes.contains_key(&node.id) {
                    return CommandResult::err(format!("node {} already exists", node.id));
                }
                // Checked when the leader admitted the node, and here: of a join and a
                // service create in flight at once, the later entry is refused.
                if let Some(port) = node.listen_port() {
                    if let Err(e) = crate::services::listen_port_conflict(self, port) {
                        return CommandResult::err(e);
                    }
                }
                // Likewise the load balancer's room for the global services' new tasks.
                if let Err(e) = crate::services::join_lb_capacity(self, &node.description.hostname)
                {
                    return CommandResult::err(e);
                }
                let mut node = node.clone();
                node.version = index;
                self.nodes.insert(node.id.clone(), node);
                CommandResult::ok()
            }
            Command::PatchNodeSpec {
                node_id,
                patch,
                promoted_raft_id,
                at,
            } => {
                let Some(node) = self.nodes.get_mut(node_id) else {
                    return CommandResult::err(format!("node {node_id} not found"));
                };
                let mut spec = node.spec.clone();
                for k in &patch.label_rm {
                    if spec.labels.remove(k).is_none() {
                        return CommandResult::err(format!(
                            "key {k} doesn't exist in node's labels"
                        ));
                    }
                }
                for (k, v) in &patch.label_add {
                    spec.labels.insert(k.clone(), v.clone());
                }
                if let Some(a) = patch.availability {
                    spec.availability = a;
                }
                if let Some(r) = patch.role {
                    spec.role = r;
                }
                let promoted = !node.is_manager() && spec.role == Role::Manager;
                if let (true, Some(raft_id)) = (promoted, promoted_raft_id) {
                    node.raft_id = *raft_id;
                }
                node.spec = spec;
                node.version = index;
                node.updated_at = *at;
                CommandResult::ok()
            }
            Command::SetNodeStatus {
                node_id,
                state,
                message,
                at,
            } => {
                let Some(node) = self.nodes.get_mut(node_id) else {
                    return CommandResult::err(format!("node {node_id} not found"));
                };
                node.state = *state;
                node.message = message.clone();
                node.version = index;
                node.updated_at = *at;
                CommandResult::ok()
            }
            Command::SetNodeDescription {
                node_id,
                description,
                addr,
                listen_addr,
                at,
            } => {
                let Some(node) = self.nodes.get_mut(node_id) else {
                    return CommandResult::err(format!("node {node_id} not found"));
                };
                node.description = description.clone();
                node.addr = addr.clone();
                node.listen_addr = listen_addr.clone();
                node.version = index;
                node.updated_at = *at;
                CommandResult::ok()
            }
            Command::PutService {
                service,
                expected_version,
            } => {
                if let Some(v) = expected_version {
                    let current = self.services.get(&service.id).map(|s| s.version);
                    if current != Some(*v) {
                        return CommandResult::err(
                            "rpc error: code = Unknown desc = update out of sequence",
                        );
                    }
                }
                // Names are checked here too, not only when the request was read:
                // two creates of one name in flight at once must not both succeed.
                // (Only a new or renamed service: a write that keeps its name, as the
                // orchestrator's do, is never held up by another.)
                let renamed = self.services.get(&service.id).map(|s| &s.spec.name)
                    != Some(&service.spec.name);
                if renamed
                    && self
                        .services
                        .values()
                        .any(|s| s.id != service.id && same_name(&s.spec.name, &service.spec.name))
                {
                    return CommandResult::err(service_name_taken(&service.spec.name));
                }
                // The ingress ports published without a number get theirs here, not from
                // the proposer's read: two creates (or updates, or stack deploys) in flight
                // at once, each of which saw the same lowest free port, get two ports, and
                // every manager picks the same ones. The proposer's numbers for the ports
                // it lists as the allocator's are only its preview; a port the service
                // already has stays its own (see `assign_dynamic_ports`).
                let mut service = (**service).clone();
                service.spec = service.spec_as_given();
                match crate::services::number_dynamic_ports(
                    self,
                    &mut service.spec,
                    self.services.get(&service.id),
                ) {
                    Ok(dynamic) => service.dynamic_ports = dynamic,
                    Err(e) => return CommandResult::err(e),
                }
                // Published ports likewise: two creates (or updates) in flight at once
                // must not both take one ingress port. Only new or changed ports are
                // checked, so the orchestrator's writes are never held up.
                let ports_changed = self
                    .services
                    .get(&service.id)
                    .map(|s| published_ports(&s.spec))
                    != Some(published_ports(&service.spec));
                if ports_changed {
                    if let Err(e) =
                        crate::services::published_conflict(self, &service.spec, Some(&service.id))
                    {
                        return CommandResult::err(e);
                    }
                }
                // And the limits on what a service publishes, for the same reasons: the
                // cap on its ports when they change, the load balancer's room when it
                // asks for more of it (see `lb_capacity`).
                let endpoint_changed = self
                    .services
                    .get(&service.id)
                    .map(|s| s.spec.endpoint_spec.as_ref().map(|e| &e.ports))
                    != Some(service.spec.endpoint_spec.as_ref().map(|e| &e.ports));
                if endpoint_changed {
                    if let Some(e) = crate::services::too_many_published_ports(&service.spec) {
                        return CommandResult::err(e);
                    }
                }
                if let Err(e) = crate::services::lb_capacity(self, &service.spec, Some(&service.id))
                {
                    return CommandResult::err(e);
                }
                // Its secrets and configs exist (checked here too: a removal in flight
                // must not leave a service naming what is gone).
                let cs = |s: &crate::services::ServiceRecord| {
                    let c = &s.spec.task_template.container_spec;
                    (c.secrets.clone(), c.configs.clone())
                };
                if self.services.get(&service.id).map(cs) != Some(cs(&service)) {
                    if let Some(e) = crate::secrets::missing_reference(self, &service.spec) {
                        return CommandResult::err(e);
                    }
                }
                service.version = index;
                self.services.insert(service.id.clone(), service);
                CommandResult::ok()
            }
            Command::RemoveService { service_id, at } => {
                if self.services.remove(service_id).is_none() {
                    return CommandResult::err(format!("service {service_id} not found"));
                }
                for t in self
                    .tasks
                    .values_mut()
                    .filter(|t| &t.service_id == service_id)
                {
                    if t.desired_state <= TaskState::Running {
                        t.desired_state = TaskState::Remove;
                        t.version = index;
                        t.updated_at = *at;
                    }
                }
                CommandResult::ok()
            }
            Command::PutTasks { tasks } => {
                for t in tasks {
                    let mut t = t.clone();
                    t.version = index;
                    self.tasks.insert(t.id.clone(), t);
                }
                CommandResult::ok()
            }
            Command::ReportTasks { reports, at } => {
                for r in reports {
                    let Some(t) = self.tasks.get_mut(&r.task_id) else {
                        continue;
                    };
                    let forward = r.status.state > t.status.state
                        || (r.status.state == t.status.state
                            && (r.status != t.status || r.health != t.health));
                    if !forward {
                        continue;
                    }
                    t.status = r.status.clone();
                    if t.status.timestamp.is_none() {
                        t.status.timestamp = Some(*at);
                    }
                    t.health = r.health.clone();
                    if t.running_at.is_none() && t.is_running() {
                        t.running_at = t.status.timestamp;
                    }
                    t.version = index;
                    t.updated_at = *at;
                }
                CommandResult::ok()
            }
            Command::DeleteTasks { ids } => {
                for id in ids {
                    self.tasks.remove(id);
                }
                CommandResult::ok()
            }
            Command::PutNetwork { network } => {
                if let Err(e) = crate::networks::conflicts(self, network) {
                    return CommandResult::err(e);
                }
                self.networks.insert(network.id.clone(), network.clone());
                CommandResult::ok()
            }
            Command::RemoveNetwork { network_id } => match self.networks.remove(network_id) {
                Some(_) => CommandResult::ok(),
                None => CommandResult::err(format!("network {network_id} not found")),
            },
            Command::PutSecret { kind, record } => {
                let word = kind.word();
                let objects = self.objects(*kind);
                if objects
                    .values()
                    .any(|o| o.id != record.id && o.name == record.name)
                {
                    return CommandResult::err(format!(
                        "rpc error: code = AlreadyExists desc = {word} {} already exists",
                        record.name
                    ));
                }
                let mut record = record.clone();
                if let Some(old) = objects.get(&record.id) {
                    if old.name != record.name || old.data != record.data {
                        return CommandResult::err(crate::secrets::ONLY_LABELS);
                    }
                    record.created_at = old.created_at;
                }
                record.version = index;
                self.objects_mut(*kind).insert(record.id.clone(), record);
                CommandResult::ok()
            }
            Command::RemoveSecret { kind, id } => {
                let Some(name) = self.objects(*kind).get(id).map(|o| o.name.clone()) else {
                    return CommandResult::err(format!("{} {id} not found", kind.word()));
                };
                let users = crate::secrets::users(self, *kind, id);
                if !users.is_empty() {
                    return CommandResult::err(crate::secrets::in_use_error(*kind, &name, &users));
                }
                self.objects_mut(*kind).remove(id);
                CommandResult::ok()
            }
            Command::Batch(cmds) => CommandResult {
                error: None,
                batch: cmds.iter().map(|c| self.apply(c, index)).collect(),
            },
            Command::Atomic(cmds) => {
                // Applied to a copy that replaces the state only if every command succeeds:
                // the same on every manager, since it depends only on the state and the log.
                let mut next = self.clone();
                let mut results = Vec::with_capacity(cmds.len());
                for c in cmds {
                    let r = next.apply(c, index);
                    if let Some(e) = r.first_error() {
                        return CommandResult::err(format!("failed to {}: {e}", c.describe()));
                    }
                    results.push(r);
                }
                *self = next;
                CommandResult {
                    error: None,
                    batch: results,
                }
            }
            Command::RemoveNode { node_id } => match self.nodes.remove(node_id) {
                Some(_) => CommandResult::ok(),
                None => CommandResult::err(format!("node {node_id} not found")),
            },
            Command::RotateToken { role, secret } => {
                let Some(cluster) = self.cluster.as_mut() else {
                    return CommandResult::err("cluster not initialized");
                };
                match role {
                    Role::Worker => cluster.worker_secret = secret.clone(),
                    Role::Manager => cluster.manager_secret = secret.clone(),
                }
                CommandResult::ok()
            }
            Command::SetRootRotation {
                rotation,
                based_on,
                cert_expiry_s,
            } => {
                let Some(cluster) = self.cluster.as_mut() else {
                    return CommandResult::err("cluster not initialized");
                };
                if shoal_ca::ca_digest(&cluster.ca_cert_pem).ok().as_ref() != Some(based_on) {
                    return CommandResult::err(
                        "update out of sequence: the swarm's root CA changed meanwhile",
                    );
                }
                cluster.root_rotation = rotation.clone();
                if let Some(s) = cert_expiry_s {
                    cluster.cert_expiry_s = *s;
                }
                CommandResult::ok()
            }
            Command::FinishRootRotation {
                rotation_digest,
                worker_secret,
                manager_secret,
            } => {
                let Some(cluster) = self.cluster.as_mut() else {
                    return CommandResult::err("cluster not initialized");
                };
                let Some(r) = cluster.root_rotation.take_if(|r| {
                    shoal_ca::ca_digest(&r.ca_cert_pem).ok().as_ref() == Some(rotation_digest)
                }) else {
                    return CommandResult::err("target root rotation has changed");
                };
                cluster.ca_cert_pem = r.ca_cert_pem;
                cluster.ca_key_pem = r.ca_key_pem;
                cluster.worker_secret = worker_secret.clone();
                cluster.manager_secret = manager_secret.clone();
                CommandResult::ok()
            }
            Command::UpdateCluster { update } => {
                let Some(cluster) = self.cluster.as_mut() else {
                    return CommandResult::err("cluster not initialized");
                };
                if let Some(ms) = update.dispatcher_heartbeat_ms {
                    cluster.heartbeat_ms = ms;
                }
                if let Some(n) = update.task_history_limit {
                    cluster.task_history = n;
                }
                if let Some(s) = update.cert_expiry_s {
                    cluster.cert_expiry_s = s;
                }
                // A new key only when autolock goes on (turning it on again keeps the key)
                // or is rotated while on, as swarmkit's UpdateCluster.
                let turn_on = update.autolock == Some(true) && cluster.unlock_key.is_none();
                let rotate = update.rotate_unlock_key
                    && update.autolock != Some(false)
                    && cluster.unlock_key.is_some();
                if update.autolock == Some(false) {
                    cluster.unlock_key = None;
                } else if turn_on || rotate {
                    match &update.unlock_key {
                        Some(key) => cluster.unlock_key = Some(key.clone()),
                        None => return CommandResult::err("no unlock key given"),
                    }
                }
                CommandResult::ok()
            }
            Command::ForceNewCluster {
                state,
                node_id,
                raft_id,
                at,
            } => {
                if self.cluster.is_some() {
                    return CommandResult::err("cluster already initialized");
                }
                *self = (**state).clone();
                let Some(node) = self.nodes.get_mut(node_id) else {
                    return CommandResult::err(format!("node {node_id} not found"));
                };
                node.raft_id = *raft_id;
                node.version = index;
                node.updated_at = *at;
                // Every other manager is now outside the new single-member Raft group: as in
                // swarm, they stay listed (as managers, Unreachable) until demoted or removed.
                CommandResult::ok()
            }
        }
    }

    /// Resolve a user's node reference: full ID, unique ID prefix, or hostname/name.
    pub fn resolve_node(&self, reference: &str) -> Result<&NodeRecord, String> {
        // Every ID starts with "": an empty reference names nothing, not everything.
        if reference.is_empty() {
            return Err(format!("node {reference} not found"));
        }
        if let Some(n) = self.nodes.get(reference) {
            return Ok(n);
        }
        let by_name: Vec<&NodeRecord> = self
            .nodes
            .values()
            .filter(|n| n.display_name() == reference || n.description.hostname == reference)
            .collect();
        if by_name.len() == 1 {
            return Ok(by_name[0]);
        }
        if by_name.len() > 1 {
            return Err(format!(
                "node {reference} is ambiguous ({} matches found)",
                by_name.len()
            ));
        }
        let by_prefix: Vec<&NodeRecord> = self
            .nodes
            .values()
            .filter(|n| n.id.starts_with(reference))
            .collect();
        match by_prefix.len() {
            1 => Ok(by_prefix[0]),
            0 => Err(format!("node {reference} not found")),
            n => Err(format!("node {reference} is ambiguous ({n} matches found)")),
        }
    }

    /// Resolve a service by full ID, name, or unique ID prefix.
    pub fn resolve_service(&self, reference: &str) -> Result<&ServiceRecord, String> {
        if reference.is_empty() {
            return Err(format!("service {reference} not found"));
        }
        if let Some(s) = self.services.get(reference) {
            return Ok(s);
        }
        if let Some(s) = self.services.values().find(|s| s.spec.name == reference) {
            return Ok(s);
        }
        let by_prefix: Vec<&ServiceRecord> = self
            .services
            .values()
            .filter(|s| s.id.starts_with(reference))
            .collect();
        match by_prefix.len() {
            1 => Ok(by_prefix[0]),
            0 => Err(format!("service {reference} not found")),
            n => Err(format!(
                "service {reference} is ambiguous ({n} matches found)"
            )),
        }
    }

    /// Resolve a task by full ID or unique ID prefix.
    pub fn resolve_task(&self, reference: &str) -> Result<&TaskRecord, String> {
        if reference.is_empty() {
            return Err(format!("task {reference} not found"));
        }
        if let Some(t) = self.tasks.get(reference) {
            return Ok(t);
        }
        let by_prefix: Vec<&TaskRecord> = self
            .tasks
            .values()
            .filter(|t| t.id.starts_with(reference))
            .collect();
        match by_prefix.len() {
            1 => Ok(by_prefix[0]),
            0 => Err(format!("task {reference} not found")),
            n => Err(format!("task {reference} is ambiguous ({n} matches found)")),
        }
    }

    pub fn node_by_raft_id(&self, raft_id: u64) -> Option<&NodeRecord> {
        self.nodes.values().find(|n| n.raft_id == raft_id)
    }

    pub fn managers(&self) -> impl Iterator<Item = &NodeRecord> {
        self.nodes.values().filter(|n| n.is_manager())
    }

    /// Count nodes by (state, role) for metrics.
    pub fn node_counts(&self) -> BTreeMap<(&'static str, &'static str), usize> {
        let mut out = BTreeMap::new();
        for n in self.nodes.values() {
            let role = match n.spec.role {
                Role::Manager => "manager",
                Role::Worker => "worker",
            };
            *out.entry((n.state.as_str(), role)).or_insert(0) += 1;
        }
        out
    }
}

/// A fresh node record for a node admitted now.
/// swarmkit's store: names are unique without regard to case (its name index is lowercased).
pub(crate) fn same_name(a: &str, b: &str) -> bool {
    a.to_lowercase() == b.to_lowercase()
}

/// swarmkit's CreateService refusal of a name another service has (controlapi adds the
/// service's name to the store's ErrNameConflict).
pub(crate) fn service_name_taken(name: &str) -> String {
    format!(
        "rpc error: code = AlreadyExists desc = name conflicts with an existing object: service {name} already exists"
    )
}

pub fn new_node_record(
    id: String,
    raft_id: u64,
    role: Role,
    description: NodeDescription,
    addr: String,
    listen_addr: String,
    now: DateTime<Utc>,
) -> NodeRecord {
    NodeRecord {
        id,
        raft_id,
        version: 0,
        created_at: now,
        updated_at: now,
        spec: NodeSpec {
            name: None,
            labels: BTreeMap::new(),
            role,
            availability: Availability::Active,
        },
        description,
        state: NodeState::Ready,
        message: None,
        addr,
        listen_addr,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::networks::ALLOCATION_TAKEN;

    fn node(id: &str, host: &str, role: Role) -> NodeRecord {
        new_node_record(
            id.into(),
            7,
            role,
            NodeDescription {
                hostname: host.into(),
                ..Default::default()
            },
            "10.0.0.1".into(),
            "10.0.0.1:2377".into(),
            Utc::now(),
        )
    }

    /// A cluster as `swarm init` with its defaults makes it (no CA: not needed here).
    pub(crate) fn cluster() -> ClusterInfo {
        ClusterInfo {
            id: "c".into(),
            created_at: Utc::now(),
            ca_cert_pem: String::new(),
            ca_key_pem: String::new(),
            worker_secret: "w".into(),
            manager_secret: "m".into(),
            heartbeat_ms: 5000,
            task_history: 5,
            addr_pool: crate::networks::DEFAULT_POOL.into(),
            subnet_bits: crate::networks::DEFAULT_SUBNET_BITS,
            data_path_port: 4789,
            unlock_key: None,
            cert_expiry_s: shoal_ca::NODE_CERT_VALIDITY.as_secs(),
            root_rotation: None,
        }
    }

    fn service(id: &str, name: &str) -> ServiceRecord {
        let spec = shoal_spec::ServiceSpec {
            name: name.into(),
            ..Default::default()
        };
        ServiceRecord::new(id.into(), spec)
    }

    /// A service publishing `ports` (the CLI's `-p` syntax, each may be a range).
    fn publishing(id: &str, name: &str, ports: &[&str]) -> ServiceRecord {
        let mut svc = service(id, name);
        svc.spec.endpoint_spec = Some(shoal_spec::EndpointSpec {
            ports: ports
                .iter()
                .flat_map(|p| crate::cli::service_opts::port(p).unwrap())
                .collect(),
            ..Default::default()
        });
        svc
    }

    fn create(svc: ServiceRecord) -> Command {
        Command::PutService {
            service: Box::new(svc),
            expected_version: None,
        }
    }

    fn network(id: &str, name: &str) -> NetworkRecord {
        NetworkRecord {
            id: id.into(),
            name: name.into(),
            driver: "overlay".into(),
            labels: BTreeMap::new(),
            created_at: Utc::now(),
            vni: 4097,
            subnet: "10.0.1.0/24".into(),
            gateway: "10.0.1.1".into(),
            attachable: false,
            ingress: false,
            internal: false,
            mtu: None,
        }
    }

    /// Two creates in flight at once were each checked against the state they read: the
    /// state machine refuses the second of the same service name, and a network whose
    /// name, VNI or subnet another one took, leaving the state as the first left it.
    /// `swarm update` changes the settings it names and leaves the others as they were.
    #[test]
    fn update_cluster_changes_only_what_it_names() {
        let mut s = ClusterState {
            cluster: Some(cluster()),
            ..Default::default()
        };
        let update = |ms: Option<u64>, n: Option<u64>| Command::UpdateCluster {
            update: crate::api::SwarmUpdate {
                dispatcher_heartbeat_ms: ms,
                task_history_limit: n,
                ..Default::default()
            },
        };
        assert_eq!(s.apply(&update(None, Some(2)), 1).error, None);
        let c = s.cluster.as_ref().unwrap();
        assert_eq!((c.heartbeat_ms, c.task_history), (5000, 2));
        assert_eq!(s.apply(&update(Some(10_000), None), 2).error, None);
        let c = s.cluster.as_ref().unwrap();
        assert_eq!((c.heartbeat_ms, c.task_history), (10_000, 2));
        assert_eq!(c.unlock_key, None);
    }

    /// Autolock as swarmkit's UpdateCluster: turning it on stores the leader's new key,
    /// turning it on again keeps that key, a rotation replaces it only while autolock is
    /// on, and turning it off forgets it.
    #[test]
    fn autolock_keys_follow_swarm_update() {
        let mut s = ClusterState {
            cluster: Some(cluster()),
            ..Default::default()
        };
        let update = |autolock: Option<bool>, rotate: bool, key: &str| Command::UpdateCluster {
            update: crate::api::SwarmUpdate {
                autolock,
                rotate_unlock_key: rotate,
                unlock_key: Some(key.into()),
                ..Default::default()
            },
        };
        let key = |s: &ClusterState| s.cluster.as_ref().unwrap().unlock_key.clone();
        assert_eq!(s.apply(&update(None, true, "k0"), 1).error, None);
        assert_eq!(key(&s), None, "a rotation with autolock off set a key");
        assert_eq!(s.apply(&update(Some(true), false, "k1"), 2).error, None);
        assert_eq!(key(&s).as_deref(), Some("k1"));
        assert_eq!(s.apply(&update(Some(true), false, "k2"), 3).error, None);
        assert_eq!(
            key(&s).as_deref(),
            Some("k1"),
            "turning it on again changed the key"
        );
        assert_eq!(s.apply(&update(None, false, "k3"), 4).error, None);
        assert_eq!(key(&s).as_deref(), Some("k1"));
        assert_eq!(s.apply(&update(None, true, "k4"), 5).error, None);
        assert_eq!(key(&s).as_deref(), Some("k4"));
        assert_eq!(s.apply(&update(Some(false), true, "k5"), 6).error, None);
        assert_eq!(key(&s), None);
    }

    #[test]
    fn concurrent_creates_cannot_both_take_a_name_or_an_allocation() {
        let mut s = ClusterState::default();
        let put = |svc: ServiceRecord| Command::PutService {
            service: Box::new(svc),
            expected_version: None,
        };
        assert_eq!(s.apply(&put(service("svc1", "web")), 1).error, None);
        let before = s.clone();
        assert_eq!(
            s.apply(&put(service("svc2", "web")), 2).error.as_deref(),
            Some("rpc error: code = AlreadyExists desc = name conflicts with an existing object: service web already exists")
        );
        assert_eq!(s, before);
        // swarmkit's name index is lowercased: a name differing only in case is taken too.
        assert_eq!(
            s.apply(&put(service("svc2", "WEB")), 2).error.as_deref(),
            Some("rpc error: code = AlreadyExists desc = name conflicts with an existing object: service WEB already exists")
        );
        assert_eq!(s, before);
        // The same service written again (an update) is no conflict with itself.
        assert_eq!(s.apply(&put(service("svc1", "web")), 3).error, None);
        // Two of one name from before this check (an old race) do not hold up each
        // other's writes that keep the name (the orchestrator's).
        s.services.insert("svc2".into(), service("svc2", "web"));
        assert_eq!(s.apply(&put(service("svc2", "web")), 4).error, None);

        let mut s = ClusterState::default();
        let put = |n: NetworkRecord| Command::PutNetwork { network: n };
        assert_eq!(s.apply(&put(network("net1", "front")), 1).error, None);
        let before = s.clone();
        let other = |f: fn(&mut NetworkRecord)| {
            let mut n = network("net2", "back");
            n.vni = 4098;
            n.subnet = "10.0.2.0/24".into();
            n.gateway = "10.0.2.1".into();
            f(&mut n);
            n
        };
        for (what, n, want) in [
            (
                "the same name",
                other(|n| n.name = "front".into()),
                "rpc error: code = AlreadyExists desc = network with name front already exists",
            ),
            ("the same VNI", other(|n| n.vni = 4097), ALLOCATION_TAKEN),
            (
                "an overlapping subnet",
                other(|n| n.subnet = "10.0.0.0/16".into()),
                ALLOCATION_TAKEN,
            ),
        ] {
            assert_eq!(s.apply(&put(n), 2).error.as_deref(), Some(want), "{what}");
            assert_eq!(s, before, "{what}: nothing stored");
        }
        assert_eq!(s.apply(&put(other(|_| {})), 3).error, None, "its own");
    }

    /// Two services created at once, each checked against a state without the other,
    /// cannot both publish one ingress port: the later Raft entry is refused. Writes that
    /// keep a service's ports are never held up, even by a duplicate an old race left.
    #[test]
    fn concurrent_creates_cannot_both_publish_a_port() {
        let publishing = |id: &str, name: &str, port: &str| publishing(id, name, &[port]);
        let put = create;
        let mut s = ClusterState::default();
        assert_eq!(
            s.apply(&put(publishing("svc1", "web", "8080:80")), 1).error,
            None
        );
        let before = s.clone();
        assert_eq!(
            s.apply(&put(publishing("svc2", "api", "8080:81")), 2).error.as_deref(),
            Some("rpc error: code = InvalidArgument desc = port '8080' is already in use by service 'web' (svc1) as an ingress port")
        );
        assert_eq!(s, before, "nothing stored");
        // Another protocol, or an update of the same service, is no conflict.
        assert_eq!(
            s.apply(&put(publishing("svc2", "api", "8080:81/udp")), 3)
                .error,
            None
        );
        assert_eq!(
            s.apply(&put(publishing("svc1", "web", "8080:82")), 4).error,
            None
        );
        // An update that takes another's port is refused too.
        assert!(s
            .apply(&put(publishing("svc1", "web", "8080:82/udp")), 5)
            .error
            .is_some());
        // Two left by an old race: the orchestrator's writes keeping them go through.
        s.services
            .insert("svc3".into(), publishing("svc3", "dup", "8080:80"));
        assert_eq!(
            s.apply(&put(publishing("svc3", "dup", "8080:80")), 6).error,
            None
        );
    }

    /// A published port that is one of the swarm's own (a node's swarm port, the data
    /// path port, the probe port) is refused when the entry applies too, so no path
    /// (an older manager's request check, a race) stores one; the same ports of the other
    /// protocol are fine.
    #[test]
    fn the_swarms_own_ports_cannot_be_published() {
        let publishing = |id: &str, port: &str| create(publishing(id, id, &[port]));
        let mut s = ClusterState::default();
        let mut c = cluster();
        c.data_path_port = 5789;
        assert_eq!(
            s.apply(
                &Command::Init {
                    cluster: Box::new(c),
                    node: node("aaa111", "vm1", Role::Manager),
                },
                1
            )
            .error,
            None
        );
        let mut other = node("bbb222", "vm2", Role::Worker);
        other.listen_addr = "10.0.0.2:3377".into();
        assert_eq!(s.apply(&Command::AddNode { node: other }, 2).error, None);
        let before = s.clone();
        for (port, error) in [
            ("2377:80", "port '2377/tcp' is reserved for the swarm itself: it is the swarm port of node vm1 (Raft, the dispatcher and joins); choose another published port"),
            ("mode=host,published=3377,target=80", "port '3377/tcp' is reserved for the swarm itself: it is the swarm port of node vm2 (Raft, the dispatcher and joins); choose another published port"),
            ("5789:80/udp", "port '5789/udp' is reserved for the swarm itself: it is the swarm's data path port (VXLAN, `swarm init --data-path-port`); choose another published port"),
            ("7946:80/udp", "port '7946/udp' is reserved for the swarm itself: it is the swarm's probe port (the load balancer's liveness probes between nodes); choose another published port"),
        ] {
            assert_eq!(
                s.apply(&publishing("svc", port), 3).error,
                Some(format!("rpc error: code = InvalidArgument desc = {error}")),
                "{port}"
            );
            assert_eq!(s, before, "nothing stored for {port}");
        }
        for (i, port) in ["2377:80/udp", "4789:80/udp", "5789:80", "7946:80"]
            .into_iter()
            .enumerate()
        {
            assert_eq!(
                s.apply(&publishing(&format!("ok{i}"), port), 4 + i as u64)
                    .error,
                None,
                "{port}"
            );
        }
    }

    /// Ingress ports published without a number get swarmkit's dynamic range: the lowest
    /// free port per protocol, skipping ports other services publish; an update (with the
    /// spec as given, or as stored) keeps the port; `service inspect` shows it under
    /// Endpoint.Ports only; a full range is a clear error.
    #[test]
    fn unnumbered_ingress_ports_get_the_dynamic_range() {
        use crate::services::assign_dynamic_ports;
        let create = |s: &mut ClusterState, id: &str, name: &str, list: &[&str]| {
            let mut svc = publishing(id, name, list);
            let dynamic = assign_dynamic_ports(s, &mut svc.spec, None)?;
            svc.dynamic_ports = dynamic;
            let cmd = create(svc);
            let index = s.services.len() as u64 + 1;
            match s.apply(&cmd, index).error {
                None => Ok(()),
                Some(e) => Err(e),
            }
        };
        let published = |s: &ClusterState, id: &str| -> Vec<(Option<u16>, u16)> {
            s.services[id]
                .spec
                .endpoint_spec
                .iter()
                .flat_map(|e| e.ports.iter())
                .map(|p| (p.published_port, p.target_port))
                .collect()
        };
        let mut s = ClusterState::default();
        create(&mut s, "svc0", "taken", &["30000:8000"]).unwrap();
        create(&mut s, "svc1", "web", &["80", "8080:81"]).unwrap();
        assert_eq!(published(&s, "svc1"), [(Some(30001), 80), (Some(8080), 81)]);
        create(&mut s, "svc2", "dns", &["53/udp", "443"]).unwrap();
        assert_eq!(
            published(&s, "svc2"),
            [(Some(30000), 53), (Some(30002), 443)]
        );

        // inspect: the spec as given, the port under Endpoint.Ports.
        let json = s.services["svc1"].docker_json();
        assert_eq!(
            json["Spec"]["EndpointSpec"]["Ports"][0].get("PublishedPort"),
            None
        );
        assert_eq!(
            json["Spec"]["EndpointSpec"]["Ports"][1]["PublishedPort"],
            8080
        );
        assert_eq!(
            json["Endpoint"]["Spec"]["Ports"][0].get("PublishedPort"),
            None
        );
        assert_eq!(json["Endpoint"]["Ports"][0]["PublishedPort"], 30001);

        // Updates keep the port, whether the spec comes as given or as stored.
        let web = s.services["svc1"].clone();
        let mut given = web.spec.clone();
        given.endpoint_spec = publishing("svc1", "web", &["80", "8080:81"])
            .spec
            .endpoint_spec;
        assert_eq!(
            assign_dynamic_ports(&s, &mut given, Some(&web)).unwrap(),
            [(30001, shoal_spec::Protocol::Tcp)]
        );
        assert_eq!(given, web.spec);
        let mut stored = web.spec.clone();
        assert_eq!(
            assign_dynamic_ports(&s, &mut stored, Some(&web)).unwrap(),
            [(30001, shoal_spec::Protocol::Tcp)]
        );
        assert_eq!(stored, web.spec);

        // Two unnumbered ports of one protocol in one spec get two ports.
        let mut two = publishing("svcx", "two", &["90", "91"]).spec;
        assign_dynamic_ports(&s, &mut two, None).unwrap();
        let got: Vec<_> = two
            .endpoint_spec
            .unwrap()
            .ports
            .iter()
            .map(|p| p.published_port)
            .collect();
        assert_eq!(got, [Some(30003), Some(30004)]);

        // The whole range taken (three services of at most 1000 ports each): a clear error.
        create(&mut s, "svc3", "r1", &["30003-30999:1-997"]).unwrap();
        create(&mut s, "svc4", "r2", &["31000-31999:1-1000"]).unwrap();
        create(&mut s, "svc5", "r3", &["32000-32767:1-768"]).unwrap();
        let before = s.clone();
        assert_eq!(
            create(&mut s, "svc6", "late", &["80"]),
            Err("rpc error: code = ResourceExhausted desc = no free port in the dynamic range 30000-32767 to publish 80/tcp".into())
        );
        assert_eq!(s, before);
    }

    /// Creates and updates in flight at once, each given its dynamic port from the same
    /// read (every one previews the lowest free port, the same one), all go through with
    /// distinct ports: the state machine picks them when each entry applies, the same way
    /// on every manager, whether the entries come one by one, batched or in a stack deploy.
    #[test]
    fn concurrent_creates_get_distinct_dynamic_ports() {
        use crate::services::assign_dynamic_ports;
        use shoal_spec::Protocol;
        // What the API proposes: the spec with the ports it previewed from its read.
        let previewed = |read: &ClusterState, mut svc: ServiceRecord| {
            let existing = read.services.get(&svc.id);
            svc.dynamic_ports = assign_dynamic_ports(read, &mut svc.spec, existing).unwrap();
            svc
        };
        let read = {
            let mut s = ClusterState::default();
            let old = previewed(&s, publishing("old", "old", &["80"]));
            assert_eq!(s.apply(&create(old), 1).error, None);
            s
        };
        let published = |s: &ClusterState, id: &str| -> Vec<u16> {
            s.services[id]
                .spec
                .endpoint_spec
                .iter()
                .flat_map(|e| e.ports.iter())
                .filter_map(|p| p.published_port)
                .collect()
        };
        assert_eq!(published(&read, "old"), [30000]);
        let creates: Vec<Command> = (0..20)
            .map(|i| {
                let svc = publishing(&format!("svc{i:02}"), &format!("web{i:02}"), &["80"]);
                create(previewed(&read, svc))
            })
            .collect();
        // And an update of "old" that adds a port, previewed from the same read.
        let mut old = read.services["old"].clone();
        old.spec.endpoint_spec = publishing("old", "old", &["80", "81"]).spec.endpoint_spec;
        let update = Command::PutService {
            service: Box::new(previewed(&read, old)),
            expected_version: Some(1),
        };
        let mut log = vec![update];
        log.extend(creates);

        let one_by_one = {
            let mut s = read.clone();
            for (i, c) in log.iter().enumerate() {
                assert_eq!(s.apply(c, 2 + i as u64).error, None, "entry {i}");
            }
            s
        };
        let mut ports: Vec<u16> = one_by_one
            .services
            .keys()
            .flat_map(|id| published(&one_by_one, id))
            .collect();
        ports.sort_unstable();
        assert_eq!(
            ports,
            (30000..30022).collect::<Vec<_>>(),
            "distinct, lowest first"
        );
        assert_eq!(
            published(&one_by_one, "old"),
            [30000, 30001],
            "the update kept 30000"
        );
        for (id, svc) in &one_by_one.services {
            let json = svc.docker_json();
            assert_eq!(
                json["Spec"]["EndpointSpec"]["Ports"][0].get("PublishedPort"),
                None,
                "{id}: the spec as given"
            );
            let port = published(&one_by_one, id)[0];
            assert_eq!(json["Endpoint"]["Ports"][0]["PublishedPort"], port, "{id}");
            assert!(svc.dynamic_ports.contains(&(port, Protocol::Tcp)), "{id}");
        }

        // The same entries in one batch, and as one stack deploy: the same outcome.
        let mut batched = read.clone();
        let r = batched.apply(&Command::Batch(log.clone()), 2);
        assert_eq!(r.first_error(), None);
        let mut atomic = read.clone();
        let r = atomic.apply(&Command::Atomic(log.clone()), 2);
        assert_eq!(r.first_error(), None);
        for s in [&batched, &atomic] {
            for id in one_by_one.services.keys() {
                assert_eq!(published(s, id), published(&one_by_one, id), "{id}");
            }
        }
    }

    /// `service rollback` to a spec whose port had no number shows what docker shows:
    /// Spec and PreviousSpec as given (a number only where the user gave one), the port
    /// under Endpoint.Ports, kept when the service still publishes that target (swarmkit's
    /// sticky allocation), and never refused for a dynamic port another service took
    /// since. The automatic rollback of a failed update does the same.
    #[test]
    fn a_rollback_gives_dynamic_ports_back_as_given() {
        use crate::orchestrator::{rolled_back_service, updated_service};
        use crate::services::assign_dynamic_ports;
        let now = Utc::now();
        // A record proposed as it is (a rollback), at the version it was read at.
        let propose = |s: &mut ClusterState, svc: ServiceRecord| {
            let cmd = Command::PutService {
                expected_version: s.services.get(&svc.id).map(|e| e.version),
                service: Box::new(svc),
            };
            let index = 10 + s.services.values().map(|s| s.version).max().unwrap_or(0);
            s.apply(&cmd, index).error
        };
        // A create or update, as the API proposes it: the ports previewed from this state.
        let put = |s: &mut ClusterState, mut svc: ServiceRecord| {
            let existing = s.services.get(&svc.id);
            svc.dynamic_ports = assign_dynamic_ports(s, &mut svc.spec, existing).unwrap();
            propose(s, svc)
        };
        let update = |s: &mut ClusterState, id: &str, ports: &[&str]| {
            let mut spec = s.services[id].spec.clone();
            spec.endpoint_spec = publishing(id, id, ports).spec.endpoint_spec;
            let svc = updated_service(&s.services[id], spec, now);
            put(s, svc)
        };
        let port = |json: &serde_json::Value, key: &str| {
            json[key]["EndpointSpec"]["Ports"][0]
                .get("PublishedPort")
                .cloned()
        };
        let endpoint = |s: &ClusterState, id: &str| {
            s.services[id].docker_json()["Endpoint"]["Ports"][0]["PublishedPort"].as_u64()
        };

        // -p 80, then --image (ports as they were), then rollback: the port stays.
        let mut s = ClusterState::default();
        assert_eq!(put(&mut s, publishing("web", "web", &["80"])), None);
        assert_eq!(endpoint(&s, "web"), Some(30000));
        let mut spec = s.services["web"].spec.clone();
        spec.task_template.container_spec.image = "demo:2".into();
        let updated = updated_service(&s.services["web"], spec, now);
        assert_eq!(put(&mut s, updated), None);
        let back = rolled_back_service(&s.services["web"], now).unwrap();
        assert_eq!(propose(&mut s, back), None);
        let json = s.services["web"].docker_json();
        assert_eq!(port(&json, "Spec"), None, "{json}");
        assert_eq!(port(&json, "PreviousSpec"), None, "{json}");
        assert_eq!(endpoint(&s, "web"), Some(30000));

        // -p 80, then --publish-rm 80 --publish-add 8080:80: PreviousSpec as given. Another
        // service takes 30000. The rollback goes through; the spec as given, and the port
        // swarmkit's allocator keeps for target 80: the one the service publishes now.
        let mut s = ClusterState::default();
        assert_eq!(put(&mut s, publishing("web", "web", &["80"])), None);
        assert_eq!(update(&mut s, "web", &["8080:80"]), None);
        let json = s.services["web"].docker_json();
        assert_eq!(port(&json, "Spec"), Some(8080.into()));
        assert_eq!(port(&json, "PreviousSpec"), None, "{json}");
        assert_eq!(put(&mut s, publishing("api", "api", &["81"])), None);
        assert_eq!(endpoint(&s, "api"), Some(30000));
        let back = rolled_back_service(&s.services["web"], now).unwrap();
        assert_eq!(propose(&mut s, back), None);
        let json = s.services["web"].docker_json();
        assert_eq!(port(&json, "Spec"), None, "{json}");
        assert_eq!(port(&json, "PreviousSpec"), Some(8080.into()), "{json}");
        assert_eq!(endpoint(&s, "web"), Some(8080));

        // 8080:80, then --publish-rm 8080 --publish-add 80 (keeps 8080), then rollback:
        // the number the user gave shows in the spec again.
        let mut s = ClusterState::default();
        assert_eq!(put(&mut s, publishing("web", "web", &["8080:80"])), None);
        assert_eq!(update(&mut s, "web", &["80"]), None);
        assert_eq!(endpoint(&s, "web"), Some(8080));
        let json = s.services["web"].docker_json();
        assert_eq!(port(&json, "Spec"), None, "{json}");
        assert_eq!(port(&json, "PreviousSpec"), Some(8080.into()), "{json}");
        let back = rolled_back_service(&s.services["web"], now).unwrap();
        assert_eq!(propose(&mut s, back), None);
        let json = s.services["web"].docker_json();
        assert_eq!(port(&json, "Spec"), Some(8080.into()), "{json}");
        assert_eq!(port(&json, "PreviousSpec"), None, "{json}");

        // The automatic rollback (failure_action rollback): as the manual one.
        let mut s = ClusterState::default();
        assert_eq!(put(&mut s, publishing("web", "web", &["80"])), None);
        let mut spec = s.services["web"].spec.clone();
        spec.task_template.container_spec.image = "demo:2".into();
        spec.endpoint_spec = publishing("web", "web", &["8080:80"]).spec.endpoint_spec;
        let updated = updated_service(&s.services["web"], spec, now);
        assert_eq!(put(&mut s, updated), None);
        assert_eq!(put(&mut s, publishing("api", "api", &["81"])), None);
        let back =
            crate::orchestrator::rolled_back_after_failure(&s.services["web"], now, "t1", now);
        assert_eq!(propose(&mut s, back), None);
        let json = s.services["web"].docker_json();
        assert_eq!(port(&json, "Spec"), None, "{json}");
        assert_eq!(json.get("PreviousSpec"), None, "{json}");
        assert_eq!(endpoint(&s, "web"), Some(8080));
    }

    /// A node whose swarm port a service publishes (in either mode) is refused when its
    /// entry applies, as when the leader admits it: a service that took the port while
    /// the join was in flight wins. Other protocols and ports are fine.
    #[test]
    fn a_node_cannot_join_on_a_published_port() {
        let publishing = |id: &str, name: &str, port: &str| create(publishing(id, name, &[port]));
        let mut s = ClusterState::default();
        for (i, cmd) in [
            publishing("svc1", "web", "8080:80"),
            publishing("svc2", "dns", "3377:53/udp"),
            publishing("svc3", "api", "mode=host,published=4377,target=80"),
        ]
        .iter()
        .enumerate()
        {
            assert_eq!(s.apply(cmd, 1 + i as u64).error, None);
        }
        let before = s.clone();
        let joining = |port: u16| {
            let mut n = node("bbb222", "vm2", Role::Worker);
            n.listen_addr = format!("10.0.0.2:{port}");
            Command::AddNode { node: n }
        };
        for (port, error) in [
            (8080, "port '8080/tcp' is already in use by service 'web' (svc1) as an ingress port, so it cannot be a node's swarm port; choose another --listen-addr port"),
            (4377, "port '4377/tcp' is already in use by service 'api' (svc3) as a host-published port, so it cannot be a node's swarm port; choose another --listen-addr port"),
        ] {
            assert_eq!(
                s.apply(&joining(port), 4).error,
                Some(format!("rpc error: code = InvalidArgument desc = {error}")),
                "{port}"
            );
            assert_eq!(s, before, "nothing stored for {port}");
        }
        assert_eq!(s.apply(&joining(3377), 5).error, None);
        assert!(s.nodes.contains_key("bbb222"));
    }

    /// The cap on a service's published ports and the load balancer's room hold when the
    /// entry applies too, so an older leader's request check or two requests in flight
    /// cannot store what either would refuse. Writes that keep a service's ports, or ask
    /// no more of the load balancer, go through even when an old race left the cluster
    /// past a limit, so it can be mended.
    #[test]
    fn publishing_limits_hold_when_the_entry_applies() {
        let ranged = |id: &str, first: u32, count: u32, replicas: u64| {
            let mut svc = service(id, id);
            svc.spec.mode = shoal_spec::ServiceMode::replicated(replicas);
            let last = first + count - 1;
            svc.spec.endpoint_spec = Some(shoal_spec::EndpointSpec {
                ports: crate::cli::service_opts::port(&format!("{first}-{last}:{first}-{last}"))
                    .unwrap(),
                ..Default::default()
            });
            svc
        };
        let put = |svc: ServiceRecord| Command::PutService {
            service: Box::new(svc),
            expected_version: None,
        };
        let mut s = ClusterState::default();
        assert_eq!(
            s.apply(&put(ranged("big", 1, 1001, 1)), 1).error.as_deref(),
            Some("rpc error: code = InvalidArgument desc = EndpointSpec: too many published ports (1001): a service publishes at most 1000 (each port and protocol of a range counts)")
        );
        assert_eq!(s, ClusterState::default(), "nothing stored");
        // Two services checked each against a state without the other: 1001 frontends
        // (its ports and the ingress VIP) times 200 tasks each, 400400 backends together.
        assert_eq!(s.apply(&put(ranged("a", 1, 1000, 200)), 2).error, None);
        let before = s.clone();
        let e = s
            .apply(&put(ranged("b", 1001, 1000, 200)), 3)
            .error
            .unwrap();
        assert_eq!(
            e,
            "rpc error: code = ResourceExhausted desc = the load balancer has room for 262144 backends (tasks times their published ports and VIPs) on each node; with service b the cluster would need 400400: publish fewer ports or run fewer replicas"
        );
        assert_eq!(s, before, "nothing stored");

        // Left by an old race: past both limits.
        s.services.insert("b".into(), ranged("b", 1001, 1000, 200));
        s.services
            .insert("big".into(), ranged("big", 3001, 1001, 1));
        // The same ports and tasks (the orchestrator's writes), or fewer: through.
        for (i, svc) in [
            ranged("big", 3001, 1001, 1),
            ranged("b", 1001, 1000, 200),
            ranged("b", 1001, 1000, 100),
        ]
        .into_iter()
        .enumerate()
        {
            let name = svc.spec.name.clone();
            assert_eq!(s.apply(&put(svc), 4 + i as u64).error, None, "{name}");
        }
        // More of the load balancer, or other ports still too many: refused.
        let e = s.apply(&put(ranged("a", 1, 1000, 300)), 7).error.unwrap();
        assert!(e.contains("room for 262144 backends"), "{e}");
        let e = s
            .apply(&put(ranged("big", 3002, 1001, 1)), 8)
            .error
            .unwrap();
        assert!(e.contains("too many published ports (1001)"), "{e}");
        assert_eq!(s.apply(&put(ranged("big", 3002, 1000, 1)), 9).error, None);
    }

    /// A join that would give the global services more backends than every node's load
    /// balancer holds is refused, with what to do, and changes nothing; replicated
    /// services do not grow with nodes, so they never hold a join up, and once a global
    /// service shrinks the node joins.
    #[test]
    fn a_join_past_the_load_balancers_room_is_refused() {
        let mut s = ClusterState::default();
        let init = Command::Init {
            cluster: Box::new(cluster()),
            node: node("node000", "vm0", Role::Manager),
        };
        assert_eq!(s.apply(&init, 1).error, None);
        // 1000 ports and the ingress VIP: 1001 backends on every node's load balancer per
        // node, 261 nodes fit in 262144.
        let mut global = publishing("glob", "agent", &["3001-4000:3001-4000"]);
        global.spec.mode = shoal_spec::ServiceMode::global();
        assert_eq!(s.apply(&create(global), 2).error, None);
        let mut replicated = publishing("rep", "web", &["8080:80"]);
        replicated.spec.mode = shoal_spec::ServiceMode::replicated(300);
        assert_eq!(s.apply(&create(replicated), 3).error, None);
        let join = |i: usize| Command::AddNode {
            node: node(&format!("node{i:03}"), &format!("vm{i}"), Role::Worker),
        };
        for i in 1..261 {
            assert_eq!(s.apply(&join(i), 3 + i as u64).error, None, "vm{i}");
        }
        assert_eq!(s.nodes.len(), 261);
        let before = s.clone();
        assert_eq!(
            s.apply(&join(261), 300).error.as_deref(),
            Some("rpc error: code = ResourceExhausted desc = the load balancer has room for 262144 backends (tasks times their published ports and VIPs) on each node; with node vm261 the cluster would need 262862, as every global service runs a task on each node: scale down or remove global services, publish fewer ports, or remove nodes that are down (`shoal node rm`), then join again")
        );
        assert_eq!(s, before, "nothing stored");
        // The global service publishes fewer ports: the node joins.
        let mut smaller = publishing("glob", "agent", &["3001-3900:3001-3900"]);
        smaller.spec.mode = shoal_spec::ServiceMode::global();
        assert_eq!(s.apply(&create(smaller), 301).error, None);
        assert_eq!(s.apply(&join(261), 302).error, None);
    }

    /// Applying the same log to two state machines gives the same state (determinism).
    #[test]
    fn same_log_same_state() {
        let at = Utc::now();
        let log = [
            Command::Init {
                cluster: Box::new(cluster()),
                node: node("aaa111", "vm1", Role::Manager),
            },
            Command::AddNode {
                node: node("bbb222", "vm2", Role::Worker),
            },
            Command::PatchNodeSpec {
                node_id: "bbb222".into(),
                patch: NodeSpecPatch {
                    label_add: vec![("os".into(), "linux".into())],
                    availability: Some(Availability::Drain),
                    ..Default::default()
                },
                promoted_raft_id: None,
                at,
            },
        ];
        let mut a = ClusterState::default();
        let mut b = ClusterState::default();
        for (i, c) in log.iter().enumerate() {
            assert_eq!(a.apply(c, i as u64 + 1), CommandResult::ok());
            b.apply(c, i as u64 + 1);
        }
        assert_eq!(a, b);
        let n = &a.nodes["bbb222"];
        assert_eq!(n.spec.availability, Availability::Drain);
        assert_eq!(n.spec.labels["os"], "linux");
        assert_eq!(n.version, 3);
    }

    /// Two patches proposed from the same read both take effect (no lost update), and a
    /// patch that fails changes nothing.
    #[test]
    fn patches_compose_and_failed_patch_changes_nothing() {
        let mut s = ClusterState::default();
        s.apply(
            &Command::Init {
                cluster: Box::new(cluster()),
                node: node("aaa111", "vm1", Role::Manager),
            },
            1,
        );
        let patch = |k: &str| Command::PatchNodeSpec {
            node_id: "aaa111".into(),
            patch: NodeSpecPatch {
                label_add: vec![(k.into(), "1".into())],
                ..Default::default()
            },
            promoted_raft_id: None,
            at: Utc::now(),
        };
        assert!(s.apply(&patch("a"), 2).error.is_none());
        assert!(s.apply(&patch("b"), 3).error.is_none());
        assert_eq!(s.nodes["aaa111"].spec.labels.len(), 2);
        let before = s.clone();
        let bad = Command::PatchNodeSpec {
            node_id: "aaa111".into(),
            patch: NodeSpecPatch {
                label_add: vec![("c".into(), "1".into())],
                label_rm: vec!["nope".into()],
                ..Default::default()
            },
            promoted_raft_id: None,
            at: Utc::now(),
        };
        let r = s.apply(&bad, 4);
        assert_eq!(
            r.error.as_deref(),
            Some("key nope doesn't exist in node's labels")
        );
        assert_eq!(s, before);
    }

    /// A promotion gives the node the fresh Raft ID proposed with it; a patch of a node
    /// that is already a manager (a second promote, labels) or a demotion keeps its ID.
    #[test]
    fn only_a_promotion_changes_the_raft_id() {
        let mut s = ClusterState::default();
        s.apply(
            &Command::Init {
                cluster: Box::new(cluster()),
                node: node("aaa111", "vm1", Role::Manager),
            },
            1,
        );
        s.apply(
            &Command::AddNode {
                node: node("bbb222", "vm2", Role::Worker),
            },
            2,
        );
        let role = |r: Role, raft_id: u64| Command::PatchNodeSpec {
            node_id: "bbb222".into(),
            patch: NodeSpecPatch {
                role: Some(r),
                ..Default::default()
            },
            promoted_raft_id: Some(raft_id),
            at: Utc::now(),
        };
        assert_eq!(s.nodes["bbb222"].raft_id, 7);
        assert!(s.apply(&role(Role::Manager, 8), 3).error.is_none());
        assert_eq!(s.nodes["bbb222"].raft_id, 8);
        assert!(s.apply(&role(Role::Manager, 9), 4).error.is_none());
        assert_eq!(s.nodes["bbb222"].raft_id, 8, "already a manager");
        assert!(s.apply(&role(Role::Worker, 10), 5).error.is_none());
        assert_eq!(s.nodes["bbb222"].raft_id, 8, "demoted");
        assert!(s.apply(&role(Role::Manager, 11), 6).error.is_none());
        assert_eq!(s.nodes["bbb222"].raft_id, 11, "promoted again");
    }

    /// A batch applies each command on its own: one failing does not undo the others.
    #[test]
    fn batch_results_are_per_command() {
        let mut s = ClusterState::default();
        let r = s.apply(
            &Command::Batch(vec![
                Command::Init {
                    cluster: Box::new(cluster()),
                    node: node("aaa111", "vm1", Role::Manager),
                },
                Command::RemoveNode {
                    node_id: "zzz".into(),
                },
                Command::AddNode {
                    node: node("bbb222", "vm2", Role::Worker),
                },
            ]),
            1,
        );
        assert!(r.error.is_none());
        assert_eq!(r.batch.len(), 3);
        assert!(r.batch[0].error.is_none());
        assert_eq!(r.batch[1].error.as_deref(), Some("node zzz not found"));
        assert!(r.batch[2].error.is_none());
        assert_eq!(s.nodes.len(), 2);
        // What a proposer sees: the failed command's error, even inside nested batches.
        assert_eq!(r.first_error(), Some("node zzz not found"));
        let nested = CommandResult {
            error: None,
            batch: vec![CommandResult::ok(), r],
        };
        assert_eq!(nested.first_error(), Some("node zzz not found"));
        assert_eq!(CommandResult::ok().first_error(), None);
    }

    /// A stack deploy is all or nothing: when its second command is refused (a service the
    /// orchestrator updated since the deploy read it), the network before it is not
    /// created either, and the error names the refused command; when every command is
    /// accepted, all take effect, each checked against the state the previous ones leave.
    #[test]
    fn atomic_applies_all_or_nothing() {
        let mut s = ClusterState::default();
        s.apply(
            &Command::Init {
                cluster: Box::new(cluster()),
                node: node("aaa111", "vm1", Role::Manager),
            },
            1,
        );
        let put = |svc: ServiceRecord, expected_version| Command::PutService {
            service: Box::new(svc),
            expected_version,
        };
        assert!(s
            .apply(&put(service("svc1", "st_web"), None), 2)
            .error
            .is_none());
        // The deploy read version 2; the orchestrator then wrote version 3.
        assert!(s
            .apply(&put(service("svc1", "st_web"), Some(2)), 3)
            .error
            .is_none());
        let before = s.clone();

        let deploy = Command::Atomic(vec![
            Command::PutNetwork {
                network: network("net1", "st_default"),
            },
            put(service("svc1", "st_web"), Some(2)),
            put(service("svc2", "st_db"), None),
        ]);
        let r = s.apply(&deploy, 4);
        assert_eq!(s, before);
        assert_eq!(
            r.first_error(),
            Some(
                "failed to update service st_web: rpc error: code = Unknown desc = update out of sequence"
            )
        );

        let deploy = Command::Atomic(vec![
            Command::PutNetwork {
                network: network("net1", "st_default"),
            },
            put(service("svc1", "st_web"), Some(3)),
            put(service("svc2", "st_db"), None),
            // Only possible once the first command has taken effect.
            Command::RemoveNetwork {
                network_id: "net1".into(),
            },
            Command::PutNetwork {
                network: network("net1", "st_default"),
            },
        ]);
        let r = s.apply(&deploy, 5);
        assert_eq!(r.first_error(), None);
        assert_eq!(r.batch.len(), 5);
        assert_eq!(s.networks["net1"].name, "st_default");
        assert_eq!(s.services["svc1"].version, 5);
        assert_eq!(s.services["svc2"].version, 5);
        assert_eq!(s.nodes, before.nodes);
    }

    #[test]
    fn second_init_and_unknown_node_are_errors() {
        let mut s = ClusterState::default();
        let init = Command::Init {
            cluster: Box::new(cluster()),
            node: node("aaa111", "vm1", Role::Manager),
        };
        assert!(s.apply(&init, 1).error.is_none());
        assert!(s.apply(&init, 2).error.is_some());
        let r = s.apply(
            &Command::RemoveNode {
                node_id: "zzz".into(),
            },
            3,
        );
        assert_eq!(r.error.as_deref(), Some("node zzz not found"));
    }

    #[test]
    fn resolve_by_id_prefix_and_hostname() {
        let mut s = ClusterState::default();
        s.apply(
            &Command::Init {
                cluster: Box::new(cluster()),
                node: node("abc111", "vm1", Role::Manager),
            },
            1,
        );
        s.apply(
            &Command::AddNode {
                node: node("abd222", "vm2", Role::Worker),
            },
            2,
        );
        assert_eq!(s.resolve_node("vm2").unwrap().id, "abd222");
        assert_eq!(s.resolve_node("abc").unwrap().id, "abc111");
        assert_eq!(s.resolve_node("abc111").unwrap().id, "abc111");
        assert_eq!(
            s.resolve_node("ab").unwrap_err(),
            "node ab is ambiguous (2 matches found)"
        );
        assert_eq!(s.resolve_node("vm9").unwrap_err(), "node vm9 not found");
    }

    /// An empty reference is a prefix of every ID but names nothing: with one node,
    /// service and task, `node update ""`, `service rm ""` and `service scale =0` must not
    /// pick them.
    #[test]
    fn empty_reference_is_not_found() {
        let mut s = ClusterState::default();
        s.apply(
            &Command::Init {
                cluster: Box::new(cluster()),
                node: node("abc111", "vm1", Role::Manager),
            },
            1,
        );
        let now = Utc::now();
        s.services.insert("svc111".into(), service("svc111", "web"));
        let svc = s.services["svc111"].clone();
        let task = crate::orchestrator::new_task(&svc, 1, "", now);
        s.tasks.insert(task.id.clone(), task);
        assert_eq!(s.resolve_node("").unwrap_err(), "node  not found");
        assert_eq!(s.resolve_service("").unwrap_err(), "service  not found");
        assert_eq!(s.resolve_task("").unwrap_err(), "task  not found");
    }
}
