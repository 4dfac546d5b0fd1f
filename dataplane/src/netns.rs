//! Named network namespaces and the links inside them, set up through iproute2's `ip`; every link command names a namespace, so nothing lands in the root one.

use std::fmt;
use std::io;
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};

/// Where iproute2 keeps named network namespaces (bind mounts of nsfs inodes).
pub const NETNS_DIR: &str = "/run/netns";

/// Errors of namespace and link setup; each carries the command or path that failed.
#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    #[error("cannot run `{0}`: {1}")]
    Spawn(String, #[source] io::Error),
    #[error("`{command}` failed ({status}): {stderr}")]
    Failed {
        command: String,
        status: ExitStatus,
        stderr: String,
    },
    #[error("{0}: {1}")]
    Io(PathBuf, #[source] io::Error),
    #[error("refusing to run a link command without a namespace: `ip {0}`")]
    RootNamespace(String),
}

/// Identity of a network namespace: (device, inode) of its nsfs file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NetnsId {
    pub dev: u64,
    pub ino: u64,
}

impl fmt::Display for NetnsId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "net:[{}]", self.ino)
    }
}

/// The `ip` binary: absolute when found, so a root shell without sbin in PATH still works.
fn ip_binary() -> &'static str {
    ["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .unwrap_or("ip")
}

/// Runs `ip ARGS...`, returning stdout, or an error quoting the command and its stderr.
fn ip(args: &[&str]) -> Result<String, NetnsError> {
    let command = format!("ip {}", args.join(" "));
    tracing::debug!(%command, "lab");
    let out = Command::new(ip_binary())
        .args(args)
        .env("LC_ALL", "C")
        .output()
        .map_err(|e| NetnsError::Spawn(command.clone(), e))?;
    if !out.status.success() {
        return Err(NetnsError::Failed {
            command,
            status: out.status,
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs `ip -n NS ARGS...`; an empty namespace name is refused rather than meaning "root".
fn ip_in(netns: &str, args: &[&str]) -> Result<String, NetnsError> {
    if netns.is_empty() {
        return Err(NetnsError::RootNamespace(args.join(" ")));
    }
    let mut full = vec!["-n", netns];
    full.extend_from_slice(args);
    ip(&full)
}

pub fn path(name: &str) -> PathBuf {
    Path::new(NETNS_DIR).join(name)
}

/// Names of all named network namespaces (empty when the directory does not exist).
pub fn list() -> Result<Vec<String>, NetnsError> {
    let dir = Path::new(NETNS_DIR);
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(NetnsError::Io(dir.to_path_buf(), e)),
    };
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    names.sort();
    Ok(names)
}

/// The namespace a name refers to, or None when the name is missing or not (any more) mounted.
pub fn id(name: &str) -> Option<NetnsId> {
    let meta = std::fs::metadata(path(name)).ok()?;
    let id = NetnsId {
        dev: meta.dev(),
        ino: meta.ino(),
    };
    // An unmounted leftover file lives on the /run tmpfs, not on nsfs; the root
    // namespace's nsfs device tells the two apart.
    let nsfs_dev = std::fs::metadata("/proc/self/ns/net").ok()?.dev();
    (id.dev == nsfs_dev).then_some(id)
}

/// The network namespace of a process, None when it is gone or unreadable.
pub fn id_of_pid(pid: i32) -> Option<NetnsId> {
    let meta = std::fs::metadata(format!("/proc/{pid}/ns/net")).ok()?;
    Some(NetnsId {
        dev: meta.dev(),
        ino: meta.ino(),
    })
}

pub fn add(name: &str) -> Result<(), NetnsError> {
    ip(&["netns", "add", name]).map(drop)
}

/// Deletes a named namespace; a missing one is not an error.
pub fn delete(name: &str) -> Result<(), NetnsError> {
    if !path(name).exists() {
        return Ok(());
    }
    match ip(&["netns", "delete", name]) {
        Ok(_) => Ok(()),
        Err(_) if !path(name).exists() => Ok(()),
        Err(e) => Err(e),
    }
}

/// Runs `f` on a thread in the namespace at `netns` (None: here).
pub(crate) fn in_netns<T: Send>(
    netns: Option<&Path>,
    f: impl FnOnce() -> Result<T, String> + Send,
) -> Result<T, String> {
    let Some(path) = netns else {
        return f();
    };
    let ns = std::fs::File::open(path).map_err(|e| format!("opening {}: {e}", path.display()))?;
    std::thread::scope(|s| {
        s.spawn(move || {
            nix::sched::setns(ns.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)
                .map_err(|e| format!("entering {}: {e}", path.display()))?;
            f()
        })
        .join()
        .map_err(|_| "namespace thread panicked".to_string())?
    })
}

/// Turns off netfilter for bridged frames in a named namespace (see
/// [`crate::net::bridge_netfilter_off`]).
pub fn bridge_netfilter_off(name: &str) -> Result<(), NetnsError> {
    let path = path(name);
    in_netns(Some(&path), || {
        crate::net::bridge_netfilter_off();
        Ok(())
    })
    .map_err(|e| NetnsError::Io(path, io::Error::other(e)))
}

pub fn set_up(netns: &str, link: &str) -> Result<(), NetnsError> {
    ip_in(netns, &["link", "set", "dev", link, "up"]).map(drop)
}

pub fn set_down(netns: &str, link: &str) -> Result<(), NetnsError> {
    ip_in(netns, &["link", "set", "dev", link, "down"]).map(drop)
}

pub fn add_bridge(netns: &str, name: &str, mtu: u32) -> Result<(), NetnsError> {
    let mtu = mtu.to_string();
    ip_in(netns, &["link", "add", name, "mtu", &mtu, "type", "bridge"]).map(drop)
}

/// Creates a veth pair with `name` in `netns` and `peer` directly in `peer_netns`.
pub fn add_veth(
    netns: &str,
    name: &str,
    peer_netns: &str,
    peer: &str,
    mtu: u32,
) -> Result<(), NetnsError> {
    if peer_netns.is_empty() {
        return Err(NetnsError::RootNamespace(format!("veth peer {peer}")));
    }
    let mtu = mtu.to_string();
    ip_in(
        netns,
        &[
            "link", "add", name, "mtu", &mtu, "type", "veth", "peer", "name", peer, "mtu", &mtu,
            "netns", peer_netns,
        ],
    )
    .map(drop)
}

/// Enslaves `link` to `bridge` and brings it up.
pub fn attach_up(netns: &str, link: &str, bridge: &str) -> Result<(), NetnsError> {
    ip_in(netns, &["link", "set", "dev", link, "master", bridge, "up"]).map(drop)
}

pub fn add_addr(netns: &str, link: &str, cidr: &str) -> Result<(), NetnsError> {
    ip_in(netns, &["addr", "add", cidr, "dev", link]).map(drop)
}
