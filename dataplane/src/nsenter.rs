//! Starting a child inside a named network namespace: what `ip netns exec` does, but keeping the mounts below /sys (cgroups, bpffs) that a daemon needs.
//!
//! `ip netns exec` gives the child a fresh sysfs (so /sys/class/net shows the
//! namespace's links) and thereby hides /sys/fs/cgroup and /sys/fs/bpf. Here the
//! child also gets a new mount namespace and a fresh sysfs, but the submounts of
//! the old /sys are bound back in before it is replaced. Or it joins a mount
//! namespace made so before (a lab node's, which outlives its daemon).

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{setns, unshare, CloneFlags};

/// Everything the child needs, opened and allocated before fork: after fork only
/// async-signal-safe calls are allowed.
pub struct NetnsEntry {
    netns: File,
    scratch: CString,
    /// (mount point below the old /sys, the same path below the scratch sysfs)
    carried: Vec<(CString, CString)>,
    cgroup_procs: Option<File>,
    /// A mount namespace to join instead of making one, and the directory to work in
    /// there (joining one moves the working directory to its root).
    mount_ns: Option<(File, CString)>,
    new_session: bool,
    no_inherited_fds: bool,
}

impl NetnsEntry {
    /// Prepares entering the namespace file `netns_path`; `scratch` is an empty
    /// directory where the fresh sysfs is mounted before it is moved onto /sys.
    pub fn prepare(netns_path: &Path, scratch: &Path) -> io::Result<Self> {
        let netns = File::open(netns_path)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", netns_path.display())))?;
        if !scratch.is_dir() {
            std::fs::create_dir_all(scratch)
                .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", scratch.display())))?;
        }
        let scratch_c = cstring(scratch.as_os_str().as_bytes())?;
        let mut carried = Vec::new();
        for below in sys_submounts() {
            let src = cstring(format!("/sys/{below}").as_bytes())?;
            let mut dst = scratch.as_os_str().as_bytes().to_vec();
            dst.push(b'/');
            dst.extend_from_slice(below.as_bytes());
            carried.push((src, cstring(&dst)?));
        }
        Ok(NetnsEntry {
            netns,
            scratch: scratch_c,
            carried,
            cgroup_procs: None,
            mount_ns: None,
            new_session: false,
            no_inherited_fds: false,
        })
    }

    /// Also moves the child into the cgroup whose `cgroup.procs` is given (opened for writing).
    pub fn cgroup(mut self, procs: File) -> Self {
        self.cgroup_procs = Some(procs);
        self
    }

    /// Joins the mount namespace `mount_ns` (an nsfs file of one made by an earlier
    /// entry into the same network namespace, with its sysfs) instead of making a new one,
    /// and works in `cwd` there.
    pub fn join_mount_ns(mut self, mount_ns: File, cwd: &Path) -> io::Result<Self> {
        self.mount_ns = Some((mount_ns, cstring(cwd.as_os_str().as_bytes())?));
        Ok(self)
    }

    /// Also makes the child a session (and process group) leader, detached from our terminal.
    pub fn new_session(mut self) -> Self {
        self.new_session = true;
        self
    }

    /// Also keeps every descriptor the caller inherited from its own parent (one not
    /// marked close-on-exec: say, the lock `flock` holds while it runs the caller) out
    /// of the child. For a daemon: it outlives the caller and would hold them for good.
    pub fn without_inherited_fds(mut self) -> Self {
        self.no_inherited_fds = true;
        self
    }

    /// Installs the entry into `cmd`, to run between fork and exec.
    pub fn apply(self, cmd: &mut Command) {
        // SAFETY: the closure only makes raw system calls (close_range, setsid, write, setns,
        // unshare, mount, umount2) on data prepared before fork; it allocates
        // nothing and takes no locks, so it is safe between fork and exec.
        unsafe {
            cmd.pre_exec(move || self.enter());
        }
    }

    fn enter(&self) -> io::Result<()> {
        if self.no_inherited_fds {
            // Marked close-on-exec, not closed: the pipe that reports a failed exec
            // to the parent must stay open until the exec.
            // SAFETY: a system call on no memory of ours.
            let rc = unsafe {
                nix::libc::syscall(
                    nix::libc::SYS_close_range,
                    3u32,
                    u32::MAX,
                    nix::libc::CLOSE_RANGE_CLOEXEC,
                )
            };
            if rc < 0 {
                return Err(io::Error::last_os_error());
            }
        }
        if self.new_session {
            nix::unistd::setsid()?;
        }
        if let Some(procs) = &self.cgroup_procs {
            // "0" means the writing process itself.
            nix::unistd::write(procs, b"0")?;
        }
        setns(&self.netns, CloneFlags::CLONE_NEWNET)?;
        if let Some((mount_ns, cwd)) = &self.mount_ns {
            setns(mount_ns, CloneFlags::CLONE_NEWNS)?;
            nix::unistd::chdir(cwd.as_c_str())?;
            return Ok(());
        }
        unshare(CloneFlags::CLONE_NEWNS)?;
        // Our mounts must not propagate back to the host's mount namespace.
        mount(
            None::<&Path>,
            c"/",
            None::<&Path>,
            MsFlags::MS_SLAVE | MsFlags::MS_REC,
            None::<&Path>,
        )?;
        // A sysfs mounted from inside the namespace shows its links under /sys/class/net.
        mount(
            Some(c"sysfs"),
            self.scratch.as_c_str(),
            Some(c"sysfs"),
            MsFlags::empty(),
            None::<&Path>,
        )?;
        for (src, dst) in &self.carried {
            // Best effort: a submount whose directory the fresh sysfs lacks stays behind.
            let _ = mount(
                Some(src.as_c_str()),
                dst.as_c_str(),
                None::<&Path>,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None::<&Path>,
            );
        }
        let _ = umount2(c"/sys", MntFlags::MNT_DETACH);
        mount(
            Some(self.scratch.as_c_str()),
            c"/sys",
            None::<&Path>,
            MsFlags::MS_MOVE,
            None::<&Path>,
        )?;
        Ok(())
    }
}

fn cstring(bytes: &[u8]) -> io::Result<CString> {
    CString::new(bytes).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))
}

/// Mount points directly below the topmost /sys mount, relative to /sys (e.g. "fs/cgroup").
fn sys_submounts() -> Vec<String> {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    // mountinfo: ID PARENT MAJ:MIN ROOT MOUNTPOINT ...
    let rows: Vec<(&str, &str, &str)> = info
        .lines()
        .filter_map(|line| {
            let mut f = line.split(' ');
            let id = f.next()?;
            let parent = f.next()?;
            let mountpoint = f.nth(2)?;
            Some((id, parent, mountpoint))
        })
        .collect();
    let Some(sys_id) = rows
        .iter()
        .rev()
        .find(|(_, _, mp)| *mp == "/sys")
        .map(|(id, _, _)| *id)
    else {
        return Vec::new();
    };
    rows.iter()
        .filter(|(_, parent, mp)| *parent == sys_id && !mp.contains('\\'))
        .filter_map(|(_, _, mp)| mp.strip_prefix("/sys/"))
        .map(str::to_string)
        .collect()
}
