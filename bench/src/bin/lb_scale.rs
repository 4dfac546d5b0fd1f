//! Load-balancer scale benchmark driver (run by bench/lb-scale.sh inside the node
//! namespace the script built): loads Shoal's load balancer into that namespace,
//! serves one real published port (8080 -> the task at --task-addr:80) and, per
//! count N, programs N more services with --backends backends each through
//! `LoadBalancer::apply` (the daemon's path), timing it, then measures wrk
//! requests/s on the real service from the client namespace. N = 0 first: the
//! baseline every other count is compared with, in the same run.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Parser;
use shoal_dataplane::lb::{
    BackendSpec, BackendState, Frontend, LoadBalancer, Proto, ServiceSpec, Settings, Timeouts,
    DEFAULT_MAGLEV_SIZE,
};

#[derive(Parser)]
struct Args {
    /// Service counts to program, besides the real one
    #[arg(long, value_delimiter = ',', default_value = "10,1000,10000")]
    counts: Vec<u32>,
    /// Backends of each synthetic service
    #[arg(long, default_value_t = 10)]
    backends: u32,
    /// The node's underlay interface (in this namespace) and address
    #[arg(long)]
    underlay: String,
    #[arg(long)]
    node_addr: Ipv4Addr,
    /// The host end of the veth into the task's namespace, and its MAC
    #[arg(long)]
    lb_port: String,
    #[arg(long)]
    lb_mac: String,
    /// The task's address and MAC
    #[arg(long)]
    task_addr: Ipv4Addr,
    #[arg(long)]
    task_mac: String,
    /// Namespace wrk runs in
    #[arg(long)]
    client_netns: String,
    /// wrk seconds per run, runs per count (median), connections
    #[arg(long, default_value_t = 5)]
    secs: u32,
    #[arg(long, default_value_t = 3)]
    reps: u32,
    #[arg(long, default_value_t = 32)]
    conns: u32,
    /// Pin directory (removed at the end)
    #[arg(long)]
    pin_dir: PathBuf,
}

fn mac(s: &str) -> Result<[u8; 6]> {
    let parts: Vec<u8> = s
        .split(':')
        .map(|p| u8::from_str_radix(p, 16))
        .collect::<Result<_, _>>()
        .with_context(|| format!("bad MAC {s}"))?;
    parts.try_into().map_err(|_| anyhow::anyhow!("bad MAC {s}"))
}

fn real_service(a: &Args) -> Result<ServiceSpec> {
    Ok(ServiceSpec {
        name: "web".into(),
        frontend: Frontend::NodePort {
            proto: Proto::Tcp,
            port: 8080,
        },
        backends: vec![BackendSpec {
            name: "web.1".into(),
            addr: a.task_addr,
            port: 80,
            mac: mac(&a.task_mac)?,
            state: BackendState::Active,
        }],
    })
}

/// N published ports 10000.. with `backends` made-up backends each (10.128.0.0/9).
fn synthetic(n: u32, backends: u32) -> Vec<ServiceSpec> {
    (0..n)
        .map(|i| ServiceSpec {
            name: format!("svc{i}"),
            frontend: Frontend::NodePort {
                proto: Proto::Tcp,
                port: 10000 + i as u16,
            },
            backends: (0..backends)
                .map(|b| {
                    let host = i * backends + b + 1;
                    let addr = Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 128, 0, 0)) + host);
                    let o = addr.octets();
                    BackendSpec {
                        name: format!("svc{i}.{b}"),
                        addr,
                        port: 80,
                        mac: [0x02, 0x42, o[0], o[1], o[2], o[3]],
                        state: BackendState::Active,
                    }
                })
                .collect(),
        })
        .collect()
}

/// One wrk run: requests/s.
fn wrk(a: &Args) -> Result<f64> {
    let url = format!("http://{}:8080/", a.node_addr);
    let out = Command::new("ip")
        .args(["netns", "exec", &a.client_netns, "wrk", "-t", "1"])
        .args(["-c", &a.conns.to_string(), "-d", &format!("{}s", a.secs)])
        .arg(&url)
        .output()
        .context("running wrk")?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!("wrk failed: {text}{}", String::from_utf8_lossy(&out.stderr));
    }
    if let Some(line) = text
        .lines()
        .find(|l| l.contains("Non-2xx") || l.contains("Socket errors"))
    {
        bail!("wrk saw errors: {line}");
    }
    text.lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .with_context(|| format!("no Requests/sec in wrk's output:\n{text}"))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() -> Result<()> {
    let a = Args::parse();
    let settings = Settings {
        pin_dir: a.pin_dir.clone(),
        maglev_size: DEFAULT_MAGLEV_SIZE,
        seed: 0x5eed,
        timeouts: Timeouts::default(),
        snat: false,
        overlay: false,
        dsr: false,
    };
    let result = run(&a, settings);
    shoal_dataplane::lb::detach_node(&a.lb_port);
    let _ = std::fs::remove_dir_all(&a.pin_dir);
    result
}

fn run(a: &Args, settings: Settings) -> Result<()> {
    let mut lb = LoadBalancer::load(settings)?;
    lb.attach_node(&a.underlay, a.node_addr)?;
    lb.attach_lb_port(&a.lb_port, mac(&a.lb_mac)?)?;
    let real = real_service(a)?;
    lb.apply(std::slice::from_ref(&real))?;
    // The mesh must answer before anything is measured.
    let ready = Instant::now();
    while wrk_probe(a).is_err() {
        if ready.elapsed() > Duration::from_secs(10) {
            bail!("the published port does not answer");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    println!(
        "{:>8} {:>10} {:>12} {:>12} {:>12} {:>14} {:>8}",
        "services", "backends", "program_s", "per_svc_ms", "remove_s", "req/s(median)", "x_base"
    );
    let mut base = None;
    for n in std::iter::once(0).chain(a.counts.iter().copied()) {
        let mut desired = vec![real.clone()];
        desired.extend(synthetic(n, a.backends));
        let stats = lb.apply(&desired)?;
        let program = stats.elapsed;
        let mut runs = Vec::new();
        for _ in 0..a.reps {
            runs.push(wrk(a)?);
        }
        let rps = median(runs.clone());
        let base_rps = *base.get_or_insert(rps);
        // Back to the real service only, timed as well.
        let removed = lb.apply(std::slice::from_ref(&real))?.elapsed;
        println!(
            "{:>8} {:>10} {:>12.3} {:>12.3} {:>12.3} {:>14.0} {:>8.3}   runs {:?}",
            n + 1,
            n * a.backends + 1,
            program.as_secs_f64(),
            if n > 0 {
                program.as_secs_f64() * 1e3 / f64::from(n)
            } else {
                0.0
            },
            removed.as_secs_f64(),
            rps,
            rps / base_rps,
            runs.iter().map(|r| r.round() as u64).collect::<Vec<_>>()
        );
    }
    Ok(())
}

/// One request through the mesh (curl), for readiness.
fn wrk_probe(a: &Args) -> Result<()> {
    let url = format!("http://{}:8080/", a.node_addr);
    let ok = Command::new("ip")
        .args([
            "netns",
            "exec",
            &a.client_netns,
            "curl",
            "-sf",
            "-m",
            "1",
            "-o",
            "/dev/null",
        ])
        .arg(&url)
        .status()?
        .success();
    if ok {
        Ok(())
    } else {
        bail!("no answer")
    }
}
