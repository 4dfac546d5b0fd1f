//! The `shoal` command line: docker's verbs, flags, tables and messages.

mod ca_progress;
mod debug;
pub mod help;
mod info;
mod network;
mod node;
pub mod pflag;
mod progress;
mod secret;
mod service;
pub(crate) mod service_opts;
mod stack;
mod swarm;
mod task_filter;
mod tasks;
pub mod usage;

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
    /// Manage networks
    #[command(subcommand)]
    Network(network::NetworkCommand),
    /// Manage Swarm services
    #[command(subcommand)]
    Service(service::ServiceCommand),
    /// Manage Swarm stacks
    #[command(subcommand)]
    Stack(stack::StackCommand),
    /// Manage Swarm secrets
    #[command(subcommand)]
    Secret(secret::SecretCommand),
    /// Manage Swarm configs
    #[command(subcommand)]
    Config(secret::ConfigCommand),
    /// Return low-level information on Shoal objects
    Inspect {
        #[arg(short, long, help = help::INSPECT_FORMAT_HELP)]
        format: Option<String>,
        /// Only inspect objects of the given type
        #[arg(long = "type")]
        object_type: Option<String>,
        #[arg(required = true)]
        objects: Vec<String>,
    },
    /// Look inside a node's data plane
    #[command(subcommand)]
    Debug(debug::DebugCommand),
    /// Execute a command in a running task
    Exec {
        /// Keep STDIN open even if not attached
        #[arg(short, long)]
        interactive: bool,
        /// Allocate a pseudo-TTY
        #[arg(short, long)]
        tty: bool,
        task: String,
        #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
        command: Vec<String>,
    },
    /// Show the Shoal version information
    Version,
    /// Display system-wide information
    Info {
        #[arg(short, long, help = help::INSPECT_FORMAT_HELP)]
        format: Option<String>,
    },
    /// Manage Shoal
    #[command(subcommand)]
    System(info::SystemCommand),
}

/// What a command did: output already printed; the exit code to return.
pub type CliResult = Result<(), ApiError>;

pub async fn run(host: &str, cmd: Command) -> i32 {
    if let Command::Exec {
        interactive,
        tty,
        task,
        command,
    } = cmd
    {
        return match exec(host, task, command, interactive, tty).await {
            Ok(code) => code,
            Err(e) => {
                eprintln!("{e}");
                1
            }
        };
    }
    let cmd = match cmd {
        Command::Info { format } | Command::System(info::SystemCommand::Info { format }) => {
            return info::run(host, format).await
        }
        cmd => cmd,
    };
    let result = match cmd {
        Command::Exec { .. } | Command::Info { .. } | Command::System(_) => Ok(()),
        Command::Swarm(c) => swarm::run(host, c).await,
        Command::Node(c) => node::run(host, c).await,
        Command::Service(c) => service::run(host, c).await,
        Command::Network(c) => network::run(host, c).await,
        Command::Stack(c) => stack::run(host, c).await,
        Command::Secret(c) => secret::run_secret(host, c).await,
        Command::Config(c) => secret::run_config(host, c).await,
        Command::Debug(c) => debug::run(host, c).await,
        Command::Inspect {
            format,
            object_type,
            objects,
        } => inspect(host, objects, format, object_type).await,
        Command::Version => {
            println!("Shoal version {}", crate::VERSION);
            Ok(())
        }
    };
    match result {
        Ok(()) => 0,
        Err(e) if !e.from_daemon => {
            let argv: Vec<String> = std::env::args_os()
                .map(|a| a.to_string_lossy().into_owned())
                .collect();
            if let Some(f) = usage::flag_value_failure(&argv, &e.message) {
                eprintln!("{}", f.message);
                return f.code;
            }
            if !e.message.is_empty() {
                eprintln!("{e}");
            }
            1
        }
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

/// A duration flag's value (pflag's DurationVar): Go's time.ParseDuration ("5s",
/// "1m30s", "1.5h"; "5" has no unit) to nanoseconds, refused in Go's words, which the
/// usage error puts after pflag's `invalid argument "5" for "--flag" flag: `.
pub(crate) fn go_duration_flag(s: &str) -> Result<i64, String> {
    shoal_compose::parse_duration(s)
}

/// docker-cli's `allTypes`, which `inspect --type` takes.
const INSPECT_TYPES: &[&str] = &[
    "config",
    "container",
    "image",
    "network",
    "node",
    "plugin",
    "secret",
    "service",
    "task",
    "volume",
];

/// docker's check of `inspect --type`: given, it must be one of [`INSPECT_TYPES`].
fn check_inspect_type(object_type: &str) -> Result<(), ApiError> {
    let all = INSPECT_TYPES.join("\", \"");
    if object_type.is_empty() {
        return Err(ApiError::plain(format!(
            "type is empty: must be one of \"{all}\""
        )));
    }
    if !INSPECT_TYPES.contains(&object_type) {
        return Err(ApiError::plain(format!(
            "unknown type: {object_type:?}: must be one of \"{all}\""
        )));
    }
    Ok(())
}

/// What `inspect` prints for a reference it did not find: docker-cli's own words when
/// no type had it, else the daemon's error.
fn inspect_error(error: &str) -> String {
    if error.starts_with("no such object: ") {
        format!("error: {error}")
    } else {
        format!("Error response from daemon: {error}")
    }
}

async fn inspect(
    host: &str,
    references: Vec<String>,
    format: Option<String>,
    object_type: Option<String>,
) -> CliResult {
    let req = match object_type {
        Some(object_type) => {
            check_inspect_type(&object_type)?;
            ApiRequest::InspectType {
                references: references.clone(),
                object_type,
            }
        }
        None => ApiRequest::Inspect {
            references: references.clone(),
        },
    };
    let objects = match call(host, req).await? {
        ApiReply::Objects { objects } => objects,
        other => return Err(unexpected(other)),
    };
    let (values, missing) = split_found(&references, objects);
    let text = shoal_format::render_inspect(&values, format.as_deref())
        .map_err(|e| ApiError::plain(e.to_string()))?;
    print!("{text}");
    missing_error(&missing, |_, e| inspect_error(e))
}

/// `shoal exec`: the exit code is the command's.
async fn exec(
    host: &str,
    task: String,
    argv: Vec<String>,
    interactive: bool,
    tty: bool,
) -> Result<i32, ApiError> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use crate::daemon::exec::ExecFrame;
    use crate::wire;

    let path = crate::client::socket_path(host)?;
    let stream = tokio::net::UnixStream::connect(&path).await.map_err(|e| {
        ApiError::plain(format!(
            "Cannot connect to the shoal daemon at unix://{}. Is the shoal daemon running? ({e})",
            path.display()
        ))
    })?;
    let mut conn = wire::framed(stream);
    let io = |e: wire::WireError| ApiError::plain(format!("exec: {e}"));
    let tty = tty.then(terminal_size);
    wire::send(
        &mut conn,
        &ApiRequest::Exec {
            reference: task,
            argv,
            interactive,
            tty,
        },
    )
    .await
    .map_err(io)?;
    let accepted: crate::api::ApiResult = wire::recv(&mut conn).await.map_err(io)?;
    accepted?;
    // With -i -t on a terminal, keystrokes go through raw, as docker does.
    let _raw = (tty.is_some() && interactive)
        .then(RawMode::enter)
        .flatten();
    let mut stdin = tokio::io::stdin();
    let mut stdin_open = interactive;
    let mut buf = vec![0u8; 16 << 10];
    let mut out = tokio::io::stdout();
    let mut err = tokio::io::stderr();
    loop {
        tokio::select! {
            n = stdin.read(&mut buf), if stdin_open => {
                let frame = match n {
                    Ok(0) | Err(_) => { stdin_open = false; ExecFrame::StdinEof }
                    Ok(n) => ExecFrame::Stdin(buf[..n].to_vec()),
                };
                wire::send(&mut conn, &frame).await.map_err(io)?;
            }
            frame = wire::recv::<_, ExecFrame>(&mut conn) => match frame.map_err(io)? {
                ExecFrame::Stdout(d) => { let _ = out.write_all(&d).await; let _ = out.flush().await; }
                ExecFrame::Stderr(d) => { let _ = err.write_all(&d).await; let _ = err.flush().await; }
                ExecFrame::Exit(code) => return Ok(code),
                ExecFrame::Error(e) => return Err(ApiError::daemon(e)),
                _ => {}
            }
        }
    }
}

/// Split per-reference lookups into what was found and, for each reference that wasn't,
/// its error message.
pub(crate) fn split_found(
    references: &[String],
    results: Vec<Result<serde_json::Value, String>>,
) -> (Vec<serde_json::Value>, Vec<(String, String)>) {
    let mut found = Vec::new();
    let mut missing = Vec::new();
    for (r, result) in references.iter().zip(results) {
        match result {
            Ok(v) => found.push(v),
            Err(e) => missing.push((r.clone(), e)),
        }
    }
    (found, missing)
}

/// docker's inspect: the error of every reference not found, one per line (errors.Join),
/// after what was found is printed.
pub(crate) fn missing_error(
    missing: &[(String, String)],
    message: impl Fn(&str, &str) -> String,
) -> CliResult {
    if missing.is_empty() {
        return Ok(());
    }
    let lines: Vec<String> = missing.iter().map(|(r, e)| message(r, e)).collect();
    Err(ApiError::plain(lines.join("\n")))
}

/// Go's `time.Time.String()` of an RFC 3339 time (UTC, as the daemon sends them):
/// `2026-11-27 06:32:29.654321 +0000 UTC`, the fraction without trailing zeros.
pub(crate) fn go_time_string(rfc3339: &str) -> String {
    let Ok(t) = chrono::DateTime::parse_from_rfc3339(rfc3339) else {
        return rfc3339.to_string();
    };
    let t = t.with_timezone(&chrono::Utc);
    let frac = format!("{:09}", t.timestamp_subsec_nanos());
    let frac = frac.trim_end_matches('0');
    let dot = if frac.is_empty() { "" } else { "." };
    format!("{}{dot}{frac} +0000 UTC", t.format("%Y-%m-%d %H:%M:%S"))
}

/// Go's `time.Duration.String()` of nanoseconds: `5s`, `1m30s`, `1h0m0s`, `100ms`,
/// `1.5µs`, `0s`.
pub(crate) fn go_duration(ns: i64) -> String {
    if ns == 0 {
        return "0s".into();
    }
    let neg = if ns < 0 { "-" } else { "" };
    let u = ns.unsigned_abs();
    let frac = |v: u64, unit: u64, digits: usize| -> String {
        let whole = v / unit;
        let rest = v % unit;
        if rest == 0 {
            whole.to_string()
        } else {
            let f = format!("{rest:0digits$}");
            format!("{whole}.{}", f.trim_end_matches('0'))
        }
    };
    if u < 1_000 {
        return format!("{neg}{u}ns");
    }
    if u < 1_000_000 {
        return format!("{neg}{}µs", frac(u, 1_000, 3));
    }
    if u < 1_000_000_000 {
        return format!("{neg}{}ms", frac(u, 1_000_000, 6));
    }
    let secs = u / 1_000_000_000;
    let s = frac(u % 60_000_000_000, 1_000_000_000, 9);
    let (h, m) = (secs / 3600, (secs / 60) % 60);
    if h > 0 {
        format!("{neg}{h}h{m}m{s}s")
    } else if m > 0 {
        format!("{neg}{m}m{s}s")
    } else {
        format!("{neg}{s}s")
    }
}

/// go-units' `BytesSize`: binary units, `%.4g` (`23.59GiB`, `512MiB`, `1.5KiB`).
pub(crate) fn bytes_size(bytes: f64) -> String {
    const UNITS: [&str; 9] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB"];
    let (mut size, mut i) = (bytes, 0);
    while size >= 1024.0 && i < UNITS.len() - 1 {
        size /= 1024.0;
        i += 1;
    }
    format!("{}{}", go_g4(size), UNITS[i])
}

/// Go's `%.4g` for the values `bytes_size` gives (under 10000): four significant digits,
/// trailing zeros dropped.
fn go_g4(x: f64) -> String {
    if x == 0.0 {
        return "0".into();
    }
    let exp = x.abs().log10().floor() as i32;
    let decimals = (3 - exp).max(0) as usize;
    let s = format!("{x:.decimals$}");
    // Rounding may carry into a fifth digit (9999.5 -> 10000): Go switches to %e there.
    let s = if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    };
    s
}

/// Exit status of a command that went through several arguments, printing errors as it
/// went (docker's `node rm a b`, `service rm a b`): 1 if any failed.
pub(crate) fn any_failed(failed: bool) -> CliResult {
    if failed {
        Err(ApiError::plain(""))
    } else {
        Ok(())
    }
}

/// The size of the terminal on stdout, if it is one.
fn stdout_winsize() -> Option<nix::libc::winsize> {
    let mut ws = nix::libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes one winsize into the struct we own.
    let ok = unsafe { nix::libc::ioctl(1, nix::libc::TIOCGWINSZ, &mut ws) } == 0;
    ok.then_some(ws)
}

/// The controlling terminal's size, or 24x80.
fn terminal_size() -> crate::daemon::exec::Tty {
    match stdout_winsize() {
        Some(ws) if ws.ws_row > 0 && ws.ws_col > 0 => crate::daemon::exec::Tty {
            rows: ws.ws_row,
            cols: ws.ws_col,
        },
        _ => crate::daemon::exec::Tty { rows: 24, cols: 80 },
    }
}

/// The width of the terminal on stdout, or 200 when it cannot be read (as docker's
/// jsonmessage assumes).
pub(crate) fn terminal_width() -> u16 {
    stdout_winsize().map_or(200, |ws| ws.ws_col)
}

/// Puts stdin (a terminal) in raw mode until dropped.
struct RawMode(nix::sys::termios::Termios);

impl RawMode {
    fn enter() -> Option<RawMode> {
        use nix::sys::termios;
        let stdin = std::io::stdin();
        let saved = termios::tcgetattr(&stdin).ok()?;
        let mut raw = saved.clone();
        termios::cfmakeraw(&mut raw);
        termios::tcsetattr(&stdin, termios::SetArg::TCSANOW, &raw).ok()?;
        Some(RawMode(saved))
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = nix::sys::termios::tcsetattr(
            std::io::stdin(),
            nix::sys::termios::SetArg::TCSANOW,
            &self.0,
        );
    }
}

/// docker's `rm A B ...`: each removed one's name is printed, each failure's error, and the
/// exit status says whether any failed.
pub(crate) async fn remove_each(
    host: &str,
    references: Vec<String>,
    request: impl Fn(String) -> ApiRequest,
) -> CliResult {
    let mut failed = false;
    for r in references {
        match call(host, request(r.clone())).await {
            Ok(_) => println!("{r}"),
            Err(e) => {
                eprintln!("{e}");
                failed = true;
            }
        }
    }
    any_failed(failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `inspect --type`: docker-cli's types and messages; not found, docker-cli's own
    /// words when no type had it, else the daemon's.
    #[test]
    fn inspect_type_is_checked_as_docker_does() {
        assert!(check_inspect_type("secret").is_ok());
        assert!(check_inspect_type("config").is_ok());
        let all = r#""config", "container", "image", "network", "node", "plugin", "secret", "service", "task", "volume""#;
        assert_eq!(
            check_inspect_type("").unwrap_err().to_string(),
            format!("type is empty: must be one of {all}")
        );
        assert_eq!(
            check_inspect_type("bogus").unwrap_err().to_string(),
            format!(r#"unknown type: "bogus": must be one of {all}"#)
        );
        assert_eq!(
            inspect_error("no such object: x"),
            "error: no such object: x"
        );
        assert_eq!(
            inspect_error("secret x not found"),
            "Error response from daemon: secret x not found"
        );
    }

    /// Every reference not found gets its own line, after what was found.
    #[test]
    fn missing_references_each_get_a_line() {
        let refs = vec!["a".to_string(), "b".to_string(), "c".to_string()];
        let results = vec![
            Err("node a not found".to_string()),
            Ok(serde_json::json!({"ID": "b"})),
            Err("node c not found".to_string()),
        ];
        let (found, missing) = split_found(&refs, results);
        assert_eq!(found.len(), 1);
        let e =
            missing_error(&missing, |_, e| format!("Error response from daemon: {e}")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "Error response from daemon: node a not found\nError response from daemon: node c not found"
        );
        assert!(missing_error(&[], |r, _| r.to_string()).is_ok());
    }

    #[test]
    fn durations_and_sizes_print_as_go_prints_them() {
        assert_eq!(go_duration(5_000_000_000), "5s");
        assert_eq!(go_duration(90_000_000_000), "1m30s");
        assert_eq!(go_duration(3_600_000_000_000), "1h0m0s");
        assert_eq!(go_duration(1_500_000_000), "1.5s");
        assert_eq!(go_duration(100_000_000), "100ms");
        assert_eq!(go_duration(0), "0s");
        assert_eq!(bytes_size(25_331_986_432.0), "23.59GiB");
        assert_eq!(bytes_size(536_870_912.0), "512MiB");
        assert_eq!(bytes_size(1536.0), "1.5KiB");
        assert_eq!(bytes_size(100.0), "100B");
    }

    #[test]
    fn times_print_as_go_prints_them() {
        assert_eq!(
            go_time_string("2026-11-27T06:32:29.6543Z"),
            "2026-11-27 06:32:29.6543 +0000 UTC"
        );
        assert_eq!(
            go_time_string("2026-11-27T06:32:29Z"),
            "2026-11-27 06:32:29 +0000 UTC"
        );
    }
}
