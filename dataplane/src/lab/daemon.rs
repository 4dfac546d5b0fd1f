//! A node's shoald: finding the binary, starting it inside the node's namespaces, waiting until it listens, and killing everything it started.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};

use super::state::{lab_cgroup, LabState};
use super::{CLIENT, KILL_TIMEOUT};
use crate::netns;
use crate::nsenter::NetnsEntry;
use crate::procs::{self, Selector};

const DAEMON_READY_TIMEOUT: Duration = Duration::from_secs(10);
const LOG_TAIL_LINES: usize = 20;
/// Environment markers set on every daemon; children inherit them.
pub(super) const ENV_LAB: &str = "SHOAL_LAB";
const ENV_NODE: &str = "SHOAL_LAB_NODE";

/// The daemon binary: env SHOALD, else `shoald` next to the running executable or one
/// directory up (test binaries live in target/*/deps), else on PATH.
pub fn find_shoald() -> Result<PathBuf> {
    if let Some(path) = std::env::var_os("SHOALD") {
        let path = PathBuf::from(path);
        if !path.is_file() {
            bail!("SHOALD={} does not exist", path.display());
        }
        return Ok(path);
    }
    let exe = std::env::current_exe().context("locating the running executable")?;
    let dir = exe.parent().map(Path::to_path_buf);
    let beside = [
        dir.clone(),
        dir.as_deref().and_then(Path::parent).map(Path::to_path_buf),
    ];
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    let found = beside
        .into_iter()
        .flatten()
        .chain(on_path)
        .map(|dir| dir.join("shoald"))
        .find(|p| p.is_file());
    found.ok_or_else(|| {
        anyhow!(
            "cannot find the shoald binary: set SHOALD=/path/to/shoald, or build it so it \
             sits next to {}",
            exe.display()
        )
    })
}

/// A command that will run inside a lab host's namespaces.
pub(super) fn host_command(
    state: &LabState,
    host_name: &str,
    argv: &[impl AsRef<str>],
) -> Result<Command> {
    let host = state.host(host_name)?;
    let (program, args) = argv
        .split_first()
        .ok_or_else(|| anyhow!("no command given to run in {host_name}"))?;
    let mut cmd = Command::new(program.as_ref());
    cmd.args(args.iter().map(AsRef::as_ref));
    if host_name != CLIENT {
        cmd.env(
            "SHOAL_HOST",
            format!("unix://{}", state.socket(host_name).display()),
        );
    }
    NetnsEntry::prepare(&netns::path(&host.netns), &state.scratch())
        .with_context(|| format!("preparing to enter {}", host.netns))?
        .apply(&mut cmd);
    Ok(cmd)
}

/// The node's daemon pid, if one is running and really is the node's daemon.
pub(super) fn daemon_pid(state: &LabState, node: &str) -> Option<i32> {
    let pid: i32 = fs::read_to_string(state.node_dir(node).join("shoald.pid"))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    procs::reap(pid);
    let host = state.node(node).ok()?;
    let ours = netns::id(&host.netns).is_some_and(|ns| netns::id_of_pid(pid) == Some(ns))
        || procs::environ_matches(pid, &node_marker(&state.name, node));
    (procs::alive(pid) && ours).then_some(pid)
}

fn node_marker(lab: &str, node: &str) -> Vec<(String, Option<String>)> {
    vec![
        (ENV_LAB.to_string(), Some(lab.to_string())),
        (ENV_NODE.to_string(), Some(node.to_string())),
    ]
}

/// Starts the daemons of `nodes` and waits until every one accepts connections; on
/// failure the daemons started here are stopped again.
pub(super) fn start_daemons(state: &LabState, nodes: &[&str], shoald: Option<&Path>) -> Result<()> {
    let shoald = shoald
        .or(state.shoald.as_deref())
        .ok_or_else(|| anyhow!("lab {} was built without daemons", state.name))?;
    for node in nodes {
        state.node(node)?;
        if let Some(pid) = daemon_pid(state, node) {
            bail!("shoald on {node} is already running (pid {pid})");
        }
    }
    let started = spawn_and_wait(state, nodes, shoald);
    if started.is_err() {
        for node in nodes {
            let _ = stop_node(state, node);
        }
    }
    started
}

fn spawn_and_wait(state: &LabState, nodes: &[&str], shoald: &Path) -> Result<()> {
    let mut pending = Vec::new();
    for node in nodes {
        // Powered on again after a stop: back on the switch.
        netns::set_up(&state.switch_netns, &state.node(node)?.name)
            .with_context(|| format!("plugging {node} into the lab's switch"))?;
        pending.push((*node, spawn_daemon(state, node, shoald)?));
    }
    let deadline = Instant::now() + DAEMON_READY_TIMEOUT;
    while !pending.is_empty() {
        let mut still = Vec::new();
        for (node, mut child) in pending {
            let socket = state.socket(node);
            if UnixStream::connect(&socket).is_ok() {
                tracing::info!(lab = %state.name, node, pid = child.id(), "shoald is up");
                continue;
            }
            let log = state.node_dir(node).join("shoald.log");
            if let Ok(Some(status)) = child.try_wait() {
                bail!(
                    "shoald on {node} exited ({status}) before listening on {}; end of {}:\n{}",
                    socket.display(),
                    log.display(),
                    log_tail(&log)
                );
            }
            if Instant::now() >= deadline {
                bail!(
                    "shoald on {node} (pid {}) did not accept connections on {} within {:?}; \
                     end of {}:\n{}",
                    child.id(),
                    socket.display(),
                    DAEMON_READY_TIMEOUT,
                    log.display(),
                    log_tail(&log)
                );
            }
            still.push((node, child));
        }
        pending = still;
        if !pending.is_empty() {
            sleep(Duration::from_millis(50));
        }
    }
    Ok(())
}

fn spawn_daemon(state: &LabState, node: &str, shoald: &Path) -> Result<Child> {
    let host = state.node(node)?;
    let dir = state.node_dir(node);
    let data = dir.join("data");
    fs::create_dir_all(&data).with_context(|| format!("creating {}", data.display()))?;
    let socket = state.socket(node);
    // A dead daemon's socket file would make bind fail; the daemon is known dead here.
    let _ = fs::remove_file(&socket);

    let mut args: Vec<String> = vec![
        "--data-root".into(),
        data.display().to_string(),
        "-H".into(),
        format!("unix://{}", socket.display()),
        "--listen-addr".into(),
        "0.0.0.0:2377".into(),
        "--metrics-addr".into(),
        format!("{}:9323", host.address),
        "--hostname".into(),
        node.to_string(),
    ];
    args.extend(state.daemon_args.iter().cloned());
    args.extend(state.node_args.get(node).into_iter().flatten().cloned());

    let log_path = dir.join("shoald.log");
    let mut log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .with_context(|| format!("opening {}", log_path.display()))?;
    writeln!(
        log,
        "--- shoal lab: starting {} {} in {}",
        shoald.display(),
        args.join(" "),
        host.netns
    )?;

    let mut cmd = Command::new(shoald);
    cmd.args(&args)
        .current_dir(&dir)
        .env(ENV_LAB, &state.name)
        .env(ENV_NODE, node)
        .env("SHOAL_HOST", format!("unix://{}", socket.display()))
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    let mut entry = NetnsEntry::prepare(&netns::path(&host.netns), &state.scratch())
        .with_context(|| format!("preparing to enter {}", host.netns))?
        .new_session()
        .without_inherited_fds();
    // A node that did not lose power keeps its mounts (its daemon's bind-mounted
    // namespaces among them), as a host keeps them when only shoald restarts.
    let pin = mount_ns_pin(&dir);
    let pinned = pinned_mount_ns(&pin);
    if let Some(mount_ns) = &pinned {
        entry = entry.join_mount_ns(mount_ns.try_clone()?, &dir)?;
    }
    if let Some(cgroup) = lab_cgroup(&state.name).map(|c| c.join(node)) {
        entry = entry.cgroup(open_cgroup_procs(&cgroup)?);
    }
    entry.apply(&mut cmd);
    let child = cmd.spawn().with_context(|| {
        format!(
            "starting {} in namespace {} (see {})",
            shoald.display(),
            host.netns,
            log_path.display()
        )
    })?;
    let pid_path = dir.join("shoald.pid");
    fs::write(&pid_path, format!("{}\n", child.id()))
        .with_context(|| format!("writing {}", pid_path.display()))?;
    if pinned.is_none() {
        // The child made its mount namespace before exec, which spawn waited for.
        if let Err(e) = pin_mount_ns(child.id(), &pin) {
            tracing::warn!(lab = %state.name, node, error = %e, "pinning the node's mount namespace: a later start of its daemon alone gets fresh mounts");
        }
    }
    tracing::info!(lab = %state.name, node, pid = child.id(), "started shoald");
    Ok(child)
}

/// Where a node's mount namespace is pinned (bind-mounted in the host's mount
/// namespace) from its daemon's first start until the node loses power or the lab goes:
/// a daemon started again alone (after kill -9) joins it, so it finds the namespaces
/// its predecessor bind-mounted under its data root (tasks', networks'), as on a host.
fn mount_ns_pin(node_dir: &Path) -> PathBuf {
    node_dir.join("mntns")
}

/// The pinned mount namespace, if `pin` holds one.
fn pinned_mount_ns(pin: &Path) -> Option<File> {
    const NSFS_MAGIC: nix::sys::statfs::FsType = nix::sys::statfs::FsType(0x6e73_6673);
    let fs = nix::sys::statfs::statfs(pin).ok()?;
    (fs.filesystem_type() == NSFS_MAGIC)
        .then(|| File::open(pin).ok())
        .flatten()
}

fn pin_mount_ns(pid: u32, pin: &Path) -> io::Result<()> {
    File::create(pin)?;
    nix::mount::mount(
        Some(Path::new(&format!("/proc/{pid}/ns/mnt"))),
        pin,
        None::<&Path>,
        nix::mount::MsFlags::MS_BIND,
        None::<&Path>,
    )?;
    Ok(())
}

/// Drops a node's pinned mount namespace (it ends with the last process in it).
pub(super) fn unpin_mount_ns(node_dir: &Path) {
    let pin = mount_ns_pin(node_dir);
    let _ = nix::mount::umount2(&pin, nix::mount::MntFlags::MNT_DETACH);
    let _ = fs::remove_file(&pin);
}

/// Creates a cgroup and opens its `cgroup.procs` for writing. Another lab's teardown
/// may remove the shared parent meanwhile, hence the retries.
fn open_cgroup_procs(cgroup: &Path) -> Result<File> {
    let procs = cgroup.join("cgroup.procs");
    let mut attempts = 0;
    loop {
        let opened =
            fs::create_dir_all(cgroup).and_then(|()| OpenOptions::new().write(true).open(&procs));
        match opened {
            Ok(file) => return Ok(file),
            Err(e) if e.kind() == io::ErrorKind::NotFound && attempts < 5 => attempts += 1,
            Err(e) => return Err(e).with_context(|| format!("opening {}", procs.display())),
        }
    }
}

/// The last lines of a log file, for error messages.
fn log_tail(path: &Path) -> String {
    let Ok(mut file) = File::open(path) else {
        return "(no log)".into();
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = file.seek(SeekFrom::Start(len.saturating_sub(16 * 1024)));
    let mut bytes = Vec::new();
    let _ = file.read_to_end(&mut bytes);
    let text = String::from_utf8_lossy(&bytes);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
}

pub(super) fn stop_node(state: &LabState, node: &str) -> Result<()> {
    let host = state.node(node)?;
    let recorded = fs::read_to_string(state.node_dir(node).join("shoald.pid"))
        .ok()
        .and_then(|s| s.trim().parse().ok());
    let selector = Selector {
        netns: netns::id(&host.netns).into_iter().collect(),
        cgroup: lab_cgroup(&state.name).map(|c| c.join(node)),
        daemon_pids: recorded.into_iter().collect(),
        marker: node_marker(&state.name, node),
    };
    let survivors = selector.kill_all(KILL_TIMEOUT);
    if !survivors.is_empty() {
        bail!(
            "stopping {node} of lab {}: processes {survivors:?} still alive after SIGKILL and {KILL_TIMEOUT:?}",
            state.name
        );
    }
    // Power loss: the node's mounts go with it, and its kernel answers nothing more
    // (its eBPF programs answer other nodes' liveness probes, as a live host's do): its
    // port on the switch goes down until the node is started again.
    unpin_mount_ns(&state.node_dir(node));
    netns::set_down(&state.switch_netns, &host.name)
        .with_context(|| format!("unplugging {node} from the lab's switch"))?;
    tracing::info!(lab = %state.name, node, "stopped");
    Ok(())
}
