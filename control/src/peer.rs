//! Node-to-node protocol on the swarm port (2377): join, dispatcher heartbeats, Raft RPCs and
//! forwarded API calls, each over mTLS with the cluster CA.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use openraft::error::{InstallSnapshotError, RaftError};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use rustls_pki_types::ServerName;
use serde::{Deserialize, Serialize};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use crate::api::{ApiRequest, ApiResult};
use crate::raft::{NodeId, TypeConfig};
use crate::types::{NodeDescription, Role};
use crate::wire::{self, Conn, WireError};
use shoal_spec::TaskState;

/// A node asking to be admitted, with the secret part of its token.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct JoinSwarm {
    pub token: String,
    pub csr_pem: String,
    pub description: NodeDescription,
    /// The address to advertise, if the joiner chose one; else the manager uses the source IP.
    pub advertise_addr: Option<String>,
    pub listen_port: u16,
    /// The availability the joiner asked to start with (`swarm join --availability`).
    #[serde(default)]
    pub availability: Option<crate::types::Availability>,
}

/// Everything a node needs to take part after it was admitted.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct Admitted {
    pub node_id: String,
    pub raft_id: u64,
    pub role: Role,
    pub cluster_id: String,
    pub cert_pem: String,
    pub ca_pem: String,
    pub managers: Vec<String>,
    pub heartbeat_ms: u64,
    pub addr: String,
}

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct Heartbeat {
    pub description: NodeDescription,
    pub addr: String,
    pub listen_addr: String,
}

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct HeartbeatReply {
    /// The role the cluster wants this node to have (promote/demote reach the node this way).
    pub role: Role,
    /// The node's Raft ID; a manager promoted again gets a fresh one, and must rejoin Raft
    /// under it.
    pub raft_id: u64,
    pub managers: Vec<String>,
    pub leader: String,
    pub heartbeat_ms: u64,
    /// The roots the swarm's nodes trust now (both during a root rotation); "" from a
    /// leader that predates root rotation.
    #[serde(default)]
    pub trust_pem: String,
    /// A root rotation is under way and this node's certificate is not from the new root:
    /// it asks for a new one (swarmkit's `IssuanceStateRotate`).
    #[serde(default)]
    pub rotate_cert: bool,
}

// Messages: built once, serialized, dropped; boxing variants would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Serialize, Deserialize, Debug)]
pub enum PeerRequest {
    Join(JoinSwarm),
    /// A manager that has its Raft running asks to become a voter.
    RaftJoin,
    Heartbeat(Heartbeat),
    /// A node asks for a certificate for its current role.
    RenewCert {
        csr_pem: String,
    },
    /// The node is leaving the swarm.
    Leave,
    /// Raft's messages name the member they are for (`to`): an address can change hands
    /// (a manager demoted and promoted again is a new member at the same address), and a
    /// vote meant for a member that is gone must not be counted as that member's.
    AppendEntries {
        to: NodeId,
        rpc: AppendEntriesRequest<TypeConfig>,
    },
    Vote {
        to: NodeId,
        rpc: VoteRequest<NodeId>,
    },
    InstallSnapshot {
        to: NodeId,
        rpc: InstallSnapshotRequest<TypeConfig>,
    },
    /// An agent waits for its task assignments to change past `since` (a long poll).
    Assignments {
        since: u64,
    },
    /// An agent reports its tasks' observed states.
    ReportTasks(Vec<crate::services::TaskReport>),
    /// A manager asks the node running a task to run a command in it; the connection then
    /// carries exec frames (see daemon::exec).
    Exec {
        task_id: String,
        argv: Vec<String>,
        interactive: bool,
        tty: Option<crate::daemon::exec::Tty>,
    },
    /// A manager asks the node running a task for its log.
    TaskLogs {
        task_id: String,
        /// Without `from`: start at the last `tail` lines (all without it).
        tail: Option<usize>,
        /// Start at this byte of the log (where the previous chunk ended).
        #[serde(default)]
        from: Option<u64>,
        /// At most this many bytes (the node caps it too).
        #[serde(default)]
        max: Option<u64>,
    },
    /// A manager asks a node for its load balancer's report (`shoal debug lb NODE`).
    LbReport,
    /// A CLI request forwarded to the leader, with the node ID it was asked on.
    Api {
        request: ApiRequest,
        asked_on: String,
    },
}

#[allow(clippy::large_enum_variant)]
#[derive(Serialize, Deserialize, Debug)]
pub enum PeerResponse {
    Admitted(Admitted),
    Heartbeat(HeartbeatReply),
    Cert {
        cert_pem: String,
    },
    AppendEntries(Result<AppendEntriesResponse<NodeId>, RaftError<NodeId>>),
    Vote(Result<VoteResponse<NodeId>, RaftError<NodeId>>),
    InstallSnapshot(
        Result<InstallSnapshotResponse<NodeId>, RaftError<NodeId, InstallSnapshotError>>,
    ),
    Api(ApiResult),
    /// This node's tasks (desired to run, or to stop but not yet stopped) as of `index`.
    Assignments {
        index: u64,
        tasks: Vec<crate::services::TaskRecord>,
        /// The networks those tasks attach to, with every live endpoint on them
        /// (and the ingress network on every node while the mesh has ports).
        networks: Vec<NetView>,
        /// What the node's load balancer serves.
        #[serde(default)]
        lb: LbView,
        /// Node IDs of the cluster's managers: whose manager certificates this node
        /// honours (a demoted manager still holds one).
        #[serde(default)]
        managers: Vec<String>,
        /// IDs of this node's finished tasks that the cluster still lists (task history):
        /// the node keeps their logs, and deletes what it holds of any task in neither
        /// list. None from a leader that predates it: the node keeps nothing finished.
        #[serde(default)]
        finished: Option<Vec<String>>,
        /// The data of the secrets and configs (by ID) that this node's tasks to run
        /// reference, and of no others (swarmkit's dispatcher sends a node only those).
        #[serde(default, skip_serializing_if = "TaskFiles::is_empty")]
        files: TaskFiles,
    },
    LogChunk(Result<LogChunk, String>),
    LbReport(Result<crate::api::LbReport, String>),
    Done,
    /// Only the leader serves this; here is where it is (if known).
    NotLeader {
        leader: Option<String>,
    },
    Error(String),
}

/// Secret and config payloads by ID, as the dispatcher sends them to a node.
#[derive(Serialize, Deserialize, Debug, Default, Clone, PartialEq)]
pub struct TaskFiles {
    #[serde(default)]
    pub secrets: std::collections::BTreeMap<String, crate::secrets::Data>,
    #[serde(default)]
    pub configs: std::collections::BTreeMap<String, crate::secrets::Data>,
}

impl TaskFiles {
    pub fn is_empty(&self) -> bool {
        self.secrets.is_empty() && self.configs.is_empty()
    }

    /// What `tasks` need: the objects their specs reference, for the tasks still meant
    /// to run (a task being stopped needs nothing new).
    pub fn of(
        state: &crate::state::ClusterState,
        tasks: &[crate::services::TaskRecord],
    ) -> TaskFiles {
        let mut out = TaskFiles::default();
        for t in tasks
            .iter()
            .filter(|t| t.desired_state <= TaskState::Running)
        {
            let cs = &t.spec.container_spec;
            for r in &cs.secrets {
                if let Some(o) = state.secrets.get(&r.secret_id) {
                    out.secrets.insert(o.id.clone(), o.data.clone());
                }
            }
            for r in &cs.configs {
                if let Some(o) = state.configs.get(&r.config_id) {
                    out.configs.insert(o.id.clone(), o.data.clone());
                }
            }
        }
        out
    }
}

/// A piece of a task's log (see `PeerRequest::TaskLogs`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct LogChunk {
    #[serde(with = "crate::wire::base64_bytes")]
    pub data: Vec<u8>,
    /// The offset of `data` in the log.
    pub start: u64,
    /// The log's size when it was read.
    pub size: u64,
}

/// A network as an agent needs it to program its data plane.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct NetView {
    pub network: crate::networks::NetworkRecord,
    pub endpoints: Vec<NetEndpoint>,
    /// What the embedded DNS answers on this network.
    #[serde(default)]
    pub services: Vec<NetService>,
    /// The swarm's VXLAN UDP port (`swarm init --data-path-port`).
    #[serde(default = "default_vxlan_port")]
    pub vxlan_port: u16,
}

fn default_vxlan_port() -> u16 {
    crate::services::DEFAULT_DATA_PATH_PORT
}

/// A service as names on one network: its name and aliases answer its VIP (or, with
/// dnsrr, its running tasks); `tasks.<name>` answers its running tasks, none of them
/// asked to stop.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct NetService {
    pub names: Vec<String>,
    pub vip: Option<String>,
    pub task_ips: Vec<String>,
}

/// One task's address on a network, and the node (VTEP) it lives on.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct NetEndpoint {
    pub task_id: String,
    pub node_id: String,
    pub node_addr: String,
    pub addr: String,
    /// The task's name (`web.1`, or `<service>.<node id>` for a global task):
    /// with the task id, what a reverse lookup of `addr` answers on every node,
    /// whatever the service's endpoint mode and ports. Empty from a leader that
    /// predates it.
    #[serde(default)]
    pub name: String,
    /// The task was asked to stop and has not stopped yet: its data path stays
    /// (its open connections keep working) but DNS no longer names it, as
    /// docker disables a task's service binding before stopping it. False from
    /// a leader that predates it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub leaving: bool,
    /// Not running yet, or not healthy: DNS does not name it yet, as docker
    /// activates a task's service binding (its names) only once it runs and
    /// passes its healthcheck. False from a leader that predates it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub not_running: bool,
    /// The task's hostname (its spec's, or the short task ID), which the
    /// embedded DNS also answers with `addr`. Empty from a leader that
    /// predates it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub hostname: String,
}

impl NetEndpoint {
    /// Whether the embedded DNS names the task: running (and healthy), not
    /// asked to stop (see [`crate::services::TaskRecord::in_dns`]).
    pub fn in_dns(&self) -> bool {
        !self.leaving && !self.not_running
    }
}

/// Everything a node's load balancer needs: every service with a VIP or a
/// published port, and its backends anywhere in the cluster.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct LbView {
    pub services: Vec<LbService>,
    /// Every node that is not down: address for load-balancer MACs and probes.
    pub nodes: Vec<LbNode>,
    /// The node this view was made for: it serves host-mode ports of its own tasks only.
    #[serde(default)]
    pub node: String,
    /// The swarm's data path port, one of the node's own ports its load balancer never
    /// serves. `None` from a leader that predates it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_path_port: Option<u16>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct LbNode {
    pub id: String,
    pub addr: String,
    /// For people (`shoal debug lb`, metrics labels).
    #[serde(default)]
    pub hostname: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct LbService {
    pub id: String,
    pub name: String,
    /// Ports published in ingress mode (the routing mesh).
    pub ports: Vec<LbPort>,
    /// (network id, VIP without prefix length).
    pub vips: Vec<(String, String)>,
    pub backends: Vec<LbBackend>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq)]
pub struct LbPort {
    pub udp: bool,
    pub published: u16,
    pub target: u16,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct LbBackend {
    pub task_id: String,
    /// The task's name (`web.1`), for people.
    #[serde(default)]
    pub name: String,
    pub node_id: String,
    /// (network id, address without prefix length).
    pub addrs: Vec<(String, String)>,
    /// Still running but on its way out (stop asked, or unhealthy): keeps its
    /// flows, gets no new ones.
    pub terminating: bool,
    /// Ports the task publishes in host mode: its own node serves them, with it.
    #[serde(default)]
    pub host_ports: Vec<LbPort>,
}

/// A node's share of the cluster's tasks: those it must run or stop (whole records), and
/// the IDs of its finished ones (told to stop, and stopped) that the cluster still lists,
/// whose logs the node keeps until the task reaper deletes them.
pub fn node_tasks(
    state: &crate::state::ClusterState,
    node_id: &str,
) -> (Vec<crate::services::TaskRecord>, Vec<String>) {
    let mut tasks = Vec::new();
    let mut finished = Vec::new();
    for t in state.tasks.values().filter(|t| t.node_id == node_id) {
        if t.desired_state <= TaskState::Running || !t.status.state.is_terminal() {
            tasks.push(t.clone());
        } else {
            finished.push(t.id.clone());
        }
    }
    (tasks, finished)
}

/// The load balancer's view of the cluster, for node `node_id`. A backend is a
/// task that runs on a node that is not down; one asked to stop, or unhealthy,
/// stays a backend, terminating, until it has stopped.
pub fn lb_view(state: &crate::state::ClusterState, node_id: &str) -> LbView {
    use crate::types::NodeState;
    let up = |node_id: &str| {
        state
            .nodes
            .get(node_id)
            .is_some_and(|n| n.state != NodeState::Down)
    };
    let mut by_service: std::collections::HashMap<&str, Vec<LbBackend>> =
        std::collections::HashMap::new();
    for t in state.tasks.values() {
        if t.status.state != TaskState::Running || !up(&t.node_id) {
            continue;
        }
        let healthy = t.health.as_deref().is_none_or(|h| h == "healthy");
        let addrs = t
            .networks
            .iter()
            .filter_map(|a| {
                let ip = a.addr.split('/').next()?;
                Some((a.network_id.clone(), ip.to_string()))
            })
            .collect();
        by_service
            .entry(t.service_id.as_str())
            .or_default()
            .push(LbBackend {
                task_id: t.id.clone(),
                name: t.name(),
                node_id: t.node_id.clone(),
                addrs,
                terminating: t.desired_state != TaskState::Running || !healthy,
                host_ports: t.host_ports.iter().filter_map(lb_port).collect(),
            });
    }
    let mut services: Vec<LbService> = state
        .services
        .values()
        .filter_map(|s| {
            let ports: Vec<LbPort> = s
                .spec
                .endpoint_spec
                .iter()
                .flat_map(|e| e.ports.iter())
                .filter(|p| p.publish_mode == shoal_spec::PublishMode::Ingress)
                .filter_map(lb_port)
                .collect();
            let vips: Vec<(String, String)> = s
                .vips
                .iter()
                .filter_map(|v| Some((v.network_id.clone(), v.addr.split('/').next()?.to_string())))
                .collect();
            let mut backends = by_service.remove(s.id.as_str()).unwrap_or_default();
            if ports.is_empty()
                && vips.is_empty()
                && backends.iter().all(|b| b.host_ports.is_empty())
            {
                return None;
            }
            backends.sort_by(|a, b| a.task_id.cmp(&b.task_id));
            Some(LbService {
                id: s.id.clone(),
                name: s.spec.name.clone(),
                ports,
                vips,
                backends,
            })
        })
        .collect();
    services.sort_by(|a, b| a.id.cmp(&b.id));
    let mut nodes: Vec<LbNode> = state
        .nodes
        .values()
        .filter(|n| n.state != NodeState::Down)
        .map(|n| LbNode {
            id: n.id.clone(),
            addr: n.addr.clone(),
            hostname: n.display_name().to_string(),
        })
        .collect();
    nodes.sort_by(|a, b| a.id.cmp(&b.id));
    LbView {
        services,
        nodes,
        node: node_id.to_string(),
        data_path_port: Some(crate::services::data_path_port(state)),
    }
}

/// A published TCP or UDP port (the load balancer serves no other protocol).
fn lb_port(p: &shoal_spec::PortConfig) -> Option<LbPort> {
    let udp = match p.protocol {
        shoal_spec::Protocol::Tcp => false,
        shoal_spec::Protocol::Udp => true,
        shoal_spec::Protocol::Sctp => return None,
    };
    Some(LbPort {
        udp,
        published: p.published_port?,
        target: p.target_port,
    })
}

/// The networks `tasks` attach to, each with all the live endpoints in the cluster.
pub fn net_views(
    state: &crate::state::ClusterState,
    tasks: &[crate::services::TaskRecord],
) -> Vec<NetView> {
    let ids: Vec<&str> = tasks
        .iter()
        .flat_map(|t| t.networks.iter().map(|a| a.network_id.as_str()))
        .collect();
    net_views_of(state, ids)
}

/// The views of the networks `ids` (duplicates and unknown ids ignored).
pub fn net_views_of(state: &crate::state::ClusterState, mut ids: Vec<&str>) -> Vec<NetView> {
    ids.sort();
    ids.dedup();
    ids.into_iter()
        .filter_map(|id| state.networks.get(id))
        .map(|net| {
            let endpoints = state
                .tasks
                .values()
                .filter(|t| !t.status.state.is_terminal() && !t.node_id.is_empty())
                .flat_map(|t| {
                    t.networks
                        .iter()
                        .filter(|a| a.network_id == net.id)
                        .map(move |a| (t, a))
                })
                .filter_map(|(t, a)| {
                    // A node that is down (or gone) takes its endpoints with it.
                    let node = state
                        .nodes
                        .get(&t.node_id)
                        .filter(|n| n.state != crate::types::NodeState::Down)?;
                    Some(NetEndpoint {
                        task_id: t.id.clone(),
                        node_id: node.id.clone(),
                        node_addr: node.addr.clone(),
                        addr: a.addr.clone(),
                        name: t.name(),
                        leaving: t.is_leaving(),
                        not_running: !t.is_running(),
                        hostname: t.hostname(),
                    })
                })
                .collect();
            let services = if net.ingress {
                Vec::new() // ingress carries the routing mesh, not service discovery
            } else {
                state
                    .services
                    .values()
                    .filter_map(|s| {
                        let attachment = s
                            .spec
                            .task_template
                            .networks
                            .iter()
                            .find(|a| a.target == net.id)?;
                        let mut names = vec![s.spec.name.clone()];
                        names.extend(attachment.aliases.iter().cloned());
                        let vip = s
                            .vips
                            .iter()
                            .find(|v| v.network_id == net.id)
                            .map(|v| v.addr.clone());
                        let task_ips = state
                            .tasks
                            .values()
                            .filter(|t| t.service_id == s.id && t.in_dns())
                            .filter_map(|t| t.networks.iter().find(|a| a.network_id == net.id))
                            .map(|a| a.addr.clone())
                            .collect();
                        Some(NetService {
                            names,
                            vip,
                            task_ips,
                        })
                    })
                    .collect()
            };
            NetView {
                network: net.clone(),
                endpoints,
                services,
                vxlan_port: crate::services::data_path_port(state),
            }
        })
        .collect()
}

/// This node's current TLS material; swapped when its certificate is renewed.
#[derive(Clone, Default)]
pub struct TlsHandle(Arc<RwLock<Option<TlsMaterial>>>);

#[derive(Clone)]
pub struct TlsMaterial {
    pub client: Arc<rustls::ClientConfig>,
    pub server: Arc<rustls::ServerConfig>,
}

impl TlsHandle {
    pub fn set(&self, m: Option<TlsMaterial>) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = m;
    }
    pub fn get(&self) -> Option<TlsMaterial> {
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Open a TLS connection to a manager at `addr` (`IP:port`).
pub async fn connect(
    addr: &str,
    config: Arc<rustls::ClientConfig>,
) -> Result<Conn<TlsStream<TcpStream>>, WireError> {
    connect_named(addr, shoal_ca::tls::MANAGER_SERVER_NAME, config).await
}

/// Open a TLS connection to `addr`, requiring its certificate to name `server_name` (the
/// managers' shared name, or one node's ID).
pub async fn connect_named(
    addr: &str,
    server_name: &str,
    config: Arc<rustls::ClientConfig>,
) -> Result<Conn<TlsStream<TcpStream>>, WireError> {
    let tcp = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr))
        .await
        .map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("timed out connecting to {addr}"),
            )
        })??;
    tcp.set_nodelay(true)?;
    let name = ServerName::try_from(server_name.to_string())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let tls = tokio::time::timeout(
        CONNECT_TIMEOUT,
        TlsConnector::from(config).connect(name, tcp),
    )
    .await
    .map_err(|_| {
        std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("timed out in TLS handshake with {addr}"),
        )
    })??;
    Ok(wire::framed(tls))
}

/// A reusable mTLS connection to one peer, reopened on failure.
pub struct PeerClient {
    addr: String,
    /// The name the peer's certificate must carry.
    server_name: String,
    tls: TlsHandle,
    conn: Option<Conn<TlsStream<TcpStream>>>,
}

impl PeerClient {
    /// A client for a manager (any manager's certificate will do).
    pub fn new(addr: String, tls: TlsHandle) -> Self {
        PeerClient {
            addr,
            server_name: shoal_ca::tls::MANAGER_SERVER_NAME.to_string(),
            tls,
            conn: None,
        }
    }

    /// A client for one particular node, manager or worker, named by its ID.
    pub fn to_node(addr: String, node_id: &str, tls: TlsHandle) -> Self {
        PeerClient {
            addr,
            server_name: node_id.to_string(),
            tls,
            conn: None,
        }
    }

    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// One request/reply. A broken cached connection is retried once on a fresh one.
    pub async fn call(
        &mut self,
        req: &PeerRequest,
        timeout: Duration,
    ) -> Result<PeerResponse, WireError> {
        for attempt in 0..2 {
            let fresh = self.conn.is_none();
            if fresh {
                let Some(tls) = self.tls.get() else {
                    return Err(WireError::Io(std::io::Error::other(
                        "this node has no swarm certificate",
                    )));
                };
                self.conn = Some(connect_named(&self.addr, &self.server_name, tls.client).await?);
            }
            let Some(conn) = self.conn.as_mut() else {
                continue;
            };
            match tokio::time::timeout(timeout, wire::call(conn, req)).await {
                Ok(Ok(resp)) => return Ok(resp),
                Ok(Err(e)) => {
                    self.conn = None;
                    if fresh || attempt == 1 {
                        return Err(e);
                    }
                }
                Err(_) => {
                    self.conn = None;
                    return Err(WireError::Io(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        format!("request to {} timed out", self.addr),
                    )));
                }
            }
        }
        Err(WireError::Closed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(
        id: &str,
        node: &str,
        desired: TaskState,
        state: TaskState,
    ) -> crate::services::TaskRecord {
        let now = chrono::Utc::now();
        crate::services::TaskRecord {
            id: id.into(),
            version: 1,
            created_at: now,
            updated_at: now,
            service_id: "s1".into(),
            service_name: "web".into(),
            slot: 1,
            node_id: node.into(),
            spec: Default::default(),
            spec_version: 1,
            status: crate::services::TaskStatusRec {
                state,
                ..Default::default()
            },
            desired_state: desired,
            health: None,
            networks: Vec::new(),
            host_ports: Vec::new(),
            by_update: false,
            running_at: None,
        }
    }

    /// A node is sent, whole, the tasks it runs or must stop (a task told to stop that
    /// has not stopped yet, a failed one still meant to run until it is replaced), and
    /// only the IDs of its finished ones (told to stop, and stopped), whose logs it keeps;
    /// nothing of other nodes' tasks.
    #[test]
    fn a_node_is_sent_its_tasks_and_its_finished_task_ids() {
        use TaskState::{Complete, Failed, Remove, Running, Shutdown};
        let mut state = crate::state::ClusterState::default();
        for t in [
            task("run", "n1", Running, Running),
            task("stopping", "n1", Shutdown, Running),
            task("removing", "n1", Remove, Running),
            task("crashed", "n1", Running, Failed),
            task("failed", "n1", Shutdown, Failed),
            task("complete", "n1", Shutdown, Complete),
            task("stopped", "n1", Remove, Shutdown),
            task("elsewhere", "n2", Shutdown, Failed),
        ] {
            state.tasks.insert(t.id.clone(), t);
        }
        let (tasks, finished) = node_tasks(&state, "n1");
        let ids: Vec<&str> = tasks.iter().map(|t| t.id.as_str()).collect();
        assert_eq!(ids, ["crashed", "removing", "run", "stopping"]);
        assert_eq!(finished, ["complete", "failed", "stopped"]);
    }

    /// The finished task IDs are new on the wire: a reply from a leader that predates
    /// them reads as None (the node then keeps nothing finished, as before), and an
    /// older agent reads a reply that has them as it always did.
    #[test]
    fn finished_task_ids_are_optional_on_the_wire() {
        let old = r#"{"Assignments":{"index":7,"tasks":[],"networks":[]}}"#;
        match serde_json::from_str::<PeerResponse>(old).unwrap() {
            PeerResponse::Assignments {
                index, finished, ..
            } => {
                assert_eq!(index, 7);
                assert_eq!(finished, None);
            }
            other => panic!("{other:?}"),
        }

        /// The reply as an agent that predates finished task IDs declares it.
        #[derive(Deserialize)]
        #[allow(dead_code)]
        enum OldPeerResponse {
            Assignments {
                index: u64,
                tasks: Vec<crate::services::TaskRecord>,
                networks: Vec<NetView>,
            },
        }
        let new = PeerResponse::Assignments {
            index: 8,
            tasks: Vec::new(),
            networks: Vec::new(),
            lb: LbView::default(),
            managers: Vec::new(),
            finished: Some(vec!["t1".into()]),
            files: TaskFiles::default(),
        };
        let json = serde_json::to_string(&new).unwrap();
        // No secrets: nothing of them on the wire (an older agent reads it as before).
        assert!(!json.contains("files"), "{json}");
        assert!(json.contains(r#""finished":["t1"]"#), "{json}");
        let OldPeerResponse::Assignments { index, .. } = serde_json::from_str(&json).unwrap();
        assert_eq!(index, 8);
    }

    /// Endpoints travel between nodes of different versions: one from a leader
    /// that predates names reads as nameless (the agent then names the task
    /// as before), and an older agent reads a named one as it always did.
    #[test]
    fn endpoint_names_are_optional_on_the_wire() {
        let old =
            r#"{"task_id":"t1","node_id":"n2","node_addr":"10.77.0.12","addr":"10.0.1.5/24"}"#;
        let e: NetEndpoint = serde_json::from_str(old).unwrap();
        assert_eq!(e.name, "");
        assert_eq!(e.addr, "10.0.1.5/24");

        /// NetEndpoint as an agent that predates names declares it.
        #[derive(Deserialize)]
        #[allow(dead_code)]
        struct OldNetEndpoint {
            task_id: String,
            node_id: String,
            node_addr: String,
            addr: String,
        }
        let new = NetEndpoint {
            name: "rr.2".into(),
            ..e.clone()
        };
        let json = serde_json::to_string(&new).unwrap();
        assert!(json.contains(r#""name":"rr.2""#), "{json}");
        let seen: OldNetEndpoint = serde_json::from_str(&json).unwrap();
        assert_eq!(seen.task_id, "t1");
        // Nor does it see a leaving or not-running flag or a hostname, which an
        // older leader never sends: its endpoints stay named, by name and short ID.
        assert!(!json.contains("leaving"), "{json}");
        assert!(!json.contains("not_running"), "{json}");
        assert!(!json.contains("hostname"), "{json}");
        assert!(!e.leaving && !e.not_running && e.hostname.is_empty());
        assert!(e.in_dns());
    }

    /// A task asked to stop leaves DNS at once (docker disables its service
    /// binding before stopping it): `tasks.<svc>` and a dnsrr name no longer
    /// answer it and its endpoint is marked leaving (no name, no reverse lookup,
    /// as for one not running yet), while
    /// the endpoint itself stays until the task has stopped, so its open
    /// connections keep their overlay path.
    #[test]
    fn a_task_asked_to_stop_leaves_dns_but_keeps_its_endpoint() {
        use crate::services::{ServiceRecord, TaskAttachment};
        use crate::types::{NodeDescription, Role};
        use shoal_spec::{NetworkAttachmentConfig, ServiceSpec, TaskSpec};
        let now = chrono::Utc::now();
        let mut state = crate::state::ClusterState::default();
        let node = crate::state::new_node_record(
            "n1".into(),
            1,
            Role::Manager,
            NodeDescription {
                hostname: "vm1".into(),
                os: "linux".into(),
                architecture: "x86_64".into(),
                nano_cpus: 1_000_000_000,
                memory_bytes: 1 << 30,
                engine_version: "0".into(),
                ephemeral_ports: None,
                tls: None,
            },
            "10.77.0.11".into(),
            "10.77.0.11:2377".into(),
            now,
        );
        state.nodes.insert(node.id.clone(), node);
        state.networks.insert(
            "app".into(),
            crate::networks::NetworkRecord {
                id: "app".into(),
                name: "app".into(),
                driver: "overlay".into(),
                labels: Default::default(),
                created_at: now,
                vni: 4097,
                subnet: "10.0.1.0/24".into(),
                gateway: "10.0.1.1".into(),
                attachable: false,
                ingress: false,
                internal: false,
                mtu: None,
            },
        );
        let svc = ServiceRecord {
            id: "s1".into(),
            version: 1,
            created_at: now,
            updated_at: now,
            spec: ServiceSpec {
                name: "rr".into(),
                task_template: TaskSpec {
                    networks: vec![NetworkAttachmentConfig {
                        target: "app".into(),
                        aliases: Vec::new(),
                    }],
                    ..Default::default()
                },
                ..Default::default()
            },
            previous_spec: None,
            spec_version: 1,
            update_status: None,
            vips: Vec::new(), // dnsrr: the name answers the tasks
            dynamic_ports: Vec::new(),
            previous_dynamic_ports: Vec::new(),
        };
        let task = |slot: u64, addr: &str, current: TaskState, desired: TaskState| {
            let mut t = crate::orchestrator::new_task(&svc, slot, "n1", now);
            t.id = format!("t{slot}");
            t.status.state = current;
            t.desired_state = desired;
            t.networks = vec![TaskAttachment {
                network_id: "app".into(),
                addr: addr.into(),
            }];
            t
        };
        for t in [
            task(1, "10.0.1.3/24", TaskState::Running, TaskState::Running),
            // Scaled down: still running through its stop grace period.
            task(2, "10.0.1.4/24", TaskState::Running, TaskState::Remove),
            // Updated away: still running through its stop grace period.
            task(3, "10.0.1.5/24", TaskState::Running, TaskState::Shutdown),
            // Stopped: gone from the data path too.
            task(4, "10.0.1.6/24", TaskState::Shutdown, TaskState::Shutdown),
            // Starting: on the data path, not named yet.
            task(5, "10.0.1.7/24", TaskState::Starting, TaskState::Running),
        ] {
            state.tasks.insert(t.id.clone(), t);
        }
        state.services.insert(svc.id.clone(), svc);

        let views = net_views_of(&state, vec!["app"]);
        assert_eq!(views.len(), 1);
        assert_eq!(
            views[0].services,
            [NetService {
                names: vec!["rr".into()],
                vip: None,
                task_ips: vec!["10.0.1.3/24".into()],
            }]
        );
        let mut endpoints: Vec<(&str, bool, bool, bool, &str)> = views[0]
            .endpoints
            .iter()
            .map(|e| {
                let named = e.in_dns();
                (
                    e.addr.as_str(),
                    e.leaving,
                    e.not_running,
                    named,
                    e.hostname.as_str(),
                )
            })
            .collect();
        endpoints.sort();
        assert_eq!(
            endpoints,
            [
                ("10.0.1.3/24", false, false, true, "t1"),
                ("10.0.1.4/24", true, false, false, "t2"),
                ("10.0.1.5/24", true, false, false, "t3"),
                ("10.0.1.7/24", false, true, false, "t5"),
            ]
        );
    }
}
