//! Network namespaces as files (nsfs bind mounts at any path) and rtnetlink handles bound to a namespace.
//!
//! setns and unshare act on the calling thread only, so each is done on a fresh,
//! short-lived thread that ends afterwards: no thread of the caller (or of the
//! tokio runtime) ever changes namespace. A netlink socket stays in the namespace
//! it was created in, so a socket made on such a thread and handed back gives an
//! rtnetlink handle for that namespace usable from any thread.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::fd::{FromRawFd, IntoRawFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{setns, unshare, CloneFlags};
use rtnetlink::sys::protocols::NETLINK_ROUTE;
use rtnetlink::sys::{Socket, TokioSocket};
use rtnetlink::{Handle, LinkUnspec};

/// Errors of namespace handling; each carries the path it concerns.
#[derive(Debug, thiserror::Error)]
pub enum NsError {
    #[error("{0}: {1}")]
    Io(PathBuf, #[source] io::Error),
    #[error("entering network namespace {0}: {1}")]
    Enter(PathBuf, #[source] Errno),
    #[error("creating a network namespace: {0}")]
    Unshare(#[source] Errno),
    #[error("bind-mounting a network namespace onto {0}: {1}")]
    Mount(PathBuf, #[source] Errno),
    #[error("unmounting network namespace {0}: {1}")]
    Unmount(PathBuf, #[source] Errno),
    #[error("{0} exists and is a network namespace already")]
    Exists(PathBuf),
    #[error("cannot start a thread to enter a namespace: {0}")]
    Thread(#[source] io::Error),
    #[error("the namespace thread for {0} died")]
    ThreadDied(String),
    #[error("opening a netlink socket in {0}: {1}")]
    Socket(String, #[source] io::Error),
    #[error("bringing up lo in {0}: {1}")]
    Loopback(PathBuf, String),
}

/// Creates a network namespace bound to the file `path` (like `ip netns add`, at
/// any path) with `lo` up, for a task. Fails if `path` already holds a namespace.
pub fn task_netns_create(path: &Path) -> Result<(), NsError> {
    netns_create(path, false)
}

/// Deletes a task namespace file; its links go with the namespace once nothing
/// else holds it. A missing file is not an error.
pub fn task_netns_delete(path: &Path) -> Result<(), NsError> {
    netns_delete(path)
}

/// Creates a network namespace bound to `path`, with `lo` up. `for_network`
/// makes it a Shoal network's namespace (a bridge, VXLAN device and task ports):
/// IPv6 off, so its links send no router solicitations, DAD or MLD; and no
/// netfilter hooks on bridged frames (see [`bridge_netfilter_off`]).
/// A leftover plain file at `path` (say, from before a reboot) is reused.
pub fn netns_create(path: &Path, for_network: bool) -> Result<(), NsError> {
    if is_netns(path) {
        return Err(NsError::Exists(path.to_path_buf()));
    }
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(|e| NsError::Io(dir.to_path_buf(), e))?;
    }
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(|e| NsError::Io(path.to_path_buf(), e))?;
    let result = std::thread::scope(|scope| {
        scope
            .spawn(|| -> Result<(), NsError> {
                unshare(CloneFlags::CLONE_NEWNET).map_err(NsError::Unshare)?;
                // /proc/self is the thread group leader; this thread's namespace is
                // the new one.
                mount(
                    Some("/proc/thread-self/ns/net"),
                    path,
                    None::<&str>,
                    MsFlags::MS_BIND,
                    None::<&str>,
                )
                .map_err(|e| NsError::Mount(path.to_path_buf(), e))?;
                if for_network {
                    disable_ipv6();
                    bridge_netfilter_off();
                }
                loopback_up().map_err(|e| NsError::Loopback(path.to_path_buf(), e))
            })
            .join()
            .map_err(|_| NsError::ThreadDied(path.display().to_string()))?
    });
    if result.is_err() {
        let _ = netns_delete(path);
    }
    result
}

/// Unmounts and removes a namespace file; a missing or unmounted one is fine.
pub fn netns_delete(path: &Path) -> Result<(), NsError> {
    match umount2(path, MntFlags::MNT_DETACH) {
        Ok(()) | Err(Errno::EINVAL) | Err(Errno::ENOENT) => {}
        Err(e) => return Err(NsError::Unmount(path.to_path_buf(), e)),
    }
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(NsError::Io(path.to_path_buf(), e)),
    }
}

/// Whether `path` is a mounted network namespace (an nsfs file), not a leftover.
pub fn is_netns(path: &Path) -> bool {
    let (Ok(meta), Ok(ours)) = (fs::metadata(path), fs::metadata("/proc/self/ns/net")) else {
        return false;
    };
    meta.dev() == ours.dev()
}

/// An rtnetlink handle whose socket lives in the namespace at `netns` (None: the
/// caller's). Needs a tokio runtime: the connection is spawned on it and ends when
/// the last clone of the handle is dropped.
pub async fn netlink_handle(netns: Option<&Path>) -> Result<Handle, NsError> {
    let label = netns.map_or_else(|| "this namespace".into(), |p| p.display().to_string());
    let socket = match netns {
        None => Socket::new(NETLINK_ROUTE).map_err(|e| NsError::Socket(label.clone(), e))?,
        Some(path) => {
            let ns = File::open(path).map_err(|e| NsError::Io(path.to_path_buf(), e))?;
            let path = path.to_path_buf();
            let (tx, rx) = tokio::sync::oneshot::channel();
            std::thread::Builder::new()
                .name("shoal-netns".into())
                .spawn(move || {
                    let socket = setns(&ns, CloneFlags::CLONE_NEWNET)
                        .map_err(|e| NsError::Enter(path.clone(), e))
                        .and_then(|()| {
                            Socket::new(NETLINK_ROUTE)
                                .map_err(|e| NsError::Socket(path.display().to_string(), e))
                        });
                    let _ = tx.send(socket);
                })
                .map_err(NsError::Thread)?;
            rx.await.map_err(|_| NsError::ThreadDied(label.clone()))??
        }
    };
    socket
        .set_non_blocking(true)
        .map_err(|e| NsError::Socket(label.clone(), e))?;
    // SAFETY: into_raw_fd hands over the only owner of a just-created, open
    // netlink socket, which TokioSocket takes ownership of (and closes on drop).
    let socket = unsafe { TokioSocket::from_raw_fd(socket.into_raw_fd()) };
    let (connection, handle, _unsolicited) = rtnetlink::from_socket(socket);
    tokio::spawn(connection);
    Ok(handle)
}

/// Brings up `lo` in the calling thread's namespace (a fresh thread, no runtime).
fn loopback_up() -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(async {
        let (connection, handle, _) = rtnetlink::new_connection().map_err(|e| e.to_string())?;
        tokio::spawn(connection);
        handle
            .link()
            .set(LinkUnspec::new_with_name("lo").up().build())
            .execute()
            .await
            .map_err(|e| e.to_string())
    })
}

/// Turns off `net.bridge.bridge-nf-call-{iptables,ip6tables,arptables}` in the
/// calling thread's namespace (they are per namespace; the kernel's default is 1
/// wherever br_netfilter is built in). Shoal filters nothing on its bridges, and
/// with them on every bridged frame goes through the IP layer's netfilter hooks:
/// measured at 8-12% of the CPU of a routing-mesh benchmark whose frames cross a
/// bridge. Best effort: without br_netfilter there is nothing to turn off.
pub fn bridge_netfilter_off() {
    for table in ["iptables", "ip6tables", "arptables"] {
        let _ = fs::write(format!("/proc/sys/net/bridge/bridge-nf-call-{table}"), "0");
    }
}

/// Best effort: a kernel without IPv6 has nothing to quiet.
fn disable_ipv6() {
    for conf in ["all", "default"] {
        let _ = fs::write(format!("/proc/sys/net/ipv6/conf/{conf}/disable_ipv6"), "1");
    }
}
