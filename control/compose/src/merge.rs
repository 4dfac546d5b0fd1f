//! Later compose files override earlier ones, as docker's loader/merge.go (`-c a -c b`).
//!
//! docker merges the typed model of each file (after its own interpolation) with mergo,
//! `WithOverride` and `WithAppendSlice`, plus a few transformers. What that means field by
//! field, and what this module does:
//! - a string, number or duration overrides only when the later file sets it to something
//!   other than empty or zero (mergo never overrides with an empty value), a bool only when
//!   the later one is true;
//! - a pointer field (`replicas`, `retries`, `parallelism`, `max_attempts`: docker's
//!   `mergeUint64`) overrides whenever the later file sets it, zero included;
//! - plain lists append (`extra_hosts`, `dns`, `dns_search`, `cap_add`, `cap_drop`,
//!   `deploy.placement.constraints` and `preferences`, and `healthcheck.test`, as docker's
//!   mergo does to every `[]string` it has no transformer for);
//! - `command` and `entrypoint` are replaced when the later file gives a non-empty one;
//! - maps merge key by key (`labels`, `deploy.labels`, `sysctls`, `ulimits`, `environment`,
//!   `networks`);
//! - `ports`, `volumes`, `secrets` and `configs` merge by key (published port, target,
//!   source), sorted by that key, once the earlier file has any (else the later list is taken
//!   as it is);
//! - top-level `networks`, `volumes`, `secrets` and `configs` replace whole entries by name;
//! - services merge by name, a service only in a later file is added as it is.

use std::collections::BTreeMap;

use shoal_spec::PortConfig;

use crate::types::{
    ComposeFile, DeployConfig, Healthcheck, ObjectRef, Resources, RestartPolicy, ServiceConfig,
    UpdateConfig,
};

pub(crate) fn merge(files: Vec<ComposeFile>) -> ComposeFile {
    let mut files = files.into_iter();
    let mut base = files.next().unwrap_or_default();
    for over in files {
        for (name, svc) in over.services {
            match base.services.get_mut(&name) {
                Some(existing) => merge_service(existing, svc),
                None => {
                    base.services.insert(name, svc);
                }
            }
        }
        base.networks.extend(over.networks);
        base.volumes.extend(over.volumes);
        base.secrets.extend(over.secrets);
        base.configs.extend(over.configs);
    }
    base
}

/// A field docker keeps behind a pointer and merges with `mergeUint64`: set means override.
fn set<T>(dst: &mut Option<T>, src: Option<T>) {
    if src.is_some() {
        *dst = src;
    }
}

/// A field docker holds by value (or a pointer to one it dereferences): the later value
/// overrides only when it is not the type's zero (empty string, 0, 0s).
fn set_nonzero<T: Default + PartialEq>(dst: &mut Option<T>, src: Option<T>) {
    match src {
        Some(s) if dst.is_none() || s != T::default() => *dst = Some(s),
        _ => {}
    }
}

/// A bool (or `*bool`): mergo sets it only from true, so a later `false` never clears it.
fn set_bool(dst: &mut Option<bool>, src: Option<bool>) {
    match (dst.as_mut(), src) {
        (Some(d), Some(s)) => *d |= s,
        (None, s) => *dst = s,
        (Some(_), None) => {}
    }
}

fn merge_service(dst: &mut ServiceConfig, src: ServiceConfig) {
    dst.origin = src.origin;
    set_nonzero(&mut dst.image, src.image);
    // docker's mergeShellCommand: replaced by a non-empty command, never appended.
    set(&mut dst.command, src.command.filter(|c| !c.is_empty()));
    set(
        &mut dst.entrypoint,
        src.entrypoint.filter(|c| !c.is_empty()),
    );
    merge_environment(&mut dst.environment, src.environment);
    set_nonzero(&mut dst.hostname, src.hostname);
    set_nonzero(&mut dst.user, src.user);
    set_nonzero(&mut dst.working_dir, src.working_dir);
    dst.labels.extend(src.labels);
    dst.ports = merge_keyed(std::mem::take(&mut dst.ports), src.ports, port_key);
    dst.volumes = merge_keyed(std::mem::take(&mut dst.volumes), src.volumes, |v| {
        v.target.clone()
    });
    // docker's mergeServiceNetworkConfig: the later entry's aliases replace the earlier
    // one's (a bare `- net` entry is nil in docker and overwrites the whole entry).
    dst.networks.extend(src.networks);
    match (&mut dst.healthcheck, src.healthcheck) {
        (Some(d), Some(s)) => merge_healthcheck(d, s),
        (d, s) => set(d, s),
    }
    set_nonzero(&mut dst.stop_grace_period, src.stop_grace_period);
    set_nonzero(&mut dst.stop_signal, src.stop_signal);
    set_bool(&mut dst.init, src.init);
    dst.extra_hosts.extend(src.extra_hosts);
    dst.dns.extend(src.dns);
    dst.dns_search.extend(src.dns_search);
    dst.sysctls.extend(src.sysctls);
    // docker's mergeUlimitsConfig: a later entry replaces the earlier one whole.
    dst.ulimits.extend(src.ulimits);
    dst.cap_add.extend(src.cap_add);
    dst.cap_drop.extend(src.cap_drop);
    dst.read_only |= src.read_only;
    dst.tty |= src.tty;
    match (&dst.restart, src.restart) {
        (_, Some(s)) if !s.0.is_empty() => dst.restart = Some(s),
        (None, s) => dst.restart = s,
        _ => {}
    }
    dst.secrets = merge_keyed(std::mem::take(&mut dst.secrets), src.secrets, object_key);
    dst.configs = merge_keyed(std::mem::take(&mut dst.configs), src.configs, object_key);
    merge_deploy(&mut dst.deploy, src.deploy);
}

/// docker's `environment` is `map[string]*string`: a later bare `KEY` (nil) replaces the
/// value, a later `KEY=` (empty) replaces it only when it was empty too (mergo sets the
/// pointed-to string only from a non-empty one).
fn merge_environment(
    dst: &mut BTreeMap<String, Option<String>>,
    src: BTreeMap<String, Option<String>>,
) {
    for (key, value) in src {
        let keep = matches!(
            (dst.get(&key), &value),
            (Some(Some(old)), Some(new)) if new.is_empty() && !old.is_empty()
        );
        if !keep {
            dst.insert(key, value);
        }
    }
}

/// docker's mergeSlice: when the earlier file has entries, both lists go into a map by key
/// (the later entry wins) and come back sorted by key; when it has none, the later list is
/// taken as it is (mergo appends it to nothing).
fn merge_keyed<T, K: Ord>(dst: Vec<T>, src: Vec<T>, key: impl Fn(&T) -> K) -> Vec<T> {
    if dst.is_empty() {
        return src;
    }
    let mut merged = BTreeMap::new();
    for item in dst.into_iter().chain(src) {
        merged.insert(key(&item), item);
    }
    merged.into_values().collect()
}

/// docker keys ports by published port alone, so `53:53/tcp` and `53:53/udp` collapse into
/// one, and so do all unpublished ports (docker/cli#2407, #6223, fixed in its open pull
/// requests by adding the protocol). Shoal keys by published port and protocol, and an
/// unpublished port by its target and protocol: the same order and winners as docker's
/// wherever docker keeps every port, without dropping the others.
fn port_key(p: &PortConfig) -> (u16, u16, &'static str) {
    match p.published_port {
        Some(published) => (published, 0, p.protocol.as_str()),
        None => (0, p.target_port, p.protocol.as_str()),
    }
}

fn object_key(r: &ObjectRef) -> String {
    r.source.clone()
}

fn merge_healthcheck(dst: &mut Healthcheck, src: Healthcheck) {
    dst.origin = src.origin;
    // `test` is a plain string list to docker's mergo, so a later test is appended to the
    // earlier one (docker's result, odd as it is).
    match (&mut dst.test, src.test) {
        (Some(d), Some(s)) => d.extend(s),
        (d, s) => set(d, s),
    }
    set_nonzero(&mut dst.interval, src.interval);
    set_nonzero(&mut dst.timeout, src.timeout);
    set_nonzero(&mut dst.start_period, src.start_period);
    set_nonzero(&mut dst.start_interval, src.start_interval);
    set(&mut dst.retries, src.retries);
    set_bool(&mut dst.disable, src.disable);
}

fn merge_deploy(dst: &mut DeployConfig, src: DeployConfig) {
    match (&dst.mode, src.mode) {
        (_, Some(s)) if !s.0.is_empty() => dst.mode = Some(s),
        (None, s) => dst.mode = s,
        _ => {}
    }
    set(&mut dst.replicas, src.replicas);
    dst.labels.extend(src.labels);
    merge_nested(&mut dst.update_config, src.update_config, merge_update);
    merge_nested(&mut dst.rollback_config, src.rollback_config, merge_update);
    merge_nested(&mut dst.limits, src.limits, merge_limits);
    merge_nested(&mut dst.reservations, src.reservations, merge_limits);
    merge_nested(&mut dst.restart_policy, src.restart_policy, merge_restart);
    dst.constraints.extend(src.constraints);
    dst.preferences.extend(src.preferences);
    set_nonzero(&mut dst.max_replicas_per_node, src.max_replicas_per_node);
    set(&mut dst.endpoint_mode, src.endpoint_mode);
}

/// A pointer to a struct: taken whole when the earlier file has none, else merged field by
/// field.
fn merge_nested<T>(dst: &mut Option<T>, src: Option<T>, f: fn(&mut T, T)) {
    match (dst.as_mut(), src) {
        (Some(d), Some(s)) => f(d, s),
        (None, s) => *dst = s,
        (Some(_), None) => {}
    }
}

fn merge_update(dst: &mut UpdateConfig, src: UpdateConfig) {
    set(&mut dst.parallelism, src.parallelism);
    set_nonzero(&mut dst.delay, src.delay);
    set(&mut dst.failure_action, src.failure_action);
    set_nonzero(&mut dst.monitor, src.monitor);
    set_nonzero(&mut dst.max_failure_ratio, src.max_failure_ratio);
    set(&mut dst.order, src.order);
}

fn merge_limits(dst: &mut Resources, src: Resources) {
    // `cpus` is a string to docker: any value given overrides, "0" included.
    set(&mut dst.nano_cpus, src.nano_cpus);
    set_nonzero(&mut dst.memory_bytes, src.memory_bytes);
    set_nonzero(&mut dst.pids, src.pids);
}

fn merge_restart(dst: &mut RestartPolicy, src: RestartPolicy) {
    set(&mut dst.condition, src.condition);
    set_nonzero(&mut dst.delay, src.delay);
    set(&mut dst.max_attempts, src.max_attempts);
    set_nonzero(&mut dst.window, src.window);
}
