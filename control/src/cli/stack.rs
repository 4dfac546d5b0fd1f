//! `shoal stack ...`: deploy (compose files), ls, services, ps, rm.

use std::collections::BTreeMap;

use clap::Subcommand;

use super::service::{self, PsArgs};
use super::task_filter::TaskFilter;
use super::{call, unexpected, CliResult};
use crate::api::{check_stack_name, ApiError, ApiReply, ApiRequest, StackDeploy};
use crate::types::Role;

#[derive(Subcommand, Debug)]
pub enum StackCommand {
    /// Deploy a new stack or update an existing stack
    #[command(alias = "up")]
    Deploy {
        // A string slice as docker's: repeated, or comma-separated (`-c a.yml,b.yml`).
        // Not a required flag: docker 28 says which is missing when it loads the files.
        /// Path to a Compose file, or "-" to read from stdin
        #[arg(
            short = 'c',
            long = "compose-file",
            value_delimiter = ',',
            value_name = "strings"
        )]
        compose_file: Vec<String>,
        /// Prune services that are no longer referenced
        #[arg(long)]
        prune: bool,
        /// Send registry authentication details to Swarm agents
        #[arg(long)]
        with_registry_auth: bool,
        // Checked as docker checks it, after the compose files load; Shoal pulls no images,
        // so the value changes nothing.
        /// Query the registry to resolve image digest and supported platforms ("always", "changed", "never")
        #[arg(long, default_value = "always")]
        resolve_image: String,
        // An `Option`, as docker warns when the flag is not given; pflag.rs makes it a
        // boolean flag as docker's.
        /// Exit immediately instead of waiting for the stack services to converge (default true)
        #[arg(short, long)]
        detach: Option<bool>,
        /// Suppress progress output
        #[arg(short, long)]
        quiet: bool,
        name: String,
    },
    /// List stacks
    #[command(alias = "list")]
    Ls {
        #[arg(long, help = super::help::FORMAT_HELP)]
        format: Option<String>,
    },
    /// List the services in the stack
    Services {
        /// Only display IDs
        #[arg(short, long)]
        quiet: bool,
        /// Filter output based on conditions provided
        #[arg(short, long, value_name = "filter")]
        filter: Vec<String>,
        #[arg(long, help = super::help::FORMAT_HELP)]
        format: Option<String>,
        name: String,
    },
    /// List the tasks in the stack
    Ps {
        /// Do not truncate output
        #[arg(long)]
        no_trunc: bool,
        /// Only display task IDs
        #[arg(short, long)]
        quiet: bool,
        /// Filter output based on conditions provided
        #[arg(short, long, value_name = "filter")]
        filter: Vec<String>,
        #[arg(long, help = super::help::FORMAT_HELP)]
        format: Option<String>,
        name: String,
    },
    /// Remove one or more stacks
    #[command(alias = "remove", alias = "down")]
    Rm {
        #[arg(required = true)]
        names: Vec<String>,
    },
}

/// Read and parse each file in turn, as docker's loadConfigFiles: the first file that cannot
/// be read or parsed stops the deploy before any file is loaded. `-` reads stdin (given twice,
/// the second read finds nothing, as docker's).
fn read_files(paths: &[String]) -> Result<Vec<shoal_compose::ParsedFile>, ApiError> {
    // docker-cli's GetConfigDetails; pflag reads `-c ""` as no file at all.
    if paths.is_empty() || paths == [""] {
        return Err(ApiError::plain(
            "Specify a Compose file (with --compose-file)",
        ));
    }
    let mut files = Vec::new();
    for p in paths {
        let text = if p == "-" {
            let mut s = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)
                .map_err(|e| ApiError::plain(format!("reading stdin: {e}")))?;
            s
        } else {
            std::fs::read_to_string(p)
                .map_err(|e| ApiError::plain(format!("open {p}: {}", go_io_error(&e))))?
        };
        // Relative paths (bind mounts, env_file) resolve against the file's directory.
        let shown = if p == "-" {
            p.clone()
        } else {
            std::path::absolute(p)
                .map(|a| a.display().to_string())
                .unwrap_or_else(|_| p.clone())
        };
        files
            .push(shoal_compose::parse(&shown, &text).map_err(|e| ApiError::plain(e.to_string()))?);
    }
    Ok(files)
}

/// An I/O error as Go prints it: the system's text in lower case, without Rust's
/// ` (os error N)`.
fn go_io_error(e: &std::io::Error) -> String {
    let text = e.to_string();
    let text = match (e.raw_os_error(), text.rfind(" (os error ")) {
        (Some(_), Some(i)) => &text[..i],
        _ => &text,
    };
    text.to_lowercase()
}

/// The stack's secrets or configs with their files read (docker's fileObjectConfig:
/// `os.ReadFile`, its error as Go prints it).
fn stack_objects(
    decls: &[shoal_compose::ObjectDecl],
) -> Result<Vec<crate::api::StackObject>, ApiError> {
    decls
        .iter()
        .map(|d| {
            let data = if d.external {
                None
            } else {
                let path = d.file.as_deref().unwrap_or("");
                Some(crate::secrets::Data(std::fs::read(path).map_err(|e| {
                    ApiError::plain(format!("open {path}: {}", go_io_error(&e)))
                })?))
            };
            Ok(crate::api::StackObject {
                name: d.name.clone(),
                labels: d.labels.clone(),
                data,
            })
        })
        .collect()
}

/// docker's `checkDaemonIsSwarmManager`, on the client before anything is created.
async fn check_manager(host: &str) -> CliResult {
    match call(host, ApiRequest::Info).await? {
        ApiReply::Info(i) if i.role == Some(Role::Manager) => Ok(()),
        ApiReply::Info(_) => Err(ApiError::plain(
            "this node is not a swarm manager. Use \"shoal swarm init\" or \"shoal swarm join\" to connect this node to swarm and try again",
        )),
        other => Err(unexpected(other)),
    }
}

pub async fn run(host: &str, cmd: StackCommand) -> CliResult {
    match cmd {
        StackCommand::Deploy {
            compose_file,
            prune,
            detach,
            quiet,
            name,
            resolve_image,
            ..
        } => {
            check_stack_name(&name).map_err(ApiError::plain)?;
            let files = read_files(&compose_file)?;
            let env: BTreeMap<String, String> = std::env::vars().collect();
            let stack = shoal_compose::load_parsed(&name, files, &env)
                .map_err(|e| ApiError::plain(e.to_string()))?;
            for w in &stack.warnings {
                eprintln!("{w}\n");
            }
            if !matches!(resolve_image.as_str(), "always" | "changed" | "never") {
                return Err(ApiError::plain(format!(
                    "invalid option {resolve_image} for flag --resolve-image"
                )));
            }
            if detach.is_none() {
                eprintln!("Since --detach=false was not specified, tasks will be created in the background.\nIn a future release, --detach=false will become the default.");
            }
            check_manager(host).await?;
            let req = StackDeploy {
                name: name.clone(),
                services: stack.services.clone(),
                networks: stack
                    .networks
                    .iter()
                    .map(|n| {
                        let create = crate::api::NetworkCreate {
                            name: n.name.clone(),
                            driver: n.driver.clone(),
                            subnet: n.subnet.clone(),
                            gateway: n.gateway.clone(),
                            attachable: n.attachable,
                            internal: n.internal,
                            labels: n.labels.clone(),
                            options: n.driver_opts.clone(),
                        };
                        (create, n.external)
                    })
                    .collect(),
                prune,
                secrets: stack_objects(&stack.secrets)?,
                configs: stack_objects(&stack.configs)?,
            };
            match call(host, ApiRequest::StackDeploy(req)).await? {
                ApiReply::Lines { lines, errors } => {
                    for l in lines {
                        println!("{l}");
                    }
                    if !errors.is_empty() {
                        return Err(ApiError::plain(errors.join("\n")));
                    }
                }
                other => return Err(unexpected(other)),
            }
            if detach != Some(false) {
                return Ok(());
            }
            // docker waits on each service by ID, in the order it deployed them.
            let mut errors = Vec::new();
            for spec in &stack.services {
                let id = match call(
                    host,
                    ApiRequest::ServiceGetSpec {
                        reference: spec.name.clone(),
                    },
                )
                .await?
                {
                    ApiReply::ServiceSpec { id, .. } => id,
                    other => return Err(unexpected(other)),
                };
                if let Err(e) = super::progress::wait(host, &id, quiet).await {
                    errors.push(format!("{id}: {e}"));
                }
            }
            if errors.is_empty() {
                Ok(())
            } else {
                Err(ApiError::plain(errors.join("\n")))
            }
        }
        StackCommand::Ls { format } => {
            let stacks = match call(host, ApiRequest::StackList).await? {
                ApiReply::Stacks { stacks } => stacks,
                other => return Err(unexpected(other)),
            };
            let rows: Vec<serde_json::Value> = stacks
                .iter()
                .map(|(n, c)| serde_json::json!({"Name": n, "Services": c.to_string()}))
                .collect();
            let text = shoal_format::render_list(
                format.as_deref(),
                "{{.Name}}\t{{.Services}}",
                &[("Name", "NAME"), ("Services", "SERVICES")],
                &rows,
            )
            .map_err(|e| ApiError::plain(e.to_string()))?;
            print!("{text}");
            Ok(())
        }
        StackCommand::Services {
            quiet,
            filter,
            format,
            name,
        } => {
            // docker's flag parser reads the filter before the command checks the name.
            let filter = TaskFilter::parse(&filter)?;
            check_stack_name(&name).map_err(ApiError::plain)?;
            // The stack's services are those of its namespace label, which docker's CLI
            // adds to the filter; the daemon checks the rest.
            let reply = call(
                host,
                ApiRequest::ServiceList {
                    references: vec![],
                    stack: Some(name.clone()),
                },
            )
            .await?;
            let ApiReply::Services { services } = reply else {
                return Err(unexpected(reply));
            };
            let services = service::filter_services(services, &filter)?;
            if services.is_empty() {
                eprintln!("Nothing found in stack: {name}");
                return Ok(());
            }
            service::print_services(&services, quiet, format)
        }
        StackCommand::Ps {
            no_trunc,
            quiet,
            filter,
            format,
            name,
        } => {
            check_stack_name(&name).map_err(ApiError::plain)?;
            service::ps(
                host,
                PsArgs {
                    no_trunc,
                    quiet,
                    filter,
                    format,
                    services: vec![],
                },
                Some(name),
            )
            .await
        }
        StackCommand::Rm { names } => {
            for name in &names {
                check_stack_name(name).map_err(ApiError::plain)?;
            }
            // docker goes on with the next stack when one fails in part, then says which.
            let mut failed = Vec::new();
            for name in names {
                match call(host, ApiRequest::StackRemove { name: name.clone() }).await? {
                    ApiReply::Lines { lines, .. } if lines.is_empty() => {
                        eprintln!("Nothing found in stack: {name}")
                    }
                    ApiReply::Lines { lines, errors } => {
                        for l in lines {
                            println!("{l}");
                        }
                        for e in &errors {
                            eprintln!("{e}");
                        }
                        if !errors.is_empty() {
                            failed.push(format!(
                                "failed to remove some resources from stack: {name}"
                            ));
                        }
                    }
                    other => return Err(unexpected(other)),
                }
            }
            if failed.is_empty() {
                Ok(())
            } else {
                Err(ApiError::plain(failed.join("\n")))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    /// docker 28's words for a deploy without a compose file (`-c ""` is none either),
    /// given when it loads the files, not as a required flag.
    #[test]
    fn a_compose_file_is_asked_for() {
        use clap::Parser;
        #[derive(clap::Parser)]
        struct Stack {
            #[command(subcommand)]
            cmd: super::StackCommand,
        }
        for args in [
            &["stack", "deploy", "webapp"][..],
            &["stack", "deploy", "-c", "", "webapp"],
        ] {
            let Stack { cmd } = Stack::try_parse_from(args).expect("parses");
            let super::StackCommand::Deploy { compose_file, .. } = cmd else {
                panic!("deploy");
            };
            assert_eq!(
                super::read_files(&compose_file).unwrap_err().to_string(),
                "Specify a Compose file (with --compose-file)",
                "{args:?}"
            );
        }
    }

    /// Go's text for a failed open: the system's message, without Rust's `(os error N)`.
    #[test]
    fn io_errors_read_as_go_prints_them() {
        let e = std::io::Error::from_raw_os_error(2);
        assert_eq!(super::go_io_error(&e), "no such file or directory");
        let e = std::io::Error::from_raw_os_error(13);
        assert_eq!(super::go_io_error(&e), "permission denied");
    }
}
