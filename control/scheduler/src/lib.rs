//! swarmkit's scheduler as a pure library: docker's node filters and their explanation, then spread placement.
//!
//! The leader's orchestrator builds a [`Scheduler`] from the nodes, records the tasks that
//! already run with [`Scheduler::add_existing`], and asks for nodes with
//! [`Scheduler::place_many`]. Placement follows swarmkit (`manager/scheduler`): a node must
//! pass the filters Ready, Resource, Constraint, Platform, HostPort and MaxReplicas, in that
//! order (HostPort: a port published in host mode is held by one task per node);
//! among the nodes that pass, placement preferences come first (the label-value group with
//! the fewest tasks of the service, level by level), then the fewest tasks of the service on
//! the node, then the fewest tasks in total, then the node ID.

use std::collections::HashMap;

pub use shoal_spec::{Availability, AvailabilityError};
use shoal_spec::{Constraint, Labels, Protocol};

mod filter;
mod spread;

use spread::{NodeKey, Tree};

/// What the scheduler knows of a node.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeInfo {
    pub id: String,
    pub hostname: String,
    /// The node's address as the managers see it (`Status.Addr`), for `node.ip`.
    pub addr: String,
    /// `worker` or `manager`.
    pub role: String,
    pub os: String,
    pub arch: String,
    pub labels: Labels,
    /// `Status.State == ready`.
    pub ready: bool,
    pub availability: Availability,
    /// Capacity the node reported (`Description.Resources`).
    pub nano_cpus: i64,
    pub memory_bytes: i64,
}

/// A port published in host mode: on a node, one task at a time may hold it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct HostPort {
    pub protocol: Protocol,
    pub port: u16,
}

/// One service's placement rules, as the scheduler needs them.
#[derive(Clone, Copy, Debug, Default)]
pub struct ServiceReq<'a> {
    pub service_id: &'a str,
    /// `Placement.Constraints`, parsed.
    pub constraints: &'a [Constraint],
    /// Spread descriptors of `Placement.Preferences`, outermost first, e.g. `node.labels.zone`.
    /// Descriptors other than `node.labels.<name>` are ignored, as swarmkit does.
    pub preferences: &'a [String],
    /// `Placement.MaxReplicas`: tasks of the service per node; 0 is unlimited.
    pub max_replicas: u64,
    /// `Resources.Reservations` of one task.
    pub reservation_cpus: i64,
    pub reservation_memory: i64,
    /// Ports one task publishes in host mode (`PublishMode: host` with a published port).
    pub host_ports: &'a [HostPort],
}

/// A node and what the tasks placed on it hold.
#[derive(Debug)]
struct NodeState {
    info: NodeInfo,
    /// Tasks of every service on the node.
    tasks: u32,
    reserved_cpus: i64,
    reserved_memory: i64,
    /// Host-mode ports in use, each with the services of the tasks holding it (one entry
    /// per task). Empty on nodes without host-mode tasks, so it costs nothing otherwise.
    host_ports: HashMap<HostPort, Vec<String>>,
}

impl NodeState {
    fn hold(&mut self, service_id: &str, ports: &[HostPort]) {
        for p in ports {
            self.host_ports
                .entry(*p)
                .or_default()
                .push(service_id.to_string());
        }
    }

    fn release(&mut self, service_id: &str, ports: &[HostPort]) {
        for p in ports {
            if let Some(holders) = self.host_ports.get_mut(p) {
                if let Some(i) = holders.iter().position(|s| s == service_id) {
                    holders.swap_remove(i);
                }
                if holders.is_empty() {
                    self.host_ports.remove(p);
                }
            }
        }
    }
}

/// The cluster as the scheduler sees it: nodes and the tasks placed on them.
#[derive(Debug)]
pub struct Scheduler {
    /// Sorted by node ID: a node's index orders ties.
    nodes: Vec<NodeState>,
    by_id: HashMap<String, u32>,
    /// Tasks per node (by index) of each service; only nodes with tasks have an entry.
    services: HashMap<String, HashMap<u32, u32>>,
    /// Tasks per node of the service being placed, dense; all zero between calls.
    service_tasks: Vec<u32>,
    /// Nodes that pass the filters, reused across calls.
    eligible: Vec<u32>,
}

impl Scheduler {
    /// A scheduler over these nodes, with no tasks yet. Of nodes sharing an ID, the first counts.
    pub fn new(mut nodes: Vec<NodeInfo>) -> Self {
        nodes.sort_by(|a, b| a.id.cmp(&b.id));
        nodes.dedup_by(|later, first| later.id == first.id);
        let by_id = nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (n.id.clone(), index(i)))
            .collect();
        let count = nodes.len();
        Scheduler {
            nodes: nodes
                .into_iter()
                .map(|info| NodeState {
                    info,
                    tasks: 0,
                    reserved_cpus: 0,
                    reserved_memory: 0,
                    host_ports: HashMap::new(),
                })
                .collect(),
            by_id,
            services: HashMap::new(),
            service_tasks: vec![0; count],
            eligible: Vec::with_capacity(count),
        }
    }

    /// Record an existing (non-terminal) task of `service_id` on `node_id`: it counts toward
    /// spread, max replicas and the node's reservations, and holds its host-mode ports there.
    /// Tasks on unknown nodes are ignored.
    pub fn add_existing(
        &mut self,
        service_id: &str,
        node_id: &str,
        cpus: i64,
        memory: i64,
        host_ports: &[HostPort],
    ) {
        let Some(&i) = self.by_id.get(node_id) else {
            return;
        };
        let node = &mut self.nodes[i as usize];
        node.tasks += 1;
        node.reserved_cpus = node.reserved_cpus.saturating_add(cpus);
        node.reserved_memory = node.reserved_memory.saturating_add(memory);
        node.hold(service_id, host_ports);
        *service_counts(&mut self.services, service_id)
            .entry(i)
            .or_insert(0) += 1;
    }

    /// Forget a task recorded with [`Scheduler::add_existing`] (it is being stopped, e.g. by
    /// a stop-first update): its node counts, reservations and host-mode ports are released.
    pub fn remove_existing(
        &mut self,
        service_id: &str,
        node_id: &str,
        cpus: i64,
        memory: i64,
        host_ports: &[HostPort],
    ) {
        let Some(&i) = self.by_id.get(node_id) else {
            return;
        };
        let node = &mut self.nodes[i as usize];
        node.tasks = node.tasks.saturating_sub(1);
        node.reserved_cpus = node.reserved_cpus.saturating_sub(cpus);
        node.reserved_memory = node.reserved_memory.saturating_sub(memory);
        node.release(service_id, host_ports);
        if let Some(counts) = self.services.get_mut(service_id) {
            if let Some(c) = counts.get_mut(&i) {
                *c = c.saturating_sub(1);
                if *c == 0 {
                    counts.remove(&i);
                }
            }
        }
    }

    /// Place one task: the chosen node's ID (the task now counts there), or docker's
    /// explanation, e.g. `no suitable node (scheduling constraints not satisfied on 3 nodes)`.
    pub fn place(&mut self, req: &ServiceReq) -> Result<String, String> {
        self.place_many(req, 1)
            .pop()
            .expect("place_many returns one result per task")
    }

    /// Place `n` tasks of one service, one result per task, exactly as `n` calls of
    /// [`Scheduler::place`] would; the filters run once per node, not once per task.
    pub fn place_many(&mut self, req: &ServiceReq, n: usize) -> Vec<Result<String, String>> {
        let mut results = Vec::with_capacity(n);
        if n == 0 {
            return results;
        }
        let counts = service_counts(&mut self.services, req.service_id);
        for (&i, &c) in counts.iter() {
            self.service_tasks[i as usize] = c;
        }

        self.eligible.clear();
        for (i, node) in self.nodes.iter().enumerate() {
            if filter::first_failure(node, req, self.service_tasks[i], false).is_none() {
                self.eligible.push(index(i));
            }
        }
        let mut tree = Tree::build(
            &self.nodes,
            &self.eligible,
            req.preferences,
            counts,
            &self.service_tasks,
        );

        while results.len() < n {
            let Some(key) = tree.pick() else {
                let why = filter::explain(&self.nodes, req, &self.service_tasks);
                results.resize(n, Err(why));
                break;
            };
            let i = key.node as usize;
            let node = &mut self.nodes[i];
            node.tasks += 1;
            node.reserved_cpus = node.reserved_cpus.saturating_add(req.reservation_cpus);
            node.reserved_memory = node.reserved_memory.saturating_add(req.reservation_memory);
            node.hold(req.service_id, req.host_ports);
            self.service_tasks[i] += 1;
            *counts.entry(key.node).or_insert(0) += 1;
            results.push(Ok(node.info.id.clone()));
            // Ready and constraints cannot change within a call; resources, host ports and
            // max replicas can.
            let again = filter::first_failure(node, req, self.service_tasks[i], false).is_none();
            tree.put_back(again.then_some(NodeKey {
                service_tasks: key.service_tasks + 1,
                tasks: node.tasks,
                node: key.node,
            }));
        }

        for &i in counts.keys() {
            self.service_tasks[i as usize] = 0;
        }
        results
    }

    /// Would this node accept a task of the service right now? Spread is not considered.
    /// With `ignore_count_of_one_task`, one task of the service already counted on the node
    /// (the one being checked) is left out of its task count, reservations and host ports.
    /// Paused nodes fail the Ready filter like drained ones: a caller that keeps tasks on a
    /// paused node, as swarmkit does, checks availability first.
    pub fn fits(&self, req: &ServiceReq, node_id: &str, ignore_count_of_one_task: bool) -> bool {
        let Some(&i) = self.by_id.get(node_id) else {
            return false;
        };
        let count = self
            .services
            .get(req.service_id)
            .and_then(|m| m.get(&i))
            .copied()
            .unwrap_or(0);
        filter::first_failure(
            &self.nodes[i as usize],
            req,
            count,
            ignore_count_of_one_task,
        )
        .is_none()
    }
}

fn service_counts<'m>(
    services: &'m mut HashMap<String, HashMap<u32, u32>>,
    service_id: &str,
) -> &'m mut HashMap<u32, u32> {
    if !services.contains_key(service_id) {
        services.insert(service_id.to_string(), HashMap::new());
    }
    services.get_mut(service_id).expect("inserted above")
}

/// Node indexes are u32 to keep heap entries small; a cluster has far fewer nodes.
fn index(i: usize) -> u32 {
    u32::try_from(i).expect("fewer than 2^32 nodes")
}
