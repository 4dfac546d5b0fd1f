//! shoald: the Shoal node daemon. Wires the control plane's daemon to command-line flags.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use shoal_control::daemon::{Daemon, DaemonConfig, LbOptions, SwarmPortLimits};
use shoal_control::raft::RaftTiming;
use shoal_control::service_manager::Notifier;

#[derive(Parser, Debug)]
#[command(name = "shoald", version, about = "Shoal node daemon")]
struct Args {
    /// Root directory of persistent state
    #[arg(long, default_value = "/var/lib/shoal")]
    data_root: PathBuf,
    /// Local API socket
    #[arg(
        short = 'H',
        long = "host",
        default_value = "unix:///run/shoal/shoal.sock"
    )]
    host: String,
    /// Swarm listen address (Raft, dispatcher)
    #[arg(long, default_value = "0.0.0.0:2377")]
    listen_addr: SocketAddr,
    /// Serve Prometheus metrics at http://ADDR/metrics
    #[arg(long)]
    metrics_addr: Option<SocketAddr>,
    /// Node hostname (default: the system's)
    #[arg(long)]
    hostname: Option<String>,
    /// Log level (error, warn, info, debug, trace)
    #[arg(long, default_value = "info")]
    log_level: String,
    /// Raft heartbeat interval in milliseconds (1 to 60000)
    #[arg(long, default_value_t = 250, value_parser = clap::value_parser!(u64).range(1..=60_000))]
    raft_heartbeat_ms: u64,
    /// Raft election timeout (minimum) in milliseconds, more than the heartbeat interval
    /// (at most 600000); the maximum is twice this
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(2..=600_000))]
    raft_election_timeout_ms: u64,
    /// Take a Raft snapshot every this many log entries
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
    raft_snapshot_interval: u64,
    /// TTL (seconds) of the embedded DNS's answers to tasks
    #[arg(long, default_value_t = 5)]
    dns_ttl: u32,
    /// Maglev table size of the load balancer: a prime, the same on every node
    #[arg(long, default_value_t = shoal_dataplane::lb::DEFAULT_MAGLEV_SIZE)]
    lb_maglev_size: u32,
    /// Idle timeout of a TCP flow in its handshake
    #[arg(long, default_value = "60s", value_parser = flow_timeout)]
    lb_tcp_syn_timeout: Duration,
    /// Idle timeout of an established TCP flow (IPVS's 900 s drops idle connections)
    #[arg(long, default_value = "6h", value_parser = flow_timeout)]
    lb_tcp_established_timeout: Duration,
    /// Idle timeout of a TCP flow after FIN or RST
    #[arg(long, default_value = "10s", value_parser = flow_timeout)]
    lb_tcp_closing_timeout: Duration,
    /// Idle timeout of a UDP flow
    #[arg(long, default_value = "5m", value_parser = flow_timeout)]
    lb_udp_timeout: Duration,
    /// How long a task asked to stop stays up, already out of every node's load
    /// balancer, before it gets SIGTERM (so no request reaches a dying process)
    #[arg(long, default_value = "1s", value_parser = drain_delay)]
    lb_drain_delay: Duration,
    /// SNAT mesh traffic entering this node to the node's address: backends see
    /// the node instead of the client (clients on the node itself always are)
    #[arg(long)]
    lb_snat: bool,
    /// Carry overlay traffic through the kernel's VXLAN device and bridge only,
    /// without the eBPF fast path (which encapsulates and decapsulates VXLAN at
    /// the task's port and the underlay, and leaves the rest to the kernel)
    #[arg(long)]
    no_overlay_fastpath: bool,
    /// Direct server return for mesh flows entering this node: the backend's node
    /// answers the client itself, from this node's address and the published port,
    /// instead of sending replies back through here (needs an underlay that lets a
    /// node send with another node's address: one L2 segment, no source checks)
    #[arg(long)]
    lb_dsr: bool,
    /// Time a peer has on the swarm port to finish its TLS handshake (and, without a
    /// certificate, to send its join request)
    #[arg(long, default_value = "5s", value_parser = swarm_timeout)]
    swarm_handshake_timeout: Duration,
    /// A swarm-port connection that sends no request for this long is closed (peers
    /// reconnect on their next request; running `shoal exec` sessions are not affected)
    #[arg(long, default_value = "2m", value_parser = swarm_timeout)]
    swarm_idle_timeout: Duration,
    /// Most connections the swarm port holds at once (further ones are closed at once);
    /// at most half the open-file limit
    #[arg(long, default_value_t = 4096)]
    swarm_max_connections: usize,
    /// Most swarm-port connections from one IP address at once
    #[arg(long, default_value_t = 256)]
    swarm_max_connections_per_ip: usize,
    /// The shortest `swarm init/update --cert-expiry` this node accepts as a manager
    /// (swarmkit's 1h; labs lower it to see node certificates renewed)
    #[arg(long, default_value = "1h", value_parser = min_cert_expiry)]
    min_cert_expiry: Duration,
}

/// A duration flag between `min` and `max` (`range` says them), in humantime's syntax
/// (`90s`, `6h`, `1day`).
fn bounded_duration(
    v: &str,
    min: Duration,
    max: Duration,
    range: &str,
) -> Result<Duration, String> {
    let d = humantime::parse_duration(v).map_err(|e| e.to_string())?;
    if d < min || d > max {
        return Err(format!("must be between {range}"));
    }
    Ok(d)
}

/// A load-balancer flow's idle timeout: 1 s (the flows' clock moves once a second) to
/// 365 days.
fn flow_timeout(v: &str) -> Result<Duration, String> {
    bounded_duration(
        v,
        Duration::from_secs(1),
        Duration::from_secs(365 * 86_400),
        "1s and 365days",
    )
}

/// The drain delay before SIGTERM: at most an hour.
fn drain_delay(v: &str) -> Result<Duration, String> {
    bounded_duration(v, Duration::ZERO, Duration::from_secs(3600), "0s and 1h")
}

/// `--min-cert-expiry`: 1 s to swarmkit's default lifetime.
fn min_cert_expiry(v: &str) -> Result<Duration, String> {
    bounded_duration(
        v,
        Duration::from_secs(1),
        Duration::from_secs(2160 * 3600),
        "1s and 2160h",
    )
}

/// The swarm port's handshake and idle timeouts: 100 ms to a day.
fn swarm_timeout(v: &str) -> Result<Duration, String> {
    bounded_duration(
        v,
        Duration::from_millis(100),
        Duration::from_secs(86_400),
        "100ms and 1day",
    )
}

fn main() -> anyhow::Result<()> {
    // The task executor re-runs this binary as each task's supervisor; that must happen
    // before any thread exists (it returns at once in the daemon).
    shoal_executor::maybe_run_shim();
    let args = Args::parse();
    limit_malloc_arenas();
    // Before any thread: it takes $NOTIFY_SOCKET out of the environment.
    let service_manager = Notifier::from_env();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_new(format!("{},openraft=warn", args.log_level))
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    // Every swarm-port connection, task log and netlink socket is a file: the default soft
    // limit (1024) is far too low for a daemon. Tasks get the original limit back.
    let nofile = match shoal_executor::raise_nofile_limit() {
        Ok((old, new)) => {
            tracing::info!(old, new, "open-file limit raised");
            new
        }
        Err(e) => {
            tracing::warn!(error = %e, "raising the open-file limit");
            1024
        }
    };
    let max_connections = args
        .swarm_max_connections
        .min(usize::try_from(nofile / 2).unwrap_or(usize::MAX))
        .max(1);
    let socket = shoal_control::client::socket_path(&args.host)
        .map_err(|e| anyhow::anyhow!("{}", e.message))?;
    let hostname = match args.hostname {
        Some(h) => h,
        None => nix::unistd::gethostname()?.to_string_lossy().into_owned(),
    };
    let cfg = DaemonConfig {
        data_root: args.data_root,
        socket,
        listen_addr: args.listen_addr,
        metrics_addr: args.metrics_addr,
        hostname,
        raft: RaftTiming {
            heartbeat_ms: args.raft_heartbeat_ms,
            election_min_ms: args.raft_election_timeout_ms,
            election_max_ms: args.raft_election_timeout_ms * 2,
            snapshot_every: args.raft_snapshot_interval,
        },
        dns_ttl: args.dns_ttl,
        lb: LbOptions {
            maglev_size: args.lb_maglev_size,
            timeouts: shoal_dataplane::lb::Timeouts {
                tcp_syn: args.lb_tcp_syn_timeout,
                tcp_established: args.lb_tcp_established_timeout,
                tcp_closing: args.lb_tcp_closing_timeout,
                udp: args.lb_udp_timeout,
            },
            drain_delay: args.lb_drain_delay,
            snat: args.lb_snat,
            overlay_fastpath: !args.no_overlay_fastpath,
            dsr: args.lb_dsr,
        },
        swarm_port: SwarmPortLimits {
            handshake_timeout: args.swarm_handshake_timeout,
            idle_timeout: args.swarm_idle_timeout,
            max_connections,
            max_connections_per_ip: args.swarm_max_connections_per_ip.max(1),
        },
        min_cert_expiry: args.min_cert_expiry,
    };
    // openraft's own rules (an election timeout longer than the heartbeat), said at start
    // rather than at the first `swarm init` or join.
    if let Err(e) = cfg.raft.config().validate() {
        eprintln!("shoald: --raft-heartbeat-ms / --raft-election-timeout-ms: {e}");
        std::process::exit(2);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let daemon = match Daemon::start(cfg).await {
            Ok(d) => d,
            Err(e) => {
                eprintln!("shoald: {e}");
                std::process::exit(1);
            }
        };
        tracing::info!("shoald ready");
        if let Err(e) = service_manager.notify("READY=1") {
            tracing::warn!(error = %e, "telling the service manager shoald is ready");
        }
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        tracing::info!("shoald stopping");
        if let Err(e) = service_manager.notify("STOPPING=1") {
            tracing::warn!(error = %e, "telling the service manager shoald is stopping");
        }
        drop(daemon);
        Ok(())
    })
}

/// glibc gives each thread that allocates its own arena; after a burst of writes those stay
/// resident. Two arenas are plenty for a daemon with two worker threads.
fn limit_malloc_arenas() {
    // SAFETY: mallopt only changes allocator tuning; called before any other thread exists.
    unsafe {
        nix::libc::mallopt(nix::libc::M_ARENA_MAX, 2);
    }
}
