//! `shoal lab ...`: the lab's command line, a thin layer over the lab functions.

use std::io;
use std::os::unix::net::UnixStream;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;

use anyhow::{Context, Result};

use super::daemon::{daemon_pid, host_command, start_daemons, stop_node};
use super::state::{load, validate_lab_name, LabState};
use super::{
    teardown, teardown_all, Lab, LabSpec, CLIENT, DEFAULT_LAB, DEFAULT_MTU, DEFAULT_NODES,
    DEFAULT_UNDERLAY,
};

#[derive(Debug, clap::Subcommand)]
pub enum LabCommand {
    /// Build a lab: a switch, node namespaces each running shoald, and a client namespace
    Up {
        /// Name of the lab
        #[arg(long, default_value = DEFAULT_LAB)]
        name: String,
        /// Number of nodes, named vm1..vmN (default 3)
        #[arg(long, conflicts_with = "node_names")]
        nodes: Option<usize>,
        /// Node names instead of vm1..vmN
        #[arg(value_name = "NAME")]
        node_names: Vec<String>,
        /// Underlay subnet; node i gets .(10+i), the client .2
        #[arg(long, default_value = DEFAULT_UNDERLAY)]
        underlay: String,
        /// MTU of the underlay veths and bridge
        #[arg(long, default_value_t = DEFAULT_MTU)]
        mtu: u32,
        /// Build the network only; start no daemons
        #[arg(long)]
        no_daemons: bool,
        /// An extra argument for every node's shoald, e.g.
        /// --shoald-arg=--lb-udp-timeout=2s (repeat for more; kept for `lab start`)
        #[arg(long = "shoald-arg", value_name = "ARG", allow_hyphen_values = true)]
        shoald_args: Vec<String>,
    },
    /// List a lab's hosts and their daemons
    Ls {
        /// Name of the lab
        #[arg(long, default_value = DEFAULT_LAB)]
        name: String,
    },
    /// Run a command inside a node's (or the client's) namespace, with SHOAL_HOST set for nodes
    Exec {
        /// Name of the lab
        #[arg(long, default_value = DEFAULT_LAB)]
        name: String,
        /// A node name, or "client"
        node: String,
        #[arg(
            value_name = "CMD",
            required = true,
            trailing_var_arg = true,
            allow_hyphen_values = true
        )]
        command: Vec<String>,
    },
    /// Power loss: kill a node's daemon and every process in its namespace
    Stop {
        /// Name of the lab
        #[arg(long, default_value = DEFAULT_LAB)]
        name: String,
        node: String,
    },
    /// Start a stopped node's daemon again, on the same data root
    Start {
        /// Name of the lab
        #[arg(long, default_value = DEFAULT_LAB)]
        name: String,
        node: String,
    },
    /// Remove a lab (or, with --all, every lab and every leftover of crashed runs)
    Down {
        /// Name of the lab (default "shoal")
        #[arg(long, conflicts_with = "all")]
        name: Option<String>,
        /// Remove every lab and every leftover of crashed runs
        #[arg(long)]
        all: bool,
    },
}

/// Runs one lab command; returns the process exit code.
pub fn run(cmd: LabCommand) -> Result<i32> {
    match cmd {
        LabCommand::Up {
            name,
            nodes,
            node_names,
            underlay,
            mtu,
            no_daemons,
            shoald_args,
        } => {
            let mut spec = LabSpec::new(&name, nodes.unwrap_or(DEFAULT_NODES));
            if !node_names.is_empty() {
                spec.nodes = node_names;
            }
            spec.underlay = underlay;
            spec.mtu = mtu;
            spec.start_daemons = !no_daemons;
            spec.daemon_args = shoald_args;
            let mut lab = Lab::up(spec)?;
            // The lab outlives this command.
            lab.torn_down = true;
            print_table(&lab.state);
            let first = &lab.state.nodes[0].name;
            let flag = if name == DEFAULT_LAB {
                String::new()
            } else {
                format!(" --name {name}")
            };
            println!("\ntry: shoal lab exec{flag} {first} -- shoal node ls");
            Ok(0)
        }
        LabCommand::Ls { name } => {
            print_table(&load(&name)?);
            Ok(0)
        }
        LabCommand::Exec {
            name,
            node,
            command,
        } => {
            let state = load(&name)?;
            let status = match host_command(&state, &node, &command)?.status() {
                Ok(status) => status,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    eprintln!(
                        "shoal lab exec: {}: command not found in {node}",
                        command[0]
                    );
                    return Ok(127);
                }
                Err(e) => return Err(e).with_context(|| format!("running {command:?} in {node}")),
            };
            Ok(status
                .code()
                .or_else(|| status.signal().map(|s| 128 + s))
                .unwrap_or(1))
        }
        LabCommand::Stop { name, node } => {
            stop_node(&load(&name)?, &node)?;
            println!("{node}: stopped");
            Ok(0)
        }
        LabCommand::Start { name, node } => {
            let state = load(&name)?;
            let shoald = match std::env::var_os("SHOALD") {
                Some(path) => Some(PathBuf::from(path)),
                None if state.shoald.is_none() => Some(super::find_shoald()?),
                None => None,
            };
            start_daemons(&state, &[&node], shoald.as_deref())?;
            let pid = daemon_pid(&state, &node).map_or("?".to_string(), |p| p.to_string());
            println!("{node}: running pid {pid}");
            Ok(0)
        }
        LabCommand::Down { name, all } => {
            if all {
                teardown_all()?;
            } else {
                let name = name.unwrap_or_else(|| DEFAULT_LAB.to_string());
                validate_lab_name(&name)?;
                teardown(&name)?;
            }
            Ok(0)
        }
    }
}

fn print_table(state: &LabState) {
    let mut rows = vec![[
        "NODE".to_string(),
        "ADDRESS".to_string(),
        "DAEMON".to_string(),
        "SOCKET".to_string(),
    ]];
    for host in &state.nodes {
        let socket = state.socket(&host.name);
        let daemon = match daemon_pid(state, &host.name) {
            Some(pid) if UnixStream::connect(&socket).is_ok() => format!("running pid {pid}"),
            Some(pid) => format!("running pid {pid} (not listening)"),
            None => "stopped".to_string(),
        };
        rows.push([
            host.name.clone(),
            host.address.to_string(),
            daemon,
            socket.display().to_string(),
        ]);
    }
    rows.push([
        CLIENT.to_string(),
        state.client.address.to_string(),
        "-".to_string(),
        "-".to_string(),
    ]);
    let widths: Vec<usize> = (0..4)
        .map(|i| rows.iter().map(|r| r[i].len()).max().unwrap_or(0))
        .collect();
    for row in rows {
        println!(
            "{:<w0$}   {:<w1$}   {:<w2$}   {}",
            row[0],
            row[1],
            row[2],
            row[3],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2]
        );
    }
}
