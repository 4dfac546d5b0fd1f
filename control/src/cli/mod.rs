//! The `shoal` command line: docker's verbs, flags, tables and messages.

mod node;
mod progress;
mod service;
mod service_opts;
mod stack;
mod swarm;
mod tasks;

use clap::Subcommand;

use crate::api::{ApiError, ApiReply, ApiRequest};
use crate::client::Client;

#[allow(clippy::large_enum_variant)]
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Manage Swarm
    #[command(subcommand)]
    Swarm(swarm::SwarmCommand),
    /// Manage Swarm nodes
    #[command(subcommand)]
    Node(node::NodeCommand),
    /// Manage Swarm services
    #[command(subcommand)]
    Service(service::ServiceCommand),
    /// Manage Swarm stacks
    #[command(subcommand)]
    Stack(stack::StackCommand),
    /// Return low-level information on Swarm objects (nodes, services, tasks)
    Inspect {
        #[arg(short, long)]
        format: Option<String>,
        #[arg(required = true)]
        objects: Vec<String>,
    },
    /// Show the shoal version information
    Version,
}

/// What a command did: output already printed; the exit code to return.
pub type CliResult = Result<(), ApiError>;

pub async fn run(host: &str, cmd: Command) -> i32 {
    let result = match cmd {
        Command::Swarm(c) => swarm::run(host, c).await,
        Command::Node(c) => node::run(host, c).await,
        Command::Service(c) => service::run(host, c).await,
        Command::Stack(c) => stack::run(host, c).await,
        Command::Inspect { format, objects } => inspect(host, objects, format).await,
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

async fn inspect(host: &str, references: Vec<String>, format: Option<String>) -> CliResult {
    let objects = match call(
        host,
        ApiRequest::Inspect {
            references: references.clone(),
        },
    )
    .await?
    {
        ApiReply::Objects { objects } => objects,
        other => return Err(unexpected(other)),
    };
    let mut values = Vec::new();
    let mut missing = None;
    for (r, o) in references.iter().zip(objects) {
        match o {
            Ok(v) => values.push(v),
            Err(_) => {
                missing.get_or_insert(r.clone());
            }
        }
    }
    let text = shoal_format::render_inspect(&values, format.as_deref())
        .map_err(|e| ApiError::plain(e.to_string()))?;
    print!("{text}");
    match missing {
        Some(r) => Err(ApiError::plain(format!("Error: No such object: {r}"))),
        None => Ok(()),
    }
}
