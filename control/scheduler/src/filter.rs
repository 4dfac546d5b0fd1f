//! swarmkit's filter pipeline (`manager/scheduler/filter.go`, `pipeline.go`) and docker's explanation when no node passes.

use shoal_spec::NodeFacts;

use crate::{Availability, NodeState, ServiceReq};

/// The filters that can fail, in pipeline order. Platform is checked between Constraint and
/// HostPort but never fails: every node runs the one platform shoal builds images for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Filter {
    Ready,
    Resource,
    Constraint,
    HostPort,
    MaxReplicas,
}

const PIPELINE: [Filter; 5] = [
    Filter::Ready,
    Filter::Resource,
    Filter::Constraint,
    Filter::HostPort,
    Filter::MaxReplicas,
];

impl Filter {
    /// docker's text for `failures` nodes failing this filter.
    fn explain(self, failures: u32) -> String {
        let nodes = if failures == 1 {
            "1 node".to_string()
        } else {
            format!("{failures} nodes")
        };
        match self {
            Filter::Ready => format!("{nodes} not available for new tasks"),
            Filter::Resource => format!("insufficient resources on {nodes}"),
            Filter::Constraint => format!("scheduling constraints not satisfied on {nodes}"),
            Filter::HostPort => format!("host-mode port already in use on {nodes}"),
            Filter::MaxReplicas => "max replicas per node limit exceed".to_string(),
        }
    }
}

/// The first filter the node fails for one more task of the service, or None if it passes.
/// `service_tasks` is the service's task count on the node; with `ignore_one_task`, one of
/// those tasks (and its reservation) is left out.
pub(crate) fn first_failure(
    node: &NodeState,
    req: &ServiceReq,
    service_tasks: u32,
    ignore_one_task: bool,
) -> Option<Filter> {
    let info = &node.info;
    if !info.ready || info.availability != Availability::Active {
        return Some(Filter::Ready);
    }
    // swarmkit enables the resource filter only for tasks that reserve something.
    if req.reservation_cpus != 0 || req.reservation_memory != 0 {
        let (mut reserved_cpus, mut reserved_memory) = (node.reserved_cpus, node.reserved_memory);
        // Saturating: a reservation stored before specs were validated may be huge or
        // negative, and an overflow here would panic the leader's orchestrator.
        if ignore_one_task {
            reserved_cpus = reserved_cpus.saturating_sub(req.reservation_cpus);
            reserved_memory = reserved_memory.saturating_sub(req.reservation_memory);
        }
        if req.reservation_cpus > info.nano_cpus.saturating_sub(reserved_cpus)
            || req.reservation_memory > info.memory_bytes.saturating_sub(reserved_memory)
        {
            return Some(Filter::Resource);
        }
    }
    if !req.constraints.is_empty() {
        let facts = NodeFacts {
            id: &info.id,
            hostname: &info.hostname,
            addr: &info.addr,
            role: &info.role,
            os: &info.os,
            arch: &info.arch,
            labels: &info.labels,
        };
        if !req.constraints.iter().all(|c| c.matches(&facts)) {
            return Some(Filter::Constraint);
        }
    }
    if !req.host_ports.is_empty() && !node.host_ports.is_empty() {
        let taken = req.host_ports.iter().any(|p| {
            node.host_ports.get(p).is_some_and(|holders| {
                // The task being checked holds its own ports: one of its service's
                // entries is its own.
                let own = ignore_one_task && holders.iter().any(|s| s == req.service_id);
                holders.len() > usize::from(own)
            })
        });
        if taken {
            return Some(Filter::HostPort);
        }
    }
    if req.max_replicas > 0 {
        let counted = if ignore_one_task {
            service_tasks.saturating_sub(1)
        } else {
            service_tasks
        };
        if u64::from(counted) >= req.max_replicas {
            return Some(Filter::MaxReplicas);
        }
    }
    None
}

/// `no suitable node (<explain>)`: each node counts against the first filter it fails, and
/// the filters' texts are joined with "; ", most failures first (pipeline order on ties).
/// `service_tasks` is indexed like `nodes`.
pub(crate) fn explain(nodes: &[NodeState], req: &ServiceReq, service_tasks: &[u32]) -> String {
    let mut failures = [0u32; PIPELINE.len()];
    for (node, &count) in nodes.iter().zip(service_tasks) {
        if let Some(f) = first_failure(node, req, count, false) {
            failures[f as usize] += 1;
        }
    }
    let mut order = PIPELINE;
    order.sort_by_key(|f| std::cmp::Reverse(failures[*f as usize]));
    let texts: Vec<String> = order
        .iter()
        .filter(|f| failures[**f as usize] > 0)
        .map(|f| f.explain(failures[*f as usize]))
        .collect();
    if texts.is_empty() {
        "no suitable node".to_string()
    } else {
        format!("no suitable node ({})", texts.join("; "))
    }
}
