//! Integration tests of the executor on this host, as root: namespaces, mounts, cgroups, stop, restart, exec and probes.

// The executor re-executes the current binary as its shim, so this file has its own
// `main` that calls `maybe_run_shim()` first, exactly as shoald does.

use std::cell::RefCell;
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use shoal_executor::{BindMount, Executor, TaskRun, TaskStatus};

/// argv[1] that makes this binary act as a daemon that starts one task and then
/// waits to be killed.
const AS_DAEMON: &str = "--as-daemon-starting-a-task";
/// Every wait in these tests ends after this, with a failure.
const WAIT: Duration = Duration::from_secs(15);
/// Set in this process and in no task: proves tasks inherit nothing.
const LEAK_CANARY: &str = "SHOAL_EXECUTOR_TEST_LEAK";

type Test = fn();

const TESTS: &[(&str, Test)] = &[
    (
        "task_runs_in_its_own_namespaces_with_exactly_its_env",
        task_runs_in_its_own_namespaces_with_exactly_its_env,
    ),
    (
        "read_only_bind_mounts_refuse_writes",
        read_only_bind_mounts_refuse_writes,
    ),
    (
        "container_options_apply_inside_the_task",
        container_options_apply_inside_the_task,
    ),
    (
        "the_node_s_kernel_settings_are_read_only_in_the_task",
        the_node_s_kernel_settings_are_read_only_in_the_task,
    ),
    (
        "a_given_network_namespace_is_joined",
        a_given_network_namespace_is_joined,
    ),
    (
        "limits_are_written_to_the_task_cgroups",
        limits_are_written_to_the_task_cgroups,
    ),
    (
        "stop_lets_a_task_that_traps_term_exit_within_the_grace",
        stop_lets_a_task_that_traps_term_exit_within_the_grace,
    ),
    (
        "stop_kills_a_task_that_ignores_term_after_the_grace",
        stop_kills_a_task_that_ignores_term_after_the_grace,
    ),
    (
        "exit_code_is_recorded_and_read_after_a_restart",
        exit_code_is_recorded_and_read_after_a_restart,
    ),
    (
        "a_task_outlives_a_daemon_killed_with_sigkill",
        a_task_outlives_a_daemon_killed_with_sigkill,
    ),
    (
        "exec_command_runs_inside_the_task",
        exec_command_runs_inside_the_task,
    ),
    (
        "health_probe_reports_the_probe_exit_status",
        health_probe_reports_the_probe_exit_status,
    ),
    (
        "a_missing_program_fails_start_and_leaves_nothing",
        a_missing_program_fails_start_and_leaves_nothing,
    ),
    (
        "remove_kills_the_task_and_deletes_its_cgroups_and_state",
        remove_kills_the_task_and_deletes_its_cgroups_and_state,
    ),
    (
        "retire_keeps_only_the_log_and_exit_code",
        retire_keeps_only_the_log_and_exit_code,
    ),
    ("tasks_run_as_their_user", tasks_run_as_their_user),
    (
        "stop_sends_the_tasks_stop_signal",
        stop_sends_the_tasks_stop_signal,
    ),
    (
        "an_init_forwards_signals_and_exits_as_the_command",
        an_init_forwards_signals_and_exits_as_the_command,
    ),
];

fn main() -> ExitCode {
    shoal_executor::maybe_run_shim();
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some(AS_DAEMON) {
        act_as_daemon(&args[1..]);
    }
    if !nix::unistd::geteuid().is_root() {
        eprintln!("error: the shoal-executor tests need root (namespaces, mounts, cgroups); run them as root");
        return ExitCode::FAILURE;
    }
    if args.iter().any(|a| a == "--list") {
        TESTS.iter().for_each(|(name, _)| println!("{name}: test"));
        return ExitCode::SUCCESS;
    }
    // libtest-style filters; flags (and the values of those that take one) are ignored.
    let mut filters = Vec::new();
    let mut skip_value = false;
    for arg in &args {
        if std::mem::take(&mut skip_value) {
            continue;
        }
        if arg.starts_with('-') {
            skip_value = matches!(
                arg.as_str(),
                "--test-threads" | "--skip" | "--color" | "--format" | "-Z"
            );
        } else {
            filters.push(arg.as_str());
        }
    }
    // Before any thread exists, so no concurrent getenv can race with it.
    std::env::set_var(LEAK_CANARY, "leaked");

    let selected: Vec<_> = TESTS
        .iter()
        .filter(|(name, _)| filters.is_empty() || filters.iter().any(|f| name.contains(f)))
        .collect();
    println!("\nrunning {} tests", selected.len());
    let mut failed = Vec::new();
    for (name, test) in selected.iter().copied() {
        let started = Instant::now();
        let result = panic::catch_unwind(AssertUnwindSafe(test));
        let verdict = if result.is_ok() { "ok" } else { "FAILED" };
        println!(
            "test {name} ... {verdict} ({:.2}s)",
            started.elapsed().as_secs_f64()
        );
        if result.is_err() {
            failed.push(*name);
        }
    }
    println!(
        "\ntest result: {}. {} passed; {} failed",
        if failed.is_empty() { "ok" } else { "FAILED" },
        selected.len() - failed.len(),
        failed.len()
    );
    if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        println!("failures: {failed:?}");
        ExitCode::FAILURE
    }
}

/// A daemon stand-in: starts one task, prints its pid, then blocks until killed.
fn act_as_daemon(args: &[String]) -> ! {
    let [state_dir, task_id, script] = args else {
        std::process::exit(2)
    };
    let executor = Executor::new(state_dir.into()).expect("executor");
    let run = TaskRun {
        task_id: task_id.clone(),
        argv: sh(script),
        hostname: "orphan".into(),
        ..Default::default()
    };
    let pid = executor.start(&run).expect("start");
    println!("{pid}");
    std::io::stdout().flush().expect("stdout");
    let _ = std::io::stdin().read_line(&mut String::new());
    std::process::exit(0)
}

// ---------------------------------------------------------------------------------
// Fixture
// ---------------------------------------------------------------------------------

/// A state dir and scratch space under /tmp; every task started through it is
/// removed (processes, cgroups, state) on drop, also when the test panics.
struct Fixture {
    name: &'static str,
    root: PathBuf,
    executor: Executor,
    tasks: RefCell<Vec<String>>,
}

impl Fixture {
    fn new(name: &'static str) -> Self {
        let root =
            std::env::temp_dir().join(format!("shoal-executor-test-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        fs::create_dir_all(&root).expect("scratch dir");
        let executor = Executor::new(root.join("state")).expect("executor");
        Self {
            name,
            root,
            executor,
            tasks: RefCell::new(Vec::new()),
        }
    }

    fn state_dir(&self) -> PathBuf {
        self.root.join("state")
    }

    fn task_id(&self, suffix: &str) -> String {
        format!(
            "{}-{suffix}-{}",
            self.name.replace('_', "-"),
            std::process::id()
        )
    }

    /// A task running `sh -c script`; it is removed when the fixture drops.
    fn task(&self, suffix: &str, script: &str) -> TaskRun {
        let task_id = self.task_id(suffix);
        self.tasks.borrow_mut().push(task_id.clone());
        TaskRun {
            name: format!("svc.1.{task_id}"),
            task_id,
            argv: sh(script),
            hostname: "task-host".into(),
            ..Default::default()
        }
    }

    fn start(&self, run: &TaskRun) -> i32 {
        self.executor
            .start(run)
            .unwrap_or_else(|e| panic!("starting {}: {e}", run.task_id))
    }

    fn log(&self, task_id: &str) -> String {
        fs::read_to_string(self.executor.log_path(task_id)).unwrap_or_default()
    }

    /// The log once it holds `needle`.
    fn wait_log(&self, task_id: &str, needle: &str) -> String {
        let mut log = String::new();
        wait_until(&format!("{needle:?} in the log of {task_id}"), || {
            log = self.log(task_id);
            log.contains(needle)
        });
        log
    }

    fn wait_exited(&self, task_id: &str) -> TaskStatus {
        let mut status = TaskStatus::Missing;
        wait_until(&format!("{task_id} to exit"), || {
            status = self.executor.status(task_id);
            matches!(status, TaskStatus::Exited { .. })
        });
        status
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        for task_id in self.tasks.borrow().iter() {
            if let Err(e) = self.executor.remove(task_id) {
                eprintln!("cleanup: removing task {task_id}: {e}");
            }
        }
        if let Err(e) = fs::remove_dir_all(&self.root) {
            eprintln!("cleanup: removing {}: {e}", self.root.display());
        }
    }
}

/// Kills and reaps a child process on drop.
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A network namespace made with `ip netns add`, deleted on drop.
struct NetnsGuard(String);

impl NetnsGuard {
    fn new(name: String) -> Self {
        run_ok("ip", &["netns", "add", &name]);
        Self(name)
    }

    fn path(&self) -> PathBuf {
        Path::new("/run/netns").join(&self.0)
    }
}

impl Drop for NetnsGuard {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

fn sh(script: &str) -> Vec<String> {
    vec!["sh".into(), "-c".into(), script.into()]
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn run_ok(program: &str, args: &[&str]) {
    let status = Command::new(program)
        .args(args)
        .status()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(status.success(), "{program} {args:?}: {status}");
}

/// Polls `condition` every 10 ms; fails the test after [`WAIT`].
fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(10));
    }
}

fn alive(pid: i32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(") ").map(|(_, rest)| !rest.starts_with('Z')))
        .unwrap_or(false)
}

fn parent_of(pid: i32) -> i32 {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    let (_, rest) = stat.rsplit_once(") ").expect("stat format");
    rest.split_whitespace()
        .nth(1)
        .expect("ppid")
        .parse()
        .expect("ppid number")
}

fn namespace(pid: &str, kind: &str) -> PathBuf {
    fs::read_link(format!("/proc/{pid}/ns/{kind}")).expect("namespace link")
}

/// The cgroup directories of `pid`, from /proc/<pid>/cgroup and this process's
/// mountinfo: (controllers, directory), one per hierarchy, "" for v2.
fn cgroup_dirs(pid: i32) -> Vec<(String, PathBuf)> {
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    let mounts: Vec<(String, String, PathBuf)> = mountinfo
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            let dash = fields.iter().position(|f| *f == "-")?;
            Some((
                fields[dash + 1].to_owned(),
                fields.get(dash + 3)?.to_string(),
                PathBuf::from(fields[4]),
            ))
        })
        .collect();
    let own = fs::read_to_string(format!("/proc/{pid}/cgroup")).expect("/proc/<pid>/cgroup");
    own.lines()
        .filter_map(|line| {
            let mut parts = line.splitn(3, ':');
            let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
            let mount = if controllers.is_empty() {
                mounts.iter().find(|(fstype, _, _)| fstype == "cgroup2")?
            } else {
                let first = controllers.split(',').next()?;
                mounts.iter().find(|(fstype, options, _)| {
                    fstype == "cgroup" && options.split(',').any(|o| o == first)
                })?
            };
            Some((
                controllers.to_owned(),
                mount.2.join(path.trim_start_matches('/')),
            ))
        })
        .collect()
}

/// The directory of `pid`'s cgroup that has `controller`, v1 or v2, if any.
fn controller_dir(pid: i32, controller: &str) -> Option<PathBuf> {
    cgroup_dirs(pid).into_iter().find_map(|(controllers, dir)| {
        let here = if controllers.is_empty() {
            fs::read_to_string(dir.join("cgroup.controllers"))
                .unwrap_or_default()
                .split_whitespace()
                .any(|c| c == controller)
        } else {
            controllers.split(',').any(|c| c == controller)
        };
        here.then_some(dir)
    })
}

fn read_trimmed(path: &Path) -> String {
    fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .trim()
        .to_owned()
}

/// Every directory under /sys/fs/cgroup named `name`.
fn cgroups_named(name: &str) -> Vec<PathBuf> {
    fn walk(dir: &Path, name: &str, depth: usize, found: &mut Vec<PathBuf>) {
        let Ok(entries) = fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                let path = entry.path();
                if entry.file_name() == name {
                    found.push(path.clone());
                }
                if depth < 8 {
                    walk(&path, name, depth + 1, found);
                }
            }
        }
    }
    let mut found = Vec::new();
    walk(Path::new("/sys/fs/cgroup"), name, 0, &mut found);
    found
}

// ---------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------

/// The task is pid 1 of its own pid namespace, has its hostname, a network namespace
/// holding only lo, its bind mount (invisible on the host) and exactly its env.
fn task_runs_in_its_own_namespaces_with_exactly_its_env() {
    let f = Fixture::new("isolation");
    let volume = f.root.join("volume");
    fs::create_dir(&volume).unwrap();
    fs::write(volume.join("from-volume"), "x").unwrap();
    let target = f.root.join("target");
    let mut run = f.task(
        "t",
        "echo \"$FOO\"; hostname; echo $$; env; echo ---; cat /proc/net/dev; echo ---; ls \"$TARGET\"; echo done; sleep 30",
    );
    run.env = strings(&["FOO=bar", &format!("TARGET={}", target.display())]);
    run.mounts = vec![BindMount {
        source: volume.clone(),
        target: target.clone(),
        read_only: false,
    }];
    let host_name = nix::unistd::gethostname().unwrap();

    let pid = f.start(&run);
    let log = f.wait_log(&run.task_id, "done\n");
    assert_eq!(f.executor.status(&run.task_id), TaskStatus::Running { pid });
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines[..3], ["bar", "task-host", "1"], "log:\n{log}");
    let sections: Vec<&str> = log.split("---\n").collect();
    let env: Vec<&str> = sections[0].lines().skip(3).collect();
    assert!(env.contains(&"FOO=bar"), "env: {env:?}");
    assert!(
        env.iter().any(|e| e.starts_with("PATH=")),
        "default PATH missing: {env:?}"
    );
    assert!(
        !sections[0].contains(LEAK_CANARY),
        "the daemon's env leaked: {env:?}"
    );
    let interfaces: Vec<&str> = sections[1]
        .lines()
        .skip(2)
        .filter_map(|l| l.split(':').next())
        .map(str::trim)
        .collect();
    assert_eq!(interfaces, ["lo"], "/proc/net/dev:\n{}", sections[1]);
    assert!(
        sections[2].contains("from-volume"),
        "bind mount not visible inside:\n{log}"
    );

    assert!(target.is_dir(), "the mount target was created");
    assert_eq!(
        fs::read_dir(&target).unwrap().count(),
        0,
        "the bind mount leaked to the host"
    );
    assert_eq!(
        nix::unistd::gethostname().unwrap(),
        host_name,
        "the host's hostname changed"
    );
    for kind in ["pid", "net", "mnt", "uts", "ipc"] {
        assert_ne!(
            namespace(&pid.to_string(), kind),
            namespace("self", kind),
            "{kind} namespace shared with the host"
        );
    }
}

/// A read-only bind mount is read-only inside the task.
fn read_only_bind_mounts_refuse_writes() {
    let f = Fixture::new("readonly");
    let volume = f.root.join("volume");
    fs::create_dir(&volume).unwrap();
    let target = f.root.join("ro-target");
    let mut run = f.task(
        "t",
        &format!(
            "touch {}/x 2>/dev/null && echo writable || echo read-only",
            target.display()
        ),
    );
    run.mounts = vec![BindMount {
        source: volume.clone(),
        target,
        read_only: true,
    }];
    f.start(&run);
    assert_eq!(f.wait_exited(&run.task_id), TaskStatus::Exited { code: 0 });
    assert_eq!(f.log(&run.task_id), "read-only\n");
    assert!(!volume.join("x").exists());
}

/// docker's `--read-only`, `--sysctl`, `--ulimit` and `--cap-drop` as the task sees them:
/// its root refuses writes while its volume (and /dev/shm) take them, the sysctl is set
/// in its own network namespace only, its limits and capability sets are docker's; a
/// command exec'd into it gets the same limits and capabilities.
fn container_options_apply_inside_the_task() {
    let f = Fixture::new("options");
    let volume = f.root.join("volume");
    fs::create_dir(&volume).unwrap();
    let target = f.root.join("rw-target");
    let script = format!(
        "touch /shoal-ro-probe 2>/dev/null && echo root=writable || echo root=read-only; \
         touch {t}/x && echo volume=writable; touch /dev/shm/x && echo shm=writable; \
         echo somaxconn=$(cat /proc/sys/net/core/somaxconn); \
         echo nofile=$(ulimit -n):$(ulimit -Hn); \
         grep -E '^Cap(Eff|Bnd)' /proc/self/status; echo done; sleep 30",
        t = target.display()
    );
    let mut run = f.task("t", &script);
    run.mounts = vec![BindMount {
        source: volume.clone(),
        target,
        read_only: false,
    }];
    run.read_only = true;
    run.sysctls = [("net.core.somaxconn".to_string(), "1234".to_string())].into();
    run.rlimits = vec![shoal_executor::Rlimit {
        name: "nofile".into(),
        soft: 123,
        hard: 456,
    }];
    run.capabilities = Some(shoal_executor::effective_capabilities(
        &[],
        &strings(&["NET_RAW"]),
    ));
    f.start(&run);
    let log = f.wait_log(&run.task_id, "done\n");
    assert!(log.contains("root=read-only\n"), "{log}");
    assert!(log.contains("volume=writable\n"), "{log}");
    assert!(log.contains("shm=writable\n"), "{log}");
    assert!(!Path::new("/shoal-ro-probe").exists());
    assert!(volume.join("x").exists());
    assert!(log.contains("somaxconn=1234\n"), "{log}");
    assert_ne!(
        read_trimmed(Path::new("/proc/sys/net/core/somaxconn")),
        "1234"
    );
    assert!(log.contains("nofile=123:456\n"), "{log}");
    // docker's default set (a80425fb) less CAP_NET_RAW (bit 13).
    assert!(log.contains("CapEff:\t00000000a80405fb\n"), "{log}");
    assert!(log.contains("CapBnd:\t00000000a80405fb\n"), "{log}");
    let out = f
        .executor
        .exec_command(
            &run.task_id,
            &sh("ulimit -n; grep CapEff /proc/self/status; touch /x 2>&1 || echo refused"),
        )
        .unwrap()
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&out.stdout);
    assert!(out.starts_with("123\nCapEff:\t00000000a80405fb\n"), "{out}");
    assert!(out.contains("refused"), "{out}");
}

/// docker's read-only and masked paths: a root task with docker's capabilities reads
/// /proc/sys but writes none of it (its sysctl was set before), nor /sys;
/// /proc/interrupts and /proc/timer_list read empty. The same in an exec'd command.
fn the_node_s_kernel_settings_are_read_only_in_the_task() {
    let f = Fixture::new("kernelro");
    // Each write puts back the value read, so nothing changes even where it succeeds.
    let script = "w() { cat \"$1\" > /tmp/shoal-kernelro.$$ && cat /tmp/shoal-kernelro.$$ > \"$1\" \
                    && echo \"$1 writable\" || echo \"$1 read-only\"; rm -f /tmp/shoal-kernelro.$$; }; \
         w /proc/sys/vm/swappiness; w /proc/sys/net/core/somaxconn; \
         touch /sys/kernel/uevent_seqnum 2>/dev/null && echo sys=writable || echo sys=read-only; \
         echo ostype=$(cat /proc/sys/kernel/ostype); \
         echo somaxconn=$(cat /proc/sys/net/core/somaxconn); \
         echo interrupts=$(wc -c < /proc/interrupts) timer_list=$(wc -c < /proc/timer_list); \
         echo done";
    let mut run = f.task("t", &format!("{script}; sleep 30"));
    run.sysctls = [("net.core.somaxconn".to_string(), "1234".to_string())].into();
    run.capabilities = Some(shoal_executor::effective_capabilities(&[], &[]));
    f.start(&run);
    let log = f.wait_log(&run.task_id, "done\n");
    let expected = |log: &str| {
        for line in [
            "/proc/sys/vm/swappiness read-only\n",
            "/proc/sys/net/core/somaxconn read-only\n",
            "sys=read-only\n",
            "somaxconn=1234\n",
            "interrupts=0 timer_list=0\n",
        ] {
            assert!(log.contains(line), "{line:?} in:\n{log}");
        }
        assert!(
            log.contains("ostype=Linux\n"),
            "/proc/sys is readable: {log}"
        );
    };
    expected(&log);
    let out = f
        .executor
        .exec_command(&run.task_id, &sh(script))
        .unwrap()
        .output()
        .unwrap();
    expected(&String::from_utf8_lossy(&out.stdout));
}

/// With `netns` set, the task joins that namespace instead of an empty one.
fn a_given_network_namespace_is_joined() {
    let f = Fixture::new("netns");
    let netns = NetnsGuard::new(format!("shoal-exec-test-{}", std::process::id()));
    run_ok(
        "ip",
        &[
            "netns", "exec", &netns.0, "ip", "link", "add", "shoal-d0", "type", "veth", "peer",
            "name", "shoal-d1",
        ],
    );
    let mut run = f.task("t", "cat /proc/net/dev");
    run.netns = Some(netns.path());
    f.start(&run);
    assert_eq!(f.wait_exited(&run.task_id), TaskStatus::Exited { code: 0 });
    let log = f.log(&run.task_id);
    assert!(
        log.contains("shoal-d0:") && log.contains("lo:"),
        "/proc/net/dev:\n{log}"
    );
}

/// Memory, CPU and pids limits are in the task's cgroup files, wherever the
/// controller lives (v1 or v2).
fn limits_are_written_to_the_task_cgroups() {
    let f = Fixture::new("limits");
    let mut run = f.task("t", "echo ready; sleep 30");
    run.memory_bytes = Some(64 << 20);
    run.nano_cpus = Some(500_000_000);
    run.pids_limit = Some(100);
    let pid = f.start(&run);
    f.wait_log(&run.task_id, "ready");
    let memory = controller_dir(pid, "memory").expect("this host has a memory controller");
    assert!(
        memory.ends_with(&run.task_id),
        "the task is not in its own memory cgroup: {}",
        memory.display()
    );
    let limit = ["memory.max", "memory.limit_in_bytes"]
        .iter()
        .map(|f| memory.join(f))
        .find(|p| p.exists())
        .unwrap();
    assert_eq!(read_trimmed(&limit), (64u64 << 20).to_string());
    match controller_dir(pid, "cpu") {
        Some(dir) if dir.join("cpu.max").exists() => {
            assert_eq!(read_trimmed(&dir.join("cpu.max")), "50000 100000")
        }
        Some(dir) => {
            assert_eq!(read_trimmed(&dir.join("cpu.cfs_quota_us")), "50000");
            assert_eq!(read_trimmed(&dir.join("cpu.cfs_period_us")), "100000");
        }
        None => println!("  (no cpu controller on this host: cpu limit not checked)"),
    }
    match controller_dir(pid, "pids") {
        Some(dir) => assert_eq!(read_trimmed(&dir.join("pids.max")), "100"),
        None => println!("  (no pids controller on this host: pids limit not checked)"),
    }
}

/// A task that handles SIGTERM exits with its own code well within the grace.
fn stop_lets_a_task_that_traps_term_exit_within_the_grace() {
    let f = Fixture::new("graceful");
    let run = f.task(
        "t",
        "trap 'echo got-term; exit 0' TERM; echo ready; sleep 30 & wait",
    );
    f.start(&run);
    f.wait_log(&run.task_id, "ready");
    let started = Instant::now();
    let status = f
        .executor
        .stop(&run.task_id, Duration::from_secs(10))
        .unwrap();
    assert_eq!(status, TaskStatus::Exited { code: 0 });
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    assert!(f.log(&run.task_id).contains("got-term"));
}

/// A task that ignores SIGTERM is killed once the grace is over: 128+SIGKILL.
fn stop_kills_a_task_that_ignores_term_after_the_grace() {
    let f = Fixture::new("stubborn");
    let run = f.task("t", "trap '' TERM; echo ready; sleep 30");
    let pid = f.start(&run);
    f.wait_log(&run.task_id, "ready");
    let grace = Duration::from_millis(300);
    let started = Instant::now();
    let status = f.executor.stop(&run.task_id, grace).unwrap();
    assert_eq!(status, TaskStatus::Exited { code: 137 });
    assert!(
        started.elapsed() >= grace && started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
    assert!(!alive(pid));
    // Stopping again reports the same exit.
    assert_eq!(
        f.executor.stop(&run.task_id, grace).unwrap(),
        TaskStatus::Exited { code: 137 }
    );
}

/// A task with a stop signal gets that signal, not SIGTERM, when it is stopped; a bad
/// one is refused before anything starts.
fn stop_sends_the_tasks_stop_signal() {
    let f = Fixture::new("stopsignal");
    let mut run = f.task(
        "t",
        "trap 'echo got-int; exit 3' INT; trap 'echo got-term; exit 4' TERM; echo ready; sleep 30 & wait",
    );
    run.stop_signal = "SIGINT".into();
    f.start(&run);
    f.wait_log(&run.task_id, "ready");
    let started = Instant::now();
    let status = f
        .executor
        .stop(&run.task_id, Duration::from_secs(10))
        .unwrap();
    assert_eq!(status, TaskStatus::Exited { code: 3 });
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(f.log(&run.task_id), "ready\ngot-int\n");

    let mut bad = f.task("bad", "true");
    bad.stop_signal = "SIGFOO".into();
    let err = f.executor.start(&bad).unwrap_err().to_string();
    assert_eq!(err, "invalid signal: SIGFOO");
}

/// With `init`, the command is not pid 1: a shell that installed no TERM handler (which
/// as pid 1 would ignore SIGTERM until killed) gets the forwarded SIGTERM and ends at
/// once; the task exits as its command does; an orphan left behind is reaped; a missing
/// program still fails the start.
fn an_init_forwards_signals_and_exits_as_the_command() {
    let f = Fixture::new("init");
    let mut run = f.task("t", "sh -c 'sleep 0.2' & echo $$; echo ready; sleep 30");
    run.init = true;
    let pid = f.start(&run);
    let log = f.wait_log(&run.task_id, "ready");
    assert_eq!(log, "2\nready\n");
    let started = Instant::now();
    let status = f
        .executor
        .stop(&run.task_id, Duration::from_secs(10))
        .unwrap();
    assert_eq!(status, TaskStatus::Exited { code: 143 });
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    assert!(!alive(pid));

    // The init reaps what its command leaves behind: no zombie under it.
    let mut orphans = f.task("orphans", "sh -c 'sleep 0.1 &' ; echo ready; sleep 30");
    orphans.init = true;
    let init = f.start(&orphans);
    f.wait_log(&orphans.task_id, "ready");
    wait_until("the orphan reaped", || {
        let children =
            fs::read_to_string(format!("/proc/{init}/task/{init}/children")).unwrap_or_default();
        children.split_whitespace().count() == 1
    });

    let mut code = f.task("code", "exit 7");
    code.init = true;
    f.start(&code);
    assert_eq!(f.wait_exited(&code.task_id), TaskStatus::Exited { code: 7 });

    let mut missing = f.task("missing", "true");
    missing.argv = strings(&["no-such-program-xyz"]);
    missing.init = true;
    assert!(f.executor.start(&missing).is_err());
}

/// A task's own exit code is recorded, and a new executor on the same state dir
/// (a restarted daemon) reads it and lists the task.
fn exit_code_is_recorded_and_read_after_a_restart() {
    let f = Fixture::new("exitcode");
    let run = f.task("t", "exit 3");
    f.start(&run);
    assert_eq!(f.wait_exited(&run.task_id), TaskStatus::Exited { code: 3 });
    let restarted = Executor::new(f.state_dir()).unwrap();
    assert_eq!(
        restarted.status(&run.task_id),
        TaskStatus::Exited { code: 3 }
    );
    assert_eq!(restarted.list(), std::slice::from_ref(&run.task_id));
    assert_eq!(restarted.status("never-started"), TaskStatus::Missing);
}

/// A daemon killed with SIGKILL takes neither the task nor its shim along; a new
/// executor sees the task running, stops it, and gets its exit code.
fn a_task_outlives_a_daemon_killed_with_sigkill() {
    let f = Fixture::new("orphan");
    let run = f.task("t", "");
    let script = "trap 'exit 7' TERM; echo ready; sleep 30 & wait";
    let exe = std::env::current_exe().unwrap();
    let state = f.state_dir();
    let mut daemon = ChildGuard(
        Command::new(exe)
            .args([AS_DAEMON, state.to_str().unwrap(), &run.task_id, script])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut line = String::new();
    BufReader::new(daemon.0.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let pid: i32 = line
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("daemon printed {line:?}"));
    let daemon_pid = daemon.0.id() as i32;
    daemon.0.kill().unwrap();
    daemon.0.wait().unwrap();

    f.wait_log(&run.task_id, "ready");
    assert_eq!(f.executor.status(&run.task_id), TaskStatus::Running { pid });
    let shim = parent_of(pid);
    assert!(alive(shim), "the shim died with the daemon");
    assert_ne!(parent_of(shim), daemon_pid);
    let restarted = Executor::new(f.state_dir()).unwrap();
    assert_eq!(restarted.list(), std::slice::from_ref(&run.task_id));
    assert_eq!(
        restarted
            .stop(&run.task_id, Duration::from_secs(10))
            .unwrap(),
        TaskStatus::Exited { code: 7 }
    );
}

/// exec_command runs in the task's namespaces, cgroups, env and hostname.
fn exec_command_runs_inside_the_task() {
    let f = Fixture::new("exec");
    let mut run = f.task("t", "echo ready; sleep 30");
    run.hostname = "exec-host".into();
    run.env = strings(&["FOO=inside"]);
    let pid = f.start(&run);
    f.wait_log(&run.task_id, "ready");

    let script = "hostname; echo $FOO $BAR; echo $$; readlink /proc/self/ns/net; cat /proc/1/cmdline | tr '\\0' ' '; echo";
    let output = f
        .executor
        .exec_command(&run.task_id, &sh(script))
        .unwrap()
        .env("BAR", "added")
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8(output.stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines[0], "exec-host");
    assert_eq!(lines[1], "inside added");
    assert!(
        lines[2].parse::<i32>().unwrap() > 1,
        "pid in the task's namespace: {}",
        lines[2]
    );
    assert_eq!(Path::new(lines[3]), namespace(&pid.to_string(), "net"));
    assert!(
        lines[4].contains("echo ready"),
        "pid 1 is not the task's init: {}",
        lines[4]
    );

    let exec_cgroups = f
        .executor
        .exec_command(&run.task_id, &strings(&["cat", "/proc/self/cgroup"]))
        .unwrap()
        .output()
        .unwrap();
    let task_cgroups = fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    assert_eq!(String::from_utf8_lossy(&exec_cgroups.stdout), task_cgroups);

    let missing = f
        .executor
        .exec_command(&run.task_id, &strings(&["no-such-program-xyz"]))
        .unwrap()
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(127));
    assert!(String::from_utf8_lossy(&missing.stderr)
        .contains("executable file not found in $PATH: no-such-program-xyz"));

    f.executor.stop(&run.task_id, Duration::ZERO).unwrap();
    let err = f
        .executor
        .exec_command(&run.task_id, &strings(&["true"]))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("task {} is not running", run.task_id)
    );
}

/// A task with a user runs as that user (uid, primary group, no root groups, its HOME),
/// and so does every command exec'd into it (probes, `shoal exec`); numbers nobody
/// defined are taken as given; an unknown name fails the start with runc's message.
fn tasks_run_as_their_user() {
    let f = Fixture::new("user");
    let mut run = f.task(
        "named",
        "echo $(id -u) $(id -g) $(id -G) $HOME; echo ready; sleep 30",
    );
    run.user = "nobody".into();
    f.start(&run);
    let log = f.wait_log(&run.task_id, "ready");
    assert_eq!(log, "65534 65534 65534 /nonexistent\nready\n");
    let exec = f
        .executor
        .exec_command(&run.task_id, &sh("echo $(id -u) $(id -g) $HOME"))
        .unwrap()
        .output()
        .unwrap();
    assert!(exec.status.success(), "{exec:?}");
    assert_eq!(
        String::from_utf8_lossy(&exec.stdout),
        "65534 65534 /nonexistent\n"
    );
    // A probe runs as the user too: root could write here, nobody cannot.
    assert!(!f
        .executor
        .health_probe(
            &run.task_id,
            &strings(&["CMD-SHELL", "touch /root/.shoal-probe-test"]),
            WAIT
        )
        .unwrap());
    assert!(!Path::new("/root/.shoal-probe-test").exists());

    let mut numeric = f.task("numeric", "echo $(id -u):$(id -g) $HOME");
    numeric.user = "1234:5678".into();
    numeric.env = strings(&["HOME=/given"]);
    f.start(&numeric);
    assert_eq!(
        f.wait_exited(&numeric.task_id),
        TaskStatus::Exited { code: 0 }
    );
    assert_eq!(f.log(&numeric.task_id), "1234:5678 /given\n");

    let mut unknown = f.task("unknown", "true");
    unknown.user = "no-such-user-xyz".into();
    let err = f.executor.start(&unknown).unwrap_err().to_string();
    assert!(
        err.ends_with("unable to find user no-such-user-xyz: no matching entries in passwd file"),
        "{err}"
    );
}

/// Probes pass on exit 0, fail otherwise, and a probe past its timeout is killed and fails.
fn health_probe_reports_the_probe_exit_status() {
    let f = Fixture::new("health");
    let mut run = f.task("t", "echo ready; sleep 30");
    run.hostname = "probe-host".into();
    f.start(&run);
    f.wait_log(&run.task_id, "ready");
    let probe = |test: &[&str], timeout_ms: u64| {
        f.executor
            .health_probe(
                &run.task_id,
                &strings(test),
                Duration::from_millis(timeout_ms),
            )
            .unwrap()
    };
    assert!(probe(&["CMD", "true"], 5000));
    assert!(!probe(&["CMD", "false"], 5000));
    assert!(probe(
        &["CMD-SHELL", "test \"$(hostname)\" = probe-host"],
        5000
    ));
    assert!(!probe(&["CMD-SHELL", "exit 1"], 5000));
    assert!(!probe(&["CMD", "no-such-program-xyz"], 5000));

    let started = Instant::now();
    assert!(!probe(&["CMD", "sleep", "41"], 300));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    wait_until("the timed-out probe to be killed", || {
        !fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .any(|e| fs::read(e.path().join("cmdline")).is_ok_and(|c| c == b"sleep\x0041\0"))
    });
    assert!(f
        .executor
        .health_probe(&run.task_id, &strings(&["NONE"]), Duration::from_secs(1))
        .is_err());
}

/// An unknown argv[0] is refused before anything is created, with Docker's message.
fn a_missing_program_fails_start_and_leaves_nothing() {
    let f = Fixture::new("missing");
    let mut run = f.task("t", "");
    run.argv = strings(&["no-such-program-xyz", "arg"]);
    let err = f.executor.start(&run).unwrap_err();
    assert_eq!(
        err.to_string(),
        "executable file not found in $PATH: no-such-program-xyz"
    );
    assert!(!f.state_dir().join(&run.task_id).exists());
    assert!(f.executor.list().is_empty());
    assert_eq!(f.executor.status(&run.task_id), TaskStatus::Missing);
    assert_eq!(cgroups_named(&run.task_id), Vec::<PathBuf>::new());

    run.argv = strings(&["/no/such/program"]);
    assert_eq!(
        f.executor.start(&run).unwrap_err().to_string(),
        "/no/such/program: no such file or directory"
    );
    assert!(!f.state_dir().join(&run.task_id).exists());
}

/// remove() on a running task kills it and deletes its cgroups (and the executor's
/// emptied parents) and its state.
fn remove_kills_the_task_and_deletes_its_cgroups_and_state() {
    let f = Fixture::new("remove");
    let run = f.task("t", "echo ready; sleep 30 & sleep 30");
    let pid = f.start(&run);
    f.wait_log(&run.task_id, "ready");
    let dirs: Vec<PathBuf> = cgroup_dirs(pid)
        .into_iter()
        .map(|(_, dir)| dir)
        .filter(|d| d.ends_with(&run.task_id))
        .collect();
    assert!(!dirs.is_empty(), "the task has no cgroup of its own");

    f.executor.remove(&run.task_id).unwrap();
    assert!(!alive(pid));
    for dir in &dirs {
        assert!(!dir.exists(), "{} left behind", dir.display());
        assert!(
            !dir.parent().unwrap().exists(),
            "the executor's cgroup {} left behind",
            dir.parent().unwrap().display()
        );
    }
    assert!(!f.state_dir().join(&run.task_id).exists());
    assert!(f.executor.list().is_empty());
    assert_eq!(f.executor.status(&run.task_id), TaskStatus::Missing);
    f.executor.remove(&run.task_id).unwrap();
}

/// retire() keeps of a task only its log and exit code (what `service logs` shows of a
/// finished task): a task that still runs is killed, its cgroups go (and the
/// executor's emptied parents), its other state files too; the task stays listed, so a
/// restarted daemon finds it, until remove() deletes it. Retiring twice is harmless.
fn retire_keeps_only_the_log_and_exit_code() {
    let f = Fixture::new("retire");
    let ended = f.task("ended", "echo first run; exit 3");
    f.start(&ended);
    assert_eq!(
        f.wait_exited(&ended.task_id),
        TaskStatus::Exited { code: 3 }
    );
    let running = f.task("running", "echo ready; sleep 30 & sleep 30");
    let pid = f.start(&running);
    f.wait_log(&running.task_id, "ready");
    let dirs: Vec<PathBuf> = cgroup_dirs(pid)
        .into_iter()
        .map(|(_, dir)| dir)
        .filter(|d| d.ends_with(&running.task_id))
        .collect();
    assert!(!dirs.is_empty(), "the task has no cgroup of its own");

    for run in [&ended, &running] {
        f.executor.retire(&run.task_id).unwrap();
        f.executor.retire(&run.task_id).unwrap();
    }
    assert!(!alive(pid));
    for dir in &dirs {
        assert!(!dir.exists(), "{} left behind", dir.display());
        assert!(
            !dir.parent().unwrap().exists(),
            "the executor's cgroup {} left behind",
            dir.parent().unwrap().display()
        );
    }
    for (run, log) in [(&ended, "first run\n"), (&running, "ready\n")] {
        let mut files: Vec<String> = fs::read_dir(f.state_dir().join(&run.task_id))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        files.sort();
        assert_eq!(files, ["exit", "log"], "{}", run.task_id);
        assert_eq!(f.log(&run.task_id), log);
    }
    assert_eq!(
        f.executor.status(&ended.task_id),
        TaskStatus::Exited { code: 3 }
    );
    let mut both = vec![ended.task_id.clone(), running.task_id.clone()];
    both.sort();
    assert_eq!(Executor::new(f.state_dir()).unwrap().list(), both);

    f.executor.remove(&ended.task_id).unwrap();
    assert!(!f.state_dir().join(&ended.task_id).exists());
    assert_eq!(f.executor.list(), std::slice::from_ref(&running.task_id));
}
