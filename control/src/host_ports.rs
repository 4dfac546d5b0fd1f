//! Host-mode ports without a published port (`--publish mode=host,target=80`): each task
//! gets its own port on its node, from the node's ephemeral range, as docker's engine
//! picks one. The leader picks it when it places the task and records it in the task's
//! host ports (shown as the task's `Status.PortStatus`), so the choice is in Raft: it
//! outlives daemon restarts and leader changes, and the node's load balancer serves it
//! like any other host-mode port.
//!
//! A picked port is never one another live task holds on that node (in either way), nor
//! one any service publishes in ingress mode (the mesh serves those on every node) or asks
//! for in host mode (kept for the services that name it).

use std::collections::{HashMap, HashSet};

use shoal_spec::{PortConfig, Protocol, PublishMode, ServiceSpec};

use crate::services::{node_swarm_ports, TaskRecord};

/// Linux's default `net.ipv4.ip_local_port_range`: for nodes that did not report theirs.
pub const DEFAULT_EPHEMERAL_PORTS: (u16, u16) = (32768, 60999);

/// `ip_local_port_range`'s text (`32768\t60999\n`) as (first, last).
pub fn parse_port_range(text: &str) -> Option<(u16, u16)> {
    let mut words = text.split_whitespace();
    let first: u16 = words.next()?.parse().ok()?;
    let last: u16 = words.next()?.parse().ok()?;
    (words.next().is_none() && first > 0 && first <= last).then_some((first, last))
}

/// Every port of a node's range is taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no free host port for {target}/{protocol} on node {node} (range {first}-{last} in use)")]
pub struct NoFreePort {
    pub node: String,
    pub target: u16,
    pub protocol: &'static str,
    pub first: u16,
    pub last: u16,
}

/// What is taken where, and the picks made so far.
#[derive(Debug, Default)]
pub struct PortPicker {
    /// Host ports held on each node, by protocol: the live tasks' host-mode ports and
    /// the node's own swarm port.
    held: HashMap<(String, Protocol), HashSet<u16>>,
    /// Ports no pick may take on any node.
    reserved: HashSet<(u16, Protocol)>,
}

impl PortPicker {
    /// A picker for a cluster of `services`, whose live (not yet ended) tasks are `live`,
    /// whose `nodes` are each (node id, its swarm port if known), and whose data path
    /// port is `data_path_port`.
    pub fn new<'a>(
        services: impl IntoIterator<Item = &'a ServiceSpec>,
        live: impl IntoIterator<Item = &'a TaskRecord>,
        nodes: impl IntoIterator<Item = (&'a str, Option<u16>)>,
        data_path_port: u16,
    ) -> Self {
        let mut picker = PortPicker::default();
        // Those of every node (whatever node a pick is for), then each node's own.
        for (p, protocol, _) in node_swarm_ports(None, data_path_port) {
            picker.reserved.insert((p, protocol));
        }
        for (node, listen) in nodes {
            for (p, protocol, _) in node_swarm_ports(listen, data_path_port) {
                picker
                    .held
                    .entry((node.to_string(), protocol))
                    .or_default()
                    .insert(p);
            }
        }
        for spec in services {
            let ports = spec.endpoint_spec.iter().flat_map(|e| e.ports.iter());
            for p in ports {
                if let Some(pp) = p.published_port {
                    picker.reserved.insert((pp, p.protocol));
                }
            }
        }
        for t in live {
            picker.hold(&t.node_id, &t.host_ports);
        }
        picker
    }

    /// Count `ports` (those with a published port) as held on `node`.
    pub fn hold(&mut self, node: &str, ports: &[PortConfig]) {
        if node.is_empty() {
            return;
        }
        for p in ports.iter().filter(|p| p.publish_mode == PublishMode::Host) {
            if let Some(pp) = p.published_port {
                self.held
                    .entry((node.to_string(), p.protocol))
                    .or_default()
                    .insert(pp);
            }
        }
    }

    /// Give each of `ports` without a published port one of `range` free on `node`, and
    /// hold it there. All or nothing: on error, `ports` and the picker are unchanged.
    pub fn fill(
        &mut self,
        node: &str,
        range: (u16, u16),
        ports: &mut [PortConfig],
    ) -> Result<(), NoFreePort> {
        let mut picked: Vec<(usize, u16)> = Vec::new();
        for (i, p) in ports.iter().enumerate() {
            if p.publish_mode != PublishMode::Host || p.published_port.is_some() {
                continue;
            }
            let taken_here = |port: u16| {
                picked
                    .iter()
                    .any(|&(j, q)| q == port && ports[j].protocol == p.protocol)
            };
            let free = (range.0..=range.1).find(|&port| {
                !self.reserved.contains(&(port, p.protocol))
                    && !self
                        .held
                        .get(&(node.to_string(), p.protocol))
                        .is_some_and(|h| h.contains(&port))
                    && !taken_here(port)
            });
            match free {
                Some(port) => picked.push((i, port)),
                None => {
                    return Err(NoFreePort {
                        node: node.to_string(),
                        target: p.target_port,
                        protocol: p.protocol.as_str(),
                        first: range.0,
                        last: range.1,
                    })
                }
            }
        }
        for (i, port) in picked {
            ports[i].published_port = Some(port);
        }
        self.hold(node, ports);
        Ok(())
    }
}

/// Whether a task's host-mode ports are what its service's spec asks for now: the same
/// ports in the same order, a port the spec leaves unpublished matching whatever port
/// the task was given.
pub fn match_spec(task: &[PortConfig], spec: &[PortConfig]) -> bool {
    task.len() == spec.len()
        && task.iter().zip(spec).all(|(t, s)| {
            if s.published_port.is_some() {
                t == s
            } else {
                let mut t = t.clone();
                t.published_port = None;
                &t == s
            }
        })
}

#[cfg(test)]
mod tests {
    use shoal_spec::EndpointSpec;

    use super::*;

    fn host(target: u16, published: Option<u16>, protocol: Protocol) -> PortConfig {
        PortConfig {
            protocol,
            target_port: target,
            published_port: published,
            publish_mode: PublishMode::Host,
            ..Default::default()
        }
    }

    fn dynamic(target: u16) -> PortConfig {
        host(target, None, Protocol::Tcp)
    }

    fn spec(ports: Vec<PortConfig>) -> ServiceSpec {
        ServiceSpec {
            endpoint_spec: Some(EndpointSpec {
                ports,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn task(node: &str, ports: Vec<PortConfig>) -> TaskRecord {
        let now = chrono::Utc::now();
        TaskRecord {
            id: format!("t-{node}"),
            version: 0,
            created_at: now,
            updated_at: now,
            service_id: "s".into(),
            service_name: "web".into(),
            slot: 1,
            node_id: node.into(),
            spec: Default::default(),
            spec_version: 0,
            status: Default::default(),
            desired_state: shoal_spec::TaskState::Running,
            health: None,
            networks: Vec::new(),
            host_ports: ports,
            by_update: false,
            running_at: None,
        }
    }

    const RANGE: (u16, u16) = (32768, 32775);

    fn published(ports: &[PortConfig]) -> Vec<Option<u16>> {
        ports.iter().map(|p| p.published_port).collect()
    }

    #[test]
    fn parses_the_kernels_range() {
        assert_eq!(parse_port_range("32768\t60999\n"), Some((32768, 60999)));
        assert_eq!(parse_port_range("1024 1024"), Some((1024, 1024)));
        for bad in [
            "",
            "32768",
            "60999 32768",
            "0 10",
            "1 2 3",
            "a b",
            "1 70000",
        ] {
            assert_eq!(parse_port_range(bad), None, "{bad:?}");
        }
    }

    /// Two tasks on one node never share a port; tasks on different nodes may.
    #[test]
    fn tasks_on_one_node_get_different_ports() {
        let mut p = PortPicker::new([], [], [], 4789);
        let mut a = vec![dynamic(80)];
        let mut b = vec![dynamic(80)];
        let mut c = vec![dynamic(80)];
        p.fill("n1", RANGE, &mut a).unwrap();
        p.fill("n1", RANGE, &mut b).unwrap();
        p.fill("n2", RANGE, &mut c).unwrap();
        assert_eq!(published(&a), [Some(32768)]);
        assert_eq!(published(&b), [Some(32769)]);
        assert_eq!(published(&c), [Some(32768)]);
        // Two unpublished ports of one task, and TCP and UDP counted apart.
        let mut d = vec![dynamic(80), dynamic(443), host(53, None, Protocol::Udp)];
        p.fill("n1", RANGE, &mut d).unwrap();
        assert_eq!(published(&d), [Some(32770), Some(32771), Some(32768)]);
    }

    /// Ports of live tasks (given or picked), every ingress port and every port a service
    /// names in host mode are skipped; the node's own range is used.
    #[test]
    fn skips_what_is_held_or_reserved() {
        let services = [
            spec(vec![PortConfig {
                published_port: Some(32768),
                target_port: 80,
                ..Default::default()
            }]),
            spec(vec![host(80, Some(32769), Protocol::Tcp)]),
        ];
        let live = [
            task("n1", vec![host(80, Some(32770), Protocol::Tcp)]),
            task("n2", vec![host(80, Some(32771), Protocol::Tcp)]),
        ];
        let mut p = PortPicker::new(&services, &live, [], 4789);
        let mut a = vec![dynamic(80)];
        p.fill("n1", RANGE, &mut a).unwrap();
        assert_eq!(published(&a), [Some(32771)]);
        let mut b = vec![dynamic(80)];
        p.fill("n2", RANGE, &mut b).unwrap();
        assert_eq!(published(&b), [Some(32770)]);
        let mut c = vec![host(9, None, Protocol::Udp)];
        p.fill("n1", (4789, 4790), &mut c).unwrap();
        assert_eq!(published(&c), [Some(4790)], "the VXLAN port is the node's");
        let mut d = vec![dynamic(80)];
        p.fill("n3", (40000, 40000), &mut d).unwrap();
        assert_eq!(published(&d), [Some(40000)]);
    }

    /// A node's own swarm port (TCP, each node's) and the data path and probe ports
    /// (UDP, every node's) are never picked, however its range lies.
    #[test]
    fn skips_the_swarms_own_ports() {
        let mut p = PortPicker::new([], [], [("n1", Some(32768)), ("n2", None)], 5789);
        let mut a = vec![dynamic(80)];
        p.fill("n1", RANGE, &mut a).unwrap();
        assert_eq!(published(&a), [Some(32769)], "n1's swarm port");
        let mut b = vec![dynamic(80)];
        p.fill("n2", RANGE, &mut b).unwrap();
        assert_eq!(published(&b), [Some(32768)], "n1's port is free on n2");
        let mut c = vec![host(53, None, Protocol::Udp)];
        p.fill("n1", (32768, 32768), &mut c).unwrap();
        assert_eq!(published(&c), [Some(32768)], "TCP only");
        for (node, range) in [("n1", (5789, 5790)), ("n3", (7946, 7947))] {
            let mut d = vec![host(53, None, Protocol::Udp)];
            p.fill(node, range, &mut d).unwrap();
            assert_eq!(published(&d), [Some(range.1)], "{node}");
        }
    }

    /// A given port is kept; when the range is used up, nothing changes and the error says so.
    #[test]
    fn all_or_nothing_when_the_range_is_used_up() {
        let mut p = PortPicker::new([], [], [], 4789);
        let mut fixed = vec![host(80, Some(8081), Protocol::Tcp)];
        p.fill("n1", RANGE, &mut fixed).unwrap();
        assert_eq!(published(&fixed), [Some(8081)]);
        let mut first = vec![dynamic(80)];
        p.fill("n1", (32768, 32769), &mut first).unwrap();
        let mut two = vec![dynamic(80), dynamic(81)];
        let e = p.fill("n1", (32768, 32769), &mut two).unwrap_err();
        assert_eq!(
            e.to_string(),
            "no free host port for 81/tcp on node n1 (range 32768-32769 in use)"
        );
        assert_eq!(published(&two), [None, None]);
        let mut one = vec![dynamic(80)];
        p.fill("n1", (32768, 32769), &mut one).unwrap();
        assert_eq!(
            published(&one),
            [Some(32769)],
            "the failed fill held nothing"
        );
    }

    #[test]
    fn a_picked_port_matches_the_unpublished_spec_port() {
        let spec = [dynamic(80), host(53, Some(5353), Protocol::Udp)];
        let task = [
            host(80, Some(32768), Protocol::Tcp),
            host(53, Some(5353), Protocol::Udp),
        ];
        assert!(match_spec(&task, &spec));
        assert!(match_spec(&spec, &spec), "not yet placed");
        assert!(!match_spec(&task[..1], &spec));
        assert!(!match_spec(
            &[host(81, Some(32768), Protocol::Tcp)],
            &spec[..1]
        ));
        assert!(!match_spec(
            &[host(53, Some(5354), Protocol::Udp)],
            &spec[1..]
        ));
    }
}
