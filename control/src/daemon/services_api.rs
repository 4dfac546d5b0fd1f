//! The leader's service, task and stack API: create/update/rollback/remove services, list
//! and inspect, logs gathered from the nodes, and stack deploy/rm applied in one Raft entry.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::Utc;
use serde_json::Value;
use shoal_spec::{Constraint, EndpointMode, Mount, PublishMode, ServiceSpec, TaskState};

use super::{Daemon, Manager};
use crate::api::{ApiError, ApiReply, ApiRequest, ApiResult, LogCursor, StackDeploy, LOG_PAGE};
use crate::orchestrator::{updated_service, MAX_REPLICAS};
use crate::peer::{PeerClient, PeerRequest, PeerResponse};
use crate::secrets::Kind;
use crate::services::ServiceRecord;
use crate::state::{same_name, service_name_taken, ClusterState, Command};

pub const STACK_LABEL: &str = "com.docker.stack.namespace";

/// swarmkit's minimumDuration for a healthcheck's durations: 1ms.
const MIN_HEALTH_DURATION_NS: i64 = 1_000_000;

fn invalid(msg: impl std::fmt::Display) -> ApiError {
    ApiError::daemon(format!("rpc error: code = InvalidArgument desc = {msg}"))
}

/// swarmkit's `validateAnnotations`: a service's name is one DNS label of letters, digits,
/// `-` and `_` (no dots: `<service>.<slot>.<id>` names its tasks), starting and ending with
/// a letter or digit (its `^[a-zA-Z0-9](?:[-_]*[A-Za-z0-9]+)*$`), at most 63 characters.
fn check_name(name: &str) -> Result<(), ApiError> {
    if name.is_empty() {
        return Err(invalid("meta: name must be provided"));
    }
    let bytes = name.as_bytes();
    let ok = bytes
        .iter()
        .all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_')
        && bytes.first().is_some_and(u8::is_ascii_alphanumeric)
        && bytes.last().is_some_and(u8::is_ascii_alphanumeric);
    if !ok {
        return Err(invalid("name must be valid as a DNS name component"));
    }
    if name.len() > 63 {
        return Err(invalid("name must be 63 characters or fewer"));
    }
    Ok(())
}

/// Hosts, DNS, sysctls, ulimits and capabilities as docker's engine checks them when it
/// creates a task's container; refused here, before any task exists, they cannot leave
/// tasks failing on every node.
fn check_container_options(cs: &shoal_spec::ContainerSpec) -> Result<(), ApiError> {
    let refuse = |e: String| invalid(format!("ContainerSpec: {e}"));
    for entry in &cs.hosts {
        let mut fields = entry.split_whitespace();
        let (Some(ip), Some(_host)) = (fields.next(), fields.next()) else {
            return Err(refuse(format!("bad format for add-host: {entry:?}")));
        };
        // docker's engine puts its bridge's gateway for `host-gateway`: Shoal has none,
        // and leaves such a line out of the task's /etc/hosts.
        if ip != "host-gateway" && ip.parse::<std::net::IpAddr>().is_err() {
            return Err(refuse(format!("invalid IP address in add-host: {ip:?}")));
        }
    }
    if let Some(dns) = &cs.dns_config {
        for ns in &dns.nameservers {
            if ns.parse::<std::net::IpAddr>().is_err() {
                return Err(refuse(format!(
                    "IP address is not correctly formatted: {ns}"
                )));
            }
        }
    }
    for name in cs.sysctls.keys() {
        shoal_executor::check_sysctl(name).map_err(refuse)?;
    }
    for u in &cs.ulimits {
        shoal_executor::check_ulimit(&u.name, u.soft, u.hard).map_err(refuse)?;
    }
    for cap in cs.capability_add.iter().chain(&cs.capability_drop) {
        shoal_executor::check_capability(cap).map_err(refuse)?;
    }
    Ok(())
}

/// Check a spec before it is accepted: what the orchestrators must be able to rely on.
pub fn validate(spec: &ServiceSpec) -> Result<(), ApiError> {
    // moby's daemon refuses these converting the spec, before swarmkit sees it.
    for m in &spec.task_template.container_spec.mounts {
        if let Some(e) = Mount::invalid_type(&m.kind) {
            return Err(ApiError::daemon(e));
        }
    }
    check_name(&spec.name)?;
    let cs = &spec.task_template.container_spec;
    if cs.image.is_empty() {
        return Err(invalid("ContainerSpec: image reference must be provided"));
    }
    // Docker would run the image's command; this executor has no image to fall back on,
    // so a command given as only empty words (`service create busybox ""`, compose
    // `command: [""]`) can never start, nor can one whose program is "" (`busybox "" sleep
    // 1`: docker fails to exec "").
    if (!cs.command.is_empty() || !cs.args.is_empty())
        && cs.argv().first().is_none_or(|p| p.is_empty())
    {
        return Err(invalid(
            "ContainerSpec: no command specified: the program name is empty",
        ));
    }
    // docker's engine refuses a bad stop signal when it creates the container; refused
    // here, before any task exists, it cannot leave tasks failing on every node.
    if !cs.stop_signal.is_empty() {
        shoal_executor::parse_signal(&cs.stop_signal)
            .map_err(|e| invalid(format!("ContainerSpec: {e}")))?;
    }
    // swarmkit's validateHealthCheck: each duration is 0 (docker's default) or at least 1ms.
    if let Some(h) = &cs.healthcheck {
        for (field, ns) in [
            ("Interval", h.interval),
            ("Timeout", h.timeout),
            ("StartPeriod", h.start_period),
            ("StartInterval", h.start_interval),
        ] {
            if ns != 0 && ns < MIN_HEALTH_DURATION_NS {
                return Err(invalid(format!(
                    "ContainerSpec: {field} in HealthConfig cannot be less than 1ms"
                )));
            }
        }
    }
    check_container_options(cs)?;
    for m in &cs.mounts {
        if m.kind == "volume" && !m.source.is_empty() && !Mount::is_volume_name(&m.source) {
            return Err(invalid(volume_name_error(&m.source)));
        }
    }
    if let Some(r) = &spec.task_template.resources {
        for limit in [&r.limits, &r.reservations].into_iter().flatten() {
            check_resources(limit)?;
        }
    }
    if spec.mode.is_global() == spec.mode.replicated.is_some() {
        return Err(invalid(
            "exactly one of replicated or global mode must be set",
        ));
    }
    if let Some(n) = spec.mode.replicas().filter(|&n| n > MAX_REPLICAS) {
        return Err(invalid(format!(
            "invalid replicas value {n}: Must be at most {MAX_REPLICAS}"
        )));
    }
    // swarmkit's validatePlacement returns the parser's plain error: gRPC's `Unknown`.
    if let Some(p) = &spec.task_template.placement {
        Constraint::parse_all(&p.constraints)
            .map_err(|e| ApiError::daemon(format!("rpc error: code = Unknown desc = {e}")))?;
    }
    // swarmkit's validateRestartPolicy: `--restart-delay=-1s` parses, as in docker.
    if let Some(rp) = &spec.task_template.restart_policy {
        if rp.delay.is_some_and(|d| d < 0) {
            return Err(invalid("TaskSpec: restart-delay cannot be negative"));
        }
        if rp.window.is_some_and(|w| w < 0) {
            return Err(invalid("TaskSpec: restart-window cannot be negative"));
        }
    }
    // swarmkit's validateUpdate, for update_config and rollback_config alike.
    for u in [&spec.update_config, &spec.rollback_config]
        .into_iter()
        .flatten()
    {
        if u.delay < 0 {
            return Err(invalid("TaskSpec: update-delay cannot be negative"));
        }
        if u.monitor < 0 {
            return Err(invalid("TaskSpec: update-monitor cannot be negative"));
        }
        if !(0.0..=1.0).contains(&u.max_failure_ratio) {
            return Err(invalid(
                "TaskSpec: update-maxfailureratio cannot be less than 0 or bigger than 1",
            ));
        }
    }
    if let Some(e) = &spec.endpoint_spec {
        if let Some(e) = crate::services::too_many_published_ports(spec) {
            return Err(ApiError::daemon(e));
        }
        let mut seen = std::collections::HashSet::new();
        for p in &e.ports {
            if p.target_port == 0 {
                return Err(invalid("invalid target port 0"));
            }
            // swarmkit's validateEndpointSpec: the routing mesh balances behind the
            // service's VIP, which a dnsrr service has none of; host mode is fine.
            if e.mode == EndpointMode::Dnsrr && p.publish_mode == PublishMode::Ingress {
                return Err(invalid(
                    "EndpointSpec: port published with ingress mode can't be used with dnsrr mode",
                ));
            }
            if let Some(pp) = p.published_port {
                if !seen.insert((pp, p.protocol)) {
                    return Err(invalid("EndpointSpec: duplicate published ports provided"));
                }
            }
        }
    }
    Ok(())
}

/// moby's error for a volume name that is not a plain name.
pub(crate) fn volume_name_error(name: &str) -> String {
    format!(
        "invalid mount config for type \"volume\": {name:?} includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host directory, use absolute path"
    )
}

/// swarmkit's `validateResources` (its messages), and no negative pids limit: the
/// scheduler adds reservations up, so a negative one would be free capacity.
fn check_resources(r: &shoal_spec::Limit) -> Result<(), ApiError> {
    const MIN_NANO_CPUS: i64 = 1_000_000;
    const MIN_MEMORY: i64 = 4 << 20;
    if r.nano_cpus != 0 && r.nano_cpus < MIN_NANO_CPUS {
        return Err(invalid(format!(
            "invalid cpu value {}: Must be at least {}",
            r.nano_cpus as f64 / 1e9,
            MIN_NANO_CPUS as f64 / 1e9
        )));
    }
    if r.memory_bytes != 0 && r.memory_bytes < MIN_MEMORY {
        return Err(invalid(format!(
            "invalid memory value {}: Must be at least 4MiB",
            r.memory_bytes
        )));
    }
    if r.pids < 0 {
        return Err(invalid(format!(
            "invalid pids value {}: Must be at least 0",
            r.pids
        )));
    }
    Ok(())
}

/// [`crate::services::published_conflict`] and [`crate::services::lb_capacity`], as
/// the API's error.
fn published_conflict(
    state: &ClusterState,
    spec: &ServiceSpec,
    except: Option<&str>,
) -> Result<(), ApiError> {
    crate::services::published_conflict(state, spec, except).map_err(ApiError::daemon)?;
    crate::services::lb_capacity(state, spec, except).map_err(ApiError::daemon)
}

/// [`crate::services::assign_dynamic_ports`], as the API's error.
fn assign_dynamic_ports(
    state: &ClusterState,
    spec: &mut ServiceSpec,
    existing: Option<&ServiceRecord>,
) -> Result<Vec<(u16, shoal_spec::Protocol)>, ApiError> {
    crate::services::assign_dynamic_ports(state, spec, existing).map_err(ApiError::daemon)
}

/// Network attachments name existing networks; they are stored by ID, as docker does.
/// A network named twice (by name, ID or ID prefix) is refused: docker's engine would
/// give the task one endpoint on it and leave the second address allocated for nothing.
fn resolve_attachments(state: &ClusterState, spec: &mut ServiceSpec) -> Result<(), ApiError> {
    let mut seen = std::collections::HashSet::new();
    for a in &mut spec.task_template.networks {
        let net = super::networks_api::resolve(state, &a.target)?;
        if net.ingress {
            return Err(invalid(format!(
                "service cannot be explicitly attached to the ingress network \"{}\"",
                net.name
            )));
        }
        if !seen.insert(net.id.clone()) {
            return Err(invalid(format!(
                "service cannot be attached to network {} more than once",
                a.target
            )));
        }
        a.target = net.id.clone();
    }
    Ok(())
}

fn new_service(spec: ServiceSpec) -> ServiceRecord {
    ServiceRecord::new(crate::ids::new_id(), spec)
}

/// (running, desired) as `service ls` and `stack services` show them in REPLICAS,
/// counted as swarmkit's ListServiceStatuses does: running is every task of the
/// service whose current state is running (with a healthcheck, once healthy: docker
/// reports such a task running only then), whatever its desired state, so a task
/// that was asked to stop counts until it has stopped (`service scale web=1` from 3
/// shows `3/1` until two have stopped); desired is the replica count, or for a
/// global service the number of its tasks whose desired state is running.
fn counts(state: &ClusterState, svc: &ServiceRecord) -> (u64, u64) {
    let mut running = 0;
    let mut meant_to_run = 0;
    for t in state.tasks.values().filter(|t| t.service_id == svc.id) {
        if t.is_running() {
            running += 1;
        }
        if t.desired_state == TaskState::Running {
            meant_to_run += 1;
        }
    }
    let desired = svc.spec.mode.replicas().unwrap_or(meant_to_run);
    (running, desired)
}

fn in_stack<'a>(
    state: &'a ClusterState,
    stack: &'a str,
) -> impl Iterator<Item = &'a ServiceRecord> + 'a {
    state
        .services
        .values()
        .filter(move |s| s.spec.labels.get(STACK_LABEL).map(String::as_str) == Some(stack))
}

/// What `stack rm` prints and does: the stack's services sorted by name (docker's
/// `sortServiceByName`), then its networks. A network that a service outside the stack
/// still uses (it named the network external, or was created with `--network`) stays,
/// as `network rm` would refuse it; the third list holds docker's error for each.
fn stack_removal(
    state: &ClusterState,
    name: &str,
    at: chrono::DateTime<Utc>,
) -> (Vec<String>, Vec<Command>, Vec<String>) {
    let mut lines = Vec::new();
    let mut cmds = Vec::new();
    let mut errors = Vec::new();
    let mut services: Vec<&ServiceRecord> = in_stack(state, name).collect();
    services.sort_by(|a, b| a.spec.name.cmp(&b.spec.name));
    let mut after = state.clone();
    for s in services {
        lines.push(format!("Removing service {}", s.spec.name));
        cmds.push(Command::RemoveService {
            service_id: s.id.clone(),
            at,
        });
        after.services.remove(&s.id);
    }
    // Then its secrets and configs, as docker's stack rm (a service outside the stack
    // that uses one keeps it: swarm refuses the removal).
    for kind in [Kind::Secret, Kind::Config] {
        for o in state
            .objects(kind)
            .values()
            .filter(|o| o.labels.get(STACK_LABEL).map(String::as_str) == Some(name))
        {
            lines.push(format!("Removing {} {}", kind.word(), o.name));
            let users = crate::secrets::users(&after, kind, &o.id);
            if !users.is_empty() {
                let refused = ApiError::daemon(crate::secrets::in_use_error(kind, &o.name, &users));
                errors.push(format!(
                    "Failed to remove {} {}: {refused}",
                    kind.word(),
                    o.id
                ));
                continue;
            }
            cmds.push(Command::RemoveSecret {
                kind,
                id: o.id.clone(),
            });
        }
    }
    for n in state
        .networks
        .values()
        .filter(|n| n.labels.get(STACK_LABEL).map(String::as_str) == Some(name))
    {
        lines.push(format!("Removing network {}", n.name));
        if let Some(user) = super::networks_api::users(&after, n).first() {
            let refused = super::networks_api::precondition(format!(
                "network {} is in use by service {user}",
                n.id
            ));
            errors.push(format!("Failed to remove network {}: {refused}", n.id));
            continue;
        }
        cmds.push(Command::RemoveNetwork {
            network_id: n.id.clone(),
        });
    }
    (lines, cmds, errors)
}

/// A network the stack declares (not external) whose scoped name another network has
/// already taken: docker's stack deploy lists only the networks labelled with the stack's
/// namespace, so it tries to create this one and the daemon refuses the name. The reply
/// says so as docker does (the attempt on stdout, the refusal on stderr), and nothing of
/// the deploy is applied: the stack's services would otherwise join a network that is
/// not the stack's (and `stack rm` would leave it behind).
fn foreign_stack_network(state: &ClusterState, d: &StackDeploy) -> Option<ApiReply> {
    let (net, _) = d.networks.iter().find(|(net, external)| {
        !external
            && state
                .networks
                .values()
                .any(|n| n.name == net.name && n.labels.get(STACK_LABEL) != Some(&d.name))
    })?;
    Some(ApiReply::Lines {
        lines: vec![format!("Creating network {}", net.name)],
        errors: vec![format!(
            "failed to create network {0}: Error response from daemon: network with name {0} already exists",
            net.name
        )],
    })
}

/// A service the stack declares whose scoped name a service outside the stack (no
/// namespace label, or another stack's) already has: docker's deployServices matches
/// only the services labelled with the stack's namespace, so it tries to create this one
/// and swarm refuses the name (controlapi CreateService). The reply says so as docker
/// does, and, as for a taken network name, nothing of the deploy is applied (docker has
/// by then created the networks and the services it met before this one).
fn foreign_stack_service(state: &ClusterState, d: &StackDeploy) -> Option<ApiReply> {
    let spec = d.services.iter().find(|spec| {
        state.services.values().any(|s| {
            same_name(&s.spec.name, &spec.name) && s.spec.labels.get(STACK_LABEL) != Some(&d.name)
        })
    })?;
    Some(ApiReply::Lines {
        lines: vec![format!("Creating service {}", spec.name)],
        errors: vec![format!(
            "failed to create service {0}: Error response from daemon: {1}",
            spec.name,
            service_name_taken(&spec.name)
        )],
    })
}

/// docker's validateExternalNetworks, for an external network that does not exist.
fn external_not_found(name: &str) -> ApiError {
    ApiError::plain(format!(
        "network \"{name}\" is declared as external, but could not be found. You need to create a swarm-scoped network before the stack is deployed"
    ))
}

/// `stack deploy`'s reply and the commands that apply it: refused as a whole when a
/// network name it would create is taken, else [`plan_stack_deploy`].
fn plan_stack(
    state: &ClusterState,
    d: StackDeploy,
    now: chrono::DateTime<Utc>,
) -> Result<(ApiReply, Vec<Command>), ApiError> {
    crate::api::check_stack_name(&d.name).map_err(invalid)?;
    // docker validates the external networks before it creates any.
    if let Some((net, _)) = d
        .networks
        .iter()
        .find(|(net, external)| *external && !state.networks.values().any(|n| n.name == net.name))
    {
        return Err(external_not_found(&net.name));
    }
    // docker creates the networks before the services: a taken network name is the
    // error it meets first.
    if let Some(refused) = foreign_stack_network(state, &d) {
        return Ok((refused, Vec::new()));
    }
    if let Some(refused) = foreign_stack_service(state, &d) {
        return Ok((refused, Vec::new()));
    }
    let (lines, cmds) = plan_stack_deploy(state, d, now)?;
    let reply = ApiReply::Lines {
        lines,
        errors: Vec::new(),
    };
    Ok((reply, cmds))
}

/// What `stack deploy` prints and does, in docker's order (deployCompose): with
/// `--prune`, the stack's services the files no longer declare are removed first; then
/// the missing networks are created (an external one must exist), then each service is
/// created, or updated when its spec changed. As docker's stack deploy has no `--force`,
/// an existing service keeps its ForceUpdate counter, so a redeploy of an unchanged file
/// restarts nothing, also after a `service update --force`.
fn plan_stack_deploy(
    state: &ClusterState,
    d: StackDeploy,
    now: chrono::DateTime<Utc>,
) -> Result<(Vec<String>, Vec<Command>), ApiError> {
    crate::api::check_stack_name(&d.name).map_err(invalid)?;
    for spec in &d.services {
        validate(spec)?;
    }
    let mut lines = Vec::new();
    let mut cmds = Vec::new();
    let mut scratch = state.clone();
    if d.prune {
        let deployed: Vec<&str> = d.services.iter().map(|s| s.name.as_str()).collect();
        let mut gone: Vec<&ServiceRecord> = in_stack(state, &d.name)
            .filter(|s| !deployed.contains(&s.spec.name.as_str()))
            .collect();
        gone.sort_by(|a, b| a.spec.name.cmp(&b.spec.name));
        for s in gone {
            lines.push(format!("Removing service {}", s.spec.name));
            cmds.push(Command::RemoveService {
                service_id: s.id.clone(),
                at: now,
            });
            scratch.services.remove(&s.id);
        }
    }
    for (net, external) in &d.networks {
        let exists = state.networks.values().any(|n| n.name == net.name);
        if *external {
            if !exists {
                return Err(external_not_found(&net.name));
            }
            continue;
        }
        if !exists {
            lines.push(format!("Creating network {}", net.name));
            let mut req = net.clone();
            req.labels.insert(STACK_LABEL.to_string(), d.name.clone());
            let record = super::networks_api::allocate(&scratch, &req, false)?;
            scratch.networks.insert(record.id.clone(), record.clone());
            cmds.push(Command::PutNetwork { network: record });
        }
    }
    for (kind, objects) in [(Kind::Secret, &d.secrets), (Kind::Config, &d.configs)] {
        for o in objects {
            stack_object(&mut scratch, &mut lines, &mut cmds, kind, o, now)?;
        }
    }
    let prefix = format!("{}_", d.name);
    for mut spec in d.services {
        resolve_attachments(&scratch, &mut spec)?;
        // docker-cli's convert.Services names the service as the compose file does.
        crate::secrets::resolve_references(&scratch, &mut spec).map_err(|e| {
            let short = spec.name.strip_prefix(&prefix).unwrap_or(&spec.name);
            ApiError::plain(format!("service {short}: {e}"))
        })?;
        // Only the stack's own services are updated (docker's deployServices lists
        // those labelled with its namespace); another's name is refused, not taken over.
        match in_stack(state, &d.name).find(|s| s.spec.name == spec.name) {
            Some(existing) => {
                lines.push(format!(
                    "Updating service {} (id: {})",
                    spec.name, existing.id
                ));
                spec.task_template.force_update = existing.spec.task_template.force_update;
                let dynamic = assign_dynamic_ports(&scratch, &mut spec, Some(existing))?;
                if existing.spec != spec {
                    published_conflict(&scratch, &spec, Some(&existing.id))?;
                    let mut updated = updated_service(existing, spec, now);
                    updated.dynamic_ports = dynamic;
                    scratch.services.insert(updated.id.clone(), updated.clone());
                    cmds.push(Command::PutService {
                        expected_version: Some(existing.version),
                        service: Box::new(updated),
                    });
                }
            }
            None => {
                if state
                    .services
                    .values()
                    .any(|s| same_name(&s.spec.name, &spec.name))
                {
                    return Err(ApiError::daemon(service_name_taken(&spec.name)));
                }
                let dynamic = assign_dynamic_ports(&scratch, &mut spec, None)?;
                published_conflict(&scratch, &spec, None)?;
                lines.push(format!("Creating service {}", spec.name));
                let mut svc = new_service(spec);
                svc.dynamic_ports = dynamic;
                scratch.services.insert(svc.id.clone(), svc.clone());
                cmds.push(Command::PutService {
                    expected_version: None,
                    service: Box::new(svc),
                });
            }
        }
    }
    Ok((lines, cmds))
}

/// docker's createSecrets/createConfigs for one declared object: an external one is
/// only used; a new one is created (`Creating secret webapp_x`); an existing one keeps
/// its data (swarm allows only its labels to change) and takes the declared labels.
fn stack_object(
    scratch: &mut ClusterState,
    lines: &mut Vec<String>,
    cmds: &mut Vec<Command>,
    kind: Kind,
    o: &crate::api::StackObject,
    now: chrono::DateTime<Utc>,
) -> Result<(), ApiError> {
    let Some(data) = &o.data else {
        return Ok(());
    };
    let word = kind.word();
    let existing = scratch
        .objects(kind)
        .values()
        .find(|x| x.name == o.name)
        .cloned();
    let record = match existing {
        Some(e) => {
            if e.data != *data {
                return Err(ApiError::plain(format!(
                    "failed to update {word} {}: {}",
                    o.name,
                    ApiError::daemon(crate::secrets::ONLY_LABELS)
                )));
            }
            if e.labels == o.labels {
                return Ok(());
            }
            crate::secrets::SecretRecord {
                labels: o.labels.clone(),
                updated_at: now,
                ..e
            }
        }
        None => {
            lines.push(format!("Creating {word} {}", o.name));
            super::secrets_api::new_record(scratch, kind, &o.name, o.labels.clone(), data.clone())
                .map_err(|e| ApiError::plain(format!("failed to create {word} {}: {e}", o.name)))?
        }
    };
    scratch
        .objects_mut(kind)
        .insert(record.id.clone(), record.clone());
    cmds.push(Command::PutSecret { kind, record });
    Ok(())
}

/// The object types `inspect` looks through without `--type`, in docker-cli's order
/// (its inspectAll, less the container, image, volume and plugin Shoal has none of).
const INSPECT_ORDER: &[&str] = &["network", "service", "task", "node", "secret", "config"];

/// docker's `inspect`: the first object of the types in [`INSPECT_ORDER`] (only of
/// `object_type`, if given) that `reference` names. A lookup that fails otherwise than
/// with "not found" (an ambiguous reference) ends the search with its error, as docker's
/// does; the error is the daemon's message, or `no such object: REF` when no type has
/// one.
pub(crate) fn inspect_object(
    state: &ClusterState,
    view: &crate::types::ManagerView,
    reference: &str,
    object_type: Option<&str>,
) -> Result<Value, String> {
    let ca = || {
        state
            .cluster
            .as_ref()
            .map(|c| c.ca_cert_pem.clone())
            .unwrap_or_default()
    };
    let one;
    let types = match object_type {
        None => INSPECT_ORDER,
        Some(t) => {
            one = [t];
            &one[..]
        }
    };
    for ty in types {
        let found = match *ty {
            "network" => super::networks_api::resolve(state, reference)
                .map(|n| n.docker_json())
                .map_err(|e| e.message),
            "service" => state.resolve_service(reference).map(|s| s.docker_json()),
            "task" => state
                .resolve_task(reference)
                .map(|t| t.docker_json_in(&state.networks)),
            "node" => state
                .resolve_node(reference)
                .map(|n| n.docker_json(view, &ca())),
            "secret" | "config" => {
                let kind = if *ty == "secret" {
                    Kind::Secret
                } else {
                    Kind::Config
                };
                crate::secrets::resolve(state, kind, reference).map(|o| o.docker_json(kind))
            }
            // moby's not-found messages of the objects Shoal has none of.
            "container" => Err(format!("No such container: {reference}")),
            "image" => Err(format!("No such image: {reference}")),
            "volume" => Err(format!("get {reference}: no such volume")),
            "plugin" => Err(format!("plugin {reference:?} not found")),
            other => Err(format!("unknown type: {other:?}")),
        };
        match found {
            Ok(v) => return Ok(v),
            Err(e) if object_type.is_none() && e.ends_with(" not found") => {}
            Err(e) => return Err(e),
        }
    }
    Err(format!("no such object: {reference}"))
}

impl Daemon {
    pub(crate) async fn serve_service_api(&self, mgr: &Manager, req: ApiRequest) -> ApiResult {
        match req {
            ApiRequest::ServiceCreate { mut spec } => {
                validate(&spec)?;
                let state = mgr.sm.state();
                resolve_attachments(&state, &mut spec)?;
                crate::secrets::resolve_references(&state, &mut spec).map_err(ApiError::plain)?;
                if state
                    .services
                    .values()
                    .any(|s| same_name(&s.spec.name, &spec.name))
                {
                    return Err(ApiError::daemon(service_name_taken(&spec.name)));
                }
                let dynamic = assign_dynamic_ports(&state, &mut spec, None)?;
                published_conflict(&state, &spec, None)?;
                let mut svc = new_service(spec);
                svc.dynamic_ports = dynamic;
                let id = svc.id.clone();
                mgr.propose(Command::PutService {
                    expected_version: None,
                    service: Box::new(svc),
                })
                .await?;
                Ok(ApiReply::ServiceCreated { id })
            }
            ApiRequest::ServiceUpdate {
                reference,
                version,
                mut spec,
            } => {
                validate(&spec)?;
                let state = mgr.sm.state();
                resolve_attachments(&state, &mut spec)?;
                crate::secrets::resolve_references(&state, &mut spec).map_err(ApiError::plain)?;
                let svc = state
                    .resolve_service(&reference)
                    .map_err(ApiError::daemon)?;
                if version != svc.version {
                    return Err(ApiError::daemon(
                        "rpc error: code = Unknown desc = update out of sequence",
                    ));
                }
                if spec.name != svc.spec.name {
                    return Err(invalid("renaming services is not supported"));
                }
                let dynamic = assign_dynamic_ports(&state, &mut spec, Some(svc))?;
                published_conflict(&state, &spec, Some(&svc.id))?;
                // An unchanged spec changes nothing, except that (as in swarmkit) any
                // update clears a finished update's status.
                let finished = svc
                    .update_status
                    .as_ref()
                    .is_some_and(|u| !u.state.in_progress());
                if spec == svc.spec && !finished {
                    return Ok(ApiReply::Done);
                }
                let mut updated = updated_service(svc, spec, Utc::now());
                updated.dynamic_ports = dynamic;
                mgr.propose(Command::PutService {
                    expected_version: Some(svc.version),
                    service: Box::new(updated),
                })
                .await?;
                Ok(ApiReply::Done)
            }
            ApiRequest::ServiceRollback { reference } => {
                let state = mgr.sm.state();
                let svc = state
                    .resolve_service(&reference)
                    .map_err(ApiError::daemon)?;
                let s = crate::orchestrator::rolled_back_service(svc, Utc::now())
                    .map_err(ApiError::daemon)?;
                mgr.propose(Command::PutService {
                    expected_version: Some(svc.version),
                    service: Box::new(s),
                })
                .await?;
                Ok(ApiReply::Done)
            }
            ApiRequest::ServiceRemove { reference } => {
                let state = mgr.sm.state();
                let svc = state
                    .resolve_service(&reference)
                    .map_err(ApiError::daemon)?;
                mgr.propose(Command::RemoveService {
                    service_id: svc.id.clone(),
                    at: Utc::now(),
                })
                .await?;
                Ok(ApiReply::Done)
            }
            ApiRequest::ServiceList { references, stack } => {
                let state = mgr.read_state().await?;
                let mut out = Vec::new();
                if references.is_empty() {
                    for s in state.services.values() {
                        if stack.as_deref().is_none_or(|st| {
                            s.spec.labels.get(STACK_LABEL).map(String::as_str) == Some(st)
                        }) {
                            let (r, d) = counts(&state, s);
                            out.push((s.docker_json(), r, d));
                        }
                    }
                } else {
                    for r in &references {
                        let s = state.resolve_service(r).map_err(ApiError::daemon)?;
                        let (run, d) = counts(&state, s);
                        out.push((s.docker_json(), run, d));
                    }
                }
                Ok(ApiReply::Services { services: out })
            }
            ApiRequest::ServiceInspect { references } => {
                let state = mgr.read_state().await?;
                let objects = references
                    .iter()
                    .map(|r| state.resolve_service(r).map(|s| s.docker_json()))
                    .collect();
                Ok(ApiReply::Objects { objects })
            }
            ApiRequest::ServiceGetSpec { reference } => {
                let state = mgr.read_state().await?;
                let s = state
                    .resolve_service(&reference)
                    .map_err(ApiError::daemon)?;
                Ok(ApiReply::ServiceSpec {
                    id: s.id.clone(),
                    version: s.version,
                    spec: s.spec.clone(),
                })
            }
            ApiRequest::TaskList {
                services,
                nodes,
                stack,
                up_to_date,
            } => {
                let state = mgr.read_state().await?;
                let mut service_ids = Vec::new();
                for r in &services {
                    service_ids.push(
                        state
                            .resolve_service(r)
                            .map_err(|_| ApiError::plain(format!("no such service: {r}")))?
                            .id
                            .clone(),
                    );
                }
                if let Some(st) = &stack {
                    service_ids.extend(in_stack(&state, st).map(|s| s.id.clone()));
                    if service_ids.is_empty() {
                        return Err(ApiError::plain(format!("nothing found in stack: {st}")));
                    }
                }
                let mut node_ids = Vec::new();
                for r in &nodes {
                    node_ids.push(state.resolve_node(r).map_err(ApiError::daemon)?.id.clone());
                }
                let tasks: Vec<Value> = state
                    .tasks
                    .values()
                    .filter(|t| {
                        (services.is_empty() && stack.is_none())
                            || service_ids.contains(&t.service_id)
                    })
                    .filter(|t| node_ids.is_empty() || node_ids.contains(&t.node_id))
                    .filter(|t| {
                        !up_to_date
                            || state
                                .services
                                .get(&t.service_id)
                                .is_some_and(|s| crate::orchestrator::task_up_to_date(&state, t, s))
                    })
                    .map(|t| {
                        let mut v = t.docker_json_in(&state.networks);
                        v["ServiceName"] = Value::String(t.service_name.clone());
                        v
                    })
                    .collect();
                let mut names: BTreeMap<String, String> = state
                    .nodes
                    .values()
                    .map(|n| (n.id.clone(), n.display_name().to_string()))
                    .collect();
                names.extend(
                    state
                        .services
                        .values()
                        .map(|s| (s.id.clone(), s.spec.name.clone())),
                );
                Ok(ApiReply::Tasks {
                    tasks,
                    node_names: names,
                })
            }
            ApiRequest::Inspect { references } => {
                let state = mgr.read_state().await?;
                let view = mgr.view(&state);
                let objects = references
                    .iter()
                    .map(|r| inspect_object(&state, &view, r, None))
                    .collect();
                Ok(ApiReply::Objects { objects })
            }
            ApiRequest::InspectType {
                references,
                object_type,
            } => {
                let state = mgr.read_state().await?;
                let view = mgr.view(&state);
                let objects = references
                    .iter()
                    .map(|r| inspect_object(&state, &view, r, Some(&object_type)))
                    .collect();
                Ok(ApiReply::Objects { objects })
            }
            ApiRequest::Logs {
                reference,
                tail,
                cursor,
            } => self.gather_logs(mgr, &reference, tail, cursor).await,
            ApiRequest::TaskLocation { reference } => {
                let state = mgr.read_state().await?;
                let task = state
                    .resolve_task(&reference)
                    .ok()
                    .or_else(|| {
                        state
                            .tasks
                            .values()
                            .filter(|t| t.name() == reference && t.process_runs())
                            .max_by_key(|t| t.created_at)
                    })
                    .ok_or_else(|| ApiError::daemon(format!("No such container: {reference}")))?;
                if !task.process_runs() {
                    return Err(ApiError::daemon(format!(
                        "container {} is not running",
                        task.id
                    )));
                }
                let node = state
                    .nodes
                    .get(&task.node_id)
                    .ok_or_else(|| ApiError::daemon(format!("node {} not found", task.node_id)))?;
                Ok(ApiReply::TaskLocation {
                    task_id: task.id.clone(),
                    node_id: node.id.clone(),
                    listen_addr: node.listen_addr.clone(),
                })
            }
            ApiRequest::NodeLocation { reference } => {
                let state = mgr.read_state().await?;
                let node = state.resolve_node(&reference).map_err(|e| {
                    if e.contains("ambiguous") {
                        ApiError::daemon(e)
                    } else {
                        ApiError::plain(format!("Error: No such node: {reference}"))
                    }
                })?;
                Ok(ApiReply::NodeLocation {
                    node_id: node.id.clone(),
                    listen_addr: node.listen_addr.clone(),
                })
            }
            ApiRequest::StackDeploy(d) => self.stack_deploy(mgr, d).await,
            ApiRequest::StackList => {
                let state = mgr.read_state().await?;
                let mut stacks: BTreeMap<String, usize> = BTreeMap::new();
                for s in state.services.values() {
                    if let Some(st) = s.spec.labels.get(STACK_LABEL) {
                        *stacks.entry(st.clone()).or_default() += 1;
                    }
                }
                Ok(ApiReply::Stacks {
                    stacks: stacks.into_iter().collect(),
                })
            }
            ApiRequest::StackRemove { name } => {
                let state = mgr.sm.state();
                let (lines, cmds, errors) = stack_removal(&state, &name, Utc::now());
                if !cmds.is_empty() {
                    mgr.propose(Command::Batch(cmds)).await?;
                }
                Ok(ApiReply::Lines { lines, errors })
            }
            req @ (ApiRequest::SecretCreate { .. }
            | ApiRequest::SecretList { .. }
            | ApiRequest::SecretInspect { .. }
            | ApiRequest::SecretRemove { .. }) => self.serve_secret_api(mgr, req).await,
            other => self.serve_network_api(mgr, other).await,
        }
    }

    async fn stack_deploy(&self, mgr: &Manager, d: StackDeploy) -> ApiResult {
        let state = mgr.sm.state();
        let (reply, cmds) = plan_stack(&state, d, Utc::now())?;
        if !cmds.is_empty() {
            // Whole or not at all: if the state changed since it was read (a service
            // updated meanwhile), nothing of the deploy is applied and the error says which.
            mgr.propose(Command::Atomic(cmds)).await?;
        }
        Ok(reply)
    }

    /// One page of logs of a service's (or one task's) tasks, task after task, oldest
    /// first, those that ended included (as long as the cluster lists them, their nodes
    /// keep their logs): each task's log from where `cursor` says the reader is (or its
    /// last `tail` lines), in chunks from the task's node, until about `LOG_PAGE` bytes
    /// are out.
    async fn gather_logs(
        &self,
        mgr: &Manager,
        reference: &str,
        tail: Option<usize>,
        cursor: Option<LogCursor>,
    ) -> ApiResult {
        let state = mgr.read_state().await?;
        let tasks: Vec<_> = match state.resolve_service(reference) {
            Ok(s) => {
                let mut t: Vec<_> = state
                    .tasks
                    .values()
                    .filter(|t| t.service_id == s.id && may_have_log(t))
                    .cloned()
                    .collect();
                t.sort_by_key(|t| (t.created_at, t.id.clone()));
                t
            }
            Err(_) => match state.resolve_task(reference) {
                Ok(t) => vec![t.clone()],
                Err(_) => {
                    return Err(ApiError::plain(format!(
                        "no such task or service: {reference}"
                    )))
                }
            },
        };
        let me = self.membership().map(|m| m.node_id).unwrap_or_default();
        let mut cursor = cursor.unwrap_or_default();
        // Tasks reaped since the last page are no longer read: the cursor forgets them.
        let listed: std::collections::HashSet<&str> = tasks.iter().map(|t| t.id.as_str()).collect();
        cursor.offsets.retain(|id, _| listed.contains(id.as_str()));
        cursor.done.retain(|id| listed.contains(id.as_str()));
        let mut out = Vec::new();
        let mut more = false;
        'tasks: for t in tasks {
            if cursor.done.contains(&t.id) {
                continue;
            }
            // A node that is down would only make the reader wait for nothing.
            let Some(node) = state
                .nodes
                .get(&t.node_id)
                .filter(|n| n.state != crate::types::NodeState::Down)
            else {
                continue;
            };
            // Its log cannot grow any more once the task has ended (read as of `state`).
            let ended = t.status.state.is_terminal();
            let prefix = format!(
                "{}.{}@{}    | ",
                t.name(),
                &t.id[..12.min(t.id.len())],
                node.display_name()
            );
            let mut client = (node.id != me)
                .then(|| PeerClient::to_node(node.listen_addr.clone(), &node.id, self.tls.clone()));
            loop {
                if out.len() >= LOG_PAGE {
                    more = true;
                    break 'tasks;
                }
                let from = cursor.offsets.get(&t.id).copied();
                let tail = if from.is_none() { tail } else { None };
                let chunk = match client.as_mut() {
                    None => super::server::read_log_chunk(
                        &self.root,
                        &t.id,
                        from,
                        tail,
                        super::server::LOG_CHUNK,
                    ),
                    Some(c) => match c
                        .call(
                            &PeerRequest::TaskLogs {
                                task_id: t.id.clone(),
                                tail,
                                from,
                                max: Some(super::server::LOG_CHUNK as u64),
                            },
                            Duration::from_secs(5),
                        )
                        .await
                    {
                        Ok(PeerResponse::LogChunk(r)) => r,
                        Ok(PeerResponse::Error(e)) => Err(e),
                        Ok(other) => Err(format!("{other:?}")),
                        Err(e) => Err(e.to_string()),
                    },
                };
                let chunk = match chunk {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::debug!(task = %t.id, error = %e, "logs");
                        continue 'tasks;
                    }
                };
                let end = chunk.start + chunk.data.len() as u64;
                for line in chunk.data.split_inclusive(|b| *b == b'\n') {
                    out.extend_from_slice(prefix.as_bytes());
                    out.extend_from_slice(line);
                    if !line.ends_with(b"\n") {
                        out.push(b'\n');
                    }
                }
                cursor.offsets.insert(t.id.clone(), end);
                if end >= chunk.size || chunk.data.is_empty() {
                    if ended && end >= chunk.size {
                        cursor.done.insert(t.id.clone());
                    }
                    continue 'tasks;
                }
            }
        }
        Ok(ApiReply::Logs {
            text: out,
            cursor,
            more,
        })
    }
}

/// Whether a task's node may hold a log of it: the task was placed and started (it runs,
/// or ended, most likely after running), as opposed to one still on its way or refused
/// before it started, which has none.
fn may_have_log(t: &crate::services::TaskRecord) -> bool {
    !t.node_id.is_empty()
        && (t.status.pid.is_some()
            || (t.status.state >= TaskState::Running && t.status.state != TaskState::Rejected))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `inspect NAME` looks as docker's does: networks, services, tasks, nodes, secrets,
    /// configs, the first found wins; `--type` looks at one type only, with the daemon's
    /// error; an ambiguous reference ends the search.
    #[test]
    fn inspect_finds_secrets_and_configs_in_docker_s_order() {
        use crate::secrets::{Data, SecretRecord};
        let mut state = ClusterState::default();
        let record = |id: &str, name: &str| SecretRecord {
            id: id.into(),
            name: name.into(),
            labels: BTreeMap::new(),
            data: Data(b"x".to_vec()),
            created_at: Utc::now(),
            updated_at: Utc::now(),
            version: 1,
        };
        for (kind, id, name) in [
            (Kind::Secret, "sec1", "db_password"),
            (Kind::Secret, "both1", "both"),
            (Kind::Config, "cfg1", "site.conf"),
            (Kind::Config, "both2", "both"),
            (Kind::Config, "amb1", "a"),
            (Kind::Config, "amb2", "b"),
        ] {
            state.objects_mut(kind).insert(id.into(), record(id, name));
        }
        let web = ServiceRecord::new(
            "websvc".into(),
            ServiceSpec {
                name: "web".into(),
                ..Default::default()
            },
        );
        state.services.insert(web.id.clone(), web);
        let view = crate::types::ManagerView::default();
        let id = |r: &str, ty: Option<&str>| {
            inspect_object(&state, &view, r, ty).map(|v| v["ID"].as_str().unwrap().to_string())
        };
        assert_eq!(id("db_password", None).unwrap(), "sec1");
        assert_eq!(id("site.conf", None).unwrap(), "cfg1");
        assert_eq!(id("web", None).unwrap(), "websvc");
        // A secret and a config of one name: docker looks at secrets first.
        assert_eq!(id("both", None).unwrap(), "both1");
        assert_eq!(id("both", Some("config")).unwrap(), "both2");
        assert_eq!(id("both", Some("secret")).unwrap(), "both1");
        // A config is shown with its data, a secret without.
        let cfg = inspect_object(&state, &view, "site.conf", None).unwrap();
        assert_eq!(cfg["Spec"]["Data"], "eA==");
        let sec = inspect_object(&state, &view, "db_password", None).unwrap();
        assert!(sec["Spec"].get("Data").is_none(), "{sec}");
        assert_eq!(id("nope", None).unwrap_err(), "no such object: nope");
        assert_eq!(
            id("db_password", Some("config")).unwrap_err(),
            "config db_password not found"
        );
        assert_eq!(
            id("nope", Some("container")).unwrap_err(),
            "No such container: nope"
        );
        assert_eq!(
            id("am", None).unwrap_err(),
            "config am is ambiguous (2 matches found)"
        );
    }

    /// Service names as swarmkit's validateAnnotations takes them, with its messages: a
    /// stack named `my.stack` (service `my.stack_web`) is refused as docker refuses it.
    #[test]
    fn service_names_are_dns_labels() {
        let err = |name: &str| check_name(name).err().map(|e| e.message);
        for ok in ["web", "webapp_db", "a", "A-b_c9", "x--y", &"a".repeat(63)] {
            assert_eq!(err(ok), None, "{ok}");
        }
        let dns =
            "rpc error: code = InvalidArgument desc = name must be valid as a DNS name component";
        for bad in [
            "my.stack_web",
            "-web",
            "web-",
            "_web",
            "web_",
            "we b",
            "wéb",
            "web/1",
        ] {
            assert_eq!(err(bad).as_deref(), Some(dns), "{bad}");
        }
        assert_eq!(
            err("").as_deref(),
            Some("rpc error: code = InvalidArgument desc = meta: name must be provided")
        );
        assert_eq!(
            err(&"a".repeat(64)).as_deref(),
            Some("rpc error: code = InvalidArgument desc = name must be 63 characters or fewer")
        );
    }

    /// `service logs` reads the tasks that ran, the ended ones too (failed, complete,
    /// shut down), not those not yet started or refused before starting.
    #[test]
    fn logs_are_read_of_tasks_that_ran() {
        use TaskState::*;
        let svc = new_service(spec("web", &[]));
        let task = |node: &str, state: TaskState, pid: Option<i32>| {
            let mut t = crate::orchestrator::new_task(&svc, 1, node, Utc::now());
            t.status.state = state;
            t.status.pid = pid;
            t
        };
        for (t, want) in [
            (task("", Pending, None), false),
            (task("n1", Assigned, None), false),
            (task("n1", Running, Some(42)), true),
            (task("n1", Failed, None), true),
            (task("n1", Complete, None), true),
            (task("n1", Shutdown, None), true),
            (task("n1", Rejected, None), false),
        ] {
            assert_eq!(may_have_log(&t), want, "{:?}", t.status);
        }
    }

    fn spec(name: &str, ports: &[&str]) -> ServiceSpec {
        let mut s = ServiceSpec {
            name: name.into(),
            ..Default::default()
        };
        s.task_template.container_spec.image = "demo".into();
        s.endpoint_spec = Some(shoal_spec::EndpointSpec {
            ports: ports
                .iter()
                .flat_map(|p| crate::cli::service_opts::port(p).unwrap())
                .collect(),
            ..Default::default()
        });
        s
    }

    fn state_with(specs: Vec<ServiceSpec>) -> ClusterState {
        let mut st = ClusterState::default();
        for s in specs {
            let mut svc = new_service(s);
            svc.id = format!("id-{}", svc.spec.name);
            st.services.insert(svc.id.clone(), svc);
        }
        st
    }

    /// REPLICAS counts as swarmkit does: every running task, also one asked to
    /// stop that has not stopped yet, against the replica count (or, global, the
    /// tasks meant to run); a task running but not yet healthy does not count.
    #[test]
    fn replicas_count_running_tasks_whatever_their_desired_state() {
        let mut st = state_with(vec![spec("web", &[]), spec("agent", &[])]);
        st.services.get_mut("id-web").unwrap().spec.mode = shoal_spec::ServiceMode::replicated(1);
        st.services.get_mut("id-agent").unwrap().spec.mode = shoal_spec::ServiceMode::global();
        let now = Utc::now();
        let mut add = |svc: &str, slot: u64, current: TaskState, desired: TaskState| {
            let mut t = crate::orchestrator::new_task(&st.services[svc], slot, "n1", now);
            t.status.state = current;
            t.desired_state = desired;
            st.tasks.insert(t.id.clone(), t);
        };
        // `service scale web=1` from 3: slots 2 and 3 stop through their grace.
        add("id-web", 1, TaskState::Running, TaskState::Running);
        add("id-web", 2, TaskState::Running, TaskState::Remove);
        add("id-web", 3, TaskState::Running, TaskState::Remove);
        // History: a task of slot 1 replaced by an update, stopped.
        add("id-web", 1, TaskState::Shutdown, TaskState::Shutdown);
        // Global: one running, one starting, one drained off its node still stopping.
        add("id-agent", 0, TaskState::Running, TaskState::Running);
        add("id-agent", 0, TaskState::Starting, TaskState::Running);
        add("id-agent", 0, TaskState::Running, TaskState::Shutdown);
        assert_eq!(counts(&st, &st.services["id-web"]), (3, 1));
        assert_eq!(counts(&st, &st.services["id-agent"]), (2, 2));

        // Once they have stopped: 1/1.
        for t in st.tasks.values_mut() {
            if t.desired_state > TaskState::Running {
                t.status.state = TaskState::Shutdown;
            }
        }
        assert_eq!(counts(&st, &st.services["id-web"]), (1, 1));
        assert_eq!(counts(&st, &st.services["id-agent"]), (1, 2));

        // Running but not yet healthy is not counted.
        for t in st.tasks.values_mut() {
            t.health = Some("starting".into());
        }
        assert_eq!(counts(&st, &st.services["id-web"]), (0, 1));
    }

    fn conflict(st: &ClusterState, s: &ServiceSpec) -> Option<String> {
        published_conflict(st, s, None).err().map(|e| e.to_string())
    }

    /// A stop signal the executor could not send is refused before any task exists.
    #[test]
    fn validate_checks_the_stop_signal() {
        let mut s = spec("web", &[]);
        s.task_template.container_spec.stop_signal = "SIGINT".into();
        assert!(validate(&s).is_ok());
        s.task_template.container_spec.stop_signal = "SIGFOO".into();
        assert_eq!(
            validate(&s).unwrap_err().to_string(),
            "Error response from daemon: rpc error: code = InvalidArgument desc = ContainerSpec: invalid signal: SIGFOO"
        );
    }

    /// Constraints are checked as swarmkit's validatePlacement checks them: any key its
    /// parser takes (engine labels, `node.ip`, keys no node has) is accepted, and a bad
    /// expression is refused with the parser's plain error, which gRPC calls `Unknown`.
    #[test]
    fn validate_checks_constraints_as_swarmkit() {
        let with = |c: &str| {
            let mut s = spec("web", &[]);
            s.task_template.placement = Some(shoal_spec::Placement {
                constraints: vec![c.to_string()],
                ..Default::default()
            });
            validate(&s).err().map(|e| e.to_string())
        };
        for ok in [
            "engine.labels.x != y",
            "node.ip == 10.77.0.11",
            "node.ip != 10.77.0.0/16",
            "node.foo == x",
        ] {
            assert_eq!(with(ok), None, "{ok}");
        }
        assert_eq!(
            with("node.hostname = vm1").as_deref(),
            Some("Error response from daemon: rpc error: code = Unknown desc = constraint expected one operator from ==, !=")
        );
        assert_eq!(
            with("node.hostname == vm<1>").as_deref(),
            Some("Error response from daemon: rpc error: code = Unknown desc = value 'vm<1>' is invalid")
        );
    }

    /// A mount type swarm's API lacks is refused as moby's daemon refuses it converting
    /// the spec, before anything swarmkit checks.
    #[test]
    fn validate_refuses_mount_types_swarm_lacks() {
        let mut s = spec("web", &[]);
        s.name = "bad name".into();
        s.task_template.container_spec.mounts = vec![shoal_spec::Mount {
            kind: "foo".into(),
            target: "/x".into(),
            ..Default::default()
        }];
        assert_eq!(
            validate(&s).unwrap_err().to_string(),
            "Error response from daemon: invalid MountType: \"foo\""
        );
        s.name = "web".into();
        s.task_template.container_spec.mounts[0].kind = "bind".into();
        assert!(validate(&s).is_ok());
    }

    /// Hosts, DNS servers, sysctls, ulimits and capabilities are checked as docker's engine
    /// checks them, before any task exists.
    #[test]
    fn validate_checks_container_options() {
        let refused = |f: &dyn Fn(&mut shoal_spec::ContainerSpec)| {
            let mut s = spec("web", &[]);
            f(&mut s.task_template.container_spec);
            validate(&s).err().map(|e| e.to_string())
        };
        let prefix =
            "Error response from daemon: rpc error: code = InvalidArgument desc = ContainerSpec: ";
        type Change = Box<dyn Fn(&mut shoal_spec::ContainerSpec)>;
        let cases: Vec<(Change, Option<&str>)> = vec![
            (Box::new(|c| c.hosts = vec!["10.0.0.1 db".into()]), None),
            (Box::new(|c| c.hosts = vec!["host-gateway h".into()]), None),
            (
                Box::new(|c| c.hosts = vec!["db 10.0.0.1".into()]),
                Some("invalid IP address in add-host: \"db\""),
            ),
            (
                Box::new(|c| c.hosts = vec!["10.0.0.1".into()]),
                Some("bad format for add-host: \"10.0.0.1\""),
            ),
            (
                Box::new(|c| {
                    c.dns_config = Some(shoal_spec::DnsConfig {
                        nameservers: vec!["x".into()],
                        ..Default::default()
                    })
                }),
                Some("IP address is not correctly formatted: x"),
            ),
            (
                Box::new(|c| c.sysctls = [("net.core.somaxconn".into(), "1".into())].into()),
                None,
            ),
            (
                Box::new(|c| c.sysctls = [("vm.swappiness".into(), "1".into())].into()),
                Some("sysctl \"vm.swappiness\" is not in a separate kernel namespace"),
            ),
            (
                Box::new(|c| {
                    c.ulimits = vec![shoal_spec::Ulimit {
                        name: "nofile".into(),
                        soft: 9,
                        hard: 8,
                    }]
                }),
                Some("ulimit soft limit must be less than or equal to hard limit: 9 > 8"),
            ),
            (
                Box::new(|c| c.capability_add = vec!["CAP_FOO".into()]),
                Some("unknown capability: \"CAP_FOO\""),
            ),
            (Box::new(|c| c.capability_drop = vec!["ALL".into()]), None),
        ];
        for (i, (f, want)) in cases.iter().enumerate() {
            assert_eq!(
                refused(f.as_ref()),
                want.map(|w| format!("{prefix}{w}")),
                "case {i}"
            );
        }
    }

    /// A service publishes at most MAX_PUBLISHED_PORTS ports (a range counts each).
    #[test]
    fn validate_caps_published_ports() {
        assert!(validate(&spec("web", &["1-1000:1-1000"])).is_ok());
        let e = validate(&spec("web", &["1-1001:1-1001"]))
            .unwrap_err()
            .to_string();
        assert!(
            e.ends_with("EndpointSpec: too many published ports (1001): a service publishes at most 1000 (each port and protocol of a range counts)"),
            "{e}"
        );
        let e = validate(&spec("all", &["1-65535:1-65535"]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("too many published ports (65535)"), "{e}");
    }

    /// The swarm's own ports are refused at the API too (create, update and stack
    /// deploy all go through this check).
    #[test]
    fn the_swarm_port_cannot_be_published() {
        let mut st = state_with(vec![]);
        let mut n = crate::state::new_node_record(
            "n1".into(),
            1,
            crate::types::Role::Manager,
            crate::types::NodeDescription {
                hostname: "vm1".into(),
                ..Default::default()
            },
            "10.77.0.11".into(),
            "10.77.0.11:2377".into(),
            Utc::now(),
        );
        st.nodes.insert(n.id.clone(), n.clone());
        let e = conflict(&st, &spec("hij", &["2377:80"])).unwrap();
        assert!(e.ends_with("port '2377/tcp' is reserved for the swarm itself: it is the swarm port of node vm1 (Raft, the dispatcher and joins); choose another published port"), "{e}");
        n.id = "n2".into();
        n.description.hostname = "vm2".into();
        st.nodes.insert(n.id.clone(), n.clone());
        let e = conflict(&st, &spec("hij", &["mode=host,published=2377,target=80"])).unwrap();
        assert!(
            e.contains("it is the swarm port of every node (Raft"),
            "{e}"
        );
        n.id = "n3".into();
        n.description.hostname = "vm3".into();
        n.listen_addr = "10.77.0.13:3377".into();
        st.nodes.insert(n.id.clone(), n);
        let e = conflict(&st, &spec("hij", &["2377:80"])).unwrap();
        assert!(
            e.contains("it is the swarm port of nodes vm1 and 1 more (Raft"),
            "{e}"
        );
        assert!(conflict(&st, &spec("hij", &["4789:80/udp"]))
            .unwrap()
            .contains("data path port"));
        assert!(conflict(&st, &spec("hij", &["7946:80/udp"]))
            .unwrap()
            .contains("probe port"));
        assert_eq!(conflict(&st, &spec("hij", &["2378:80", "4789:80"])), None);
    }

    /// A service that would overflow the load balancer's maps beside the others is
    /// refused with a clear error, not programmed in part.
    #[test]
    fn services_beyond_the_load_balancers_maps_are_refused() {
        let many = |name: &str, first: u32| {
            let last = (first + 999).min(65535);
            let range = format!("{first}-{last}:{first}-{last}");
            let mut s = spec(name, &[]);
            s.endpoint_spec.as_mut().unwrap().ports =
                crate::cli::service_opts::port(&range).unwrap();
            s
        };
        // 65 services of 1000 ports fit beside each other (with their VIPs) ...
        let specs: Vec<ServiceSpec> = (0..65)
            .map(|i| many(&format!("s{i}"), 1 + i * 1000))
            .collect();
        let st = state_with(specs);
        // ... a 66th does not.
        let mut extra = many("extra", 65001);
        assert_eq!(extra.endpoint_spec.as_ref().unwrap().ports.len(), 535);
        let e = published_conflict(&st, &extra, None)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(
                "the load balancer has room for 65536 published ports and VIPs on each node"
            ),
            "{e}"
        );
        extra.endpoint_spec.as_mut().unwrap().ports.truncate(400);
        assert!(published_conflict(&st, &extra, None).is_ok());
        // Backends: ports times replicas.
        let mut wide = many("wide", 1);
        wide.mode = shoal_spec::ServiceMode::replicated(300);
        let e = published_conflict(&state_with(vec![]), &wide, None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("room for 262144 backends"), "{e}");
    }

    fn stack_of(name: &str, services: Vec<ServiceSpec>, prune: bool) -> StackDeploy {
        StackDeploy {
            name: name.into(),
            services: services
                .into_iter()
                .map(|mut s| {
                    s.labels.insert(STACK_LABEL.into(), name.into());
                    s
                })
                .collect(),
            networks: Vec::new(),
            prune,
            secrets: Vec::new(),
            configs: Vec::new(),
        }
    }

    /// A stack's secrets: created before its services (`Creating secret webapp_db`),
    /// referenced by ID, left alone by a redeploy of the same data, refused (nothing
    /// applied) when the data changed, and removed by `stack rm` after the services.
    #[test]
    fn stack_secrets_are_created_immutable_and_removed() {
        let deploy = |data: &str| {
            let mut web = spec("webapp_web", &[]);
            web.task_template.container_spec.secrets = vec![shoal_spec::SecretReference {
                file: Some(shoal_spec::FileTarget::new("db")),
                secret_id: String::new(),
                secret_name: "webapp_db".into(),
            }];
            let mut d = stack_of("webapp", vec![web], false);
            d.secrets = vec![crate::api::StackObject {
                name: "webapp_db".into(),
                labels: [(STACK_LABEL.to_string(), "webapp".to_string())].into(),
                data: Some(crate::secrets::Data(data.as_bytes().to_vec())),
            }];
            d
        };
        let mut st = ClusterState::default();
        let (reply, cmds) = plan_stack(&st, deploy("pw1"), Utc::now()).unwrap();
        let ApiReply::Lines { lines, .. } = reply else {
            panic!()
        };
        assert_eq!(
            lines,
            ["Creating secret webapp_db", "Creating service webapp_web"]
        );
        assert_eq!(st.apply(&Command::Atomic(cmds), 5).first_error(), None);
        let secret_id = st.secrets.keys().next().unwrap().clone();
        let web = st.services.values().next().unwrap();
        assert_eq!(
            web.spec.task_template.container_spec.secrets[0].secret_id,
            secret_id
        );

        let (_, cmds) = plan_stack(&st, deploy("pw1"), Utc::now()).unwrap();
        assert!(cmds.is_empty(), "{cmds:?}");
        assert_eq!(
            plan_stack(&st, deploy("pw2"), Utc::now())
                .unwrap_err()
                .to_string(),
            "failed to update secret webapp_db: Error response from daemon: rpc error: code = InvalidArgument desc = only updates to Labels are allowed"
        );
        let mut undefined = deploy("pw1");
        undefined.secrets.clear();
        undefined.services[0].task_template.container_spec.secrets[0].secret_name = "gone".into();
        assert_eq!(
            plan_stack(&st, undefined, Utc::now())
                .unwrap_err()
                .to_string(),
            "service web: secret not found: gone"
        );

        let (lines, cmds, errors) = stack_removal(&st, "webapp", Utc::now());
        assert_eq!(
            lines,
            ["Removing service webapp_web", "Removing secret webapp_db"]
        );
        assert!(errors.is_empty(), "{errors:?}");
        let r = st.apply(&Command::Batch(cmds), 6);
        assert_eq!(r.first_error(), None);
        assert!(st.secrets.is_empty());
    }

    /// A redeploy of an unchanged file changes nothing, also for a service that was
    /// `service update --force`d since: docker's stack deploy keeps ForceUpdate, as a
    /// changed counter would restart every task.
    #[test]
    fn stack_redeploy_keeps_force_update() {
        let deploy = || stack_of("webapp", vec![spec("webapp_web", &["8080:80"])], false);
        let (_, cmds) = plan_stack_deploy(&ClusterState::default(), deploy(), Utc::now()).unwrap();
        let mut st = ClusterState::default();
        for c in cmds {
            if let Command::PutService { service, .. } = c {
                st.services.insert(service.id.clone(), *service);
            }
        }
        let svc = st.services.values_mut().next().unwrap();
        svc.spec.task_template.force_update = 2;
        let id = svc.id.clone();
        let (lines, cmds) = plan_stack_deploy(&st, deploy(), Utc::now()).unwrap();
        assert_eq!(lines, [format!("Updating service webapp_web (id: {id})")]);
        assert!(cmds.is_empty(), "{cmds:?}");

        // A real change is applied, still with the service's own ForceUpdate.
        let mut changed = deploy();
        changed.services[0].task_template.container_spec.image = "demo:2".into();
        let (_, cmds) = plan_stack_deploy(&st, changed, Utc::now()).unwrap();
        match cmds.as_slice() {
            [Command::PutService { service, .. }] => {
                assert_eq!(service.spec.task_template.force_update, 2);
                assert_eq!(service.spec.task_template.container_spec.image, "demo:2");
            }
            other => panic!("{other:?}"),
        }
    }

    /// `--prune` removes first (as docker's deployCompose), so the lines say so first,
    /// and a port the pruned service published is free for the services deployed after.
    #[test]
    fn stack_prune_comes_first_and_frees_ports() {
        let mut st = state_with(vec![spec("webapp_old", &["8080:80"]), spec("other_x", &[])]);
        for s in st.services.values_mut() {
            let stack = s.spec.name.split('_').next().unwrap().to_string();
            s.spec.labels.insert(STACK_LABEL.into(), stack);
        }
        let d = stack_of("webapp", vec![spec("webapp_new", &["8080:80"])], true);
        let (lines, cmds) = plan_stack_deploy(&st, d, Utc::now()).unwrap();
        assert_eq!(
            lines,
            ["Removing service webapp_old", "Creating service webapp_new"]
        );
        assert!(
            matches!(&cmds[0], Command::RemoveService { service_id, .. } if service_id == "id-webapp_old")
        );
        assert_eq!(cmds.len(), 2);
        // Without --prune the old service stays, and holds its port.
        let d = stack_of("webapp", vec![spec("webapp_new", &["8080:80"])], false);
        assert!(plan_stack_deploy(&st, d, Utc::now()).is_err());
    }

    /// A service named like one of the stack's (`webapp_web`) that the stack did not
    /// deploy (`service create webapp_web`, or another stack's) is not taken over: docker
    /// updates only the services labelled with the stack's namespace, so the create is
    /// refused with swarm's name conflict, and (all or nothing) nothing is deployed.
    #[test]
    fn stack_refuses_a_taken_service_name() {
        let deploy = || {
            stack_of(
                "webapp",
                vec![spec("webapp_api", &[]), spec("webapp_web", &[])],
                false,
            )
        };
        let mut st = state_with(vec![spec("webapp_web", &["8080:80"])]);
        let expect_refused = |st: &ClusterState| {
            let (reply, cmds) = plan_stack(st, deploy(), Utc::now()).unwrap();
            assert!(cmds.is_empty(), "{cmds:?}");
            match reply {
                ApiReply::Lines { lines, errors } => {
                    assert_eq!(lines, ["Creating service webapp_web"]);
                    assert_eq!(
                        errors,
                        ["failed to create service webapp_web: Error response from daemon: rpc error: code = AlreadyExists desc = name conflicts with an existing object: service webapp_web already exists"]
                    );
                }
                other => panic!("{other:?}"),
            }
        };
        expect_refused(&st);
        // Another stack's service is not this stack's either.
        let svc = st.services.get_mut("id-webapp_web").unwrap();
        svc.spec.labels.insert(STACK_LABEL.into(), "other".into());
        expect_refused(&st);
        // The plan alone refuses it too, rather than update a service not the stack's.
        assert!(plan_stack_deploy(&st, deploy(), Utc::now()).is_err());

        // The stack's own service: updated, the other one created.
        let svc = st.services.get_mut("id-webapp_web").unwrap();
        svc.spec.labels.insert(STACK_LABEL.into(), "webapp".into());
        let (reply, cmds) = plan_stack(&st, deploy(), Utc::now()).unwrap();
        match reply {
            ApiReply::Lines { lines, errors } => {
                assert_eq!(
                    lines,
                    [
                        "Creating service webapp_api",
                        "Updating service webapp_web (id: id-webapp_web)"
                    ]
                );
                assert!(errors.is_empty(), "{errors:?}");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(cmds.len(), 2, "{cmds:?}");
    }

    /// A service naming one network twice (by name, then by ID prefix) is refused with
    /// the name it was given, and a lone attachment is stored by the network's ID.
    #[test]
    fn a_network_attached_twice_is_refused() {
        let mut st = ClusterState {
            cluster: Some(crate::state::tests::cluster()),
            ..Default::default()
        };
        let req = crate::api::NetworkCreate {
            name: "net1".into(),
            ..Default::default()
        };
        let net = super::super::networks_api::allocate(&st, &req, false).unwrap();
        st.networks.insert(net.id.clone(), net.clone());
        let attach = |target: &str| shoal_spec::NetworkAttachmentConfig {
            target: target.into(),
            aliases: Vec::new(),
        };

        let mut once = spec("web", &[]);
        once.task_template.networks = vec![attach("net1")];
        resolve_attachments(&st, &mut once).unwrap();
        assert_eq!(once.task_template.networks[0].target, net.id);

        let mut twice = spec("web", &[]);
        twice.task_template.networks = vec![attach("net1"), attach(&net.id[..6])];
        let err = resolve_attachments(&st, &mut twice).unwrap_err();
        assert_eq!(
            err.message,
            format!(
                "rpc error: code = InvalidArgument desc = service cannot be attached to \
                 network {} more than once",
                &net.id[..6]
            )
        );
    }

    /// A network the stack declares whose scoped name is taken by a network the stack did
    /// not create (no namespace label of its own) is refused with docker's error, and
    /// nothing is deployed: no service would land on someone else's network. A network
    /// the stack made (its label) is reused, and an external one may be anyone's.
    #[test]
    fn stack_refuses_a_taken_network_name() {
        let mut st = ClusterState {
            cluster: Some(crate::state::tests::cluster()),
            ..Default::default()
        };
        let taken = |labels: &[(&str, &str)]| crate::api::NetworkCreate {
            name: "webapp_default".into(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..Default::default()
        };
        let net = super::super::networks_api::allocate(&st, &taken(&[]), false).unwrap();
        st.networks.insert(net.id.clone(), net.clone());
        let deploy = |external: bool| {
            let mut d = stack_of("webapp", vec![spec("webapp_web", &[])], false);
            d.networks = vec![(taken(&[]), external)];
            d
        };

        let (reply, cmds) = plan_stack(&st, deploy(false), Utc::now()).unwrap();
        assert!(cmds.is_empty(), "{cmds:?}");
        match reply {
            ApiReply::Lines { lines, errors } => {
                assert_eq!(lines, ["Creating network webapp_default"]);
                assert_eq!(
                    errors,
                    ["failed to create network webapp_default: Error response from daemon: network with name webapp_default already exists"]
                );
            }
            other => panic!("{other:?}"),
        }
        // Another stack's network is not this stack's either.
        let other_stack = st.networks.get_mut(&net.id).unwrap();
        other_stack
            .labels
            .insert(STACK_LABEL.into(), "other".into());
        let (_, cmds) = plan_stack(&st, deploy(false), Utc::now()).unwrap();
        assert!(cmds.is_empty(), "{cmds:?}");

        // A missing external network is docker's first complaint.
        let mut both = deploy(false);
        let mut missing = taken(&[]);
        missing.name = "gone".into();
        both.networks.push((missing, true));
        assert_eq!(
            plan_stack(&st, both, Utc::now()).unwrap_err().to_string(),
            "network \"gone\" is declared as external, but could not be found. You need to create a swarm-scoped network before the stack is deployed"
        );
        // Declared external: used as it is.
        let (_, cmds) = plan_stack(&st, deploy(true), Utc::now()).unwrap();
        assert!(
            matches!(cmds.as_slice(), [Command::PutService { .. }]),
            "{cmds:?}"
        );
        // Made by this stack: reused, not created again.
        let own = st.networks.get_mut(&net.id).unwrap();
        own.labels.insert(STACK_LABEL.into(), "webapp".into());
        let (reply, cmds) = plan_stack(&st, deploy(false), Utc::now()).unwrap();
        assert!(
            matches!(cmds.as_slice(), [Command::PutService { .. }]),
            "{cmds:?}"
        );
        assert!(
            matches!(&reply, ApiReply::Lines { lines, errors } if errors.is_empty() && lines == &["Creating service webapp_web"]),
            "{reply:?}"
        );
    }

    /// `stack rm` keeps a stack network that a service outside the stack still uses, as
    /// `network rm` would (the service would lose its network), and says so as docker
    /// does; the stack's own services do not hold it.
    #[test]
    fn stack_rm_keeps_a_network_others_use() {
        let mut st = state_with(vec![spec("webapp_web", &[]), spec("other", &[])]);
        st.cluster = Some(crate::state::tests::cluster());
        let req = crate::api::NetworkCreate {
            name: "webapp_default".into(),
            labels: [(STACK_LABEL.to_string(), "webapp".to_string())].into(),
            ..Default::default()
        };
        let net = super::super::networks_api::allocate(&st, &req, false).unwrap();
        st.networks.insert(net.id.clone(), net.clone());
        for s in st.services.values_mut() {
            s.spec.task_template.networks = vec![shoal_spec::NetworkAttachmentConfig {
                target: net.id.clone(),
                aliases: vec![],
            }];
        }
        let web = st.services.get_mut("id-webapp_web").unwrap();
        web.spec.labels.insert(STACK_LABEL.into(), "webapp".into());

        let (lines, cmds, errors) = stack_removal(&st, "webapp", Utc::now());
        assert_eq!(
            lines,
            [
                "Removing service webapp_web",
                "Removing network webapp_default"
            ]
        );
        assert!(
            matches!(cmds.as_slice(), [Command::RemoveService { .. }]),
            "{cmds:?}"
        );
        assert_eq!(
            errors,
            [format!(
                "Failed to remove network {0}: Error response from daemon: rpc error: code = FailedPrecondition desc = network {0} is in use by service id-other",
                net.id
            )]
        );

        // Once no one else uses it, it goes with the stack.
        st.services.remove("id-other");
        let (_, cmds, errors) = stack_removal(&st, "webapp", Utc::now());
        assert!(errors.is_empty(), "{errors:?}");
        assert!(
            matches!(cmds.as_slice(), [Command::RemoveService { .. }, Command::RemoveNetwork { network_id }] if *network_id == net.id)
        );
    }

    /// `stack rm` removes and prints the services by name, whatever their IDs.
    #[test]
    fn stack_rm_goes_by_name() {
        let mut st = state_with(vec![spec("webapp_web", &[]), spec("webapp_db", &[])]);
        for (id, svc) in [("a1", "webapp_web"), ("z9", "webapp_db")] {
            let mut s = st.services.remove(&format!("id-{svc}")).unwrap();
            s.id = id.into();
            s.spec.labels.insert(STACK_LABEL.into(), "webapp".into());
            st.services.insert(id.into(), s);
        }
        let (lines, _, _) = stack_removal(&st, "webapp", Utc::now());
        assert_eq!(
            lines,
            ["Removing service webapp_db", "Removing service webapp_web"]
        );
    }

    /// swarmkit's rules: host-mode ports may repeat across services (the scheduler keeps
    /// them apart), an ingress port is every node's and conflicts with either mode.
    #[test]
    fn host_and_ingress_ports_conflict_like_swarmkit() {
        let host = "mode=host,published=8081,target=80";
        let st = state_with(vec![spec("web", &[host])]);
        assert_eq!(conflict(&st, &spec("api", &[host])), None);
        assert_eq!(
            conflict(
                &st,
                &spec("api", &["mode=host,published=8081,target=80,protocol=udp"])
            ),
            None
        );
        let e = conflict(&st, &spec("mesh", &["8081:80"])).unwrap();
        assert!(
            e.ends_with(
                "port '8081' is already in use by service 'web' (id-web) as a host-published port"
            ),
            "{e}"
        );
        let st = state_with(vec![spec("mesh", &["8081:80"])]);
        let e = conflict(&st, &spec("web", &[host])).unwrap();
        assert!(
            e.ends_with(
                "port '8081' is already in use by service 'mesh' (id-mesh) as an ingress port"
            ),
            "{e}"
        );
        // A service does not conflict with itself on update.
        let me = st.services["id-mesh"].spec.clone();
        assert!(published_conflict(&st, &me, Some("id-mesh")).is_ok());
    }

    /// A port picked for a live task is its node's: an ingress port of that number is
    /// refused while the task lives, but the service that named a port may move it to
    /// ingress mode.
    #[test]
    fn ingress_port_conflicts_with_a_picked_port() {
        let mut st = state_with(vec![
            spec("web", &["mode=host,target=80"]),
            spec("fixed", &["mode=host,published=8081,target=80"]),
        ]);
        let now = Utc::now();
        for (svc, port) in [("web", 32768), ("fixed", 8081)] {
            let mut t: crate::services::TaskRecord = serde_json::from_value(serde_json::json!({
                "id": format!("task-{svc}"), "version": 1, "created_at": now, "updated_at": now,
                "service_id": format!("id-{svc}"), "service_name": svc, "slot": 1,
                "node_id": "node1", "spec": {}, "spec_version": 1,
                "status": {"timestamp": now, "state": "running", "message": "started"},
                "desired_state": "running",
            }))
            .unwrap();
            t.host_ports =
                crate::cli::service_opts::port(&format!("mode=host,published={port},target=80"))
                    .unwrap();
            st.tasks.insert(t.id.clone(), t);
        }
        let e = conflict(&st, &spec("mesh", &["32768:80"])).unwrap();
        assert!(
            e.ends_with(
                "port '32768' is already in use by service 'web' (id-web) as a host-published port of task web.1"
            ),
            "{e}"
        );
        assert_eq!(conflict(&st, &spec("mesh", &["32768:80/udp"])), None);
        let moved = spec("fixed", &["8081:80"]);
        assert!(published_conflict(&st, &moved, Some("id-fixed")).is_ok());
        st.tasks.get_mut("task-web").unwrap().status.state = TaskState::Shutdown;
        assert_eq!(conflict(&st, &spec("mesh", &["32768:80"])), None);
    }

    /// A host-mode port may leave its published port to the node, as in docker; one port
    /// cannot be in both modes.
    #[test]
    fn validate_host_mode_ports() {
        assert!(validate(&spec("web", &["mode=host,published=8081,target=80"])).is_ok());
        assert!(validate(&spec("web", &["mode=host,target=80"])).is_ok());
        assert!(validate(&spec(
            "web",
            &["mode=host,target=80", "mode=host,target=81"]
        ))
        .is_ok());
        let e = validate(&spec("web", &["mode=host,target=0"]))
            .unwrap_err()
            .to_string();
        assert!(e.ends_with("invalid target port 0"), "{e}");
        let e = validate(&spec(
            "web",
            &["8081:80", "mode=host,published=8081,target=81"],
        ))
        .unwrap_err()
        .to_string();
        assert!(
            e.ends_with("EndpointSpec: duplicate published ports provided"),
            "{e}"
        );
    }

    /// swarmkit's update config bounds, for updates and rollbacks: a ratio outside 0..=1
    /// (`--update-max-failure-ratio 2`) or a negative delay or monitor is refused.
    #[test]
    fn validate_refuses_update_configs_out_of_bounds() {
        let with = |f: &dyn Fn(&mut shoal_spec::UpdateConfig), rollback: bool| {
            let mut s = spec("web", &[]);
            let mut u = shoal_spec::UpdateConfig::default();
            f(&mut u);
            if rollback {
                s.rollback_config = Some(u);
            } else {
                s.update_config = Some(u);
            }
            validate(&s).map_err(|e| e.to_string())
        };
        for rollback in [false, true] {
            let e = with(&|u| u.max_failure_ratio = 2.0, rollback).unwrap_err();
            assert!(e.ends_with("update-maxfailureratio cannot be less than 0 or bigger than 1"));
            assert!(with(&|u| u.max_failure_ratio = -0.5, rollback).is_err());
            assert!(with(&|u| u.max_failure_ratio = f32::NAN, rollback).is_err());
            assert!(with(&|u| u.max_failure_ratio = 1.0, rollback).is_ok());
            let e = with(&|u| u.delay = -1, rollback).unwrap_err();
            assert!(e.ends_with("TaskSpec: update-delay cannot be negative"));
            let e = with(&|u| u.monitor = -1, rollback).unwrap_err();
            assert!(e.ends_with("TaskSpec: update-monitor cannot be negative"));
        }
        // And swarmkit's validateRestartPolicy.
        let mut s = spec("web", &[]);
        s.task_template.restart_policy = Some(shoal_spec::RestartPolicy {
            delay: Some(-1),
            ..Default::default()
        });
        let e = validate(&s).unwrap_err().to_string();
        assert!(
            e.ends_with("TaskSpec: restart-delay cannot be negative"),
            "{e}"
        );
        s.task_template.restart_policy = Some(shoal_spec::RestartPolicy {
            window: Some(-1),
            ..Default::default()
        });
        let e = validate(&s).unwrap_err().to_string();
        assert!(
            e.ends_with("TaskSpec: restart-window cannot be negative"),
            "{e}"
        );
    }

    /// swarmkit's healthcheck bounds: each duration is 0 or at least 1ms (a negative
    /// `start_interval` in a compose file reaches the daemon as it is).
    #[test]
    fn validate_refuses_healthcheck_durations_below_1ms() {
        let with = |f: &dyn Fn(&mut shoal_spec::HealthConfig)| {
            let mut s = spec("web", &[]);
            let mut h = shoal_spec::HealthConfig {
                test: vec!["CMD".into(), "true".into()],
                ..Default::default()
            };
            f(&mut h);
            s.task_template.container_spec.healthcheck = Some(h);
            validate(&s).map_err(|e| e.to_string())
        };
        assert_eq!(
            with(&|h| h.start_interval = -1_000_000_000).unwrap_err(),
            "Error response from daemon: rpc error: code = InvalidArgument desc = ContainerSpec: StartInterval in HealthConfig cannot be less than 1ms"
        );
        assert!(with(&|h| h.interval = 999_999)
            .unwrap_err()
            .contains("Interval in HealthConfig"));
        assert!(with(&|h| h.timeout = -1)
            .unwrap_err()
            .contains("Timeout in HealthConfig"));
        assert!(with(&|h| h.start_period = 1)
            .unwrap_err()
            .contains("StartPeriod in HealthConfig"));
        assert!(with(&|h| h.start_interval = 1_000_000).is_ok());
        assert!(with(&|_| ()).is_ok());
    }

    /// A dnsrr service has no VIP for the routing mesh to balance behind: swarmkit
    /// refuses it ingress ports, not host ones.
    #[test]
    fn validate_refuses_ingress_ports_on_dnsrr() {
        let dnsrr = |ports: &[&str]| {
            let mut s = spec("rr", ports);
            s.endpoint_spec.get_or_insert_with(Default::default).mode = EndpointMode::Dnsrr;
            s
        };
        let e = validate(&dnsrr(&["8081:80"])).unwrap_err().to_string();
        assert!(
            e.ends_with(
                "EndpointSpec: port published with ingress mode can't be used with dnsrr mode"
            ),
            "{e}"
        );
        assert!(validate(&dnsrr(&["mode=host,published=8081,target=80"])).is_ok());
        assert!(validate(&dnsrr(&[])).is_ok());
        assert!(validate(&spec("web", &["8081:80"])).is_ok());
    }

    /// Reservations the scheduler would overflow on (`--reserve-cpu=-1e10` stored as a
    /// large negative) are refused, with swarmkit's messages.
    #[test]
    fn validate_refuses_negative_and_tiny_resources() {
        let with = |limit: shoal_spec::Limit| {
            let mut s = spec("web", &[]);
            s.task_template.resources = Some(shoal_spec::ResourceRequirements {
                limits: None,
                reservations: Some(limit),
            });
            validate(&s).map_err(|e| e.to_string())
        };
        let cpus = |nano_cpus| shoal_spec::Limit {
            nano_cpus,
            ..Default::default()
        };
        let memory = |memory_bytes| shoal_spec::Limit {
            memory_bytes,
            ..Default::default()
        };
        let e = with(cpus(-10_000_000_000_000_000)).unwrap_err();
        assert!(
            e.ends_with("invalid cpu value -10000000: Must be at least 0.001"),
            "{e}"
        );
        let e = with(cpus(999_999)).unwrap_err();
        assert!(
            e.ends_with("invalid cpu value 0.000999999: Must be at least 0.001"),
            "{e}"
        );
        let e = with(memory(-1)).unwrap_err();
        assert!(
            e.ends_with("invalid memory value -1: Must be at least 4MiB"),
            "{e}"
        );
        let e = with(shoal_spec::Limit {
            pids: -1,
            ..Default::default()
        })
        .unwrap_err();
        assert!(
            e.ends_with("invalid pids value -1: Must be at least 0"),
            "{e}"
        );
        assert!(with(cpus(1_000_000)).is_ok());
        assert!(with(memory(4 << 20)).is_ok());
        assert!(with(shoal_spec::Limit::default()).is_ok());
    }

    /// A volume's source is a plain name: `source=../../x` would put the volume outside
    /// the data root's volumes directory.
    #[test]
    fn validate_refuses_volume_names_that_are_paths() {
        let with = |kind: &str, source: &str| {
            let mut s = spec("web", &[]);
            s.task_template.container_spec.mounts = vec![Mount {
                kind: kind.into(),
                source: source.into(),
                target: "/y".into(),
                read_only: false,
            }];
            validate(&s).map_err(|e| e.to_string())
        };
        for bad in ["../../x", "a/b", "/abs", ".hidden", "x", "-x", "a b"] {
            let e = with("volume", bad).unwrap_err();
            assert!(
                e.contains(&format!(
                    "{bad:?} includes invalid characters for a local volume name"
                )),
                "{e}"
            );
        }
        for good in ["data", "webapp_data", "v1.2-x", ""] {
            assert!(with("volume", good).is_ok(), "{good}");
        }
        assert!(with("bind", "/srv/data").is_ok());
    }

    /// `--replicas 1000000000` (create, scale, compose) is refused, not turned into a task
    /// record per slot on the leader.
    #[test]
    fn validate_caps_replicas() {
        let mut s = spec("web", &[]);
        s.mode = shoal_spec::ServiceMode::replicated(MAX_REPLICAS);
        assert!(validate(&s).is_ok());
        s.mode = shoal_spec::ServiceMode::replicated(1_000_000_000);
        let e = validate(&s).unwrap_err().to_string();
        assert!(
            e.ends_with("invalid replicas value 1000000000: Must be at most 10000"),
            "{e}"
        );
    }

    /// An empty command is refused when the service is created, not left to fail (or, as
    /// it once did, panic) on the node.
    #[test]
    fn validate_refuses_an_empty_command() {
        let with = |command: &[&str], args: &[&str]| {
            let mut s = spec("web", &[]);
            let cs = &mut s.task_template.container_spec;
            cs.command = command.iter().map(|s| s.to_string()).collect();
            cs.args = args.iter().map(|s| s.to_string()).collect();
            validate(&s).map_err(|e| e.to_string())
        };
        for (command, args) in [
            (&[][..], &[""][..]),
            (&[""][..], &[][..]),
            (&[""][..], &[""][..]),
            // `service create busybox "" sleep 1`: the user's "" is the program, as in
            // docker (which would fail to exec it), not dropped to run `sleep 1`.
            (&[][..], &["", "sleep", "1"][..]),
            (&["", "sleep"][..], &["1"][..]),
        ] {
            let e = with(command, args).unwrap_err();
            assert!(
                e.ends_with("no command specified: the program name is empty"),
                "{e}"
            );
        }
        assert!(with(&[""], &["sleep", "1"]).is_ok());
        assert!(with(&[], &["sleep", "1"]).is_ok());
    }
}
