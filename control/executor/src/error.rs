//! The executor's error type: every variant names the task, program or path it concerns.

use std::io;
use std::path::PathBuf;

use crate::cgroup::CgroupError;

/// Why an executor operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// argv[0] is a bare name and no directory of the task's PATH holds it.
    #[error("executable file not found in $PATH: {0}")]
    ExecutableNotFound(String),
    /// argv[0] is a path (it has a '/') that cannot be executed.
    #[error("{path}: {reason}")]
    ExecutableInvalid { path: PathBuf, reason: &'static str },
    #[error("no command given")]
    EmptyCommand,
    #[error("invalid task id {0:?}: use letters, digits, '-', '_' and '.' (not first)")]
    InvalidTaskId(String),
    #[error("invalid working directory {0:?}: must be an absolute path")]
    InvalidWorkdir(String),
    #[error("invalid mount config for type \"bind\": bind source path does not exist: {0}")]
    MountSourceMissing(PathBuf),
    #[error("invalid mount config for type \"bind\": target must be an absolute path: {0}")]
    MountTargetRelative(PathBuf),
    #[error("network namespace {0} does not exist")]
    NetnsMissing(PathBuf),
    #[error("invalid healthcheck test {0:?}: want [\"CMD\", args..] or [\"CMD-SHELL\", command]")]
    InvalidHealthcheck(Vec<String>),
    #[error("{0}")]
    InvalidSignal(String),
    /// A sysctl, ulimit or capability the task may not have (docker's wording).
    #[error("{0}")]
    InvalidOption(String),
    #[error("task {0} already exists")]
    TaskExists(String),
    #[error("no such task: {0}")]
    NoSuchTask(String),
    #[error("task {0} is not running")]
    NotRunning(String),
    #[error("task {0} did not exit after SIGKILL")]
    StopTimeout(String),
    /// The shim could not set the task up (namespaces, mounts, exec); the message
    /// comes from inside the task's namespaces.
    #[error("starting task {task}: {message}")]
    Setup { task: String, message: String },
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
    #[error("{path}: {source}")]
    StateFile {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error(transparent)]
    Cgroup(#[from] CgroupError),
}

impl ExecError {
    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(io::Error) -> ExecError {
        let context = context.into();
        move |source| ExecError::Io { context, source }
    }
}
