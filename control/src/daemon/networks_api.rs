//! The leader's network API: create (VNI and subnet allocated in Raft), list, inspect,
//! remove (refused while a service uses the network).

use chrono::Utc;

use super::{Daemon, Manager};
use crate::api::{ApiError, ApiReply, ApiRequest, ApiResult, NetworkCreate};
use crate::networks::{
    check_subnet, check_subnet_size, next_subnet, next_vni, Net, NetworkRecord, ALLOCATION_TAKEN,
};
use crate::state::{ClusterState, Command};

fn invalid(msg: impl std::fmt::Display) -> ApiError {
    ApiError::daemon(format!("rpc error: code = InvalidArgument desc = {msg}"))
}

pub(crate) fn precondition(msg: impl std::fmt::Display) -> ApiError {
    ApiError::daemon(format!("rpc error: code = FailedPrecondition desc = {msg}"))
}

/// Resolve a network by ID, name or unique ID prefix.
pub fn resolve<'a>(
    state: &'a ClusterState,
    reference: &str,
) -> Result<&'a NetworkRecord, ApiError> {
    // Every ID starts with "": an empty reference names nothing (`network rm ""` must not
    // remove the only network, ingress).
    if reference.is_empty() {
        return Err(ApiError::daemon(format!("network {reference} not found")));
    }
    if let Some(n) = state.networks.get(reference) {
        return Ok(n);
    }
    if let Some(n) = state.networks.values().find(|n| n.name == reference) {
        return Ok(n);
    }
    let by_prefix: Vec<&NetworkRecord> = state
        .networks
        .values()
        .filter(|n| n.id.starts_with(reference))
        .collect();
    match by_prefix.len() {
        1 => Ok(by_prefix[0]),
        0 => Err(ApiError::daemon(format!("network {reference} not found"))),
        n => Err(ApiError::daemon(format!(
            "network {reference} is ambiguous ({n} matches found)"
        ))),
    }
}

/// Allocate a network in `state` (which the caller proposes): a VNI, and the requested
/// subnet (checked for overlap) or the next free one from the swarm's pool.
pub fn allocate(
    state: &ClusterState,
    req: &NetworkCreate,
    ingress: bool,
) -> Result<NetworkRecord, ApiError> {
    let driver = if req.driver.is_empty() {
        "overlay"
    } else {
        req.driver.as_str()
    };
    if driver != "overlay" {
        return Err(ApiError::daemon(format!(
            "rpc error: code = InvalidArgument desc = only the overlay driver is supported in swarm scope, not {driver}"
        )));
    }
    if req.name.is_empty() || req.name.contains('/') {
        return Err(ApiError::daemon(format!(
            "rpc error: code = InvalidArgument desc = invalid network name {:?}",
            req.name
        )));
    }
    if state.networks.values().any(|n| n.name == req.name) {
        // moby checks names itself before it asks swarmkit (network_routes.go
        // postNetworkCreate): libnetwork's NetworkNameError, not a gRPC error.
        return Err(ApiError::daemon(format!(
            "network with name {} already exists",
            req.name
        )));
    }
    let cluster = state
        .cluster
        .as_ref()
        .ok_or_else(|| ApiError::daemon("cluster not initialized"))?;
    let subnet = match &req.subnet {
        Some(s) => {
            let net = Net::parse(s).map_err(ApiError::daemon)?;
            check_subnet_size(&net).map_err(invalid)?;
            check_subnet(state, &net).map_err(ApiError::daemon)?;
            net
        }
        None => {
            next_subnet(state, &cluster.addr_pool, cluster.subnet_bits).map_err(ApiError::daemon)?
        }
    };
    let gateway = match &req.gateway {
        Some(g) => {
            let ip: std::net::Ipv4Addr = g
                .parse()
                .map_err(|_| ApiError::daemon(format!("invalid gateway address {g}")))?;
            if !subnet.contains(ip) {
                return Err(ApiError::daemon(format!(
                    "invalid pool request: gateway {g} is not in subnet {subnet}"
                )));
            }
            // libnetwork's IPAM keeps a subnet's network and broadcast addresses reserved.
            let last = u64::from(subnet.addr) + subnet.size() - 1;
            if u32::from(ip) == subnet.addr || u64::from(u32::from(ip)) == last {
                return Err(ApiError::daemon(format!(
                    "failed to allocate gateway ({g}): Address already in use"
                )));
            }
            ip
        }
        None => subnet
            .first_host()
            .ok_or_else(|| invalid(format!("subnet {subnet} has no address for a gateway")))?,
    };
    let mtu = match req.options.get("com.docker.network.driver.mtu") {
        Some(m) => Some(
            m.parse::<u32>()
                .ok()
                .filter(|m| (576..=65_535).contains(m))
                .ok_or_else(|| ApiError::daemon(format!("invalid MTU {m}")))?,
        ),
        None => None,
    };
    Ok(NetworkRecord {
        id: crate::ids::new_id(),
        name: req.name.clone(),
        driver: driver.to_string(),
        labels: req.labels.clone(),
        created_at: Utc::now(),
        vni: next_vni(state).map_err(ApiError::daemon)?,
        subnet: subnet.to_string(),
        gateway: gateway.to_string(),
        attachable: req.attachable,
        ingress,
        internal: req.internal,
        mtu,
    })
}

/// How many times a network create picks its VNI and subnet again when creates
/// in flight at once took them first.
const ALLOCATION_TRIES: usize = 16;

/// Services that attach to a network (by name or ID), or publish ports (for ingress).
pub(crate) fn users(state: &ClusterState, net: &NetworkRecord) -> Vec<String> {
    state
        .services
        .values()
        .filter(|s| {
            s.spec
                .task_template
                .networks
                .iter()
                .any(|a| a.target == net.name || a.target == net.id)
                || (net.ingress && crate::orchestrator::needs_ingress(&s.spec))
        })
        .map(|s| s.id.clone())
        .collect()
}

/// `network rm` refuses a network a service uses, in swarmkit's words (controlapi
/// network.go removeNetwork and, for ingress, removeIngressNetwork).
fn check_removable(state: &ClusterState, net: &NetworkRecord) -> Result<(), ApiError> {
    match users(state, net).first() {
        Some(user) if net.ingress => Err(precondition(format!(
            "ingress network cannot be removed because service {user} depends on it"
        ))),
        Some(user) => Err(precondition(format!(
            "network {} is in use by service {user}",
            net.id
        ))),
        None => Ok(()),
    }
}

/// `network inspect [--verbose]`: each reference's network, or why there is none.
fn inspect(state: &ClusterState, references: &[String], verbose: bool) -> ApiReply {
    let objects = references
        .iter()
        .map(|r| {
            resolve(state, r)
                .map(|n| {
                    if verbose {
                        n.docker_json_verbose(state)
                    } else {
                        n.docker_json()
                    }
                })
                .map_err(|e| e.message)
        })
        .collect();
    ApiReply::Objects { objects }
}

impl Daemon {
    pub(crate) async fn serve_network_api(&self, mgr: &Manager, req: ApiRequest) -> ApiResult {
        match req {
            ApiRequest::NetworkCreate(c) => {
                // Another create may take the VNI or subnet picked here before
                // this one applies (the state machine refuses the second): pick
                // again from the state as the leader has it now (a follower's
                // own copy may not have the winner yet), while creates race.
                let mut state = mgr.sm.state();
                for _ in 0..ALLOCATION_TRIES {
                    let net = allocate(&state, &c, false)?;
                    let id = net.id.clone();
                    match mgr.propose(Command::PutNetwork { network: net }).await {
                        Ok(()) => return Ok(ApiReply::ServiceCreated { id }),
                        Err(e) if e.message.contains(ALLOCATION_TAKEN) => {
                            state = mgr.read_state().await?;
                        }
                        Err(e) => return Err(e),
                    }
                }
                Err(ApiError::daemon(ALLOCATION_TAKEN))
            }
            ApiRequest::NetworkList => {
                let state = mgr.read_state().await?;
                Ok(ApiReply::Networks {
                    networks: state.networks.values().map(|n| n.docker_json()).collect(),
                })
            }
            ApiRequest::NetworkInspect { references } => {
                let state = mgr.read_state().await?;
                Ok(inspect(&state, &references, false))
            }
            ApiRequest::NetworkInspectVerbose { references } => {
                let state = mgr.read_state().await?;
                Ok(inspect(&state, &references, true))
            }
            ApiRequest::NetworkRemove { reference } => {
                let state = mgr.sm.state();
                let net = resolve(&state, &reference)?;
                check_removable(&state, net)?;
                mgr.propose(Command::RemoveNetwork {
                    network_id: net.id.clone(),
                })
                .await?;
                Ok(ApiReply::Done)
            }
            other => Err(ApiError::daemon(format!(
                "{} is not a manager request",
                other.kind()
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh swarm's state: the cluster and its ingress network.
    fn swarm() -> ClusterState {
        let mut state = ClusterState {
            cluster: Some(crate::state::tests::cluster()),
            ..Default::default()
        };
        let ingress = allocate(
            &state,
            &NetworkCreate {
                name: "ingress".into(),
                ..Default::default()
            },
            true,
        )
        .unwrap();
        state.networks.insert(ingress.id.clone(), ingress);
        state
    }

    /// `network create --subnet` (and stack deploy's ipam config) refuses subnets with no
    /// room for a gateway, a VIP and tasks, instead of panicking in the request (/32 at
    /// the top of the address space) or leaving tasks without an address.
    #[test]
    fn tiny_subnets_are_refused() {
        let state = swarm();
        let create = |subnet: &str| {
            allocate(
                &state,
                &NetworkCreate {
                    name: "n".into(),
                    subnet: Some(subnet.into()),
                    ..Default::default()
                },
                false,
            )
        };
        for tiny in [
            "255.255.255.255/32",
            "255.255.255.254/31",
            "192.168.9.0/31",
            "192.168.9.0/30",
        ] {
            let e = create(tiny).unwrap_err().message;
            assert!(e.contains("too small for a swarm network"), "{tiny}: {e}");
        }
        let top = create("255.255.255.248/29").unwrap();
        assert_eq!(top.gateway, "255.255.255.249");
    }

    /// A gateway on the subnet's network or broadcast address is refused, as libnetwork's
    /// IPAM keeps those reserved; any other address in the subnet is taken.
    #[test]
    fn gateway_is_a_host_address() {
        let state = swarm();
        let create = |gateway: &str| {
            allocate(
                &state,
                &NetworkCreate {
                    name: "n".into(),
                    subnet: Some("10.9.0.0/24".into()),
                    gateway: Some(gateway.into()),
                    ..Default::default()
                },
                false,
            )
        };
        for bad in ["10.9.0.0", "10.9.0.255"] {
            let e = create(bad).unwrap_err().message;
            assert_eq!(
                e,
                format!("failed to allocate gateway ({bad}): Address already in use")
            );
        }
        assert_eq!(create("10.9.0.254").unwrap().gateway, "10.9.0.254");
        assert!(create("10.9.1.1")
            .unwrap_err()
            .message
            .contains("is not in subnet"));
    }

    /// `network create` of a name taken, and `network rm` of a network a service uses,
    /// say what docker says.
    #[test]
    fn duplicate_and_in_use_messages_are_docker_s() {
        let mut state = swarm();
        let create = |name: &str| NetworkCreate {
            name: name.into(),
            ..Default::default()
        };
        assert_eq!(
            allocate(&state, &create("ingress"), false)
                .unwrap_err()
                .to_string(),
            "Error response from daemon: network with name ingress already exists"
        );
        let back = allocate(&state, &create("back"), false).unwrap();
        state.networks.insert(back.id.clone(), back.clone());
        let ingress = resolve(&state, "ingress").unwrap().clone();
        assert!(check_removable(&state, &back).is_ok());
        assert!(check_removable(&state, &ingress).is_ok());

        let mut spec = shoal_spec::ServiceSpec {
            name: "web".into(),
            ..Default::default()
        };
        spec.task_template.networks = vec![shoal_spec::NetworkAttachmentConfig {
            target: back.id.clone(),
            aliases: vec![],
        }];
        spec.endpoint_spec = Some(shoal_spec::EndpointSpec {
            ports: crate::cli::service_opts::port("8080:80").unwrap(),
            ..Default::default()
        });
        let web = crate::services::ServiceRecord::new("svc1".into(), spec);
        state.services.insert(web.id.clone(), web);
        assert_eq!(
            check_removable(&state, &back).unwrap_err().to_string(),
            format!("Error response from daemon: rpc error: code = FailedPrecondition desc = network {} is in use by service svc1", back.id)
        );
        assert_eq!(
            check_removable(&state, &ingress).unwrap_err().to_string(),
            "Error response from daemon: rpc error: code = FailedPrecondition desc = ingress network cannot be removed because service svc1 depends on it"
        );
    }

    /// `network rm ""` with only ingress: an empty reference must not match it by prefix.
    #[test]
    fn empty_reference_is_not_found() {
        let state = swarm();
        assert_eq!(resolve(&state, "ingress").unwrap().name, "ingress");
        assert_eq!(
            resolve(&state, "").unwrap_err().message,
            "network  not found"
        );
    }
}
