//! Shoal's control plane: cluster state, Raft, the node daemon and its API, and the CLI.

pub mod api;
pub mod ca_rotation;
pub mod cli;
pub mod client;
pub mod daemon;
pub mod host_ports;
pub mod ids;
pub mod metrics;
pub mod networks;
pub mod orchestrator;
pub mod peer;
pub mod raft;
pub mod secrets;
pub mod service_manager;
pub mod services;
pub mod state;
pub mod system_info;
pub mod types;
pub mod wire;

/// The version every node reports as its engine version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
