//! One interpolated compose file to the typed model, checking every key and value on the way.

// docker's schema check and loader.LoadService/LoadNetworks/LoadVolumes, in one pass.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;
use shoal_spec::PortConfig;

use crate::deploy::load_deploy;
use crate::node::{Node, Owned};
use crate::types::{
    ComposeFile, Healthcheck, NetworkConfig, ObjectConfig, ObjectRef, Origin, ServiceConfig,
    ServiceNetwork, VolumeConfig,
};
use crate::volumespec::{absolute, load_service_volumes};
use crate::{envfile, ports, units, ComposeError};

/// What loading a file needs besides the file.
pub(crate) struct Context<'a> {
    /// Directory relative paths (binds, env files) are resolved against: the first file's.
    pub working_dir: &'a Path,
    pub env: &'a BTreeMap<String, String>,
    /// The files' compose version ("3.13" when absent), for version-dependent warnings.
    pub version: &'a str,
}

/// Keys a service may have (compose schema 3.13).
const SERVICE_KEYS: &[&str] = &[
    "build",
    "cap_add",
    "cap_drop",
    "cgroupns_mode",
    "cgroup_parent",
    "command",
    "configs",
    "container_name",
    "credential_spec",
    "depends_on",
    "deploy",
    "devices",
    "dns",
    "dns_search",
    "domainname",
    "entrypoint",
    "env_file",
    "environment",
    "expose",
    "external_links",
    "extra_hosts",
    "healthcheck",
    "hostname",
    "image",
    "init",
    "ipc",
    "isolation",
    "labels",
    "links",
    "logging",
    "mac_address",
    "network_mode",
    "networks",
    "oom_score_adj",
    "pid",
    "ports",
    "privileged",
    "read_only",
    "restart",
    "secrets",
    "security_opt",
    "shm_size",
    "stdin_open",
    "stop_grace_period",
    "stop_signal",
    "sysctls",
    "tmpfs",
    "tty",
    "ulimits",
    "user",
    "userns_mode",
    "volumes",
    "working_dir",
];

pub(crate) fn load_file(
    file: &str,
    root: &Value,
    ctx: &Context<'_>,
    warnings: &mut Vec<String>,
) -> Result<ComposeFile, ComposeError> {
    let node = Node::root(file, root);
    let mut out = ComposeFile::default();
    let sections = node.mapping(
        &[
            "version", "services", "networks", "volumes", "secrets", "configs",
        ],
        true,
    )?;
    // In docker's order (services, networks, volumes, secrets, configs), so load warnings
    // come out as docker prints them.
    let mut sections: Vec<_> = sections.iter().collect();
    let rank = |k: &str| {
        ["services", "networks", "volumes", "secrets", "configs"]
            .iter()
            .position(|s| *s == k)
    };
    sections.sort_by_key(|(k, _)| rank(k));
    for (key, section) in sections {
        let section = section.node();
        match *key {
            "services" => {
                for (name, svc) in section.named()? {
                    let svc = load_service(svc.node(), ctx, warnings)?;
                    out.services.insert(name.to_string(), svc);
                }
            }
            "networks" => {
                for (name, net) in section.named()? {
                    let net = load_network(name, net.node(), ctx, warnings)?;
                    out.networks.insert(name.to_string(), net);
                }
            }
            "volumes" => {
                for (name, vol) in section.named()? {
                    let vol = load_volume(name, vol.node(), ctx, warnings)?;
                    out.volumes.insert(name.to_string(), vol);
                }
            }
            "secrets" | "configs" => {
                let kind = &key[..key.len() - 1];
                for (name, obj) in section.named()? {
                    let obj = load_object(kind, name, obj.node(), ctx, warnings)?;
                    if kind == "secret" {
                        out.secrets.insert(name.to_string(), obj);
                    } else {
                        out.configs.insert(name.to_string(), obj);
                    }
                }
            }
            _ => {} // version: checked before loading
        }
    }
    Ok(out)
}

pub(crate) fn origin(node: Node<'_>) -> Origin {
    Origin {
        file: node.file.to_string(),
        path: node.path(),
    }
}

fn load_service(
    node: Node<'_>,
    ctx: &Context<'_>,
    warnings: &mut Vec<String>,
) -> Result<ServiceConfig, ComposeError> {
    let mut svc = ServiceConfig {
        origin: origin(node),
        ..Default::default()
    };
    let mut env_files = Vec::new();
    let mut environment = Vec::new();
    for (key, child) in node.mapping(SERVICE_KEYS, true)? {
        let v = child.node();
        match key {
            "image" => svc.image = Some(v.string()?),
            "command" => svc.command = Some(shell_command(v)?),
            "entrypoint" => svc.entrypoint = Some(shell_command(v)?),
            "environment" => environment = v.list_or_dict(true)?,
            "env_file" => env_files = env_file_list(v)?,
            "hostname" => svc.hostname = Some(v.string()?),
            "user" => svc.user = Some(v.string()?),
            "working_dir" => svc.working_dir = Some(v.string()?),
            "labels" => svc.labels = labels(v)?,
            "ports" => svc.ports = load_ports(v, warnings)?,
            "volumes" => svc.volumes = load_service_volumes(v, ctx)?,
            "networks" => svc.networks = load_service_networks(v)?,
            "healthcheck" => svc.healthcheck = Some(load_healthcheck(v, ctx.version)?),
            "stop_grace_period" => svc.stop_grace_period = Some(duration(v)?),
            "stop_signal" => svc.stop_signal = Some(v.string()?),
            "init" => svc.init = Some(v.bool()?),
            "extra_hosts" => svc.extra_hosts = extra_hosts(v)?,
            "dns" => svc.dns = v.string_or_list()?,
            "dns_search" => svc.dns_search = v.string_or_list()?,
            "sysctls" => {
                svc.sysctls = v
                    .list_or_dict(false)?
                    .into_iter()
                    .map(|(k, v)| (k, v.unwrap_or_default()))
                    .collect()
            }
            "ulimits" => svc.ulimits = ulimits(v)?,
            "cap_add" => svc.cap_add = v.string_list()?,
            "cap_drop" => svc.cap_drop = v.string_list()?,
            "read_only" => svc.read_only = v.bool()?,
            "tty" => svc.tty = v.bool()?,
            "restart" => svc.restart = Some((v.string()?, origin(v))),
            "secrets" => svc.secrets = load_object_refs(v)?,
            "configs" => svc.configs = load_object_refs(v)?,
            "deploy" => svc.deploy = load_deploy(v)?,
            _ => check_ignored(key, v)?,
        }
    }
    svc.environment = resolve_environment(env_files, environment, ctx)?;
    Ok(svc)
}

/// docker's resolveEnvironment: env files in order, then `environment:`; a key without a value
/// (or with an empty one) takes the caller's environment value when there is one.
fn resolve_environment(
    env_files: Vec<(String, Origin)>,
    environment: Vec<(String, Option<String>)>,
    ctx: &Context<'_>,
) -> Result<BTreeMap<String, Option<String>>, ComposeError> {
    let mut out = BTreeMap::new();
    let mut update = |k: String, v: Option<String>| {
        let value = match (&v, ctx.env.get(&k)) {
            (None, Some(from_env)) => Some(from_env.clone()),
            (Some(s), Some(from_env)) if s.is_empty() => Some(from_env.clone()),
            _ => v,
        };
        out.insert(k, value);
    };
    for (name, at) in env_files {
        let path = absolute(ctx.working_dir, Path::new(&name));
        let text = std::fs::read_to_string(&path).map_err(|source| ComposeError::EnvFile {
            file: at.file.clone(),
            path: at.path.clone(),
            env_file: path.clone(),
            source,
        })?;
        let vars = envfile::parse(&text, ctx.env).map_err(|message| ComposeError::Invalid {
            file: at.file.clone(),
            path: at.path.clone(),
            message: format!("invalid env file ({}): {message}", path.display()),
        })?;
        for (k, v) in vars {
            update(k, Some(v));
        }
    }
    for (k, v) in environment {
        update(k, v);
    }
    Ok(out)
}

/// `env_file: a.env` or a list, each with its place for errors.
fn env_file_list(v: Node<'_>) -> Result<Vec<(String, Origin)>, ComposeError> {
    match v.value {
        Value::String(s) => Ok(vec![(s.clone(), origin(v))]),
        Value::Array(_) => v
            .list()?
            .iter()
            .map(|item| {
                let item = item.node();
                Ok((item.string()?, origin(item)))
            })
            .collect(),
        _ => Err(v.must_be("string or list")),
    }
}

fn shell_command(v: Node<'_>) -> Result<Vec<String>, ComposeError> {
    match v.value {
        Value::String(s) => units::shell_split(s).map_err(|e| v.invalid(e)),
        Value::Array(_) => v.string_list(),
        _ => Err(v.must_be("string or list")),
    }
}

pub(crate) fn labels(v: Node<'_>) -> Result<BTreeMap<String, String>, ComposeError> {
    Ok(v.list_or_dict(false)?
        .into_iter()
        .map(|(k, v)| (k, v.unwrap_or_default()))
        .collect())
}

pub(crate) fn duration(v: Node<'_>) -> Result<i64, ComposeError> {
    units::parse_duration(v.str()?).map_err(|e| v.invalid(e))
}

fn load_ports(v: Node<'_>, warnings: &mut Vec<String>) -> Result<Vec<PortConfig>, ComposeError> {
    let mut out = Vec::new();
    for item in v.list()? {
        let item = item.node();
        match item.value {
            Value::String(_) | Value::Number(_) => {
                let spec = match item.value {
                    Value::String(s) => s.clone(),
                    _ => item
                        .int()
                        .map_err(|_| item.invalid("invalid port"))?
                        .to_string(),
                };
                let mut parsed = ports::parse_short(&spec, warnings)
                    .map_err(|e| item.invalid(format!("invalid port {spec:?}: {e}")))?;
                out.append(&mut parsed);
            }
            Value::Object(_) => out.push(long_port(item)?),
            _ => return Err(item.must_be("number, string or mapping")),
        }
    }
    Ok(out)
}

fn port_number(v: Node<'_>) -> Result<u16, ComposeError> {
    let n = v.int()?;
    u16::try_from(n)
        .map_err(|_| v.invalid(format!("invalid port {n}: value out of range (0–65535)")))
}

fn long_port(item: Node<'_>) -> Result<PortConfig, ComposeError> {
    let mut port = PortConfig::default();
    let mut target = None;
    for (key, child) in item.mapping(&["mode", "target", "published", "protocol"], false)? {
        let v = child.node();
        match key {
            "target" => target = Some(port_number(v)?),
            "published" => port.published_port = Some(port_number(v)?).filter(|p| *p != 0),
            "protocol" => port.protocol = ports::protocol(v.str()?).map_err(|e| v.invalid(e))?,
            _ => port.publish_mode = ports::publish_mode(v.str()?).map_err(|e| v.invalid(e))?,
        }
    }
    match target {
        Some(t) if t != 0 => port.target_port = t,
        _ => return Err(item.invalid("invalid port: target is required")),
    }
    Ok(port)
}

fn load_service_networks(v: Node<'_>) -> Result<BTreeMap<String, ServiceNetwork>, ComposeError> {
    let mut out = BTreeMap::new();
    match v.value {
        Value::Array(_) => {
            for item in v.list()? {
                let item = item.node();
                out.insert(
                    item.string()?,
                    ServiceNetwork {
                        origin: origin(item),
                        aliases: Vec::new(),
                    },
                );
            }
        }
        Value::Object(_) => {
            for (name, child) in v.named()? {
                let n = child.node();
                let mut net = ServiceNetwork {
                    origin: origin(n),
                    aliases: Vec::new(),
                };
                if !n.is_null() {
                    for (key, opt) in n.mapping(
                        &["aliases", "driver_opts", "ipv4_address", "ipv6_address"],
                        false,
                    )? {
                        let o = opt.node();
                        match key {
                            "aliases" => net.aliases = o.string_list()?,
                            "driver_opts" => {
                                o.string_map()?;
                            }
                            _ => {
                                o.str()?;
                            }
                        }
                    }
                }
                out.insert(name.to_string(), net);
            }
        }
        _ => return Err(v.must_be("list or mapping")),
    }
    Ok(out)
}

/// A service's `healthcheck:`. `start_interval` came with schema 3.12: docker checks a
/// file against its own version's schema, so an older file may not use it.
fn load_healthcheck(v: Node<'_>, version: &str) -> Result<Healthcheck, ComposeError> {
    let mut hc = Healthcheck {
        origin: origin(v),
        ..Default::default()
    };
    let keys: &[&str] = &[
        "disable",
        "interval",
        "retries",
        "test",
        "timeout",
        "start_period",
        "start_interval",
    ];
    let keys = if version_at_least(version, "3.12") {
        keys
    } else {
        &keys[..keys.len() - 1]
    };
    for (key, child) in v.mapping(keys, false)? {
        let c = child.node();
        match key {
            "disable" => hc.disable = Some(c.bool()?),
            "interval" => hc.interval = Some(duration(c)?),
            "timeout" => hc.timeout = Some(duration(c)?),
            "start_period" => hc.start_period = Some(duration(c)?),
            "start_interval" => hc.start_interval = Some(duration(c)?),
            "retries" => hc.retries = Some(whole_number(c)?),
            _ => {
                hc.test = Some(match c.value {
                    Value::String(s) => vec!["CMD-SHELL".to_string(), s.clone()],
                    Value::Array(_) => c.string_list()?,
                    _ => return Err(c.must_be("string or list")),
                })
            }
        }
    }
    Ok(hc)
}

/// A schema "number" that lands in an unsigned field: 3 or 3.0, not -1 or 2.5.
fn whole_number(v: Node<'_>) -> Result<u64, ComposeError> {
    if let Ok(u) = v.uint() {
        return Ok(u);
    }
    let f = v.number()?;
    if f >= 0.0 && f.fract() == 0.0 && f < u64::MAX as f64 {
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        return Ok(f as u64);
    }
    Err(v.invalid("must be a whole non-negative number"))
}

/// A `mode:` as docker's YAML reads it: a number, or YAML 1.1 octal (`0440`), which
/// reaches us as a string of digits.
fn file_mode(c: Node<'_>) -> Result<u32, ComposeError> {
    if let Some(s) = c.value.as_str() {
        if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
            let (digits, radix) = match s.strip_prefix('0') {
                Some(rest) if !rest.is_empty() => (rest, 8),
                _ => (s, 10),
            };
            return u32::from_str_radix(digits, radix).map_err(|_| c.must_be("a file mode"));
        }
    }
    let n = c.number()?;
    if n < 0.0 || n > f64::from(u32::MAX) || n.fract() != 0.0 {
        return Err(c.must_be("a file mode"));
    }
    Ok(n as u32)
}

fn load_object_refs(v: Node<'_>) -> Result<Vec<ObjectRef>, ComposeError> {
    let mut out = Vec::new();
    for item in v.list()? {
        let item = item.node();
        let source = match item.value {
            Value::String(s) => ObjectRef {
                source: s.clone(),
                ..Default::default()
            },
            Value::Object(map) => {
                let mut r = ObjectRef::default();
                for (key, child) in map {
                    let c = item.child(key, child);
                    let c = c.node();
                    match key.as_str() {
                        "source" => r.source = c.string()?,
                        "target" => r.target = Some(c.string()?),
                        "uid" => r.uid = Some(c.string()?),
                        "gid" => r.gid = Some(c.string()?),
                        "mode" => r.mode = Some(file_mode(c)?),
                        // docker's schema leaves these objects open.
                        _ => {}
                    }
                }
                r
            }
            _ => return Err(item.must_be("string or mapping")),
        };
        out.push(ObjectRef {
            origin: origin(item),
            ..source
        });
    }
    Ok(out)
}

/// `external: true` or `external: {name: x}`: (external, external name).
fn external(v: Node<'_>) -> Result<(bool, Option<String>), ComposeError> {
    match v.value {
        Value::Bool(b) => Ok((*b, None)),
        Value::Object(_) => {
            let mut name = None;
            for (_, n) in v.mapping(&["name"], false)? {
                name = Some(n.node().string()?);
            }
            Ok((true, name))
        }
        _ => Err(v.must_be("boolean or mapping")),
    }
}

/// docker's external-name rules: `external.name` is the old spelling of `name`.
/// Returns docker's deprecation warning when the old spelling is used from `deprecated_from` on.
fn external_name(
    (kind, key): (&str, &str),
    ext_name: Option<String>,
    name: &mut Option<String>,
    node: Node<'_>,
    deprecated_from: &str,
    ctx: &Context<'_>,
) -> Result<Option<String>, ComposeError> {
    match ext_name {
        Some(ext) => {
            if name.is_some() {
                return Err(node.invalid(format!(
                    "{kind} {key}: {kind}.external.name and {kind}.name conflict; only use {kind}.name"
                )));
            }
            *name = Some(ext);
            if version_at_least(ctx.version, deprecated_from) {
                return Ok(Some(format!(
                    "{kind} {key}: {kind}.external.name is deprecated in favor of {kind}.name"
                )));
            }
        }
        None => {
            if name.is_none() {
                *name = Some(key.to_string());
            }
        }
    }
    Ok(None)
}

/// docker's versions.GreaterThanOrEqualTo on dotted numbers.
fn version_at_least(version: &str, than: &str) -> bool {
    let parse = |v: &str| -> Vec<u64> { v.split('.').map(|p| p.parse().unwrap_or(0)).collect() };
    let (a, b) = (parse(version), parse(than));
    for i in 0..a.len().max(b.len()) {
        let (x, y) = (
            a.get(i).copied().unwrap_or(0),
            b.get(i).copied().unwrap_or(0),
        );
        if x != y {
            return x > y;
        }
    }
    true
}

fn load_network(
    key: &str,
    v: Node<'_>,
    ctx: &Context<'_>,
    warnings: &mut Vec<String>,
) -> Result<NetworkConfig, ComposeError> {
    let mut net = NetworkConfig::default();
    if v.is_null() {
        return Ok(net);
    }
    let mut ext_name = None;
    for (k, child) in v.mapping(
        &[
            "name",
            "driver",
            "driver_opts",
            "ipam",
            "external",
            "internal",
            "attachable",
            "labels",
        ],
        true,
    )? {
        let c = child.node();
        match k {
            "name" => net.name = Some(c.string()?),
            "driver" => net.driver = Some(c.string()?),
            "driver_opts" => net.driver_opts = c.string_map()?.into_iter().collect(),
            "external" => (net.external, ext_name) = external(c)?,
            "internal" => net.internal = c.bool()?,
            "attachable" => net.attachable = c.bool()?,
            "labels" => net.labels = labels(c)?,
            _ => load_ipam(c, &mut net)?,
        }
    }
    if net.external {
        warnings.extend(external_name(
            ("network", key),
            ext_name,
            &mut net.name,
            v,
            "3.5",
            ctx,
        )?);
    }
    Ok(net)
}

fn load_ipam(v: Node<'_>, net: &mut NetworkConfig) -> Result<(), ComposeError> {
    for (k, child) in v.mapping(&["driver", "config"], false)? {
        let c = child.node();
        if k == "driver" {
            c.str()?;
            continue;
        }
        for (i, pool) in c.list()?.into_iter().enumerate() {
            let pool = pool.node();
            // `gateway` is not in docker's 3.x schema; Shoal takes it as compose-spec does.
            for (field, value) in pool.mapping(&["subnet", "gateway"], false)? {
                let value = value.node();
                let s = value.string()?;
                if field == "subnet" {
                    check_subnet(&s).map_err(|e| value.invalid(e))?;
                    if i == 0 {
                        net.subnet = Some(s);
                    }
                } else {
                    s.parse::<std::net::IpAddr>()
                        .map_err(|_| value.invalid(format!("invalid gateway address {s:?}")))?;
                    if i == 0 {
                        net.gateway = Some(s);
                    }
                }
            }
        }
    }
    Ok(())
}

fn check_subnet(s: &str) -> Result<(), String> {
    let bad = || format!("invalid subnet {s:?}: expected an address/prefix such as 10.0.9.0/24");
    let (addr, bits) = s.split_once('/').ok_or_else(bad)?;
    let addr: std::net::IpAddr = addr.parse().map_err(|_| bad())?;
    let bits: u8 = bits.parse().map_err(|_| bad())?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    if bits > max {
        return Err(bad());
    }
    Ok(())
}

fn load_volume(
    key: &str,
    v: Node<'_>,
    ctx: &Context<'_>,
    warnings: &mut Vec<String>,
) -> Result<VolumeConfig, ComposeError> {
    let mut vol = VolumeConfig::default();
    if v.is_null() {
        return Ok(vol);
    }
    let mut ext_name = None;
    let entries = v.mapping(
        &[
            "name",
            "driver",
            "driver_opts",
            "external",
            "labels",
            "x-cluster-spec",
        ],
        true,
    )?;
    for (k, child) in &entries {
        let c = child.node();
        match *k {
            "name" => vol.name = Some(c.string()?),
            "driver" => vol.driver = Some(c.string()?),
            "driver_opts" => vol.driver_opts = c.string_map()?.into_iter().collect(),
            "external" => (vol.external, ext_name) = external(c)?,
            "labels" => vol.labels = labels(c)?,
            _ => {
                c.object()?; // x-cluster-spec: CSI cluster volumes, not modelled
            }
        }
    }
    if vol.external {
        let conflict = if vol.driver.is_some() {
            Some("driver")
        } else if !vol.driver_opts.is_empty() {
            Some("driver_opts")
        } else if !vol.labels.is_empty() {
            Some("labels")
        } else {
            None
        };
        if let Some(param) = conflict {
            return Err(v.invalid(format!(
                "conflicting parameters \"external\" and {param:?} specified for volume {key:?}"
            )));
        }
        warnings.extend(external_name(
            ("volume", key),
            ext_name,
            &mut vol.name,
            v,
            "3.4",
            ctx,
        )?);
    }
    Ok(vol)
}

fn load_object(
    kind: &str,
    key: &str,
    v: Node<'_>,
    ctx: &Context<'_>,
    warnings: &mut Vec<String>,
) -> Result<ObjectConfig, ComposeError> {
    let allowed: &[&str] = if kind == "secret" {
        &[
            "name",
            "file",
            "external",
            "labels",
            "driver",
            "driver_opts",
            "template_driver",
        ]
    } else {
        &["name", "file", "external", "labels", "template_driver"]
    };
    let mut obj = ObjectConfig {
        origin: origin(v),
        ..Default::default()
    };
    let mut ext_name = None;
    let mut has_driver = false;
    let mut has_file = false;
    for (k, child) in v.mapping(allowed, true)? {
        let c = child.node();
        match k {
            "name" => obj.name = Some(c.string()?),
            "external" => {
                // docker's schema leaves secret/config `external` objects open.
                obj.external = match c.value {
                    Value::Bool(b) => *b,
                    Value::Object(map) => {
                        if let Some(n) = map.get("name") {
                            ext_name = Some(c.child("name", n).node().string()?);
                        }
                        true
                    }
                    _ => return Err(c.must_be("boolean or mapping")),
                }
            }
            "labels" => obj.labels = labels(c)?,
            "driver_opts" => {
                c.string_map()?;
            }
            "driver" => {
                c.str()?;
                has_driver = true;
            }
            "file" => {
                let file = c.string()?;
                obj.file = Some(
                    absolute(ctx.working_dir, Path::new(&file))
                        .display()
                        .to_string(),
                );
                has_file = true;
            }
            _ => {
                c.str()?;
            }
        }
    }
    if obj.external {
        warnings.extend(external_name(
            (kind, key),
            ext_name,
            &mut obj.name,
            v,
            "3.5",
            ctx,
        )?);
    } else if has_driver && has_file {
        return Err(v.invalid(format!(
            "{kind} {key}: {kind}.driver and {kind}.file conflict; only use {kind}.driver"
        )));
    }
    obj.driver = has_driver;
    Ok(obj)
}

/// docker's transformHostsList: `["host:ip", "host=ip"]` or `{host: ip}` (sorted), as
/// `host:ip`, brackets around an IPv6 address taken off; a list entry with neither
/// separator is dropped, as docker drops it.
fn extra_hosts(v: Node<'_>) -> Result<Vec<String>, ComposeError> {
    let pairs: Vec<(String, String)> = match v.value {
        Value::Object(_) => {
            let mut pairs: Vec<(String, String)> = v
                .list_or_dict(false)?
                .into_iter()
                .map(|(k, ip)| (k, ip.unwrap_or_default()))
                .collect();
            pairs.sort();
            pairs
        }
        Value::Array(_) => v
            .list()?
            .iter()
            .map(|item| {
                let item = item.node();
                item.scalar_string()
                    .ok_or_else(|| item.must_be("string, number or null"))
            })
            .collect::<Result<Vec<_>, _>>()?
            .into_iter()
            .filter_map(|entry| {
                entry
                    .split_once('=')
                    .or_else(|| entry.split_once(':'))
                    .map(|(h, ip)| (h.to_string(), ip.to_string()))
            })
            .collect(),
        _ => return Err(v.must_be("list or mapping")),
    };
    Ok(pairs
        .into_iter()
        .map(|(host, ip)| {
            let ip = match ip.strip_prefix('[').and_then(|i| i.strip_suffix(']')) {
                Some(inner) if !inner.is_empty() => inner.to_string(),
                _ => ip,
            };
            format!("{host}:{ip}")
        })
        .collect())
}

/// `ulimits: {nofile: {soft: 1024, hard: 2048}, nproc: 65535}` (a number is both).
fn ulimits(v: Node<'_>) -> Result<BTreeMap<String, (i64, i64)>, ComposeError> {
    let mut out = BTreeMap::new();
    for (name, limit) in v.object()? {
        let limit: Owned<'_> = v.child(name, limit);
        let limit = limit.node();
        let pair = if limit.value.is_object() {
            let entries = limit.mapping(&["soft", "hard"], false)?;
            let mut soft = None;
            let mut hard = None;
            for (k, n) in &entries {
                let n = n.node().int()?;
                if *k == "soft" {
                    soft = Some(n);
                } else {
                    hard = Some(n);
                }
            }
            match (soft, hard) {
                (Some(soft), Some(hard)) => (soft, hard),
                (None, _) => return Err(limit.schema("soft is required")),
                (_, None) => return Err(limit.schema("hard is required")),
            }
        } else {
            let n = limit.int()?;
            (n, n)
        };
        out.insert(name.clone(), pair);
    }
    Ok(out)
}

/// Keys Shoal accepts but does not act on yet: their types are still checked as docker does.
fn check_ignored(key: &str, v: Node<'_>) -> Result<(), ComposeError> {
    match key {
        "cgroupns_mode" | "cgroup_parent" | "container_name" | "domainname" | "ipc"
        | "isolation" | "mac_address" | "network_mode" | "userns_mode" => {
            v.str()?;
        }
        "privileged" | "stdin_open" => {
            v.bool()?;
        }
        "oom_score_adj" => {
            v.int()?;
        }
        "devices" | "external_links" | "links" | "security_opt" | "depends_on" => {
            v.string_list()?;
        }
        "tmpfs" => {
            v.string_or_list()?;
        }
        "pid" if !v.is_null() => {
            v.str()?;
        }
        "shm_size" => {
            v.scalar_string()
                .ok_or_else(|| v.must_be("number or string"))?;
        }
        "build" if !v.value.is_string() => {
            v.object()?;
        }
        "expose" => {
            for item in v.list()? {
                let item = item.node();
                item.scalar_string()
                    .ok_or_else(|| item.must_be("string or number"))?;
            }
        }
        "credential_spec" => {
            for (_, c) in v.mapping(&["config", "file", "registry"], false)? {
                c.node().str()?;
            }
        }
        "logging" => {
            for (k, c) in v.mapping(&["driver", "options"], false)? {
                let c = c.node();
                if k == "driver" {
                    c.str()?;
                } else {
                    for (name, opt) in c.object()? {
                        let opt = c.child(name, opt);
                        let opt = opt.node();
                        if !opt.is_null() {
                            opt.scalar_string()
                                .ok_or_else(|| opt.must_be("string, number or null"))?;
                        }
                    }
                }
            }
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_compare_numerically() {
        assert!(version_at_least("3.10", "3.5"));
        assert!(version_at_least("3.5", "3.5"));
        assert!(!version_at_least("3.1", "3.5"));
    }
}
