//! The agent's task side: runs the tasks the leader assigns to this node with the executor,
//! stops the ones it is told to stop, watches them, and reports every state change.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use shoal_executor::{BindMount, Executor, TaskRun, TaskStatus};
use shoal_spec::{ContainerSpec, TaskState, SECOND_NS};

use shoal_dataplane::dns;
use shoal_dataplane::lb::{LoadBalancer, ServiceSpec};
use shoal_dataplane::net::{
    self as overlay, Extras, LocalEndpoint, NodeOverlay, OverlaySpec, PortHook, RemoteEndpoint,
};

use super::probe::ProbeSchedule;
use super::{lock, Daemon};
use crate::peer::{LbView, NetView, PeerClient, PeerRequest, PeerResponse};
use crate::services::{TaskRecord, TaskReport, TaskStatusRec};

const POLL: Duration = Duration::from_millis(200);
/// How soon to ask again a leader that is still applying its predecessor's entries.
const LEADER_CATCH_UP_RETRY: Duration = Duration::from_millis(20);
const DEFAULT_GRACE: Duration = Duration::from_secs(10);

/// What the agent knows of a task it runs.
struct Local {
    record: TaskRecord,
    /// Last state reported (to report each change once).
    reported: TaskState,
    health: Option<String>,
    /// The task's process, as reported when it started (health reports carry it too).
    pid: Option<i32>,
    failing_streak: u64,
    /// When its healthcheck probes next (set on the first look at a task that has one).
    probes: Option<ProbeSchedule>,
    started: Instant,
    stopping: bool,
}

pub(crate) async fn run(daemon: Arc<Daemon>) {
    let executor = match Executor::new(daemon.root.path("tasks")) {
        Ok(e) => Arc::new(e),
        Err(e) => {
            tracing::error!(error = %e, "task executor unavailable");
            return;
        }
    };
    let mut local: HashMap<String, Local> = HashMap::new();
    let mut prepared: HashSet<String> = HashSet::new();
    let mut held = Held::default();
    let mut net = NodeNet::new(&daemon);
    let mut dns = TaskDns::new();
    let mut since = 0u64;
    let mut client: Option<PeerClient> = None;
    loop {
        let leader = lock(&daemon.leader_hint).clone();
        let Some(leader) = leader else {
            tokio::time::sleep(POLL).await;
            watch(&daemon, &executor, &mut local, &mut client).await;
            continue;
        };
        if client.as_ref().map(|c| c.addr()) != Some(leader.as_str()) {
            client = Some(PeerClient::new(leader.clone(), daemon.tls.clone()));
            since = 0;
        }
        let Some(c) = client.as_mut() else { continue };
        match c
            .call(&PeerRequest::Assignments { since }, Duration::from_secs(5))
            .await
        {
            Ok(PeerResponse::Assignments {
                index,
                tasks,
                networks,
                lb,
                managers,
                finished,
                files,
            }) => {
                since = index;
                daemon
                    .known_managers
                    .send_replace(Some(managers.into_iter().collect()));
                let assigned: HashSet<String> = tasks.iter().map(|t| t.id.clone()).collect();
                prepared.retain(|id| assigned.contains(id));
                apply_assignments(&daemon, &executor, &mut local, &mut prepared, tasks, &files)
                    .await;
                let finished: HashSet<String> = finished.unwrap_or_default().into_iter().collect();
                held.clean(&daemon, &executor, &mut local, &assigned, &finished)
                    .await;
                net.program(&daemon, &local, &networks, &lb).await;
                dns.update(&daemon, &local, &networks, &lb).await;
            }
            Ok(PeerResponse::NotLeader { leader: hint }) => {
                // A leader still applying its predecessor's last entries names itself:
                // ask again shortly rather than at once.
                if hint.as_deref() == Some(leader.as_str()) {
                    tokio::time::sleep(LEADER_CATCH_UP_RETRY).await;
                }
                *lock(&daemon.leader_hint) = hint;
                since = 0;
            }
            Ok(other) => {
                tracing::debug!(?other, "assignments refused");
                tokio::time::sleep(POLL).await;
            }
            Err(e) => {
                tracing::debug!(error = %e, "assignments");
                client = None;
                tokio::time::sleep(POLL).await;
            }
        }
        watch(&daemon, &executor, &mut local, &mut client).await;
    }
}

/// The command line of a task, or the error it fails with (a spec stored before
/// `validate` refused empty commands can still carry one: it must fail the task, not
/// panic the worker loop, which would then panic again on every restart).
fn task_argv(cs: &ContainerSpec) -> Result<Vec<String>, String> {
    let argv = cs.argv();
    match argv.first() {
        None => Err(format!(
            "no command specified: this executor runs host commands, so a service of image {} needs a command (compose: entrypoint/command)",
            cs.image
        )),
        Some(program) if program.is_empty() => {
            Err("no command specified: the program name is empty".into())
        }
        Some(_) => Ok(argv),
    }
}

fn task_run(
    daemon: &Daemon,
    t: &TaskRecord,
    files: &crate::peer::TaskFiles,
) -> Result<TaskRun, String> {
    let cs = &t.spec.container_spec;
    let mut argv = task_argv(cs)?;
    if let Some(found) = resolve_program(&argv[0], &cs.env) {
        argv[0] = found;
    }
    let mut env = cs.env.clone();
    env.push(format!("SHOAL_TASK_NAME={}", t.name()));
    env.push(format!("SHOAL_TASK_ID={}", t.id));
    env.push(format!("SHOAL_SERVICE_NAME={}", t.service_name));
    env.push(format!("SHOAL_NODE_HOSTNAME={}", daemon.cfg.hostname));
    let mut mounts = Vec::new();
    for m in &cs.mounts {
        let source = match m.kind.as_str() {
            "volume" => {
                let name = if m.source.is_empty() {
                    t.id.clone()
                } else if shoal_spec::Mount::is_volume_name(&m.source) {
                    m.source.clone()
                } else {
                    // A spec stored before `validate` checked names: never a path.
                    return Err(super::services_api::volume_name_error(&m.source));
                };
                let dir = daemon.root.path("volumes").join(&name).join("_data");
                std::fs::create_dir_all(&dir)
                    .map_err(|e| format!("creating volume {name}: {e}"))?;
                dir
            }
            _ => PathBuf::from(&m.source),
        };
        mounts.push(BindMount {
            source,
            target: PathBuf::from(&m.target),
            read_only: m.read_only,
        });
    }
    let hostname = t.hostname();
    let dns_set = cs
        .dns_config
        .as_ref()
        .is_some_and(|d| *d != shoal_spec::DnsConfig::default());
    if !t.networks.is_empty() || !cs.hosts.is_empty() || dns_set {
        // A task on networks gets its own /etc/hosts and /etc/resolv.conf (the embedded
        // DNS at 127.0.0.11), as a container does; so does one given hosts or DNS
        // settings.
        let dir = task_etc_dir(daemon, &t.id);
        std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        let ip = t
            .networks
            .first()
            .map(|n| n.addr.split('/').next().unwrap_or(""));
        let hosts = task_hosts(&cs.hosts, ip.map(|ip| (ip, hostname.as_str())));
        let resolv = task_resolv_conf(cs.dns_config.as_ref(), !t.networks.is_empty());
        for (name, content) in [("hosts", hosts.as_str()), ("resolv.conf", resolv.as_str())] {
            let path = dir.join(name);
            std::fs::write(&path, content)
                .map_err(|e| format!("writing {}: {e}", path.display()))?;
            mounts.push(BindMount {
                source: path,
                target: PathBuf::from("/etc").join(name),
                read_only: false,
            });
        }
    }
    // Its secrets and configs, on a tmpfs of its own.
    mounts.extend(super::task_files::prepare(
        &task_files_dir(daemon, &t.id),
        cs,
        files,
    )?);
    let limits = t
        .spec
        .resources
        .as_ref()
        .and_then(|r| r.limits.clone())
        .unwrap_or_default();
    let nonzero = |v: i64| (v > 0).then_some(v);
    Ok(TaskRun {
        task_id: t.id.clone(),
        name: t.container_name(),
        argv,
        env,
        hostname,
        workdir: (!cs.dir.is_empty()).then(|| cs.dir.clone()),
        user: cs.user.clone(),
        groups: cs.groups.clone(),
        oom_score_adj: cs.oom_score_adj,
        stop_signal: cs.stop_signal.clone(),
        init: cs.init == Some(true),
        mounts,
        read_only: cs.read_only,
        sysctls: cs.sysctls.clone(),
        rlimits: cs
            .ulimits
            .iter()
            .map(|u| shoal_executor::Rlimit {
                name: u.name.clone(),
                soft: u.soft,
                hard: u.hard,
            })
            .collect(),
        // What docker's engine gives a container: its default set (without cap_add or
        // cap_drop), less the dropped plus the added; for the task, its execs and probes.
        capabilities: Some(shoal_executor::effective_capabilities(
            &cs.capability_add,
            &cs.capability_drop,
        )),
        memory_bytes: nonzero(limits.memory_bytes),
        nano_cpus: nonzero(limits.nano_cpus),
        pids_limit: nonzero(limits.pids),
        netns: if t.networks.is_empty() {
            None
        } else {
            let path = task_netns_path(daemon, &t.id);
            overlay::task_netns_create(&path)
                .map_err(|e| format!("creating the task's network namespace: {e}"))?;
            Some(path)
        },
    })
}

/// A task's /etc/hosts as docker writes a container's: localhost, the service's extra
/// hosts (swarmkit's `IP hostname [aliases...]`; docker uses the first name of each, so
/// do we), then the task's own address and hostname when it has a network.
fn task_hosts(extra: &[String], own: Option<(&str, &str)>) -> String {
    let mut hosts =
        String::from("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n");
    for entry in extra {
        let mut fields = entry.split_whitespace();
        match (fields.next(), fields.next()) {
            // docker's engine resolves it to its bridge's gateway; Shoal has none.
            (Some("host-gateway"), _) => {}
            (Some(ip), Some(name)) => hosts.push_str(&format!("{ip}\t{name}\n")),
            _ => {}
        }
    }
    if let Some((ip, hostname)) = own {
        hosts.push_str(&format!("{ip}\t{hostname}\n"));
    }
    hosts
}

/// A task's /etc/resolv.conf. On networks the embedded DNS (127.0.0.11) stays its only
/// nameserver, as in docker: it answers the cluster's names and forwards the rest to
/// the service's `--dns` servers (or the node's); the service's search domains and
/// options are written as given, with `ndots:0` unless an option sets ndots. Without
/// networks, the given servers themselves.
fn task_resolv_conf(dns: Option<&shoal_spec::DnsConfig>, on_networks: bool) -> String {
    let empty = shoal_spec::DnsConfig::default();
    let dns = dns.unwrap_or(&empty);
    if !on_networks {
        return dns::resolv_conf(&dns.nameservers, &dns.search, &dns.options);
    }
    let mut options = dns.options.clone();
    if !options.iter().any(|o| o.starts_with("ndots:")) {
        options.push("ndots:0".into());
    }
    dns::task_resolv_conf(&dns.search, &options)
}

/// Find a bare program name on the task's PATH, else the daemon's PATH, else next to
/// shoald (where programs shipped with Shoal, like shoal-whoami, live).
fn resolve_program(name: &str, env: &[String]) -> Option<String> {
    if name.contains('/') {
        return None;
    }
    let task_path = env
        .iter()
        .find_map(|e| e.strip_prefix("PATH="))
        .map(str::to_string);
    let mut dirs: Vec<PathBuf> = Vec::new();
    for p in [task_path, std::env::var("PATH").ok()]
        .into_iter()
        .flatten()
    {
        dirs.extend(std::env::split_paths(&p));
    }
    if let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(PathBuf::from))
    {
        dirs.push(dir);
    }
    dirs.into_iter()
        .map(|d| d.join(name))
        .find(|p| {
            use std::os::unix::fs::PermissionsExt;
            p.metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
        .map(|p| p.display().to_string())
}

/// Where a task's network namespace is bound, when it has networks (apart from the
/// networks' own namespaces, which the overlay lists from its directory).
fn task_netns_path(daemon: &Daemon, task_id: &str) -> PathBuf {
    daemon.root.path("task-netns").join(task_id)
}

/// The embedded DNS: one resolver at 127.0.0.11 in each local task's network namespace,
/// answering the names of the services on that task's networks.
struct TaskDns {
    resolvers: HashMap<String, (dns::Resolver, tokio::sync::watch::Sender<Arc<dns::DnsView>>)>,
    upstreams: dns::Upstreams,
}

impl TaskDns {
    fn new() -> TaskDns {
        TaskDns {
            resolvers: HashMap::new(),
            upstreams: dns::Upstreams::resolv_conf(dns::HOST_RESOLV_CONF),
        }
    }

    async fn update(
        &mut self,
        daemon: &Daemon,
        local: &HashMap<String, Local>,
        views: &[NetView],
        lb: &LbView,
    ) {
        let names = TaskNames::new(local, views, lb);
        let wanted: Vec<(&String, &Local)> = local
            .iter()
            .filter(|(_, l)| {
                !l.stopping && !l.reported.is_terminal() && !l.record.networks.is_empty()
            })
            .collect();
        self.resolvers
            .retain(|id, _| wanted.iter().any(|(w, _)| *w == id));
        for (id, l) in wanted {
            let view = Arc::new(task_view(l, views, &names, daemon.cfg.dns_ttl));
            if let Some((_, tx)) = self.resolvers.get(id) {
                if **tx.borrow() != *view {
                    tx.send_replace(view);
                }
                continue;
            }
            let (tx, rx) = tokio::sync::watch::channel(view);
            let upstreams = task_upstreams(&l.record.spec.container_spec)
                .unwrap_or_else(|| self.upstreams.clone());
            match dns::Resolver::start(&task_netns_path(daemon, id), rx, upstreams).await {
                Ok(r) => {
                    self.resolvers.insert(id.clone(), (r, tx));
                }
                Err(e) => {
                    tracing::warn!(task = %id, error = %e, "starting the task's DNS resolver")
                }
            }
        }
    }
}

/// Where a task's resolver forwards names outside the cluster: the service's `--dns`
/// servers (port 53) when it names any, as docker's embedded DNS does; else None, the
/// node's resolvers.
fn task_upstreams(cs: &ContainerSpec) -> Option<dns::Upstreams> {
    let servers: Vec<std::net::SocketAddr> = cs
        .dns_config
        .iter()
        .flat_map(|d| &d.nameservers)
        .filter_map(|ns| ns.parse::<std::net::IpAddr>().ok())
        .map(|ip| std::net::SocketAddr::new(ip, 53))
        .collect();
    (!servers.is_empty()).then(|| servers.into())
}

/// Task id -> container name (`<service>.<slot>.<task id>`) and hostname, for
/// the names the embedded DNS gives tasks: the node's own tasks from their
/// records, the others from their endpoints (which every live task on the
/// node's networks has, whatever its service's endpoint mode and ports). A
/// leader that predates endpoint names sends none: then the load balancer's
/// view names the remote tasks it has (running tasks of services with a VIP or
/// a published port), without their hostnames.
struct TaskNames(HashMap<String, (String, String)>);

impl TaskNames {
    fn new(local: &HashMap<String, Local>, views: &[NetView], lb: &LbView) -> TaskNames {
        let backends = lb
            .services
            .iter()
            .flat_map(|s| &s.backends)
            .map(|b| (&b.task_id, &b.name, ""));
        let endpoints = views
            .iter()
            .flat_map(|v| &v.endpoints)
            .map(|e| (&e.task_id, &e.name, e.hostname.as_str()));
        let mut names: HashMap<String, (String, String)> = HashMap::new();
        for (id, name, hostname) in backends.chain(endpoints) {
            if !name.is_empty() {
                let entry = names.entry(id.clone()).or_default();
                entry.0 = format!("{name}.{id}");
                if !hostname.is_empty() {
                    entry.1 = hostname.to_string();
                }
            }
        }
        for (id, l) in local {
            names.insert(id.clone(), (l.record.container_name(), l.record.hostname()));
        }
        TaskNames(names)
    }
}

/// Adds `addr` to what `name` answers, once.
fn add_name(
    names: &mut HashMap<String, Vec<std::net::Ipv4Addr>>,
    name: &str,
    addr: std::net::Ipv4Addr,
) {
    let addrs = names.entry(name.to_ascii_lowercase()).or_default();
    if !addrs.contains(&addr) {
        addrs.push(addr);
    }
}

/// The names a task can resolve: the services on the networks it is on, the
/// tasks on those networks, and the addresses on those networks (see
/// [`dns::DnsView::ptr`]). A task is named as docker names a swarm task's
/// container while its service binding is active (running, healthy, not asked
/// to stop): by its container name, which a reverse lookup of its address
/// gives (with the network), by its short ID and by its hostname.
///
/// A name known on several of the task's networks answers as docker's resolver
/// does (libnetwork's `Sandbox.ResolveName`): from the first network that knows
/// it, alone, in the order of [`docker_network_order`], so a client connects to
/// an address it can reach by the route it was given, never to the VIPs of every
/// shared network in turn.
fn task_view(l: &Local, views: &[NetView], names: &TaskNames, ttl: u32) -> dns::DnsView {
    let mut view = dns::DnsView {
        ttl,
        ..Default::default()
    };
    let ip = |cidr: &str| cidr.split('/').next().and_then(|s| s.parse().ok());
    let mut mine: Vec<&NetView> = views
        .iter()
        .filter(|v| {
            l.record
                .networks
                .iter()
                .any(|a| a.network_id == v.network.id)
        })
        .collect();
    mine.sort_by(|a, b| docker_network_order(&a.network).cmp(&docker_network_order(&b.network)));
    for v in mine {
        if let Some((net, len)) = v.network.subnet.split_once('/') {
            if let (Ok(net), Ok(len)) = (net.parse(), len.parse()) {
                view.subnets.push((net, len));
            }
        }
        let network = &v.network.name;
        // Every name this network knows, also those with no address now (a dnsrr
        // service or `tasks.` name without running tasks).
        let mut on_network: HashMap<String, Vec<std::net::Ipv4Addr>> = HashMap::new();
        // The ingress network carries the routing mesh, not service discovery:
        // its addresses are NXDOMAIN, never named.
        if !v.network.ingress {
            // A task is named once it runs (and is healthy), and no longer once
            // it is asked to stop (docker disables its service binding first),
            // though its endpoint stays until it has stopped.
            for e in v.endpoints.iter().filter(|e| e.in_dns()) {
                let (Some(addr), Some((name, hostname))) = (ip(&e.addr), names.0.get(&e.task_id))
                else {
                    continue;
                };
                view.ptr.insert(addr, format!("{name}.{network}"));
                let short_id = e.task_id.get(..12).unwrap_or(&e.task_id);
                for n in [name.as_str(), short_id, hostname.as_str()] {
                    if !n.is_empty() {
                        add_name(&mut on_network, n, addr);
                    }
                }
            }
            for s in &v.services {
                if let (Some(vip), Some(name)) = (s.vip.as_deref().and_then(ip), s.names.first()) {
                    view.ptr.entry(vip).or_insert(format!("{name}.{network}"));
                }
            }
        }
        for s in &v.services {
            let tasks: Vec<std::net::Ipv4Addr> = s.task_ips.iter().filter_map(|a| ip(a)).collect();
            for name in &s.names {
                let name = name.to_ascii_lowercase();
                let t = format!("tasks.{name}");
                match s.vip.as_deref().and_then(ip) {
                    Some(vip) => add_name(&mut on_network, &name, vip),
                    None => {
                        on_network.entry(name.clone()).or_default();
                        for &task in &tasks {
                            add_name(&mut on_network, &name, task);
                        }
                        view.shuffle.insert(name.clone());
                    }
                }
                on_network.entry(t.clone()).or_default();
                for &task in &tasks {
                    add_name(&mut on_network, &t, task);
                }
                view.shuffle.insert(t);
            }
        }
        for (name, addrs) in &on_network {
            view.names
                .entry(name.clone())
                .or_insert_with(|| addrs.clone());
        }
        on_network.retain(|_, addrs| !addrs.is_empty());
        view.networks.insert(network.clone(), on_network);
    }
    view
}

/// The order in which docker's resolver asks a swarm task's networks for a name
/// (libnetwork's `Endpoint.Less`, then `ByNetworkType`): overlay networks before
/// the ingress network, those with a way out before internal ones, then by name.
fn docker_network_order(n: &crate::networks::NetworkRecord) -> (bool, bool, &str) {
    (n.ingress, n.internal, n.name.as_str())
}

/// A task's own /etc files (hosts, resolv.conf).
fn task_etc_dir(daemon: &Daemon, task_id: &str) -> PathBuf {
    daemon.root.path("task-etc").join(task_id)
}

/// A task's secrets and configs (a tmpfs mounted there while it has any).
fn task_files_dir(daemon: &Daemon, task_id: &str) -> PathBuf {
    daemon.root.path("task-files").join(task_id)
}

/// This node's own swarm ports ([`crate::services::node_swarm_ports`]) as its load
/// balancer's filter takes them, each `(udp, port)`: the data path port as the leader
/// sends it (with the load balancer's view, else with a network's).
fn own_ports(lb: &LbView, views: &[NetView], listen_port: Option<u16>) -> Vec<(bool, u16)> {
    let data_path = lb
        .data_path_port
        .or_else(|| views.first().map(|v| v.vxlan_port))
        .unwrap_or(crate::services::DEFAULT_DATA_PATH_PORT);
    crate::services::node_swarm_ports(listen_port, data_path)
        .into_iter()
        .map(|(port, protocol, _)| (protocol == shoal_spec::Protocol::Udp, port))
        .collect()
}

/// This node's overlay data plane, programmed from what the leader sends. The netlink work
/// runs on its own thread (rtnetlink's futures are not `Send`), in the order it was asked.
struct NodeNet {
    jobs: Option<std::sync::mpsc::Sender<NetJob>>,
    /// The data plane's view of which nodes answer, and the last inputs of the
    /// load balancer (so a liveness change can recompute it alone).
    liveness: Arc<std::sync::Mutex<super::lb::Liveness>>,
    lb_inputs: Arc<std::sync::Mutex<(LbView, Vec<NetView>)>>,
    probes: Option<tokio::task::JoinHandle<()>>,
    /// The sockets that keep the ports the load balancer serves here from the
    /// node's own connections.
    ports: super::port_hold::PortHolder,
    /// Keeps the node's own ports out of the load balancer.
    own_ports: super::lb::OwnPorts,
}

impl Drop for NodeNet {
    fn drop(&mut self) {
        if let Some(p) = self.probes.take() {
            p.abort();
        }
        // The worker stops (`swarm leave`, the daemon's end): no port stays held.
        self.ports.release_all();
    }
}

enum NetJob {
    Apply {
        name: String,
        port: u16,
        spec: OverlaySpec,
        /// The ingress network (mesh flows cross it).
        ingress: bool,
        locals: Vec<LocalEndpoint>,
        remotes: Vec<RemoteEndpoint>,
        extras: Extras,
    },
    /// Remove every network not in this list.
    Keep(Vec<String>),
    /// What the load balancer serves.
    Lb(Vec<ServiceSpec>),
}

/// The node's load balancer, shared by the overlay thread and its port hook.
type SharedLb = Arc<std::sync::Mutex<LoadBalancer>>;

/// How often expired conntrack entries are swept.
const LB_SWEEP: Duration = Duration::from_secs(2);

fn load_lb(daemon: &Daemon, ifname: &str, addr: std::net::Ipv4Addr) -> Option<SharedLb> {
    let settings = shoal_dataplane::lb::Settings {
        pin_dir: shoal_dataplane::lb::pin_dir(&daemon.cfg.data_root),
        maglev_size: daemon.cfg.lb.maglev_size,
        seed: super::lb::MAGLEV_SEED,
        timeouts: daemon.cfg.lb.timeouts,
        snat: daemon.cfg.lb.snat,
        overlay: daemon.cfg.lb.overlay_fastpath,
        dsr: daemon.cfg.lb.dsr,
    };
    let loaded = LoadBalancer::load(settings).and_then(|mut lb| {
        lb.attach_node(ifname, addr)?;
        Ok(lb)
    });
    match loaded {
        Ok(lb) => Some(Arc::new(std::sync::Mutex::new(lb))),
        Err(e) => {
            tracing::error!(error = %e, "load balancer unavailable: no routing mesh, no VIPs");
            None
        }
    }
}

impl NodeNet {
    fn new(daemon: &Daemon) -> NodeNet {
        let overlay = daemon.membership().and_then(|m| {
            let ip: std::net::Ipv4Addr = m.addr.parse().ok()?;
            let ifname = interface_of(ip)?;
            let mut o = NodeOverlay::new(ip, &ifname);
            o.netns_dir = daemon.root.path("netns");
            Some(o)
        });
        let liveness = Arc::new(std::sync::Mutex::new(super::lb::Liveness::default()));
        let lb_inputs = Arc::new(std::sync::Mutex::new((LbView::default(), Vec::new())));
        let Some(mut o) = overlay else {
            tracing::warn!(
                "no underlay interface carries this node's address: overlay networks are off"
            );
            daemon.lb_status.unavailable();
            return NodeNet {
                jobs: None,
                liveness,
                lb_inputs,
                probes: None,
                ports: Default::default(),
                own_ports: Default::default(),
            };
        };
        let o_addr = o.underlay_ip;
        // Loading creates the maps (hundreds of ms on a busy host): not on a runtime worker.
        let lb = tokio::task::block_in_place(|| load_lb(daemon, &o.underlay_ifname, o.underlay_ip));
        if lb.is_none() {
            daemon.lb_status.unavailable();
        }
        if let Some(lb) = &lb {
            daemon.lb_status.attach(lb.clone(), lb_inputs.clone());
            o.uplinks = lock(lb).overlay_enabled();
            let lb = lb.clone();
            o.port_hook = Some(PortHook(Arc::new(move |netns, port| {
                lock(&lb)
                    .attach_task_port(netns, port)
                    .map_err(|e| e.to_string())
            })));
        }
        let (tx, rx) = std::sync::mpsc::channel::<NetJob>();
        let spawned = std::thread::Builder::new()
            .name("shoal-overlay".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        tracing::error!(error = %e, "overlay runtime");
                        return;
                    }
                };
                let mut o = o;
                let mut lb_port_ready = false;
                let mut swept = Instant::now();
                loop {
                    // On a clock, not when jobs pause: the agent sends jobs
                    // at every assignment poll (twice a second).
                    match rx.recv_timeout(LB_SWEEP.saturating_sub(swept.elapsed())) {
                        Ok(job) => {
                            if let NetJob::Apply { port, .. } = &job {
                                o.vxlan_port = *port;
                            }
                            rt.block_on(run_net_job(&o, lb.as_ref(), &mut lb_port_ready, job));
                        }
                        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
                    }
                    if swept.elapsed() >= LB_SWEEP {
                        swept = Instant::now();
                        if let Some(lb) = &lb {
                            let mut lb = lock(lb);
                            if let Err(e) = lb.expire() {
                                tracing::warn!(error = %e, "expiring conntrack");
                            }
                            // Addresses and interfaces that came or went.
                            if let Err(e) = lb.refresh_local_addrs() {
                                tracing::warn!(error = %e, "reading the node's addresses");
                            }
                        }
                    }
                }
            });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "overlay thread");
            return NodeNet {
                jobs: None,
                liveness,
                lb_inputs,
                probes: None,
                ports: Default::default(),
                own_ports: Default::default(),
            };
        }
        // A panic would stop fast failure handling in silence: the loop keeps nothing
        // between rounds that the liveness list does not hold, so it starts again.
        let probes = {
            let tx = tx.clone();
            let inputs = lb_inputs.clone();
            let liveness = liveness.clone();
            super::supervise::spawn(
                "data-plane probes",
                super::supervise::OnPanic::Restart,
                move || {
                    let jobs = std::sync::Mutex::new(tx.clone());
                    let inputs = inputs.clone();
                    super::lb::probe_loop(o_addr, liveness.clone(), move |down| {
                        let specs = {
                            let inputs = lock(&inputs);
                            super::lb::specs(&inputs.0, &inputs.1, &down)
                        };
                        let _ = lock(&jobs).send(NetJob::Lb(specs));
                    })
                },
            )
        };
        NodeNet {
            jobs: Some(tx),
            liveness,
            lb_inputs,
            probes: Some(probes),
            ports: Default::default(),
            own_ports: Default::default(),
        }
    }

    /// Make every network this node's tasks use match the cluster: local tasks attached,
    /// remote tasks reachable through their nodes; networks no task here uses go away.
    async fn program(
        &mut self,
        daemon: &Daemon,
        local: &HashMap<String, Local>,
        views: &[NetView],
        lb: &LbView,
    ) {
        let Some(jobs) = &self.jobs else { return };
        let membership = daemon.membership();
        let me = membership
            .as_ref()
            .map(|m| m.node_id.clone())
            .unwrap_or_default();
        let my_addr: Option<std::net::Ipv4Addr> =
            membership.as_ref().and_then(|m| m.addr.parse().ok());
        let own = own_ports(lb, views, membership.as_ref().map(|m| m.listen_port));
        let lb = &self.own_ports.filter(lb, &own);
        let mesh = super::lb::mesh_active(lb);
        for view in views {
            let n = &view.network;
            let Some((addr, bits)) = n.subnet.split_once('/') else {
                continue;
            };
            let (Ok(addr), Ok(bits), Ok(gateway)) = (addr.parse(), bits.parse(), n.gateway.parse())
            else {
                continue;
            };
            let Ok(subnet) = overlay::Ipv4Net::new(addr, bits) else {
                continue;
            };
            let spec = OverlaySpec {
                network_id: n.id.clone(),
                vni: n.vni,
                subnet,
                gateway,
                mtu: n.mtu,
            };
            let mut locals = Vec::new();
            for (id, l) in local {
                // A stopping task keeps its port until it has stopped: its
                // open connections live on until it exits.
                if l.reported.is_terminal() {
                    continue;
                }
                for (i, a) in l.record.networks.iter().enumerate() {
                    let Some(ip) = a.addr.split('/').next().and_then(|s| s.parse().ok()) else {
                        continue;
                    };
                    if a.network_id == n.id {
                        locals.push(LocalEndpoint {
                            task_id: id.clone(),
                            netns: task_netns_path(daemon, id),
                            ip,
                            mac: overlay::mac_for_ip(ip),
                            ifname: format!("eth{i}"),
                            default_route: i == 0,
                        });
                    }
                }
            }
            let remotes: Vec<RemoteEndpoint> = view
                .endpoints
                .iter()
                .filter(|e| e.node_id != me)
                .filter_map(|e| {
                    let ip = e.addr.split('/').next()?.parse().ok()?;
                    Some(RemoteEndpoint {
                        ip,
                        mac: overlay::mac_for_ip(ip),
                        node_addr: e.node_addr.parse().ok()?,
                    })
                })
                .collect();
            let extras = match my_addr {
                Some(addr) if mesh && n.ingress => super::lb::ingress_extras(lb, addr),
                _ => Extras::default(),
            };
            let _ = jobs.send(NetJob::Apply {
                name: n.name.clone(),
                port: view.vxlan_port,
                spec,
                ingress: n.ingress,
                locals,
                remotes,
                extras,
            });
        }
        let _ = jobs.send(NetJob::Keep(
            views.iter().map(|v| v.network.id.clone()).collect(),
        ));
        let down = {
            let mut l = lock(&self.liveness);
            l.nodes = lb
                .nodes
                .iter()
                .filter_map(|n| Some((n.id.clone(), n.addr.parse().ok()?)))
                .collect();
            l.down.clone()
        };
        *lock(&self.lb_inputs) = (lb.clone(), views.to_vec());
        let specs = super::lb::specs(lb, views, &down);
        // Which node ports are served depends on the view alone, never on
        // liveness: the probes' recomputations need not hold anything.
        self.ports.reconcile(&super::port_hold::wanted(&specs));
        let _ = jobs.send(NetJob::Lb(specs));
    }
}

async fn run_net_job(
    o: &NodeOverlay,
    lb: Option<&SharedLb>,
    lb_port_ready: &mut bool,
    job: NetJob,
) {
    match job {
        NetJob::Apply {
            name,
            spec,
            ingress,
            locals,
            remotes,
            extras,
            ..
        } => match o.apply_with(&spec, &locals, &remotes, &extras).await {
            Ok(report) => {
                for f in &report.failed {
                    tracing::warn!(network = %name, task = %f.task_id, error = %f.error, "attaching a task");
                }
                if let Some(lb) = lb {
                    let mut lb = lock(lb);
                    let synced = match &report.uplink {
                        Some(uplink) => lb.sync_overlay(
                            &spec.network_id,
                            spec.vni,
                            ingress,
                            &o.network_netns(&spec.network_id),
                            uplink,
                            &report.ports,
                            &remotes,
                            &extras.fdb.iter().map(|e| e.dst).collect::<Vec<_>>(),
                            o.vxlan_port,
                        ),
                        None => lb.remove_overlay(&spec.network_id),
                    };
                    if let Err(e) = synced {
                        tracing::warn!(network = %name, error = %e, "programming the overlay fast path");
                    }
                }
                if let (Some(lb), Some(port)) = (lb, &extras.host_port) {
                    if report.created || !*lb_port_ready {
                        match lock(lb).attach_lb_port(&port.name, port.mac) {
                            Ok(()) => *lb_port_ready = true,
                            Err(e) => {
                                tracing::warn!(error = %e, "attaching the load-balancer port")
                            }
                        }
                    }
                }
            }
            Err(e) => tracing::warn!(network = %name, error = %e, "programming the overlay"),
        },
        NetJob::Lb(specs) => {
            if let Some(lb) = lb {
                let mut lb = lock(lb);
                if let Err(e) = lb.refresh_local_addrs() {
                    tracing::warn!(error = %e, "reading the node's addresses");
                }
                match lb.apply(&specs) {
                    Ok(stats) => tracing::debug!(?stats, "load balancer applied"),
                    Err(e) => tracing::warn!(error = %e, "programming the load balancer"),
                }
            }
        }
        NetJob::Keep(keep) => {
            if let Some(lb) = lb {
                if let Err(e) = lock(lb).retain_overlays(&keep) {
                    tracing::warn!(error = %e, "programming the overlay fast path");
                }
            }
            if let Ok(present) = o.networks() {
                for id in present.into_iter().filter(|id| !keep.contains(id)) {
                    if let Err(e) = o.remove(&id).await {
                        tracing::warn!(network = %id, error = %e, "removing the overlay");
                    }
                }
            }
        }
    }
}

/// The interface that carries `ip` in this namespace.
fn interface_of(ip: std::net::Ipv4Addr) -> Option<String> {
    let addrs = nix::ifaddrs::getifaddrs().ok()?;
    for ifa in addrs {
        if ifa
            .address
            .as_ref()
            .and_then(|a| a.as_sockaddr_in())
            .map(|s| s.ip())
            == Some(ip)
        {
            // An address with a label (eth0:1) is named by it: the device is eth0.
            let device = ifa.interface_name.split(':').next().unwrap_or_default();
            return Some(device.to_string());
        }
    }
    None
}

fn grace(t: &TaskRecord) -> Duration {
    t.spec
        .container_spec
        .stop_grace_period
        .map(|ns| Duration::from_nanos(ns.max(0) as u64))
        .unwrap_or(DEFAULT_GRACE)
}

fn status(state: TaskState, message: &str) -> TaskStatusRec {
    TaskStatusRec {
        timestamp: Some(Utc::now()),
        state,
        message: message.to_string(),
        ..Default::default()
    }
}

async fn report(daemon: &Daemon, client: &mut Option<PeerClient>, reports: Vec<TaskReport>) {
    // A report the leader never got would leave the task's state stale in the cluster
    // (a task that died still Running, its backend kept): what could not be sent goes
    // again with the next reports, or at the next poll.
    let reports = pending_reports(std::mem::take(&mut *lock(&daemon.unsent_reports)), reports);
    if reports.is_empty() {
        return;
    }
    let leader = lock(&daemon.leader_hint).clone();
    let Some(leader) = leader else {
        *lock(&daemon.unsent_reports) = reports;
        return;
    };
    if client.as_ref().map(|c| c.addr()) != Some(leader.as_str()) {
        *client = Some(PeerClient::new(leader, daemon.tls.clone()));
    }
    let Some(c) = client.as_mut() else { return };
    let sent = c
        .call(
            &PeerRequest::ReportTasks(reports.clone()),
            Duration::from_secs(5),
        )
        .await;
    // Only Done means the leader took them: a node that is no longer the leader, or a
    // leader without quorum, did not.
    let why = match sent {
        Ok(PeerResponse::Done) => return,
        Ok(PeerResponse::NotLeader { leader }) => {
            *lock(&daemon.leader_hint) = leader;
            "not the leader".to_string()
        }
        Ok(PeerResponse::Error(e)) => e,
        Ok(other) => format!("unexpected reply {other:?}"),
        Err(e) => {
            *client = None;
            e.to_string()
        }
    };
    tracing::warn!(error = %why, reports = reports.len(), "reporting task states; will send them again");
    let mut unsent = lock(&daemon.unsent_reports);
    let newer = std::mem::take(&mut *unsent);
    *unsent = pending_reports(reports, newer);
}

/// `older` then `newer` reports, keeping only the last report of each task (a task's
/// states only move forward, and the last report is the node's latest word on it).
fn pending_reports(older: Vec<TaskReport>, newer: Vec<TaskReport>) -> Vec<TaskReport> {
    let mut out: Vec<TaskReport> = Vec::with_capacity(older.len() + newer.len());
    for r in older.into_iter().chain(newer) {
        out.retain(|o| o.task_id != r.task_id);
        out.push(r);
    }
    out
}

/// Whether the agent reports a task it holds (desired state `ready`: a replacement whose
/// restart delay is not over) prepared: once, if the cluster does not have it so yet.
fn holds_prepared(t: &TaskRecord, known: bool, prepared: &HashSet<String>) -> bool {
    t.desired_state < TaskState::Running
        && !known
        && t.status.state >= TaskState::Assigned
        && t.status.state < TaskState::Ready
        && !prepared.contains(&t.id)
}

async fn apply_assignments(
    daemon: &Arc<Daemon>,
    executor: &Arc<Executor>,
    local: &mut HashMap<String, Local>,
    prepared: &mut HashSet<String>,
    tasks: Vec<TaskRecord>,
    files: &crate::peer::TaskFiles,
) {
    let mut reports = Vec::new();
    for t in tasks {
        let id = t.id.clone();
        let known = local.contains_key(&id);
        // As swarmkit's agent: a task whose desired state is `ready` is prepared and held
        // there (`Ready`, "prepared"); it starts once its desired state is `running`.
        if t.desired_state < TaskState::Running && !known {
            if holds_prepared(&t, known, prepared) {
                prepared.insert(id.clone());
                reports.push(TaskReport {
                    task_id: id,
                    status: status(TaskState::Ready, "prepared"),
                    health: None,
                });
            }
            continue;
        }
        let want_run = t.desired_state <= TaskState::Running;
        if want_run && !known && !t.status.state.is_terminal() {
            // Adopt a task that survived a daemon restart, or start it.
            let checked = has_healthcheck(&t);
            let exec = executor.clone();
            let probe_id = id.clone();
            let (existing, ran) = tokio::task::spawn_blocking(move || {
                let ran = exec.log_path(&probe_id).exists();
                (exec.status(&probe_id), ran)
            })
            .await
            .unwrap_or((TaskStatus::Missing, false));
            // What its healthcheck said: a task adopted running and healthy stays so;
            // any other with a healthcheck starts over as "starting".
            let mut health = checked.then(|| "starting".to_string());
            let (state, rec) = match existing {
                TaskStatus::Running { pid } => {
                    let healthy = t.status.state == TaskState::Running
                        && t.health.as_deref() == Some("healthy");
                    if checked && healthy {
                        health = t.health.clone();
                    }
                    started(checked && !healthy, Some(pid))
                }
                TaskStatus::Exited { code } => exited(code),
                // It ran, and its processes died with no exit code recorded (a power
                // loss): it failed, as when it vanishes while watched. Starting it again
                // would find its directory taken, and hide the log it wrote.
                TaskStatus::Missing if ran => vanished(),
                TaskStatus::Missing => match task_run(daemon, &t, files) {
                    Err(e) => {
                        let mut s = status(TaskState::Rejected, "preparing");
                        s.err = Some(e);
                        (TaskState::Rejected, s)
                    }
                    Ok(run) => {
                        let exec = executor.clone();
                        match tokio::task::spawn_blocking(move || exec.start(&run)).await {
                            Ok(Ok(pid)) => started(checked, Some(pid)),
                            Ok(Err(e)) => {
                                let mut s = status(TaskState::Rejected, "starting");
                                s.err = Some(e.to_string());
                                (TaskState::Rejected, s)
                            }
                            Err(e) => {
                                let mut s = status(TaskState::Rejected, "starting");
                                s.err = Some(e.to_string());
                                (TaskState::Rejected, s)
                            }
                        }
                    }
                },
            };
            let pid = rec.pid;
            reports.push(TaskReport {
                task_id: id.clone(),
                status: rec,
                health: health.clone(),
            });
            local.insert(
                id.clone(),
                Local {
                    record: t,
                    reported: state,
                    health,
                    pid,
                    failing_streak: 0,
                    probes: None,
                    started: Instant::now(),
                    stopping: false,
                },
            );
        } else if !want_run {
            if let Some(l) = local.get_mut(&id) {
                l.record.desired_state = t.desired_state;
                if !l.stopping && !l.reported.is_terminal() {
                    l.stopping = true;
                    let exec = executor.clone();
                    let g = grace(&l.record);
                    let tid = id.clone();
                    let d = daemon.clone();
                    let netns = task_netns_path(daemon, &id);
                    // A load-balancer backend first leaves every node's
                    // load balancer (they learn it now, as this node does), so
                    // no new flow reaches a process about to exit.
                    let drain = if l.record.networks.is_empty() {
                        Duration::ZERO
                    } else {
                        daemon.cfg.lb.drain_delay
                    };
                    tokio::spawn(async move {
                        tokio::time::sleep(drain).await;
                        let result = tokio::task::spawn_blocking(move || exec.stop(&tid, g)).await;
                        let _ = overlay::task_netns_delete(&netns);
                        let code = match result {
                            Ok(Ok(TaskStatus::Exited { code })) => Some(code),
                            _ => None,
                        };
                        let mut s = status(TaskState::Shutdown, "shutdown");
                        s.exit_code = code;
                        let mut c = None;
                        report(
                            &d,
                            &mut c,
                            vec![TaskReport {
                                task_id: id,
                                status: s,
                                health: None,
                            }],
                        )
                        .await;
                    });
                }
            } else if !t.status.state.is_terminal() && t.status.state >= TaskState::Assigned {
                // Told to stop a task we never started (or lost): it is stopped.
                let exec = executor.clone();
                let tid = id.clone();
                let _ =
                    tokio::task::spawn_blocking(move || exec.stop(&tid, Duration::from_secs(0)))
                        .await;
                reports.push(TaskReport {
                    task_id: id,
                    status: status(TaskState::Shutdown, "shutdown"),
                    health: None,
                });
            }
        }
    }
    let mut c = None;
    report(daemon, &mut c, reports).await;
}

/// What this node holds of tasks beyond those it runs: the finished tasks whose logs it
/// keeps (everything else of them is gone), and the cleanups under way.
#[derive(Default)]
struct Held {
    /// Finished tasks the cluster still lists, retired to their logs.
    kept: HashSet<String>,
    /// Task directories found on disk at start (a previous run of the daemon left them)
    /// that the agent has not taken over, retired or removed yet; None before the look.
    found: Option<HashSet<String>>,
    /// The last cleanup started for each task: the next waits for it.
    jobs: HashMap<String, tokio::task::JoinHandle<()>>,
}

/// What becomes of the tasks a node holds (runs, keeps logs of, or finds on disk) once
/// the leader's lists of its tasks are in.
#[derive(Debug, Default, PartialEq)]
struct Cleanup {
    /// Finished, still listed by the cluster, not yet retired: keep only their logs.
    retire: Vec<String>,
    /// Listed nowhere (reaped by the history limit, a scale-down, `service rm`, or while
    /// the node was away): everything of them goes, logs included.
    remove: Vec<String>,
}

/// Sorts the tasks a node holds by what the leader lists: a task still assigned is the
/// agent's to run or stop; a finished one keeps its log; any other is gone.
fn cleanup<'a>(
    held: impl IntoIterator<Item = &'a String>,
    assigned: &HashSet<String>,
    finished: &HashSet<String>,
    kept: &HashSet<String>,
) -> Cleanup {
    let held: std::collections::BTreeSet<&String> = held.into_iter().collect();
    let mut plan = Cleanup::default();
    for id in held {
        if assigned.contains(id) {
            continue;
        }
        if finished.contains(id) {
            if !kept.contains(id) {
                plan.retire.push(id.clone());
            }
        } else {
            plan.remove.push(id.clone());
        }
    }
    plan
}

impl Held {
    /// Retire the tasks that finished (the agent forgets them; their processes, cgroups,
    /// network namespaces and files go, their logs stay), and delete everything of the
    /// tasks the cluster no longer lists. The same goes for the task directories a
    /// previous run of the daemon left (tasks that ended, or were deleted, meanwhile).
    async fn clean(
        &mut self,
        daemon: &Daemon,
        executor: &Arc<Executor>,
        local: &mut HashMap<String, Local>,
        assigned: &HashSet<String>,
        finished: &HashSet<String>,
    ) {
        if self.found.is_none() {
            let exec = executor.clone();
            let on_disk = tokio::task::spawn_blocking(move || exec.list())
                .await
                .unwrap_or_default();
            self.found = Some(on_disk.into_iter().collect());
        }
        let found = self.found.get_or_insert_default();
        // Those the agent runs again are its own now.
        found.retain(|id| !local.contains_key(id));
        let held: Vec<String> = local
            .keys()
            .chain(&self.kept)
            .chain(&*found)
            .cloned()
            .collect();
        let plan = cleanup(&held, assigned, finished, &self.kept);
        for id in plan.retire.iter().chain(&plan.remove) {
            found.remove(id);
        }
        for (id, keep_log) in plan
            .retire
            .into_iter()
            .map(|id| (id, true))
            .chain(plan.remove.into_iter().map(|id| (id, false)))
        {
            let g = local
                .remove(&id)
                .map_or(DEFAULT_GRACE, |l| grace(&l.record));
            if keep_log {
                self.kept.insert(id.clone());
            } else {
                self.kept.remove(&id);
            }
            let exec = executor.clone();
            let netns = task_netns_path(daemon, &id);
            let etc = task_etc_dir(daemon, &id);
            let files = task_files_dir(daemon, &id);
            let task = id.clone();
            self.run(id, move || {
                let _ = exec.stop(&task, g);
                let done = if keep_log {
                    exec.retire(&task)
                } else {
                    exec.remove(&task)
                };
                if let Err(e) = done {
                    tracing::warn!(task = %task, error = %e, "cleaning up a task");
                }
                let _ = overlay::task_netns_delete(&netns);
                let _ = std::fs::remove_dir_all(&etc);
                super::task_files::remove(&files);
            });
        }
    }

    /// Runs a task's cleanup off the runtime, after the one already under way for it
    /// (a retire, then the removal once the task is reaped).
    fn run(&mut self, id: String, work: impl FnOnce() + Send + 'static) {
        self.jobs.retain(|_, job| !job.is_finished());
        let previous = self.jobs.remove(&id);
        let job = tokio::spawn(async move {
            if let Some(previous) = previous {
                let _ = previous.await;
            }
            let _ = tokio::task::spawn_blocking(work).await;
        });
        self.jobs.insert(id, job);
    }
}

/// docker's executor stops a task whose healthcheck says unhealthy, and the task ends as
/// its process does, the cause named: `task: non-zero exit (137): dockerexec: unhealthy
/// container` (failed, so the restart policy replaces it), or complete if it exited 0.
fn stop_unhealthy(daemon: &Arc<Daemon>, executor: &Arc<Executor>, id: &str, l: &mut Local) {
    l.stopping = true;
    let exec = executor.clone();
    let g = grace(&l.record);
    let tid = id.to_string();
    let d = daemon.clone();
    let health = l.health.clone();
    tokio::spawn(async move {
        let stop_id = tid.clone();
        let result = tokio::task::spawn_blocking(move || exec.stop(&stop_id, g)).await;
        let s = unhealthy_exit(match result {
            Ok(Ok(TaskStatus::Exited { code })) => Some(code),
            _ => None,
        });
        let mut c = None;
        report(
            &d,
            &mut c,
            vec![TaskReport {
                task_id: tid,
                status: s,
                health,
            }],
        )
        .await;
    });
}

/// How a task stopped for being unhealthy ended (`code`: its exit code, if known).
fn unhealthy_exit(code: Option<i32>) -> TaskStatusRec {
    const CAUSE: &str = "dockerexec: unhealthy container";
    match code {
        Some(0) => exited(0).1,
        Some(code) => {
            let (_, mut s) = exited(code);
            s.err = Some(format!("task: non-zero exit ({code}): {CAUSE}"));
            s
        }
        None => {
            let mut s = status(TaskState::Failed, "started");
            s.err = Some(CAUSE.into());
            s
        }
    }
}

/// Whether a task's container has a healthcheck (one that is not `NONE`).
fn has_healthcheck(t: &TaskRecord) -> bool {
    t.spec
        .container_spec
        .healthcheck
        .as_ref()
        .is_some_and(|h| h.test.first().is_some_and(|c| c != "NONE"))
}

/// A task whose process was started: running, or, with a healthcheck, starting until
/// its first healthy probe (moby's executor returns from Start only on the container's
/// `health_status: healthy` event, so the agent reports it running only then).
fn started(awaits_health: bool, pid: Option<i32>) -> (TaskState, TaskStatusRec) {
    let (state, message) = if awaits_health {
        (TaskState::Starting, "starting")
    } else {
        (TaskState::Running, "started")
    };
    let mut s = status(state, message);
    s.pid = pid;
    (state, s)
}

/// The state a started task is in once its healthcheck says `health`: a starting task
/// runs from its first healthy probe on; otherwise it stays as it was (an unhealthy one
/// is stopped, and ends failed, whether it was starting or running).
fn state_with_health(reported: TaskState, health: &str) -> TaskState {
    if reported == TaskState::Starting && health == "healthy" {
        TaskState::Running
    } else {
        reported
    }
}

fn exited(code: i32) -> (TaskState, TaskStatusRec) {
    if code == 0 {
        let mut s = status(TaskState::Complete, "finished");
        s.exit_code = Some(0);
        (TaskState::Complete, s)
    } else {
        let mut s = status(TaskState::Failed, "started");
        s.exit_code = Some(code);
        s.err = Some(format!("task: non-zero exit ({code})"));
        (TaskState::Failed, s)
    }
}

/// A task whose processes are gone with no exit code recorded.
fn vanished() -> (TaskState, TaskStatusRec) {
    let mut s = status(TaskState::Failed, "started");
    s.err = Some("task process is gone".into());
    (TaskState::Failed, s)
}

/// Notice tasks that exited on their own, and run healthchecks.
async fn watch(
    daemon: &Arc<Daemon>,
    executor: &Arc<Executor>,
    local: &mut HashMap<String, Local>,
    client: &mut Option<PeerClient>,
) {
    let mut reports = Vec::new();
    for (id, l) in local.iter_mut() {
        if l.reported.is_terminal() || l.stopping {
            continue;
        }
        let exec = executor.clone();
        let tid = id.clone();
        let st = tokio::task::spawn_blocking(move || exec.status(&tid))
            .await
            .unwrap_or(TaskStatus::Missing);
        match st {
            TaskStatus::Running { .. } => {
                if let Some(h) = l
                    .record
                    .spec
                    .container_spec
                    .healthcheck
                    .clone()
                    .filter(|h| {
                        h.test.first().map(String::as_str) != Some("NONE") && !h.test.is_empty()
                    })
                {
                    let (began_at, health) = (l.started, l.health.as_deref());
                    let probes = l
                        .probes
                        .get_or_insert_with(|| ProbeSchedule::new(&h, began_at, health));
                    if probes.due(Instant::now()) {
                        let began = probes.since_start(Instant::now());
                        let timeout = Duration::from_nanos(if h.timeout > 0 {
                            h.timeout as u64
                        } else {
                            30 * SECOND_NS as u64
                        });
                        let exec = executor.clone();
                        let tid = id.clone();
                        let test = h.test.clone();
                        let ok = tokio::task::spawn_blocking(move || {
                            exec.health_probe(&tid, &test, timeout)
                        })
                        .await
                        .ok()
                        .and_then(Result::ok)
                        .unwrap_or(false);
                        let (new, streak) = super::probe::health_after_probe(
                            &h,
                            l.health.as_deref(),
                            l.failing_streak,
                            ok,
                            began,
                        );
                        let new = new.to_string();
                        l.failing_streak = streak;
                        probes.probed(&h, Instant::now(), Some(&new));
                        if l.health.as_deref() != Some(new.as_str()) {
                            let state = state_with_health(l.reported, &new);
                            l.health = Some(new);
                            l.reported = state;
                            let (_, s) = started(state == TaskState::Starting, l.pid);
                            reports.push(TaskReport {
                                task_id: id.clone(),
                                status: s,
                                health: l.health.clone(),
                            });
                            if l.health.as_deref() == Some("unhealthy") {
                                stop_unhealthy(daemon, executor, id, l);
                            }
                        }
                    }
                }
            }
            TaskStatus::Exited { code } => {
                let (state, s) = exited(code);
                l.reported = state;
                reports.push(TaskReport {
                    task_id: id.clone(),
                    status: s,
                    health: l.health.clone(),
                });
            }
            TaskStatus::Missing => {
                let (state, s) = vanished();
                l.reported = state;
                reports.push(TaskReport {
                    task_id: id.clone(),
                    status: s,
                    health: None,
                });
            }
        }
    }
    report(daemon, client, reports).await;
}

/// `swarm leave`: stop every task this node runs and remove its overlay networks, task
/// namespaces and files, so nothing of the swarm is left behind.
pub(crate) async fn teardown(daemon: &Daemon) {
    let tasks_dir = daemon.root.path("tasks");
    let netns_dir = daemon.root.path("task-netns");
    let etc_dir = daemon.root.path("task-etc");
    let overlay_dir = daemon.root.path("netns");
    let data_root = daemon.cfg.data_root.clone();
    let underlay = daemon.membership().and_then(|m| {
        let ip: std::net::Ipv4Addr = m.addr.parse().ok()?;
        Some((ip, interface_of(ip)?))
    });
    let work = move || {
        if let Ok(exec) = Executor::new(tasks_dir) {
            let ids = exec.list();
            std::thread::scope(|s| {
                for id in &ids {
                    let exec = &exec;
                    s.spawn(move || {
                        let _ = exec.stop(id, DEFAULT_GRACE);
                        let _ = exec.remove(id);
                    });
                }
            });
        }
        if let Ok(entries) = std::fs::read_dir(&netns_dir) {
            for e in entries.flatten() {
                let _ = overlay::task_netns_delete(&e.path());
            }
        }
        let _ = std::fs::remove_dir_all(&netns_dir);
        let _ = std::fs::remove_dir_all(&etc_dir);
        shoal_dataplane::lb::detach_node(super::lb::LB_PORT);
        shoal_dataplane::lb::remove_pins(&data_root);
        if let Some((ip, ifname)) = underlay {
            let mut o = NodeOverlay::new(ip, &ifname);
            o.netns_dir = overlay_dir;
            if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                rt.block_on(async {
                    for id in o.networks().unwrap_or_default() {
                        if let Err(e) = o.remove(&id).await {
                            tracing::warn!(network = %id, error = %e, "removing the overlay");
                        }
                    }
                });
            }
        }
    };
    // Its own thread: it blocks, and rtnetlink's futures are not Send.
    let (tx, rx) = tokio::sync::oneshot::channel();
    let spawned = std::thread::Builder::new()
        .name("shoal-teardown".into())
        .spawn(move || {
            work();
            let _ = tx.send(());
        });
    if spawned.is_ok() {
        let _ = rx.await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A task of `service_name` (`service_id`) on node n1, to run, attached to `networks`.
    fn task_record(
        id: &str,
        service_id: &str,
        service_name: &str,
        networks: Vec<crate::services::TaskAttachment>,
    ) -> TaskRecord {
        let now = Utc::now();
        TaskRecord {
            id: id.into(),
            version: 0,
            created_at: now,
            updated_at: now,
            service_id: service_id.into(),
            service_name: service_name.into(),
            slot: 1,
            node_id: "n1".into(),
            spec: Default::default(),
            spec_version: 0,
            status: Default::default(),
            desired_state: TaskState::Running,
            health: None,
            networks,
            host_ports: Vec::new(),
            by_update: false,
            running_at: None,
        }
    }

    /// `record` as this node tracks it once it runs.
    fn running(record: TaskRecord) -> Local {
        Local {
            record,
            reported: TaskState::Running,
            health: None,
            pid: None,
            failing_streak: 0,
            probes: None,
            started: Instant::now(),
            stopping: false,
        }
    }

    /// As moby's executor: a started task with a healthcheck is `starting` until its
    /// first healthy probe, then `running`; without one it runs at once. Health changes
    /// afterwards (or unhealthy before healthy) do not move it back or forward.
    #[test]
    fn healthcheck_holds_a_started_task_in_starting() {
        let (state, s) = started(true, Some(42));
        assert_eq!(
            (state, s.message.as_str(), s.pid),
            (TaskState::Starting, "starting", Some(42))
        );
        let (state, s) = started(false, Some(42));
        assert_eq!((state, s.message.as_str()), (TaskState::Running, "started"));
        assert_eq!(
            state_with_health(TaskState::Starting, "starting"),
            TaskState::Starting
        );
        assert_eq!(
            state_with_health(TaskState::Starting, "unhealthy"),
            TaskState::Starting
        );
        assert_eq!(
            state_with_health(TaskState::Starting, "healthy"),
            TaskState::Running
        );
        assert_eq!(
            state_with_health(TaskState::Running, "unhealthy"),
            TaskState::Running
        );
    }

    /// An unhealthy task ends as docker's executor ends it: failed with the cause in its
    /// error (so the restart policy replaces it), or complete if its process exited 0.
    #[test]
    fn unhealthy_task_fails_with_dockers_error() {
        let s = unhealthy_exit(Some(143));
        assert_eq!(s.state, TaskState::Failed);
        assert_eq!(
            s.err.as_deref(),
            Some("task: non-zero exit (143): dockerexec: unhealthy container")
        );
        assert_eq!(s.exit_code, Some(143));
        assert_eq!(unhealthy_exit(Some(0)).state, TaskState::Complete);
        let gone = unhealthy_exit(None);
        assert_eq!(gone.state, TaskState::Failed);
        assert_eq!(gone.err.as_deref(), Some("dockerexec: unhealthy container"));
    }

    fn net(id: &str, name: &str, subnet: &str, ingress: bool) -> crate::networks::NetworkRecord {
        crate::networks::NetworkRecord {
            id: id.into(),
            name: name.into(),
            driver: "overlay".into(),
            labels: Default::default(),
            created_at: Utc::now(),
            vni: 4097,
            subnet: subnet.into(),
            gateway: String::new(),
            attachable: false,
            ingress,
            internal: false,
            mtu: None,
        }
    }

    fn endpoint(task: &str, name: &str, addr: &str) -> crate::peer::NetEndpoint {
        crate::peer::NetEndpoint {
            task_id: task.into(),
            node_id: "n2".into(),
            node_addr: "10.77.0.12".into(),
            addr: addr.into(),
            name: name.into(),
            leaving: false,
            not_running: false,
            hostname: String::new(),
        }
    }

    /// A task's view names, for reverse lookups, every task on its networks
    /// (`<service>.<slot>.<task id>.<network>`: its own node's from their
    /// records, the others' from their endpoints, also tasks of a dnsrr service
    /// without published ports, which the load balancer's view lacks; from that
    /// view when an older leader sent endpoints without names) and every VIP
    /// (`<service>.<network>`), and holds its networks' subnets; the ingress
    /// network names nothing, nor does a task asked to stop.
    /// A replacement held with desired state `ready` (restart delay) is reported
    /// prepared once, and not started; once it is `ready` in the cluster, or started,
    /// nothing more is said of it.
    #[test]
    fn a_held_replacement_is_prepared_not_started() {
        let mut t = task_record("t1", "s", "web", Vec::new());
        t.status = status(TaskState::Assigned, "scheduler assigned task to node");
        t.desired_state = TaskState::Ready;
        let mut prepared = HashSet::new();
        assert!(holds_prepared(&t, false, &prepared));
        prepared.insert(t.id.clone());
        assert!(!holds_prepared(&t, false, &prepared), "reported once");
        prepared.clear();
        t.status.state = TaskState::Ready;
        assert!(!holds_prepared(&t, false, &prepared), "already ready");
        t.status.state = TaskState::Assigned;
        t.desired_state = TaskState::Running;
        assert!(!holds_prepared(&t, false, &prepared), "to run: started");
    }

    /// Reports that could not be sent go again with the next ones, and only a task's
    /// latest report is kept.
    #[test]
    fn unsent_reports_keep_each_tasks_latest() {
        let r = |id: &str, state: TaskState| TaskReport {
            task_id: id.into(),
            status: status(state, "x"),
            health: None,
        };
        let older = vec![r("a", TaskState::Running), r("b", TaskState::Running)];
        let newer = vec![r("a", TaskState::Failed), r("c", TaskState::Starting)];
        let got: Vec<(String, TaskState)> = pending_reports(older, newer)
            .into_iter()
            .map(|r| (r.task_id, r.status.state))
            .collect();
        assert_eq!(
            got,
            [
                ("b".to_string(), TaskState::Running),
                ("a".to_string(), TaskState::Failed),
                ("c".to_string(), TaskState::Starting)
            ]
        );
        assert!(pending_reports(Vec::new(), Vec::new()).is_empty());
    }

    #[test]
    fn task_view_names_addresses_on_the_tasks_networks() {
        use crate::peer::{LbBackend, LbService, NetService};
        use crate::services::TaskAttachment;
        let record = task_record(
            "tclient",
            "sc",
            "client",
            vec![
                TaskAttachment {
                    network_id: "app".into(),
                    addr: "10.0.1.3/24".into(),
                },
                TaskAttachment {
                    network_id: "ing".into(),
                    addr: "10.0.0.7/24".into(),
                },
            ],
        );
        let l = running(record);
        let views = vec![
            NetView {
                network: net("app", "app", "10.0.1.0/24", false),
                endpoints: vec![
                    endpoint("tclient", "client.1", "10.0.1.3/24"),
                    // As a leader that predates endpoint names sends them.
                    endpoint("tweb", "", "10.0.1.4/24"),
                    endpoint("tstarting", "", "10.0.1.9/24"),
                    // A remote task of a dnsrr service, a global task.
                    endpoint("trr", "rr.2", "10.0.1.5/24"),
                    endpoint("tagent", "agent.n3", "10.0.1.6/24"),
                    // Asked to stop, still running: no longer named.
                    crate::peer::NetEndpoint {
                        leaving: true,
                        ..endpoint("told", "web.3", "10.0.1.7/24")
                    },
                    // Not running yet (or unhealthy): not named yet.
                    crate::peer::NetEndpoint {
                        not_running: true,
                        ..endpoint("tnew", "web.5", "10.0.1.8/24")
                    },
                    // Two tasks with one hostname: the name gives both.
                    crate::peer::NetEndpoint {
                        hostname: "RRhost".into(),
                        ..endpoint("r2d2c3po4bb8k2so5x1y9z0wq", "rr.3", "10.0.1.10/24")
                    },
                    crate::peer::NetEndpoint {
                        hostname: "rrhost".into(),
                        ..endpoint("r2d2c3po4bb8k2so5x1y9z0wr", "rr.4", "10.0.1.11/24")
                    },
                ],
                services: vec![NetService {
                    names: vec!["web".into(), "frontend".into()],
                    vip: Some("10.0.1.2/24".into()),
                    task_ips: vec!["10.0.1.4/24".into()],
                }],
                vxlan_port: 4789,
            },
            NetView {
                network: net("ing", "ingress", "10.0.0.0/24", true),
                endpoints: vec![endpoint("tweb", "web.2", "10.0.0.5/24")],
                services: Vec::new(),
                vxlan_port: 4789,
            },
            NetView {
                network: net("other", "other", "10.0.2.0/24", false),
                endpoints: vec![endpoint("tfar", "far.1", "10.0.2.4/24")],
                services: Vec::new(),
                vxlan_port: 4789,
            },
        ];
        let lb = LbView {
            services: vec![LbService {
                id: "sw".into(),
                name: "web".into(),
                ports: Vec::new(),
                vips: Vec::new(),
                backends: vec![LbBackend {
                    task_id: "tweb".into(),
                    name: "web.2".into(),
                    node_id: "n2".into(),
                    addrs: Vec::new(),
                    terminating: false,
                    host_ports: Vec::new(),
                }],
            }],
            nodes: Vec::new(),
            node: "n1".into(),
            data_path_port: None,
        };
        let local = HashMap::from([("tclient".to_string(), l)]);
        let names = TaskNames::new(&local, &views, &lb);
        let view = task_view(&local["tclient"], &views, &names, 5);
        let ip = |s: &str| s.parse::<std::net::Ipv4Addr>().unwrap();
        let mut ptr: Vec<(std::net::Ipv4Addr, &str)> =
            view.ptr.iter().map(|(a, n)| (*a, n.as_str())).collect();
        ptr.sort();
        assert_eq!(
            ptr,
            [
                (ip("10.0.1.2"), "web.app"),
                (ip("10.0.1.3"), "client.1.tclient.app"),
                (ip("10.0.1.4"), "web.2.tweb.app"),
                (ip("10.0.1.5"), "rr.2.trr.app"),
                (ip("10.0.1.6"), "agent.n3.tagent.app"),
                (ip("10.0.1.10"), "rr.3.r2d2c3po4bb8k2so5x1y9z0wq.app"),
                (ip("10.0.1.11"), "rr.4.r2d2c3po4bb8k2so5x1y9z0wr.app"),
            ]
        );
        // Forward names: what a reverse lookup gives (without the network, or
        // with it, network by network), the short ID and the hostname, for
        // the tasks named there and no other.
        let names = |view: &HashMap<String, Vec<std::net::Ipv4Addr>>| {
            let mut names: Vec<(String, Vec<std::net::Ipv4Addr>)> = view
                .iter()
                .filter(|(n, _)| {
                    !n.starts_with("tasks.") && !["web", "frontend"].contains(&n.as_str())
                })
                .map(|(n, a)| (n.clone(), a.clone()))
                .collect();
            names.sort();
            names
        };
        let tasks = [
            ("agent.n3.tagent", "10.0.1.6"),
            ("client.1.tclient", "10.0.1.3"),
            ("r2d2c3po4bb8", "10.0.1.10"),
            ("r2d2c3po4bb8", "10.0.1.11"),
            ("rr.2.trr", "10.0.1.5"),
            ("rr.3.r2d2c3po4bb8k2so5x1y9z0wq", "10.0.1.10"),
            ("rr.4.r2d2c3po4bb8k2so5x1y9z0wr", "10.0.1.11"),
            ("rrhost", "10.0.1.10"),
            ("rrhost", "10.0.1.11"),
            // The short IDs of the tasks with short test IDs, and the local
            // task's hostname (its short ID).
            ("tagent", "10.0.1.6"),
            ("tclient", "10.0.1.3"),
            ("trr", "10.0.1.5"),
            ("tweb", "10.0.1.4"),
            ("web.2.tweb", "10.0.1.4"),
        ];
        let mut want: Vec<(String, Vec<std::net::Ipv4Addr>)> = Vec::new();
        for (name, addr) in tasks {
            match want.last_mut() {
                Some((n, addrs)) if n == name => addrs.push(ip(addr)),
                _ => want.push((name.to_string(), vec![ip(addr)])),
            }
        }
        assert_eq!(names(&view.names), want);
        assert_eq!(names(&view.networks["app"]), want);
        assert_eq!(view.networks["app"]["web"], [ip("10.0.1.2")]);
        assert_eq!(view.networks["app"]["tasks.web"], [ip("10.0.1.4")]);
        assert!(view.networks["ingress"].is_empty());
        assert!(!view.networks.contains_key("other"));
        assert!(view.shuffle.contains("tasks.web") && !view.shuffle.contains("rrhost"));
        let mut subnets = view.subnets.clone();
        subnets.sort();
        assert_eq!(subnets, [(ip("10.0.0.0"), 24), (ip("10.0.1.0"), 24)]);
    }

    /// A service on two networks the asking task shares with it answers as docker's
    /// resolver does: from the first network (overlays by name, internal ones after)
    /// that knows the name, alone, for its name (VIP), a dnsrr name and `tasks.`; each
    /// network still answers `<name>.<network>` with its own addresses.
    #[test]
    fn a_name_on_two_shared_networks_answers_from_the_first() {
        use crate::peer::NetService;
        use crate::services::TaskAttachment;
        let attach = |id: &str, addr: &str| TaskAttachment {
            network_id: id.into(),
            addr: addr.into(),
        };
        // Attached to "zeta" first: docker's order is not the attachment order.
        let record = task_record(
            "tclient",
            "sc",
            "client",
            vec![
                attach("z", "10.0.3.3/24"),
                attach("i", "10.0.4.3/24"),
                attach("a", "10.0.1.3/24"),
            ],
        );
        let l = running(record);
        let on = |id: &str, name: &str, n: u8, internal: bool| NetView {
            network: crate::networks::NetworkRecord {
                internal,
                ..net(id, name, &format!("10.0.{n}.0/24"), false)
            },
            endpoints: Vec::new(),
            services: vec![
                NetService {
                    names: vec!["web".into()],
                    vip: Some(format!("10.0.{n}.2/24")),
                    task_ips: vec![format!("10.0.{n}.4/24"), format!("10.0.{n}.5/24")],
                },
                NetService {
                    names: vec!["rr".into()],
                    vip: None,
                    task_ips: vec![format!("10.0.{n}.6/24")],
                },
            ],
            vxlan_port: 4789,
        };
        let views = vec![
            on("z", "zeta", 3, false),
            on("i", "inside", 4, true),
            on("a", "alpha", 1, false),
        ];
        let local = HashMap::from([("tclient".to_string(), l)]);
        let names = TaskNames::new(&local, &views, &LbView::default());
        let view = task_view(&local["tclient"], &views, &names, 5);
        let ip = |s: &str| s.parse::<std::net::Ipv4Addr>().unwrap();
        assert_eq!(view.names["web"], [ip("10.0.1.2")]);
        assert_eq!(view.names["tasks.web"], [ip("10.0.1.4"), ip("10.0.1.5")]);
        assert_eq!(view.names["rr"], [ip("10.0.1.6")]);
        assert_eq!(view.names["tasks.rr"], [ip("10.0.1.6")]);
        assert_eq!(view.networks["zeta"]["web"], [ip("10.0.3.2")]);
        assert_eq!(view.networks["inside"]["rr"], [ip("10.0.4.6")]);

        // Without "alpha", the overlay with a way out comes before the internal one.
        let views = vec![on("i", "inside", 4, true), on("z", "zeta", 3, false)];
        let view = task_view(&local["tclient"], &views, &names, 5);
        assert_eq!(view.names["web"], [ip("10.0.3.2")]);
        assert_eq!(view.names["tasks.rr"], [ip("10.0.3.6")]);
    }

    /// The node's own ports for its load balancer's filter: the data path port the
    /// leader sends with the load balancer's view even when the node has no network,
    /// else a network's, else the default; the probe port; its own swarm port.
    #[test]
    fn own_ports_follow_the_swarms_data_path_port() {
        let mut lb = LbView {
            data_path_port: Some(5789),
            ..Default::default()
        };
        assert_eq!(
            own_ports(&lb, &[], Some(3377)),
            [(true, 5789), (true, 7946), (false, 3377)]
        );
        lb.data_path_port = None;
        assert_eq!(own_ports(&lb, &[], None), [(true, 4789), (true, 7946)]);
    }

    fn ids(list: &[&str]) -> HashSet<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    /// What a node holds of a task is sorted by the leader's lists: an assigned task is
    /// left to the agent; a finished one the cluster still lists is retired to its log
    /// (once); any other (reaped by the history limit, a scale-down or `service rm`,
    /// also while the node was down, or found on disk from before a restart) goes whole,
    /// a retired log too.
    #[test]
    fn held_tasks_are_kept_retired_or_removed_as_the_leader_lists_them() {
        let held: Vec<String> = [
            "running",
            "just-failed",
            "retired",
            "reaped",
            "on-disk-finished",
            "on-disk-gone",
            "retired",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let assigned = ids(&["running", "new"]);
        let finished = ids(&["just-failed", "retired", "on-disk-finished", "elsewhere"]);
        let kept = ids(&["retired", "reaped"]);
        assert_eq!(
            cleanup(&held, &assigned, &finished, &kept),
            Cleanup {
                retire: vec!["just-failed".into(), "on-disk-finished".into()],
                remove: vec!["on-disk-gone".into(), "reaped".into()],
            }
        );
        // A leader that sends no finished task IDs (one that predates them): nothing
        // finished is kept, as before.
        assert_eq!(
            cleanup(&held, &assigned, &HashSet::new(), &kept),
            Cleanup {
                retire: Vec::new(),
                remove: vec![
                    "just-failed".into(),
                    "on-disk-finished".into(),
                    "on-disk-gone".into(),
                    "reaped".into(),
                    "retired".into(),
                ],
            }
        );
    }

    fn spec(command: &[&str], args: &[&str]) -> ContainerSpec {
        ContainerSpec {
            image: "busybox".into(),
            command: command.iter().map(|s| s.to_string()).collect(),
            args: args.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    /// `service create busybox ""` and compose `command: [""]` store argv `[""]`: the task
    /// fails with a clear error instead of indexing an empty argv.
    #[test]
    fn empty_command_fails_the_task() {
        for (command, args) in [
            (&[][..], &[""][..]),
            (&[""][..], &[][..]),
            (&[""][..], &[""][..]),
            (&[][..], &[][..]),
        ] {
            let err = task_argv(&spec(command, args)).unwrap_err();
            assert!(err.starts_with("no command specified"), "{err}");
        }
        // compose `entrypoint: [""]` with a command: the reset entrypoint is dropped.
        assert_eq!(
            task_argv(&spec(&[""], &["sleep", "1"])).unwrap(),
            ["sleep", "1"]
        );
        // `service create busybox "" sleep 1` (a spec stored before validate saw it): docker
        // would exec "", so the task fails rather than running `sleep 1`.
        for (command, args) in [
            (&[][..], &["", "sleep", "1"][..]),
            (&[""][..], &["", "sleep", "1"][..]),
            (&["", "sleep"][..], &["1"][..]),
        ] {
            let err = task_argv(&spec(command, args)).unwrap_err();
            assert!(err.ends_with("the program name is empty"), "{err}");
        }
    }

    /// A task's /etc/hosts has the service's extra hosts (first name of each, as docker)
    /// between localhost and its own address; `host-gateway` is left out.
    #[test]
    fn extra_hosts_go_in_the_task_s_hosts_file() {
        let hosts = task_hosts(
            &[
                "10.1.2.3 db alias".to_string(),
                "host-gateway host.docker.internal".to_string(),
                "::1 v6".to_string(),
            ],
            Some(("10.0.1.5", "web-1")),
        );
        assert_eq!(
            hosts,
            "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n10.1.2.3\tdb\n::1\tv6\n10.0.1.5\tweb-1\n"
        );
        assert!(task_hosts(&[], None).ends_with("ip6-loopback\n"));
    }

    /// On networks the embedded DNS stays the nameserver (it forwards to the service's
    /// servers); search and options are written, ndots:0 unless the service sets ndots.
    #[test]
    fn dns_settings_go_in_the_task_s_resolv_conf() {
        let dns = shoal_spec::DnsConfig {
            nameservers: vec!["10.0.0.53".into()],
            search: vec!["corp.example".into()],
            options: vec!["timeout:2".into()],
        };
        assert_eq!(
            task_resolv_conf(Some(&dns), true),
            "nameserver 127.0.0.11\nsearch corp.example\noptions timeout:2 ndots:0\n"
        );
        let ndots = shoal_spec::DnsConfig {
            options: vec!["ndots:3".into()],
            ..Default::default()
        };
        assert_eq!(
            task_resolv_conf(Some(&ndots), true),
            "nameserver 127.0.0.11\noptions ndots:3\n"
        );
        assert_eq!(
            task_resolv_conf(None, true),
            "nameserver 127.0.0.11\noptions ndots:0\n"
        );
        assert_eq!(
            task_resolv_conf(Some(&dns), false),
            "nameserver 10.0.0.53\nsearch corp.example\noptions timeout:2\n"
        );
        let mut cs = spec(&["true"], &[]);
        assert!(task_upstreams(&cs).is_none(), "the node's resolvers");
        cs.dns_config = Some(dns);
        let upstreams = task_upstreams(&cs).unwrap().current();
        assert_eq!(&upstreams[..], &["10.0.0.53:53".parse().unwrap()]);
    }
}
