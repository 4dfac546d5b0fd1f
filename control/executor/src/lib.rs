//! Shoal's process executor: a task's command in fresh namespaces and its own cgroup, on the host filesystem, supervised by a shim that outlives the daemon.

mod cgroup;
mod error;
mod namespaces;
mod options;
mod program;
mod shim;
mod state;
mod sys;
mod user;

use std::collections::BTreeMap;
use std::fs::{self, OpenOptions};
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

pub use crate::cgroup::CgroupError;
use crate::cgroup::{Limits, TaskCgroups};
pub use crate::error::ExecError;
pub use crate::options::{
    check_capability, check_sysctl, check_ulimit, effective_capabilities, Rlimit,
    DEFAULT_CAPABILITIES,
};
pub use crate::shim::maybe_run_shim;
use crate::state::{Pids, TaskDir, CGROUPS, EXIT, LOG, PIDS, SPEC};
pub use crate::sys::raise_nofile_limit;

/// Interval of every bounded wait on a task or shim.
const POLL: Duration = Duration::from_millis(10);
/// How long status() waits for a live shim to record the exit code of a task that
/// just ended (it does so right after reaping it).
const EXIT_RECORD_WAIT: Duration = Duration::from_secs(2);
/// How long stop() waits for a task to be gone after SIGKILL.
const KILL_WAIT: Duration = Duration::from_secs(10);
/// How long remove() waits for the shim and the cgroups to go.
const CLEANUP_WAIT: Duration = Duration::from_secs(5);

/// What to run for one task.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskRun {
    pub task_id: String,
    /// `<service>.<slot>.<taskid>`.
    pub name: String,
    /// Entrypoint and args combined; argv[0] is looked up in the task's PATH.
    pub argv: Vec<String>,
    /// "K=V"; the task gets exactly these, plus a default PATH if they have none.
    pub env: Vec<String>,
    /// Empty means the first 12 characters of the task id.
    pub hostname: String,
    /// Absolute; created if missing. None means "/".
    pub workdir: Option<String>,
    pub mounts: Vec<BindMount>,
    pub memory_bytes: Option<i64>,
    pub nano_cpus: Option<i64>,
    pub pids_limit: Option<i64>,
    /// Join this network namespace (e.g. /run/netns/x) instead of creating an empty one.
    pub netns: Option<PathBuf>,
    /// `user`, `uid`, `user:group` or `uid:gid`, looked up in the host's passwd and
    /// group files; the task (and every command exec'd into it) runs as that user, with
    /// `HOME` from its passwd entry unless `env` sets one. Empty means root.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub user: String,
    /// Supplementary groups (names in the host's group file, or numbers) added to the
    /// user's, as runc's AdditionalGroups; with no `user`, root's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    /// Written to the task's /proc/self/oom_score_adj before its command runs; 0 leaves
    /// it as inherited.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub oom_score_adj: i64,
    /// What [`Executor::stop`] sends first (docker's `StopSignal`: `SIGINT`, `INT`, `2`);
    /// empty is SIGTERM. Checked by [`parse_signal`] before the task starts.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub stop_signal: String,
    /// Docker's `--init`: pid 1 of the task is a small init that forwards every signal
    /// to the command, reaps orphans, and exits as the command does (128+signal if a
    /// signal ended it), so a command that never expected to be pid 1 still stops.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub init: bool,
    /// Kernel parameters written in the task's own namespaces before its command runs
    /// (see [`check_sysctl`]).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub sysctls: BTreeMap<String, String>,
    /// Resource limits of the task's processes (and of every command exec'd into it).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rlimits: Vec<Rlimit>,
    /// The only capabilities the task (and every command exec'd into it) may hold, by
    /// name (`CAP_CHOWN`); None leaves root's full set, as the task's user gets it. The
    /// daemon always sets it (docker's default set without cap_add/cap_drop); None is
    /// kept so an exec into a task started before that keeps the task's own set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<Vec<String>>,
    /// The root filesystem (every mount of the host under it) read-only in the task's
    /// mount namespace; its own mounts, /proc and a fresh /dev/shm stay writable.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub read_only: bool,
}

fn is_zero(v: &i64) -> bool {
    *v == 0
}

/// A bind mount into the task's mount namespace; the target is created if missing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BindMount {
    pub source: PathBuf,
    pub target: PathBuf,
    pub read_only: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TaskStatus {
    /// `pid` is the host pid of the task's init.
    Running { pid: i32 },
    /// `code` is 128+signal if a signal ended the task.
    Exited { code: i32 },
    /// Not started, not recorded, or its shim died before recording an exit code.
    Missing,
}

/// Runs tasks as processes and keeps what it needs to find them again in a state dir
/// (`<state_dir>/<task_id>/`: spec.json, cgroups.json, pids.json, exit, log), so a
/// new Executor on the same dir (a restarted daemon) re-adopts them.
///
/// The binary must call [`maybe_run_shim`] first thing in `main`.
pub struct Executor {
    state_dir: PathBuf,
    /// Names this executor's parent cgroups: a hash of its state dir.
    cgroup_parent: String,
    cgroups: cgroup::Layout,
}

impl Executor {
    /// An executor keeping its state in `state_dir` (created if missing), e.g.
    /// `<data-root>/tasks`.
    pub fn new(state_dir: PathBuf) -> Result<Self, ExecError> {
        fs::create_dir_all(&state_dir).map_err(ExecError::io(format!(
            "creating state dir {}",
            state_dir.display()
        )))?;
        let state_dir = state_dir.canonicalize().map_err(ExecError::io(format!(
            "resolving state dir {}",
            state_dir.display()
        )))?;
        let cgroup_parent = format!("{:016x}", fnv1a(state_dir.as_os_str().as_bytes()));
        Ok(Self {
            state_dir,
            cgroup_parent,
            cgroups: cgroup::Layout::detect(),
        })
    }

    /// Starts the task: new pid, UTS, mount, IPC and (unless `run.netns`) network
    /// namespaces, its own cgroup with the limits applied where the controllers exist,
    /// the hostname, the bind mounts (propagation private), a fresh /proc, exactly the
    /// given environment, stdout and stderr appended to [`Executor::log_path`].
    /// Everything checkable is checked before anything is created (argv[0] in PATH,
    /// mount sources, netns); on any error nothing is left behind. Returns the host pid
    /// of the task's init.
    pub fn start(&self, run: &TaskRun) -> Result<i32, ExecError> {
        validate(run)?;
        let dir = self.dir(&run.task_id)?;
        match fs::create_dir(dir.path()) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(ExecError::TaskExists(run.task_id.clone()))
            }
            Err(e) => {
                return Err(ExecError::io(format!("creating {}", dir.path().display()))(
                    e,
                ))
            }
        }
        match self.launch(run, &dir) {
            Ok(pid) => {
                info!(task = %run.task_id, name = %run.name, pid, "task started");
                Ok(pid)
            }
            Err(e) => {
                discard(&dir);
                Err(e)
            }
        }
    }

    fn launch(&self, run: &TaskRun, dir: &TaskDir) -> Result<i32, ExecError> {
        dir.write_json(SPEC, run)?;
        let log_path = dir.file(LOG);
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(ExecError::io(format!("opening {}", log_path.display())))?;
        let limits = Limits::new(run.memory_bytes, run.nano_cpus, run.pids_limit);
        let cgroups = self
            .cgroups
            .create(&self.cgroup_parent, &run.task_id, &limits)?;
        if let Err(e) = dir.write_json(CGROUPS, &cgroups) {
            let _ = cgroups.remove(CLEANUP_WAIT);
            return Err(e);
        }
        shim::spawn(&run.task_id, dir, &log)
    }

    /// The task's state, read from the state dir: running if its recorded init (pid
    /// and start time) is alive, else its recorded exit code.
    pub fn status(&self, task_id: &str) -> TaskStatus {
        let Ok(dir) = self.dir(task_id) else {
            return TaskStatus::Missing;
        };
        if let Some(code) = dir.read_exit() {
            return TaskStatus::Exited { code };
        }
        let Ok(pids) = dir.read_json::<Pids>(PIDS) else {
            return TaskStatus::Missing;
        };
        if pids.task.is_alive() {
            return TaskStatus::Running { pid: pids.task.pid };
        }
        // Ended just now: its shim writes the code right after reaping it.
        let deadline = Instant::now() + EXIT_RECORD_WAIT;
        while pids.shim.is_alive() && Instant::now() < deadline && dir.read_exit().is_none() {
            thread::sleep(POLL);
        }
        dir.read_exit()
            .map_or(TaskStatus::Missing, |code| TaskStatus::Exited { code })
    }

    /// Whether the task's recorded init is alive now, without [`Executor::status`]'s
    /// wait for the exit code of one that has just ended (for counts, not decisions).
    pub fn is_running(&self, task_id: &str) -> bool {
        let Ok(dir) = self.dir(task_id) else {
            return false;
        };
        dir.read_exit().is_none()
            && dir
                .read_json::<Pids>(PIDS)
                .is_ok_and(|pids| pids.task.is_alive())
    }

    /// The task's stop signal (SIGTERM unless its spec names another) to the task's
    /// init; after `grace`, SIGKILL to everything in its cgroup. As in Docker, an init
    /// that installed no handler for it ignores the signal (it is pid 1 of its
    /// namespace) and is killed after the grace, exit code 137.
    pub fn stop(&self, task_id: &str, grace: Duration) -> Result<TaskStatus, ExecError> {
        let dir = self.existing_dir(task_id)?;
        let status = self.status(task_id);
        if !matches!(status, TaskStatus::Running { .. }) {
            return Ok(status);
        }
        let pids: Pids = dir.read_json(PIDS)?;
        let stop_signal = dir
            .read_json::<TaskRun>(SPEC)
            .ok()
            .and_then(|run| parse_signal(&run.stop_signal).ok())
            .unwrap_or(Signal::SIGTERM);
        let init = pids.task.pidfd();
        if let Some(fd) = &init {
            let _ = sys::pidfd_send_signal(fd.as_fd(), stop_signal);
        }
        let status = self.wait_exited(task_id, grace);
        if !matches!(status, TaskStatus::Running { .. }) {
            info!(task = task_id, ?status, "task stopped");
            return Ok(status);
        }
        if let Some(fd) = &init {
            let _ = sys::pidfd_send_signal(fd.as_fd(), Signal::SIGKILL);
        }
        if let Ok(cgroups) = dir.read_json::<TaskCgroups>(CGROUPS) {
            cgroups.kill();
        }
        match self.wait_exited(task_id, KILL_WAIT) {
            TaskStatus::Running { .. } => Err(ExecError::StopTimeout(task_id.to_owned())),
            status => {
                info!(
                    task = task_id,
                    ?status,
                    "task killed after the grace period"
                );
                Ok(status)
            }
        }
    }

    fn wait_exited(&self, task_id: &str, timeout: Duration) -> TaskStatus {
        let deadline = Instant::now() + timeout;
        loop {
            let status = self.status(task_id);
            if !matches!(status, TaskStatus::Running { .. }) || Instant::now() >= deadline {
                return status;
            }
            thread::sleep(POLL);
        }
    }

    /// Forgets a task: kills it if it still runs, waits for its shim, removes its
    /// cgroups and its state dir. Removing an unknown task is not an error.
    pub fn remove(&self, task_id: &str) -> Result<(), ExecError> {
        let dir = self.dir(task_id)?;
        if !dir.exists() {
            return Ok(());
        }
        self.release(task_id, &dir)?;
        fs::remove_dir_all(dir.path())
            .map_err(ExecError::io(format!("removing {}", dir.path().display())))?;
        info!(task = task_id, "task removed");
        Ok(())
    }

    /// Keeps of a finished task only what `docker service logs` still shows of it: its
    /// log (and its exit code, for [`Executor::status`]). As [`Executor::remove`], it
    /// kills the task if it still runs, waits for its shim and removes its cgroups; the
    /// other state files go. Retiring an unknown or already retired task is not an error.
    pub fn retire(&self, task_id: &str) -> Result<(), ExecError> {
        let dir = self.dir(task_id)?;
        if !dir.exists() {
            return Ok(());
        }
        self.release(task_id, &dir)?;
        let entries = fs::read_dir(dir.path())
            .map_err(ExecError::io(format!("reading {}", dir.path().display())))?;
        for entry in entries.flatten() {
            if matches!(entry.file_name().to_str(), Some(LOG | EXIT)) {
                continue;
            }
            let path = entry.path();
            let removed = if entry.file_type().is_ok_and(|t| t.is_dir()) {
                fs::remove_dir_all(&path)
            } else {
                fs::remove_file(&path)
            };
            removed.map_err(ExecError::io(format!("removing {}", path.display())))?;
        }
        Ok(())
    }

    /// Ends whatever of a task still runs or holds kernel state: the task (killed at
    /// once), its shim, its cgroups.
    fn release(&self, task_id: &str, dir: &TaskDir) -> Result<(), ExecError> {
        if let TaskStatus::Running { .. } = self.status(task_id) {
            self.stop(task_id, Duration::ZERO)?;
        }
        if let Ok(pids) = dir.read_json::<Pids>(PIDS) {
            let deadline = Instant::now() + CLEANUP_WAIT;
            while pids.shim.is_alive() && Instant::now() < deadline {
                thread::sleep(POLL);
            }
            if let Some(fd) = pids.shim.pidfd() {
                warn!(
                    task = task_id,
                    pid = pids.shim.pid,
                    "shim still alive after its task ended: killing it"
                );
                let _ = sys::pidfd_send_signal(fd.as_fd(), Signal::SIGKILL);
            }
        }
        if let Ok(cgroups) = dir.read_json::<TaskCgroups>(CGROUPS) {
            cgroups.kill();
            cgroups.remove(CLEANUP_WAIT)?;
        }
        Ok(())
    }

    /// Every task directory in the state dir, sorted: running tasks (those to re-adopt
    /// after a restart), finished ones kept for their logs, and any left half-made.
    pub fn list(&self) -> Vec<String> {
        let Ok(entries) = fs::read_dir(&self.state_dir) else {
            return Vec::new();
        };
        let mut ids: Vec<String> = entries
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|id| validate_task_id(id).is_ok() && self.state_dir.join(id).is_dir())
            .collect();
        ids.sort();
        ids
    }

    /// The task's stdout and stderr, raw.
    pub fn log_path(&self, task_id: &str) -> PathBuf {
        self.state_dir.join(task_id).join(LOG)
    }

    /// A command that runs `argv` inside the running task, as `docker exec` does: in
    /// its cgroups and its pid, mount, UTS, IPC and network namespaces, in its working
    /// directory, with its environment (variables set on the returned Command add to
    /// or replace the task's). The Command re-executes this binary as a helper that
    /// joins the task and forks `argv` there (a pid namespace applies to children
    /// only); the helper exits with the command's status (126 if it could not enter
    /// the task, 127 if argv[0] is not found) and, if killed, takes the command along.
    pub fn exec_command(&self, task_id: &str, argv: &[String]) -> Result<Command, ExecError> {
        let dir = self.existing_dir(task_id)?;
        if argv.is_empty() {
            return Err(ExecError::EmptyCommand);
        }
        if !matches!(self.status(task_id), TaskStatus::Running { .. }) {
            return Err(ExecError::NotRunning(task_id.to_owned()));
        }
        Ok(shim::exec_command(&dir, argv))
    }

    /// Runs a healthcheck test inside the task: `["CMD", args..]`, or
    /// `["CMD-SHELL", command]` run with `/bin/sh -c`. True if it exits 0 within
    /// `timeout`; a probe that times out is killed and counts as false.
    pub fn health_probe(
        &self,
        task_id: &str,
        test: &[String],
        timeout: Duration,
    ) -> Result<bool, ExecError> {
        let argv = healthcheck_argv(test)?;
        let mut probe = self
            .exec_command(task_id, &argv)?
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(ExecError::io(format!(
                "spawning healthcheck of task {task_id}"
            )))?;
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = probe
                .try_wait()
                .map_err(ExecError::io("waiting for a healthcheck"))?
            {
                return Ok(status.success());
            }
            if Instant::now() >= deadline {
                let _ = probe.kill();
                let _ = probe.wait();
                return Ok(false);
            }
            thread::sleep(POLL);
        }
    }

    fn dir(&self, task_id: &str) -> Result<TaskDir, ExecError> {
        validate_task_id(task_id)?;
        Ok(TaskDir::at(self.state_dir.join(task_id)))
    }

    fn existing_dir(&self, task_id: &str) -> Result<TaskDir, ExecError> {
        let dir = self.dir(task_id)?;
        if !dir.exists() {
            return Err(ExecError::NoSuchTask(task_id.to_owned()));
        }
        Ok(dir)
    }
}

/// Best-effort removal of a task that failed to start.
fn discard(dir: &TaskDir) {
    if let Ok(cgroups) = dir.read_json::<TaskCgroups>(CGROUPS) {
        cgroups.kill();
        if let Err(e) = cgroups.remove(CLEANUP_WAIT) {
            warn!(error = %e, "removing cgroups of a task that failed to start");
        }
    }
    if let Err(e) = fs::remove_dir_all(dir.path()) {
        warn!(dir = %dir.path().display(), error = %e, "removing state of a task that failed to start");
    }
}

/// Everything about `run` that can be checked before creating anything.
fn validate(run: &TaskRun) -> Result<(), ExecError> {
    validate_task_id(&run.task_id)?;
    let argv0 = run.argv.first().ok_or(ExecError::EmptyCommand)?;
    let workdir = match &run.workdir {
        Some(w) if !w.starts_with('/') => return Err(ExecError::InvalidWorkdir(w.clone())),
        Some(w) => Path::new(w),
        None => Path::new("/"),
    };
    for m in &run.mounts {
        if !m.target.is_absolute() {
            return Err(ExecError::MountTargetRelative(m.target.clone()));
        }
        if !m.source.exists() {
            return Err(ExecError::MountSourceMissing(m.source.clone()));
        }
    }
    if let Some(netns) = &run.netns {
        if !netns.exists() {
            return Err(ExecError::NetnsMissing(netns.clone()));
        }
    }
    if !run.stop_signal.is_empty() {
        parse_signal(&run.stop_signal).map_err(ExecError::InvalidSignal)?;
    }
    for name in run.sysctls.keys() {
        check_sysctl(name).map_err(ExecError::InvalidOption)?;
    }
    for l in &run.rlimits {
        check_ulimit(&l.name, l.soft, l.hard).map_err(ExecError::InvalidOption)?;
    }
    // moby's verifyPlatformContainerSettings.
    if !(-1000..=1000).contains(&run.oom_score_adj) {
        return Err(ExecError::InvalidOption(format!(
            "Invalid value {}, range for oom score adj is [-1000, 1000]",
            run.oom_score_adj
        )));
    }
    for cap in run.capabilities.iter().flatten() {
        check_capability(cap).map_err(ExecError::InvalidOption)?;
    }
    let env = program::task_env(&run.env);
    program::resolve(argv0, &env, workdir, |p| program::host_view(p, &run.mounts))?;
    Ok(())
}

/// A stop signal as moby's signal.ParseSignal reads it: a number, or a name with or
/// without `SIG`, in any case (`SIGINT`, `int`, `2`). Errors read as docker's.
pub fn parse_signal(raw: &str) -> Result<Signal, String> {
    let invalid = || format!("invalid signal: {raw}");
    if let Ok(n) = raw.parse::<i32>() {
        return Signal::try_from(n).map_err(|_| invalid());
    }
    let upper = raw.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    format!("SIG{name}").parse().map_err(|_| invalid())
}

/// Task ids name directories and cgroups: no separators, no dot-files.
fn validate_task_id(id: &str) -> Result<(), ExecError> {
    let ok = !id.is_empty()
        && id.len() <= 128
        && !id.starts_with('.')
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(ExecError::InvalidTaskId(id.to_owned()))
    }
}

fn healthcheck_argv(test: &[String]) -> Result<Vec<String>, ExecError> {
    let invalid = || ExecError::InvalidHealthcheck(test.to_vec());
    match test.split_first() {
        Some((kind, args)) if kind == "CMD" && !args.is_empty() => Ok(args.to_vec()),
        Some((kind, args)) if kind == "CMD-SHELL" && !args.is_empty() => {
            Ok(vec!["/bin/sh".to_owned(), "-c".to_owned(), args.join(" ")])
        }
        _ => Err(invalid()),
    }
}

/// 64-bit FNV-1a: a stable name for an executor's cgroups across builds and restarts.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, b| {
        (hash ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_signals_parse_as_moby_reads_them() {
        for raw in ["SIGINT", "INT", "int", "sigint", "2"] {
            assert_eq!(parse_signal(raw), Ok(Signal::SIGINT), "{raw}");
        }
        assert_eq!(parse_signal("SIGUSR1"), Ok(Signal::SIGUSR1));
        for raw in ["", "SIGFOO", "0", "-1", "99", "SIG"] {
            assert_eq!(
                parse_signal(raw),
                Err(format!("invalid signal: {raw}")),
                "{raw}"
            );
        }
    }

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn task_ids_cannot_escape_the_state_dir() {
        for bad in ["", ".", "..", "../x", "a/b", ".hidden", "a b"] {
            assert!(validate_task_id(bad).is_err(), "{bad:?}");
        }
        validate_task_id("x7k2m9q4p1r8s5t3v6w0y2z4a.1_b-c").unwrap();
    }

    #[test]
    fn healthcheck_tests_become_argv() {
        assert_eq!(
            healthcheck_argv(&strings(&["CMD", "true", "x"])).unwrap(),
            strings(&["true", "x"])
        );
        assert_eq!(
            healthcheck_argv(&strings(&["CMD-SHELL", "exit 1"])).unwrap(),
            strings(&["/bin/sh", "-c", "exit 1"])
        );
        for bad in [
            &[][..],
            &strings(&["NONE"]),
            &strings(&["CMD"]),
            &strings(&["true"]),
        ] {
            assert!(healthcheck_argv(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_missing_program_is_reported_before_anything_is_created() {
        let run = TaskRun {
            task_id: "t1".into(),
            argv: strings(&["no-such-program-xyz"]),
            ..Default::default()
        };
        assert_eq!(
            validate(&run).unwrap_err().to_string(),
            "executable file not found in $PATH: no-such-program-xyz"
        );
    }

    /// moby's range check of oom_score_adj, before anything is created.
    #[test]
    fn oom_score_adj_out_of_range_is_refused() {
        for (adj, ok) in [(-1000, true), (1000, true), (1001, false), (-1001, false)] {
            let run = TaskRun {
                task_id: "t1".into(),
                argv: strings(&["sh"]),
                oom_score_adj: adj,
                ..Default::default()
            };
            match validate(&run) {
                Ok(()) => assert!(ok, "{adj}"),
                Err(e) => {
                    assert!(!ok, "{adj}: {e}");
                    assert!(
                        e.to_string().ends_with(&format!(
                            "Invalid value {adj}, range for oom score adj is [-1000, 1000]"
                        )),
                        "{e}"
                    );
                }
            }
        }
    }

    #[test]
    fn executor_names_are_stable() {
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }
}
