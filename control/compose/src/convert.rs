//! The merged compose model to swarm service specs plus the networks and volumes they use.

// As docker's cli/compose/convert: names scoped `<stack>_<name>`, stack labels, default network.

use std::collections::{BTreeMap, BTreeSet};

use shoal_spec::{
    ContainerSpec, DnsConfig, EndpointSpec, HealthConfig, Labels, Limit, Mount,
    NetworkAttachmentConfig, Placement, ResourceRequirements, RestartCondition, RestartPolicy,
    ServiceMode, ServiceSpec, TaskSpec, Ulimit, UpdateConfig,
};

use crate::types::{ComposeFile, Origin, Resources, ServiceConfig, VolumeKind};
use crate::{ports, reference, ComposeError, NetworkDecl, ObjectDecl, Stack, VolumeDecl};

/// The label docker puts on everything a stack creates; `stack ls` counts services by it.
pub const LABEL_NAMESPACE: &str = "com.docker.stack.namespace";
/// The image as written in the compose file, on each service.
pub const LABEL_IMAGE: &str = "com.docker.stack.image";

const DEFAULT_NETWORK: &str = "default";
const DEFAULT_DRIVER: &str = "overlay";

fn invalid(origin: &Origin, message: impl Into<String>) -> ComposeError {
    ComposeError::Invalid {
        file: origin.file.clone(),
        path: origin.path.clone(),
        message: message.into(),
    }
}

struct Namespace<'a>(&'a str);

impl Namespace<'_> {
    fn scope(&self, name: &str) -> String {
        format!("{}_{name}", self.0)
    }

    fn labels(&self, labels: &BTreeMap<String, String>) -> Labels {
        let mut out = labels.clone();
        out.insert(LABEL_NAMESPACE.to_string(), self.0.to_string());
        out
    }
}

pub(crate) fn convert(
    stack: &str,
    config: ComposeFile,
    warnings: Vec<String>,
) -> Result<Stack, ComposeError> {
    let ns = Namespace(stack);
    // docker checks every image before converting anything.
    for (name, svc) in &config.services {
        let image = svc.image.as_deref().unwrap_or_default();
        let at = &svc.origin;
        if image.is_empty() {
            return Err(invalid(
                at,
                format!("invalid image reference for service {name}: no image specified"),
            ));
        }
        reference::validate(image).map_err(|e| {
            invalid(
                at,
                format!("invalid image reference for service {name}: {e}"),
            )
        })?;
    }

    let mut services = Vec::with_capacity(config.services.len());
    let mut used_networks = BTreeSet::new();
    let mut used_volumes = BTreeSet::new();
    for (name, svc) in &config.services {
        if svc.networks.is_empty() {
            used_networks.insert(DEFAULT_NETWORK.to_string());
        }
        used_networks.extend(svc.networks.keys().cloned());
        for v in &svc.volumes {
            if v.kind == VolumeKind::Volume && !v.source.is_empty() {
                used_volumes.insert(v.source.clone());
            }
        }
        for (refs, declared, kind) in [
            (&svc.secrets, &config.secrets, "secret"),
            (&svc.configs, &config.configs, "config"),
        ] {
            if let Some(r) = refs.iter().find(|r| !declared.contains_key(&r.source)) {
                return Err(invalid(
                    &r.origin,
                    format!("undefined {kind} {:?}", r.source),
                ));
            }
        }
        services.push(service(&ns, name, svc, &config)?);
    }

    let networks = used_networks
        .into_iter()
        .map(|key| {
            let net = config.networks.get(&key).cloned().unwrap_or_default();
            let external = net.external;
            NetworkDecl {
                name: net.name.clone().unwrap_or_else(|| ns.scope(&key)),
                driver: net.driver.unwrap_or_else(|| DEFAULT_DRIVER.to_string()),
                external,
                internal: net.internal,
                attachable: net.attachable,
                labels: if external {
                    net.labels
                } else {
                    ns.labels(&net.labels)
                },
                subnet: net.subnet,
                gateway: net.gateway,
                driver_opts: net.driver_opts,
                key,
            }
        })
        .collect::<Vec<_>>();

    let volumes = used_volumes
        .into_iter()
        .filter_map(|key| {
            let vol = config.volumes.get(&key)?.clone();
            Some(VolumeDecl {
                name: vol.name.clone().unwrap_or_else(|| ns.scope(&key)),
                external: vol.external,
                labels: if vol.external {
                    vol.labels
                } else {
                    ns.labels(&vol.labels)
                },
                driver: vol.driver,
                driver_opts: vol.driver_opts,
                key,
            })
        })
        .collect();

    let objects = |objects: &BTreeMap<String, crate::types::ObjectConfig>,
                   kind: &str|
     -> Result<Vec<ObjectDecl>, ComposeError> {
        let mut out = Vec::new();
        for (key, obj) in objects {
            if !obj.external && obj.driver {
                return Err(invalid(
                    &obj.origin,
                    format!("{kind} {key}: {kind} drivers are not supported by shoal"),
                ));
            }
            out.push(ObjectDecl {
                name: object_name(&ns, key, obj),
                key: key.clone(),
                external: obj.external,
                labels: if obj.external {
                    obj.labels.clone()
                } else {
                    ns.labels(&obj.labels)
                },
                file: if obj.external { None } else { obj.file.clone() },
            });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    };

    let mut networks = networks;
    networks.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(Stack {
        name: stack.to_string(),
        services,
        networks,
        volumes,
        secrets: objects(&config.secrets, "secret")?,
        configs: objects(&config.configs, "config")?,
        warnings,
    })
}

/// docker's object name: its `name:`, else `<stack>_<key>`.
fn object_name(ns: &Namespace<'_>, key: &str, obj: &crate::types::ObjectConfig) -> String {
    obj.name.clone().unwrap_or_else(|| ns.scope(key))
}

/// docker's convertFileObject: the scoped (or declared) name, the target (default: the
/// key), root's IDs and 0444 unless given.
fn file_reference(
    ns: &Namespace<'_>,
    r: &crate::types::ObjectRef,
    declared: &BTreeMap<String, crate::types::ObjectConfig>,
) -> (String, shoal_spec::FileTarget) {
    let name = declared
        .get(&r.source)
        .map(|o| object_name(ns, &r.source, o))
        .unwrap_or_else(|| ns.scope(&r.source));
    let file = shoal_spec::FileTarget {
        name: r
            .target
            .clone()
            .filter(|t| !t.is_empty())
            .unwrap_or_else(|| r.source.clone()),
        uid: r
            .uid
            .clone()
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| "0".into()),
        gid: r
            .gid
            .clone()
            .filter(|g| !g.is_empty())
            .unwrap_or_else(|| "0".into()),
        mode: r.mode.unwrap_or(0o444),
    };
    (name, file)
}

/// The service's secret references by name (the daemon fills in the IDs), sorted by
/// name as docker sorts them, so a redeploy restarts nothing for a reordered list.
fn secret_refs(
    ns: &Namespace<'_>,
    svc: &ServiceConfig,
    config: &ComposeFile,
) -> Vec<shoal_spec::SecretReference> {
    let mut out: Vec<shoal_spec::SecretReference> = svc
        .secrets
        .iter()
        .map(|r| {
            let (name, file) = file_reference(ns, r, &config.secrets);
            shoal_spec::SecretReference {
                file: Some(file),
                secret_id: String::new(),
                secret_name: name,
            }
        })
        .collect();
    out.sort_by(|a, b| a.secret_name.cmp(&b.secret_name));
    out
}

/// The service's config references, as [`secret_refs`].
fn config_refs(
    ns: &Namespace<'_>,
    svc: &ServiceConfig,
    config: &ComposeFile,
) -> Vec<shoal_spec::ConfigReference> {
    let mut out: Vec<shoal_spec::ConfigReference> = svc
        .configs
        .iter()
        .map(|r| {
            let (name, file) = file_reference(ns, r, &config.configs);
            shoal_spec::ConfigReference {
                file: Some(file),
                config_id: String::new(),
                config_name: name,
            }
        })
        .collect();
    out.sort_by(|a, b| a.config_name.cmp(&b.config_name));
    out
}

fn service(
    ns: &Namespace<'_>,
    name: &str,
    svc: &ServiceConfig,
    config: &ComposeFile,
) -> Result<ServiceSpec, ComposeError> {
    let image = svc.image.clone().unwrap_or_default();
    let deploy = &svc.deploy;

    let mut labels = ns.labels(&deploy.labels);
    labels.insert(LABEL_IMAGE.to_string(), image.clone());

    let env = svc
        .environment
        .iter()
        .map(|(k, v)| match v {
            Some(v) => format!("{k}={v}"),
            None => k.clone(),
        })
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();

    let (capability_add, capability_drop) =
        shoal_spec::effective_cap_add_cap_drop(&svc.cap_add, &svc.cap_drop);
    let container_spec = ContainerSpec {
        image,
        labels: ns.labels(&svc.labels),
        command: svc.entrypoint.clone().unwrap_or_default(),
        args: svc.command.clone().unwrap_or_default(),
        hostname: svc.hostname.clone().unwrap_or_default(),
        env,
        dir: svc.working_dir.clone().unwrap_or_default(),
        user: svc.user.clone().unwrap_or_default(),
        mounts: mounts(ns, svc, config)?,
        stop_grace_period: svc.stop_grace_period,
        stop_signal: svc.stop_signal.clone().unwrap_or_default(),
        init: svc.init,
        healthcheck: healthcheck(svc)?,
        tty: svc.tty,
        read_only: svc.read_only,
        // docker's convertExtraHosts: `host:ip` to swarmkit's `ip host`.
        hosts: svc
            .extra_hosts
            .iter()
            .filter_map(|h| h.split_once(':'))
            .map(|(host, ip)| format!("{ip} {host}"))
            .collect(),
        dns_config: dns_config(svc),
        sysctls: svc.sysctls.clone(),
        capability_add,
        capability_drop,
        ulimits: svc
            .ulimits
            .iter()
            .map(|(name, (soft, hard))| Ulimit {
                name: name.clone(),
                soft: *soft,
                hard: *hard,
            })
            .collect(),
        secrets: secret_refs(ns, svc, config),
        configs: config_refs(ns, svc, config),
        ..Default::default()
    };

    let mut port_configs = svc.ports.clone();
    ports::sort(&mut port_configs);

    Ok(ServiceSpec {
        name: ns.scope(name),
        labels,
        task_template: TaskSpec {
            container_spec,
            resources: Some(ResourceRequirements {
                limits: deploy.limits.as_ref().map(limit),
                reservations: deploy.reservations.as_ref().map(limit),
            }),
            restart_policy: restart_policy(svc)?,
            placement: Some(Placement {
                constraints: deploy.constraints.clone(),
                preferences: deploy.preferences.clone(),
                max_replicas: deploy.max_replicas_per_node.unwrap_or(0),
            }),
            networks: networks(ns, name, svc, config)?,
            force_update: 0,
        },
        mode: mode(svc)?,
        update_config: deploy.update_config.as_ref().map(update_config),
        rollback_config: deploy.rollback_config.as_ref().map(update_config),
        endpoint_spec: Some(EndpointSpec {
            mode: deploy.endpoint_mode.unwrap_or_default(),
            ports: port_configs,
        }),
    })
}

/// docker's convertDNSConfig: set when `dns` or `dns_search` is; nameservers that are not
/// IP addresses are left out, as docker's conversion to netip.Addr drops them.
fn dns_config(svc: &ServiceConfig) -> Option<DnsConfig> {
    (!svc.dns.is_empty() || !svc.dns_search.is_empty()).then(|| DnsConfig {
        nameservers: svc
            .dns
            .iter()
            .filter(|ns| ns.parse::<std::net::IpAddr>().is_ok())
            .cloned()
            .collect(),
        search: svc.dns_search.clone(),
        options: Vec::new(),
    })
}

fn mode(svc: &ServiceConfig) -> Result<ServiceMode, ComposeError> {
    let deploy_at = Origin {
        file: svc.origin.file.clone(),
        path: format!("{}.deploy", svc.origin.path),
    };
    let (mode, at) = match &svc.deploy.mode {
        Some((mode, at)) => (mode.as_str(), at),
        None => ("", &deploy_at),
    };
    let replicas = svc.deploy.replicas;
    match mode {
        "global" | "global-job" if replicas.is_some() => Err(invalid(
            &deploy_at,
            "replicas can only be used with replicated or replicated-job mode",
        )),
        "global" => Ok(ServiceMode::global()),
        "replicated" | "" => Ok(ServiceMode::replicated(replicas.unwrap_or(1))),
        "replicated-job" | "global-job" => Err(invalid(
            at,
            format!("unsupported mode: {mode} (jobs are not supported yet)"),
        )),
        other => Err(invalid(at, format!("unknown mode: {other}"))),
    }
}

fn mounts(
    ns: &Namespace<'_>,
    svc: &ServiceConfig,
    config: &ComposeFile,
) -> Result<Vec<Mount>, ComposeError> {
    svc.volumes
        .iter()
        .map(|v| {
            let (kind, source) = match &v.kind {
                VolumeKind::Volume if v.source.is_empty() => ("volume", String::new()),
                VolumeKind::Volume => {
                    let declared = config.volumes.get(&v.source).ok_or_else(|| {
                        invalid(&v.origin, format!("undefined volume {:?}", v.source))
                    })?;
                    let name = declared.name.clone().unwrap_or_else(|| ns.scope(&v.source));
                    ("volume", name)
                }
                VolumeKind::Bind => ("bind", v.source.clone()),
                VolumeKind::Tmpfs => ("tmpfs", String::new()),
                VolumeKind::Other(kind) => {
                    return Err(invalid(
                        &v.origin,
                        format!("volume type {kind:?} is not supported"),
                    ))
                }
            };
            Ok(Mount {
                kind: kind.to_string(),
                source,
                target: v.target.clone(),
                read_only: v.read_only,
            })
        })
        .collect()
}

fn networks(
    ns: &Namespace<'_>,
    name: &str,
    svc: &ServiceConfig,
    config: &ComposeFile,
) -> Result<Vec<NetworkAttachmentConfig>, ComposeError> {
    let default = BTreeMap::from([(DEFAULT_NETWORK.to_string(), Default::default())]);
    let attached = if svc.networks.is_empty() {
        &default
    } else {
        &svc.networks
    };
    let mut out = Vec::with_capacity(attached.len());
    for (key, net) in attached {
        let declared = config.networks.get(key);
        if declared.is_none() && key != DEFAULT_NETWORK {
            return Err(invalid(&net.origin, format!("undefined network {key:?}")));
        }
        let target = declared
            .and_then(|d| d.name.clone())
            .unwrap_or_else(|| ns.scope(key));
        let mut aliases = net.aliases.clone();
        // Only user-defined networks take aliases (docker's NetworkMode.IsUserDefined).
        let builtin = matches!(target.as_str(), "default" | "bridge" | "host" | "none")
            || target.starts_with("container:");
        if !builtin {
            aliases.push(name.to_string());
        }
        out.push(NetworkAttachmentConfig { target, aliases });
    }
    out.sort_by(|a, b| a.target.cmp(&b.target));
    Ok(out)
}

fn healthcheck(svc: &ServiceConfig) -> Result<Option<HealthConfig>, ComposeError> {
    let Some(hc) = &svc.healthcheck else {
        return Ok(None);
    };
    let test = hc.test.clone().unwrap_or_default();
    if hc.disable == Some(true) {
        if !test.is_empty() {
            return Err(invalid(
                &hc.origin,
                "test and disable can't be set at the same time",
            ));
        }
        return Ok(Some(HealthConfig {
            test: vec!["NONE".to_string()],
            ..Default::default()
        }));
    }
    Ok(Some(HealthConfig {
        test,
        interval: hc.interval.unwrap_or(0),
        timeout: hc.timeout.unwrap_or(0),
        start_period: hc.start_period.unwrap_or(0),
        start_interval: hc.start_interval.unwrap_or(0),
        retries: hc.retries.unwrap_or(0),
    }))
}

/// `deploy.restart_policy`, else docker's reading of the top-level `restart:` (where `"no"`
/// means no policy, so swarm's default `any` applies).
fn restart_policy(svc: &ServiceConfig) -> Result<Option<RestartPolicy>, ComposeError> {
    if let Some(p) = &svc.deploy.restart_policy {
        return Ok(Some(RestartPolicy {
            condition: p.condition,
            delay: p.delay,
            max_attempts: p.max_attempts,
            window: p.window,
        }));
    }
    let Some((restart, at)) = &svc.restart else {
        return Ok(None);
    };
    if restart.is_empty() {
        return Ok(None);
    }
    let (policy, count) = match restart.split_once(':') {
        Some(("", _)) => {
            return Err(invalid(
                at,
                "invalid restart policy format: no policy provided before colon",
            ))
        }
        Some((policy, count)) => (policy, count),
        None => (restart.as_str(), ""),
    };
    let retries: i64 = if count.is_empty() {
        0
    } else {
        count.parse().map_err(|_| {
            invalid(
                at,
                "invalid restart policy format: maximum retry count must be an integer",
            )
        })?
    };
    if retries < 0 {
        return Err(invalid(
            at,
            "invalid restart policy: maximum retry count cannot be negative",
        ));
    }
    let max_attempts = u64::try_from(retries).ok().filter(|n| *n > 0);
    let condition = match policy {
        "no" => return Ok(None),
        "always" | "unless-stopped" => RestartCondition::Any,
        "on-failure" => RestartCondition::OnFailure,
        other => {
            return Err(invalid(
                at,
                format!(
                    "invalid restart policy: unknown policy '{other}' (must be one of 'no', 'always', 'on-failure', or 'unless-stopped')"
                ),
            ))
        }
    };
    Ok(Some(RestartPolicy {
        condition: Some(condition),
        max_attempts,
        ..Default::default()
    }))
}

fn update_config(u: &crate::types::UpdateConfig) -> UpdateConfig {
    let defaults = UpdateConfig::default();
    UpdateConfig {
        parallelism: u.parallelism.unwrap_or(defaults.parallelism),
        delay: u.delay.unwrap_or(defaults.delay),
        failure_action: u.failure_action.unwrap_or(defaults.failure_action),
        // docker sends 0 for an unset monitor and swarmkit then applies its 5s default.
        monitor: u.monitor.filter(|m| *m != 0).unwrap_or(defaults.monitor),
        max_failure_ratio: u.max_failure_ratio.unwrap_or(defaults.max_failure_ratio),
        order: u.order.unwrap_or(defaults.order),
    }
}

fn limit(r: &Resources) -> Limit {
    Limit {
        nano_cpus: r.nano_cpus.unwrap_or(0),
        memory_bytes: r.memory_bytes.unwrap_or(0),
        pids: r.pids.unwrap_or(0),
    }
}
