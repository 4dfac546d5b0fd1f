//! Every raw system call of the executor (fork, pidfds, close_range, ioctl, _exit, spawn hooks) behind safe wrappers.

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command};

use nix::fcntl::{fcntl, FcntlArg, FdFlag};
use nix::sys::signal::{self, SigHandler, SigSet, SigmaskHow, Signal};
use nix::unistd::ForkResult;

/// The fd on which a spawned shim finds the write end of its report pipe.
pub(crate) const REPORT_FD: RawFd = 3;

/// Spawns `cmd` in a new session with `report` duplicated onto [`REPORT_FD`] (and not
/// close-on-exec there). `report` must be above the stdio fds, or the stdio set-up of
/// the child would overwrite it first.
pub(crate) fn spawn_with_report_fd(cmd: &mut Command, report: RawFd) -> io::Result<Child> {
    if report <= libc::STDERR_FILENO {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "report fd overlaps stdio",
        ));
    }
    // SAFETY: the hook runs in the forked child before exec and calls only fcntl, dup2
    // and setsid, which are async-signal-safe; it allocates nothing and takes no lock
    // (io::Error::last_os_error only wraps errno).
    unsafe {
        cmd.pre_exec(move || {
            if report == REPORT_FD {
                let flags = libc::fcntl(REPORT_FD, libc::F_GETFD);
                if flags < 0 || libc::fcntl(REPORT_FD, libc::F_SETFD, flags & !libc::FD_CLOEXEC) < 0
                {
                    return Err(io::Error::last_os_error());
                }
            } else if libc::dup2(report, REPORT_FD) < 0 {
                return Err(io::Error::last_os_error());
            }
            if libc::setsid() < 0 {
                return Err(io::Error::last_os_error());
            }
            restore_nofile_limit()
        });
    }
    cmd.spawn()
}

/// Moves `fd` above the stdio fds if a daemon with closed stdio got it there.
pub(crate) fn above_stdio(fd: OwnedFd) -> io::Result<OwnedFd> {
    if fd.as_raw_fd() > libc::STDERR_FILENO {
        return Ok(fd);
    }
    let dup = fcntl(
        fd.as_raw_fd(),
        FcntlArg::F_DUPFD_CLOEXEC(libc::STDERR_FILENO + 1),
    )?;
    // SAFETY: fcntl just returned this new fd to us; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(dup) })
}

/// In a freshly exec'd shim: takes ownership of the report pipe, if the spawner passed one.
/// Call at most once.
pub(crate) fn take_report_fd() -> Option<File> {
    let flags = fcntl(REPORT_FD, FcntlArg::F_GETFD).ok()?;
    let flags = FdFlag::from_bits_truncate(flags) | FdFlag::FD_CLOEXEC;
    fcntl(REPORT_FD, FcntlArg::F_SETFD(flags)).ok()?;
    // SAFETY: fd 3 is open (F_GETFD succeeded) and was placed there by
    // spawn_with_report_fd for this process alone; the shim calls this once, first
    // thing, so no other owner of the fd exists.
    Some(unsafe { File::from_raw_fd(REPORT_FD) })
}

/// Proof that the process had one thread when it was made. Take it before entering
/// another mount namespace (whose /proc may not show this process), and start no
/// thread afterwards: the shim and the exec helper never do.
pub(crate) struct SingleThreaded(std::marker::PhantomData<*const ()>);

impl SingleThreaded {
    pub fn check() -> io::Result<Self> {
        let threads = std::fs::read_dir("/proc/self/task")?.count();
        if threads != 1 {
            return Err(io::Error::other(format!(
                "refusing to fork a process with {threads} threads"
            )));
        }
        Ok(Self(std::marker::PhantomData))
    }

    /// fork(2); the child may run arbitrary code.
    pub fn fork(&self) -> io::Result<ForkResult> {
        // SAFETY: `self` proves the process has a single thread (checked at creation,
        // and the shim and exec helper start none), so the child cannot inherit a lock
        // or allocator state held by another thread.
        Ok(unsafe { nix::unistd::fork() }?)
    }
}

/// Ends the process at once, without destructors or atexit handlers: what a forked
/// child must do, so that it never flushes buffers copied from its parent.
pub(crate) fn exit_now(code: i32) -> ! {
    // SAFETY: _exit has no preconditions; it never returns.
    unsafe { libc::_exit(code) }
}

/// Closes every fd from `first` up.
pub(crate) fn close_fds_from(first: RawFd) -> io::Result<()> {
    close_range(first, 0)
}

/// Marks every fd from `first` up close-on-exec.
pub(crate) fn cloexec_fds_from(first: RawFd) -> io::Result<()> {
    close_range(first, libc::CLOSE_RANGE_CLOEXEC)
}

fn close_range(first: RawFd, flags: libc::c_uint) -> io::Result<()> {
    let first = libc::c_uint::try_from(first).map_err(io::Error::other)?;
    // SAFETY: close_range only changes this process's fd table; callers own every fd
    // from `first` up (they run first thing in a fresh shim process or right before exec).
    let rc = unsafe { libc::syscall(libc::SYS_close_range, first, libc::c_uint::MAX, flags) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// A pidfd for `pid`: signals sent through it cannot hit a later process reusing the pid.
pub(crate) fn pidfd_open(pid: i32) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags (no memory) and returns a new fd or -1.
    let rc = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    let fd = RawFd::try_from(rc).map_err(io::Error::other)?;
    // SAFETY: the kernel just returned this fd to us; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

pub(crate) fn pidfd_send_signal(pidfd: BorrowedFd<'_>, sig: Signal) -> io::Result<()> {
    // SAFETY: a valid pidfd, a signal number, a null siginfo (which means "as kill(2)
    // would") and no flags; the kernel reads no memory from us.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            sig as libc::c_int,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `struct mount_attr` of mount_setattr(2).
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

const MOUNT_ATTR_RDONLY: u64 = 0x1;

/// Makes the mount at `path` and every mount under it read-only, or writable
/// (mount_setattr(2) with AT_RECURSIVE, Linux 5.12), in the calling process's mount
/// namespace only.
pub(crate) fn set_read_only_recursive(path: &str, read_only: bool) -> io::Result<()> {
    let path = std::ffi::CString::new(path).map_err(io::Error::other)?;
    let (attr_set, attr_clr) = if read_only {
        (MOUNT_ATTR_RDONLY, 0)
    } else {
        (0, MOUNT_ATTR_RDONLY)
    };
    let attr = MountAttr {
        attr_set,
        attr_clr,
        propagation: 0,
        userns_fd: 0,
    };
    // SAFETY: mount_setattr reads the path and `size` bytes of the attr, both ours and
    // alive for the call.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            libc::AT_FDCWD,
            path.as_ptr(),
            libc::AT_RECURSIVE as libc::c_uint,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if ret != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Sets IFF_UP on `lo` in the calling thread's network namespace.
pub(crate) fn set_loopback_up() -> io::Result<()> {
    // SAFETY: socket(2) takes no memory; it returns a new fd or -1.
    let raw = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned this fd to us; nothing else owns it.
    let sock = unsafe { OwnedFd::from_raw_fd(raw) };
    // SAFETY: ifreq is plain old data (a name and a union of integers and addresses),
    // for which all-zero bytes are a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *dst = *src as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS reads the NUL-terminated name and writes the flags into
    // `req`, which lives for the whole call.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: SIOCGIFFLAGS succeeded, so the union holds the flags member.
    let flags = unsafe { req.ifr_ifru.ifru_flags };
    req.ifr_ifru.ifru_flags = flags | libc::IFF_UP as libc::c_short;
    // SAFETY: SIOCSIFFLAGS reads the name and flags from `req`, which outlives the call.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Gives the program about to be exec'd default signal dispositions and an empty
/// mask (the Rust runtime of the shim ignores SIGPIPE, and ignoring survives exec).
pub(crate) fn reset_signals() {
    for sig in Signal::iterator() {
        if matches!(sig, Signal::SIGKILL | Signal::SIGSTOP) {
            continue;
        }
        // SAFETY: installing SIG_DFL runs no code of ours, so no handler can observe
        // the process in an inconsistent state.
        let _ = unsafe { signal::signal(sig, SigHandler::SigDfl) };
    }
    let _ = signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None);
}

/// The soft RLIMIT_NOFILE this process started with, if [`raise_nofile_limit`] raised it.
static ORIGINAL_NOFILE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(u64::MAX);

/// Raises this process's soft open-file limit to its hard limit (a daemon serving many
/// connections, as Go's runtime and systemd services do), remembering the original soft
/// limit for the processes it starts (see [`restore_nofile_limit`]). Returns (old, new).
pub fn raise_nofile_limit() -> io::Result<(u64, u64)> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes only the struct we pass it.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let old = lim.rlim_cur;
    if lim.rlim_cur < lim.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: lim.rlim_max,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: setrlimit reads only the struct we pass it.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } != 0 {
            return Err(io::Error::last_os_error());
        }
        ORIGINAL_NOFILE.store(old, std::sync::atomic::Ordering::Relaxed);
    }
    Ok((old, lim.rlim_max))
}

/// In a forked child before exec: give tasks the soft open-file limit the daemon started
/// with, not the daemon's raised one (some programs loop over every possible fd).
/// Async-signal-safe: an atomic load and setrlimit.
pub(crate) fn restore_nofile_limit() -> io::Result<()> {
    let soft = ORIGINAL_NOFILE.load(std::sync::atomic::Ordering::Relaxed);
    if soft == u64::MAX {
        return Ok(());
    }
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit touch only the struct we pass them.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return Err(io::Error::last_os_error());
        }
        lim.rlim_cur = soft.min(lim.rlim_max);
        if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nofile() -> (u64, u64) {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit writes only the struct we pass it.
        assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) }, 0);
        (lim.rlim_cur, lim.rlim_max)
    }

    /// The daemon's soft open-file limit goes up to the hard one; a process it starts
    /// gets the soft limit the daemon started with.
    #[test]
    fn nofile_raised_here_and_restored_in_children() {
        let (_, hard) = nofile();
        let start = 256.min(hard);
        let lowered = libc::rlimit {
            rlim_cur: start,
            rlim_max: hard,
        };
        // SAFETY: setrlimit reads only the struct we pass it (lowering is always allowed).
        assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lowered) }, 0);
        assert_eq!(raise_nofile_limit().unwrap(), (start, hard));
        assert_eq!(nofile(), (hard, hard));
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "ulimit -n"]);
        // SAFETY: the hook only calls getrlimit/setrlimit in the child.
        unsafe {
            cmd.pre_exec(restore_nofile_limit);
        }
        let out = cmd.output().unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            start.to_string()
        );
    }
}
