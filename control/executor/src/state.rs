//! A task's directory under the state dir: spec, cgroups, process identities, exit code and log.

use std::fs;
use std::io::{self, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::{sys, ExecError};

/// The TaskRun as given to start().
pub(crate) const SPEC: &str = "spec.json";
/// The task's cgroups (TaskCgroups), recorded so a later daemon finds them wherever
/// its own cgroup is.
pub(crate) const CGROUPS: &str = "cgroups.json";
/// The task's init and its shim (Pids), written by the shim once the command runs.
pub(crate) const PIDS: &str = "pids.json";
/// The exit code, written by the shim after reaping the task's init.
pub(crate) const EXIT: &str = "exit";
/// The task's stdout and stderr.
pub(crate) const LOG: &str = "log";

/// A process as pid plus start time, which tells it apart from a later one reusing the pid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ProcessIdentity {
    pub pid: i32,
    /// Field 22 of /proc/<pid>/stat: clock ticks after boot.
    pub start: u64,
}

impl ProcessIdentity {
    pub fn of(pid: i32) -> Option<Self> {
        let (_, start) = read_stat(pid)?;
        Some(Self { pid, start })
    }

    /// True while this very process exists and has not exited (zombies count as exited).
    pub fn is_alive(&self) -> bool {
        matches!(read_stat(self.pid), Some((state, start)) if start == self.start && !matches!(state, 'Z' | 'X' | 'x'))
    }

    /// A pidfd for this process, or None if it is gone (checked after opening, so the
    /// fd cannot refer to a process that reused the pid).
    pub fn pidfd(&self) -> Option<OwnedFd> {
        let fd = sys::pidfd_open(self.pid).ok()?;
        self.is_alive().then_some(fd)
    }
}

/// Who runs a started task.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub(crate) struct Pids {
    /// The task's init (pid 1 in its pid namespace), as seen from the host.
    pub task: ProcessIdentity,
    /// The shim that waits for it and records its exit code.
    pub shim: ProcessIdentity,
}

fn read_stat(pid: i32) -> Option<(char, u64)> {
    parse_stat(&fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// State and start time from the text of /proc/<pid>/stat. The command name (field 2)
/// may hold spaces and parentheses, so fields are counted from the last ')'.
pub(crate) fn parse_stat(text: &str) -> Option<(char, u64)> {
    let rest = &text[text.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    // After the state (field 3), starttime is field 22: 18 fields further on.
    let start = fields.nth(18)?.parse().ok()?;
    Some((state, start))
}

pub(crate) struct TaskDir {
    path: PathBuf,
}

impl TaskDir {
    pub fn at(path: PathBuf) -> Self {
        Self { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    pub fn exists(&self) -> bool {
        self.path.is_dir()
    }

    pub fn read_json<T: DeserializeOwned>(&self, name: &str) -> Result<T, ExecError> {
        let path = self.file(name);
        let bytes =
            fs::read(&path).map_err(ExecError::io(format!("reading {}", path.display())))?;
        serde_json::from_slice(&bytes).map_err(|source| ExecError::StateFile { path, source })
    }

    pub fn write_json<T: Serialize>(&self, name: &str, value: &T) -> Result<(), ExecError> {
        let path = self.file(name);
        let bytes = serde_json::to_vec(value).map_err(|source| ExecError::StateFile {
            path: path.clone(),
            source,
        })?;
        write_atomic(&path, &bytes).map_err(ExecError::io(format!("writing {}", path.display())))
    }

    pub fn read_exit(&self) -> Option<i32> {
        fs::read_to_string(self.file(EXIT))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    pub fn write_exit(&self, code: i32) -> io::Result<()> {
        write_atomic(&self.file(EXIT), format!("{code}\n").as_bytes())
    }
}

/// Readers see the old file or the whole new one, never a torn write, even if the
/// writer dies halfway.
fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut file = fs::File::create(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_from_the_last_parenthesis() {
        let text = "4242 (we) ird (name)) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10 18446744073709551615 1 1 0 0 0 0 0 4 0 0 0 17 0 0 0 0 0 0";
        assert_eq!(parse_stat(text), Some(('S', 987654)));
        assert_eq!(parse_stat("12 (x) Z"), None);
    }

    #[test]
    fn our_own_process_is_alive_and_a_changed_start_time_is_not() {
        let me = ProcessIdentity::of(std::process::id() as i32).unwrap();
        assert!(me.is_alive());
        assert!(!ProcessIdentity {
            start: me.start + 1,
            ..me
        }
        .is_alive());
    }
}
