//! Finding and killing the processes that belong to a lab node: by network namespace, cgroup, session and environment marker, read from /proc and cgroupfs.

use std::collections::HashSet;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::thread::sleep;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag};
use nix::unistd::Pid;

use crate::netns::{self, NetnsId};

/// One row of /proc/PID/stat, the fields we need.
#[derive(Debug, Clone, Copy)]
pub struct ProcInfo {
    pub pid: i32,
    pub ppid: i32,
    pub pgid: i32,
    pub sid: i32,
    /// Dead and only waiting to be reaped ('Z') or being torn down ('X').
    pub dead: bool,
}

fn parse_stat(pid: i32, stat: &str) -> Option<ProcInfo> {
    // "PID (COMM) STATE PPID PGRP SESSION ..."; COMM may contain spaces and parentheses.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut f = rest.split_ascii_whitespace();
    let state = f.next()?;
    let ppid = f.next()?.parse().ok()?;
    let pgid = f.next()?.parse().ok()?;
    let sid = f.next()?.parse().ok()?;
    Some(ProcInfo {
        pid,
        ppid,
        pgid,
        sid,
        dead: state == "Z" || state == "X",
    })
}

pub fn info(pid: i32) -> Option<ProcInfo> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let mut p = parse_stat(pid, &stat)?;
    // A zombie thread-group leader whose other threads are still exiting (say,
    // one finishing a syscall in the kernel) still holds its files and locks:
    // it is dead only when every thread is.
    if p.dead && threads_alive(pid) {
        p.dead = false;
    }
    Some(p)
}

fn threads_alive(pid: i32) -> bool {
    let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return false;
    };
    tasks.filter_map(|t| t.ok()).any(|t| {
        fs::read_to_string(t.path().join("stat"))
            .ok()
            .and_then(|stat| parse_stat(pid, &stat))
            .is_some_and(|p| !p.dead)
    })
}

/// All processes now, threads excluded.
pub fn snapshot() -> Vec<ProcInfo> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(info)
        .collect()
}

/// True when the process exists and has not exited.
pub fn alive(pid: i32) -> bool {
    info(pid).is_some_and(|p| !p.dead)
}

/// Whether the process's initial environment holds every `KEY=VALUE` (VALUE None: any value).
pub fn environ_matches(pid: i32, marker: &[(String, Option<String>)]) -> bool {
    if marker.is_empty() {
        return false;
    }
    let Ok(environ) = fs::read(format!("/proc/{pid}/environ")) else {
        return false;
    };
    marker.iter().all(|(key, value)| {
        environ.split(|&b| b == 0).any(|entry| {
            let Some(rest) = entry
                .strip_prefix(key.as_bytes())
                .and_then(|r| r.strip_prefix(b"="))
            else {
                return false;
            };
            value.as_ref().is_none_or(|v| rest == v.as_bytes())
        })
    })
}

/// Reaps `pid` if it is our own exited child, so it does not linger as a zombie.
pub fn reap(pid: i32) {
    let _ = waitpid(Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG));
}

/// The cgroup v2 hierarchy: /sys/fs/cgroup on unified hosts, /sys/fs/cgroup/unified on hybrid ones.
pub fn cgroup2_root() -> Option<PathBuf> {
    ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.join("cgroup.procs").exists() && p.join("cgroup.subtree_control").exists())
}

/// Every pid in a cgroup and its descendants.
fn cgroup_pids(dir: &Path) -> Vec<i32> {
    let mut pids: Vec<i32> = fs::read_to_string(dir.join("cgroup.procs"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    if let Ok(entries) = fs::read_dir(dir) {
        for entry in entries.filter_map(|e| e.ok()) {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                pids.extend(cgroup_pids(&entry.path()));
            }
        }
    }
    pids
}

/// Removes a cgroup tree bottom-up; missing parts are fine, busy ones are reported.
pub fn remove_cgroup_tree(dir: &Path) -> io::Result<()> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for entry in entries.filter_map(|e| e.ok()) {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            remove_cgroup_tree(&entry.path())?;
        }
    }
    match fs::remove_dir(dir) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io::Error::new(
            e.kind(),
            format!("removing cgroup {}: {e}", dir.display()),
        )),
        _ => Ok(()),
    }
}

/// What makes a process part of the thing being killed; any one criterion suffices.
#[derive(Debug, Default)]
pub struct Selector {
    /// Processes inside these network namespaces.
    pub netns: Vec<NetnsId>,
    /// Processes in this cgroup v2 subtree (killed through cgroup.kill as well).
    pub cgroup: Option<PathBuf>,
    /// Recorded daemon pids: each one, when it is really ours, and its session and
    /// process group. "Really ours" means it matched another criterion, so a stale
    /// pid file never kills a stranger that reused the pid.
    pub daemon_pids: Vec<i32>,
    /// Processes whose environment carries these variables (set on every daemon).
    pub marker: Vec<(String, Option<String>)>,
}

impl Selector {
    /// The live processes selected now, with all their descendants; never ourselves.
    fn select(&self, procs: &[ProcInfo]) -> HashSet<i32> {
        let me = std::process::id() as i32;
        let netns: HashSet<NetnsId> = self.netns.iter().copied().collect();
        let in_cgroup: HashSet<i32> = self
            .cgroup
            .as_deref()
            .map(cgroup_pids)
            .unwrap_or_default()
            .into_iter()
            .collect();
        let live = || procs.iter().filter(|p| !p.dead && p.pid != me);

        let mut chosen: HashSet<i32> = live()
            .filter(|p| {
                in_cgroup.contains(&p.pid)
                    || netns::id_of_pid(p.pid).is_some_and(|id| netns.contains(&id))
                    || environ_matches(p.pid, &self.marker)
            })
            .map(|p| p.pid)
            .collect();

        // A daemon's session and process group: only when some member is known to be ours.
        let sessions: HashSet<i32> = self
            .daemon_pids
            .iter()
            .copied()
            .filter(|&d| live().any(|p| (p.sid == d || p.pgid == d) && chosen.contains(&p.pid)))
            .collect();
        chosen.extend(
            live()
                .filter(|p| sessions.contains(&p.sid) || sessions.contains(&p.pgid))
                .map(|p| p.pid),
        );

        // Descendants, also those that left the namespace, cgroup and session.
        loop {
            let before = chosen.len();
            let children: Vec<i32> = live()
                .filter(|p| chosen.contains(&p.ppid) && !chosen.contains(&p.pid))
                .map(|p| p.pid)
                .collect();
            chosen.extend(children);
            if chosen.len() == before {
                break;
            }
        }
        chosen.remove(&me);
        chosen
    }

    /// SIGKILLs every selected process, again and again until none is left alive
    /// (new ones may be forked meanwhile), and returns the pids that survived `timeout`.
    pub fn kill_all(&self, timeout: Duration) -> Vec<i32> {
        let deadline = Instant::now() + timeout;
        if let Some(cgroup) = &self.cgroup {
            let _ = fs::write(cgroup.join("cgroup.kill"), "1");
        }
        loop {
            for &pid in &self.daemon_pids {
                reap(pid);
            }
            let chosen = self.select(&snapshot());
            if chosen.is_empty() {
                return Vec::new();
            }
            if Instant::now() >= deadline {
                let mut left: Vec<i32> = chosen.into_iter().collect();
                left.sort_unstable();
                return left;
            }
            for &pid in &chosen {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
            sleep(Duration::from_millis(20));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_with_odd_command_name() {
        let p = parse_stat(42, "42 (a) b (c) S 1 40 39 0 -1 4194560").unwrap();
        assert_eq!((p.ppid, p.pgid, p.sid, p.dead), (1, 40, 39, false));
        let z = parse_stat(7, "7 (x) Z 1 7 7 0").unwrap();
        assert!(z.dead);
    }
}
