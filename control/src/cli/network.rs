//! `shoal network ...`: create, ls, inspect, rm (swarm-scoped overlay networks).

use std::collections::BTreeMap;

use clap::Subcommand;
use serde_json::{json, Value};

use super::{call, unexpected, CliResult};
use crate::api::{ApiError, ApiReply, ApiRequest, NetworkCreate};

#[derive(Subcommand, Debug)]
pub enum NetworkCommand {
    /// Create a network
    Create {
        /// Driver to manage the Network
        #[arg(short, long, default_value = "overlay")]
        driver: String,
        /// Subnet in CIDR format that represents a network segment
        #[arg(long)]
        subnet: Option<String>,
        /// IPv4 Gateway for the master subnet
        #[arg(long)]
        gateway: Option<String>,
        /// Enable manual container attachment
        #[arg(long)]
        attachable: bool,
        /// Restrict external access to the network
        #[arg(long)]
        internal: bool,
        /// Set metadata on a network
        #[arg(long)]
        label: Vec<String>,
        /// Set driver specific options
        #[arg(short, long = "opt")]
        opt: Vec<String>,
        name: String,
    },
    /// List networks
    #[command(alias = "list")]
    Ls {
        #[arg(short, long)]
        quiet: bool,
        #[arg(long)]
        format: Option<String>,
    },
    /// Display detailed information on one or more networks
    Inspect {
        #[arg(short, long)]
        format: Option<String>,
        #[arg(required = true)]
        networks: Vec<String>,
    },
    /// Remove one or more networks
    #[command(alias = "remove")]
    Rm {
        #[arg(required = true)]
        networks: Vec<String>,
    },
}

fn pairs(list: &[String]) -> BTreeMap<String, String> {
    list.iter()
        .map(|l| {
            let (k, v) = l.split_once('=').unwrap_or((l.as_str(), ""));
            (k.to_string(), v.to_string())
        })
        .collect()
}

fn row(n: &Value) -> Value {
    json!({
        "ID": shoal_format::truncate_id(n["Id"].as_str().unwrap_or("")),
        "Name": n["Name"],
        "Driver": n["Driver"],
        "Scope": n["Scope"],
        "Internal": n["Internal"].as_bool().unwrap_or(false).to_string(),
    })
}

pub async fn run(host: &str, cmd: NetworkCommand) -> CliResult {
    match cmd {
        NetworkCommand::Create {
            driver,
            subnet,
            gateway,
            attachable,
            internal,
            label,
            opt,
            name,
        } => {
            let req = NetworkCreate {
                name,
                driver,
                subnet,
                gateway,
                attachable,
                internal,
                labels: pairs(&label),
                options: pairs(&opt),
            };
            match call(host, ApiRequest::NetworkCreate(req)).await? {
                ApiReply::ServiceCreated { id } => {
                    println!("{id}");
                    Ok(())
                }
                other => Err(unexpected(other)),
            }
        }
        NetworkCommand::Ls { quiet, format } => {
            let networks = match call(host, ApiRequest::NetworkList).await? {
                ApiReply::Networks { networks } => networks,
                other => return Err(unexpected(other)),
            };
            let mut rows: Vec<Value> = networks.iter().map(row).collect();
            rows.sort_by(|a, b| {
                super::node::natural_cmp(
                    a["Name"].as_str().unwrap_or(""),
                    b["Name"].as_str().unwrap_or(""),
                )
            });
            let format = if quiet {
                Some("{{.ID}}".to_string())
            } else {
                format
            };
            let text = shoal_format::render_list(
                format.as_deref(),
                "{{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}",
                &[
                    ("ID", "NETWORK ID"),
                    ("Name", "NAME"),
                    ("Driver", "DRIVER"),
                    ("Scope", "SCOPE"),
                    ("Internal", "INTERNAL"),
                ],
                &rows,
            )
            .map_err(|e| ApiError::plain(e.to_string()))?;
            print!("{text}");
            Ok(())
        }
        NetworkCommand::Inspect { format, networks } => {
            let objects = match call(
                host,
                ApiRequest::NetworkInspect {
                    references: networks.clone(),
                },
            )
            .await?
            {
                ApiReply::Objects { objects } => objects,
                other => return Err(unexpected(other)),
            };
            let (values, missing) = super::split_found(&networks, objects);
            let text = shoal_format::render_inspect(&values, format.as_deref())
                .map_err(|e| ApiError::plain(e.to_string()))?;
            print!("{text}");
            super::missing_error(&missing, |_, e| format!("Error response from daemon: {e}"))
        }
        NetworkCommand::Rm { networks } => {
            super::remove_each(host, networks, |reference| ApiRequest::NetworkRemove {
                reference,
            })
            .await
        }
    }
}
