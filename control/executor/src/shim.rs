//! The task shim and exec helper: this same binary re-executed, dispatched by maybe_run_shim().

use std::convert::Infallible;
use std::ffi::{CString, OsString};
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sched::{unshare, CloneFlags};
use nix::sys::prctl;
use nix::sys::signal::{sigprocmask, SigSet, SigmaskHow, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{chdir, execve, getpid, pipe2, setsid, ForkResult, Pid};

use crate::cgroup::{self, TaskCgroups};
use crate::state::{Pids, ProcessIdentity, TaskDir, CGROUPS, PIDS, SPEC};
use crate::{namespaces, options, program, sys, user, ExecError, TaskRun};

/// argv[1] of a shim: `<exe> SHIM_ARG <task dir>`.
const SHIM_ARG: &str = "__shoal-executor-shim__";
/// argv[1] of an exec helper: `<exe> EXEC_ARG <task dir> -- <argv..>`.
const EXEC_ARG: &str = "__shoal-executor-exec__";
/// The running binary, whatever happened to its path since (an upgrade may have
/// replaced it; the shim must speak this daemon's protocol).
const SELF_EXE: &str = "/proc/self/exe";
/// How long start() waits for the shim to have the command running.
const REPORT_TIMEOUT: Duration = Duration::from_secs(30);
/// Exit code of a task init that failed before exec, and of an exec helper that could
/// not enter the task (Docker's "cannot invoke" code).
const EXIT_SETUP_FAILED: i32 = 126;
const EXIT_NOT_FOUND: i32 = 127;

/// Runs the executor's helper processes. The binary that uses [`crate::Executor`]
/// (shoald, and the integration tests) must call this first thing in `main`, before
/// it starts any thread: [`crate::Executor::start`] and
/// [`crate::Executor::exec_command`] re-execute the current binary (`/proc/self/exe`)
/// with a hidden first argument, and in such a process this function runs the shim
/// or the exec helper and exits; in any other it returns at once and does nothing.
///
/// The shim forks twice. The first process exits at once (the daemon reaps it), the
/// second is the supervisor: a child subreaper in its own session, nobody's child
/// but init's, so it survives the daemon exiting or being killed. It forks the
/// task's init into a new pid namespace, waits for it, and writes its exit code
/// (128+signal if killed) to `<state_dir>/<task_id>/exit`.
pub fn maybe_run_shim() {
    let mut args = std::env::args_os().skip(1);
    match args.next() {
        Some(arg) if arg == SHIM_ARG => run_shim(args.collect()),
        Some(arg) if arg == EXEC_ARG => run_exec(args.collect()),
        _ => {}
    }
}

/// Daemon side of start(): spawns the shim for the prepared task dir and waits for it
/// to report the task's host pid (or why it could not start it).
pub(crate) fn spawn(task_id: &str, dir: &TaskDir, log: &File) -> Result<i32, ExecError> {
    let setup = |message: String| ExecError::Setup {
        task: task_id.to_owned(),
        message,
    };
    let (report_read, report_write) = pipe2(OFlag::O_CLOEXEC)
        .map_err(|e| ExecError::io("creating the shim's report pipe")(e.into()))?;
    let report_write =
        sys::above_stdio(report_write).map_err(ExecError::io("moving the shim's report pipe"))?;
    let mut cmd = Command::new(SELF_EXE);
    cmd.arg0("shoal-shim")
        .arg(SHIM_ARG)
        .arg(dir.path())
        .env_clear()
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(
            log.try_clone()
                .map_err(ExecError::io("duplicating the log fd"))?,
        )
        .stderr(
            log.try_clone()
                .map_err(ExecError::io("duplicating the log fd"))?,
        );
    let mut first = sys::spawn_with_report_fd(&mut cmd, report_write.as_raw_fd())
        .map_err(ExecError::io("spawning the shim"))?;
    drop(report_write);
    let report = read_report(report_read, REPORT_TIMEOUT);
    if report.is_err() {
        let _ = first.kill();
    }
    let _ = first.wait();
    let report = report.map_err(ExecError::io("reading the shim's report"))?;
    let report = report.trim_end();
    if let Some(pid) = report.strip_prefix("ok ") {
        return pid
            .parse()
            .map_err(|_| setup(format!("bad report from the shim: {report:?}")));
    }
    if let Some(message) = report.strip_prefix("err ") {
        return Err(setup(message.to_owned()));
    }
    Err(setup(format!(
        "the shim exited without reporting ({report:?}): does the binary call shoal_executor::maybe_run_shim() first thing in main?"
    )))
}

/// The first line written to the pipe (or all of it, if every writer closes it
/// first), within `timeout`.
fn read_report(fd: OwnedFd, timeout: Duration) -> std::io::Result<String> {
    let file = File::from(fd);
    let deadline = Instant::now() + timeout;
    let mut text = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "no report from the shim",
            ));
        }
        let wait = PollTimeout::from(u16::try_from(left.as_millis()).unwrap_or(u16::MAX));
        match poll(&mut [PollFd::new(file.as_fd(), PollFlags::POLLIN)], wait) {
            Ok(0) | Err(Errno::EINTR) => continue,
            Ok(_) => {}
            Err(e) => return Err(e.into()),
        }
        let mut chunk = [0u8; 512];
        match (&file).read(&mut chunk) {
            Ok(0) => return Ok(String::from_utf8_lossy(&text).into_owned()),
            Ok(n) => {
                text.extend_from_slice(&chunk[..n]);
                if let Some(end) = text.iter().position(|b| *b == b'\n') {
                    text.truncate(end);
                    return Ok(String::from_utf8_lossy(&text).into_owned());
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

fn run_shim(args: Vec<OsString>) -> ! {
    // Only fds the daemon meant us to have: stdio (the log) and the report pipe.
    let _ = sys::close_fds_from(sys::REPORT_FD + 1);
    let Some(mut report) = sys::take_report_fd() else {
        eprintln!("shoal-shim: no report pipe (not started by the executor?)");
        sys::exit_now(2);
    };
    let [dir] = args.as_slice() else {
        let _ = writeln!(report, "err shim arguments: {args:?}");
        sys::exit_now(2);
    };
    let dir = TaskDir::at(PathBuf::from(dir));
    let mut report = Some(report);
    let single = match sys::SingleThreaded::check() {
        Ok(single) => single,
        Err(e) => {
            let _ = writeln!(report.as_mut().expect("not yet reported"), "err {e}");
            sys::exit_now(1);
        }
    };
    match single.fork() {
        Ok(ForkResult::Parent { .. }) => sys::exit_now(0),
        Ok(ForkResult::Child) => {}
        Err(e) => {
            let _ = writeln!(
                report.as_mut().expect("not yet reported"),
                "err forking the shim: {e}"
            );
            sys::exit_now(1);
        }
    }
    if let Err(message) = supervise(&dir, &single, &mut report) {
        if let Some(report) = report.as_mut() {
            let _ = writeln!(report, "err {}", message.replace('\n', " "));
        }
        sys::exit_now(1);
    }
    sys::exit_now(0)
}

/// The supervisor: starts the task's init, reports (taking and closing `report`),
/// waits, records the exit code.
fn supervise(
    dir: &TaskDir,
    single: &sys::SingleThreaded,
    report: &mut Option<File>,
) -> Result<(), String> {
    let spec: TaskRun = dir.read_json(SPEC).map_err(|e| e.to_string())?;
    let cgroups: TaskCgroups = dir.read_json(CGROUPS).map_err(|e| e.to_string())?;
    if let Some(shims) = &cgroups.shim {
        if let Err(e) = cgroup::join(shims) {
            eprintln!("shoal-shim: task {}: {e}", spec.task_id);
        }
    }
    // The task's init is pid 1 of its own namespace, so its orphans never reach us;
    // being a subreaper only guards against a task that escapes that namespace.
    prctl::set_child_subreaper(true).map_err(|e| format!("becoming a subreaper: {e}"))?;
    let (sync_read, sync_write) =
        pipe2(OFlag::O_CLOEXEC).map_err(|e| format!("creating a pipe: {e}"))?;
    unshare(CloneFlags::CLONE_NEWPID).map_err(|e| format!("creating the pid namespace: {e}"))?;
    let task = match single
        .fork()
        .map_err(|e| format!("forking the task: {e}"))?
    {
        ForkResult::Child => {
            drop(sync_read);
            let mut sync_write = Some(sync_write);
            let Err(failure) = task_init(&spec, &cgroups, single, &mut sync_write);
            if let Some(sync_write) = sync_write {
                let _ = File::from(sync_write).write_all(failure.message.as_bytes());
            }
            sys::exit_now(EXIT_SETUP_FAILED);
        }
        ForkResult::Parent { child } => child,
    };
    drop(sync_write);
    // The pipe closes on exec (close-on-exec) or carries why setup failed.
    let mut failure = String::new();
    let _ = File::from(sync_read).read_to_string(&mut failure);
    let started = if failure.is_empty() {
        record_pids(dir, task)
    } else {
        Err(failure)
    };
    if let Err(message) = started {
        let _ = nix::sys::signal::kill(task, Signal::SIGKILL);
        let _ = waitpid(task, None);
        return Err(message);
    }
    // The daemon may have given up waiting; the task runs anyway and is recorded.
    if let Some(mut report) = report.take() {
        let _ = writeln!(report, "ok {task}");
    }
    let code = wait_for(task, true);
    if let Err(e) = dir.write_exit(code) {
        eprintln!(
            "shoal-shim: task {}: recording exit code {code}: {e}",
            spec.task_id
        );
    }
    Ok(())
}

fn record_pids(dir: &TaskDir, task: Pid) -> Result<(), String> {
    // Not yet reaped, so /proc/<task> exists even if it already exited.
    let task = ProcessIdentity::of(task.as_raw()).ok_or("the task's init vanished")?;
    let shim =
        ProcessIdentity::of(getpid().as_raw()).ok_or("cannot read the shim's own /proc entry")?;
    dir.write_json(PIDS, &Pids { task, shim })
        .map_err(|e| e.to_string())
}

/// Waits for `child` and returns its exit code, 128+signal if a signal killed it.
/// With `reap_all`, also reaps any other process that ends up our child.
fn wait_for(child: Pid, reap_all: bool) -> i32 {
    loop {
        let waited = if reap_all {
            waitpid(None, None)
        } else {
            waitpid(child, None)
        };
        match waited {
            Ok(WaitStatus::Exited(pid, code)) if pid == child => return code,
            Ok(WaitStatus::Signaled(pid, signal, _)) if pid == child => return 128 + signal as i32,
            Ok(_) | Err(Errno::EINTR) => continue,
            Err(e) => {
                eprintln!("shoal-shim: waiting for {child}: {e}");
                return 255;
            }
        }
    }
}

/// Why a process could not become the task's command, and the exit code that says so.
struct ExecFailure {
    code: i32,
    message: String,
}

impl From<String> for ExecFailure {
    fn from(message: String) -> Self {
        Self {
            code: EXIT_SETUP_FAILED,
            message,
        }
    }
}

/// The task's init, pid 1 of its new pid namespace: sets up the rest and execs the
/// command (with `spec.init`, forks it and stays as its init). Returns only on failure.
/// Runs in a child forked from a single-threaded process, so ordinary code (allocation
/// included) is fine here. `sync` is the pipe the shim waits on: closed on exec.
fn task_init(
    spec: &TaskRun,
    cgroups: &TaskCgroups,
    single: &sys::SingleThreaded,
    sync: &mut Option<OwnedFd>,
) -> Result<Infallible, ExecFailure> {
    setsid().map_err(|e| format!("setsid: {e}"))?;
    cgroups.join().map_err(|e| e.to_string())?;
    namespaces::create(spec)?;
    let workdir = Path::new(spec.workdir.as_deref().unwrap_or("/"));
    // Made before a read-only root would refuse it.
    std::fs::create_dir_all(workdir)
        .map_err(|e| format!("creating working directory {}: {e}", workdir.display()))?;
    namespaces::mount_filesystems(&spec.mounts, spec.read_only)?;
    options::apply_sysctls(&spec.sysctls)?;
    namespaces::protect_proc()?;
    options::apply_rlimits(&spec.rlimits)?;
    if spec.oom_score_adj != 0 {
        std::fs::write("/proc/self/oom_score_adj", spec.oom_score_adj.to_string())
            .map_err(|e| format!("setting oom_score_adj: {e}"))?;
    }
    chdir(workdir).map_err(|e| format!("entering working directory {}: {e}", workdir.display()))?;
    let mut env = program::task_env(&spec.env);
    let user = user::resolve_task(&spec.user, &spec.groups)?;
    if let Some(caps) = &spec.capabilities {
        options::apply_capabilities(caps)?;
    }
    if let Some(user) = &user {
        env = user::with_home(env, user);
        user::become_user(user)?;
    }
    if spec.init {
        return run_init(&spec.argv, &env, workdir, single, sync);
    }
    exec(&spec.argv, &env, workdir)
}

/// docker's `--init` (tini): forks the command, reports its exec to the shim, then stays
/// pid 1: every signal it gets goes on to the command, orphans are reaped, and it exits
/// as the command does (128+signal if a signal ended it). Returns only if the command
/// could not be exec'd.
fn run_init(
    argv: &[String],
    env: &[String],
    cwd: &Path,
    single: &sys::SingleThreaded,
    sync: &mut Option<OwnedFd>,
) -> Result<Infallible, ExecFailure> {
    // Blocked before the fork, so no signal is lost before the loop waits for it; the
    // command's exec clears the mask again.
    let all = SigSet::all();
    sigprocmask(SigmaskHow::SIG_BLOCK, Some(&all), None)
        .map_err(|e| format!("blocking signals: {e}"))?;
    let (exec_read, exec_write) =
        pipe2(OFlag::O_CLOEXEC).map_err(|e| format!("creating a pipe: {e}"))?;
    let command = match single
        .fork()
        .map_err(|e| format!("forking the command: {e}"))?
    {
        ForkResult::Child => {
            drop(exec_read);
            drop(sync.take());
            let Err(failure) = exec(argv, env, cwd);
            let _ = File::from(exec_write).write_all(failure.message.as_bytes());
            sys::exit_now(failure.code);
        }
        ForkResult::Parent { child } => child,
    };
    drop(exec_write);
    let mut failure = String::new();
    let _ = File::from(exec_read).read_to_string(&mut failure);
    if !failure.is_empty() {
        return Err(failure.into());
    }
    // The command runs: the shim may record the task as started.
    drop(sync.take());
    loop {
        match all.wait() {
            Ok(Signal::SIGCHLD) => loop {
                match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                    Ok(WaitStatus::Exited(pid, code)) if pid == command => sys::exit_now(code),
                    Ok(WaitStatus::Signaled(pid, signal, _)) if pid == command => {
                        sys::exit_now(128 + signal as i32)
                    }
                    Ok(WaitStatus::StillAlive) | Err(_) => break,
                    Ok(_) => continue,
                }
            },
            Ok(signal) => {
                let _ = nix::sys::signal::kill(command, signal);
            }
            Err(_) => {}
        }
    }
}

/// execve with `argv[0]` looked up in `env`'s PATH; returns only on failure.
fn exec(argv: &[String], env: &[String], cwd: &Path) -> Result<Infallible, ExecFailure> {
    let first = argv.first().ok_or_else(|| "no command given".to_owned())?;
    let path = program::resolve(first, env, cwd, Path::to_owned).map_err(|e| {
        let code = match e {
            ExecError::ExecutableNotFound(_)
            | ExecError::ExecutableInvalid {
                reason: program::NO_SUCH_FILE,
                ..
            } => EXIT_NOT_FOUND,
            _ => EXIT_SETUP_FAILED,
        };
        ExecFailure {
            code,
            message: e.to_string(),
        }
    })?;
    let cstrings = |items: &[String]| -> Result<Vec<CString>, String> {
        items
            .iter()
            .map(|s| CString::new(s.as_bytes()).map_err(|_| format!("NUL byte in {s:?}")))
            .collect()
    };
    let (argv, env) = (cstrings(argv)?, cstrings(env)?);
    let path_c = CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|_| "NUL byte in the path".to_owned())?;
    sys::reset_signals();
    sys::cloexec_fds_from(libc::STDERR_FILENO + 1).map_err(|e| format!("close_range: {e}"))?;
    let Err(e) = execve(&path_c, &argv, &env);
    Err(format!("exec {}: {e}", path.display()).into())
}

/// Daemon side of exec_command(): a command that runs `argv` inside the task.
pub(crate) fn exec_command(dir: &TaskDir, argv: &[String]) -> Command {
    let mut cmd = Command::new(SELF_EXE);
    cmd.arg0("shoal-exec")
        .arg(EXEC_ARG)
        .arg(dir.path())
        .arg("--")
        .args(argv)
        .env_clear();
    // SAFETY: the hook runs in the forked child before exec and only calls
    // getrlimit/setrlimit (async-signal-safe), allocating nothing.
    unsafe {
        cmd.pre_exec(sys::restore_nofile_limit);
    }
    cmd
}

fn run_exec(args: Vec<OsString>) -> ! {
    match exec_in_task(args) {
        Ok(code) => sys::exit_now(code),
        Err(message) => {
            eprintln!("shoal-exec: {message}");
            sys::exit_now(EXIT_SETUP_FAILED);
        }
    }
}

/// The exec helper: joins the task's cgroups and namespaces, forks the command (so it
/// is inside the pid namespace too) and exits with its status.
fn exec_in_task(args: Vec<OsString>) -> Result<i32, String> {
    let _ = sys::cloexec_fds_from(libc::STDERR_FILENO + 1);
    let (dir, argv) = match args.as_slice() {
        [dir, dashes, argv @ ..] if dashes == "--" && !argv.is_empty() => (
            TaskDir::at(PathBuf::from(dir)),
            argv.iter()
                .map(|a| a.to_string_lossy().into_owned())
                .collect::<Vec<_>>(),
        ),
        _ => return Err(format!("exec helper arguments: {args:?}")),
    };
    let spec: TaskRun = dir.read_json(SPEC).map_err(|e| e.to_string())?;
    let pids: Pids = dir.read_json(PIDS).map_err(|e| e.to_string())?;
    let cgroups: TaskCgroups = dir.read_json(CGROUPS).map_err(|e| e.to_string())?;
    // As the task's own user, with its HOME; variables the caller set on the Command
    // add to, or replace, the task's.
    let user = user::resolve_task(&spec.user, &spec.groups)?;
    let mut env = program::task_env(&spec.env);
    if let Some(user) = &user {
        env = user::with_home(env, user);
    }
    let env = program::merge_env(&env, std::env::vars_os());
    let single = sys::SingleThreaded::check().map_err(|e| e.to_string())?;
    let namespaces = namespaces::open_of(pids.task.pid)?;
    // Checked after opening: the namespaces cannot belong to a process reusing the pid.
    if !pids.task.is_alive() {
        return Err(format!("task {} is not running", spec.task_id));
    }
    cgroups.join().map_err(|e| e.to_string())?;
    namespaces::enter(namespaces)?;
    match single.fork().map_err(|e| format!("forking: {e}"))? {
        ForkResult::Child => {
            // If the helper is killed (a probe timing out), the command goes with it.
            let _ = prctl::set_pdeathsig(Signal::SIGKILL);
            let workdir = Path::new(spec.workdir.as_deref().unwrap_or("/"));
            let cwd = if chdir(workdir).is_ok() {
                workdir
            } else {
                Path::new("/")
            };
            // As the task's own processes: its limits and capabilities.
            let limited = options::apply_rlimits(&spec.rlimits).and_then(|()| {
                spec.capabilities
                    .as_deref()
                    .map_or(Ok(()), options::apply_capabilities)
            });
            if let Err(e) = limited {
                eprintln!("shoal-exec: {e}");
                sys::exit_now(EXIT_SETUP_FAILED);
            }
            if let Some(user) = &user {
                if let Err(e) = user::become_user(user) {
                    eprintln!("shoal-exec: {e}");
                    sys::exit_now(EXIT_SETUP_FAILED);
                }
            }
            let Err(failure) = exec(&argv, &env, cwd);
            eprintln!("shoal-exec: {}", failure.message);
            sys::exit_now(failure.code);
        }
        ForkResult::Parent { child } => Ok(wait_for(child, false)),
    }
}
