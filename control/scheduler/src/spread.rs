//! Placement preferences as swarmkit's decision tree (`nodeset.go` `tree`), with heaps so each placement costs O(depth · log nodes).
//!
//! Level k of the tree groups nodes by the value of the k-th spread label (a node without the
//! label has the value "", as in swarmkit). A group counts the service's tasks on all its
//! nodes, eligible or not, but only groups with an eligible node are in the tree. A placement
//! descends into the child with the fewest tasks (ties: the smaller label value) down to a
//! leaf, whose heap gives the node with the fewest tasks of the service, then the fewest
//! tasks, then the smallest ID. With no preferences the tree is a single leaf.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use crate::NodeState;

/// A node in a leaf's heap; fields in order of preference (smaller is better).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct NodeKey {
    /// Tasks of the service being placed on the node.
    pub service_tasks: u32,
    /// Tasks of all services on the node.
    pub tasks: u32,
    /// Index into the ID-sorted nodes.
    pub node: u32,
}

#[derive(Debug, Default)]
struct Group {
    parent: u32,
    /// Tasks of the service on the group's nodes.
    tasks: u64,
    /// Orders siblings by label value.
    rank: u32,
    /// Inner groups: children with an eligible node, keyed by (tasks, rank, index).
    children: BinaryHeap<Reverse<(u64, u32, u32)>>,
    /// Leaves: eligible nodes.
    nodes: BinaryHeap<Reverse<NodeKey>>,
}

#[derive(Debug)]
pub(crate) struct Tree {
    /// Group 0 is the root.
    groups: Vec<Group>,
    depth: usize,
    /// Groups popped on the way down by the last `pick`, root's child first.
    path: Vec<u32>,
}

impl Tree {
    /// The tree over the `eligible` nodes. `counts` holds the service's
    /// tasks per node (only nodes that have some); `service_tasks` the same, dense.
    pub(crate) fn build(
        nodes: &[NodeState],
        eligible: &[u32],
        preferences: &[String],
        counts: &HashMap<u32, u32>,
        service_tasks: &[u32],
    ) -> Tree {
        let labels: Vec<&str> = preferences.iter().filter_map(|p| spread_label(p)).collect();
        let depth = labels.len();
        let value = |node: u32, level: usize| label_value(nodes, labels[level], node);
        let key = |node: u32| NodeKey {
            service_tasks: service_tasks[node as usize],
            tasks: nodes[node as usize].tasks,
            node,
        };

        let mut groups = vec![Group::default()];
        if depth == 0 {
            groups[0].nodes = eligible.iter().map(|&n| Reverse(key(n))).collect();
            return Tree {
                groups,
                depth,
                path: Vec::new(),
            };
        }

        let mut by_value: HashMap<(u32, &str), u32> = HashMap::new();
        let mut values = vec![""];
        for &n in eligible.iter() {
            let mut g = 0u32;
            for level in 0..depth {
                let v = value(n, level);
                g = *by_value.entry((g, v)).or_insert_with(|| {
                    groups.push(Group {
                        parent: g,
                        ..Group::default()
                    });
                    values.push(v);
                    crate::index(groups.len() - 1)
                });
            }
            groups[g as usize].nodes.push(Reverse(key(n)));
        }
        // Siblings tie in label-value order.
        let mut order: Vec<u32> = (1..crate::index(groups.len())).collect();
        order.sort_by_key(|&g| (groups[g as usize].parent, values[g as usize]));
        for (rank, &g) in order.iter().enumerate() {
            groups[g as usize].rank = crate::index(rank);
        }

        // Every task of the service counts in its node's groups, eligible node or not.
        for (&n, &c) in counts {
            let mut g = 0u32;
            for level in 0..depth {
                let Some(&child) = by_value.get(&(g, value(n, level))) else {
                    break;
                };
                groups[child as usize].tasks += u64::from(c);
                g = child;
            }
        }
        for g in 1..groups.len() {
            let Group {
                parent,
                tasks,
                rank,
                ..
            } = groups[g];
            groups[parent as usize]
                .children
                .push(Reverse((tasks, rank, crate::index(g))));
        }
        Tree {
            groups,
            depth,
            path: Vec::with_capacity(depth),
        }
    }

    /// Take the best eligible node out of the tree, or None if no node is eligible. Follow
    /// with `put_back` before the next `pick`.
    pub(crate) fn pick(&mut self) -> Option<NodeKey> {
        self.path.clear();
        let mut g = 0;
        for _ in 0..self.depth {
            // Only groups with an eligible node are in a heap: below the root this succeeds.
            let Reverse((_, _, child)) = self.groups[g].children.pop()?;
            self.path.push(child);
            g = child as usize;
        }
        self.groups[g].nodes.pop().map(|Reverse(key)| key)
    }

    /// After a task was placed on the picked node: count it in the node's groups, and return
    /// the node with its new key, or None if it takes no more tasks of the service.
    pub(crate) fn put_back(&mut self, node: Option<NodeKey>) {
        let leaf = self.path.last().map_or(0, |&g| g as usize);
        if let Some(key) = node {
            self.groups[leaf].nodes.push(Reverse(key));
        }
        for &g in self.path.iter().rev() {
            let group = &mut self.groups[g as usize];
            group.tasks += 1;
            if group.nodes.is_empty() && group.children.is_empty() {
                continue;
            }
            let (parent, tasks, rank) = (group.parent, group.tasks, group.rank);
            self.groups[parent as usize]
                .children
                .push(Reverse((tasks, rank, g)));
        }
    }
}

/// The node's value of a label, "" if it has none.
fn label_value<'n>(nodes: &'n [NodeState], label: &str, node: u32) -> &'n str {
    nodes[node as usize]
        .info
        .labels
        .get(label)
        .map_or("", String::as_str)
}

/// The label a spread descriptor names (`node.labels.zone` → `zone`); swarmkit skips others.
fn spread_label(descriptor: &str) -> Option<&str> {
    const PREFIX: &str = "node.labels.";
    match descriptor.get(..PREFIX.len()) {
        Some(p) if p.eq_ignore_ascii_case(PREFIX) && descriptor.len() > PREFIX.len() => {
            Some(&descriptor[PREFIX.len()..])
        }
        _ => None,
    }
}
