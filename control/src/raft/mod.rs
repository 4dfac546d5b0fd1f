//! Raft for the managers: type declarations, the redb-backed store, and the mTLS network.

pub mod network;
pub mod store;

use std::io::Cursor;

use openraft::BasicNode;

use crate::state::{Command, CommandResult};

openraft::declare_raft_types!(
    /// Shoal's Raft: u64 member IDs, `BasicNode { addr }` = the manager's `IP:2377`.
    pub TypeConfig:
        D = Command,
        R = CommandResult,
        NodeId = u64,
        Node = BasicNode,
        SnapshotData = Cursor<Vec<u8>>,
);

pub type Raft = openraft::Raft<TypeConfig>;
pub type NodeId = u64;
pub type LogId = openraft::LogId<NodeId>;
pub type Entry = openraft::Entry<TypeConfig>;

/// Timing knobs of the managers' Raft group.
#[derive(Clone, Debug)]
pub struct RaftTiming {
    pub heartbeat_ms: u64,
    pub election_min_ms: u64,
    pub election_max_ms: u64,
    pub snapshot_every: u64,
}

impl Default for RaftTiming {
    fn default() -> Self {
        RaftTiming {
            heartbeat_ms: 250,
            election_min_ms: 1000,
            election_max_ms: 2000,
            snapshot_every: 10_000,
        }
    }
}

impl RaftTiming {
    pub fn config(&self) -> openraft::Config {
        openraft::Config {
            cluster_name: "shoal".into(),
            heartbeat_interval: self.heartbeat_ms,
            election_timeout_min: self.election_min_ms,
            election_timeout_max: self.election_max_ms,
            snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(self.snapshot_every),
            max_in_snapshot_log_to_keep: 500,
            install_snapshot_timeout: 10_000,
            ..Default::default()
        }
    }
}
