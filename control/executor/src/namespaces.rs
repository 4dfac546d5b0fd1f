//! Creating a task's namespaces and mounts (inside the shim's child) and joining them (for exec).

use std::fs::{self, File, OpenOptions};
use std::os::fd::OwnedFd;
use std::path::Path;

use nix::mount::{mount, MsFlags};
use nix::sched::{setns, unshare, CloneFlags};
use nix::unistd::sethostname;

use crate::{sys, BindMount, TaskRun};

/// The namespaces an exec joins, in the order it joins them: mnt last, because it
/// changes the root and working directory under which the others were opened.
const JOINED: [(&str, CloneFlags); 5] = [
    ("ipc", CloneFlags::CLONE_NEWIPC),
    ("uts", CloneFlags::CLONE_NEWUTS),
    ("net", CloneFlags::CLONE_NEWNET),
    ("pid", CloneFlags::CLONE_NEWPID),
    ("mnt", CloneFlags::CLONE_NEWNS),
];

/// In the task's init (already in its new pid namespace): new mount, UTS and IPC
/// namespaces, a fresh network namespace or the given one, lo up, the hostname.
pub(crate) fn create(spec: &TaskRun) -> Result<(), String> {
    let mut flags = CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWUTS | CloneFlags::CLONE_NEWIPC;
    match &spec.netns {
        Some(path) => {
            let netns = File::open(path)
                .map_err(|e| format!("opening network namespace {}: {e}", path.display()))?;
            setns(&netns, CloneFlags::CLONE_NEWNET)
                .map_err(|e| format!("joining network namespace {}: {e}", path.display()))?;
        }
        None => flags |= CloneFlags::CLONE_NEWNET,
    }
    unshare(flags).map_err(|e| format!("creating namespaces: {e}"))?;
    sys::set_loopback_up().map_err(|e| format!("bringing up lo: {e}"))?;
    sethostname(hostname(spec))
        .map_err(|e| format!("setting hostname {:?}: {e}", hostname(spec)))?;
    Ok(())
}

/// The task's hostname; Docker's default is the short container id.
pub(crate) fn hostname(spec: &TaskRun) -> &str {
    if spec.hostname.is_empty() {
        &spec.task_id[..spec.task_id.len().min(12)]
    } else {
        &spec.hostname
    }
}

/// In the task's new mount namespace: stop propagation both ways, create the mounts'
/// targets, make every mount read-only if asked (docker's `--read-only`) and /sys
/// read-only in any case (masked paths hidden), bind the mounts (parents before
/// children), and mount a /proc for the new pid namespace (and, read-only, a fresh
/// /dev/shm, as a container has its own).
pub(crate) fn mount_filesystems(mounts: &[BindMount], read_only: bool) -> Result<(), String> {
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(|e| format!("making / private: {e}"))?;
    let mut ordered: Vec<&BindMount> = mounts.iter().collect();
    ordered.sort_by_key(|m| m.target.components().count());
    let mut sources_are_dirs = Vec::with_capacity(ordered.len());
    for m in &ordered {
        let is_dir = fs::metadata(&m.source)
            .map_err(|e| format!("mounting {}: {e}", m.source.display()))?
            .is_dir();
        // On the shared host filesystem, as Docker does in a rootfs; before a read-only
        // root would refuse it (a target under another mount's target is made again
        // below, once that one is mounted).
        let _ = create_target(&m.target, is_dir);
        sources_are_dirs.push(is_dir);
    }
    if read_only {
        sys::set_read_only_recursive("/", true).map_err(|e| format!("making / read-only: {e}"))?;
    }
    // Before the task's own mounts, as docker mounts its read-only sysfs before them: a
    // volume bound under /sys, or from it, stays as asked.
    protect_sys()?;
    for (m, is_dir) in ordered.into_iter().zip(sources_are_dirs) {
        let under_read_only = read_only || is_under(&m.source, SYS);
        bind(m, is_dir, under_read_only).map_err(|e| {
            format!(
                "mounting {} on {}: {e}",
                m.source.display(),
                m.target.display()
            )
        })?;
    }
    mount(
        Some("proc"),
        "/proc",
        Some("proc"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        None::<&str>,
    )
    .map_err(|e| format!("mounting /proc: {e}"))?;
    if read_only && Path::new("/dev/shm").is_dir() {
        mount(
            Some("shm"),
            "/dev/shm",
            Some("tmpfs"),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
            Some("mode=1777,size=65536k"),
        )
        .map_err(|e| format!("mounting /dev/shm: {e}"))?;
    }
    Ok(())
}

const SYS: &str = "/sys";

/// docker's ReadonlyPaths (moby's oci defaults): kernel settings of the whole node,
/// read-only in the task once its own sysctls are written.
const READ_ONLY_PROC_PATHS: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// docker's MaskedPaths under /proc: what a container must not read (kernel memory,
/// keys, timers, interrupts) shows empty.
const MASKED_PROC_PATHS: &[&str] = &[
    "/proc/acpi",
    "/proc/asound",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/proc/timer_list",
    "/proc/timer_stats",
];

/// docker's MaskedPaths under /sys (with each CPU's thermal_throttle, found at run time).
const MASKED_SYS_PATHS: &[&str] = &["/sys/devices/virtual/powercap", "/sys/firmware"];

fn is_under(path: &Path, dir: &str) -> bool {
    let path = fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    path.starts_with(dir)
}

/// The node's /sys, read-only in the task's mount namespace (every mount under it
/// too, cgroupfs included: the shim and the daemon manage the task's cgroups from
/// outside), with docker's masked paths hidden. docker mounts a fresh read-only sysfs;
/// one of the task's network namespace cannot be mounted here, so the node's is bound.
fn protect_sys() -> Result<(), String> {
    if !Path::new(SYS).is_dir() {
        return Ok(());
    }
    read_only_path(SYS)?;
    let mut masked: Vec<String> = MASKED_SYS_PATHS.iter().map(|p| p.to_string()).collect();
    if let Ok(cpus) = fs::read_dir("/sys/devices/system/cpu") {
        for cpu in cpus.flatten() {
            let name = cpu.file_name();
            let name = name.to_string_lossy();
            let numbered = name
                .strip_prefix("cpu")
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
            if numbered {
                masked.push(format!("/sys/devices/system/cpu/{name}/thermal_throttle"));
            }
        }
    }
    masked.sort();
    for path in &masked {
        mask_path(path)?;
    }
    Ok(())
}

/// In the task's mount namespace, with its own /proc mounted and its sysctls written:
/// docker's read-only and masked /proc paths (runc's way), so a root task can change
/// no kernel setting of the node (its network namespace's sysctls are set only by
/// `--sysctl`, before this).
pub(crate) fn protect_proc() -> Result<(), String> {
    for path in READ_ONLY_PROC_PATHS {
        read_only_path(path)?;
    }
    for path in MASKED_PROC_PATHS {
        mask_path(path)?;
    }
    Ok(())
}

/// `path` bound onto itself and made read-only with every mount under it; nothing if
/// it does not exist.
fn read_only_path(path: &str) -> Result<(), String> {
    if !Path::new(path).exists() {
        return Ok(());
    }
    mount(
        Some(path),
        path,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(|e| format!("binding {path} onto itself: {e}"))?;
    sys::set_read_only_recursive(path, true).map_err(|e| format!("making {path} read-only: {e}"))
}

/// `path` hidden: an empty read-only tmpfs over a directory, /dev/null over a file;
/// nothing if it does not exist.
fn mask_path(path: &str) -> Result<(), String> {
    let Ok(meta) = fs::metadata(path) else {
        return Ok(());
    };
    let masked = if meta.is_dir() {
        mount(
            Some("tmpfs"),
            path,
            Some("tmpfs"),
            MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
            None::<&str>,
        )
    } else {
        mount(
            Some("/dev/null"),
            path,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
    };
    masked.map_err(|e| format!("masking {path}: {e}"))
}

/// `under_read_only`: the source's own mount is read-only in this namespace, and a bind
/// mount takes its flags: one asked writable is made writable again.
fn bind(m: &BindMount, source_is_dir: bool, under_read_only: bool) -> Result<(), String> {
    if !m.target.exists() {
        create_target(&m.target, source_is_dir).map_err(|e| format!("creating target: {e}"))?;
    }
    mount(
        Some(&m.source),
        &m.target,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(|e| e.to_string())?;
    if m.read_only {
        // A bind mount takes the read-only flag only on a remount.
        let flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY;
        mount(None::<&str>, &m.target, None::<&str>, flags, None::<&str>)
            .map_err(|e| format!("making it read-only: {e}"))?;
    } else if under_read_only {
        let target = m.target.to_str().ok_or("target is not UTF-8")?;
        sys::set_read_only_recursive(target, false)
            .map_err(|e| format!("making it writable: {e}"))?;
    }
    Ok(())
}

/// The target must exist and be of the source's kind (a directory, or a file for a
/// file); it is created on the shared host filesystem, as Docker does in a rootfs.
fn create_target(target: &Path, directory: bool) -> std::io::Result<()> {
    if directory {
        return fs::create_dir_all(target);
    }
    if let Some(parent) = target.parent() {
        fs::create_dir_all(parent)?;
    }
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(target)
        .map(drop)
}

/// The namespaces of the running task whose init is `pid`, opened now and joined
/// later by [`enter`].
pub(crate) fn open_of(pid: i32) -> Result<Vec<(OwnedFd, CloneFlags)>, String> {
    JOINED
        .iter()
        .map(|(name, flag)| {
            let path = format!("/proc/{pid}/ns/{name}");
            File::open(&path)
                .map(|f| (OwnedFd::from(f), *flag))
                .map_err(|e| format!("opening {path}: {e}"))
        })
        .collect()
}

/// Joins namespaces opened by [`open_of`]. The pid namespace applies to children only.
pub(crate) fn enter(namespaces: Vec<(OwnedFd, CloneFlags)>) -> Result<(), String> {
    for (fd, flag) in namespaces {
        setns(&fd, flag).map_err(|e| format!("joining {flag:?} namespace: {e}"))?;
    }
    Ok(())
}
