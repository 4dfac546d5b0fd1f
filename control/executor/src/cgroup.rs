//! Task cgroups on a v2, v1 or hybrid host: detection, limits, membership, kill and removal.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};
use tracing::{debug, warn};

/// CFS period for CPU limits, as Docker uses.
pub(crate) const CPU_PERIOD_US: i64 = 100_000;
/// The smallest quota the kernel accepts.
const CPU_MIN_QUOTA_US: i64 = 1_000;
/// The directory, under each hierarchy's parent, that holds all Shoal executors.
const TOP: &str = "shoal";

#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("creating cgroup {0}: {1}")]
    Create(PathBuf, #[source] io::Error),
    #[error("writing {value:?} to {path}: {source}")]
    Write {
        path: PathBuf,
        value: String,
        #[source]
        source: io::Error,
    },
    #[error("removing cgroup {0}: {1}")]
    Remove(PathBuf, #[source] io::Error),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Controller {
    Memory,
    Cpu,
    Pids,
}

impl Controller {
    const ALL: [Controller; 3] = [Controller::Memory, Controller::Cpu, Controller::Pids];

    fn name(self) -> &'static str {
        match self {
            Controller::Memory => "memory",
            Controller::Cpu => "cpu",
            Controller::Pids => "pids",
        }
    }
}

/// Resource limits of one task; None means unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Limits {
    pub memory_bytes: Option<i64>,
    pub nano_cpus: Option<i64>,
    pub pids: Option<i64>,
}

impl Limits {
    /// Zero and negative values mean "no limit", as in Docker's API.
    pub fn new(memory_bytes: Option<i64>, nano_cpus: Option<i64>, pids: Option<i64>) -> Self {
        let positive = |v: Option<i64>| v.filter(|v| *v > 0);
        Self {
            memory_bytes: positive(memory_bytes),
            nano_cpus: positive(nano_cpus),
            pids: positive(pids),
        }
    }

    /// The files to write, in order, to apply this limit of `controller`.
    fn files(&self, controller: Controller, v2: bool) -> Vec<(&'static str, String)> {
        match controller {
            Controller::Memory => self
                .memory_bytes
                .map(|b| {
                    vec![(
                        if v2 {
                            "memory.max"
                        } else {
                            "memory.limit_in_bytes"
                        },
                        b.to_string(),
                    )]
                })
                .unwrap_or_default(),
            Controller::Cpu => self
                .nano_cpus
                .map(|n| {
                    let quota = cpu_quota_us(n);
                    if v2 {
                        vec![("cpu.max", format!("{quota} {CPU_PERIOD_US}"))]
                    } else {
                        // The period first: the quota is checked against it.
                        vec![
                            ("cpu.cfs_period_us", CPU_PERIOD_US.to_string()),
                            ("cpu.cfs_quota_us", quota.to_string()),
                        ]
                    }
                })
                .unwrap_or_default(),
            Controller::Pids => self
                .pids
                .map(|p| vec![("pids.max", p.to_string())])
                .unwrap_or_default(),
        }
    }
}

/// Docker's conversion: NanoCPUs of 1e9 is one CPU, a full period of quota.
pub(crate) fn cpu_quota_us(nano_cpus: i64) -> i64 {
    let quota = i128::from(nano_cpus) * i128::from(CPU_PERIOD_US) / 1_000_000_000;
    i64::try_from(quota)
        .unwrap_or(i64::MAX)
        .max(CPU_MIN_QUOTA_US)
}

/// Where the cgroup hierarchies of this host are, found once at startup.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Layout {
    /// The cgroup2 mount: on a pure v2 host it has the controllers, on a hybrid one it
    /// is bare but still gives cgroup.kill and a cgroup that a service manager's kill
    /// of the daemon does not reach.
    unified: Option<Unified>,
    /// v1 hierarchies holding a controller we use (memory, cpu, pids).
    legacy: Vec<Legacy>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Unified {
    mountpoint: PathBuf,
    controllers: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Legacy {
    controllers: Vec<String>,
    /// The daemon's own cgroup in this hierarchy: tasks nest under it, so they stay
    /// inside whatever envelope the daemon was given (v1 has no rule against
    /// processes in inner cgroups).
    own: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    Unified,
    Legacy(usize),
}

impl Layout {
    pub fn detect() -> Self {
        let mountinfo = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let own = fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
        let mut layout = Self::parse(&mountinfo, &own, |p| p.is_dir());
        if let Some(u) = &mut layout.unified {
            let list =
                fs::read_to_string(u.mountpoint.join("cgroup.controllers")).unwrap_or_default();
            u.controllers = list.split_whitespace().map(str::to_owned).collect();
        }
        debug!(?layout, "cgroup layout");
        layout
    }

    /// The layout from the text of /proc/self/mountinfo and /proc/self/cgroup; `is_dir`
    /// tells whether the daemon's own v1 cgroup is visible (else tasks go to the root).
    fn parse(mountinfo: &str, own_cgroups: &str, is_dir: impl Fn(&Path) -> bool) -> Self {
        let mut layout = Layout::default();
        for line in mountinfo.lines() {
            let fields: Vec<&str> = line.split(' ').collect();
            let Some(dash) = fields.iter().position(|f| *f == "-") else {
                continue;
            };
            let (Some(root), Some(mountpoint), Some(fstype), Some(options)) = (
                fields.get(3),
                fields.get(4),
                fields.get(dash + 1),
                fields.get(dash + 3),
            ) else {
                continue;
            };
            let mountpoint = PathBuf::from(unescape_mountinfo(mountpoint));
            match *fstype {
                "cgroup2" if layout.unified.is_none() => {
                    layout.unified = Some(Unified {
                        mountpoint,
                        controllers: Vec::new(),
                    });
                }
                "cgroup" => {
                    let controllers: Vec<String> = options
                        .split(',')
                        .filter(|o| Controller::ALL.iter().any(|c| c.name() == *o))
                        .map(str::to_owned)
                        .collect();
                    let taken =
                        |c: &String| layout.legacy.iter().any(|l| l.controllers.contains(c));
                    if controllers.is_empty() || controllers.iter().any(taken) {
                        continue;
                    }
                    let own = own_path(own_cgroups, &controllers[0])
                        .map(|p| p.strip_prefix(root).map(str::to_owned).unwrap_or_default())
                        .map(|rel| mountpoint.join(rel.trim_start_matches('/')))
                        .filter(|p| is_dir(p))
                        .unwrap_or(mountpoint);
                    layout.legacy.push(Legacy { controllers, own });
                }
                _ => {}
            }
        }
        layout
    }

    fn place(&self, controller: Controller) -> Option<Place> {
        let name = controller.name();
        if self
            .unified
            .as_ref()
            .is_some_and(|u| u.controllers.iter().any(|c| c == name))
        {
            return Some(Place::Unified);
        }
        self.legacy
            .iter()
            .position(|l| l.controllers.iter().any(|c| c == name))
            .map(Place::Legacy)
    }

    /// Creates the task's cgroups, `<parent>/shoal/<executor>/<task_id>` in every
    /// hierarchy, and applies `limits` where their controller exists. On error,
    /// whatever was created is removed again.
    pub fn create(
        &self,
        executor: &str,
        task_id: &str,
        limits: &Limits,
    ) -> Result<TaskCgroups, CgroupError> {
        let mut made = TaskCgroups::default();
        let result = self.create_into(&mut made, executor, task_id, limits);
        if result.is_err() {
            if let Err(e) = made.remove(Duration::from_secs(1)) {
                warn!(task_id, error = %e, "removing cgroups of a task that failed to start");
            }
        }
        result.map(|()| made)
    }

    fn create_into(
        &self,
        made: &mut TaskCgroups,
        executor: &str,
        task_id: &str,
        limits: &Limits,
    ) -> Result<(), CgroupError> {
        if let Some(u) = &self.unified {
            let top = u.mountpoint.join(TOP);
            let parent = top.join(executor);
            mkdir_all(&parent)?;
            let wanted: Vec<&str> = Controller::ALL
                .iter()
                .map(|c| c.name())
                .filter(|c| u.controllers.iter().any(|x| x == c))
                .collect();
            for dir in [&u.mountpoint, &top, &parent] {
                enable_controllers(dir, &wanted);
            }
            let dir = parent.join(task_id);
            mkdir(&dir)?;
            made.unified = Some(dir);
            // Shims live outside the daemon's cgroup, so that stopping the daemon's
            // service (which kills its whole v2 cgroup) leaves them recording exit codes.
            let shims = top.join(format!("{executor}-shims"));
            mkdir_all(&shims)?;
            made.shim = Some(shims);
        }
        for legacy in &self.legacy {
            let parent = legacy.own.join(TOP).join(executor);
            mkdir_all(&parent)?;
            let dir = parent.join(task_id);
            mkdir(&dir)?;
            made.legacy.push(dir);
        }
        for controller in Controller::ALL {
            let files = limits.files(controller, true);
            if files.is_empty() {
                continue;
            }
            let (dir, v2) = match self.place(controller) {
                Some(Place::Unified) => (made.unified.as_deref(), true),
                Some(Place::Legacy(i)) => (made.legacy.get(i).map(PathBuf::as_path), false),
                None => (None, false),
            };
            let Some(dir) = dir else {
                warn!(
                    task_id,
                    controller = controller.name(),
                    "controller not available: limit not applied"
                );
                continue;
            };
            for (file, value) in limits.files(controller, v2) {
                write(&dir.join(file), &value)?;
            }
        }
        Ok(())
    }
}

/// /proc/self/cgroup: "<id>:<controllers>:<path>"; the path for the v1 hierarchy holding `controller`.
fn own_path(own_cgroups: &str, controller: &str) -> Option<String> {
    own_cgroups.lines().find_map(|line| {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        controllers
            .split(',')
            .any(|c| c == controller)
            .then(|| path.to_owned())
    })
}

/// mountinfo escapes space, tab, newline and backslash as octal.
fn unescape_mountinfo(field: &str) -> String {
    field
        .replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\012", "\n")
        .replace("\\134", "\\")
}

fn enable_controllers(dir: &Path, wanted: &[&str]) {
    let available = fs::read_to_string(dir.join("cgroup.controllers")).unwrap_or_default();
    for name in wanted
        .iter()
        .filter(|w| available.split_whitespace().any(|a| a == **w))
    {
        if let Err(e) = fs::write(dir.join("cgroup.subtree_control"), format!("+{name}")) {
            debug!(dir = %dir.display(), controller = name, error = %e, "enabling controller");
        }
    }
}

fn mkdir_all(dir: &Path) -> Result<(), CgroupError> {
    fs::create_dir_all(dir).map_err(|e| CgroupError::Create(dir.to_owned(), e))
}

/// A leftover cgroup of the same task id (from a crashed start) is reused.
fn mkdir(dir: &Path) -> Result<(), CgroupError> {
    match fs::create_dir(dir) {
        Err(e) if e.kind() != io::ErrorKind::AlreadyExists => {
            Err(CgroupError::Create(dir.to_owned(), e))
        }
        _ => Ok(()),
    }
}

fn write(path: &Path, value: &str) -> Result<(), CgroupError> {
    fs::write(path, value).map_err(|source| CgroupError::Write {
        path: path.to_owned(),
        value: value.to_owned(),
        source,
    })
}

/// Moves the calling process into the cgroup `dir`.
pub(crate) fn join(dir: &Path) -> Result<(), CgroupError> {
    // "0" names the writer itself, whatever pid namespace it is in.
    write(&dir.join("cgroup.procs"), "0")
}

/// The cgroups of one task, recorded in its state dir.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct TaskCgroups {
    /// The task's cgroup in the v2 hierarchy.
    pub unified: Option<PathBuf>,
    /// The task's cgroups in the v1 hierarchies.
    pub legacy: Vec<PathBuf>,
    /// The v2 cgroup the task's shim moves to (shared by the executor's shims).
    pub shim: Option<PathBuf>,
}

impl TaskCgroups {
    fn dirs(&self) -> impl Iterator<Item = &Path> {
        self.unified
            .iter()
            .chain(&self.legacy)
            .map(PathBuf::as_path)
    }

    /// Moves the calling process into all of the task's cgroups.
    pub fn join(&self) -> Result<(), CgroupError> {
        self.dirs().try_for_each(join)
    }

    /// Every process in any of the task's cgroups, as host pids.
    pub fn pids(&self) -> Vec<i32> {
        let mut pids: Vec<i32> = self
            .dirs()
            .filter_map(|d| fs::read_to_string(d.join("cgroup.procs")).ok())
            .flat_map(|text| {
                text.lines()
                    .filter_map(|l| l.trim().parse().ok())
                    .collect::<Vec<_>>()
            })
            .collect();
        pids.sort_unstable();
        pids.dedup();
        pids
    }

    /// SIGKILL to everything in the task's cgroups: cgroup.kill where the kernel has
    /// it (v2, also bare), else each listed pid.
    pub fn kill(&self) {
        if let Some(dir) = &self.unified {
            let file = dir.join("cgroup.kill");
            if file.exists() && fs::write(&file, "1").is_ok() {
                return;
            }
        }
        for pid in self.pids() {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
    }

    /// Removes the task's cgroups, killing stragglers, then the executor's parent
    /// cgroups if no other task uses them.
    pub fn remove(&self, timeout: Duration) -> Result<(), CgroupError> {
        let deadline = Instant::now() + timeout;
        for dir in self.dirs() {
            loop {
                match fs::remove_dir(dir) {
                    Ok(()) => break,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => break,
                    Err(e)
                        if e.raw_os_error() == Some(libc::EBUSY) && Instant::now() < deadline =>
                    {
                        self.kill();
                        thread::sleep(Duration::from_millis(10));
                    }
                    Err(e) => return Err(CgroupError::Remove(dir.to_owned(), e)),
                }
            }
        }
        for dir in self.dirs() {
            if let Some(executor) = dir.parent() {
                prune(executor);
            }
        }
        if let Some(shims) = &self.shim {
            let _ = fs::remove_dir(shims);
            if let Some(top) = shims.parent() {
                prune_top(top);
            }
        }
        Ok(())
    }
}

/// Removes an executor's parent cgroup and the `shoal` one above it, if empty (if
/// not, another task or executor still uses them and rmdir fails harmlessly).
fn prune(executor: &Path) {
    if fs::remove_dir(executor).is_ok() {
        if let Some(top) = executor.parent() {
            prune_top(top);
        }
    }
}

fn prune_top(top: &Path) {
    if top.file_name().is_some_and(|n| n == TOP) {
        let _ = fs::remove_dir(top);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID_MOUNTINFO: &str = "\
25 30 0:23 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
31 25 0:26 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:27 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
33 31 0:28 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
34 31 0:29 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
35 31 0:30 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
36 31 0:31 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
37 31 0:32 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";
    const HYBRID_SELF: &str = "\
9:name=systemd:/
4:memory:/sandbox/abc
3:pids:/
2:cpu,cpuacct:/
0::/
";

    #[test]
    fn hybrid_host_has_a_bare_unified_hierarchy_and_v1_controllers_nested_under_the_daemon() {
        let layout = Layout::parse(HYBRID_MOUNTINFO, HYBRID_SELF, |_| true);
        assert_eq!(
            layout.unified,
            Some(Unified {
                mountpoint: "/sys/fs/cgroup/unified".into(),
                controllers: vec![]
            })
        );
        let own: Vec<_> = layout
            .legacy
            .iter()
            .map(|l| (l.controllers.join(","), l.own.clone()))
            .collect();
        assert_eq!(
            own,
            [
                (
                    "cpu".to_owned(),
                    PathBuf::from("/sys/fs/cgroup/cpu,cpuacct")
                ),
                (
                    "memory".to_owned(),
                    PathBuf::from("/sys/fs/cgroup/memory/sandbox/abc")
                ),
                ("pids".to_owned(), PathBuf::from("/sys/fs/cgroup/pids")),
            ]
        );
        assert_eq!(layout.place(Controller::Memory), Some(Place::Legacy(1)));
    }

    #[test]
    fn an_invisible_own_cgroup_falls_back_to_the_hierarchy_root() {
        let layout = Layout::parse(HYBRID_MOUNTINFO, HYBRID_SELF, |p| !p.ends_with("abc"));
        assert_eq!(layout.legacy[1].own, PathBuf::from("/sys/fs/cgroup/memory"));
    }

    #[test]
    fn pure_v2_host_prefers_the_unified_controllers() {
        let mountinfo = "30 25 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n";
        let mut layout = Layout::parse(mountinfo, "0::/system.slice/shoald.service\n", |_| true);
        assert!(layout.legacy.is_empty());
        layout.unified.as_mut().unwrap().controllers =
            vec!["cpu".into(), "memory".into(), "pids".into()];
        assert_eq!(layout.place(Controller::Cpu), Some(Place::Unified));
    }

    #[test]
    fn limits_map_to_v1_and_v2_files() {
        let limits = Limits::new(Some(64 << 20), Some(1_500_000_000), Some(0));
        assert_eq!(limits.pids, None);
        assert_eq!(
            limits.files(Controller::Memory, true),
            [("memory.max", "67108864".to_owned())]
        );
        assert_eq!(
            limits.files(Controller::Memory, false),
            [("memory.limit_in_bytes", "67108864".to_owned())]
        );
        assert_eq!(
            limits.files(Controller::Cpu, true),
            [("cpu.max", "150000 100000".to_owned())]
        );
        assert_eq!(
            limits.files(Controller::Cpu, false),
            [
                ("cpu.cfs_period_us", "100000".to_owned()),
                ("cpu.cfs_quota_us", "150000".to_owned())
            ]
        );
        assert!(limits.files(Controller::Pids, true).is_empty());
        assert_eq!(cpu_quota_us(1), CPU_MIN_QUOTA_US);
    }
}
