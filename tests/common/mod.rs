//! Shared lab helpers for the integration tests: a lab of real shoald daemons in namespaces,
//! and `shoal` commands run inside its nodes.
#![allow(dead_code)]

use std::process::Output;
use std::time::Duration;

pub use shoal_dataplane::lab::{unique_lab_name, wait_until, Lab, LabSpec};

pub const SHOAL: &str = env!("CARGO_BIN_EXE_shoal");
pub const NO_LEADER: &str = "The swarm does not have a leader";
pub const WORKER_REFUSED: &str = "This node is not a swarm manager. Worker nodes can't be used to view or modify cluster state. Please run this command on a manager node or promote the current node to a manager.";

/// Runs `f` on a thread that has entered the network namespace of a lab host (a node or
/// the client), and returns what it returns.
pub fn in_ns<T: Send + 'static>(
    lab: &Lab,
    host: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    let path = format!("/run/netns/{}", lab.netns_name(host));
    std::thread::spawn(move || {
        let ns = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        nix::sched::setns(ns, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
        f()
    })
    .join()
    .expect("thread in namespace")
}

/// Fail loudly, never skip: these tests need root for namespaces.
pub fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "lab tests need root (they build network namespaces); run `make test` as root"
    );
}

pub struct Swarm {
    pub lab: Lab,
}

impl Swarm {
    /// A lab of `n` nodes, daemons started, no swarm yet.
    pub fn lab(prefix: &str, n: usize) -> Swarm {
        Swarm::lab_with_mtu(prefix, n, 1500)
    }

    /// The same with the given underlay MTU.
    pub fn lab_with_mtu(prefix: &str, n: usize, mtu: u32) -> Swarm {
        Swarm::lab_from(prefix, n, |spec| spec.mtu = mtu)
    }

    /// The same with extra shoald flags on every node (e.g. load-balancer timeouts).
    pub fn lab_with_daemon_args(prefix: &str, n: usize, args: &[&str]) -> Swarm {
        Swarm::lab_from(prefix, n, |spec| spec.daemon_args = strings(args))
    }

    /// The same with extra shoald flags on one node only.
    pub fn lab_with_node_args(prefix: &str, n: usize, node: &str, args: &[&str]) -> Swarm {
        Swarm::lab_from(prefix, n, |spec| {
            spec.node_args.insert(node.to_string(), strings(args));
        })
    }

    /// A lab of `n` nodes as `shape` changes the default spec.
    fn lab_from(prefix: &str, n: usize, shape: impl FnOnce(&mut LabSpec)) -> Swarm {
        require_root();
        let mut spec = LabSpec::new(&unique_lab_name(prefix), n);
        shape(&mut spec);
        Swarm {
            lab: Lab::up(spec).expect("lab up"),
        }
    }

    pub fn addr(&self, node: &str) -> String {
        self.lab.node_addr(node).to_string()
    }

    pub fn shoal(&self, node: &str, args: &[&str]) -> Output {
        let mut argv = vec![SHOAL];
        argv.extend_from_slice(args);
        self.lab.exec(node, &argv).expect("exec shoal")
    }

    /// Run and require success; returns stdout.
    pub fn ok(&self, node: &str, args: &[&str]) -> String {
        let out = self.shoal(node, args);
        assert!(
            out.status.success(),
            "shoal {args:?} on {node} failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.log_tails()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Run and require failure; returns stderr.
    pub fn fails(&self, node: &str, args: &[&str]) -> String {
        let out = self.shoal(node, args);
        assert!(
            !out.status.success(),
            "shoal {args:?} on {node} should have failed, printed: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    /// Every node's log tail: a failure on one node is often explained by another's log
    /// (a join refused by the leader, say).
    pub fn log_tails(&self) -> String {
        self.lab
            .nodes()
            .iter()
            .map(|n| self.log_tail(n))
            .collect::<Vec<_>>()
            .join("\n")
    }

    pub fn log_tail(&self, node: &str) -> String {
        let log = std::fs::read_to_string(self.lab.log_path(node)).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        let from = lines.len().saturating_sub(15);
        format!("--- {node} log ---\n{}", lines[from..].join("\n"))
    }

    /// `swarm init` on `node` with a short heartbeat so liveness tests run fast.
    pub fn init(&self, node: &str) -> String {
        let addr = self.addr(node);
        self.ok(
            node,
            &[
                "swarm",
                "init",
                "--advertise-addr",
                &addr,
                "--dispatcher-heartbeat",
                "1s",
            ],
        )
    }

    pub fn token(&self, on: &str, role: &str) -> String {
        self.ok(on, &["swarm", "join-token", "-q", role])
            .trim()
            .to_string()
    }

    pub fn join(&self, node: &str, manager: &str, role: &str) -> String {
        let token = self.token(manager, role);
        let remote = format!("{}:2377", self.addr(manager));
        self.ok(node, &["swarm", "join", "--token", &token, &remote])
    }

    /// `node ls` rows as (hostname, status, availability, manager status).
    pub fn nodes(&self, on: &str) -> Option<Vec<(String, String, String, String)>> {
        let out = self.shoal(
            on,
            &[
                "node",
                "ls",
                "--format",
                "{{.Hostname}}|{{.Status}}|{{.Availability}}|{{.ManagerStatus}}",
            ],
        );
        if !out.status.success() {
            return None;
        }
        Some(
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .map(|l| {
                    let f: Vec<&str> = l.split('|').collect();
                    (
                        f[0].into(),
                        f[1].into(),
                        f[2].into(),
                        f.get(3).unwrap_or(&"").to_string(),
                    )
                })
                .collect(),
        )
    }

    /// Wait until `on` answers `node ls` with a row for `host` matching (status, manager status).
    pub fn wait_node(&self, on: &str, host: &str, status: &str, manager: &str, timeout: Duration) {
        wait_until(
            &format!("{host} {status} {manager:?} on {on}"),
            timeout,
            || {
                let rows = self.nodes(on)?;
                rows.iter()
                    .any(|r| r.0 == host && r.1 == status && r.3 == manager)
                    .then_some(())
            },
        )
        .unwrap_or_else(|e| panic!("{e:#}\n{:?}\n{}", self.nodes(on), self.log_tail(on)));
    }

    /// The hostname `on` reports as leader, once there is one.
    pub fn wait_leader(&self, on: &str, timeout: Duration) -> String {
        wait_until(&format!("a leader seen from {on}"), timeout, || {
            self.nodes(on)?
                .into_iter()
                .find(|r| r.3 == "Leader")
                .map(|r| r.0)
        })
        .unwrap_or_else(|e| panic!("{e:#}\n{}", self.log_tail(on)))
    }

    pub fn labels(&self, on: &str, node: &str) -> Option<String> {
        let out = self.shoal(
            on,
            &["node", "inspect", "--format", "{{json .Spec.Labels}}", node],
        );
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// Form vm1 (init) + the given joins, e.g. [("vm2","manager"),("vm3","worker")].
    /// A 3-node swarm: vm1 manager, vm2 and vm3 workers.
    pub fn three(prefix: &str) -> Swarm {
        let s = Swarm::lab(prefix, 3);
        s.form(&[("vm2", "worker"), ("vm3", "worker")]);
        s
    }

    /// One HTTP request from the lab's client namespace (curl, 2 s); the body
    /// on success.
    /// kill -9 of `node`'s shoald alone (its tasks and data plane stay), waiting until it
    /// is gone (or a zombie for the lab, its parent here, to reap).
    pub fn kill_daemon(&self, node: &str) {
        let pid_file = self.lab.log_path(node).with_file_name("shoald.pid");
        let daemon: i32 = std::fs::read_to_string(&pid_file)
            .unwrap_or_else(|e| panic!("{}: {e}", pid_file.display()))
            .trim()
            .parse()
            .unwrap();
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(daemon),
            nix::sys::signal::Signal::SIGKILL,
        )
        .unwrap();
        wait_until("the daemon gone", Duration::from_secs(10), || {
            let stat = std::fs::read_to_string(format!("/proc/{daemon}/stat")).unwrap_or_default();
            let state = stat.rsplit_once(") ").and_then(|(_, r)| r.chars().next());
            matches!(state, None | Some('Z') | Some('X')).then_some(())
        })
        .unwrap();
    }

    /// Runs `argv` in a node's (or the client's) namespace; panics with its output
    /// when it fails (setting up a lab's links, addresses and routes).
    pub fn host_ok(&self, host: &str, argv: &[&str]) {
        let out = self.lab.exec(host, argv).expect("exec");
        assert!(out.status.success(), "{host}: {argv:?}: {out:?}");
    }

    pub fn client_get(&self, url: &str) -> Option<String> {
        let out = self
            .lab
            .exec(
                shoal_dataplane::lab::CLIENT,
                &["curl", "-sS", "-m", "2", url],
            )
            .expect("curl");
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Asks `url` from the client namespace until it answers (10 s); the body.
    /// Panics with every node's log tail when it does not.
    pub fn client_get_until(&self, url: &str) -> String {
        wait_until(&format!("{url} answers"), Duration::from_secs(10), || {
            self.client_get(url)
        })
        .unwrap_or_else(|e| panic!("{e}\n{}", self.log_tails()))
    }

    /// `service ps` of the tasks of `svc` meant to run, a line each, in `format`.
    pub fn running_ps(&self, svc: &str, format: &str) -> String {
        self.ok(
            "vm1",
            &[
                "service",
                "ps",
                "-f",
                "desired-state=running",
                "--format",
                format,
                svc,
            ],
        )
    }

    /// Each task of `svc` meant to run, as its ID and `shoal inspect --format FORMAT` of it.
    pub fn inspect_running_tasks(&self, svc: &str, format: &str) -> Vec<(String, String)> {
        let ids = self.ok(
            "vm1",
            &["service", "ps", "-q", "-f", "desired-state=running", svc],
        );
        ids.lines()
            .map(|id| {
                let out = self.ok("vm1", &["inspect", "--format", format, id]);
                (id.to_string(), out.trim().to_string())
            })
            .collect()
    }

    /// `service ps` rows of the tasks of `svc` meant to run, as "NODE CURRENT-STATE".
    pub fn running_rows(&self, svc: &str) -> Vec<String> {
        self.running_ps(svc, "{{.Node}} {{.CurrentState}}")
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// Waits until `svc` has `n` running tasks.
    pub fn wait_running(&self, svc: &str, n: usize) {
        wait_until(
            &format!("{n} running tasks of {svc}"),
            Duration::from_secs(30),
            || {
                let rows = self.running_rows(svc);
                (rows.iter().filter(|r| r.contains(" Running ")).count() == n).then_some(())
            },
        )
        .unwrap_or_else(|e| panic!("{e}\n{}", self.log_tail("vm1")));
    }

    /// Waits until `svc` runs exactly one task on each of `nodes` (sorted).
    pub fn wait_running_on(&self, svc: &str, nodes: &[&str]) {
        wait_until(
            &format!("{svc} running on {nodes:?}"),
            Duration::from_secs(40),
            || {
                let rows = self.running_rows(svc);
                let mut on: Vec<&str> = rows
                    .iter()
                    .filter(|r| r.contains(" Running "))
                    .filter_map(|r| r.split(' ').next())
                    .collect();
                on.sort();
                (rows.len() == nodes.len() && on == nodes).then_some(())
            },
        )
        .unwrap_or_else(|e| {
            panic!(
                "{e}\n{}\n{}",
                self.ok("vm1", &["service", "ps", "--no-trunc", svc]),
                self.log_tail("vm1")
            )
        });
    }

    pub fn form(&self, joins: &[(&str, &str)]) {
        self.init("vm1");
        for (node, role) in joins {
            let out = self.join(node, "vm1", role);
            assert!(
                out.contains(&format!("joined a swarm as a {role}")),
                "{out}"
            );
        }
        for (node, role) in joins {
            let manager = if *role == "manager" { "Reachable" } else { "" };
            self.wait_node("vm1", node, "Ready", manager, Duration::from_secs(20));
        }
    }
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|a| a.to_string()).collect()
}

/// The value of a `Name: value` line of a shoal-whoami answer.
pub fn field<'a>(body: &'a str, name: &str) -> Option<&'a str> {
    body.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(": "))
}
