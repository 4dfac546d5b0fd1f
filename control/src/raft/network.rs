//! openraft's network: Raft RPCs to other managers over the swarm port's mTLS connections.

use std::time::Duration;

use openraft::error::{InstallSnapshotError, NetworkError, RPCError, RaftError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::BasicNode;

use super::{NodeId, TypeConfig};
use crate::peer::{PeerClient, PeerRequest, PeerResponse, TlsHandle};
use crate::wire::WireError;

/// Makes one client per (target, purpose); each keeps its own connection.
#[derive(Clone)]
pub struct Network {
    pub tls: TlsHandle,
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = RaftPeer;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> RaftPeer {
        RaftPeer {
            target,
            client: PeerClient::new(node.addr.clone(), self.tls.clone()),
        }
    }
}

pub struct RaftPeer {
    /// The member this client's messages are for, whoever answers at its address.
    target: NodeId,
    client: PeerClient,
}

fn unreachable<E: std::error::Error>(e: &WireError) -> RPCError<NodeId, BasicNode, E> {
    RPCError::Unreachable(Unreachable::new(e))
}

fn unexpected<E: std::error::Error>(what: &str) -> RPCError<NodeId, BasicNode, E> {
    let e = std::io::Error::other(format!("unexpected reply: {what}"));
    RPCError::Network(NetworkError::new(&e))
}

impl RaftPeer {
    async fn call<E: std::error::Error>(
        &mut self,
        req: PeerRequest,
        option: &RPCOption,
    ) -> Result<PeerResponse, RPCError<NodeId, BasicNode, E>> {
        let timeout = option.hard_ttl().max(Duration::from_millis(100));
        self.client
            .call(&req, timeout)
            .await
            .map_err(|e| unreachable(&e))
    }
}

impl RaftNetwork<TypeConfig> for RaftPeer {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        match self
            .call(
                PeerRequest::AppendEntries {
                    to: self.target,
                    rpc,
                },
                &option,
            )
            .await?
        {
            PeerResponse::AppendEntries(Ok(r)) => Ok(r),
            PeerResponse::AppendEntries(Err(e)) => Err(RPCError::RemoteError(
                openraft::error::RemoteError::new(0, e),
            )),
            other => Err(unexpected(&format!("{other:?}"))),
        }
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<NodeId>,
        RPCError<NodeId, BasicNode, RaftError<NodeId, InstallSnapshotError>>,
    > {
        match self
            .call(
                PeerRequest::InstallSnapshot {
                    to: self.target,
                    rpc,
                },
                &option,
            )
            .await?
        {
            PeerResponse::InstallSnapshot(Ok(r)) => Ok(r),
            PeerResponse::InstallSnapshot(Err(e)) => Err(RPCError::RemoteError(
                openraft::error::RemoteError::new(0, e),
            )),
            other => Err(unexpected(&format!("{other:?}"))),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        match self
            .call(
                PeerRequest::Vote {
                    to: self.target,
                    rpc,
                },
                &option,
            )
            .await?
        {
            PeerResponse::Vote(Ok(r)) => Ok(r),
            PeerResponse::Vote(Err(e)) => Err(RPCError::RemoteError(
                openraft::error::RemoteError::new(0, e),
            )),
            other => Err(unexpected(&format!("{other:?}"))),
        }
    }
}
