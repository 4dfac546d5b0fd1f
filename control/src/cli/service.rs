//! `shoal service ...`: create, ls, ps, inspect, update, scale, rollback, rm, logs.

use std::collections::{BTreeMap, BTreeSet};

use clap::{Args, Subcommand};
use serde_json::{json, Value};
use shoal_spec::{
    ContainerSpec, EndpointSpec, Mount, NetworkAttachmentConfig, Placement, PortConfig,
    ServiceMode, ServiceSpec, TaskSpec,
};

use super::service_opts::{self as opts, SpecFlags};
use super::task_filter::TaskFilter;
use super::{call, progress, tasks, unexpected, CliResult};
use crate::api::{ApiError, ApiReply, ApiRequest};

// Parsed once per command; the size difference between the variants does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand, Debug)]
pub enum ServiceCommand {
    /// Create a new service
    #[command(mut_args = create_default)]
    Create(CreateArgs),
    /// List services
    #[command(alias = "list")]
    Ls {
        /// Only display IDs
        #[arg(short, long)]
        quiet: bool,
        /// Filter output based on conditions provided
        #[arg(short, long, value_name = "filter")]
        filter: Vec<String>,
        #[arg(long, help = super::help::FORMAT_HELP)]
        format: Option<String>,
    },
    /// List the tasks of one or more services
    Ps(PsArgs),
    /// Display detailed information on one or more services
    Inspect {
        /// Print the information in a human friendly format
        #[arg(long)]
        pretty: bool,
        #[arg(short, long, help = super::help::INSPECT_FORMAT_HELP)]
        format: Option<String>,
        #[arg(required = true)]
        services: Vec<String>,
    },
    /// Update a service
    Update(UpdateArgs),
    /// Scale one or multiple replicated services
    Scale {
        /// Exit immediately instead of waiting for the service to converge
        #[arg(short, long)]
        detach: bool,
        /// SERVICE=REPLICAS
        #[arg(required = true)]
        scales: Vec<String>,
    },
    /// Revert changes to a service's configuration
    Rollback {
        /// Exit immediately instead of waiting for the service to converge
        #[arg(short, long)]
        detach: bool,
        /// Suppress progress output
        #[arg(short, long)]
        quiet: bool,
        service: String,
    },
    /// Remove one or more services
    #[command(alias = "remove")]
    Rm {
        #[arg(required = true)]
        services: Vec<String>,
    },
    /// Fetch the logs of a service or task
    Logs {
        /// Follow log output
        #[arg(short, long)]
        follow: bool,
        /// Number of lines to show from the end of the logs (default "all")
        #[arg(short = 'n', long)]
        tail: Option<String>,
        service: String,
    },
}

#[derive(Args, Debug)]
pub struct PsArgs {
    /// Do not truncate output
    #[arg(long)]
    pub no_trunc: bool,
    /// Only display task IDs
    #[arg(short, long)]
    pub quiet: bool,
    /// Filter output based on conditions provided
    #[arg(short, long, value_name = "filter")]
    pub filter: Vec<String>,
    /// Pretty-print tasks using a Go template
    #[arg(long)]
    pub format: Option<String>,
    #[arg(required = true)]
    pub services: Vec<String>,
}

#[derive(Args, Debug)]
pub struct CreateArgs {
    /// Service name
    #[arg(long)]
    name: Option<String>,
    /// Service mode ("replicated", "global")
    #[arg(long, default_value = "replicated")]
    mode: String,
    /// Placement constraints
    #[arg(long)]
    constraint: Vec<String>,
    /// Add a placement preference
    #[arg(long, value_name = "pref")]
    placement_pref: Vec<String>,
    /// Publish a port as a node port
    #[arg(short, long, value_name = "port")]
    publish: Vec<String>,
    /// Set environment variables
    #[arg(short, long)]
    env: Vec<String>,
    /// Read in a file of environment variables
    #[arg(long)]
    env_file: Vec<String>,
    /// Set one or more supplementary user groups for the container
    #[arg(long)]
    group: Vec<String>,
    /// Service labels
    #[arg(short, long)]
    label: Vec<String>,
    /// Container labels
    #[arg(long)]
    container_label: Vec<String>,
    /// Attach a filesystem mount to the service
    #[arg(long, value_name = "mount")]
    mount: Vec<String>,
    /// Specify secrets to expose to the service
    #[arg(long, value_name = "secret")]
    secret: Vec<String>,
    /// Specify configurations to expose to the service
    #[arg(long, value_name = "config")]
    config: Vec<String>,
    /// Network attachments
    #[arg(long, value_name = "network")]
    network: Vec<String>,
    /// Exit immediately instead of waiting for the service to converge
    #[arg(short, long)]
    detach: bool,
    /// Suppress progress output
    #[arg(short, long)]
    quiet: bool,
    /// Send registry authentication details to swarm agents
    #[arg(long)]
    with_registry_auth: bool,
    /// Set one or more custom host-to-IP mappings (host:ip)
    #[arg(long)]
    host: Vec<String>,
    /// Set custom DNS servers
    #[arg(long)]
    dns: Vec<String>,
    /// Set DNS options
    #[arg(long)]
    dns_option: Vec<String>,
    /// Set custom DNS search domains
    #[arg(long)]
    dns_search: Vec<String>,
    /// Sysctl options
    #[arg(long)]
    sysctl: Vec<String>,
    /// Ulimit options (default [])
    #[arg(long, value_name = "ulimit")]
    ulimit: Vec<String>,
    /// Add Linux capabilities
    #[arg(long)]
    cap_add: Vec<String>,
    /// Drop Linux capabilities
    #[arg(long)]
    cap_drop: Vec<String>,
    #[command(flatten)]
    flags: SpecFlags,
    image: String,
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
}

/// The defaults docker's `service create` help shows for flags it shares with `update`,
/// whose help shows none (a flag `update` is not given changes nothing). Shoal applies
/// them when it builds the spec, so they are help text here, not clap defaults.
const CREATE_DEFAULTS: &[(&str, &str)] = &[
    ("endpoint-mode", "\"vip\""),
    ("restart-condition", "\"any\""),
    ("restart-delay", "5s"),
    ("rollback-delay", "0s"),
    ("rollback-failure-action", "\"pause\""),
    ("rollback-max-failure-ratio", "0"),
    ("rollback-monitor", "5s"),
    ("rollback-order", "\"stop-first\""),
    ("rollback-parallelism", "1"),
    ("stop-grace-period", "10s"),
    ("update-delay", "0s"),
    ("update-failure-action", "\"pause\""),
    ("update-max-failure-ratio", "0"),
    ("update-monitor", "5s"),
    ("update-order", "\"stop-first\""),
    ("update-parallelism", "1"),
];

/// A `service create` flag with the default docker's help shows for it, if any.
fn create_default(arg: clap::Arg) -> clap::Arg {
    let Some((_, default)) = CREATE_DEFAULTS
        .iter()
        .find(|(name, _)| arg.get_long() == Some(*name))
    else {
        return arg;
    };
    let help = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
    arg.help(format!("{help} (default {default})"))
}

#[derive(Args, Debug)]
pub struct UpdateArgs {
    /// Service image tag
    #[arg(long)]
    image: Option<String>,
    /// Service command args
    #[arg(long, allow_hyphen_values = true, value_name = "command")]
    args: Option<String>,
    /// Add or update a placement constraint
    #[arg(long)]
    constraint_add: Vec<String>,
    /// Remove a constraint
    #[arg(long)]
    constraint_rm: Vec<String>,
    /// Add a placement preference
    #[arg(long, value_name = "pref")]
    placement_pref_add: Vec<String>,
    /// Remove a placement preference
    #[arg(long, value_name = "pref")]
    placement_pref_rm: Vec<String>,
    /// Add or update a service label
    #[arg(long)]
    label_add: Vec<String>,
    /// Remove a label by its key
    #[arg(long)]
    label_rm: Vec<String>,
    /// Add or update a container label
    #[arg(long)]
    container_label_add: Vec<String>,
    /// Remove a container label by its key
    #[arg(long)]
    container_label_rm: Vec<String>,
    /// Add or update an environment variable
    #[arg(long)]
    env_add: Vec<String>,
    /// Remove an environment variable
    #[arg(long)]
    env_rm: Vec<String>,
    /// Add or update a published port
    #[arg(long, value_name = "port")]
    publish_add: Vec<String>,
    /// Remove a published port by its target port
    #[arg(long, value_name = "port")]
    publish_rm: Vec<String>,
    /// Add or update a mount on a service
    #[arg(long, value_name = "mount")]
    mount_add: Vec<String>,
    /// Remove a mount by its target path
    #[arg(long)]
    mount_rm: Vec<String>,
    /// Add a custom host-to-IP mapping ("host:ip")
    #[arg(long)]
    host_add: Vec<String>,
    /// Remove a custom host-to-IP mapping ("host:ip")
    #[arg(long)]
    host_rm: Vec<String>,
    /// Add or update a custom DNS server
    #[arg(long)]
    dns_add: Vec<String>,
    /// Remove a custom DNS server
    #[arg(long)]
    dns_rm: Vec<String>,
    /// Add or update a DNS option
    #[arg(long)]
    dns_option_add: Vec<String>,
    /// Remove a DNS option
    #[arg(long)]
    dns_option_rm: Vec<String>,
    /// Add or update a custom DNS search domain
    #[arg(long)]
    dns_search_add: Vec<String>,
    /// Remove a DNS search domain
    #[arg(long)]
    dns_search_rm: Vec<String>,
    /// Add or update a Sysctl option
    #[arg(long)]
    sysctl_add: Vec<String>,
    /// Remove a Sysctl option
    #[arg(long)]
    sysctl_rm: Vec<String>,
    /// Add or update a ulimit option (default [])
    #[arg(long, value_name = "ulimit")]
    ulimit_add: Vec<String>,
    /// Remove a ulimit option
    #[arg(long)]
    ulimit_rm: Vec<String>,
    /// Add Linux capabilities
    #[arg(long)]
    cap_add: Vec<String>,
    /// Drop Linux capabilities
    #[arg(long)]
    cap_drop: Vec<String>,
    /// Add or update a secret on a service
    #[arg(long, value_name = "secret")]
    secret_add: Vec<String>,
    /// Remove a secret
    #[arg(long)]
    secret_rm: Vec<String>,
    /// Add or update a config file on a service
    #[arg(long, value_name = "config")]
    config_add: Vec<String>,
    /// Remove a configuration file
    #[arg(long)]
    config_rm: Vec<String>,
    /// Add an additional supplementary user group to the container
    #[arg(long)]
    group_add: Vec<String>,
    /// Remove a previously added supplementary user group from the container
    #[arg(long)]
    group_rm: Vec<String>,
    /// Add a network
    #[arg(long, value_name = "network")]
    network_add: Vec<String>,
    /// Remove a network
    #[arg(long)]
    network_rm: Vec<String>,
    /// Rollback to previous specification
    #[arg(long)]
    rollback: bool,
    /// Force update even if no changes require it
    #[arg(long)]
    force: bool,
    /// Send registry authentication details to swarm agents
    #[arg(long)]
    with_registry_auth: bool,
    /// Exit immediately instead of waiting for the service to converge
    #[arg(short, long)]
    detach: bool,
    /// Suppress progress output
    #[arg(short, long)]
    quiet: bool,
    #[command(flatten)]
    flags: SpecFlags,
    service: String,
}

fn key_values(list: &[String]) -> BTreeMap<String, String> {
    list.iter()
        .map(|l| {
            let (k, v) = l.split_once('=').unwrap_or((l.as_str(), ""));
            (k.to_string(), v.to_string())
        })
        .collect()
}

/// pflag's message for a flag value its parser refused.
fn bad_flag<'a>(flag: &'a str, value: &'a str) -> impl Fn(String) -> ApiError + 'a {
    move |e| {
        ApiError::plain(format!(
            "invalid argument \"{value}\" for \"{flag}\" flag: {e}"
        ))
    }
}

/// `--secret` values as references by name.
fn secret_refs(
    values: &[String],
    flag: &str,
) -> Result<Vec<shoal_spec::SecretReference>, ApiError> {
    values
        .iter()
        .map(|v| {
            let (name, file) = opts::file_reference("secret", v).map_err(bad_flag(flag, v))?;
            Ok(shoal_spec::SecretReference {
                file: Some(file),
                secret_id: String::new(),
                secret_name: name,
            })
        })
        .collect()
}

/// `--config` values as references by name.
fn config_refs(
    values: &[String],
    flag: &str,
) -> Result<Vec<shoal_spec::ConfigReference>, ApiError> {
    values
        .iter()
        .map(|v| {
            let (name, file) = opts::file_reference("config", v).map_err(bad_flag(flag, v))?;
            Ok(shoal_spec::ConfigReference {
                file: Some(file),
                config_id: String::new(),
                config_name: name,
            })
        })
        .collect()
}

fn build_spec(a: &CreateArgs) -> Result<ServiceSpec, ApiError> {
    build_spec_with_env(a, &|k| {
        std::env::var_os(k).map(|v| v.to_string_lossy().into_owned())
    })
}

/// [`build_spec`], `KEY` lines of env files looked up with `lookup`.
fn build_spec_with_env(
    a: &CreateArgs,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<ServiceSpec, ApiError> {
    // docker-cli's ToService reads the env files first.
    let env = opts::make_env(&a.env_file, &a.env, lookup).map_err(ApiError::plain)?;
    a.flags.check_isolation().map_err(ApiError::plain)?;
    let mode = create_mode(&a.mode, &a.flags).map_err(ApiError::plain)?;
    let mut ports = Vec::new();
    for p in &a.publish {
        ports.extend(opts::port(p).map_err(bad_flag("-p, --publish", p))?);
    }
    let mut mounts: Vec<Mount> = Vec::new();
    for m in &a.mount {
        mounts.push(opts::mount(m).map_err(bad_flag("--mount", m))?);
    }
    let secrets = secret_refs(&a.secret, "--secret")?;
    let configs = config_refs(&a.config, "--config")?;
    let mut prefs = Vec::new();
    for p in &a.placement_pref {
        prefs.push(opts::spread(p).map_err(bad_flag("--placement-pref", p))?);
    }
    let name = a.name.clone().unwrap_or_else(|| {
        // docker lets the daemon name it; we pick a name from the ID-like alphabet.
        crate::ids::new_id()[..12].to_string()
    });
    let mut hosts = Vec::new();
    for h in &a.host {
        hosts.push(opts::extra_host(h).map_err(bad_flag("--host", h))?);
    }
    let mut nameservers = Vec::new();
    for d in &a.dns {
        nameservers.push(opts::ip_address(d).map_err(bad_flag("--dns", d))?);
    }
    let mut search = Vec::new();
    for d in &a.dns_search {
        search.push(opts::dns_search(d).map_err(bad_flag("--dns-search", d))?);
    }
    let mut ulimits: BTreeMap<String, shoal_spec::Ulimit> = BTreeMap::new();
    for u in &a.ulimit {
        let u = opts::ulimit(u).map_err(bad_flag("--ulimit", u))?;
        ulimits.insert(u.name.clone(), u);
    }
    let (capability_add, capability_drop) =
        shoal_spec::effective_cap_add_cap_drop(&a.cap_add, &a.cap_drop);
    let dns_config = shoal_spec::DnsConfig {
        nameservers,
        search,
        options: a.dns_option.clone(),
    };
    let mut spec = ServiceSpec {
        name,
        labels: key_values(&a.label),
        task_template: TaskSpec {
            container_spec: ContainerSpec {
                image: a.image.clone(),
                labels: key_values(&a.container_label),
                args: a.command.clone(),
                env,
                groups: a.group.clone(),
                mounts,
                hosts,
                // The CLI always sends a DNSConfig (shown `{}` when empty).
                dns_config: (dns_config != Default::default()).then_some(dns_config),
                sysctls: key_values(&a.sysctl),
                ulimits: ulimits.into_values().collect(),
                capability_add,
                capability_drop,
                secrets,
                configs,
                ..Default::default()
            },
            // The CLI always sends a Placement (shown `{}` when empty), as docker's does.
            placement: Some(Placement {
                constraints: a.constraint.clone(),
                preferences: prefs,
                max_replicas: 0,
            }),
            networks: a
                .network
                .iter()
                .map(|n| network_flag("--network", n))
                .collect::<Result<_, _>>()?,
            ..Default::default()
        },
        mode,
        endpoint_spec: (!ports.is_empty()).then(|| EndpointSpec {
            mode: Default::default(),
            ports,
        }),
        ..Default::default()
    };
    create_flags(a).apply(&mut spec).map_err(ApiError::plain)?;
    Ok(spec)
}

/// The spec flags as docker-cli's create sends them: `--endpoint-mode` lowercased (its
/// ToEndpointSpec), where update sends the value as given.
fn create_flags(a: &CreateArgs) -> opts::SpecFlags {
    let mut flags = a.flags.clone();
    flags.endpoint_mode = flags.endpoint_mode.map(|m| m.to_lowercase());
    flags
}

/// docker-cli's ToServiceMode: `--mode` and the flags only some modes take, in its words.
/// Jobs (`replicated-job`, `global-job`) Shoal does not run yet.
fn create_mode(mode: &str, flags: &opts::SpecFlags) -> Result<ServiceMode, String> {
    let per_node = flags.replicas_max_per_node.is_some_and(|m| m > 0);
    match mode {
        "global" | "global-job" if flags.replicas.is_some() => {
            Err("replicas can only be used with replicated or replicated-job mode".into())
        }
        "global" | "global-job" if per_node => Err(
            "replicas-max-per-node can only be used with replicated or replicated-job mode".into(),
        ),
        "global" => Ok(ServiceMode::global()),
        "replicated" => Ok(ServiceMode::replicated(1)),
        "replicated-job" | "global-job" => Err(format!(
            "unsupported mode: {mode} (jobs are not supported yet)"
        )),
        other => Err(format!(
            "Unknown mode: {other}, only replicated and global supported"
        )),
    }
}

/// A `--network` / `--network-add` value (docker-cli's NetworkOpt), refused in pflag's
/// words. Driver options parse as docker's do, but Shoal's overlay takes none per
/// attachment (and the spec has nowhere to keep them): they are refused, not dropped.
fn network_flag(flag: &str, value: &str) -> Result<NetworkAttachmentConfig, ApiError> {
    let (net, driver_opts) = opts::network(value).map_err(bad_flag(flag, value))?;
    if !driver_opts.is_empty() {
        return Err(bad_flag(flag, value)(
            "driver-opt is not supported: Shoal's overlay takes no per-attachment driver options"
                .into(),
        ));
    }
    Ok(net)
}

/// The ID of the network `reference` names, as docker-cli's resolveNetworkID asks the
/// daemon (`network X not found` when there is none).
async fn network_id(host: &str, reference: &str) -> Result<String, ApiError> {
    let reply = call(
        host,
        ApiRequest::NetworkInspect {
            references: vec![reference.to_string()],
        },
    )
    .await?;
    let ApiReply::Objects { mut objects } = reply else {
        return Err(unexpected(reply));
    };
    match objects.pop() {
        Some(Ok(n)) => Ok(n["Id"].as_str().unwrap_or_default().to_string()),
        Some(Err(e)) => Err(ApiError::daemon(e)),
        None => Err(ApiError::daemon(format!("network {reference} not found"))),
    }
}

/// `service create --network`: each network by ID, sorted by ID, as docker-cli's
/// ToService sends them.
async fn resolve_networks(host: &str, spec: &mut ServiceSpec) -> Result<(), ApiError> {
    for n in &mut spec.task_template.networks {
        n.target = network_id(host, &n.target).await?;
    }
    spec.task_template
        .networks
        .sort_by(|a, b| a.target.cmp(&b.target));
    Ok(())
}

/// `service update --network-add/--network-rm`, resolved: the IDs to remove and the
/// attachments to add (each with the name it was given and its network's ID).
#[derive(Debug, Default)]
struct NetworkUpdate {
    remove: BTreeSet<String>,
    add: Vec<(String, NetworkAttachmentConfig)>,
}

/// The `--network-add` values parsed (before anything is asked of the daemon, as pflag
/// refuses them while parsing the command line).
fn network_adds(a: &UpdateArgs) -> Result<Vec<NetworkAttachmentConfig>, ApiError> {
    a.network_add
        .iter()
        .map(|n| network_flag("--network-add", n))
        .collect()
}

/// docker-cli's updateNetworks, the daemon's half: every network named by `--network-rm`
/// must exist (one the service is not on is no error); each added one is looked up.
async fn resolve_network_update(
    host: &str,
    a: &UpdateArgs,
    adds: Vec<NetworkAttachmentConfig>,
) -> Result<NetworkUpdate, ApiError> {
    let mut u = NetworkUpdate::default();
    let rm: BTreeSet<&String> = a.network_rm.iter().collect();
    for r in rm {
        u.remove.insert(network_id(host, r).await?);
    }
    for mut n in adds {
        let given = std::mem::take(&mut n.target);
        n.target = network_id(host, &given).await?;
        u.add.push((given, n));
    }
    Ok(u)
}

/// docker-cli's updateNetworks: the removed networks go, an added one the service is
/// already on is refused, and the list is kept sorted by network ID.
fn update_networks(spec: &mut ServiceSpec, u: &NetworkUpdate) -> Result<(), ApiError> {
    let nets = &mut spec.task_template.networks;
    nets.retain(|n| !u.remove.contains(&n.target));
    for (given, n) in &u.add {
        if nets.iter().any(|x| x.target == n.target) {
            return Err(ApiError::plain(format!(
                "service is already attached to network {given}"
            )));
        }
        nets.push(n.clone());
    }
    nets.sort_by(|a, b| a.target.cmp(&b.target));
    Ok(())
}

/// The stored spec (without inserted defaults) and version of a service, for updating.
async fn current(host: &str, reference: &str) -> Result<(String, u64, ServiceSpec), ApiError> {
    match call(
        host,
        ApiRequest::ServiceGetSpec {
            reference: reference.to_string(),
        },
    )
    .await?
    {
        ApiReply::ServiceSpec { id, version, spec } => Ok((id, version, spec)),
        other => Err(unexpected(other)),
    }
}

fn apply_update(a: &UpdateArgs, spec: &mut ServiceSpec) -> Result<(), ApiError> {
    a.flags.check_isolation().map_err(ApiError::plain)?;
    let tt = &mut spec.task_template;
    if let Some(i) = &a.image {
        tt.container_spec.image = i.clone();
    }
    if let Some(args) = &a.args {
        // docker's ShlexOpt: the words as a shell would split them.
        tt.container_spec.args =
            shoal_compose::shell_split(args).map_err(bad_flag("--args", args))?;
    }
    if !a.constraint_add.is_empty() || !a.constraint_rm.is_empty() {
        let p = tt.placement.get_or_insert_with(Placement::default);
        p.constraints.retain(|c| {
            !a.constraint_rm
                .iter()
                .any(|r| r.replace(' ', "") == c.replace(' ', ""))
        });
        for c in &a.constraint_add {
            if !p.constraints.contains(c) {
                p.constraints.push(c.clone());
            }
        }
        // docker keeps constraints sorted after an update.
        p.constraints.sort();
    }
    if !a.placement_pref_add.is_empty() || !a.placement_pref_rm.is_empty() {
        let p = tt.placement.get_or_insert_with(Placement::default);
        for r in &a.placement_pref_rm {
            let r = opts::spread(r).map_err(bad_flag("--placement-pref-rm", r))?;
            p.preferences.retain(|x| x != &r);
        }
        for x in &a.placement_pref_add {
            p.preferences
                .push(opts::spread(x).map_err(bad_flag("--placement-pref-add", x))?);
        }
    }
    for k in &a.label_rm {
        spec.labels.remove(k);
    }
    spec.labels.extend(key_values(&a.label_add));
    let cs = &mut spec.task_template.container_spec;
    for k in &a.container_label_rm {
        cs.labels.remove(k);
    }
    cs.labels.extend(key_values(&a.container_label_add));
    for k in &a.env_rm {
        cs.env.retain(|e| e.split('=').next() != Some(k.as_str()));
    }
    for e in &a.env_add {
        let key = e.split('=').next().unwrap_or("");
        cs.env.retain(|x| x.split('=').next() != Some(key));
        cs.env.push(e.clone());
    }
    if !a.group_add.is_empty() || !a.group_rm.is_empty() {
        // docker's updateGroups: added, then the removed ones taken out, sorted.
        cs.groups.extend(a.group_add.iter().cloned());
        cs.groups.retain(|g| !a.group_rm.contains(g));
        cs.groups.sort();
    }
    for t in &a.mount_rm {
        cs.mounts.retain(|m| &m.target != t);
    }
    for m in &a.mount_add {
        cs.mounts
            .push(opts::mount(m).map_err(bad_flag("--mount-add", m))?);
    }
    update_container_options(a, cs)?;
    // docker-cli's getUpdatedSecrets/getUpdatedConfigs: removed by name, then added
    // (the daemon fills in the IDs of the added ones).
    cs.secrets.retain(|r| !a.secret_rm.contains(&r.secret_name));
    cs.secrets
        .extend(secret_refs(&a.secret_add, "--secret-add")?);
    cs.configs.retain(|r| !a.config_rm.contains(&r.config_name));
    cs.configs
        .extend(config_refs(&a.config_add, "--config-add")?);
    if !a.publish_add.is_empty() || !a.publish_rm.is_empty() {
        let e = spec.endpoint_spec.get_or_insert_with(EndpointSpec::default);
        for r in &a.publish_rm {
            remove_ports(&mut e.ports, r).map_err(bad_flag("--publish-rm", r))?;
        }
        for p in &a.publish_add {
            add_ports(
                &mut e.ports,
                opts::port(p).map_err(bad_flag("--publish-add", p))?,
            );
        }
    }
    a.flags.apply(spec).map_err(ApiError::plain)?;
    if a.force {
        spec.task_template.force_update += 1;
    }
    Ok(())
}

/// docker's update of hosts, DNS, sysctls, ulimits and capabilities (cli
/// service/update.go: updateHosts, updateDNSConfig, updateSysCtls, updateUlimits,
/// updateCapabilities).
fn update_container_options(a: &UpdateArgs, cs: &mut ContainerSpec) -> Result<(), ApiError> {
    if !a.host_add.is_empty() || !a.host_rm.is_empty() {
        let mut added = Vec::new();
        for h in &a.host_add {
            added.push(opts::extra_host(h).map_err(bad_flag("--host-add", h))?);
        }
        cs.hosts = update_hosts(&cs.hosts, &a.host_rm, added);
    }
    let dns_flags = [
        &a.dns_add,
        &a.dns_rm,
        &a.dns_option_add,
        &a.dns_option_rm,
        &a.dns_search_add,
        &a.dns_search_rm,
    ];
    if dns_flags.iter().any(|f| !f.is_empty()) {
        let old = cs.dns_config.take().unwrap_or_default();
        let mut nameservers = old.nameservers;
        for d in &a.dns_add {
            nameservers.push(opts::ip_address(d).map_err(bad_flag("--dns-add", d))?);
        }
        let mut seen = std::collections::HashSet::new();
        nameservers.retain(|ns| seen.insert(ns.clone()) && !a.dns_rm.contains(ns));
        nameservers.sort_by_key(|ns| ns.parse::<std::net::IpAddr>().ok());
        let mut search = old.search;
        for d in &a.dns_search_add {
            search.push(opts::dns_search(d).map_err(bad_flag("--dns-search-add", d))?);
        }
        search.dedup();
        search.retain(|d| !a.dns_search_rm.contains(d));
        search.sort();
        let mut options = old.options;
        options.extend(a.dns_option_add.iter().cloned());
        options.dedup();
        options.retain(|o| !a.dns_option_rm.contains(o));
        options.sort();
        cs.dns_config = Some(shoal_spec::DnsConfig {
            nameservers,
            search,
            options,
        });
    }
    for k in key_values(&a.sysctl_rm).keys() {
        cs.sysctls.remove(k);
    }
    cs.sysctls.extend(key_values(&a.sysctl_add));
    if !a.ulimit_add.is_empty() || !a.ulimit_rm.is_empty() {
        let mut limits: BTreeMap<String, shoal_spec::Ulimit> =
            cs.ulimits.drain(..).map(|u| (u.name.clone(), u)).collect();
        for k in key_values(&a.ulimit_rm).keys() {
            limits.remove(k);
        }
        for u in &a.ulimit_add {
            let u = opts::ulimit(u).map_err(bad_flag("--ulimit-add", u))?;
            limits.insert(u.name.clone(), u);
        }
        cs.ulimits = limits.into_values().collect();
    }
    if !a.cap_add.is_empty() || !a.cap_drop.is_empty() {
        update_capabilities(cs, &a.cap_add, &a.cap_drop);
    }
    Ok(())
}

/// docker's updateHosts: `host` removes that name from every entry, `host:ip` only from
/// the entries of that address; an entry left without names goes; added entries come
/// last; duplicates go.
fn update_hosts(hosts: &[String], remove: &[String], added: Vec<String>) -> Vec<String> {
    let remove: Vec<(&str, &str)> = remove
        .iter()
        .map(|r| r.split_once(':').unwrap_or((r.as_str(), "")))
        .collect();
    let mut out: Vec<String> = Vec::new();
    for entry in hosts {
        let mut fields = entry.split_whitespace();
        let Some(ip) = fields.next() else { continue };
        let names: Vec<&str> = fields
            .filter(|name| {
                !remove
                    .iter()
                    .any(|(host, rm_ip)| host == name && (rm_ip.is_empty() || *rm_ip == ip))
            })
            .collect();
        if !names.is_empty() {
            out.push(format!("{ip} {}", names.join(" ")));
        }
    }
    out.extend(added);
    let mut seen = std::collections::HashSet::new();
    out.retain(|h| seen.insert(h.clone()));
    out
}

/// docker's updateCapabilities: dropping a capability the service adds only stops adding
/// it (and the reverse); `RESET` empties that list first; `ALL` stands alone.
fn update_capabilities(cs: &mut ContainerSpec, add: &[String], drop: &[String]) {
    use std::collections::BTreeSet;
    let set = |caps: &[String]| -> BTreeSet<String> {
        caps.iter()
            .map(|c| shoal_spec::normalize_capability(c))
            .collect()
    };
    let (mut cap_add, mut cap_drop) = (set(&cs.capability_add), set(&cs.capability_drop));
    let mut to_add = set(add);
    let mut to_drop = set(drop);
    if to_add.remove("RESET") {
        cap_add.clear();
    }
    if to_drop.remove("RESET") {
        cap_drop.clear();
    }
    for c in &to_drop {
        if !to_add.contains(c) && !cap_add.remove(c) {
            cap_drop.insert(c.clone());
        }
    }
    for c in to_add {
        if !cap_drop.remove(&c) {
            cap_add.insert(c);
        }
    }
    let list = |caps: BTreeSet<String>| -> Vec<String> {
        if caps.contains("ALL") {
            vec!["ALL".to_string()]
        } else {
            caps.into_iter().collect()
        }
    };
    cs.capability_add = list(cap_add);
    cs.capability_drop = list(cap_drop);
}

/// `--publish-add`: a port replaces the one published under the same number and protocol.
/// One without a published port (picked per task) replaces only the same port again, so
/// several of them, by target, can sit side by side.
fn add_ports(ports: &mut Vec<PortConfig>, added: Vec<PortConfig>) {
    for np in added {
        ports.retain(|x| match np.published_port {
            Some(_) => !(x.published_port == np.published_port && x.protocol == np.protocol),
            None => x != &np,
        });
        ports.push(np);
    }
}

/// `--publish-rm`: "8080", "8080:80" or "8080/udp" remove the port published as 8080, in
/// either mode; docker's long syntax (`target=80[,protocol=udp][,mode=host]`) removes the
/// ports with that target port, protocol and mode (ingress unless given), as docker does.
fn remove_ports(ports: &mut Vec<PortConfig>, r: &str) -> Result<(), String> {
    if r.contains('=') {
        let named = opts::port(r)?;
        ports.retain(|p| {
            !named.iter().any(|n| {
                p.target_port == n.target_port
                    && p.protocol == n.protocol
                    && p.publish_mode == n.publish_mode
            })
        });
        return Ok(());
    }
    let (num, proto) = r.split_once('/').unwrap_or((r, "tcp"));
    let published: Option<u16> = num.split(':').next().and_then(|p| p.parse().ok());
    ports.retain(|p| {
        !(p.published_port == published && format!("{:?}", p.protocol).eq_ignore_ascii_case(proto))
    });
    Ok(())
}

const SERVICE_TABLE: &str = "{{.ID}}\t{{.Name}}\t{{.Mode}}\t{{.Replicas}}\t{{.Image}}\t{{.Ports}}";
const SERVICE_HEADERS: &[(&str, &str)] = &[
    ("ID", "ID"),
    ("Name", "NAME"),
    ("Mode", "MODE"),
    ("Replicas", "REPLICAS"),
    ("Image", "IMAGE"),
    ("Ports", "PORTS"),
];

/// `*:8080->80/tcp`, ingress ports only, joined with ", ": from the service's
/// Endpoint.Ports, as docker's formatter reads them (a port published without a number
/// shows the one it was given).
pub fn ports_column(service: &Value) -> String {
    let Some(ports) = service["Endpoint"]["Ports"].as_array() else {
        return String::new();
    };
    ports
        .iter()
        .filter(|p| p["PublishMode"].as_str().unwrap_or("ingress") == "ingress")
        .filter_map(|p| {
            let published = p["PublishedPort"].as_u64()?;
            Some(format!(
                "*:{published}->{}/{}",
                p["TargetPort"].as_u64().unwrap_or(0),
                p["Protocol"].as_str().unwrap_or("tcp")
            ))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

pub fn service_rows(services: &[(Value, u64, u64)]) -> Vec<Value> {
    let mut rows: Vec<Value> = services
        .iter()
        .map(|(v, running, desired)| {
            let spec = &v["Spec"];
            let global = spec["Mode"].get("Global").is_some();
            let max = spec["TaskTemplate"]["Placement"]["MaxReplicas"].as_u64().unwrap_or(0);
            let mut replicas = format!("{running}/{desired}");
            if max > 0 {
                replicas.push_str(&format!(" (max {max} per node)"));
            }
            json!({
                "ID": shoal_format::truncate_id(v["ID"].as_str().unwrap_or("")),
                "Name": spec["Name"],
                "Mode": if global { "global" } else { "replicated" },
                "Replicas": replicas,
                "Image": tasks::strip_digest(spec["TaskTemplate"]["ContainerSpec"]["Image"].as_str().unwrap_or("")),
                "Ports": ports_column(v),
            })
        })
        .collect();
    rows.sort_by(|a, b| {
        super::node::natural_cmp(
            a["Name"].as_str().unwrap_or(""),
            b["Name"].as_str().unwrap_or(""),
        )
    });
    rows
}

/// The keys `service ls -f` and `stack services -f` take (moby daemon/cluster/services.go
/// GetServices).
const SERVICE_FILTERS: &[&str] = &["name", "id", "label", "mode", "runtime"];

/// A service's mode by the name the `mode` filter gives it (moby GetServices).
fn mode_name(service: &Value) -> &'static str {
    let mode = &service["Spec"]["Mode"];
    match ["Replicated", "Global", "ReplicatedJob", "GlobalJob"]
        .into_iter()
        .find(|m| mode.get(m).is_some())
    {
        Some("Global") => "global",
        Some("ReplicatedJob") => "replicated-job",
        Some("GlobalJob") => "global-job",
        _ => "replicated",
    }
}

/// The services of `service ls -f ...`, the filter checked as docker's daemon checks it
/// and matched as swarmkit's ListServices does (controlapi/service.go): `name` and `id`
/// are prefixes of the name and the ID, `label` the service's labels; `mode` (moby's
/// own) and `runtime` are exact names, and every Shoal service runs a container. A
/// `mode` that is no mode's name is no error: it matches nothing.
pub fn filter_services(
    services: Vec<(Value, u64, u64)>,
    filter: &TaskFilter,
) -> Result<Vec<(Value, u64, u64)>, ApiError> {
    filter.check_accepted(SERVICE_FILTERS)?;
    Ok(services
        .into_iter()
        .filter(|(v, _, _)| {
            filter.any_prefix("name", v["Spec"]["Name"].as_str().unwrap_or(""))
                && filter.any_prefix("id", v["ID"].as_str().unwrap_or(""))
                && filter.labels_match("label", |k| v["Spec"]["Labels"][k].as_str())
                && filter.exact("mode", mode_name(v))
                && filter.exact("runtime", "container")
        })
        .collect())
}

pub fn print_services(
    services: &[(Value, u64, u64)],
    quiet: bool,
    format: Option<String>,
) -> CliResult {
    let rows = service_rows(services);
    let format = if quiet {
        Some("{{.ID}}".to_string())
    } else {
        format
    };
    let text = shoal_format::render_list(format.as_deref(), SERVICE_TABLE, SERVICE_HEADERS, &rows)
        .map_err(|e| ApiError::plain(e.to_string()))?;
    print!("{text}");
    Ok(())
}

/// docker-cli's createFilter for `service ps SERVICE...`: each reference names the
/// service with that full ID, else that full name, else the one whose ID it begins (two
/// such end the command: `multiple services found with provided prefix: X`). Returns
/// the IDs named and a `no such service: X` line for each reference that names none;
/// when none names a service, those lines are the error.
fn match_services(
    services: &[(String, String)],
    references: &[String],
) -> Result<(Vec<String>, Vec<String>), String> {
    let mut ids = Vec::new();
    let mut not_found = Vec::new();
    for r in references {
        let exact = services
            .iter()
            .find(|(id, _)| id == r)
            .or_else(|| services.iter().find(|(_, name)| name == r));
        if let Some((id, _)) = exact {
            ids.push(id.clone());
            continue;
        }
        let mut by_prefix = services.iter().filter(|(id, _)| id.starts_with(r.as_str()));
        match (by_prefix.next(), by_prefix.next()) {
            (Some(_), Some(_)) => {
                return Err(format!("multiple services found with provided prefix: {r}"))
            }
            (Some((id, _)), None) => ids.push(id.clone()),
            _ => not_found.push(format!("no such service: {r}")),
        }
    }
    if ids.is_empty() {
        return Err(not_found.join("\n"));
    }
    Ok((ids, not_found))
}

/// `service inspect`'s line for a reference the daemon found nothing for: not found is
/// the CLI's `no such service`; any other refusal (an ambiguous prefix) is the
/// daemon's, which docker-cli's getRef passes on.
fn inspect_refusal(reference: &str, error: &str) -> String {
    if error == format!("service {reference} not found") {
        format!("no such service: {reference}")
    } else {
        format!("Error response from daemon: {error}")
    }
}

pub async fn ps(host: &str, a: PsArgs, stack: Option<String>) -> CliResult {
    let mut filter = TaskFilter::parse(&a.filter)?;
    let mut not_found = Vec::new();
    if stack.is_none() {
        let services = match call(
            host,
            ApiRequest::ServiceList {
                references: vec![],
                stack: None,
            },
        )
        .await?
        {
            ApiReply::Services { services } => services,
            other => return Err(unexpected(other)),
        };
        let names: Vec<(String, String)> = services
            .iter()
            .map(|(v, _, _)| {
                let f = |x: &Value| x.as_str().unwrap_or_default().to_string();
                (f(&v["ID"]), f(&v["Spec"]["Name"]))
            })
            .collect();
        let (ids, missing) = match_services(&names, &a.services).map_err(ApiError::plain)?;
        // As docker's CLI does, the services named are added to the filter's
        // `service` values: with `-f service=...` the list is the tasks of either.
        for id in &ids {
            filter.add("service", id);
        }
        not_found = missing;
    }
    let (mut list, names) = match call(
        host,
        ApiRequest::TaskList {
            services: vec![],
            nodes: vec![],
            stack: stack.clone(),
            up_to_date: filter.has("_up-to-date"),
        },
    )
    .await?
    {
        ApiReply::Tasks { tasks, node_names } => (tasks, node_names),
        other => return Err(unexpected(other)),
    };
    filter_tasks(host, &filter, &mut list).await?;
    if let Some(name) = stack.as_deref().filter(|_| list.is_empty()) {
        return Err(ApiError::plain(format!("nothing found in stack: {name}")));
    }
    // `service ps -q` prints full IDs; `stack ps -q` 12 characters.
    let no_trunc = a.no_trunc || (a.quiet && stack.is_none());
    tasks::print(&list, &names, no_trunc, a.quiet, a.format)?;
    // docker lists the tasks of the services found, then says which were not.
    if not_found.is_empty() {
        Ok(())
    } else {
        Err(ApiError::plain(not_found.join("\n")))
    }
}

/// The ID of the service `reference` names (its ID, name or ID prefix), or the
/// daemon's error.
async fn service_id(host: &str, reference: &str) -> Result<String, ApiError> {
    lookup_service(host, reference)
        .await?
        .map_err(ApiError::daemon)
}

/// The ID of the service `reference` names, or why the daemon found none.
async fn lookup_service(host: &str, reference: &str) -> Result<Result<String, String>, ApiError> {
    let reply = call(
        host,
        ApiRequest::ServiceInspect {
            references: vec![reference.to_string()],
        },
    )
    .await?;
    let ApiReply::Objects { mut objects } = reply else {
        return Err(unexpected(reply));
    };
    Ok(objects
        .pop()
        .unwrap_or_else(|| Err(format!("service {reference} not found")))
        .map(|svc| svc["ID"].as_str().unwrap_or_default().to_string()))
}

/// A task filter with what its values name looked up: the IDs of the nodes and
/// services it names, the labels of every service (with `label`).
#[derive(Clone, Debug, Default)]
pub struct ResolvedFilter {
    pub nodes: BTreeSet<String>,
    pub services: BTreeSet<String>,
    pub labels: BTreeMap<String, BTreeMap<String, String>>,
}

impl ResolvedFilter {
    pub fn matches(&self, filter: &TaskFilter, t: &Value) -> bool {
        filter.matches(t, &self.nodes, &self.services, &self.labels)
    }
}

/// Keep the tasks `filter` matches, after the daemon's checks of it (see [`resolve_filter`]).
pub async fn filter_tasks(host: &str, filter: &TaskFilter, list: &mut Vec<Value>) -> CliResult {
    let resolved = resolve_filter(host, filter).await?;
    list.retain(|t| resolved.matches(filter, t));
    Ok(())
}

/// The daemon's checks of a task filter, in docker's order: its keys, the nodes
/// and services it names (by ID, name or ID prefix, or `self`), then its desired
/// states; and what its values name.
pub async fn resolve_filter(host: &str, filter: &TaskFilter) -> Result<ResolvedFilter, ApiError> {
    filter.check_keys()?;
    let mut nodes = BTreeSet::new();
    for n in filter.values("node") {
        nodes.insert(super::node::node_id(host, n).await?);
    }
    let mut services = BTreeSet::new();
    for r in filter.values("service") {
        services.insert(service_id(host, r).await?);
    }
    let mut labels = BTreeMap::new();
    if filter.has("label") {
        let reply = call(
            host,
            ApiRequest::ServiceList {
                references: vec![],
                stack: None,
            },
        )
        .await?;
        let ApiReply::Services { services } = reply else {
            return Err(unexpected(reply));
        };
        for (svc, _, _) in services {
            let id = svc["ID"].as_str().unwrap_or_default().to_string();
            labels.insert(id, key_values_of(&svc["Spec"]["Labels"]));
        }
    }
    filter.check_desired_states()?;
    Ok(ResolvedFilter {
        nodes,
        services,
        labels,
    })
}

fn key_values_of(v: &Value) -> BTreeMap<String, String> {
    v.as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
        .collect()
}

pub async fn run(host: &str, cmd: ServiceCommand) -> CliResult {
    match cmd {
        ServiceCommand::Create(a) => {
            let mut spec = build_spec(&a)?;
            resolve_networks(host, &mut spec).await?;
            if let Some(e) = create_flags(&a).daemon_refusal(&spec) {
                return Err(ApiError::daemon(e));
            }
            let id = match call(host, ApiRequest::ServiceCreate { spec }).await? {
                ApiReply::ServiceCreated { id } => id,
                other => return Err(unexpected(other)),
            };
            println!("{id}");
            if !a.detach {
                progress::wait(host, &id, a.quiet).await?;
            }
            Ok(())
        }
        ServiceCommand::Ls {
            quiet,
            filter,
            format,
        } => {
            let filter = TaskFilter::parse(&filter)?;
            match call(
                host,
                ApiRequest::ServiceList {
                    references: vec![],
                    stack: None,
                },
            )
            .await?
            {
                ApiReply::Services { services } => {
                    print_services(&filter_services(services, &filter)?, quiet, format)
                }
                other => Err(unexpected(other)),
            }
        }
        ServiceCommand::Ps(a) => ps(host, a, None).await,
        ServiceCommand::Inspect {
            pretty,
            format,
            services,
        } => {
            let objects = match call(
                host,
                ApiRequest::ServiceInspect {
                    references: services.clone(),
                },
            )
            .await?
            {
                ApiReply::Objects { objects } => objects,
                other => return Err(unexpected(other)),
            };
            let (values, missing) = super::split_found(&services, objects);
            if pretty {
                let networks: BTreeMap<String, String> =
                    match call(host, ApiRequest::NetworkList).await? {
                        ApiReply::Networks { networks } => networks
                            .iter()
                            .map(|n| {
                                let f = |k: &str| n[k].as_str().unwrap_or("").to_string();
                                (f("Id"), f("Name"))
                            })
                            .collect(),
                        other => return Err(unexpected(other)),
                    };
                for v in &values {
                    print!("{}", pretty_service(v, &networks));
                }
            } else {
                let text = shoal_format::render_inspect(&values, format.as_deref())
                    .map_err(|e| ApiError::plain(e.to_string()))?;
                print!("{text}");
            }
            super::missing_error(&missing, inspect_refusal)
        }
        ServiceCommand::Update(a) => {
            if a.rollback {
                return rollback(host, &a.service, a.detach, a.quiet).await;
            }
            let adds = network_adds(&a)?;
            let (id, version, mut spec) = current(host, &a.service).await?;
            apply_update(&a, &mut spec)?;
            if !a.network_add.is_empty() || !a.network_rm.is_empty() {
                let u = resolve_network_update(host, &a, adds).await?;
                update_networks(&mut spec, &u)?;
            }
            if let Some(e) = a.flags.daemon_refusal(&spec) {
                return Err(ApiError::daemon(e));
            }
            call(
                host,
                ApiRequest::ServiceUpdate {
                    reference: id.clone(),
                    version,
                    spec,
                },
            )
            .await?;
            println!("{}", a.service);
            if !a.detach {
                progress::wait(host, &a.service, a.quiet).await?;
            }
            Ok(())
        }
        ServiceCommand::Scale { detach, scales } => scale(host, &scales, detach).await,
        ServiceCommand::Rollback {
            detach,
            quiet,
            service,
        } => rollback(host, &service, detach, quiet).await,
        ServiceCommand::Rm { services } => {
            super::remove_each(host, services, |reference| ApiRequest::ServiceRemove {
                reference,
            })
            .await
        }
        ServiceCommand::Logs {
            follow,
            tail,
            service,
        } => {
            let tail = match tail.as_deref() {
                None | Some("all") => None,
                Some(n) => Some(
                    n.parse::<usize>()
                        .map_err(|_| ApiError::plain(format!("invalid tail value {n}")))?,
                ),
            };
            // Page by page (each reply about 1 MiB, however large the logs); with
            // --follow, then poll for what is new from where the last page ended.
            let mut cursor = None;
            let mut tail = tail;
            loop {
                let (text, next, more) = match call(
                    host,
                    ApiRequest::Logs {
                        reference: service.clone(),
                        tail,
                        cursor: cursor.take(),
                    },
                )
                .await?
                {
                    ApiReply::Logs { text, cursor, more } => (text, cursor, more),
                    other => return Err(unexpected(other)),
                };
                use std::io::Write;
                let mut out = std::io::stdout();
                if out.write_all(&text).and_then(|()| out.flush()).is_err() {
                    // The reader went away (`| head`): done.
                    return Ok(());
                }
                cursor = Some(next);
                if more {
                    continue;
                }
                if !follow {
                    return Ok(());
                }
                // Tasks that start later are shown from their first line.
                tail = None;
                tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            }
        }
    }
}

/// `service rollback` and `service update --rollback`.
async fn rollback(host: &str, service: &str, detach: bool, quiet: bool) -> CliResult {
    call(
        host,
        ApiRequest::ServiceRollback {
            reference: service.to_string(),
        },
    )
    .await?;
    println!("{service}");
    if !detach {
        progress::wait(host, service, quiet).await?;
    }
    Ok(())
}

/// Go's `strconv.ParseUint(s, 10, 64)`, with its error text.
fn parse_uint(s: &str) -> Result<u64, String> {
    s.parse::<u64>().map_err(|e| {
        let why = match e.kind() {
            std::num::IntErrorKind::PosOverflow => "value out of range",
            _ => "invalid syntax",
        };
        format!("strconv.ParseUint: parsing {}: {why}", go_quote(s))
    })
}

/// Go's `%q` of a string, for the ASCII that service names and numbers are made of.
fn go_quote(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_default()
}

/// docker's `service scale`: every specifier is checked first; then each service is
/// scaled (a bad one is reported and skipped), and only then, unless detached, the
/// progress of each scaled one is shown. The errors are printed together at the end.
async fn scale(host: &str, scales: &[String], detach: bool) -> CliResult {
    for s in scales {
        if !s
            .split_once('=')
            .is_some_and(|(k, v)| !k.is_empty() && !v.is_empty())
        {
            return Err(ApiError::plain(format!("invalid scale specifier '{s}'.\nSee 'shoal service scale --help'.\n\nUsage:  shoal service scale SERVICE=REPLICAS [SERVICE=REPLICAS...]\n\nScale one or multiple replicated services")));
        }
    }
    let mut errors: Vec<String> = Vec::new();
    let mut scaled: Vec<&str> = Vec::new();
    for s in scales {
        let (name, n) = s.split_once('=').unwrap_or_default();
        let n = match parse_uint(n) {
            Ok(n) => n,
            Err(e) => {
                errors.push(format!("{name}: invalid replicas value {n}: {e}"));
                continue;
            }
        };
        let result = async {
            let (id, version, mut spec) = current(host, name).await?;
            if spec.mode.is_global() {
                return Err(ApiError::plain(
                    "scale can only be used with replicated or replicated-job mode",
                ));
            }
            spec.mode = ServiceMode::replicated(n);
            call(
                host,
                ApiRequest::ServiceUpdate {
                    reference: id,
                    version,
                    spec,
                },
            )
            .await?;
            Ok(())
        }
        .await;
        match result {
            Ok(()) => {
                println!("{name} scaled to {n}");
                scaled.push(name);
            }
            Err(e) => errors.push(format!("{name}: {e}")),
        }
    }
    if !detach {
        for name in scaled {
            if let Err(e) = progress::wait(host, name, false).await {
                errors.push(format!("{name}: {e}"));
            }
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError::plain(errors.join("\n")))
    }
}

/// docker's serviceInspectPrettyTemplate (rebuilt in Rust): a blank line, the blocks, and
/// a blank line after; `networks` maps network IDs to names.
fn pretty_service(v: &Value, networks: &BTreeMap<String, String>) -> String {
    let str_of = |x: &Value| x.as_str().unwrap_or("").to_string();
    let spec = &v["Spec"];
    let tt = &spec["TaskTemplate"];
    let cs = &tt["ContainerSpec"];
    let mut out = format!(
        "\nID:\t\t{}\nName:\t\t{}",
        str_of(&v["ID"]),
        str_of(&spec["Name"])
    );
    if let Some(labels) = spec["Labels"].as_object().filter(|l| !l.is_empty()) {
        out.push_str("\nLabels:");
        let sorted: BTreeMap<&String, &Value> = labels.iter().collect();
        for (k, val) in sorted {
            out.push_str(&format!("\n {k}"));
            let val = str_of(val);
            if !val.is_empty() {
                out.push_str(&format!("={val}"));
            }
        }
    }
    out.push_str("\nService Mode:");
    if spec["Mode"].get("Global").is_some() {
        out.push_str("\tGlobal");
    } else if let Some(r) = spec["Mode"].get("Replicated") {
        out.push_str("\tReplicated");
        if let Some(n) = r["Replicas"].as_u64() {
            out.push_str(&format!("\n Replicas:\t{n}"));
        }
    }
    let us = &v["UpdateStatus"];
    if !str_of(&us["State"]).is_empty() {
        let ago = |t: &Value| {
            chrono::DateTime::parse_from_rfc3339(t.as_str().unwrap_or(""))
                .ok()
                .map(|t| {
                    let d = (chrono::Utc::now() - t.with_timezone(&chrono::Utc))
                        .to_std()
                        .unwrap_or_default();
                    format!("{} ago", shoal_format::human_duration(d))
                })
        };
        out.push_str(&format!(
            "\nUpdateStatus:\n State:\t\t{}",
            str_of(&us["State"])
        ));
        if let Some(a) = ago(&us["StartedAt"]) {
            out.push_str(&format!("\n Started:\t{a}"));
        }
        if str_of(&us["State"]) == "completed" {
            if let Some(a) = ago(&us["CompletedAt"]) {
                out.push_str(&format!("\n Completed:\t{a}"));
            }
        }
        out.push_str(&format!("\n Message:\t{}", str_of(&us["Message"])));
    }
    out.push_str("\nPlacement:");
    let p = &tt["Placement"];
    let strings = |x: &Value| -> Vec<String> {
        x.as_array()
            .into_iter()
            .flatten()
            .map(|s| s.as_str().unwrap_or("").to_string())
            .collect()
    };
    let constraints = strings(&p["Constraints"]);
    if !constraints.is_empty() {
        out.push_str(&format!("\n Constraints:\t[{}]", constraints.join(" ")));
    }
    let prefs: Vec<String> = p["Preferences"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|x| x["Spread"]["SpreadDescriptor"].as_str())
        .map(|d| format!("spread={d}"))
        .collect();
    if !prefs.is_empty() {
        out.push_str(&format!("\n Preferences:   [{}]", prefs.join(" ")));
    }
    if let Some(m) = p["MaxReplicas"].as_u64().filter(|&m| m > 0) {
        out.push_str(&format!("\n Max Replicas Per Node:   {m}"));
    }
    for (key, title, order) in [
        ("UpdateConfig", "UpdateConfig", "Update order:      "),
        ("RollbackConfig", "RollbackConfig", "Rollback order:    "),
    ] {
        let c = &spec[key];
        if c.is_null() {
            continue;
        }
        out.push_str(&format!(
            "\n{title}:\n Parallelism:\t{}",
            c["Parallelism"].as_u64().unwrap_or(0)
        ));
        let delay = c["Delay"].as_i64().unwrap_or(0);
        if delay > 0 {
            out.push_str(&format!("\n Delay:\t\t{}", super::go_duration(delay)));
        }
        out.push_str(&format!("\n On failure:\t{}", str_of(&c["FailureAction"])));
        let monitor = c["Monitor"].as_i64().unwrap_or(0);
        if monitor > 0 {
            out.push_str(&format!(
                "\n Monitoring Period: {}",
                super::go_duration(monitor)
            ));
        }
        let ratio = c["MaxFailureRatio"].as_f64().unwrap_or(0.0) as f32;
        out.push_str(&format!("\n Max failure ratio: {ratio}"));
        out.push_str(&format!("\n {order}{}", str_of(&c["Order"])));
    }
    out.push_str(&format!(
        "\nContainerSpec:\n Image:\t\t{}",
        str_of(&cs["Image"])
    ));
    let args = strings(&cs["Args"]);
    if !args.is_empty() {
        out.push_str("\n Args:\t\t");
        for a in &args {
            out.push_str(&format!("{a} "));
        }
    }
    let env = strings(&cs["Env"]);
    if !env.is_empty() {
        out.push_str("\n Env:\t\t");
        for e in &env {
            out.push_str(&format!("{e} "));
        }
    }
    if !str_of(&cs["Dir"]).is_empty() {
        out.push_str(&format!("\n Dir:\t\t{}", str_of(&cs["Dir"])));
    }
    if let Some(init) = cs["Init"].as_bool() {
        out.push_str(&format!("\n Init:\t\t{init}"));
    }
    if !str_of(&cs["User"]).is_empty() {
        out.push_str(&format!("\n User: {}", str_of(&cs["User"])));
    }
    let (cap_add, cap_drop) = (
        strings(&cs["CapabilityAdd"]),
        strings(&cs["CapabilityDrop"]),
    );
    if !cap_add.is_empty() || !cap_drop.is_empty() {
        out.push_str("\nCapabilities:");
        if !cap_add.is_empty() {
            out.push_str(&format!("\n Add: {}", cap_add.join(", ")));
        }
        if !cap_drop.is_empty() {
            out.push_str(&format!("\n Drop: {}", cap_drop.join(", ")));
        }
    }
    if let Some(sysctls) = cs["Sysctls"].as_object().filter(|m| !m.is_empty()) {
        out.push_str("\nSysCtls:");
        let sorted: BTreeMap<&String, &Value> = sysctls.iter().collect();
        for (k, v) in sorted {
            match str_of(v).as_str() {
                "" => out.push_str(&format!("\n {k}")),
                v => out.push_str(&format!("\n {k}: {v}")),
            }
        }
    }
    let ulimits: BTreeMap<String, String> = cs["Ulimits"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|u| {
            (
                str_of(&u["Name"]).to_string(),
                format!(
                    "{}:{}",
                    u["Soft"].as_i64().unwrap_or(0),
                    u["Hard"].as_i64().unwrap_or(0)
                ),
            )
        })
        .collect();
    if !ulimits.is_empty() {
        out.push_str("\nUlimits:");
        for (name, limits) in ulimits {
            out.push_str(&format!("\n {name}: {limits}"));
        }
    }
    let mounts = cs["Mounts"].as_array().cloned().unwrap_or_default();
    if !mounts.is_empty() {
        out.push_str("\nMounts:");
    }
    for m in &mounts {
        out.push_str(&format!(
            "\n Target:\t{}\n  Source:\t{}\n  ReadOnly:\t{}\n  Type:\t\t{}",
            str_of(&m["Target"]),
            str_of(&m["Source"]),
            m["ReadOnly"].as_bool().unwrap_or(false),
            str_of(&m["Type"])
        ));
    }
    // docker's Configs then Secrets: each target and the object's name.
    for (key, name_key) in [("Configs", "ConfigName"), ("Secrets", "SecretName")] {
        let refs = cs[key].as_array().cloned().unwrap_or_default();
        if !refs.is_empty() {
            out.push_str(&format!("\n{key}:"));
        }
        for r in &refs {
            out.push_str(&format!(
                "\n Target:\t{}\n  Source:\t{}",
                str_of(&r["File"]["Name"]),
                str_of(&r[name_key])
            ));
        }
    }
    let res = &tt["Resources"];
    if !res.is_null() {
        out.push_str("\nResources:");
        for (key, title) in [("Reservations", "Reservations"), ("Limits", "Limits")] {
            let r = &res[key];
            let cpus = r["NanoCPUs"].as_i64().unwrap_or(0);
            let mem = r["MemoryBytes"].as_i64().unwrap_or(0);
            let pids = r["Pids"].as_i64().unwrap_or(0);
            let shown = cpus > 0 || mem > 0 || (key == "Limits" && pids > 0);
            if r.is_null() || !shown {
                continue;
            }
            out.push_str(&format!("\n {title}:"));
            if cpus > 0 {
                out.push_str(&format!("\n  CPU:\t\t{}", cpus as f64 / 1e9));
            }
            if mem > 0 {
                out.push_str(&format!("\n  Memory:\t{}", super::bytes_size(mem as f64)));
            }
        }
    }
    let pids = res["Limits"]["Pids"].as_i64().unwrap_or(0);
    if pids > 0 {
        out.push_str(&format!("\n  PIDs:\t\t{pids}"));
    }
    let nets: Vec<String> = tt["Networks"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|n| {
            let id = str_of(&n["Target"]);
            networks.get(&id).cloned().unwrap_or(id)
        })
        .collect();
    if !nets.is_empty() {
        out.push_str("\nNetworks:");
        for n in &nets {
            out.push_str(&format!(" {n}"));
        }
        out.push(' ');
    }
    out.push_str(&format!(
        "\nEndpoint Mode:\t{}",
        str_of(&spec["EndpointSpec"]["Mode"])
    ));
    if let Some(ports) = v["Endpoint"]["Ports"].as_array().filter(|p| !p.is_empty()) {
        out.push_str("\nPorts:");
        for p in ports {
            out.push_str(&format!(
                "\n PublishedPort = {}\n  Protocol = {}\n  TargetPort = {}\n  PublishMode = {}",
                p["PublishedPort"].as_u64().unwrap_or(0),
                str_of(&p["Protocol"]),
                p["TargetPort"].as_u64().unwrap_or(0),
                str_of(&p["PublishMode"]),
            ));
        }
        out.push(' ');
    }
    let hc = &cs["Healthcheck"];
    if !hc.is_null() {
        let d = |k: &str| super::go_duration(hc[k].as_i64().unwrap_or(0));
        out.push_str(&format!(
            "\n Healthcheck:\n  Interval = {}\n  Retries = {}\n  StartPeriod =\t{}\n  Timeout =\t{}",
            d("Interval"),
            hc["Retries"].as_i64().unwrap_or(0),
            d("StartPeriod"),
            d("Timeout")
        ));
        let tests = strings(&hc["Test"]);
        if !tests.is_empty() {
            out.push_str("\n  Tests:");
            for t in &tests {
                out.push_str(&format!("\n\t Test = {t}"));
            }
            out.push(' ');
        }
    }
    out.push_str("\n\n");
    out
}

#[cfg(test)]
mod tests {
    use shoal_spec::{Protocol, PublishMode, SECOND_NS};

    use super::*;

    /// `service ls -f`: docker's keys (`name` and `id` prefixes, `label` name or
    /// name=value, `mode` and `runtime` exact), values of one key alternatives, keys all
    /// matching; docker's words for a key it does not know or a filter without `=`; a
    /// mode that is no mode lists nothing.
    #[test]
    fn service_ls_filters_as_docker_does() {
        let service = |id: &str, name: &str, mode: Value, labels: Value| {
            (
                json!({"ID": id, "Spec": {"Name": name, "Mode": mode, "Labels": labels}}),
                0,
                0,
            )
        };
        let services = vec![
            service(
                "aaa1",
                "web",
                json!({"Replicated": {"Replicas": 2}}),
                json!({"tier": "front"}),
            ),
            service(
                "aab2",
                "web-admin",
                json!({"Global": {}}),
                json!({"tier": "back", "ssd": ""}),
            ),
            service(
                "bbb3",
                "db",
                json!({"Replicated": {"Replicas": 1}}),
                json!({}),
            ),
            service("ccc4", "migrate", json!({"ReplicatedJob": {}}), json!({})),
            service("ddd5", "sweep", json!({"GlobalJob": {}}), json!({})),
        ];
        let names = |args: &[&str]| -> Result<Vec<String>, String> {
            let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
            let filter = TaskFilter::parse(&args).map_err(|e| e.to_string())?;
            Ok(filter_services(services.clone(), &filter)
                .map_err(|e| e.to_string())?
                .iter()
                .map(|(v, _, _)| v["Spec"]["Name"].as_str().unwrap().to_string())
                .collect())
        };
        assert_eq!(names(&[]).unwrap().len(), 5);
        assert_eq!(names(&["name=web"]).unwrap(), ["web", "web-admin"]);
        assert_eq!(names(&["name=web-"]).unwrap(), ["web-admin"]);
        assert_eq!(names(&["name=eb"]).unwrap(), Vec::<String>::new());
        assert_eq!(
            names(&["name=web", "name=db"]).unwrap(),
            ["web", "web-admin", "db"]
        );
        assert_eq!(names(&["id=aa"]).unwrap(), ["web", "web-admin"]);
        assert_eq!(names(&["id=aa", "name=db"]).unwrap(), Vec::<String>::new());
        assert_eq!(names(&["label=tier"]).unwrap(), ["web", "web-admin"]);
        assert_eq!(names(&["label=tier=back"]).unwrap(), ["web-admin"]);
        assert_eq!(names(&["label=tier", "label=ssd"]).unwrap(), ["web-admin"]);
        assert_eq!(names(&["label=ssd="]).unwrap(), ["web-admin"]);
        assert_eq!(names(&["mode=replicated"]).unwrap(), ["web", "db"]);
        assert_eq!(names(&["mode=global"]).unwrap(), ["web-admin"]);
        assert_eq!(names(&["mode=replicated-job"]).unwrap(), ["migrate"]);
        assert_eq!(names(&["mode=global-job"]).unwrap(), ["sweep"]);
        assert_eq!(
            names(&["mode=global", "mode=global-job"]).unwrap(),
            ["web-admin", "sweep"]
        );
        assert_eq!(names(&["mode=Global"]).unwrap(), Vec::<String>::new());
        assert_eq!(names(&["mode=bogus"]).unwrap(), Vec::<String>::new());
        assert_eq!(names(&["runtime=container"]).unwrap().len(), 5);
        assert_eq!(names(&["runtime=plugin"]).unwrap(), Vec::<String>::new());
        assert_eq!(names(&[" Name = db "]).unwrap(), ["db"]);
        assert_eq!(
            names(&["foo=1"]).unwrap_err(),
            "Error response from daemon: invalid filter 'foo'"
        );
        assert_eq!(
            names(&["desired-state=running"]).unwrap_err(),
            "Error response from daemon: invalid filter 'desired-state'"
        );
        assert_eq!(
            names(&["mode"]).unwrap_err(),
            "invalid argument \"mode\" for \"-f, --filter\" flag: bad format of filter (expected name=value)"
        );
    }

    #[derive(clap::Parser)]
    struct Create {
        #[command(flatten)]
        a: CreateArgs,
    }

    #[derive(clap::Parser)]
    struct Update {
        #[command(flatten)]
        a: UpdateArgs,
    }

    /// `service create FLAGS busybox`'s spec.
    fn create_with(flags: &[&str]) -> Result<ServiceSpec, ApiError> {
        use clap::Parser;
        let args = [&["create"], flags, &["busybox"]].concat();
        build_spec(&Create::try_parse_from(args).unwrap().a)
    }

    /// `service update ARGS`' flags, parsed.
    fn update_args(args: &[&str]) -> UpdateArgs {
        use clap::Parser;
        Update::try_parse_from(args).unwrap().a
    }

    /// docker-cli's checks of `--mode` and of the flags only some modes take (create's
    /// ToServiceMode, update's updateReplicas), in its words, as plain errors.
    #[test]
    fn modes_and_replicas_are_checked_as_docker_cli_does() {
        let err = |flags: &[&str]| create_with(flags).unwrap_err().to_string();
        assert_eq!(
            err(&["--mode", "bogus"]),
            "Unknown mode: bogus, only replicated and global supported"
        );
        assert_eq!(
            err(&["--replicas", "2", "--mode", "global"]),
            "replicas can only be used with replicated or replicated-job mode"
        );
        assert_eq!(
            err(&["--replicas", "0", "--mode", "global"]),
            "replicas can only be used with replicated or replicated-job mode"
        );
        assert_eq!(
            err(&["--replicas-max-per-node", "1", "--mode", "global"]),
            "replicas-max-per-node can only be used with replicated or replicated-job mode"
        );
        assert_eq!(
            err(&["--mode", "replicated-job"]),
            "unsupported mode: replicated-job (jobs are not supported yet)"
        );
        assert!(
            create_with(&["--replicas-max-per-node", "0", "--mode", "global"])
                .unwrap()
                .mode
                .is_global()
        );
        let mut spec = ServiceSpec {
            mode: ServiceMode::global(),
            ..Default::default()
        };
        assert_eq!(
            apply_update(
                &update_args(&["update", "--replicas", "2", "web"]),
                &mut spec
            )
            .unwrap_err()
            .to_string(),
            "replicas can only be used with replicated mode"
        );
    }

    /// What docker's CLI sends as given and its daemon refuses converting the spec:
    /// moby's words, after the CLI's own checks; "" is the default, as there.
    #[test]
    fn values_docker_s_daemon_refuses() {
        use clap::Parser;
        let refusal = |flags: &[&str]| {
            let args = [&["create"], flags, &["busybox"]].concat();
            let a = Create::try_parse_from(args).unwrap().a;
            let spec = build_spec(&a).unwrap();
            create_flags(&a).daemon_refusal(&spec)
        };
        for (flags, why) in [
            (
                &["--restart-condition", "bogus"][..],
                "invalid RestartCondition: \"bogus\"",
            ),
            (
                &["--update-failure-action", "bogus"],
                "unrecognized update failure action bogus",
            ),
            (
                &["--rollback-failure-action", "Pause"],
                "unrecognized update failure action Pause",
            ),
            (
                &["--update-order", "bogus"],
                "unrecognized update order bogus",
            ),
            (&["--rollback-order", "x"], "unrecognized update order x"),
            (
                &["--endpoint-mode", "bogus"],
                "invalid resolution mode: \"bogus\"",
            ),
            (
                &["--mount", "type=foo,target=/x"],
                "invalid MountType: \"foo\"",
            ),
            // moby's order: mounts, restart policy, update and rollback, endpoint.
            (
                &["--endpoint-mode", "x", "--restart-condition", "y"],
                "invalid RestartCondition: \"y\"",
            ),
        ] {
            assert_eq!(refusal(flags).as_deref(), Some(why), "{flags:?}");
        }
        for ok in [
            &["--restart-condition", "on-failure"][..],
            &["--restart-condition", ""],
            &["--update-failure-action", ""],
            &["--update-order", "start-first"],
            &["--rollback-failure-action", "rollback"],
            // create lowercases the endpoint mode (docker-cli's ToEndpointSpec)...
            &["--endpoint-mode", "DNSRR"],
            &["--mount", "type=BIND,source=/tmp,target=/x"],
        ] {
            assert_eq!(refusal(ok), None, "{ok:?}");
        }
        let spec = create_with(&["--endpoint-mode", "DNSRR"]).unwrap();
        assert_eq!(
            spec.endpoint_spec.unwrap().mode,
            shoal_spec::EndpointMode::Dnsrr
        );
        // ...update sends it as given.
        let a = update_args(&["update", "--endpoint-mode", "VIP", "web"]);
        assert_eq!(
            a.flags.daemon_refusal(&ServiceSpec::default()).as_deref(),
            Some("invalid resolution mode: \"VIP\"")
        );
        // Types swarm's API has but Shoal's executor cannot mount are Shoal's refusal,
        // in pflag's words, as are docker-cli's own checks of the value.
        for (mount, why) in [
            ("type=tmpfs,target=/x", "unsupported mount type tmpfs"),
            ("type=,target=/x", "type is required"),
            ("source=/x", "target is required"),
            ("target", "invalid field 'target' must be a key=value pair"),
            ("target=/x,x=1", "unexpected key 'x' in 'x=1'"),
            ("target=/x,ro=yes", "invalid value for ro: yes"),
        ] {
            assert_eq!(
                create_with(&["--mount", mount]).unwrap_err().to_string(),
                format!("invalid argument \"{mount}\" for \"--mount\" flag: {why}"),
            );
        }
        let m = &create_with(&["--mount", "Type=Bind,Source=/a,Target=/b,READONLY"])
            .unwrap()
            .task_template
            .container_spec
            .mounts[0];
        assert_eq!(
            (
                m.kind.as_str(),
                m.source.as_str(),
                m.target.as_str(),
                m.read_only
            ),
            ("bind", "/a", "/b", true)
        );
    }

    /// `service ps SERVICE...` finds services as docker-cli's createFilter does: full ID,
    /// then full name, then a unique ID prefix; an ambiguous prefix ends the command, the
    /// others not found are listed after the tasks of those found, or are the error when
    /// none is found.
    #[test]
    fn ps_finds_services_as_docker_cli() {
        let services: Vec<(String, String)> = [
            ("iab", "web"),
            ("icd", "db"),
            ("xyz", "iab2"),
            ("web", "other"),
        ]
        .iter()
        .map(|(i, n)| (i.to_string(), n.to_string()))
        .collect();
        let find = |refs: &[&str]| {
            let refs: Vec<String> = refs.iter().map(|r| r.to_string()).collect();
            match_services(&services, &refs)
        };
        let ok = |ids: &[&str], missing: &[&str]| {
            Ok((
                ids.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
                missing.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
            ))
        };
        assert_eq!(find(&["iab"]), ok(&["iab"], &[]));
        // A full ID before a name: `web` is the ID of `other`.
        assert_eq!(find(&["web"]), ok(&["web"], &[]));
        assert_eq!(find(&["db", "x"]), ok(&["icd", "xyz"], &[]));
        // A name is whole (`ia` begins the name `iab2`, and only the ID `iab`).
        assert_eq!(find(&["ia"]), ok(&["iab"], &[]));
        assert_eq!(
            find(&["i"]),
            Err("multiple services found with provided prefix: i".into())
        );
        assert_eq!(
            find(&["db", "nope", "i", "x"]),
            Err("multiple services found with provided prefix: i".into())
        );
        assert_eq!(
            find(&["db", "nope", "gone"]),
            ok(
                &["icd"],
                &["no such service: nope", "no such service: gone"]
            )
        );
        assert_eq!(
            find(&["nope", "gone"]),
            Err("no such service: nope\nno such service: gone".into())
        );
    }

    /// `service inspect`: a reference not found is the CLI's line, an ambiguous one the
    /// daemon's error.
    #[test]
    fn inspect_refusals_as_docker_cli() {
        assert_eq!(
            inspect_refusal("nope", "service nope not found"),
            "no such service: nope"
        );
        assert_eq!(
            inspect_refusal("i", "service i is ambiguous (2 matches found)"),
            "Error response from daemon: service i is ambiguous (2 matches found)"
        );
    }

    /// docker's CLI always sends a Placement, so a task's spec shows `"Placement": {}`.
    #[test]
    fn create_sends_a_placement() {
        let spec = create_with(&[]).unwrap();
        assert_eq!(spec.task_template.placement, Some(Placement::default()));
    }

    /// `--placement-pref` as docker-cli's placementPrefOpts reads it, refused in pflag's
    /// words.
    #[test]
    fn placement_prefs_are_read_as_docker_cli_reads_them() {
        let p = create_with(&["--placement-pref", "spread=node.labels.zone"])
            .unwrap()
            .task_template
            .placement
            .unwrap();
        assert_eq!(
            p.preferences[0].spread.spread_descriptor,
            "node.labels.zone"
        );
        for (pref, why) in [
            (
                "foo",
                "placement preference must be of the format \"<strategy>=<arg>\"",
            ),
            (
                "=x",
                "placement preference must be of the format \"<strategy>=<arg>\"",
            ),
            (
                "bar=node.labels.x",
                "unsupported placement preference bar (only spread is supported)",
            ),
        ] {
            assert_eq!(
                create_with(&["--placement-pref", pref])
                    .unwrap_err()
                    .to_string(),
                format!("invalid argument \"{pref}\" for \"--placement-pref\" flag: {why}"),
            );
        }
    }

    /// `--env-file` as docker-cli's create reads it: files first, then `--env`, a later
    /// value replacing an earlier; `KEY` alone from the CLI's environment.
    #[test]
    fn create_reads_env_files_before_env_flags() {
        use clap::Parser;
        let dir = std::env::temp_dir().join(format!("shoal-create-env-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (one, two) = (dir.join("one.env"), dir.join("two.env"));
        std::fs::write(&one, "# db\nDB_HOST=db\nDB_PORT=5432\nSECRET\n").unwrap();
        std::fs::write(&two, "DB_PORT=6543\n").unwrap();
        let (one, two) = (one.to_str().unwrap(), two.to_str().unwrap());
        let a = Create::try_parse_from([
            "create",
            "--env-file",
            one,
            "-e",
            "MODE=x",
            "--env-file",
            two,
            "busybox",
        ])
        .unwrap()
        .a;
        let spec = build_spec_with_env(&a, &|k| (k == "SECRET").then(|| "s3".to_string())).unwrap();
        assert_eq!(
            spec.task_template.container_spec.env,
            ["DB_HOST=db", "SECRET=s3", "DB_PORT=6543", "MODE=x"]
        );
        std::fs::write(dir.join("bad.env"), "A B=1\n").unwrap();
        let bad = dir.join("bad.env");
        let bad = bad.to_str().unwrap();
        assert_eq!(
            create_with(&["--env-file", bad]).unwrap_err().to_string(),
            format!("invalid env file ({bad}): variable 'A B' contains whitespaces")
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// `--group` (create) and `--group-add`/`--group-rm` (update, as docker's
    /// updateGroups: added, removed, sorted); `--oom-score-adj` on both.
    #[test]
    fn groups_and_oom_score_adj() {
        let spec = create_with(&[
            "--group",
            "wheel",
            "--group",
            "100",
            "--oom-score-adj",
            "-500",
        ])
        .unwrap();
        let cs = &spec.task_template.container_spec;
        assert_eq!(
            (cs.groups.clone(), cs.oom_score_adj),
            (vec!["wheel".to_string(), "100".to_string()], -500)
        );
        let mut spec = spec;
        apply_update(
            &update_args(&[
                "update",
                "--group-add",
                "audio",
                "--group-add",
                "video",
                "--group-rm",
                "wheel",
                "--group-rm",
                "video",
                "--oom-score-adj",
                "300",
                "web",
            ]),
            &mut spec,
        )
        .unwrap();
        let cs = &spec.task_template.container_spec;
        assert_eq!(cs.groups, ["100", "audio"]);
        assert_eq!(cs.oom_score_adj, 300);
        let v = crate::services::task_template_json(&spec.task_template);
        assert_eq!(v["ContainerSpec"]["Groups"], json!(["100", "audio"]));
        assert_eq!(v["ContainerSpec"]["OomScoreAdj"], json!(300));
    }

    /// `--isolation`: what swarm makes `default` is accepted (and shown as `default`);
    /// `process` and `hyperv`, which docker's Linux engine refuses, are refused in its
    /// words. `--no-resolve-image` is accepted on both commands.
    #[test]
    fn isolation_and_no_resolve_image() {
        for ok in ["default", "", "DEFAULT", "foo"] {
            assert!(
                create_with(&["--isolation", ok, "--no-resolve-image"]).is_ok(),
                "{ok}"
            );
        }
        assert_eq!(
            create_with(&["--isolation", "HyperV"])
                .unwrap_err()
                .to_string(),
            "invalid isolation 'HyperV' on linux"
        );
        let mut spec = ServiceSpec::default();
        assert_eq!(
            apply_update(
                &update_args(&["update", "--isolation", "process", "web"]),
                &mut spec
            )
            .unwrap_err()
            .to_string(),
            "invalid isolation 'process' on linux"
        );
        apply_update(
            &update_args(&[
                "update",
                "--no-resolve-image",
                "--isolation",
                "default",
                "web",
            ]),
            &mut spec,
        )
        .unwrap();
        assert_eq!(spec, ServiceSpec::default());
    }

    /// `--network` takes docker's short and long syntax; the long one's aliases are
    /// kept (lower-cased, as docker-cli does); driver options are refused, not dropped.
    #[test]
    fn create_network_flag_takes_the_long_syntax() {
        let nets = |flags: &[&str]| create_with(flags).map(|s| s.task_template.networks);
        let net = |target: &str, aliases: &[&str]| NetworkAttachmentConfig {
            target: target.into(),
            aliases: aliases.iter().map(|a| a.to_string()).collect(),
        };
        assert_eq!(nets(&["--network", "net1"]).unwrap(), [net("net1", &[])]);
        assert_eq!(
            nets(&["--network", "name=net1,alias=Web,alias=api"]).unwrap(),
            [net("net1", &["web", "api"])]
        );
        assert_eq!(
            nets(&["--network", "name=net1,driver-opt=k=v"])
                .unwrap_err()
                .to_string(),
            "invalid argument \"name=net1,driver-opt=k=v\" for \"--network\" flag: driver-opt is not supported: Shoal's overlay takes no per-attachment driver options"
        );
        assert_eq!(
            nets(&["--network", "alias=web"]).unwrap_err().to_string(),
            "invalid argument \"alias=web\" for \"--network\" flag: network name/id is not specified"
        );
    }

    /// docker-cli's updateNetworks: removed by ID, added after (an attachment already
    /// there refused by the name given), sorted by ID.
    #[test]
    fn network_add_and_rm_as_docker_cli_updates_them() {
        let att = |target: &str, aliases: &[&str]| NetworkAttachmentConfig {
            target: target.into(),
            aliases: aliases.iter().map(|a| a.to_string()).collect(),
        };
        let mut spec = ServiceSpec::default();
        spec.task_template.networks = vec![att("id-b", &[]), att("id-c", &["x"])];
        let u = NetworkUpdate {
            remove: ["id-c".to_string(), "id-z".to_string()].into(),
            add: vec![("net-a".into(), att("id-a", &["web"]))],
        };
        update_networks(&mut spec, &u).unwrap();
        assert_eq!(
            spec.task_template.networks,
            [att("id-a", &["web"]), att("id-b", &[])]
        );
        let again = NetworkUpdate {
            remove: BTreeSet::new(),
            add: vec![("net-b".into(), att("id-b", &[]))],
        };
        assert_eq!(
            update_networks(&mut spec, &again).unwrap_err().to_string(),
            "service is already attached to network net-b"
        );
        // Removing and adding the same network in one update re-attaches it.
        let swap = NetworkUpdate {
            remove: ["id-a".to_string()].into(),
            add: vec![("net-a".into(), att("id-a", &["api"]))],
        };
        update_networks(&mut spec, &swap).unwrap();
        assert_eq!(spec.task_template.networks[0], att("id-a", &["api"]));
        let a = update_args(&[
            "update",
            "--network-add",
            "name=n1,alias=a",
            "--network-add",
            "n2",
            "--network-rm",
            "n3",
            "web",
        ]);
        assert_eq!(
            network_adds(&a).unwrap(),
            [att("n1", &["a"]), att("n2", &[])]
        );
        assert_eq!(a.network_rm, ["n3"]);
        assert_eq!(
            network_adds(&update_args(&[
                "update",
                "--network-add",
                "name=n1,foo=1",
                "web"
            ]))
            .unwrap_err()
            .to_string(),
            "invalid argument \"name=n1,foo=1\" for \"--network-add\" flag: invalid field key foo"
        );
    }

    /// `service update --args` splits its value as a shell would (docker's ShlexOpt), so
    /// `sh -c '...'` passes the script as one word; bad quoting is pflag's error.
    #[test]
    fn update_args_are_shell_words() {
        let update = |args: &str| {
            let mut spec = ServiceSpec::default();
            apply_update(&update_args(&["update", "--args", args, "web"]), &mut spec)
                .map(|()| spec.task_template.container_spec.args)
        };
        assert_eq!(
            update("sh -c 'test -f /tmp/x && exec sleep 600'").unwrap(),
            ["sh", "-c", "test -f /tmp/x && exec sleep 600"]
        );
        assert_eq!(
            update("sh -c 'oops").unwrap_err().to_string(),
            "invalid argument \"sh -c 'oops\" for \"--args\" flag: EOF found when expecting closing quote"
        );
    }

    /// The other duration flags parse as Go's time.ParseDuration, as docker's pflag
    /// flags do (`1h2m3.5s`, `300ms`, `1.5h`), and refuse in pflag's words, naming the
    /// flag: `5` has no unit, `1 hour` (humantime's) is not Go's.
    #[test]
    fn duration_flags_parse_like_go() {
        let create = create_with;
        let spec = create(&[
            "--update-delay",
            "1h2m3.5s",
            "--update-monitor",
            "300ms",
            "--rollback-delay",
            "1.5h",
            "--rollback-monitor",
            "0",
            "--restart-delay",
            "1.5s",
            "--restart-window",
            "2m",
            "--stop-grace-period",
            "1m30s",
        ])
        .unwrap();
        let u = spec.update_config.unwrap();
        assert_eq!((u.delay, u.monitor), (3_723_500_000_000, 300_000_000));
        let r = spec.rollback_config.unwrap();
        assert_eq!((r.delay, r.monitor), (5_400 * SECOND_NS, 0));
        let rp = spec.task_template.restart_policy.unwrap();
        assert_eq!(
            (rp.delay, rp.window),
            (Some(1_500_000_000), Some(120 * SECOND_NS))
        );
        assert_eq!(
            spec.task_template.container_spec.stop_grace_period,
            Some(90 * SECOND_NS)
        );
        for (flag, value, why) in [
            (
                "--update-delay",
                "5",
                "time: missing unit in duration \"5\"",
            ),
            (
                "--rollback-monitor",
                "1 hour",
                "time: unknown unit \" hour\" in duration \"1 hour\"",
            ),
            (
                "--restart-window",
                "1d",
                "time: unknown unit \"d\" in duration \"1d\"",
            ),
            (
                "--stop-grace-period",
                "10",
                "time: missing unit in duration \"10\"",
            ),
        ] {
            assert_eq!(
                create(&[flag, value]).unwrap_err().to_string(),
                format!("invalid argument \"{value}\" for \"{flag}\" flag: {why}")
            );
        }

        // A negative value parses, as in docker; the daemon refuses it (swarmkit's words).
        let rp = create(&["--restart-delay=-1s"])
            .unwrap()
            .task_template
            .restart_policy;
        assert_eq!(rp.unwrap().delay, Some(-SECOND_NS));

        let mut spec = ServiceSpec::default();
        let args = ["update", "--restart-delay", "5", "web"];
        assert_eq!(
            apply_update(&update_args(&args), &mut spec)
                .unwrap_err()
                .to_string(),
            "invalid argument \"5\" for \"--restart-delay\" flag: time: missing unit in duration \"5\""
        );
        let args = ["update", "--update-monitor", "2.5m", "web"];
        apply_update(&update_args(&args), &mut spec).unwrap();
        assert_eq!(spec.update_config.unwrap().monitor, 150 * SECOND_NS);
    }

    /// `--health-start-interval` (docker 25+) sets Healthcheck.StartInterval on create
    /// and update, parsed as Go parses durations; a negative or malformed value is
    /// pflag's error, and `--no-healthcheck` with any `--health-*` flag is docker's.
    #[test]
    fn health_start_interval_flag() {
        let create =
            |flags: &[&str]| create_with(flags).map(|s| s.task_template.container_spec.healthcheck);
        let hc = create(&[
            "--health-cmd",
            "true",
            "--health-start-period",
            "30s",
            "--health-start-interval",
            "1.5s",
        ])
        .unwrap()
        .unwrap();
        assert_eq!(
            (hc.start_period, hc.start_interval),
            (30 * SECOND_NS, 1_500_000_000)
        );
        assert_eq!(
            create(&["--health-start-interval=-1s"]).unwrap_err().to_string(),
            "invalid argument \"-1s\" for \"--health-start-interval\" flag: duration cannot be negative"
        );
        assert_eq!(
            create(&["--health-start-interval", "5"]).unwrap_err().to_string(),
            "invalid argument \"5\" for \"--health-start-interval\" flag: time: missing unit in duration \"5\""
        );
        assert_eq!(
            create(&["--no-healthcheck", "--health-start-interval", "1s"])
                .unwrap_err()
                .to_string(),
            "--no-healthcheck conflicts with --health-* options"
        );

        let update = |spec: &mut ServiceSpec, flags: &[&str]| {
            let args = [&["update"], flags, &["web"]].concat();
            apply_update(&update_args(&args), spec)
        };
        let mut spec = ServiceSpec::default();
        spec.task_template.container_spec.healthcheck = Some(shoal_spec::HealthConfig {
            test: vec!["CMD".into(), "true".into()],
            start_period: 30 * SECOND_NS,
            ..Default::default()
        });
        update(&mut spec, &["--health-start-interval", "2s"]).unwrap();
        let hc = spec
            .task_template
            .container_spec
            .healthcheck
            .clone()
            .unwrap();
        assert_eq!(hc.test, ["CMD", "true"]);
        assert_eq!(
            (hc.start_period, hc.start_interval),
            (30 * SECOND_NS, 2 * SECOND_NS)
        );
        assert_eq!(
            serde_json::to_value(&hc).unwrap()["StartInterval"],
            2_000_000_000i64
        );
    }

    fn ports(list: &[&str]) -> Vec<PortConfig> {
        list.iter().flat_map(|p| opts::port(p).unwrap()).collect()
    }

    /// `--publish-rm` with docker's long syntax removes by target, protocol and mode;
    /// the short syntax removes the port published under that number, in either mode.
    #[test]
    fn publish_rm_matches_modes() {
        let all = ports(&[
            "8080:80",
            "mode=host,published=8081,target=80",
            "mode=host,published=5353,target=53,protocol=udp",
        ]);
        let mut p = all.clone();
        remove_ports(&mut p, "mode=host,target=80").unwrap();
        assert_eq!(p, [all[0].clone(), all[2].clone()]);
        let mut p = all.clone();
        remove_ports(&mut p, "target=80").unwrap();
        assert_eq!(p, [all[1].clone(), all[2].clone()], "ingress unless asked");
        let mut p = all.clone();
        remove_ports(&mut p, "mode=host,target=53").unwrap();
        assert_eq!(p, all, "tcp unless asked");
        let mut p = all.clone();
        remove_ports(&mut p, "5353/udp").unwrap();
        assert_eq!(p[..], all[..2]);
        assert_eq!(
            remove_ports(&mut p, "mode=foo,target=80").unwrap_err(),
            "invalid publish mode value (foo): must be either 'ingress' or 'host'"
        );
    }

    /// `--publish-add` of a port without a published port keeps the other such ports
    /// (each task gets its own for each) and adds the same one only once.
    #[test]
    fn publish_add_keeps_other_unpublished_ports() {
        let mut p = ports(&["mode=host,target=80", "8080:81"]);
        add_ports(&mut p, ports(&["mode=host,target=443"]));
        add_ports(&mut p, ports(&["mode=host,target=80"]));
        assert_eq!(
            p,
            ports(&["8080:81", "mode=host,target=443", "mode=host,target=80"])
        );
        add_ports(&mut p, ports(&["mode=host,published=8080,target=82"]));
        assert_eq!(
            p,
            ports(&[
                "mode=host,target=443",
                "mode=host,target=80",
                "mode=host,published=8080,target=82"
            ]),
            "a published port replaces the one of its number"
        );
    }

    /// `service ls` shows ingress ports only (docker's formatter); `--pretty` shows all.
    #[test]
    fn host_ports_in_ls_and_pretty() {
        let spec = ServiceSpec {
            name: "web".into(),
            endpoint_spec: Some(EndpointSpec {
                ports: ports(&["8080:80", "mode=host,published=8081,target=80"]),
                ..Default::default()
            }),
            ..Default::default()
        };
        let v = json!({
            "ID": "x",
            "Spec": serde_json::to_value(&spec).unwrap(),
            "Endpoint": {"Ports": serde_json::to_value(&spec.endpoint_spec.as_ref().unwrap().ports).unwrap()},
        });
        assert_eq!(ports_column(&v), "*:8080->80/tcp");
        let pretty = pretty_service(&v, &BTreeMap::new());
        assert!(
            pretty.ends_with(
                "Ports:\n PublishedPort = 8080\n  Protocol = tcp\n  TargetPort = 80\n  PublishMode = ingress\n PublishedPort = 8081\n  Protocol = tcp\n  TargetPort = 80\n  PublishMode = host \n\n"
            ),
            "{pretty}"
        );
        assert_eq!(spec.host_mode_ports()[0].protocol, Protocol::Tcp);
        assert_eq!(spec.host_mode_ports()[0].publish_mode, PublishMode::Host);
    }

    /// `service inspect --pretty` of a `service create`d service, as docker prints it:
    /// the update and rollback configs, resources, networks by name, the endpoint mode,
    /// Args with docker's trailing space, and a Placement line even without constraints.
    #[test]
    fn pretty_service_is_docker_s_layout() {
        let mut spec = ServiceSpec {
            name: "web".into(),
            mode: ServiceMode::replicated(2),
            ..Default::default()
        };
        spec.task_template.container_spec.image = "busybox".into();
        spec.task_template.container_spec.args = vec!["sleep".into(), "600".into()];
        spec.task_template.container_spec.mounts = vec![shoal_spec::Mount {
            kind: "volume".into(),
            source: "data".into(),
            target: "/data".into(),
            read_only: false,
        }];
        spec.task_template.container_spec.secrets = vec![shoal_spec::SecretReference {
            file: Some(shoal_spec::FileTarget::new("pw")),
            secret_id: "sid".into(),
            secret_name: "db_pass".into(),
        }];
        spec.task_template.container_spec.configs = vec![shoal_spec::ConfigReference {
            file: Some(shoal_spec::FileTarget::new("/app.conf")),
            config_id: "cid".into(),
            config_name: "app".into(),
        }];
        spec.task_template.networks = vec![shoal_spec::NetworkAttachmentConfig {
            target: "netid".into(),
            ..Default::default()
        }];
        let v = json!({"ID": "9i8vhxqhl820v28ozalp1n0a6", "Spec": crate::services::spec_with_defaults(&spec), "Endpoint": {}});
        let names = BTreeMap::from([("netid".to_string(), "webapp_default".to_string())]);
        assert_eq!(
            pretty_service(&v, &names),
            "\nID:\t\t9i8vhxqhl820v28ozalp1n0a6\nName:\t\tweb\n\
             Service Mode:\tReplicated\n Replicas:\t2\n\
             Placement:\n\
             UpdateConfig:\n Parallelism:\t1\n On failure:\tpause\n Monitoring Period: 5s\n Max failure ratio: 0\n Update order:      stop-first\n\
             RollbackConfig:\n Parallelism:\t1\n On failure:\tpause\n Monitoring Period: 5s\n Max failure ratio: 0\n Rollback order:    stop-first\n\
             ContainerSpec:\n Image:\t\tbusybox\n Args:\t\tsleep 600 \n Init:\t\tfalse\n\
             Mounts:\n Target:\t/data\n  Source:\tdata\n  ReadOnly:\tfalse\n  Type:\t\tvolume\n\
             Configs:\n Target:\t/app.conf\n  Source:\tapp\n\
             Secrets:\n Target:\tpw\n  Source:\tdb_pass\n\
             Resources:\n\
             Networks: webapp_default \n\
             Endpoint Mode:\tvip\n\n"
        );
    }

    /// `service create --host/--dns*/--sysctl/--ulimit/--cap-*/--read-only/-t` make docker's
    /// ContainerSpec fields, in docker's JSON names; bad values are pflag's errors.
    #[test]
    fn container_options_on_create() {
        let spec = create_with(&[
            "--host",
            "db:10.1.2.3",
            "--host",
            "v6=[::1]",
            "--dns",
            "10.0.9.9",
            "--dns-search",
            "corp.example.",
            "--dns-option",
            "timeout:2",
            "--sysctl",
            "net.core.somaxconn=1024",
            "--ulimit",
            "nofile=1024:2048",
            "--ulimit",
            "nproc=512",
            "--cap-add",
            "net_admin",
            "--cap-drop",
            "CAP_NET_RAW",
            "--read-only",
            "-t",
        ])
        .unwrap();
        let cs = &spec.task_template.container_spec;
        let json = serde_json::to_value(cs).unwrap();
        assert_eq!(json["Hosts"], serde_json::json!(["10.1.2.3 db", "::1 v6"]));
        assert_eq!(
            json["DNSConfig"],
            serde_json::json!({"Nameservers": ["10.0.9.9"], "Search": ["corp.example"], "Options": ["timeout:2"]})
        );
        assert_eq!(
            json["Sysctls"],
            serde_json::json!({"net.core.somaxconn": "1024"})
        );
        assert_eq!(
            json["Ulimits"],
            serde_json::json!([{"Name": "nofile", "Hard": 2048, "Soft": 1024}, {"Name": "nproc", "Hard": 512, "Soft": 512}])
        );
        assert_eq!(json["CapabilityAdd"], serde_json::json!(["CAP_NET_ADMIN"]));
        assert_eq!(json["CapabilityDrop"], serde_json::json!(["CAP_NET_RAW"]));
        assert_eq!(
            (json["ReadOnly"].clone(), json["TTY"].clone()),
            (true.into(), true.into())
        );
        let err = |flags: &[&str]| create_with(flags).unwrap_err().to_string();
        assert_eq!(
            err(&["--host", "nohost"]),
            "invalid argument \"nohost\" for \"--host\" flag: bad format for add-host: \"nohost\""
        );
        assert_eq!(
            err(&["--host", "db:1.2.3"]),
            "invalid argument \"db:1.2.3\" for \"--host\" flag: invalid IP address in add-host: \"1.2.3\""
        );
        assert_eq!(
            err(&["--dns", "x"]),
            "invalid argument \"x\" for \"--dns\" flag: IP address is not correctly formatted: x"
        );
        assert_eq!(
            err(&["--dns-search", "bad_domain"]),
            "invalid argument \"bad_domain\" for \"--dns-search\" flag: bad_domain is not a valid domain"
        );
        assert_eq!(
            err(&["--ulimit", "nofile=3:2"]),
            "invalid argument \"nofile=3:2\" for \"--ulimit\" flag: ulimit soft limit must be less than or equal to hard limit: 3 > 2"
        );
        assert_eq!(
            err(&["--ulimit", "foo=1"]),
            "invalid argument \"foo=1\" for \"--ulimit\" flag: invalid ulimit type: foo"
        );
        assert_eq!(
            err(&["--ulimit", "nofile=x"]),
            "invalid argument \"nofile=x\" for \"--ulimit\" flag: strconv.ParseInt: parsing \"x\": invalid syntax"
        );
        // Without any, the CLI's empty DNSConfig is the daemon's to show.
        let plain = create_with(&[]).unwrap();
        assert_eq!(plain.task_template.container_spec.dns_config, None);
    }

    /// `service update`'s -add/-rm flags change the lists as docker's update.go does.
    #[test]
    fn container_options_on_update() {
        let mut spec = create_with(&[
            "--host",
            "a:10.0.0.1",
            "--host",
            "b:10.0.0.2",
            "--dns",
            "10.0.9.9",
            "--sysctl",
            "net.a=1",
            "--ulimit",
            "nofile=10",
            "--cap-add",
            "NET_ADMIN",
        ])
        .unwrap();
        apply_update(
            &update_args(&[
                "update",
                "--host-rm",
                "a",
                "--host-add",
                "c:10.0.0.3",
                "--dns-add",
                "10.0.0.53",
                "--dns-rm",
                "10.0.9.9",
                "--dns-search-add",
                "x.example",
                "--dns-option-add",
                "ndots:2",
                "--sysctl-rm",
                "net.a",
                "--sysctl-add",
                "net.b=2",
                "--ulimit-rm",
                "nofile",
                "--ulimit-add",
                "nproc=5:6",
                "--cap-drop",
                "NET_ADMIN",
                "--cap-drop",
                "kill",
                "--read-only",
                "web",
            ]),
            &mut spec,
        )
        .unwrap();
        let cs = &spec.task_template.container_spec;
        assert_eq!(cs.hosts, ["10.0.0.2 b", "10.0.0.3 c"]);
        let dns = cs.dns_config.clone().unwrap();
        assert_eq!(dns.nameservers, ["10.0.0.53"]);
        assert_eq!(dns.search, ["x.example"]);
        assert_eq!(dns.options, ["ndots:2"]);
        assert_eq!(cs.sysctls, BTreeMap::from([("net.b".into(), "2".into())]));
        assert_eq!(
            cs.ulimits,
            [shoal_spec::Ulimit {
                name: "nproc".into(),
                soft: 5,
                hard: 6
            }]
        );
        // Dropping what was added only stops adding it.
        assert!(cs.capability_add.is_empty());
        assert_eq!(cs.capability_drop, ["CAP_KILL"]);
        assert!(cs.read_only);
        apply_update(
            &update_args(&[
                "update",
                "--read-only=false",
                "--host-rm",
                "c:10.9.9.9",
                "web",
            ]),
            &mut spec,
        )
        .unwrap();
        let cs = &spec.task_template.container_spec;
        assert!(!cs.read_only);
        assert_eq!(
            cs.hosts,
            ["10.0.0.2 b", "10.0.0.3 c"],
            "another address: kept"
        );
    }

    /// `--pretty` shows capabilities, sysctls and ulimits where docker's template does.
    #[test]
    fn pretty_shows_capabilities_sysctls_and_ulimits() {
        let spec = create_with(&[
            "--cap-add",
            "NET_ADMIN",
            "--cap-drop",
            "NET_RAW",
            "--sysctl",
            "net.b=2",
            "--sysctl",
            "net.a",
            "--ulimit",
            "nofile=1:2",
        ])
        .unwrap();
        let v = serde_json::json!({
            "ID": "x",
            "Spec": crate::services::spec_with_defaults(&spec),
        });
        let pretty = pretty_service(&v, &BTreeMap::new());
        assert!(
            pretty.contains(
                "\nCapabilities:\n Add: CAP_NET_ADMIN\n Drop: CAP_NET_RAW\nSysCtls:\n net.a\n net.b: 2\nUlimits:\n nofile: 1:2\n"
            ),
            "{pretty}"
        );
    }
}
