//! Placement throughput on a simulated 1,000-node cluster, against a naive per-task scan measured in the same run.
//!
//! 1,000 nodes (zone label a/b/c/d, os=linux, 5% drained, 16 CPUs and 64 GiB each) and
//! 1,000 services of 100 tasks: a fifth each unconstrained, `node.labels.zone == a`,
//! `node.labels.zone != b`, max 5 replicas per node, and spread over `node.labels.zone`;
//! every tenth service reserves 0.1 CPU and 128 MiB per task.

use std::collections::HashMap;
use std::time::Instant;

use shoal_scheduler::{Availability, NodeInfo, Scheduler, ServiceReq};
use shoal_spec::{Constraint, NodeFacts};

const NODES: usize = 1_000;
const SERVICES: usize = 1_000;
const TASKS_PER_SERVICE: usize = 100;
const CPU: i64 = 1_000_000_000;
const MIB: i64 = 1 << 20;

/// xorshift64*: deterministic input without a crate.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    }

    /// A swarmkit-style ID: 25 base36 characters.
    fn id(&mut self) -> String {
        const DIGITS: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
        (0..25)
            .map(|_| DIGITS[self.below(36) as usize] as char)
            .collect()
    }
}

struct Service {
    id: String,
    constraints: Vec<Constraint>,
    preferences: Vec<String>,
    max_replicas: u64,
    cpus: i64,
    memory: i64,
}

impl Service {
    fn req(&self) -> ServiceReq<'_> {
        ServiceReq {
            service_id: &self.id,
            constraints: &self.constraints,
            preferences: &self.preferences,
            max_replicas: self.max_replicas,
            reservation_cpus: self.cpus,
            reservation_memory: self.memory,
            host_ports: &[],
        }
    }
}

fn cluster() -> (Vec<NodeInfo>, Vec<Service>) {
    let mut rng = Rng(0x5eed);
    let nodes = (0..NODES)
        .map(|i| NodeInfo {
            id: rng.id(),
            hostname: format!("node-{i:04}"),
            addr: String::new(),
            role: "worker".into(),
            os: "linux".into(),
            arch: "x86_64".into(),
            labels: [
                (
                    "zone".to_string(),
                    ["a", "b", "c", "d"][rng.below(4) as usize].to_string(),
                ),
                ("os".to_string(), "linux".to_string()),
            ]
            .into(),
            ready: true,
            availability: if rng.below(100) < 5 {
                Availability::Drain
            } else {
                Availability::Active
            },
            nano_cpus: 16 * CPU,
            memory_bytes: 64 * 1024 * MIB,
        })
        .collect();
    let services = (0..SERVICES)
        .map(|i| {
            let constraint = match i % 5 {
                1 => Some("node.labels.zone == a"),
                2 => Some("node.labels.zone != b"),
                _ => None,
            };
            let reserves = i % 10 == 0;
            Service {
                id: rng.id(),
                constraints: constraint
                    .map(|c| vec![Constraint::parse(c).expect("valid")])
                    .unwrap_or_default(),
                preferences: if i % 5 == 4 {
                    vec!["node.labels.zone".into()]
                } else {
                    Vec::new()
                },
                max_replicas: if i % 5 == 3 { 5 } else { 0 },
                cpus: if reserves { CPU / 10 } else { 0 },
                memory: if reserves { 128 * MIB } else { 0 },
            }
        })
        .collect();
    (nodes, services)
}

/// The straightforward scheduler: for every task, run the filters on every node and keep
/// the best by (spread group tasks, label value, service tasks, tasks, node ID). Spreads
/// over one level, all the simulation uses.
struct Naive {
    nodes: Vec<NodeInfo>,
    tasks: Vec<u32>,
    reserved_cpus: Vec<i64>,
    reserved_memory: Vec<i64>,
    per_service: HashMap<String, Vec<u32>>,
}

impl Naive {
    fn new(mut nodes: Vec<NodeInfo>) -> Self {
        nodes.sort_by(|a, b| a.id.cmp(&b.id));
        let n = nodes.len();
        Naive {
            nodes,
            tasks: vec![0; n],
            reserved_cpus: vec![0; n],
            reserved_memory: vec![0; n],
            per_service: HashMap::new(),
        }
    }

    fn place(&mut self, req: &ServiceReq) -> Result<String, String> {
        assert!(
            req.preferences.len() <= 1,
            "the naive scheduler spreads over one level"
        );
        let n = self.nodes.len();
        let mine = self
            .per_service
            .entry(req.service_id.to_string())
            .or_insert_with(|| vec![0; n]);
        let label = req
            .preferences
            .first()
            .and_then(|p| p.strip_prefix("node.labels."));
        let value = |node| label_value(node, label);
        let mut groups: HashMap<&str, u64> = HashMap::new();
        if label.is_some() {
            for (node, &c) in self.nodes.iter().zip(mine.iter()) {
                *groups.entry(value(node)).or_default() += u64::from(c);
            }
        }
        let mut best: Option<(u64, &str, u32, u32, usize)> = None;
        for (i, node) in self.nodes.iter().enumerate() {
            if !node.ready || node.availability != Availability::Active {
                continue;
            }
            if (req.reservation_cpus != 0 || req.reservation_memory != 0)
                && (req.reservation_cpus > node.nano_cpus - self.reserved_cpus[i]
                    || req.reservation_memory > node.memory_bytes - self.reserved_memory[i])
            {
                continue;
            }
            let facts = NodeFacts {
                id: &node.id,
                hostname: &node.hostname,
                addr: &node.addr,
                role: &node.role,
                os: &node.os,
                arch: &node.arch,
                labels: &node.labels,
            };
            if !req.constraints.iter().all(|c| c.matches(&facts)) {
                continue;
            }
            if req.max_replicas > 0 && u64::from(mine[i]) >= req.max_replicas {
                continue;
            }
            let v = value(node);
            let key = (
                groups.get(v).copied().unwrap_or(0),
                v,
                mine[i],
                self.tasks[i],
                i,
            );
            if best.is_none_or(|b| key < b) {
                best = Some(key);
            }
        }
        let (.., i) = best.ok_or_else(|| "no suitable node".to_string())?;
        mine[i] += 1;
        self.tasks[i] += 1;
        self.reserved_cpus[i] += req.reservation_cpus;
        self.reserved_memory[i] += req.reservation_memory;
        Ok(self.nodes[i].id.clone())
    }
}

fn label_value<'n>(node: &'n NodeInfo, label: Option<&str>) -> &'n str {
    label
        .and_then(|l| node.labels.get(l))
        .map_or("", String::as_str)
}

fn rate(placements: usize, seconds: f64) -> f64 {
    placements as f64 / seconds
}

fn main() {
    let (nodes, services) = cluster();
    let total = SERVICES * TASKS_PER_SERVICE;
    let drained = nodes
        .iter()
        .filter(|n| n.availability == Availability::Drain)
        .count();
    println!(
        "# {NODES} nodes ({drained} drained), {SERVICES} services, {total} tasks; placement time only"
    );

    let mut scheduler = Scheduler::new(nodes.clone());
    let start = Instant::now();
    let mut batch = Vec::with_capacity(total);
    for s in &services {
        batch.extend(scheduler.place_many(&s.req(), TASKS_PER_SERVICE));
    }
    let batch_s = start.elapsed().as_secs_f64();

    let mut scheduler = Scheduler::new(nodes.clone());
    let start = Instant::now();
    let mut single = Vec::with_capacity(total);
    for s in &services {
        let req = s.req();
        single.extend((0..TASKS_PER_SERVICE).map(|_| scheduler.place(&req)));
    }
    let single_s = start.elapsed().as_secs_f64();

    let mut naive = Naive::new(nodes);
    let start = Instant::now();
    let mut baseline = Vec::with_capacity(total);
    for s in &services {
        let req = s.req();
        baseline.extend((0..TASKS_PER_SERVICE).map(|_| naive.place(&req)));
    }
    let naive_s = start.elapsed().as_secs_f64();

    let placed = batch.iter().filter(|r| r.is_ok()).count();
    let same = |a: &[Result<String, String>]| {
        a.iter()
            .zip(&baseline)
            .all(|(x, y)| x.as_ref().ok() == y.as_ref().ok())
    };
    println!("placed {placed} of {total} tasks");
    println!(
        "scheduler place_many (one call per service): {:>10.0} placements/s ({batch_s:.3} s)",
        rate(total, batch_s)
    );
    println!(
        "scheduler place (one call per task):         {:>10.0} placements/s ({single_s:.3} s)",
        rate(total, single_s)
    );
    println!(
        "baseline: naive scan of all nodes per task:  {:>10.0} placements/s ({naive_s:.3} s)",
        rate(total, naive_s)
    );
    println!("ratio place_many / naive: {:.1}x", naive_s / batch_s);
    println!("ratio place / naive:      {:.1}x", naive_s / single_s);
    println!(
        "same placements as naive: place_many {}, place {}",
        if same(&batch) { "yes" } else { "NO" },
        if same(&single) { "yes" } else { "NO" }
    );
}
