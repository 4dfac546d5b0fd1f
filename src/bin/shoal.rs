//! shoal: the Shoal command line. Wires the control plane's CLI and the namespace lab.

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "shoal",
    version,
    about = "Swarm-mode clustering for Linux",
    disable_version_flag = true,
    disable_help_subcommand = true
)]
struct Cli {
    // Before the command, as docker's `-H`: after it, `service create --host` is the
    // service's host-to-IP mapping. Docker's help names its type `list`.
    /// Daemon socket to connect to
    #[arg(short = 'H', long = "host", env = "SHOAL_HOST", value_name = "list")]
    host: Option<String>,
    /// Print version information and quit
    #[arg(short = 'v', long, short_alias = 'V', action = clap::ArgAction::Version)]
    version: (),
    #[command(subcommand)]
    command: Top,
}

// Parsed once at start-up; the size difference between commands does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand, Debug)]
enum Top {
    #[command(flatten)]
    Cluster(shoal_control::cli::Command),
    /// Hosts as network namespaces on this machine, each running its own shoald
    #[command(subcommand)]
    Lab(shoal_dataplane::lab::LabCommand),
}

/// Output to a pipe whose reader has gone (`shoal service logs -f | head`) ends the
/// command as it ends docker's (Go dies of SIGPIPE writing to stdout or stderr), not with
/// a panic's message and status 101. SIGPIPE stays ignored otherwise, so a write to a
/// closed socket is an error the command reports.
fn die_quietly_on_broken_stdout() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let msg = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if msg.starts_with("failed printing to std") && msg.contains("Broken pipe") {
            use nix::sys::signal::{raise, signal, SigHandler, Signal};
            // SAFETY: restoring the default action of a signal; no handler runs.
            unsafe {
                let _ = signal(Signal::SIGPIPE, SigHandler::SigDfl);
            }
            let _ = raise(Signal::SIGPIPE);
        }
        default(info);
    }));
}

fn main() {
    die_quietly_on_broken_stdout();
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    // Every boolean flag takes pflag's `--flag=false` forms as well.
    let root = shoal_control::cli::pflag::bool_flags(Cli::command());
    let words: Vec<String> = argv
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    // `shoal help [COMMAND]`: cobra's help command, docker's help.
    if let Some(help) = shoal_control::cli::help::for_help_command(&root, &words) {
        help.print();
        std::process::exit(help.code);
    }
    let parsed = root
        .clone()
        .try_get_matches_from(&argv)
        .and_then(|m| Cli::from_arg_matches(&m));
    let cli = match parsed {
        Ok(cli) => cli,
        Err(e) => {
            // `--help`, `-h` and a command group alone: docker's help.
            if let Some(help) = shoal_control::cli::help::for_parse_error(&root, &words, &e) {
                help.print();
                std::process::exit(help.code);
            }
            // docker's words and status for a usage error; the version as clap has it.
            match shoal_control::cli::usage::usage_failure(&root, &words, &e) {
                Some(f) => {
                    eprintln!("{}", f.message);
                    std::process::exit(f.code);
                }
                None => {
                    let _ = e.print();
                    std::process::exit(0);
                }
            }
        }
    };
    let code = match cli.command {
        Top::Lab(cmd) => match shoal_dataplane::lab::run(cmd) {
            Ok(code) => code,
            Err(e) => {
                eprintln!("{e:#}");
                1
            }
        },
        Top::Cluster(cmd) => {
            let host = cli
                .host
                .unwrap_or_else(|| shoal_control::client::DEFAULT_HOST.to_string());
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("{e}");
                    std::process::exit(1);
                }
            };
            rt.block_on(shoal_control::cli::run(&host, cmd))
        }
    };
    std::process::exit(code);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root() -> clap::Command {
        let mut root = shoal_control::cli::pflag::bool_flags(Cli::command());
        root.build();
        root
    }

    /// `shoal --help` as docker's top-level help: Shoal's commands under docker's
    /// headings, `-H` and `-v` as docker's global options, docker's footer (without its
    /// line pointing to Docker's guides).
    #[test]
    fn top_level_help_is_dockers() {
        let root = root();
        assert_eq!(
            shoal_control::cli::help::render(&root, &root, &["shoal"], 80),
            "Usage:  shoal [OPTIONS] COMMAND

Swarm-mode clustering for Linux

Common Commands:
  exec        Execute a command in a running task
  version     Show the Shoal version information
  info        Display system-wide information

Management Commands:
  debug       Look inside a node's data plane
  lab         Hosts as network namespaces on this machine, each running its own shoald
  network     Manage networks
  system      Manage Shoal

Swarm Commands:
  config      Manage Swarm configs
  node        Manage Swarm nodes
  secret      Manage Swarm secrets
  service     Manage Swarm services
  stack       Manage Swarm stacks
  swarm       Manage Swarm

Commands:
  inspect     Return low-level information on Shoal objects

Global Options:
  -H, --host list   Daemon socket to connect to
  -v, --version     Print version information and quit

Run 'shoal COMMAND --help' for more information on a command.
"
        );
    }

    /// Every command, `lab`'s too, has a description and every flag a help text.
    #[test]
    fn every_flag_has_help() {
        assert_eq!(
            shoal_control::cli::help::undocumented(&root()),
            Vec::<String>::new()
        );
    }

    /// `-v` is docker's version flag (`-V` still works).
    #[test]
    fn version_flag_is_dockers() {
        for flag in ["-v", "--version", "-V"] {
            let err = root().try_get_matches_from(["shoal", flag]).unwrap_err();
            assert_eq!(err.kind(), clap::error::ErrorKind::DisplayVersion, "{flag}");
        }
    }
}
