//! Container options a task's init applies to itself: sysctls, resource limits, capabilities; with the checks the daemon runs on a spec before any task exists.

use std::collections::BTreeMap;
use std::io;

use serde::{Deserialize, Serialize};

/// One resource limit as docker names it (`nofile`, `nproc`...); -1 is unlimited.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rlimit {
    pub name: String,
    pub soft: i64,
    pub hard: i64,
}

/// go-units' ulimit names and their RLIMIT_* resources (docker refuses any other name).
const RLIMITS: &[(&str, libc::__rlimit_resource_t)] = &[
    ("core", libc::RLIMIT_CORE),
    ("cpu", libc::RLIMIT_CPU),
    ("data", libc::RLIMIT_DATA),
    ("fsize", libc::RLIMIT_FSIZE),
    ("locks", libc::RLIMIT_LOCKS),
    ("memlock", libc::RLIMIT_MEMLOCK),
    ("msgqueue", libc::RLIMIT_MSGQUEUE),
    ("nice", libc::RLIMIT_NICE),
    ("nofile", libc::RLIMIT_NOFILE),
    ("nproc", libc::RLIMIT_NPROC),
    ("rss", libc::RLIMIT_RSS),
    ("rtprio", libc::RLIMIT_RTPRIO),
    ("rttime", libc::RLIMIT_RTTIME),
    ("sigpending", libc::RLIMIT_SIGPENDING),
    ("stack", libc::RLIMIT_STACK),
];

fn rlimit_resource(name: &str) -> Option<libc::__rlimit_resource_t> {
    RLIMITS.iter().find(|(n, _)| *n == name).map(|(_, r)| *r)
}

/// A ulimit as docker's engine accepts it: a known name, soft at most hard (-1 is
/// unlimited), in go-units' words.
pub fn check_ulimit(name: &str, soft: i64, hard: i64) -> Result<(), String> {
    if rlimit_resource(name).is_none() {
        return Err(format!("invalid ulimit type: {name}"));
    }
    if hard != -1 {
        if soft == -1 {
            return Err(format!("ulimit soft limit must be less than or equal to hard limit: soft: -1 (unlimited), hard: {hard}"));
        }
        if soft > hard {
            return Err(format!(
                "ulimit soft limit must be less than or equal to hard limit: {soft} > {hard}"
            ));
        }
    }
    Ok(())
}

/// The IPC sysctls runc allows in a container with its own IPC namespace (besides
/// `fs.mqueue.*`).
const IPC_SYSCTLS: &[&str] = &[
    "kernel.msgmax",
    "kernel.msgmnb",
    "kernel.msgmni",
    "kernel.sem",
    "kernel.shmall",
    "kernel.shmmax",
    "kernel.shmmni",
    "kernel.shm_rmid_forced",
];

/// A sysctl a task may set, as runc validates it for a container with its own network,
/// IPC and UTS namespaces (every task has them): `net.*`, the IPC ones, and
/// `kernel.domainname`; anything else would change the node, and is refused in runc's
/// words.
pub fn check_sysctl(name: &str) -> Result<(), String> {
    // Written under /proc/sys with dots as slashes: nothing may climb out of it.
    if name.is_empty()
        || name
            .split(['.', '/'])
            .any(|part| part.is_empty() || part == "..")
    {
        return Err(format!(
            "sysctl {name:?} is not in a separate kernel namespace"
        ));
    }
    if IPC_SYSCTLS.contains(&name) || name.starts_with("fs.mqueue.") || name.starts_with("net.") {
        return Ok(());
    }
    match name {
        "kernel.domainname" => Ok(()),
        "kernel.hostname" => Err(format!(
            "sysctl {name:?} is not allowed as it conflicts with the OCI \"hostname\" field"
        )),
        _ => Err(format!(
            "sysctl {name:?} is not in a separate kernel namespace"
        )),
    }
}

/// Linux's capabilities, by number.
const CAPABILITIES: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// docker's default capability set (moby's oci/caps DefaultCapabilities).
pub const DEFAULT_CAPABILITIES: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

const ALL: &str = "ALL";

/// moby's NormalizeLegacyCapabilities (shoal_spec has the CLI's copy, which also keeps
/// the CLI's `RESET`; this crate does not depend on it): upper case, `CAP_` prefixed
/// (`ALL` as it is).
fn normalize_capability(cap: &str) -> String {
    let cap = cap.trim().to_ascii_uppercase();
    if cap == ALL || cap.starts_with("CAP_") {
        cap
    } else {
        format!("CAP_{cap}")
    }
}

/// A capability moby's engine knows (or `ALL`), else its error.
pub fn check_capability(cap: &str) -> Result<(), String> {
    let cap = normalize_capability(cap);
    if cap == ALL || CAPABILITIES.contains(&cap.as_str()) {
        Ok(())
    } else {
        Err(format!("unknown capability: {cap:?}"))
    }
}

/// The capabilities a task gets, as moby's TweakCapabilities computes them: docker's
/// default set less `drop`, plus `add` (neither: the default set; `ALL` in `add`: every
/// one but those dropped; `ALL` in `drop`: only those added). Unknown names are left
/// out (checked before).
pub fn effective_capabilities(add: &[String], drop: &[String]) -> Vec<String> {
    let add: Vec<String> = add.iter().map(|c| normalize_capability(c)).collect();
    let drop: Vec<String> = drop.iter().map(|c| normalize_capability(c)).collect();
    let known = |c: &String| CAPABILITIES.contains(&c.as_str());
    let mut caps: Vec<String> = if add.iter().any(|c| c == ALL) {
        CAPABILITIES
            .iter()
            .map(|c| c.to_string())
            .filter(|c| !drop.contains(c))
            .collect()
    } else if drop.iter().any(|c| c == ALL) {
        add.into_iter().filter(known).collect()
    } else {
        DEFAULT_CAPABILITIES
            .iter()
            .map(|c| c.to_string())
            .filter(|c| !drop.contains(c))
            .chain(add.into_iter().filter(known))
            .collect()
    };
    caps.sort();
    caps.dedup();
    caps
}

/// In the task's init, in its own namespaces, with a fresh /proc: each sysctl written.
pub(crate) fn apply_sysctls(sysctls: &BTreeMap<String, String>) -> Result<(), String> {
    for (name, value) in sysctls {
        check_sysctl(name)?;
        let path = format!("/proc/sys/{}", name.replace('.', "/"));
        std::fs::write(&path, value.as_bytes())
            .map_err(|e| format!("setting sysctl {name}={value}: {e}"))?;
    }
    Ok(())
}

/// setrlimit for each limit (-1: unlimited).
pub(crate) fn apply_rlimits(limits: &[Rlimit]) -> Result<(), String> {
    for l in limits {
        let resource =
            rlimit_resource(&l.name).ok_or(format!("invalid ulimit type: {}", l.name))?;
        let value = |v: i64| u64::try_from(v).unwrap_or(libc::RLIM_INFINITY);
        let lim = libc::rlimit {
            rlim_cur: value(l.soft),
            rlim_max: value(l.hard),
        };
        // SAFETY: setrlimit reads only the struct we pass it.
        if unsafe { libc::setrlimit(resource, &lim) } != 0 {
            return Err(format!(
                "setting ulimit {}={}:{}: {}",
                l.name,
                l.soft,
                l.hard,
                io::Error::last_os_error()
            ));
        }
    }
    Ok(())
}

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}

#[repr(C)]
#[derive(Default, Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

const CAP_VERSION_3: u32 = 0x2008_0522;

/// Limits this process (still root, before it changes user and execs) to `caps`: every
/// other capability leaves the bounding set, the inheritable and ambient sets are
/// emptied, so the command exec'd next (as root) gets exactly `caps`, and as another
/// user none, as in docker.
pub(crate) fn apply_capabilities(caps: &[String]) -> Result<(), String> {
    let last = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse::<usize>().ok())
        .unwrap_or(CAPABILITIES.len() - 1);
    for number in 0..=last {
        let keep = CAPABILITIES
            .get(number)
            .is_some_and(|name| caps.iter().any(|c| c == name));
        if keep {
            continue;
        }
        // SAFETY: prctl with integer arguments only.
        let ret = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, number as libc::c_ulong, 0, 0, 0) };
        if ret != 0 {
            return Err(format!(
                "dropping capability {number} from the bounding set: {}",
                io::Error::last_os_error()
            ));
        }
    }
    // SAFETY: prctl with integer arguments only.
    unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
            0,
            0,
            0,
        );
    }
    let mut header = CapHeader {
        version: CAP_VERSION_3,
        pid: 0,
    };
    let mut data = [CapData::default(); 2];
    // SAFETY: capget writes two CapData (version 3) and reads the header, both ours.
    if unsafe { libc::syscall(libc::SYS_capget, &mut header, data.as_mut_ptr()) } != 0 {
        return Err(format!("capget: {}", io::Error::last_os_error()));
    }
    for d in &mut data {
        d.inheritable = 0;
    }
    // SAFETY: capset reads the header and two CapData, both ours.
    if unsafe { libc::syscall(libc::SYS_capset, &header, data.as_ptr()) } != 0 {
        return Err(format!("capset: {}", io::Error::last_os_error()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn sysctls_are_checked_as_runc_does() {
        for ok in [
            "net.ipv4.ip_forward",
            "net.core.somaxconn",
            "kernel.shmmax",
            "fs.mqueue.msg_max",
            "kernel.domainname",
        ] {
            check_sysctl(ok).unwrap();
        }
        assert_eq!(
            check_sysctl("kernel.pid_max").unwrap_err(),
            "sysctl \"kernel.pid_max\" is not in a separate kernel namespace"
        );
        assert_eq!(
            check_sysctl("kernel.hostname").unwrap_err(),
            "sysctl \"kernel.hostname\" is not allowed as it conflicts with the OCI \"hostname\" field"
        );
        for bad in ["", "net..x", "net.x/../../y", "net."] {
            assert!(check_sysctl(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn ulimits_are_checked_as_go_units_does() {
        check_ulimit("nofile", 1024, 2048).unwrap();
        check_ulimit("nofile", -1, -1).unwrap();
        check_ulimit("core", 5, -1).unwrap();
        assert_eq!(
            check_ulimit("foo", 1, 1).unwrap_err(),
            "invalid ulimit type: foo"
        );
        assert_eq!(
            check_ulimit("nofile", 3, 2).unwrap_err(),
            "ulimit soft limit must be less than or equal to hard limit: 3 > 2"
        );
        assert_eq!(
            check_ulimit("nofile", -1, 2).unwrap_err(),
            "ulimit soft limit must be less than or equal to hard limit: soft: -1 (unlimited), hard: 2"
        );
    }

    #[test]
    fn capabilities_tweak_docker_s_default_set() {
        assert_eq!(normalize_capability("net_admin"), "CAP_NET_ADMIN");
        assert_eq!(normalize_capability("all"), "ALL");
        check_capability("sys_admin").unwrap();
        assert_eq!(
            check_capability("foo").unwrap_err(),
            "unknown capability: \"CAP_FOO\""
        );
        // The daemon's check, as moby's: the CLI's RESET never reaches it as a name.
        assert_eq!(
            check_capability("reset").unwrap_err(),
            "unknown capability: \"CAP_RESET\""
        );
        let mut default = strings(DEFAULT_CAPABILITIES);
        default.sort();
        assert_eq!(effective_capabilities(&[], &[]), default);
        let caps = effective_capabilities(&strings(&["NET_ADMIN"]), &strings(&["CAP_NET_RAW"]));
        assert_eq!(caps.len(), 14);
        assert!(caps.contains(&"CAP_NET_ADMIN".to_string()));
        assert!(!caps.contains(&"CAP_NET_RAW".to_string()));
        assert_eq!(
            effective_capabilities(&strings(&["CAP_KILL"]), &strings(&["ALL"])),
            strings(&["CAP_KILL"])
        );
        let all = effective_capabilities(&strings(&["ALL"]), &strings(&["CAP_SYS_ADMIN"]));
        assert_eq!(all.len(), CAPABILITIES.len() - 1);
        assert_eq!(CAPABILITIES[21], "CAP_SYS_ADMIN");
        assert_eq!(CAPABILITIES[40], "CAP_CHECKPOINT_RESTORE");
    }
}
