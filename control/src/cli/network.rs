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
        /// Do not truncate the output
        #[arg(long)]
        no_trunc: bool,
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

/// docker's networkContext: the placeholders of `network ls --format` (`.Label "k"` is
/// the one-argument method `"Label()"`).
fn row(n: &Value, no_trunc: bool) -> Value {
    let id = n["Id"].as_str().unwrap_or("");
    let labels = n["Labels"].as_object().cloned().unwrap_or_default();
    let mut joined: Vec<String> = labels
        .iter()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
        .collect();
    joined.sort();
    let flag = |k: &str| n[k].as_bool().unwrap_or(false).to_string();
    json!({
        "ID": if no_trunc { id.to_string() } else { shoal_format::truncate_id(id) },
        "Name": n["Name"],
        "Driver": n["Driver"],
        "Scope": n["Scope"],
        "IPv4": flag("EnableIPv4"),
        "IPv6": flag("EnableIPv6"),
        "Internal": flag("Internal"),
        "Labels": joined.join(","),
        "Label()": labels,
        "CreatedAt": super::go_time_string(n["Created"].as_str().unwrap_or("")),
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
        NetworkCommand::Ls {
            quiet,
            no_trunc,
            format,
        } => {
            let networks = match call(host, ApiRequest::NetworkList).await? {
                ApiReply::Networks { networks } => networks,
                other => return Err(unexpected(other)),
            };
            let mut rows: Vec<Value> = networks.iter().map(|n| row(n, no_trunc)).collect();
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
                    ("IPv4", "IPV4"),
                    ("IPv6", "IPV6"),
                    ("Internal", "INTERNAL"),
                    ("Labels", "LABELS"),
                    ("CreatedAt", "CREATED AT"),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn ls(format: &str) -> String {
        let n = json!({
            "Name": "webapp_default", "Id": "k9wp2m4n6q8rabcdefghijklm",
            "Created": "2026-11-27T06:32:29.65Z", "Scope": "swarm", "Driver": "overlay",
            "EnableIPv4": true, "EnableIPv6": false, "Internal": false,
            "Labels": {"com.docker.stack.namespace": "webapp", "a": "b"},
        });
        shoal_format::render_list(Some(format), "", &[], &[row(&n, false)]).unwrap()
    }

    /// docker's network ls placeholders, `.Label "k"` included, and its json keys.
    #[test]
    fn ls_placeholders_are_docker_s() {
        assert_eq!(
            ls(r#"{{.IPv4}} {{.IPv6}} {{.Internal}} {{.Label "com.docker.stack.namespace"}} {{.Label "x"}}|{{.Labels}}|{{.CreatedAt}}"#),
            "true false false webapp |a=b,com.docker.stack.namespace=webapp|2026-11-27 06:32:29.65 +0000 UTC\n"
        );
        assert_eq!(
            ls("json"),
            r#"{"CreatedAt":"2026-11-27 06:32:29.65 +0000 UTC","Driver":"overlay","ID":"k9wp2m4n6q8r","IPv4":"true","IPv6":"false","Internal":"false","Labels":"a=b,com.docker.stack.namespace=webapp","Name":"webapp_default","Scope":"swarm"}"#.to_string() + "\n"
        );
    }
}
