//! The `shoal` command line: docker's verbs, flags, tables and messages.

mod node;
mod swarm;

use clap::Subcommand;

use crate::api::{ApiError, ApiReply, ApiRequest};
use crate::client::Client;

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Manage Swarm
    #[command(subcommand)]
    Swarm(swarm::SwarmCommand),
    /// Manage Swarm nodes
    #[command(subcommand)]
    Node(node::NodeCommand),
    /// Show the shoal version information
    Version,
}

/// What a command did: output already printed; the exit code to return.
pub type CliResult = Result<(), ApiError>;

pub async fn run(host: &str, cmd: Command) -> i32 {
    let result = match cmd {
        Command::Swarm(c) => swarm::run(host, c).await,
        Command::Node(c) => node::run(host, c).await,
        Command::Version => {
            println!("Shoal version {}", crate::VERSION);
            Ok(())
        }
    };
    match result {
        Ok(()) => 0,
        Err(e) => {
            let text = e.to_string();
            if !e.message.is_empty() {
                eprintln!("{text}");
            }
            1
        }
    }
}

pub(crate) async fn call(host: &str, req: ApiRequest) -> Result<ApiReply, ApiError> {
    Client::connect(host).await?.call(req).await
}

pub(crate) fn unexpected(reply: ApiReply) -> ApiError {
    ApiError::plain(format!("unexpected reply from the daemon: {reply:?}"))
}

/// Go-duration-like values: "5s", "1m30s", "500ms".
pub(crate) fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("invalid duration {s:?}: {e}"))
}
