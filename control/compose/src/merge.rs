//! Later compose files override earlier ones, as docker's loader/merge.go (`-c a -c b`).

// Services merge key by key; top-level networks/volumes/secrets/configs replace whole entries.

use std::collections::BTreeMap;

use shoal_spec::PortConfig;

use crate::types::{
    ComposeFile, DeployConfig, Healthcheck, ObjectRef, Resources, RestartPolicy, ServiceConfig,
    ServiceVolume, UpdateConfig,
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

fn set<T>(dst: &mut Option<T>, src: Option<T>) {
    if src.is_some() {
        *dst = src;
    }
}

fn merge_service(dst: &mut ServiceConfig, src: ServiceConfig) {
    dst.origin = src.origin;
    set(&mut dst.image, src.image);
    // Commands replace, never append.
    set(&mut dst.command, src.command.filter(|c| !c.is_empty()));
    set(
        &mut dst.entrypoint,
        src.entrypoint.filter(|c| !c.is_empty()),
    );
    dst.environment.extend(src.environment);
    set(&mut dst.hostname, src.hostname);
    set(&mut dst.user, src.user);
    set(&mut dst.working_dir, src.working_dir);
    dst.labels.extend(src.labels);
    dst.ports = merge_ports(std::mem::take(&mut dst.ports), src.ports);
    dst.volumes = merge_volumes(std::mem::take(&mut dst.volumes), src.volumes);
    // A network entry from the later file replaces the earlier one's aliases.
    dst.networks.extend(src.networks);
    match (&mut dst.healthcheck, src.healthcheck) {
        (Some(d), Some(s)) => merge_healthcheck(d, s),
        (d, s) => set(d, s),
    }
    set(&mut dst.stop_grace_period, src.stop_grace_period);
    set(&mut dst.stop_signal, src.stop_signal);
    set(&mut dst.init, src.init);
    // As docker's mergo with WithAppendSlice and WithOverride: lists append, maps merge
    // key by key, a bool is overridden only by true.
    dst.extra_hosts.extend(src.extra_hosts);
    dst.dns.extend(src.dns);
    dst.dns_search.extend(src.dns_search);
    dst.sysctls.extend(src.sysctls);
    dst.ulimits.extend(src.ulimits);
    dst.cap_add.extend(src.cap_add);
    dst.cap_drop.extend(src.cap_drop);
    dst.read_only |= src.read_only;
    dst.tty |= src.tty;
    set(&mut dst.restart, src.restart);
    dst.secrets = merge_refs(std::mem::take(&mut dst.secrets), src.secrets);
    dst.configs = merge_refs(std::mem::take(&mut dst.configs), src.configs);
    merge_deploy(&mut dst.deploy, src.deploy);
}

/// Keyed by published port (docker's key); unpublished ports by target and protocol, so two
/// unpublished ports do not collapse into one.
fn merge_ports(dst: Vec<PortConfig>, src: Vec<PortConfig>) -> Vec<PortConfig> {
    let key = |p: &PortConfig| match p.published_port {
        Some(published) => (published, 0, String::new()),
        None => (0, p.target_port, format!("{:?}", p.protocol)),
    };
    let mut merged = BTreeMap::new();
    for p in dst.into_iter().chain(src) {
        merged.insert(key(&p), p);
    }
    merged.into_values().collect()
}

/// Keyed by target, sorted by target, as docker.
fn merge_volumes(dst: Vec<ServiceVolume>, src: Vec<ServiceVolume>) -> Vec<ServiceVolume> {
    let mut merged = BTreeMap::new();
    for v in dst.into_iter().chain(src) {
        merged.insert(v.target.clone(), v);
    }
    merged.into_values().collect()
}

/// Keyed by source, sorted by source, as docker.
fn merge_refs(dst: Vec<ObjectRef>, src: Vec<ObjectRef>) -> Vec<ObjectRef> {
    let mut merged = BTreeMap::new();
    for r in dst.into_iter().chain(src) {
        merged.insert(r.source.clone(), r);
    }
    merged.into_values().collect()
}

fn merge_healthcheck(dst: &mut Healthcheck, src: Healthcheck) {
    dst.origin = src.origin;
    set(&mut dst.test, src.test);
    set(&mut dst.interval, src.interval);
    set(&mut dst.timeout, src.timeout);
    set(&mut dst.start_period, src.start_period);
    set(&mut dst.start_interval, src.start_interval);
    set(&mut dst.retries, src.retries);
    set(&mut dst.disable, src.disable);
}

fn merge_deploy(dst: &mut DeployConfig, src: DeployConfig) {
    set(&mut dst.mode, src.mode);
    set(&mut dst.replicas, src.replicas);
    dst.labels.extend(src.labels);
    merge_nested(&mut dst.update_config, src.update_config, merge_update);
    merge_nested(&mut dst.rollback_config, src.rollback_config, merge_update);
    merge_nested(&mut dst.limits, src.limits, merge_resources);
    merge_nested(&mut dst.reservations, src.reservations, merge_resources);
    merge_nested(&mut dst.restart_policy, src.restart_policy, merge_restart);
    // Lists append, as docker's mergo.WithAppendSlice.
    dst.constraints.extend(src.constraints);
    dst.preferences.extend(src.preferences);
    set(&mut dst.max_replicas_per_node, src.max_replicas_per_node);
    set(&mut dst.endpoint_mode, src.endpoint_mode);
}

fn merge_nested<T>(dst: &mut Option<T>, src: Option<T>, f: fn(&mut T, T)) {
    match (dst.as_mut(), src) {
        (Some(d), Some(s)) => f(d, s),
        (None, s) => *dst = s,
        (Some(_), None) => {}
    }
}

fn merge_update(dst: &mut UpdateConfig, src: UpdateConfig) {
    set(&mut dst.parallelism, src.parallelism);
    set(&mut dst.delay, src.delay);
    set(&mut dst.failure_action, src.failure_action);
    set(&mut dst.monitor, src.monitor);
    set(&mut dst.max_failure_ratio, src.max_failure_ratio);
    set(&mut dst.order, src.order);
}

fn merge_resources(dst: &mut Resources, src: Resources) {
    set(&mut dst.nano_cpus, src.nano_cpus);
    set(&mut dst.memory_bytes, src.memory_bytes);
    set(&mut dst.pids, src.pids);
}

fn merge_restart(dst: &mut RestartPolicy, src: RestartPolicy) {
    set(&mut dst.condition, src.condition);
    set(&mut dst.delay, src.delay);
    set(&mut dst.max_attempts, src.max_attempts);
    set(&mut dst.window, src.window);
}
