//! What a user sees of placement: where tasks land and docker's "no suitable node" texts.

use std::collections::{BTreeMap, HashMap};

use shoal_scheduler::{Availability, HostPort, NodeInfo, Scheduler, ServiceReq};
use shoal_spec::{Constraint, Protocol};

const CPU: i64 = 1_000_000_000;
const GIB: i64 = 1 << 30;

fn node(hostname: &str, labels: &[(&str, &str)]) -> NodeInfo {
    NodeInfo {
        id: format!("id-{hostname}"),
        hostname: hostname.to_string(),
        addr: String::new(),
        role: "worker".to_string(),
        os: "linux".to_string(),
        arch: "x86_64".to_string(),
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ready: true,
        availability: Availability::Active,
        nano_cpus: 2 * CPU,
        memory_bytes: 4 * GIB,
    }
}

/// The tutorial's three VMs, without labels.
fn vms() -> Vec<NodeInfo> {
    vec![node("vm1", &[]), node("vm2", &[]), node("vm3", &[])]
}

fn constraints(exprs: &[&str]) -> Vec<Constraint> {
    exprs
        .iter()
        .map(|e| Constraint::parse(e).unwrap())
        .collect()
}

/// Tasks per hostname ("vm1" for "id-vm1").
fn tally(results: &[Result<String, String>]) -> BTreeMap<String, usize> {
    let mut t = BTreeMap::new();
    for r in results {
        let id = r.as_ref().expect("placed");
        *t.entry(id.trim_start_matches("id-").to_string())
            .or_default() += 1;
    }
    t
}

fn counts(pairs: &[(&str, usize)]) -> BTreeMap<String, usize> {
    pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
}

/// `--constraint node.hostname==vm2` puts the task on vm2.
#[test]
fn hostname_constraint_places_on_that_node() {
    let c = constraints(&["node.hostname == vm2"]);
    let req = ServiceReq {
        service_id: "web",
        constraints: &c,
        ..Default::default()
    };
    let mut s = Scheduler::new(vms());
    assert_eq!(s.place(&req), Ok("id-vm2".to_string()));
    assert_eq!(s.place(&req), Ok("id-vm2".to_string()));
}

/// A label no node has leaves the task pending with docker's explanation.
#[test]
fn unsatisfiable_constraint_explains_on_all_nodes() {
    let c = constraints(&["node.labels.os == linux"]);
    let req = ServiceReq {
        service_id: "web",
        constraints: &c,
        ..Default::default()
    };
    let mut s = Scheduler::new(vms());
    let want = "no suitable node (scheduling constraints not satisfied on 3 nodes)";
    assert_eq!(s.place(&req), Err(want.to_string()));
    assert_eq!(s.place_many(&req, 2), vec![Err(want.to_string()); 2]);
}

#[test]
fn no_nodes_at_all() {
    let mut s = Scheduler::new(Vec::new());
    let req = ServiceReq {
        service_id: "web",
        ..Default::default()
    };
    assert_eq!(s.place(&req), Err("no suitable node".to_string()));
}

/// Drained, paused and down nodes take no new tasks.
#[test]
fn drain_pause_and_down_take_no_tasks() {
    let mut nodes = vms();
    nodes[0].availability = Availability::Drain;
    nodes[1].availability = Availability::Pause;
    let req = ServiceReq {
        service_id: "web",
        ..Default::default()
    };
    let mut s = Scheduler::new(nodes.clone());
    assert_eq!(tally(&s.place_many(&req, 4)), counts(&[("vm3", 4)]));

    nodes[2].ready = false;
    let mut s = Scheduler::new(nodes);
    assert_eq!(
        s.place(&req),
        Err("no suitable node (3 nodes not available for new tasks)".to_string())
    );
}

/// Each node counts against the first filter it fails; most failures first.
#[test]
fn mixed_failures_most_first() {
    let mut nodes = vms();
    nodes[0].availability = Availability::Drain;
    let c = constraints(&["node.labels.os == linux"]);
    let req = ServiceReq {
        service_id: "web",
        constraints: &c,
        ..Default::default()
    };
    let mut s = Scheduler::new(nodes.clone());
    assert_eq!(
        s.place(&req),
        Err("no suitable node (scheduling constraints not satisfied on 2 nodes; 1 node not available for new tasks)".to_string())
    );

    // On a tie, pipeline order: Ready before Constraint.
    nodes[1].availability = Availability::Pause;
    nodes[2].labels.insert("os".into(), "windows".into());
    nodes.push(node("vm4", &[("os", "windows")]));
    let mut s = Scheduler::new(nodes);
    assert_eq!(
        s.place(&req),
        Err("no suitable node (2 nodes not available for new tasks; scheduling constraints not satisfied on 2 nodes)".to_string())
    );
}

/// `docker service create --replicas 6` on three nodes: two each.
#[test]
fn spreads_evenly() {
    let req = ServiceReq {
        service_id: "web",
        ..Default::default()
    };
    let mut s = Scheduler::new(vms());
    let want = counts(&[("vm1", 2), ("vm2", 2), ("vm3", 2)]);
    assert_eq!(tally(&s.place_many(&req, 6)), want);

    let mut s = Scheduler::new(vms());
    let one_by_one: Vec<_> = (0..6).map(|_| s.place(&req)).collect();
    assert_eq!(tally(&one_by_one), want);
}

/// Tasks already running count: the service's own first, then all tasks.
#[test]
fn existing_tasks_are_respected() {
    let req = ServiceReq {
        service_id: "web",
        ..Default::default()
    };
    let mut s = Scheduler::new(vms());
    s.add_existing("web", "id-vm1", 0, 0, &[]);
    s.add_existing("web", "id-vm1", 0, 0, &[]);
    s.add_existing("web", "id-vm2", 0, 0, &[]);
    assert_eq!(s.place(&req), Ok("id-vm3".to_string()));
    // vm2 and vm3 now have one each: the node ID breaks the tie.
    assert_eq!(s.place(&req), Ok("id-vm2".to_string()));

    // Other services' tasks break ties in the service's own count.
    let mut s = Scheduler::new(vms());
    s.add_existing("db", "id-vm1", 0, 0, &[]);
    s.add_existing("db", "id-vm2", 0, 0, &[]);
    s.add_existing("cache", "id-vm2", 0, 0, &[]);
    assert_eq!(
        s.place_many(&req, 3),
        vec![
            Ok("id-vm3".to_string()),
            Ok("id-vm1".to_string()),
            Ok("id-vm2".to_string()),
        ]
    );
    // A task on a node the scheduler does not know is ignored.
    s.add_existing("web", "id-gone", 0, 0, &[]);
}

/// `--replicas-max-per-node 1` with four replicas on three nodes: one stays pending.
#[test]
fn max_replicas_per_node() {
    let req = ServiceReq {
        service_id: "web",
        max_replicas: 1,
        ..Default::default()
    };
    let mut s = Scheduler::new(vms());
    let results = s.place_many(&req, 4);
    assert_eq!(
        tally(&results[..3]),
        counts(&[("vm1", 1), ("vm2", 1), ("vm3", 1)])
    );
    assert_eq!(
        results[3],
        Err("no suitable node (max replicas per node limit exceed)".to_string())
    );

    let mut s = Scheduler::new(vms());
    s.add_existing("web", "id-vm1", 0, 0, &[]);
    assert_eq!(
        tally(&s.place_many(&req, 2)),
        counts(&[("vm2", 1), ("vm3", 1)])
    );
}

/// `--placement-pref spread=node.labels.zone`: zones share tasks evenly, not nodes.
#[test]
fn spread_preference_over_zones() {
    let nodes = vec![
        node("vm1", &[("zone", "a")]),
        node("vm2", &[("zone", "b")]),
        node("vm3", &[("zone", "b")]),
    ];
    let prefs = vec!["node.labels.zone".to_string()];
    let req = ServiceReq {
        service_id: "web",
        preferences: &prefs,
        ..Default::default()
    };
    let mut s = Scheduler::new(nodes.clone());
    assert_eq!(
        tally(&s.place_many(&req, 4)),
        counts(&[("vm1", 2), ("vm2", 1), ("vm3", 1)])
    );
    let mut s = Scheduler::new(nodes);
    let one_by_one: Vec<_> = (0..4).map(|_| s.place(&req)).collect();
    assert_eq!(
        tally(&one_by_one),
        counts(&[("vm1", 2), ("vm2", 1), ("vm3", 1)])
    );
}

/// Nodes without the label form a group of their own.
#[test]
fn spread_missing_label_is_its_own_group() {
    let nodes = vec![
        node("vm1", &[("zone", "a")]),
        node("vm2", &[("zone", "a")]),
        node("vm3", &[]),
        node("vm4", &[("zone", "b")]),
    ];
    let prefs = vec!["node.labels.zone".to_string()];
    let req = ServiceReq {
        service_id: "web",
        preferences: &prefs,
        ..Default::default()
    };
    let mut s = Scheduler::new(nodes);
    assert_eq!(
        tally(&s.place_many(&req, 6)),
        counts(&[("vm1", 1), ("vm2", 1), ("vm3", 2), ("vm4", 2)])
    );
}

/// Reservations: a node takes tasks while its capacity lasts.
#[test]
fn resources_limit_placement() {
    let req = ServiceReq {
        service_id: "web",
        reservation_cpus: 3 * CPU,
        ..Default::default()
    };
    let mut s = Scheduler::new(vms());
    assert_eq!(
        s.place(&req),
        Err("no suitable node (insufficient resources on 3 nodes)".to_string())
    );

    // 1 CPU each on 2-CPU nodes: six fit, the seventh does not.
    let req = ServiceReq {
        service_id: "web",
        reservation_cpus: CPU,
        reservation_memory: GIB,
        ..Default::default()
    };
    let mut s = Scheduler::new(vms());
    s.add_existing("db", "id-vm1", CPU, 0, &[]);
    let results = s.place_many(&req, 6);
    assert_eq!(
        tally(&results[..5]),
        counts(&[("vm1", 1), ("vm2", 2), ("vm3", 2)])
    );
    assert_eq!(
        results[5],
        Err("no suitable node (insufficient resources on 3 nodes)".to_string())
    );
}

/// Reservations at the ends of i64 (a negative `--reserve-cpu` once saturated to one) are
/// placed or refused, never an arithmetic overflow.
#[test]
fn extreme_reservations_do_not_overflow() {
    for (cpus, memory) in [
        (i64::MIN, i64::MIN),
        (i64::MAX, i64::MAX),
        (i64::MIN, i64::MAX),
    ] {
        let req = ServiceReq {
            service_id: "web",
            reservation_cpus: cpus,
            reservation_memory: memory,
            ..Default::default()
        };
        let mut s = Scheduler::new(vms());
        s.add_existing("db", "id-vm1", i64::MIN, i64::MIN, &[]);
        s.add_existing("db", "id-vm2", i64::MAX, i64::MAX, &[]);
        let _ = s.place_many(&req, 6);
        let _ = s.fits(&req, "id-vm1", true);
        let _ = s.fits(&req, "id-vm2", true);
        s.remove_existing("db", "id-vm1", i64::MAX, i64::MAX, &[]);
        s.remove_existing("db", "id-vm2", i64::MIN, i64::MIN, &[]);
        let _ = s.place_many(&req, 3);
    }
}

/// "Does the task still fit where it runs" after a change.
#[test]
fn fits_checks_filters_without_spread() {
    let mut nodes = vms();
    nodes[2].availability = Availability::Drain;
    let mut s = Scheduler::new(nodes);
    s.add_existing("web", "id-vm1", CPU, 0, &[]);
    s.add_existing("web", "id-vm1", CPU, 0, &[]);
    let on_vm2 = constraints(&["node.hostname == vm2"]);
    let req = ServiceReq {
        service_id: "web",
        reservation_cpus: CPU,
        max_replicas: 2,
        ..Default::default()
    };
    // vm1 is full (2 of 2 CPUs, 2 of 2 replicas) but each of its tasks still fits there.
    assert!(!s.fits(&req, "id-vm1", false));
    assert!(s.fits(&req, "id-vm1", true));
    assert!(s.fits(&req, "id-vm2", false));
    assert!(!s.fits(&req, "id-vm3", false), "drained");
    assert!(!s.fits(&req, "id-nope", false));
    let moved = ServiceReq {
        constraints: &on_vm2,
        ..req
    };
    assert!(!s.fits(&moved, "id-vm1", true));
}

#[test]
fn availability_parses_docker_spelling() {
    assert_eq!("drain".parse(), Ok(Availability::Drain));
    assert_eq!("Pause".parse(), Ok(Availability::Pause));
    assert_eq!(Availability::Active.to_string(), "active");
    assert_eq!(
        "off".parse::<Availability>().unwrap_err().to_string(),
        "invalid availability \"off\": expected active, pause or drain"
    );
}

/// A small deterministic generator (xorshift64*), so tests need no crate.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    }
}

struct Service {
    id: String,
    constraints: Vec<Constraint>,
    preferences: Vec<String>,
    max_replicas: u64,
    cpus: i64,
    tasks: usize,
}

impl Service {
    fn req(&self) -> ServiceReq<'_> {
        ServiceReq {
            service_id: &self.id,
            constraints: &self.constraints,
            preferences: &self.preferences,
            max_replicas: self.max_replicas,
            reservation_cpus: self.cpus,
            reservation_memory: 0,
            host_ports: &[],
        }
    }
}

struct Cluster {
    nodes: Vec<NodeInfo>,
    services: Vec<Service>,
}

/// A plain scan's preference among eligible nodes: (group tasks, label value) per spread
/// level, then service tasks, tasks, node index (ID order).
type ScanKey = (Vec<(u32, String)>, u32, u32, usize);

fn random_cluster(seed: u64) -> Cluster {
    let mut rng = Rng(seed);
    let zones = ["a", "b", "c"];
    let racks = ["r1", "r2"];
    let nodes = (0..40)
        .map(|i| {
            let mut labels = vec![];
            if rng.below(10) > 0 {
                labels.push(("zone", zones[rng.below(3) as usize]));
            }
            if rng.below(10) > 1 {
                labels.push(("rack", racks[rng.below(2) as usize]));
            }
            let mut n = node(&format!("n{:02}", rng.below(100) * 100 + i), &labels);
            n.availability = match rng.below(20) {
                0 => Availability::Drain,
                1 => Availability::Pause,
                _ => Availability::Active,
            };
            n.ready = rng.below(30) > 0;
            n.nano_cpus = (1 + rng.below(8) as i64) * CPU;
            n
        })
        .collect();
    let exprs = [
        None,
        Some("node.labels.zone == a"),
        Some("node.labels.zone != b"),
        Some("node.labels.rack == r1"),
    ];
    let prefs: [&[&str]; 4] = [
        &[],
        &["node.labels.zone"],
        &["node.labels.zone", "node.labels.rack"],
        &["node.labels.rack", "engine.labels.x"],
    ];
    let services = (0..30)
        .map(|i| {
            let c = exprs[rng.below(4) as usize]
                .map(|e| vec![Constraint::parse(e).unwrap()])
                .unwrap_or_default();
            let p = prefs[rng.below(4) as usize]
                .iter()
                .map(|s| s.to_string())
                .collect();
            let max = [0, 0, 1, 3][rng.below(4) as usize];
            let cpus = [0, 0, CPU / 2][rng.below(3) as usize];
            Service {
                id: format!("svc{i}"),
                constraints: c,
                preferences: p,
                max_replicas: max,
                cpus,
                tasks: 1 + rng.below(25) as usize,
            }
        })
        .collect();
    Cluster { nodes, services }
}

fn run(cluster: &Cluster, one_by_one: bool) -> Vec<Result<String, String>> {
    let mut s = Scheduler::new(cluster.nodes.clone());
    s.add_existing("svc0", &cluster.nodes[3].id, 0, 0, &[]);
    s.add_existing("svc1", &cluster.nodes[5].id, CPU, 0, &[]);
    let mut out = vec![];
    for svc in &cluster.services {
        let req = svc.req();
        if one_by_one {
            out.extend((0..svc.tasks).map(|_| s.place(&req)));
        } else {
            out.extend(s.place_many(&req, svc.tasks));
        }
    }
    out
}

/// Same input, same output; and `place_many` is exactly `n` calls of `place`.
#[test]
fn deterministic_and_batch_equals_single() {
    for seed in 1..20 {
        let cluster = random_cluster(seed);
        let batch = run(&cluster, false);
        assert_eq!(batch, run(&cluster, false));
        assert_eq!(batch, run(&cluster, true));
        assert!(batch.iter().any(|r| r.is_ok()));
    }
}

/// The heaps choose what a plain scan of all nodes chooses: among nodes passing the
/// filters, the smallest (group tasks, label value) per spread level, then (service tasks,
/// tasks, node ID), where a group counts the service's tasks on all its nodes.
#[test]
fn matches_a_plain_scan() {
    for seed in 1..20 {
        let cluster = random_cluster(seed);
        let mut nodes = cluster.nodes.clone();
        nodes.sort_by(|a, b| a.id.cmp(&b.id));
        let mut tasks = vec![0u32; nodes.len()];
        let mut cpus = vec![0i64; nodes.len()];
        let mut per_service: HashMap<&str, Vec<u32>> = HashMap::new();
        let mut add = |svc: &'static str, id: &str, c: i64| {
            let i = nodes.iter().position(|n| n.id == id).unwrap();
            tasks[i] += 1;
            cpus[i] += c;
            per_service.entry(svc).or_insert_with(|| vec![0; 40])[i] += 1;
        };
        add("svc0", &cluster.nodes[3].id, 0);
        add("svc1", &cluster.nodes[5].id, CPU);
        let mut expected = vec![];
        for svc in &cluster.services {
            let (id, c, max, cpu) = (&svc.id, &svc.constraints, &svc.max_replicas, &svc.cpus);
            let labels: Vec<&str> = svc
                .preferences
                .iter()
                .filter_map(|d| d.strip_prefix("node.labels."))
                .collect();
            let value =
                |n: &NodeInfo, l: usize| n.labels.get(labels[l]).cloned().unwrap_or_default();
            for _ in 0..svc.tasks {
                let mine = per_service.get(id.as_str()).cloned().unwrap_or(vec![0; 40]);
                let mut best: Option<ScanKey> = None;
                for (i, node) in nodes.iter().enumerate() {
                    let ready = node.ready && node.availability == Availability::Active;
                    let fits = *cpu == 0 || *cpu <= node.nano_cpus - cpus[i];
                    let facts = shoal_spec::NodeFacts {
                        id: &node.id,
                        hostname: &node.hostname,
                        addr: &node.addr,
                        role: &node.role,
                        os: &node.os,
                        arch: &node.arch,
                        labels: &node.labels,
                    };
                    let allowed = c.iter().all(|c| c.matches(&facts));
                    let below_max = *max == 0 || u64::from(mine[i]) < *max;
                    if !(ready && fits && allowed && below_max) {
                        continue;
                    }
                    let groups = (0..labels.len())
                        .map(|l| {
                            let in_group = nodes
                                .iter()
                                .enumerate()
                                .filter(|(_, o)| (0..=l).all(|k| value(o, k) == value(node, k)))
                                .map(|(j, _)| mine[j])
                                .sum();
                            (in_group, value(node, l))
                        })
                        .collect();
                    let key = (groups, mine[i], tasks[i], i);
                    if best.as_ref().is_none_or(|b| key < *b) {
                        best = Some(key);
                    }
                }
                match best {
                    Some((_, _, _, i)) => {
                        tasks[i] += 1;
                        cpus[i] += *cpu;
                        per_service.entry(id).or_insert_with(|| vec![0; 40])[i] += 1;
                        expected.push(Some(nodes[i].id.clone()));
                    }
                    None => expected.push(None),
                }
            }
        }
        let got: Vec<Option<String>> = run(&cluster, false).into_iter().map(Result::ok).collect();
        assert_eq!(got, expected, "seed {seed}");
    }
}

/// A task removed (stop-first update) frees its place for the next one.
#[test]
fn remove_existing_frees_the_place() {
    let nodes = vec![node("vm1", &[]), node("vm2", &[])];
    let mut s = Scheduler::new(nodes);
    let req = ServiceReq {
        service_id: "svc",
        max_replicas: 1,
        ..Default::default()
    };
    s.add_existing("svc", "id-vm1", 0, 0, &[]);
    s.add_existing("svc", "id-vm2", 0, 0, &[]);
    assert!(s.place(&req).is_err());
    s.remove_existing("svc", "id-vm2", 0, 0, &[]);
    assert_eq!(s.place(&req).unwrap(), "id-vm2");
}

const WEB_8081: &[HostPort] = &[HostPort {
    protocol: Protocol::Tcp,
    port: 8081,
}];

/// A host-mode port is a node's: one task per node holds it, whatever the service, so a
/// service publishing one in host mode runs at most one task per node, and a task that
/// finds every node's port taken stays pending with docker's explanation.
#[test]
fn host_mode_port_is_held_once_per_node() {
    let mut s = Scheduler::new(vms());
    let web = ServiceReq {
        service_id: "web",
        host_ports: WEB_8081,
        ..Default::default()
    };
    let placed = s.place_many(&web, 4);
    assert_eq!(
        tally(&placed[..3]),
        counts(&[("vm1", 1), ("vm2", 1), ("vm3", 1)])
    );
    assert_eq!(
        placed[3],
        Err("no suitable node (host-mode port already in use on 3 nodes)".to_string())
    );
    // Another service asking the same port and protocol finds no node either.
    let api = ServiceReq {
        service_id: "api",
        ..web
    };
    assert_eq!(
        s.place(&api),
        Err("no suitable node (host-mode port already in use on 3 nodes)".to_string())
    );
    // The same number over UDP is another port; a service without host ports is not held.
    let udp = [HostPort {
        protocol: Protocol::Udp,
        port: 8081,
    }];
    let dns = ServiceReq {
        service_id: "dns",
        host_ports: &udp,
        ..Default::default()
    };
    assert!(s.place(&dns).is_ok());
    assert!(s
        .place(&ServiceReq {
            service_id: "plain",
            ..Default::default()
        })
        .is_ok());
}

/// Failing filters are explained most failures first, the host port among them.
#[test]
fn host_port_explained_with_other_filters() {
    let mut s = Scheduler::new(vms());
    s.add_existing("other", "id-vm2", 0, 0, WEB_8081);
    s.add_existing("other", "id-vm3", 0, 0, WEB_8081);
    let not_vm1 = constraints(&["node.hostname != vm1"]);
    let web = ServiceReq {
        service_id: "web",
        constraints: &not_vm1,
        host_ports: WEB_8081,
        ..Default::default()
    };
    assert_eq!(
        s.place(&web),
        Err("no suitable node (host-mode port already in use on 2 nodes; scheduling constraints not satisfied on 1 node)".to_string())
    );
    // Stopping one of the holders (a stop-first update, say) frees its node's port.
    s.remove_existing("other", "id-vm3", 0, 0, WEB_8081);
    assert_eq!(s.place(&web).unwrap(), "id-vm3");
}

/// A task still fits on the node whose port it holds itself, not on one where another
/// service (or a second task of its own) holds it.
#[test]
fn fits_ignores_only_the_tasks_own_port() {
    let mut s = Scheduler::new(vms());
    s.add_existing("web", "id-vm1", 0, 0, WEB_8081);
    s.add_existing("api", "id-vm2", 0, 0, WEB_8081);
    s.add_existing("web", "id-vm3", 0, 0, WEB_8081);
    s.add_existing("web", "id-vm3", 0, 0, WEB_8081);
    let web = ServiceReq {
        service_id: "web",
        host_ports: WEB_8081,
        ..Default::default()
    };
    assert!(s.fits(&web, "id-vm1", true));
    assert!(!s.fits(&web, "id-vm1", false));
    assert!(!s.fits(&web, "id-vm2", true), "api holds the port on vm2");
    assert!(
        !s.fits(&web, "id-vm3", true),
        "two tasks of web share vm3's port"
    );
}
