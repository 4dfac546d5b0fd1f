//! Benchmark driver for Raft writes: committed writes/s with concurrent clients, single-write
//! latency, and the same disk's raw fsync'd commit rate as the physical baseline.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use shoal_control::api::{ApiReply, ApiRequest, NodeUpdate};
use shoal_control::client::Client;

#[derive(Parser)]
struct Args {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Label writes through a manager's API (each one a Raft entry replicated to a quorum).
    Writes {
        /// unix:// socket of the manager to drive
        #[arg(long)]
        host: String,
        /// Concurrent clients, each with its own connection, one write in flight each
        #[arg(long, default_value_t = 64)]
        clients: usize,
        /// How long to run the throughput phase
        #[arg(long, default_value = "5")]
        seconds: u64,
        /// Sequential writes for the latency phase
        #[arg(long, default_value_t = 500)]
        latency_writes: usize,
    },
    /// Raw redb commits (fsync'd) on the same disk: the physical baseline.
    Fsync {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long, default_value_t = 2000)]
        commits: usize,
    },
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

async fn node_ids(host: &str) -> Result<Vec<String>> {
    let mut c = Client::connect(host)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    match c
        .call(ApiRequest::NodeList)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?
    {
        ApiReply::Nodes { nodes, .. } => Ok(nodes
            .iter()
            .filter_map(|n| n["ID"].as_str().map(str::to_string))
            .collect()),
        other => bail!("unexpected reply {other:?}"),
    }
}

fn label_write(node: &str, k: usize) -> ApiRequest {
    ApiRequest::NodeUpdate(NodeUpdate {
        reference: node.to_string(),
        label_add: vec![(format!("bench{}", k % 16), k.to_string())],
        ..Default::default()
    })
}

async fn writes(host: String, clients: usize, seconds: u64, latency_writes: usize) -> Result<()> {
    let nodes = node_ids(&host).await?;
    if nodes.is_empty() {
        bail!("no nodes");
    }
    // Latency: one write at a time.
    let mut c = Client::connect(&host)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut lat = Vec::with_capacity(latency_writes);
    for i in 0..latency_writes {
        let t = Instant::now();
        c.call(label_write(&nodes[i % nodes.len()], i))
            .await
            .map_err(|e| anyhow::anyhow!("write {i}: {e}"))?;
        lat.push(t.elapsed());
    }
    lat.sort();
    // Throughput: `clients` connections, each with one write in flight, for `seconds`.
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..clients {
        let host = host.clone();
        let node = nodes[w % nodes.len()].clone();
        tasks.push(tokio::spawn(async move {
            let mut c = Client::connect(&host)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            let mut done = 0usize;
            while Instant::now() < deadline {
                c.call(label_write(&node, w * 1_000_000 + done))
                    .await
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
                done += 1;
            }
            Ok::<usize, anyhow::Error>(done)
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await.context("client task")??;
    }
    let took = started.elapsed();
    println!(
        "writes_per_sec={:.0} clients={clients} total={total} seconds={:.2}",
        total as f64 / took.as_secs_f64(),
        took.as_secs_f64()
    );
    println!(
        "single_write_ms p50={:.3} p99={:.3} max={:.3} n={}",
        percentile(&lat, 0.50).as_secs_f64() * 1e3,
        percentile(&lat, 0.99).as_secs_f64() * 1e3,
        lat.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
        lat.len()
    );
    Ok(())
}

fn fsync(dir: PathBuf, commits: usize) -> Result<()> {
    const T: redb::TableDefinition<u64, &[u8]> = redb::TableDefinition::new("t");
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("fsync-baseline.redb");
    let _ = std::fs::remove_file(&path);
    let db = redb::Database::create(&path)?;
    let payload = vec![7u8; 256];
    let mut lat = Vec::with_capacity(commits);
    let started = Instant::now();
    for i in 0..commits {
        let t = Instant::now();
        let txn = db.begin_write()?;
        {
            let mut table = txn.open_table(T)?;
            table.insert(i as u64, payload.as_slice())?;
        }
        txn.commit()?;
        lat.push(t.elapsed());
    }
    let took = started.elapsed();
    lat.sort();
    println!(
        "fsync_commits_per_sec={:.0} p50_ms={:.3} p99_ms={:.3}",
        commits as f64 / took.as_secs_f64(),
        percentile(&lat, 0.5).as_secs_f64() * 1e3,
        percentile(&lat, 0.99).as_secs_f64() * 1e3
    );
    drop(db);
    let _ = std::fs::remove_file(&path);
    Ok(())
}

fn main() -> Result<()> {
    let args = Args::parse();
    match args.cmd {
        Cmd::Writes {
            host,
            clients,
            seconds,
            latency_writes,
        } => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?
            .block_on(writes(host, clients, seconds, latency_writes)),
        Cmd::Fsync { dir, commits } => fsync(dir, commits),
    }
}
