//! A task's secrets and configs as files: written to a tmpfs of its own under the data
//! root (never to disk), then bound read-only into the task's mount namespace, secrets
//! under `/run/secrets/` and configs at their absolute targets, as moby's container
//! executor places them. The tmpfs goes when the task is cleaned up.

use std::path::{Component, Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use shoal_executor::BindMount;
use shoal_spec::{ContainerSpec, FileTarget};

use crate::peer::TaskFiles;

/// Where secrets with a relative target appear in a task (moby's containerSecretMountPath).
pub const SECRETS_DIR: &str = "/run/secrets";

/// Where a secret with this target appears in the task: relative targets (and absolute
/// ones under /run/secrets) inside /run/secrets, as a path relative to it; other
/// absolute targets as they are.
fn secret_place(target: &str) -> Result<Place, String> {
    let p = Path::new(target);
    if let Ok(inner) = p.strip_prefix(SECRETS_DIR) {
        return relative(inner, target).map(Place::InSecretsDir);
    }
    if p.is_absolute() {
        return Ok(Place::Absolute(p.to_path_buf()));
    }
    relative(p, target).map(Place::InSecretsDir)
}

/// A config's place: absolute, or relative to `/` (moby's ConfigFilePath).
pub fn config_target(target: &str) -> PathBuf {
    Path::new("/").join(target)
}

enum Place {
    InSecretsDir(PathBuf),
    Absolute(PathBuf),
}

/// A plain relative path: no `..`, not empty.
fn relative(p: &Path, target: &str) -> Result<PathBuf, String> {
    let ok =
        p.components().count() > 0 && p.components().all(|c| matches!(c, Component::Normal(_)));
    if !ok {
        return Err(format!("invalid secret target {target:?}"));
    }
    Ok(p.to_path_buf())
}

/// Writes the task's files under `dir` (a fresh tmpfs) and returns the mounts that put
/// them in place. Nothing is made for a task with no secrets or configs.
pub fn prepare(
    dir: &Path,
    cs: &ContainerSpec,
    files: &TaskFiles,
) -> Result<Vec<BindMount>, String> {
    if cs.secrets.is_empty() && cs.configs.is_empty() {
        return Ok(Vec::new());
    }
    remove(dir);
    std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let total: usize = files
        .secrets
        .values()
        .chain(files.configs.values())
        .map(|d| d.0.len())
        .sum();
    let size = total + 4096 * (cs.secrets.len() + cs.configs.len()) + (1 << 20);
    mount(
        Some("tmpfs"),
        dir,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        Some(format!("mode=0755,size={size}").as_str()),
    )
    .map_err(|e| format!("mounting a tmpfs for the task's secrets: {e}"))?;
    let result = write_all(dir, cs, files);
    if result.is_err() {
        remove(dir);
    }
    result
}

fn write_all(dir: &Path, cs: &ContainerSpec, files: &TaskFiles) -> Result<Vec<BindMount>, String> {
    let mut mounts = Vec::new();
    let secrets_dir = dir.join("secrets");
    let mut in_secrets_dir = false;
    for (i, r) in cs.secrets.iter().enumerate() {
        let Some(f) = &r.file else { continue };
        let data = files
            .secrets
            .get(&r.secret_id)
            .ok_or_else(|| format!("secret {} not available on this node", r.secret_name))?;
        let host = match secret_place(&f.name)? {
            Place::InSecretsDir(rel) => {
                in_secrets_dir = true;
                secrets_dir.join(rel)
            }
            Place::Absolute(target) => {
                let host = dir.join("files").join(format!("secret-{i}"));
                mounts.push(BindMount {
                    source: host.clone(),
                    target,
                    read_only: true,
                });
                host
            }
        };
        write(&host, &data.0, f)?;
    }
    if in_secrets_dir {
        mounts.push(BindMount {
            source: secrets_dir,
            target: PathBuf::from(SECRETS_DIR),
            read_only: true,
        });
    }
    for (i, r) in cs.configs.iter().enumerate() {
        let Some(f) = &r.file else { continue };
        let data = files
            .configs
            .get(&r.config_id)
            .ok_or_else(|| format!("config {} not available on this node", r.config_name))?;
        let host = dir.join("files").join(format!("config-{i}"));
        write(&host, &data.0, f)?;
        mounts.push(BindMount {
            source: host,
            target: config_target(&f.name),
            read_only: true,
        });
    }
    Ok(mounts)
}

/// One file with its owner and mode (moby's setupSecretDir: the IDs as decimal strings).
fn write(path: &Path, data: &[u8], f: &FileTarget) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let id = |s: &str| {
        s.parse::<u32>()
            .map_err(|_| format!("strconv.Atoi: parsing {s:?}: invalid syntax"))
    };
    let (uid, gid) = (id(&f.uid)?, id(&f.gid)?);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| format!("creating {}: {e}", parent.display()))?;
    }
    std::fs::write(path, data).map_err(|e| format!("writing {}: {e}", f.name))?;
    std::os::unix::fs::chown(path, Some(uid), Some(gid))
        .map_err(|e| format!("setting ownership of {}: {e}", f.name))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(f.mode & 0o7777))
        .map_err(|e| format!("setting the mode of {}: {e}", f.name))
}

/// Unmounts and deletes a task's files (nothing if it had none).
pub fn remove(dir: &Path) {
    if !dir.exists() {
        return;
    }
    let _ = umount2(dir, MntFlags::MNT_DETACH);
    let _ = std::fs::remove_dir_all(dir);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_placed_as_moby_places_them() {
        let rel = |t: &str| match secret_place(t).unwrap() {
            Place::InSecretsDir(p) => p.display().to_string(),
            Place::Absolute(p) => format!("abs:{}", p.display()),
        };
        assert_eq!(rel("db_pass"), "db_pass");
        assert_eq!(rel("app/key"), "app/key");
        assert_eq!(rel("/run/secrets/x"), "x");
        assert_eq!(rel("/etc/app/key"), "abs:/etc/app/key");
        assert!(secret_place("../etc/passwd").is_err());
        assert!(secret_place("/run/secrets").is_err());
        assert_eq!(config_target("app.conf"), PathBuf::from("/app.conf"));
        assert_eq!(
            config_target("/etc/app.conf"),
            PathBuf::from("/etc/app.conf")
        );
    }
}
