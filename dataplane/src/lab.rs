//! The namespace lab: hosts as network namespaces on one machine, joined by a bridge in a switch namespace, each running its own shoald.
//!
//! Layout of a lab named LAB (default "shoal"):
//! - netns `shoal-LAB-sw` with bridge `br0` (no netfilter on bridged frames, as on
//!   a real switch); netns `shoal-LAB-<node>` and
//!   `shoal-LAB-client`, each with `eth0`, a veth whose peer (named after the host)
//!   sits in the switch; nothing is ever created in the root namespace.
//! - state in `/var/lib/shoal-lab/LAB/`: `lab.json`, and per node `data/`,
//!   `shoal.sock`, `shoald.log`, `shoald.pid`.
//! - daemons run in cgroup `shoal-lab/LAB/<node>` of the cgroup v2 hierarchy (when
//!   there is one) with `SHOAL_LAB` and `SHOAL_LAB_NODE` in their environment, so
//!   `stop` finds everything they started.

mod cli;
mod daemon;
mod state;

use std::fs;
use std::io;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::{Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread::sleep;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};

pub use self::cli::{run, LabCommand};
pub use self::daemon::find_shoald;
use self::daemon::{host_command, start_daemons, stop_node, ENV_LAB};
use self::state::{
    known_labs, lab_cgroup, lab_dir, load, netns_prefix, validate_lab_name, validate_node_name,
    Host, LabState, Subnet,
};
use crate::netns;
use crate::procs::{self, Selector};

/// Where labs keep their state, one directory per lab.
/// On disk (not /run, a tmpfs on most hosts) so a lab node's data root behaves like a
/// real host's: fsync costs what it costs on a disk.
pub const STATE_ROOT: &str = "/var/lib/shoal-lab";
pub const DEFAULT_LAB: &str = "shoal";
pub const DEFAULT_UNDERLAY: &str = "10.77.0.0/24";
pub const DEFAULT_MTU: u32 = 1500;
pub const DEFAULT_NODES: usize = 3;
/// The host for outside traffic; gets underlay address .2.
pub const CLIENT: &str = "client";

/// Every lab namespace starts with this; `down --all` sweeps them all.
const NETNS_PREFIX: &str = "shoal-";
const SWITCH: &str = "sw";
const BRIDGE: &str = "br0";
/// Node i (1-based) gets underlay host number NODE_HOST_BASE + i.
const NODE_HOST_BASE: u32 = 10;
const CLIENT_HOST: u32 = 2;
/// How long killed processes get to disappear.
const KILL_TIMEOUT: Duration = Duration::from_secs(10);

/// What to build.
#[derive(Debug, Clone)]
pub struct LabSpec {
    /// Lab name: letters, digits and '_' (no '-', so `shoal-LAB-` prefixes never overlap).
    pub name: String,
    /// Node names; each becomes a namespace and a switch port, so at most 15 characters.
    pub nodes: Vec<String>,
    /// Underlay subnet; node i gets host .(10+i), the client .2.
    pub underlay: String,
    pub mtu: u32,
    /// The daemon binary; None: env SHOALD, else `shoald` next to the running executable, else PATH.
    pub shoald: Option<PathBuf>,
    /// Extra arguments appended to every daemon's command line.
    pub daemon_args: Vec<String>,
    /// More arguments for some nodes' daemons only (after `daemon_args`): a
    /// cluster whose nodes differ.
    pub node_args: std::collections::BTreeMap<String, Vec<String>>,
    /// False: build the network only, start no daemons.
    pub start_daemons: bool,
}

impl LabSpec {
    /// A lab of `nodes` nodes named vm1..vmN with the default underlay and MTU.
    pub fn new(name: &str, nodes: usize) -> Self {
        LabSpec {
            name: name.to_string(),
            nodes: (1..=nodes).map(|i| format!("vm{i}")).collect(),
            underlay: DEFAULT_UNDERLAY.to_string(),
            mtu: DEFAULT_MTU,
            shoald: None,
            daemon_args: Vec::new(),
            node_args: Default::default(),
            start_daemons: true,
        }
    }
}

/// A running lab. Dropping it tears the whole lab down, also while panicking.
#[derive(Debug)]
pub struct Lab {
    state: LabState,
    node_names: Vec<String>,
    torn_down: bool,
}

impl Lab {
    /// Builds the network and, unless disabled, starts a daemon per node and waits
    /// until each one accepts connections. On failure everything built is removed.
    pub fn up(spec: LabSpec) -> Result<Lab> {
        let state = build(&spec)?;
        let node_names = state.nodes.iter().map(|h| h.name.clone()).collect();
        Ok(Lab {
            state,
            node_names,
            torn_down: false,
        })
    }

    pub fn name(&self) -> &str {
        &self.state.name
    }

    pub fn nodes(&self) -> &[String] {
        &self.node_names
    }

    /// Underlay address of a node or of the client. Panics on an unknown name.
    pub fn node_addr(&self, node: &str) -> Ipv4Addr {
        self.state
            .host(node)
            .unwrap_or_else(|e| panic!("{e:#}"))
            .address
    }

    /// The name (under /run/netns) of a node's or the client's network namespace.
    pub fn netns_name(&self, node_or_client: &str) -> String {
        format!("{}{node_or_client}", netns_prefix(&self.state.name))
    }

    pub fn socket(&self, node: &str) -> PathBuf {
        self.node_dir(node).join("shoal.sock")
    }

    pub fn data_root(&self, node: &str) -> PathBuf {
        self.node_dir(node).join("data")
    }

    pub fn log_path(&self, node: &str) -> PathBuf {
        self.node_dir(node).join("shoald.log")
    }

    /// `unix://` address of a node's daemon, as SHOAL_HOST wants it.
    pub fn host_url(&self, node: &str) -> String {
        format!("unix://{}", self.socket(node).display())
    }

    fn node_dir(&self, node: &str) -> PathBuf {
        let host = self.state.node(node).unwrap_or_else(|e| panic!("{e:#}"));
        self.state.dir().join(&host.name)
    }

    /// Runs `argv` inside a node's (or the client's) namespace and captures its
    /// output; for nodes SHOAL_HOST points at that node's daemon.
    pub fn exec(&self, node_or_client: &str, argv: &[&str]) -> Result<Output> {
        let mut cmd = host_command(&self.state, node_or_client, argv)?;
        cmd.stdin(Stdio::null());
        cmd.output().with_context(|| {
            format!(
                "running {argv:?} in {node_or_client} of lab {}",
                self.name()
            )
        })
    }

    /// The command that runs `argv` in a node's (or the client's) namespace, for
    /// a caller that talks to it while it runs.
    pub fn command(&self, node_or_client: &str, argv: &[&str]) -> Result<std::process::Command> {
        host_command(&self.state, node_or_client, argv)
    }

    /// Power loss: kills the node's daemon and every process it or its namespace holds.
    pub fn stop(&self, node: &str) -> Result<()> {
        stop_node(&self.state, node)
    }

    /// Starts the node's daemon again on the same data root and waits until it listens.
    pub fn start(&self, node: &str) -> Result<()> {
        start_daemons(&self.state, &[node], None)
    }

    /// Tears the lab down now, reporting what could not be removed.
    pub fn down(mut self) -> Result<()> {
        self.torn_down = true;
        teardown(&self.state.name)
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if self.torn_down {
            return;
        }
        if let Err(e) = teardown(&self.state.name) {
            eprintln!("shoal lab {}: teardown failed: {e:#}", self.state.name);
        }
    }
}

/// A lab name for tests: at most 12 characters, unique per process and call
/// (first 4 characters of `prefix`, the pid in fixed-width base 36, a counter).
pub fn unique_lab_name(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let counter = COUNTER.fetch_add(1, Ordering::Relaxed) % 36u32.pow(3);
    let prefix: String = prefix
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        .take(4)
        .collect();
    let prefix = if prefix.is_empty() {
        "t".into()
    } else {
        prefix
    };
    // pid_max is at most 2^22, below 36^5.
    format!(
        "{prefix}{:0>5}{}",
        base36(std::process::id()),
        base36(counter)
    )
}

fn base36(mut n: u32) -> String {
    const DIGITS: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::new();
    loop {
        out.push(DIGITS[(n % 36) as usize]);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    out.reverse();
    String::from_utf8(out).expect("ascii digits")
}

/// Polls `f` every 50 ms until it returns Some, or fails after `timeout` naming `what`.
pub fn wait_until<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Result<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = f() {
            return Ok(value);
        }
        if Instant::now() >= deadline {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        sleep(Duration::from_millis(50));
    }
}

// ---------------------------------------------------------------------------
// Up

fn build(spec: &LabSpec) -> Result<LabState> {
    validate_lab_name(&spec.name)?;
    if spec.nodes.is_empty() {
        bail!("a lab needs at least one node");
    }
    for (i, node) in spec.nodes.iter().enumerate() {
        validate_node_name(node)?;
        if spec.nodes[..i].contains(node) {
            bail!("node {node:?} is listed twice");
        }
    }
    if !(68..=65535).contains(&spec.mtu) {
        bail!("MTU {} is out of range (68..=65535)", spec.mtu);
    }
    let subnet = Subnet::parse(&spec.underlay)?;
    let prefix = netns_prefix(&spec.name);
    let host = |name: &str, n: u32| -> Result<Host> {
        let address = subnet.host(n).ok_or_else(|| {
            anyhow!(
                "underlay {} has no room for {name} (host .{n})",
                spec.underlay
            )
        })?;
        Ok(Host {
            name: name.to_string(),
            netns: format!("{prefix}{name}"),
            address,
        })
    };
    let nodes = spec
        .nodes
        .iter()
        .zip(1u32..)
        .map(|(name, i)| host(name, NODE_HOST_BASE + i))
        .collect::<Result<Vec<_>>>()?;
    let shoald = if spec.start_daemons {
        let path = match &spec.shoald {
            Some(path) => path.clone(),
            None => find_shoald()?,
        };
        Some(std::path::absolute(&path).unwrap_or(path))
    } else {
        None
    };
    let state = LabState {
        name: spec.name.clone(),
        underlay: spec.underlay.clone(),
        prefix_len: subnet.prefix_len,
        mtu: spec.mtu,
        switch_netns: format!("{prefix}{SWITCH}"),
        nodes,
        client: host(CLIENT, CLIENT_HOST)?,
        shoald,
        daemon_args: spec.daemon_args.clone(),
        node_args: spec.node_args.clone(),
    };

    claim(&state)?;
    // From here on the name is ours: anything that fails removes all of it.
    let built = state
        .save()
        .and_then(|()| build_network(&state))
        .and_then(|()| {
            let nodes: Vec<&str> = state.nodes.iter().map(|h| h.name.as_str()).collect();
            for node in &nodes {
                let dir = state.node_dir(node).join("data");
                fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            }
            if state.shoald.is_some() {
                start_daemons(&state, &nodes, None)?;
            }
            Ok(())
        });
    if let Err(e) = built {
        if let Err(cleanup) = teardown(&state.name) {
            return Err(e.context(format!(
                "building lab {} failed, and so did cleaning up: {cleanup:#}",
                state.name
            )));
        }
        return Err(e.context(format!("building lab {} failed (cleaned up)", state.name)));
    }
    Ok(state)
}

/// Takes the lab name by creating its state directory; refuses if it, or any of its
/// namespaces, is already there (without touching them).
fn claim(state: &LabState) -> Result<()> {
    fs::create_dir_all(STATE_ROOT).with_context(|| format!("creating {STATE_ROOT}"))?;
    let dir = state.dir();
    match fs::create_dir(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => bail!(
            "lab {} already exists ({}); remove it first with `shoal lab down --name {}`",
            state.name,
            dir.display(),
            state.name
        ),
        Err(e) => return Err(e).with_context(|| format!("creating {}", dir.display())),
    }
    let prefix = netns_prefix(&state.name);
    let leftovers: Vec<String> = netns::list()?
        .into_iter()
        .filter(|n| n.starts_with(&prefix))
        .collect();
    if !leftovers.is_empty() {
        let _ = fs::remove_dir(&dir);
        bail!(
            "lab {} has leftover namespaces ({}); remove them with `shoal lab down --name {}`",
            state.name,
            leftovers.join(", "),
            state.name
        );
    }
    Ok(())
}

fn build_network(state: &LabState) -> Result<()> {
    let sw = &state.switch_netns;
    netns::add(sw)?;
    // A switch, not a firewall: bridged frames skip the IP hooks, as they would
    // on a real switch (on, they cost every frame the lab forwards host CPU that
    // the benchmarks would charge to whatever crosses the switch most often).
    netns::bridge_netfilter_off(sw)?;
    netns::set_up(sw, "lo")?;
    netns::add_bridge(sw, BRIDGE, state.mtu)?;
    netns::set_up(sw, BRIDGE)?;
    for host in state.nodes.iter().chain([&state.client]) {
        netns::add(&host.netns)?;
        netns::set_up(&host.netns, "lo")?;
        netns::add_veth(&host.netns, "eth0", sw, &host.name, state.mtu)?;
        netns::attach_up(sw, &host.name, BRIDGE)?;
        netns::add_addr(
            &host.netns,
            "eth0",
            &format!("{}/{}", host.address, state.prefix_len),
        )?;
        netns::set_up(&host.netns, "eth0")?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Down

/// Removes a lab: processes, namespaces, cgroups, state. Works from lab.json when
/// there is one and from the `shoal-LAB-` name prefix regardless, so half-built
/// labs go too. Missing parts are not errors; everything is attempted before
/// reporting what could not be removed.
fn teardown(name: &str) -> Result<()> {
    let mut errors: Vec<String> = Vec::new();
    let dir = lab_dir(name);
    let prefix = netns_prefix(name);
    let mut namespaces: Vec<String> = netns::list()
        .map_err(|e| errors.push(e.to_string()))
        .unwrap_or_default()
        .into_iter()
        .filter(|n| n.starts_with(&prefix))
        .collect();
    if let Ok(state) = load(name) {
        for host in state.nodes.iter().chain([&state.client]) {
            if !namespaces.contains(&host.netns) {
                namespaces.push(host.netns.clone());
            }
        }
    }
    // Pid files of every node directory, whether or not lab.json made it to disk.
    let daemon_pids: Vec<i32> = fs::read_dir(&dir)
        .map(|entries| {
            entries
                .filter_map(|e| fs::read_to_string(e.ok()?.path().join("shoald.pid")).ok())
                .filter_map(|s| s.trim().parse().ok())
                .collect()
        })
        .unwrap_or_default();
    let cgroup = lab_cgroup(name);
    let selector = Selector {
        netns: namespaces.iter().filter_map(|n| netns::id(n)).collect(),
        cgroup: cgroup.clone(),
        daemon_pids,
        marker: vec![(ENV_LAB.to_string(), Some(name.to_string()))],
    };
    let survivors = selector.kill_all(KILL_TIMEOUT);
    if !survivors.is_empty() {
        errors.push(format!("processes {survivors:?} survived SIGKILL"));
    }
    for ns in &namespaces {
        if let Err(e) = netns::delete(ns) {
            errors.push(e.to_string());
        }
    }
    if let Some(cgroup) = &cgroup {
        if let Err(e) = procs::remove_cgroup_tree(cgroup) {
            errors.push(e.to_string());
        }
        // The shared parent goes with the last lab; busy while other labs run.
        if let Some(parent) = cgroup.parent() {
            let _ = fs::remove_dir(parent);
        }
    }
    // The nodes' load-balancer pins (bpffs is shared by every namespace).
    if let Ok(entries) = fs::read_dir(&dir) {
        for e in entries.flatten() {
            crate::lb::remove_pins(&e.path().join("data"));
            self::daemon::unpin_mount_ns(&e.path());
        }
    }
    match fs::remove_dir_all(&dir) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => {
            errors.push(format!("removing {}: {e}", dir.display()))
        }
        _ => {}
    }
    if !errors.is_empty() {
        bail!("tearing down lab {name}: {}", errors.join("; "));
    }
    tracing::info!(lab = name, "down");
    Ok(())
}

/// Removes every lab and every leftover: all state directories, all `shoal-*`
/// namespaces and the processes in them, the whole lab cgroup tree.
fn teardown_all() -> Result<()> {
    let mut errors: Vec<String> = Vec::new();
    for lab in known_labs() {
        if validate_lab_name(&lab).is_ok() {
            if let Err(e) = teardown(&lab) {
                errors.push(format!("{e:#}"));
            }
        }
    }
    let leftovers: Vec<String> = netns::list()
        .map_err(|e| errors.push(e.to_string()))
        .unwrap_or_default()
        .into_iter()
        .filter(|n| n.starts_with(NETNS_PREFIX))
        .collect();
    let cgroup = procs::cgroup2_root().map(|root| root.join("shoal-lab"));
    let selector = Selector {
        netns: leftovers.iter().filter_map(|n| netns::id(n)).collect(),
        cgroup: cgroup.clone(),
        daemon_pids: Vec::new(),
        marker: vec![(ENV_LAB.to_string(), None)],
    };
    let survivors = selector.kill_all(KILL_TIMEOUT);
    if !survivors.is_empty() {
        errors.push(format!("processes {survivors:?} survived SIGKILL"));
    }
    for ns in &leftovers {
        if let Err(e) = netns::delete(ns) {
            errors.push(e.to_string());
        }
    }
    if let Some(cgroup) = &cgroup {
        if let Err(e) = procs::remove_cgroup_tree(cgroup) {
            errors.push(e.to_string());
        }
    }
    // Directories that are not valid lab names were skipped above.
    for lab in known_labs() {
        let dir = lab_dir(&lab);
        match fs::remove_dir_all(&dir) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                errors.push(format!("removing {}: {e}", dir.display()))
            }
            _ => {}
        }
    }
    let _ = fs::remove_dir(STATE_ROOT);
    if !errors.is_empty() {
        bail!("tearing down all labs: {}", errors.join("; "));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lab_can_be_shared_between_test_threads() {
        fn shareable<T: Send + Sync>() {}
        shareable::<Lab>();
    }

    #[test]
    fn unique_names_are_short_and_distinct() {
        let a = unique_lab_name("longprefix-x");
        let b = unique_lab_name("longprefix-x");
        assert_ne!(a, b);
        assert!(a.len() <= 12, "{a}");
        assert!(validate_lab_name(&a).is_ok(), "{a}");
    }

    #[test]
    fn wait_until_names_what_it_waited_for() {
        let err = wait_until("the moon", Duration::from_millis(120), || None::<()>).unwrap_err();
        assert!(err.to_string().contains("the moon"), "{err}");
        let mut n = 0;
        assert_eq!(
            wait_until("three calls", Duration::from_secs(5), || {
                n += 1;
                (n == 3).then_some(n)
            })
            .unwrap(),
            3
        );
    }
}
