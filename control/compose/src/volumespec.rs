//! A service's `volumes:` entries (short `src:dst:ro` and long syntax) to mounts.

// Short syntax as docker's volumespec.Parse; bind sources are made absolute.

use std::path::{Component, Path, PathBuf};

use serde_json::Value;

use crate::loader::{origin, Context};
use crate::node::Node;
use crate::types::{Origin, ServiceVolume, VolumeKind};
use crate::ComposeError;

pub(crate) fn load_service_volumes(
    v: Node<'_>,
    ctx: &Context<'_>,
) -> Result<Vec<ServiceVolume>, ComposeError> {
    let mut out = Vec::new();
    for item in v.list()? {
        let item = item.node();
        let mut vol = match item.value {
            Value::String(spec) => parse_volume_spec(spec).map_err(|e| item.invalid(e))?,
            Value::Object(_) => long_volume(item)?,
            _ => return Err(item.must_be("string or mapping")),
        };
        vol.origin = origin(item);
        if vol.kind == VolumeKind::Bind {
            if vol.source.is_empty() {
                return Err(item.invalid(
                    "invalid mount config for type \"bind\": field Source must not be empty",
                ));
            }
            vol.source = bind_source(&vol.source, ctx);
        }
        if vol.target.is_empty() {
            return Err(item.invalid("invalid mount config: field Target must not be empty"));
        }
        out.push(vol);
    }
    Ok(out)
}

/// docker's volumespec.Parse: `[source:]target[:options]`.
fn parse_volume_spec(spec: &str) -> Result<ServiceVolume, String> {
    let mut vol = ServiceVolume {
        origin: Origin::default(),
        kind: VolumeKind::Volume,
        source: String::new(),
        target: String::new(),
        read_only: false,
    };
    match spec.chars().count() {
        0 => return Err("invalid empty volume spec".to_string()),
        1 | 2 => {
            vol.target = spec.to_string();
            return Ok(vol);
        }
        _ => {}
    }
    let mut buffer = String::new();
    let mut has_source = false;
    // Each character, then None for the end of the spec.
    for c in spec.chars().map(Some).chain([None]) {
        let windows_drive = c == Some(':')
            && buffer.chars().count() == 1
            && buffer.chars().all(char::is_alphabetic);
        if windows_drive || !matches!(c, Some(':') | None) {
            buffer.push(c.unwrap_or(':'));
            continue;
        }
        let end = c.is_none();
        if buffer.is_empty() {
            return Err(format!(
                "invalid spec: {spec}: empty section between colons"
            ));
        }
        if !has_source && vol.target.is_empty() && end {
            vol.target = std::mem::take(&mut buffer);
        } else if !has_source {
            vol.source = std::mem::take(&mut buffer);
            has_source = true;
        } else if vol.target.is_empty() {
            vol.target = std::mem::take(&mut buffer);
        } else if !end {
            return Err(format!("invalid spec: {spec}: too many colons"));
        } else {
            for option in std::mem::take(&mut buffer).split(',') {
                match option {
                    "ro" => vol.read_only = true,
                    "rw" => vol.read_only = false,
                    // nocopy, bind propagation, SELinux labels, consistency: no effect here.
                    _ => {}
                }
            }
        }
    }
    if is_file_path(&vol.source) {
        vol.kind = VolumeKind::Bind;
    }
    Ok(vol)
}

fn is_file_path(source: &str) -> bool {
    let mut chars = source.chars();
    match chars.next() {
        None => false,
        Some('.' | '/' | '~') => true,
        Some(first) => {
            let second = chars.next();
            source.starts_with("\\\\") || (first.is_alphabetic() && second == Some(':'))
        }
    }
}

fn long_volume(item: Node<'_>) -> Result<ServiceVolume, ComposeError> {
    let entries = item.mapping(
        &[
            "type",
            "source",
            "target",
            "read_only",
            "consistency",
            "bind",
            "volume",
            "tmpfs",
        ],
        false,
    )?;
    let mut kind = None;
    let mut vol = ServiceVolume {
        origin: Origin::default(),
        kind: VolumeKind::Volume,
        source: String::new(),
        target: String::new(),
        read_only: false,
    };
    for (key, child) in &entries {
        let v = child.node();
        match *key {
            "type" => {
                kind = Some(match v.str()? {
                    "volume" => VolumeKind::Volume,
                    "bind" => VolumeKind::Bind,
                    "tmpfs" => VolumeKind::Tmpfs,
                    other @ ("npipe" | "cluster" | "image") => VolumeKind::Other(other.to_string()),
                    _ => {
                        return Err(
                            v.invalid("volume type must be volume, bind, tmpfs, npipe, or cluster")
                        )
                    }
                })
            }
            "source" => vol.source = v.string()?,
            "target" => vol.target = v.string()?,
            "read_only" => vol.read_only = v.bool()?,
            "consistency" => {
                v.str()?;
            }
            "bind" => {
                for (_, p) in v.mapping(&["propagation"], false)? {
                    p.node().str()?;
                }
            }
            "volume" => {
                for (_, p) in v.mapping(&["nocopy"], false)? {
                    p.node().bool()?;
                }
            }
            _ => {
                for (_, p) in v.mapping(&["size"], false)? {
                    p.node().uint()?;
                }
            }
        }
    }
    vol.kind = kind.ok_or_else(|| item.schema("type is required"))?;
    // Options for another mount type are an error, as in docker's convert.
    for (key, _) in &entries {
        let name = kind_name(&vol.kind);
        let npipe_bind = *key == "bind" && name == "npipe";
        if matches!(*key, "bind" | "volume" | "tmpfs") && *key != name && !npipe_bind {
            return Err(item.invalid(format!("{key} options are incompatible with type {name}")));
        }
    }
    if vol.kind == VolumeKind::Tmpfs && !vol.source.is_empty() {
        return Err(item.invalid("invalid tmpfs source, source must be empty"));
    }
    Ok(vol)
}

fn kind_name(kind: &VolumeKind) -> &str {
    match kind {
        VolumeKind::Volume => "volume",
        VolumeKind::Bind => "bind",
        VolumeKind::Tmpfs => "tmpfs",
        VolumeKind::Other(name) => name,
    }
}

/// A bind source made absolute: `~` from `HOME`, relative paths against the working directory.
fn bind_source(source: &str, ctx: &Context<'_>) -> String {
    let expanded = match (source.strip_prefix('~'), ctx.env.get("HOME")) {
        (Some(rest), Some(home)) => format!("{home}{rest}"),
        _ => source.to_string(),
    };
    absolute(ctx.working_dir, Path::new(&expanded))
        .to_string_lossy()
        .into_owned()
}

/// `path` joined to `base` unless absolute, then cleaned lexically (Go's filepath.Join).
pub(crate) fn absolute(base: &Path, path: &Path) -> PathBuf {
    let joined = if path.is_absolute() {
        path.to_path_buf()
    } else {
        base.join(path)
    };
    let mut out = PathBuf::new();
    for part in joined.components() {
        match part {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(s: &str) -> (VolumeKind, String, String, bool) {
        let v = parse_volume_spec(s).unwrap();
        (v.kind, v.source, v.target, v.read_only)
    }

    #[test]
    fn volume_short_syntax() {
        use VolumeKind::*;
        let t = |k, s: &str, t: &str, ro| (k, s.to_string(), t.to_string(), ro);
        assert_eq!(
            spec("dbdata:/var/lib/mysql"),
            t(Volume, "dbdata", "/var/lib/mysql", false)
        );
        assert_eq!(spec("./initdb.d:/x"), t(Bind, "./initdb.d", "/x", false));
        assert_eq!(
            spec("/opt/data:/data:ro"),
            t(Bind, "/opt/data", "/data", true)
        );
        assert_eq!(
            spec("~/cfg:/etc/cfg:ro,z"),
            t(Bind, "~/cfg", "/etc/cfg", true)
        );
        assert_eq!(
            spec("/var/lib/mysql"),
            t(Volume, "", "/var/lib/mysql", false)
        );
        assert_eq!(spec("vol:/data:nocopy"), t(Volume, "vol", "/data", false));
        assert!(parse_volume_spec("").is_err());
        assert_eq!(
            parse_volume_spec("ab:cd:ro:x").unwrap_err(),
            "invalid spec: ab:cd:ro:x: too many colons"
        );
        assert_eq!(
            parse_volume_spec("ab::c").unwrap_err(),
            "invalid spec: ab::c: empty section between colons"
        );
    }

    #[test]
    fn paths_are_cleaned() {
        let base = Path::new("/srv/app");
        assert_eq!(
            absolute(base, Path::new("./initdb.d")),
            Path::new("/srv/app/initdb.d")
        );
        assert_eq!(absolute(base, Path::new("../x/./y")), Path::new("/srv/x/y"));
        assert_eq!(absolute(base, Path::new(".")), Path::new("/srv/app"));
        assert_eq!(absolute(base, Path::new("/abs")), Path::new("/abs"));
    }
}
