//! The task's environment and its executable, looked up in its PATH as execvp would.

use std::ffi::OsString;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::{BindMount, ExecError};

/// PATH for tasks whose environment has none (Docker's default).
pub(crate) const DEFAULT_PATH: &str =
    "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Exactly the given environment, plus the default PATH if it sets none.
pub(crate) fn task_env(env: &[String]) -> Vec<String> {
    let mut env = env.to_vec();
    if lookup(&env, "PATH").is_none() {
        env.push(format!("PATH={DEFAULT_PATH}"));
    }
    env
}

/// `env` with each of `overrides` replacing any entry of the same name.
pub(crate) fn merge_env(
    env: &[String],
    overrides: impl IntoIterator<Item = (OsString, OsString)>,
) -> Vec<String> {
    let mut env = env.to_vec();
    for (key, value) in overrides {
        let (key, value) = (key.to_string_lossy(), value.to_string_lossy());
        env.retain(|e| e.split_once('=').map_or(e.as_str(), |(k, _)| k) != key);
        env.push(format!("{key}={value}"));
    }
    env
}

/// The value of `key` in a "K=V" list; the last entry wins, as in getenv after putenv.
fn lookup<'a>(env: &'a [String], key: &str) -> Option<&'a str> {
    env.iter()
        .rev()
        .find_map(|e| e.strip_prefix(key)?.strip_prefix('='))
}

/// Finds `name` as the task will: a name with a '/' is a path (relative to `cwd`), a
/// bare name is searched in the task's PATH. `view` maps a path inside the task to
/// where it can be checked from here (through the task's bind mounts, when checking
/// from the host). Returns the path inside the task.
pub(crate) fn resolve(
    name: &str,
    env: &[String],
    cwd: &Path,
    view: impl Fn(&Path) -> PathBuf,
) -> Result<PathBuf, ExecError> {
    if name.is_empty() {
        return Err(ExecError::EmptyCommand);
    }
    if name.contains('/') {
        let path = cwd.join(name);
        return match executable(&view(&path)) {
            Ok(()) => Ok(path),
            Err(reason) => Err(ExecError::ExecutableInvalid { path, reason }),
        };
    }
    let search = lookup(env, "PATH").unwrap_or(DEFAULT_PATH);
    search
        .split(':')
        .filter(|dir| dir.starts_with('/'))
        .map(|dir| Path::new(dir).join(name))
        .find(|candidate| executable(&view(candidate)).is_ok())
        .ok_or_else(|| ExecError::ExecutableNotFound(name.to_owned()))
}

pub(crate) const NO_SUCH_FILE: &str = "no such file or directory";

fn executable(path: &Path) -> Result<(), &'static str> {
    let meta = path.metadata().map_err(|_| NO_SUCH_FILE)?;
    if meta.is_dir() {
        return Err("is a directory");
    }
    if meta.permissions().mode() & 0o111 == 0 {
        return Err("permission denied");
    }
    Ok(())
}

/// Where `path` (inside the task) is on the host: through the bind mount with the
/// longest target that contains it, else the same path.
pub(crate) fn host_view(path: &Path, mounts: &[BindMount]) -> PathBuf {
    mounts
        .iter()
        .filter_map(|m| Some((m, path.strip_prefix(&m.target).ok()?)))
        .max_by_key(|(m, _)| m.target.components().count())
        .map_or_else(|| path.to_owned(), |(m, rest)| m.source.join(rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn env_is_kept_exactly_with_a_default_path_only_when_absent() {
        assert_eq!(
            task_env(&strings(&["A=1"])),
            strings(&["A=1", &format!("PATH={DEFAULT_PATH}")])
        );
        assert_eq!(
            task_env(&strings(&["PATH=/x", "A=1"])),
            strings(&["PATH=/x", "A=1"])
        );
        assert_eq!(
            merge_env(&strings(&["A=1", "B=2"]), [("A".into(), "3".into())]),
            strings(&["B=2", "A=3"])
        );
    }

    #[test]
    fn bare_names_are_searched_in_the_task_path() {
        let env = strings(&["PATH=/nonexistent:/usr/bin:/bin"]);
        let found = resolve("sh", &env, Path::new("/"), Path::to_owned).unwrap();
        assert!(found.ends_with("sh") && found.is_absolute());
        let err = resolve("no-such-program-xyz", &env, Path::new("/"), Path::to_owned).unwrap_err();
        assert_eq!(
            err.to_string(),
            "executable file not found in $PATH: no-such-program-xyz"
        );
        let err = resolve("/etc", &env, Path::new("/"), Path::to_owned).unwrap_err();
        assert_eq!(err.to_string(), "/etc: is a directory");
    }

    #[test]
    fn paths_inside_bind_mounts_are_checked_at_their_source() {
        let mounts = vec![
            BindMount {
                source: "/data/vol".into(),
                target: "/srv".into(),
                read_only: false,
            },
            BindMount {
                source: "/data/bin".into(),
                target: "/srv/bin".into(),
                read_only: true,
            },
        ];
        assert_eq!(
            host_view(Path::new("/srv/bin/app"), &mounts),
            PathBuf::from("/data/bin/app")
        );
        assert_eq!(
            host_view(Path::new("/srv/x"), &mounts),
            PathBuf::from("/data/vol/x")
        );
        assert_eq!(
            host_view(Path::new("/srvx"), &mounts),
            PathBuf::from("/srvx")
        );
    }
}
