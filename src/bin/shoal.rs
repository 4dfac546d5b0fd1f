//! shoal: the Shoal command line. Wires the control plane's CLI and the namespace lab.

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(name = "shoal", version, about = "Swarm-mode clustering for Linux")]
struct Cli {
    /// Daemon socket to connect to (before the command, as docker's `-H`: after it,
    /// `service create --host` is the service's host-to-IP mapping)
    #[arg(short = 'H', long = "host", env = "SHOAL_HOST")]
    host: Option<String>,
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
    let parsed = root
        .clone()
        .try_get_matches_from(&argv)
        .and_then(|m| Cli::from_arg_matches(&m));
    let cli = match parsed {
        Ok(cli) => cli,
        Err(e) => {
            // docker's words and status for a usage error; help and version as clap has them.
            let words: Vec<String> = argv
                .iter()
                .map(|a| a.to_string_lossy().into_owned())
                .collect();
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
