//! `shoal swarm ...`: init, join, join-token, update, unlock, unlock-key, leave.

use clap::{Args, Subcommand};

use super::{call, go_duration_flag, unexpected, CliResult};
use crate::api::{ApiError, ApiReply, ApiRequest, InitRequest, JoinRequest, SwarmUpdate};
use crate::types::{Availability, Role};

#[derive(Subcommand, Debug)]
pub enum SwarmCommand {
    /// Initialize a swarm
    Init(InitArgs),
    /// Join a swarm as a node and/or manager
    Join(JoinArgs),
    /// Manage join tokens
    #[command(name = "join-token")]
    JoinToken(JoinTokenArgs),
    /// Update the swarm
    Update(UpdateArgs),
    /// Unlock swarm
    Unlock,
    /// Manage the unlock key
    #[command(name = "unlock-key")]
    UnlockKey(UnlockKeyArgs),
    /// Display and rotate the root CA
    Ca(CaArgs),
    /// Leave the swarm
    Leave {
        /// Force this node to leave the swarm, ignoring warnings
        #[arg(short, long)]
        force: bool,
    },
}

#[derive(Args, Debug)]
pub struct InitArgs {
    /// Advertised address (format: "<ip|interface>[:port]")
    #[arg(long)]
    advertise_addr: Option<String>,
    /// Listen address (format: "<ip|interface>[:port]") (default 0.0.0.0:2377)
    #[arg(long, value_name = "node-addr")]
    listen_addr: Option<String>,
    /// Force create a new cluster from current state
    #[arg(long)]
    force_new_cluster: bool,
    /// Dispatcher heartbeat period (ns|us|ms|s|m|h) (default 5s)
    #[arg(long, value_parser = go_duration_flag, allow_hyphen_values = true)]
    dispatcher_heartbeat: Option<i64>,
    /// Task history retention limit (default 5)
    #[arg(long, value_name = "int")]
    task_history_limit: Option<u64>,
    /// default address pool in CIDR format (default [])
    #[arg(long, value_name = "ipNetSlice")]
    default_addr_pool: Option<String>,
    /// default address pool subnet mask length (default 24)
    #[arg(long, value_name = "uint32")]
    default_addr_pool_mask_length: Option<u8>,
    #[arg(
        long,
        value_name = "uint32",
        help = "Port number to use for data path traffic (1024 - 49151). If no value is set or is set to 0, the default port (4789) is used."
    )]
    data_path_port: Option<u16>,
    /// Availability of the node ("active", "pause", "drain") (default "active")
    #[arg(long)]
    availability: Option<String>,
    /// Enable manager autolocking (requiring an unlock key to start a stopped manager)
    #[arg(long)]
    autolock: bool,
    /// Validity period for node certificates (ns|us|ms|s|m|h) (default 2160h0m0s)
    #[arg(long, value_parser = go_duration_flag, allow_hyphen_values = true)]
    cert_expiry: Option<i64>,
}

/// `swarm ca`: docker's flags. Shoal's CA is always its own (it holds the root's key):
/// `--external-ca` is refused in plain words.
#[derive(Args, Debug)]
pub struct CaArgs {
    /// Rotate the swarm CA - if no certificate or key are provided, new ones will be generated
    #[arg(long)]
    rotate: bool,
    /// Path to the PEM-formatted root CA certificate to use for the new cluster
    #[arg(long, value_parser = pem_file, value_name = "pem-file")]
    ca_cert: Option<String>,
    /// Path to the PEM-formatted root CA key to use for the new cluster
    #[arg(long, value_parser = pem_file, value_name = "pem-file")]
    ca_key: Option<String>,
    /// Validity period for node certificates (ns|us|ms|s|m|h) (default 2160h0m0s)
    #[arg(long, value_parser = go_duration_flag, allow_hyphen_values = true)]
    cert_expiry: Option<i64>,
    /// Specifications of one or more certificate signing endpoints
    #[arg(long, value_name = "external-ca")]
    external_ca: Option<String>,
    /// Exit immediately instead of waiting for the root rotation to converge
    #[arg(short, long)]
    detach: bool,
    /// Suppress progress output
    #[arg(short, long)]
    quiet: bool,
}

impl CaArgs {
    /// docker-cli's checks of the flags; with `--rotate`, the rotation to ask for.
    fn check(&self) -> Result<Option<crate::ca_rotation::CaRotate>, ApiError> {
        if !self.rotate {
            let given = [
                ("ca-cert", self.ca_cert.is_some()),
                ("ca-key", self.ca_key.is_some()),
                ("cert-expiry", self.cert_expiry.is_some()),
                ("external-ca", self.external_ca.is_some()),
            ];
            if let Some((flag, _)) = given.iter().find(|(_, on)| *on) {
                return Err(ApiError::plain(format!(
                    "`--{flag}` flag requires the `--rotate` flag to update the CA"
                )));
            }
            return Ok(None);
        }
        let external = self.external_ca.as_deref().is_some_and(|e| !e.is_empty());
        if external && self.ca_cert.is_none() {
            return Err(ApiError::plain(
                "rotating to an external CA requires the `--ca-cert` flag to specify the external CA's cert - \
                 to add an external CA with the current root CA certificate, use the `update` command instead",
            ));
        }
        if external {
            return Err(ApiError::plain(
                "external CAs are not supported by shoal: rotate to a root CA whose key you give \
                 (`--ca-cert` and `--ca-key`), or let shoal make one (`--rotate` alone)",
            ));
        }
        if self.ca_cert.is_some() && self.ca_key.is_none() {
            return Err(ApiError::plain(
                "the --ca-cert flag requires that a --ca-key flag and/or --external-ca flag be provided as well",
            ));
        }
        Ok(Some(crate::ca_rotation::CaRotate {
            ca_cert_pem: self.ca_cert.clone(),
            ca_key_pem: self.ca_key.clone(),
            cert_expiry_s: self.cert_expiry.map(cert_expiry_s),
        }))
    }
}

/// docker-cli's `PEMFile` flag value: the file's text, refused (a flag error) unless it
/// reads and holds a PEM block, in Go's words.
fn pem_file(path: &str) -> Result<String, String> {
    let bytes = std::fs::read(path).map_err(|e| {
        let why = e
            .raw_os_error()
            .map(|c| nix::errno::Errno::from_raw(c).desc().to_string())
            .unwrap_or_else(|| e.to_string());
        let mut why = why.chars();
        let why: String = why
            .next()
            .map(|c| c.to_ascii_lowercase())
            .into_iter()
            .chain(why)
            .collect();
        format!("open {path}: {why}")
    })?;
    let text = String::from_utf8_lossy(&bytes).into_owned();
    if !text.contains("-----BEGIN ") {
        return Err("file contents must be in PEM format".to_string());
    }
    Ok(text)
}

#[derive(Args, Debug)]
pub struct UnlockKeyArgs {
    /// Only display token
    #[arg(short, long)]
    quiet: bool,
    /// Rotate unlock key
    #[arg(long)]
    rotate: bool,
}

/// `swarm update`'s flags: docker's defaults, applied only when given (docker's
/// `flags.Changed`). Shoal has no external CA, certificate expiry or snapshot settings
/// to change, so it offers no flags for them.
#[derive(Args, Debug)]
pub struct UpdateArgs {
    /// Dispatcher heartbeat period (ns|us|ms|s|m|h) (default 5s)
    #[arg(long, value_parser = go_duration_flag, allow_hyphen_values = true)]
    dispatcher_heartbeat: Option<i64>,
    /// Task history retention limit (default 5)
    #[arg(long, value_name = "int")]
    task_history_limit: Option<u64>,
    /// Change manager autolocking setting (true|false)
    #[arg(long)]
    autolock: Option<bool>,
    /// Validity period for node certificates (ns|us|ms|s|m|h) (default 2160h0m0s)
    #[arg(long, value_parser = go_duration_flag, allow_hyphen_values = true)]
    cert_expiry: Option<i64>,
}

impl UpdateArgs {
    /// The update these flags ask for, or `None` when no flag was given (docker then
    /// prints the command's help and exits 0).
    fn request(&self) -> Result<Option<SwarmUpdate>, ApiError> {
        let update = SwarmUpdate {
            dispatcher_heartbeat_ms: heartbeat_ms(self.dispatcher_heartbeat)?,
            task_history_limit: self.task_history_limit,
            autolock: self.autolock,
            cert_expiry_s: self.cert_expiry.map(cert_expiry_s),
            ..Default::default()
        };
        Ok((update != SwarmUpdate::default()).then_some(update))
    }
}

/// A `--cert-expiry` of `ns` nanoseconds in whole seconds (a negative one is 0, below any
/// minimum the manager accepts).
fn cert_expiry_s(ns: i64) -> u64 {
    u64::try_from(ns).unwrap_or(0) / 1_000_000_000
}

/// The heartbeat period a `--dispatcher-heartbeat` of `ns` nanoseconds asks for, checked
/// (a negative one is below the least allowed).
fn heartbeat_ms(ns: Option<i64>) -> Result<Option<u64>, ApiError> {
    ns.map(|ns| {
        crate::api::check_heartbeat(std::time::Duration::from_nanos(
            u64::try_from(ns).unwrap_or(0),
        ))
    })
    .transpose()
    .map_err(ApiError::plain)
}

#[derive(Args, Debug)]
pub struct JoinArgs {
    /// Token for entry into the swarm
    #[arg(long)]
    token: String,
    /// Advertised address (format: "<ip|interface>[:port]")
    #[arg(long)]
    advertise_addr: Option<String>,
    /// Listen address (format: "<ip|interface>[:port]") (default 0.0.0.0:2377)
    #[arg(long, value_name = "node-addr")]
    listen_addr: Option<String>,
    /// Availability of the node ("active", "pause", "drain") (default "active")
    #[arg(long)]
    availability: Option<String>,
    /// HOST:PORT of a manager
    remote: String,
}

#[derive(Args, Debug)]
pub struct JoinTokenArgs {
    /// Only display token
    #[arg(short, long)]
    quiet: bool,
    /// Rotate join token
    #[arg(long)]
    rotate: bool,
    /// worker|manager (checked when the command runs: docker says `unknown role X`, exit 1)
    role: String,
}

fn parse_role(s: &str) -> Result<Role, String> {
    match s {
        "worker" => Ok(Role::Worker),
        "manager" => Ok(Role::Manager),
        _ => Err(format!("unknown role {s}")),
    }
}

/// `swarm init/join --availability`: docker's CLI takes it in any case and refuses
/// anything else in these words, before asking the daemon.
fn parse_availability(s: Option<&str>) -> Result<Option<Availability>, ApiError> {
    s.map(|s| {
        s.to_ascii_lowercase().parse().map_err(|_| {
            ApiError::plain(format!(
                "invalid availability {s:?}, only active, pause and drain are supported"
            ))
        })
    })
    .transpose()
}

/// What docker-cli's printUnlockCommand prints.
fn unlock_command(key: &str) -> String {
    format!(
        "To unlock a swarm manager after it restarts, run the `shoal swarm unlock`\n\
         command and provide the following key:\n\n    {key}\n\n\
         Remember to store this key in a password manager, since without it you\n\
         will not be able to restart the manager.\n"
    )
}

/// The swarm's unlock key ("" while autolock is off).
async fn unlock_key(host: &str) -> Result<String, ApiError> {
    match call(host, ApiRequest::UnlockKey).await? {
        ApiReply::UnlockKey { key } => Ok(key),
        other => Err(unexpected(other)),
    }
}

/// The unlock key after a change that made one, as docker words a failure to fetch it.
async fn fetch_unlock_key(host: &str) -> Result<String, ApiError> {
    unlock_key(host)
        .await
        .map_err(|e| ApiError::plain(format!("could not fetch unlock key: {e}")))
}

/// docker-cli's readKey: a prompt without echo on a terminal, else one line of stdin.
fn read_unlock_key() -> Result<String, ApiError> {
    use std::io::{BufRead, IsTerminal, Write};
    let stdin = std::io::stdin();
    let mut line = String::new();
    if stdin.is_terminal() {
        print!("Enter unlock key: ");
        let _ = std::io::stdout().flush();
        let saved = nix::sys::termios::tcgetattr(&stdin).ok();
        if let Some(t) = &saved {
            let mut quiet = t.clone();
            quiet
                .local_flags
                .remove(nix::sys::termios::LocalFlags::ECHO);
            let _ =
                nix::sys::termios::tcsetattr(&stdin, nix::sys::termios::SetArg::TCSANOW, &quiet);
        }
        let read = stdin.lock().read_line(&mut line);
        if let Some(t) = &saved {
            let _ = nix::sys::termios::tcsetattr(&stdin, nix::sys::termios::SetArg::TCSANOW, t);
        }
        println!();
        read.map_err(|e| ApiError::plain(e.to_string()))?;
        Ok(line.trim_end_matches(['\r', '\n']).to_string())
    } else {
        stdin
            .lock()
            .read_line(&mut line)
            .map_err(|e| ApiError::plain(e.to_string()))?;
        Ok(line.trim().to_string())
    }
}

/// docker-cli's displayTrustRoot.
fn print_trust_root(reply: ApiReply) -> CliResult {
    match reply {
        ApiReply::TrustRoot { pem, .. } if !pem.trim().is_empty() => {
            println!("{}", pem.trim());
            Ok(())
        }
        ApiReply::TrustRoot { .. } => Err(ApiError::plain("no CA information available")),
        other => Err(unexpected(other)),
    }
}

fn join_command(role: Role, token: &str, addr: &str) -> String {
    format!(
        "To add a {role} to this swarm, run the following command:\n\n    shoal swarm join --token {token} {addr}\n"
    )
}

pub async fn run(host: &str, cmd: SwarmCommand) -> CliResult {
    match cmd {
        SwarmCommand::Init(a) => {
            let force = a.force_new_cluster;
            let req = InitRequest {
                advertise_addr: a.advertise_addr,
                listen_addr: a.listen_addr,
                force_new_cluster: force,
                dispatcher_heartbeat_ms: heartbeat_ms(a.dispatcher_heartbeat)?,
                task_history_limit: a.task_history_limit,
                default_addr_pool: a.default_addr_pool,
                default_addr_pool_mask_length: a.default_addr_pool_mask_length,
                data_path_port: a.data_path_port,
                availability: parse_availability(a.availability.as_deref())?,
                autolock: a.autolock,
                cert_expiry_s: a.cert_expiry.map(cert_expiry_s),
            };
            match call(host, ApiRequest::SwarmInit(req)).await? {
                ApiReply::Initialized {
                    node_id,
                    worker_token,
                    manager_addr,
                    unlock_key,
                } => {
                    println!("Swarm initialized: current node ({node_id}) is now a manager.\n");
                    println!(
                        "{}",
                        join_command(Role::Worker, &worker_token, &manager_addr)
                    );
                    println!("To add a manager to this swarm, run 'shoal swarm join-token manager' and follow the instructions.");
                    if let Some(key) = unlock_key.filter(|k| !k.is_empty()) {
                        print!("{}", unlock_command(&key));
                    }
                    Ok(())
                }
                other => Err(unexpected(other)),
            }
        }
        SwarmCommand::Join(a) => {
            let req = JoinRequest {
                token: a.token,
                remote_addr: a.remote,
                advertise_addr: a.advertise_addr,
                listen_addr: a.listen_addr,
                availability: parse_availability(a.availability.as_deref())?,
            };
            match call(host, ApiRequest::SwarmJoin(req)).await? {
                ApiReply::Joined { role } => {
                    println!("This node joined a swarm as a {role}.");
                    Ok(())
                }
                other => Err(unexpected(other)),
            }
        }
        SwarmCommand::JoinToken(a) => {
            let role = parse_role(&a.role).map_err(ApiError::plain)?;
            match call(
                host,
                ApiRequest::JoinToken {
                    role,
                    rotate: a.rotate,
                },
            )
            .await?
            {
                ApiReply::Token {
                    token,
                    manager_addr,
                    rotated,
                } => {
                    if a.quiet {
                        println!("{token}");
                        return Ok(());
                    }
                    if rotated {
                        println!("Successfully rotated {role} join token.\n");
                    }
                    println!("{}", join_command(role, &token, &manager_addr));
                    Ok(())
                }
                other => Err(unexpected(other)),
            }
        }
        SwarmCommand::Update(a) => {
            let Some(update) = a.request()? else {
                super::help::print_help(&["swarm", "update"]);
                return Ok(());
            };
            // docker-cli prints the key when this update turned autolock on.
            let was_locking = match update.autolock {
                Some(true) => !unlock_key(host).await?.is_empty(),
                _ => true,
            };
            let reply = call(host, ApiRequest::SwarmUpdate(update)).await?;
            println!("Swarm updated.");
            if !was_locking {
                let key = match reply {
                    ApiReply::UnlockKey { key } if !key.is_empty() => key,
                    _ => fetch_unlock_key(host).await?,
                };
                print!("{}", unlock_command(&key));
            }
            Ok(())
        }
        SwarmCommand::UnlockKey(a) => {
            if a.rotate {
                if unlock_key(host).await?.is_empty() {
                    return Err(ApiError::plain(
                        "cannot rotate because autolock is not turned on",
                    ));
                }
                let rotate = SwarmUpdate {
                    rotate_unlock_key: true,
                    ..Default::default()
                };
                let reply = call(host, ApiRequest::SwarmUpdate(rotate)).await?;
                if !a.quiet {
                    println!("Successfully rotated manager unlock key.");
                }
                if let ApiReply::UnlockKey { key } = reply {
                    if !key.is_empty() {
                        if a.quiet {
                            println!("{key}");
                        } else {
                            print!("{}", unlock_command(&key));
                        }
                        return Ok(());
                    }
                }
            }
            let key = fetch_unlock_key(host).await?;
            if key.is_empty() {
                return Err(ApiError::plain("no unlock key is set"));
            }
            if a.quiet {
                println!("{key}");
            } else {
                print!("{}", unlock_command(&key));
            }
            Ok(())
        }
        SwarmCommand::Ca(a) => {
            // As docker-cli: the swarm first (a worker gets the manager-only error), then
            // the flags.
            let reply = call(host, ApiRequest::TrustRoot).await?;
            let Some(rotate) = a.check()? else {
                return print_trust_root(reply);
            };
            call(host, ApiRequest::CaRotate(rotate)).await?;
            if a.detach {
                return Ok(());
            }
            super::ca_progress::wait(host, a.quiet).await?;
            if a.quiet {
                return Ok(());
            }
            print_trust_root(call(host, ApiRequest::TrustRoot).await?)
        }
        SwarmCommand::Unlock => {
            // As docker-cli: the node's state first, and the key asked only when locked.
            let info = match call(host, ApiRequest::Info).await? {
                ApiReply::Info(info) => info,
                other => return Err(unexpected(other)),
            };
            if info.node_id.is_none() {
                return Err(ApiError::plain("error: this node is not part of a swarm"));
            }
            if !info.locked {
                return Err(ApiError::plain("error: swarm is not locked"));
            }
            let key = read_unlock_key()?;
            call(host, ApiRequest::SwarmUnlock { key }).await?;
            Ok(())
        }
        SwarmCommand::Leave { force } => {
            match call(host, ApiRequest::SwarmLeave { force }).await? {
                ApiReply::Left => {
                    println!("Node left the swarm.");
                    Ok(())
                }
                other => Err(ApiError::plain(format!("{other:?}"))),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(subcommand)]
        cmd: SwarmCommand,
    }

    /// Parsed as `shoal` parses: through pflag's boolean forms.
    fn parse(argv: &[&str]) -> Result<SwarmCommand, String> {
        use clap::{CommandFactory, FromArgMatches};
        let matches = crate::cli::pflag::bool_flags(Cli::command())
            .try_get_matches_from(argv)
            .map_err(|e| e.to_string())?;
        Ok(Cli::from_arg_matches(&matches)
            .map_err(|e| e.to_string())?
            .cmd)
    }

    fn update(args: &[&str]) -> Result<Option<SwarmUpdate>, String> {
        let argv: Vec<&str> = ["swarm", "update"].iter().chain(args).copied().collect();
        match parse(&argv)? {
            SwarmCommand::Update(a) => a.request().map_err(|e| e.to_string()),
            other => panic!("{other:?}"),
        }
    }

    /// `--availability` of init and join: any case; anything else in docker's CLI words.
    #[test]
    fn availability_is_taken_as_docker_s_cli_takes_it() {
        assert_eq!(
            parse_availability(Some("Drain")).unwrap(),
            Some(Availability::Drain)
        );
        assert_eq!(parse_availability(None).unwrap(), None);
        assert_eq!(
            parse_availability(Some("off")).unwrap_err().to_string(),
            "invalid availability \"off\", only active, pause and drain are supported"
        );
    }

    /// `--autolock` as docker's: on by itself or with `=true`, off with `=false`, absent
    /// unchanged; the message that carries the key is docker's.
    #[test]
    fn autolock_flags_and_unlock_message() {
        let on = |u: Option<SwarmUpdate>| u.and_then(|u| u.autolock);
        assert_eq!(on(update(&["--autolock"]).unwrap()), Some(true));
        assert_eq!(on(update(&["--autolock=true"]).unwrap()), Some(true));
        assert_eq!(on(update(&["--autolock=false"]).unwrap()), Some(false));
        assert_eq!(on(update(&["--task-history-limit", "3"]).unwrap()), None);
        let expiry = |args: &[&str]| update(args).unwrap().and_then(|u| u.cert_expiry_s);
        assert_eq!(expiry(&["--cert-expiry", "720h"]), Some(720 * 3600));
        assert_eq!(expiry(&["--cert-expiry", "90m30s"]), Some(90 * 60 + 30));
        assert_eq!(expiry(&["--cert-expiry", "-1h"]), Some(0));
        match parse(&["swarm", "init", "--autolock"]).unwrap() {
            SwarmCommand::Init(a) => assert!(a.autolock),
            other => panic!("{other:?}"),
        }
        let ca = |args: &[&str]| match parse(args).unwrap() {
            SwarmCommand::Ca(a) => a.check().map(|_| ()).map_err(|e| e.to_string()),
            other => panic!("{other:?}"),
        };
        assert_eq!(ca(&["swarm", "ca"]), Ok(()));
        assert_eq!(ca(&["swarm", "ca", "-q", "-d"]), Ok(()));
        assert_eq!(
            ca(&["swarm", "ca", "--cert-expiry", "2h"]).unwrap_err(),
            "`--cert-expiry` flag requires the `--rotate` flag to update the CA"
        );
        assert_eq!(ca(&["swarm", "ca", "--rotate"]), Ok(()));
        assert_eq!(
            ca(&["swarm", "ca", "--rotate", "-d", "--cert-expiry", "2h"]),
            Ok(())
        );
        let dir = tempfile::tempdir().unwrap();
        let pem = dir.path().join("ca.pem");
        std::fs::write(
            &pem,
            "-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let pem = pem.to_str().unwrap();
        assert_eq!(
            ca(&["swarm", "ca", "--rotate", "--ca-cert", pem]).unwrap_err(),
            "the --ca-cert flag requires that a --ca-key flag and/or --external-ca flag be provided as well"
        );
        let ext = "protocol=cfssl,url=https://x";
        assert!(ca(&["swarm", "ca", "--rotate", "--external-ca", ext])
            .unwrap_err()
            .starts_with("rotating to an external CA requires the `--ca-cert` flag"));
        assert!(ca(&[
            "swarm",
            "ca",
            "--rotate",
            "--external-ca",
            ext,
            "--ca-cert",
            pem
        ])
        .unwrap_err()
        .contains("external CAs are not supported by shoal"));
        let err = parse(&["swarm", "ca", "--rotate", "--ca-cert", "/nonexistent"])
            .map(|_| ())
            .unwrap_err();
        assert!(
            err.contains("open /nonexistent: no such file or directory"),
            "{err}"
        );
        let err = parse(&["swarm", "ca", "--ca-key", "/proc/version"])
            .map(|_| ())
            .unwrap_err();
        assert!(err.contains("file contents must be in PEM format"), "{err}");
        match parse(&["swarm", "unlock-key", "--rotate", "-q"]).unwrap() {
            SwarmCommand::UnlockKey(a) => assert!(a.rotate && a.quiet),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            unlock_command("SWMKEY-1-abc"),
            "To unlock a swarm manager after it restarts, run the `shoal swarm unlock`\n\
             command and provide the following key:\n\n    SWMKEY-1-abc\n\n\
             Remember to store this key in a password manager, since without it you\n\
             will not be able to restart the manager.\n"
        );
    }

    /// `swarm update` changes only what its flags name; with none it changes nothing.
    #[test]
    fn swarm_update_sends_only_the_flags_given() {
        assert_eq!(update(&[]).unwrap(), None);
        assert_eq!(
            update(&["--task-history-limit", "2"]).unwrap(),
            Some(SwarmUpdate {
                task_history_limit: Some(2),
                ..Default::default()
            })
        );
        assert_eq!(
            update(&["--dispatcher-heartbeat", "10s"]).unwrap(),
            Some(SwarmUpdate {
                dispatcher_heartbeat_ms: Some(10_000),
                ..Default::default()
            })
        );
        assert!(update(&["--dispatcher-heartbeat", "1ms"])
            .unwrap_err()
            .contains("it must be between 100ms and 24h"));
        // Go's duration syntax, as docker's DurationVar: fractions and unit runs parse,
        // a bare number or humantime's words do not, and a negative one is out of range.
        assert_eq!(
            update(&["--dispatcher-heartbeat", "1.5s"]).unwrap(),
            Some(SwarmUpdate {
                dispatcher_heartbeat_ms: Some(1_500),
                ..Default::default()
            })
        );
        assert_eq!(
            update(&["--dispatcher-heartbeat", "1m30s"])
                .unwrap()
                .unwrap()
                .dispatcher_heartbeat_ms,
            Some(90_000)
        );
        for (bad, why) in [
            ("5", "time: missing unit in duration \"5\""),
            (
                "5 seconds",
                "time: unknown unit \" seconds\" in duration \"5 seconds\"",
            ),
            ("1d", "time: unknown unit \"d\" in duration \"1d\""),
        ] {
            let err = update(&["--dispatcher-heartbeat", bad]).unwrap_err();
            assert!(err.contains(why), "{bad}: {err}");
        }
        assert!(update(&["--dispatcher-heartbeat", "-5s"])
            .unwrap_err()
            .contains("it must be between 100ms and 24h"));
    }
}
