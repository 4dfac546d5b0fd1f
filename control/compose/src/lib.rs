//! Compose v3 files to a stack of swarm service specs, as `docker stack deploy -c FILE NAME`.
//!
//! The pipeline follows docker's cli/compose, one module per step, for each file in order:
//! `yaml` parses, the forbidden-key check runs on the raw tree, `interpolate` substitutes
//! `${VAR}`, `loader` checks keys and types and builds the typed model (`types`); then
//! `merge` folds later files over earlier ones and `convert` produces the specs.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
pub use shoal_spec::Labels;

mod convert;
mod deploy;
mod envfile;
mod error;
mod interpolate;
mod loader;
mod merge;
#[cfg(test)]
mod merge_tests;
mod node;
mod ports;
mod reference;
#[cfg(test)]
mod tests;
mod types;
mod units;
mod volumespec;
mod yaml;

pub use convert::{LABEL_IMAGE, LABEL_NAMESPACE};
pub use error::ComposeError;
pub use units::{parse_duration, shell_split};

/// Everything `stack deploy` creates or uses, in name order.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Stack {
    pub name: String,
    pub services: Vec<shoal_spec::ServiceSpec>,
    /// The networks the services attach to (declared networks no service uses are left out,
    /// as docker creates only those).
    pub networks: Vec<NetworkDecl>,
    /// The named volumes the services mount.
    pub volumes: Vec<VolumeDecl>,
    /// Declared secrets and configs, in name order: docker creates every one that is
    /// not external, used or not.
    pub secrets: Vec<ObjectDecl>,
    pub configs: Vec<ObjectDecl>,
    /// What docker prints on stderr while loading, one entry per message, each to be followed
    /// by a blank line: `Ignoring unsupported options: build, links`, `Ignoring deprecated
    /// options:\n\ncontainer_name: ...`, and load-time notes (a port's host IP ignored, the
    /// deprecated `external.name`).
    pub warnings: Vec<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct NetworkDecl {
    /// `<stack>_<key>`, or the explicit `name:`, or for an external network its own name.
    pub name: String,
    /// The key in the compose file (`default` for the implicit network).
    pub key: String,
    /// `overlay` unless set.
    pub driver: String,
    /// Must already exist; `stack deploy` does not create it.
    pub external: bool,
    pub internal: bool,
    pub attachable: bool,
    /// The declared labels plus `com.docker.stack.namespace` (external networks: as declared).
    pub labels: Labels,
    /// First `ipam.config` entry.
    pub subnet: Option<String>,
    pub gateway: Option<String>,
    pub driver_opts: BTreeMap<String, String>,
}

/// A top-level `secrets:` or `configs:` entry.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct ObjectDecl {
    /// `<stack>_<key>`, or the explicit `name:`, or for an external object its own name.
    pub name: String,
    pub key: String,
    /// Must already exist; `stack deploy` does not create it.
    pub external: bool,
    /// The declared labels plus `com.docker.stack.namespace` (external: as declared).
    pub labels: Labels,
    /// The absolute path of its `file:` (the CLI reads it); None for an external object
    /// (and for one with no `file:`, which docker fails to read).
    pub file: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct VolumeDecl {
    /// `<stack>_<key>`, or the explicit `name:`, or for an external volume its own name.
    pub name: String,
    pub key: String,
    pub external: bool,
    /// The declared labels plus `com.docker.stack.namespace` (external volumes: none).
    pub labels: Labels,
    pub driver: Option<String>,
    pub driver_opts: BTreeMap<String, String>,
}

/// Keys docker refuses, with its hints (cli/compose/types ForbiddenProperties).
const FORBIDDEN: &[(&str, &str)] = &[
    ("extends", "Support for `extends` is not implemented yet."),
    ("volume_driver", "Instead of setting the volume driver on the service, define a volume using the top-level `volumes` option and specify the driver there."),
    ("volumes_from", "To share a volume between services, define it using the top-level `volumes` option and reference it from each service that shares it using the service-level `volumes` option."),
    ("cpu_quota", "Set resource limits using deploy.resources"),
    ("cpu_shares", "Set resource limits using deploy.resources"),
    ("cpuset", "Set resource limits using deploy.resources"),
    ("mem_limit", "Set resource limits using deploy.resources"),
    ("memswap_limit", "Set resource limits using deploy.resources"),
];

/// Keys docker ignores with "Ignoring unsupported options".
const UNSUPPORTED: &[&str] = &[
    "build",
    "cgroupns_mode",
    "cgroup_parent",
    "devices",
    "domainname",
    "external_links",
    "ipc",
    "links",
    "mac_address",
    "network_mode",
    "pid",
    "privileged",
    "restart",
    "security_opt",
    "shm_size",
    "userns_mode",
];

/// Keys docker ignores with "Ignoring deprecated options".
const DEPRECATED: &[(&str, &str)] = &[
    ("container_name", "Setting the container name is not supported."),
    ("expose", "Exposing ports is unnecessary - services on the same network can access each other's containers on any port."),
];

/// Service keys docker applies and Shoal does not act on yet. When one is set (to anything
/// but null, false, 0 or empty), `load` names it in a warning, in docker's wording for the
/// keys it ignores itself, rather than drop it in silence.
const NOT_APPLIED: &[&str] = &[
    "credential_spec",
    "logging",
    "oom_score_adj",
    "stdin_open",
    // Recorded (the spec's TTY), but the task's output is its log, not a terminal.
    "tty",
];

/// The one network driver option Shoal's overlay acts on.
const NETWORK_MTU_OPTION: &str = "com.docker.network.driver.mtu";

const DEFAULT_VERSION: &str = "3.13";

/// Load one or more compose files (later files override earlier ones key by key, as `docker
/// stack deploy -c a -c b`). `files`: (path shown in errors, content); relative paths in the
/// files (binds, env files) resolve against the first file's directory, as docker's. `env`:
/// variables for `${VAR}`/`${VAR:-default}`/`$VAR` interpolation, bare environment keys and
/// `~` in bind paths.
pub fn load(
    stack: &str,
    files: &[(String, String)],
    env: &BTreeMap<String, String>,
) -> Result<Stack, ComposeError> {
    let parsed = files
        .iter()
        .map(|(file, text)| parse(file, text))
        .collect::<Result<Vec<_>, _>>()?;
    load_parsed(stack, parsed, env)
}

/// One compose file read and parsed, not yet checked: docker reads and parses every `-c`
/// file, in order, before it loads any (so a missing or unparsable later file is reported
/// before an earlier file's schema error).
#[derive(Clone, Debug)]
pub struct ParsedFile {
    file: String,
    root: Map<String, Value>,
}

/// Parse one file's YAML (`file` is the name shown in errors; `-` for stdin).
pub fn parse(file: &str, text: &str) -> Result<ParsedFile, ComposeError> {
    Ok(ParsedFile {
        file: file.to_string(),
        root: yaml::parse(file, text)?,
    })
}

/// [`load`] for files already parsed: each file in order is version-checked against the
/// first, checked for forbidden keys, interpolated, checked against the schema and loaded;
/// then the files merge, later over earlier, and the result is converted (and validated) as a
/// whole, so the stack is all or nothing.
pub fn load_parsed(
    stack: &str,
    files: Vec<ParsedFile>,
    env: &BTreeMap<String, String>,
) -> Result<Stack, ComposeError> {
    let Some(ParsedFile { file: first, .. }) = files.first() else {
        return Err(ComposeError::NoFiles);
    };
    let working_dir = working_dir(first);
    let mut version: Option<String> = None;
    let mut unsupported = BTreeSet::new();
    let mut deprecated = BTreeMap::new();
    let mut not_applied = BTreeSet::new();
    let mut warnings = Vec::new();
    let mut models = Vec::with_capacity(files.len());
    for ParsedFile { file, mut root } in files {
        let file = &file;
        let this_version = file_version(file, &root)?;
        let version = version.get_or_insert_with(|| this_version.clone());
        if *version != this_version {
            return Err(ComposeError::File {
                file: file.clone(),
                message: format!(
                    "version mismatched between two composefiles : {version} and {this_version}"
                ),
            });
        }
        let services = root.get("services").and_then(Value::as_object);
        for (_, svc) in services.into_iter().flatten() {
            let Some(svc) = svc.as_object() else { continue };
            unsupported.extend(UNSUPPORTED.iter().filter(|k| svc.contains_key(**k)));
            not_applied.extend(
                NOT_APPLIED
                    .iter()
                    .filter(|k| svc.get(**k).is_some_and(is_set))
                    .map(|k| k.to_string()),
            );
            deprecated.extend(
                DEPRECATED
                    .iter()
                    .filter(|(k, _)| svc.contains_key(*k))
                    .copied(),
            );
        }
        not_applied.extend(not_applied_declarations(&root));
        check_forbidden(file, &root)?;
        interpolate::interpolate_file(file, &mut root, env)?;
        if !supported_version(version) {
            return Err(ComposeError::File {
                file: file.clone(),
                message: format!("unsupported Compose file version: {version}"),
            });
        }
        let ctx = loader::Context {
            working_dir: &working_dir,
            env,
            version,
        };
        models.push(loader::load_file(
            file,
            &Value::Object(root),
            &ctx,
            &mut warnings,
        )?);
    }
    if !unsupported.is_empty() {
        let list: Vec<&str> = unsupported.into_iter().copied().collect();
        warnings.push(format!("Ignoring unsupported options: {}", list.join(", ")));
    }
    if !deprecated.is_empty() {
        warnings.push(format!(
            "Ignoring deprecated options:\n\n{}",
            property_list(deprecated.into_iter())
        ));
    }
    if !not_applied.is_empty() {
        let list: Vec<String> = not_applied.into_iter().collect();
        warnings.push(format!(
            "Ignoring options not supported by shoal yet: {}",
            list.join(", ")
        ));
    }
    convert::convert(stack, merge::merge(models), warnings)
}

/// A value that asks for something: not null, false, 0, "" or empty.
fn is_set(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64() != Some(0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

/// Top-level declarations Shoal would drop: named volumes are local directories (a volume
/// driver or its options, an NFS mount say, would not be used), and the overlay acts on no
/// network driver option but the MTU (`encrypted` would not encrypt).
fn not_applied_declarations(root: &Map<String, Value>) -> Vec<String> {
    let mut out = Vec::new();
    let section = |key: &str| {
        root.get(key)
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
    };
    for (name, vol) in section("volumes") {
        let Some(vol) = vol.as_object() else { continue };
        if vol.get("external").is_some_and(is_set) {
            continue;
        }
        if vol
            .get("driver")
            .is_some_and(|d| is_set(d) && d.as_str() != Some("local"))
        {
            out.push(format!("volumes.{name}.driver"));
        }
        if vol.get("driver_opts").is_some_and(is_set) {
            out.push(format!("volumes.{name}.driver_opts"));
        }
    }
    for (name, net) in section("networks") {
        let opts = net.get("driver_opts").and_then(Value::as_object);
        for opt in opts.into_iter().flatten().map(|(k, _)| k) {
            if opt != NETWORK_MTU_OPTION {
                out.push(format!("networks.{name}.driver_opts.{opt}"));
            }
        }
    }
    out
}

/// The directory docker resolves relative paths against: the first file's, made absolute
/// (the current directory for stdin, `-`).
fn working_dir(first: &str) -> PathBuf {
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
    if first == "-" {
        return cwd;
    }
    let file = volumespec::absolute(&cwd, Path::new(first));
    file.parent().map(Path::to_path_buf).unwrap_or(cwd)
}

/// The file's `version`, normalised as docker's schema.Version (absent or `3` is 3.13).
fn file_version(file: &str, root: &Map<String, Value>) -> Result<String, ComposeError> {
    let version = match root.get("version") {
        None => String::new(),
        Some(Value::String(s)) => s.clone(),
        // `version: 3.8` unquoted is a number; docker formats it back with %v.
        Some(Value::Number(n)) => node::go_number(n),
        Some(_) => {
            return Err(ComposeError::Schema {
                file: file.to_string(),
                path: "version".to_string(),
                message: "must be a string".to_string(),
            })
        }
    };
    Ok(match version.as_str() {
        "" | "3" => DEFAULT_VERSION.to_string(),
        _ => version,
    })
}

/// docker ships schemas 3.0 to 3.13.
fn supported_version(version: &str) -> bool {
    (0..=13).any(|minor| version == format!("3.{minor}"))
}

fn check_forbidden(file: &str, root: &Map<String, Value>) -> Result<(), ComposeError> {
    let mut found = BTreeMap::new();
    let services = root.get("services").and_then(Value::as_object);
    for (_, svc) in services.into_iter().flatten() {
        let Some(svc) = svc.as_object() else { continue };
        found.extend(
            FORBIDDEN
                .iter()
                .filter(|(k, _)| svc.contains_key(*k))
                .copied(),
        );
    }
    if found.is_empty() {
        return Ok(());
    }
    Err(ComposeError::Forbidden {
        file: file.to_string(),
        options: property_list(found.into_iter()),
    })
}

/// `key: description` lines, sorted, separated by blank lines (docker's propertyWarnings).
fn property_list<'a>(props: impl Iterator<Item = (&'a str, &'a str)>) -> String {
    let mut lines: Vec<String> = props.map(|(k, d)| format!("{k}: {d}")).collect();
    lines.sort();
    lines.join("\n\n")
}
