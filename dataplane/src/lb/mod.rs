//! The eBPF load balancer's manager: loads the programs of `shoal-ebpf`, pins
//! their maps, attaches them, and turns the services the agent computes from
//! cluster state into map contents.
//!
//! Where the programs run (see the crate `shoal-ebpf` for what each does):
//! - `lb_node_ingress` on tc ingress of the underlay interface and of `lo`;
//! - `lb_node_reply` on tc ingress of the host end of the load-balancer port,
//!   a veth from the host into the ingress network's bridge (made by the overlay,
//!   [`crate::net::HostPort`]); its MAC is the node's load-balancer MAC
//!   (`02:53` + the node's underlay address) and every other node has an FDB
//!   entry sending that MAC to this node's VTEP, which is how replies of mesh
//!   flows come back to the node that NATed them;
//! - `lb_task_out` / `lb_task_in` on tc ingress / egress of every task port on an
//!   overlay bridge (attached by the overlay's port hook as the port is made).
//!
//! Attachments are classic tc filters (clsact, fixed priority and handle), which
//! stay in the kernel when shoald exits; maps are pinned under
//! `/sys/fs/bpf/shoal/<ABI version>/<node key>/`. A restarted shoald reuses the
//! maps (conntrack included) and replaces the filters in place, so established
//! flows survive it. [`LoadBalancer::teardown`] detaches everything and removes
//! the pins.
//!
//! Updates are ordered so that no packet sees a half-updated service: backends
//! are written first, then a new Maglev table (a fresh inner map) is swapped in
//! with one map update, then the service entry, and only then are backends that
//! left deleted.

pub mod maglev;
mod overlay;

pub use self::overlay::FastPathReport;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::net::Ipv4Addr;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use aya::maps::{Array, HashMap as BpfHashMap, HashOfMaps, MapData, PerCpuHashMap};
use aya::programs::tc::{self, NlOptions, SchedClassifierLink, TcAttachOptions, TcHandle};
use aya::programs::{SchedClassifier, TcAttachType};
use aya::{Ebpf, EbpfLoader};
use shoal_ebpf as abi;

use crate::netns::in_netns;

/// Where bpffs is mounted.
pub const BPFFS: &str = "/sys/fs/bpf";
/// Default Maglev table size (a prime; about 100 slots per backend at 160 backends).
pub const DEFAULT_MAGLEV_SIZE: u32 = abi::MAGLEV_DEFAULT;
/// Most frontends (published ports and protocols, VIPs) a node's load balancer holds.
pub const MAX_FRONTENDS: u32 = abi::MAX_SERVICES;
/// Most backends (one per frontend and task) a node's load balancer holds.
pub const MAX_BACKENDS: u32 = abi::MAX_BACKENDS;
/// Most new Maglev tables (each a file descriptor until swapped in) staged at once.
const TABLES_PER_BATCH: usize = 256;
/// tc priority of Shoal's filters (one per hook).
const TC_PRIORITY: u16 = 0x5348;

#[derive(Debug, thiserror::Error)]
pub enum LbError {
    #[error("loading the load balancer's eBPF programs: {0}")]
    Load(String),
    #[error("attaching {prog} to {ifname}: {error}")]
    Attach {
        prog: &'static str,
        ifname: String,
        error: String,
    },
    #[error("updating the load balancer's maps: {0}")]
    Map(String),
    #[error("invalid load balancer setting: {0}")]
    Invalid(String),
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
}

fn map_err(what: &str) -> impl Fn(aya::maps::MapError) -> LbError + '_ {
    move |e| {
        let mut text = format!("{what}: {e}");
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            text.push_str(&format!(": {s}"));
            source = s.source();
        }
        LbError::Map(text)
    }
}

/// BPF_F_INNER_MAP: inner maps of one outer map may differ in size (the table
/// size is a setting); the template and every table must carry it.
const BPF_F_INNER_MAP: u32 = 1 << 12;
/// BPF_F_MMAPABLE: a table is filled through a shared mapping (one copy instead
/// of a syscall per slot: 25 ms -> well under 1 ms per service at 16381 slots).
const BPF_F_MMAPABLE: u32 = 1 << 10;

/// Idle timeouts of connection tracking, per protocol and state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    pub tcp_syn: Duration,
    pub tcp_established: Duration,
    pub tcp_closing: Duration,
    pub udp: Duration,
}

impl Default for Timeouts {
    /// SYN 60 s, established 6 h (IPVS's 900 s drops idle connections:
    /// moby#31208), closing 10 s, UDP 300 s.
    fn default() -> Self {
        Timeouts {
            tcp_syn: Duration::from_secs(60),
            tcp_established: Duration::from_secs(6 * 3600),
            tcp_closing: Duration::from_secs(10),
            udp: Duration::from_secs(300),
        }
    }
}

/// How often at most the programs move a flow's clock (`LB_CT_REFRESH_NS` in
/// lb_helpers.h): between moves its last_seen can be this much older than its
/// last packet.
const CT_CLOCK_STEP: Duration = Duration::from_secs(1);

impl Timeouts {
    /// The age of last_seen at which a flow in this state is expired: its timeout,
    /// plus the clock's step, so no flow goes before it has been idle for its
    /// timeout (it goes within one second after).
    fn expiry(&self, state: u8) -> u64 {
        let timeout = match state as usize {
            abi::CT_SYN => self.tcp_syn,
            abi::CT_ESTABLISHED => self.tcp_established,
            abi::CT_CLOSING => self.tcp_closing,
            _ => self.udp,
        };
        u64::try_from(timeout.saturating_add(CT_CLOCK_STEP).as_nanos()).unwrap_or(u64::MAX)
    }

    /// [`Self::expiry`] of every state, for the programs.
    fn as_ns(&self) -> [u64; abi::CT_STATES] {
        let mut t = [0u64; abi::CT_STATES];
        for (state, v) in t.iter_mut().enumerate() {
            *v = self.expiry(state as u8);
        }
        t
    }
}

/// How a node's load balancer is set up.
#[derive(Debug, Clone)]
pub struct Settings {
    /// This node's pin directory (see [`pin_dir`]).
    pub pin_dir: PathBuf,
    /// Maglev table size, a prime; the same on every node.
    pub maglev_size: u32,
    /// Seed of the flow hash; the same on every node.
    pub seed: u32,
    pub timeouts: Timeouts,
    /// SNAT every mesh flow entering this node to the node's address: the
    /// backend sees the node, not the client. (Clients on a loopback address
    /// are SNATed either way.)
    pub snat: bool,
    /// The overlay's fast path: VXLAN encapsulated and decapsulated by the
    /// programs, past the bridge and the kernel VXLAN device (which stay as
    /// the path for everything else).
    pub overlay: bool,
    /// Direct server return for mesh flows entering this node (needs the
    /// overlay fast path on the backends' nodes; see `ebpf/include/overlay.h`).
    pub dsr: bool,
}

/// The pin directory of the node whose data root is `data_root`: under
/// bpffs, the ABI version, then a hash of the data root (several nodes of a lab
/// share one kernel).
pub fn pin_dir(data_root: &Path) -> PathBuf {
    Path::new(BPFFS)
        .join("shoal")
        .join(abi::ABI_VERSION)
        .join(node_key(data_root))
}

fn node_key(data_root: &Path) -> String {
    let hash = crate::net::stable_hash(&[data_root.as_os_str().as_encoded_bytes()]);
    format!("{hash:016x}")
}

/// Removes the pins of the node with this data root, of every ABI version, and an ABI
/// version's directory once no node has pins left in it.
pub fn remove_pins(data_root: &Path) {
    let key = node_key(data_root);
    if let Ok(versions) = std::fs::read_dir(Path::new(BPFFS).join("shoal")) {
        for version in versions.flatten() {
            let dir = version.path().join(&key);
            if dir.exists() {
                let _ = std::fs::remove_dir_all(&dir);
            }
            // Fails, and leaves it, while another node's pins are in it.
            let _ = std::fs::remove_dir(version.path());
        }
    }
}

/// `create_dir_all`, again if the ABI version's directory went between its two steps
/// (another node on this host removing its last pins, see [`remove_pins`]).
fn create_pin_dir(dir: &Path) -> std::io::Result<()> {
    let mut tries = 0;
    loop {
        match std::fs::create_dir_all(dir) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && tries < 3 => tries += 1,
            other => return other,
        }
    }
}

/// A node's load-balancer MAC: 02:53 and its underlay address.
pub fn lb_mac(node_addr: Ipv4Addr) -> [u8; 6] {
    let [a, b, c, d] = node_addr.octets();
    [abi::LB_MAC_PREFIX[0], abi::LB_MAC_PREFIX[1], a, b, c, d]
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Proto {
    Tcp,
    Udp,
}

impl Proto {
    fn number(self) -> u8 {
        match self {
            Proto::Tcp => 6,
            Proto::Udp => 17,
        }
    }
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        })
    }
}

/// Where clients reach a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Frontend {
    /// A VIP on an overlay network: every port and protocol.
    Vip(Ipv4Addr),
    /// A port published in ingress mode, on every address of every node.
    NodePort { proto: Proto, port: u16 },
}

impl Frontend {
    fn key(&self) -> abi::SvcKey {
        match *self {
            Frontend::Vip(addr) => abi::SvcKey {
                addr: u32::from_ne_bytes(addr.octets()),
                port: 0,
                proto: 0,
                scope: abi::SCOPE_VIP,
            },
            Frontend::NodePort { proto, port } => abi::SvcKey {
                addr: 0,
                port: port.to_be(),
                proto: proto.number(),
                scope: abi::SCOPE_NODEPORT,
            },
        }
    }
}

/// `10.0.0.5:*` (a VIP: any port and protocol) or `*:8080/tcp` (a published
/// port on every address): how `shoal debug lb` and `/metrics` name frontends.
impl fmt::Display for Frontend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Frontend::Vip(addr) => write!(f, "{addr}:*"),
            Frontend::NodePort { proto, port } => write!(f, "*:{port}/{proto}"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BackendState {
    /// Takes new flows.
    Active,
    /// Shutting down (update, drain, scale down) or unhealthy: keeps its flows, no new ones.
    Terminating,
    /// Its node does not answer: no new flows, and its flows go elsewhere.
    Down,
}

impl BackendState {
    fn code(self) -> u8 {
        match self {
            BackendState::Active => abi::BACKEND_ACTIVE,
            BackendState::Terminating => abi::BACKEND_TERMINATING,
            BackendState::Down => abi::BACKEND_DOWN,
        }
    }
}

impl fmt::Display for BackendState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BackendState::Active => "active",
            BackendState::Terminating => "terminating",
            BackendState::Down => "down",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendSpec {
    /// Stable and the same on every node (the task id): Maglev hashes it.
    pub name: String,
    pub addr: Ipv4Addr,
    /// Target port; 0 keeps the client's destination port (VIPs).
    pub port: u16,
    pub mac: [u8; 6],
    pub state: BackendState,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceSpec {
    /// For people: the service's name.
    pub name: String,
    pub frontend: Frontend,
    pub backends: Vec<BackendSpec>,
}

/// What an apply changed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ApplyStats {
    pub services_added: usize,
    pub services_removed: usize,
    pub tables_built: usize,
    pub backends_written: usize,
    pub backends_removed: usize,
    pub elapsed: Duration,
}

struct ServiceState {
    id: u32,
    name: String,
    /// Backend name -> (id, what is in the map).
    backends: BTreeMap<String, (u32, abi::Backend)>,
    /// The active names the current table was built from (sorted).
    table_names: Vec<String>,
    /// Slots of the current table owned by each of them (for reports).
    slots: HashMap<String, u32>,
    /// The service entry in the map, once written.
    entry: Option<abi::Svc>,
}

/// Counters and flows of one backend, for metrics and `shoal debug lb`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendReport {
    pub name: String,
    pub addr: Ipv4Addr,
    pub port: u16,
    pub state: BackendState,
    /// Slots of the Maglev table this backend owns.
    pub maglev_slots: u32,
    pub packets: u64,
    pub bytes: u64,
    pub new_flows: u64,
    pub active_flows: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceReport {
    pub name: String,
    pub frontend: Frontend,
    pub maglev_size: u32,
    pub drops: u64,
    pub backends: Vec<BackendReport>,
}

/// A service id and its new Maglev table, filled, not yet in lb_maglev.
type StagedTable = (u32, Array<MapData, u32>);

/// The conntrack map's entries: live ones by state, and those idle past their
/// timeout that the next sweep deletes (the programs already ignore them).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConntrackReport {
    pub tcp_syn: u64,
    pub tcp_established: u64,
    pub tcp_closing: u64,
    pub udp: u64,
    pub expired: u64,
}

impl ConntrackReport {
    /// Live flows, all states.
    pub fn live(&self) -> u64 {
        self.tcp_syn + self.tcp_established + self.tcp_closing + self.udp
    }
}

/// What [`LoadBalancer::report`] sees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub services: Vec<ServiceReport>,
    pub conntrack: ConntrackReport,
}

/// A node's load balancer.
pub struct LoadBalancer {
    settings: Settings,
    /// One loaded object per attach point, in `shoal_ebpf::PROGRAMS` order.
    objects: Vec<Ebpf>,
    services_map: BpfHashMap<MapData, abi::SvcKey, abi::Svc>,
    backends_map: BpfHashMap<MapData, u32, abi::Backend>,
    maglev_map: HashOfMaps<MapData, u32, Array<MapData, u32>>,
    /// lb_maglev again, for batch operations (aya's handle keeps its fd private).
    maglev_fd: MapData,
    ct_map: BpfHashMap<MapData, abi::FlowKey, abi::Ct>,
    rev_map: BpfHashMap<MapData, abi::FlowKey, abi::Rev>,
    ret_map: BpfHashMap<MapData, abi::FlowKey, abi::Ret>,
    /// lb_ct, lb_rev and lb_ret again, for batch reads and deletes.
    flow_fds: [MapData; 3],
    local_addrs: BpfHashMap<MapData, u32, u32>,
    config_map: Array<MapData, abi::Config>,
    backend_stats: PerCpuHashMap<MapData, u32, abi::Counters>,
    svc_stats: PerCpuHashMap<MapData, u32, abi::Counters>,
    config: abi::Config,
    fast: overlay::FastPath,
    /// lb_dsr.
    dsr: SyncedMap<abi::DsrKey, u32>,
    services: HashMap<Frontend, ServiceState>,
    next_svc_id: u32,
    next_backend_id: u32,
    /// The host's interfaces (name, index) the mesh's entry is attached to.
    node_ifaces: BTreeSet<(String, u32)>,
}

const NODE_INGRESS: usize = 0;
const NODE_REPLY: usize = 1;
const TASK_OUT: usize = 2;
const TASK_IN: usize = 3;
const OV_UP_NODE: usize = 4;
const OV_UP_NET: usize = 5;

fn mount_bpffs() -> Result<(), LbError> {
    let mounts = std::fs::read_to_string("/proc/mounts")
        .map_err(|e| LbError::Io("reading /proc/mounts".into(), e))?;
    if mounts.lines().any(|l| {
        l.split_whitespace().nth(1) == Some(BPFFS) && l.split_whitespace().nth(2) == Some("bpf")
    }) {
        return Ok(());
    }
    nix::mount::mount(
        Some("bpf"),
        BPFFS,
        Some("bpf"),
        nix::mount::MsFlags::empty(),
        None::<&str>,
    )
    .map_err(|e| LbError::Io(format!("mounting bpffs at {BPFFS}"), e.into()))
}

fn take<T: TryFrom<aya::maps::Map, Error = aya::maps::MapError>>(
    obj: &mut Ebpf,
    name: &str,
) -> Result<T, LbError> {
    let map = obj
        .take_map(name)
        .ok_or_else(|| LbError::Load(format!("map {name} missing from the object")))?;
    T::try_from(map).map_err(|e| LbError::Load(format!("map {name}: {e}")))
}

/// A hash map of the programs with what shoald last wrote into it (read back
/// at load, so a restarted shoald also removes what is no longer wanted):
/// [`SyncedMap::sync`] makes it hold what is wanted with only the writes that
/// differ.
struct SyncedMap<K, V> {
    map: BpfHashMap<MapData, K, V>,
    written: HashMap<K, V>,
}

impl<K, V> SyncedMap<K, V>
where
    K: aya::Pod + Eq + std::hash::Hash,
    V: aya::Pod + PartialEq,
{
    fn take(obj: &mut Ebpf, name: &str) -> Result<Self, LbError> {
        let map: BpfHashMap<MapData, K, V> = take(obj, name)?;
        let written = map.iter().filter_map(Result::ok).collect();
        Ok(SyncedMap { map, written })
    }

    /// `what`: how errors name an entry ("an overlay endpoint").
    fn sync(&mut self, wanted: &HashMap<K, V>, what: &str) -> Result<(), LbError> {
        for (key, value) in wanted {
            if self.written.get(key) != Some(value) {
                self.map
                    .insert(key, value, 0)
                    .map_err(map_err(&format!("writing {what}")))?;
                self.written.insert(*key, *value);
            }
        }
        let gone: Vec<K> = self
            .written
            .keys()
            .filter(|k| !wanted.contains_key(k))
            .copied()
            .collect();
        for key in gone {
            let _ = self.map.remove(&key);
            self.written.remove(&key);
        }
        Ok(())
    }

    fn len(&self) -> usize {
        self.written.len()
    }
}

impl LoadBalancer {
    /// Loads the programs (reusing this node's pinned maps, if any) and writes the
    /// node's configuration. Attaches nothing yet.
    pub fn load(settings: Settings) -> Result<Self, LbError> {
        if !maglev::is_prime(settings.maglev_size) || settings.maglev_size < 3 {
            return Err(LbError::Invalid(format!(
                "Maglev table size {} is not a prime >= 3",
                settings.maglev_size
            )));
        }
        mount_bpffs()?;
        create_pin_dir(&settings.pin_dir)
            .map_err(|e| LbError::Io(format!("creating {}", settings.pin_dir.display()), e))?;
        let mut objects = Vec::new();
        for (name, bytes) in abi::PROGRAMS {
            let mut obj = EbpfLoader::new()
                .default_map_pin_directory(&settings.pin_dir)
                .load(bytes)
                .map_err(|e| LbError::Load(format!("{name}: {e}")))?;
            let prog: &mut SchedClassifier = obj
                .program_mut(name)
                .ok_or_else(|| LbError::Load(format!("{name} missing from its object")))?
                .try_into()
                .map_err(|e| LbError::Load(format!("{name}: {e}")))?;
            prog.load()
                .map_err(|e| LbError::Load(format!("{name}: {e:?}")))?;
            objects.push(obj);
        }
        let first = &mut objects[0];
        let services_map = take(first, "lb_services")?;
        let backends_map = take(first, "lb_backends")?;
        let maglev_map = take(first, "lb_maglev")?;
        let maglev_fd = MapData::from_pin(settings.pin_dir.join("lb_maglev"))
            .map_err(map_err("opening lb_maglev"))?;
        let ct_map = take(first, "lb_ct")?;
        let rev_map = take(first, "lb_rev")?;
        let ret_map = take(first, "lb_ret")?;
        let pinned = |name: &str| {
            MapData::from_pin(settings.pin_dir.join(name)).map_err(map_err("opening a pinned map"))
        };
        let flow_fds = [pinned("lb_ct")?, pinned("lb_rev")?, pinned("lb_ret")?];
        let local_addrs = take(first, "lb_local_addrs")?;
        let config_map: Array<MapData, abi::Config> = take(first, "lb_config")?;
        let backend_stats = take(first, "lb_backend_stats")?;
        let svc_stats = take(first, "lb_svc_stats")?;
        let fast = overlay::FastPath::new(first)?;
        let dsr = SyncedMap::take(first, "lb_dsr")?;
        let mut config = config_map
            .get(&0, 0)
            .map_err(map_err("reading lb_config"))?;
        config.maglev_seed = settings.seed;
        config.timeout_ns = settings.timeouts.as_ns();
        config.flags = if settings.snat { abi::CFG_F_SNAT } else { 0 };
        if settings.overlay {
            config.flags |= abi::CFG_F_OVERLAY;
        }
        if settings.dsr {
            config.flags |= abi::CFG_F_DSR;
        }
        let mut lb = LoadBalancer {
            settings,
            objects,
            services_map,
            backends_map,
            maglev_map,
            maglev_fd,
            ct_map,
            rev_map,
            ret_map,
            flow_fds,
            local_addrs,
            config_map,
            backend_stats,
            svc_stats,
            config,
            fast,
            dsr,
            services: HashMap::new(),
            next_svc_id: 1,
            next_backend_id: 1,
            node_ifaces: BTreeSet::new(),
        };
        lb.write_config()?;
        lb.adopt()?;
        Ok(lb)
    }

    /// A restarted shoald finds its old services in the pinned maps: it forgets
    /// them (the next apply writes them again under fresh ids) except that flows
    /// keep their backends, because ids are only reused after the old ones are
    /// gone from the maps.
    fn adopt(&mut self) -> Result<(), LbError> {
        let mut max_svc = 0;
        for key in self.services_map.keys() {
            let key = key.map_err(map_err("listing services"))?;
            if let Ok(svc) = self.services_map.get(&key, 0) {
                max_svc = max_svc.max(svc.id);
            }
        }
        let mut max_backend = 0;
        for id in self.backends_map.keys() {
            max_backend = max_backend.max(id.map_err(map_err("listing backends"))?);
        }
        self.next_svc_id = max_svc + 1;
        self.next_backend_id = max_backend + 1;
        Ok(())
    }

    fn write_config(&mut self) -> Result<(), LbError> {
        self.config_map
            .set(0, self.config, 0)
            .map_err(map_err("writing lb_config"))
    }

    /// Attaches the mesh entry to the underlay interface and `lo` of the
    /// namespace the daemon runs in, and to every other interface with an
    /// address there (see [`LoadBalancer::refresh_local_addrs`]), and records
    /// the node's addresses; `node_addr` is the one SNATed flows come from.
    ///
    /// Replies to the node's own clients are handed to `lo` as received
    /// packets, which the kernel takes for spoofed (a local source address,
    /// or 127.0.0.0/8, arriving without a route attached) unless `lo` accepts
    /// them: `accept_local` and `route_localnet` are turned on for `lo` only.
    /// Only the host itself sends on `lo`, so nothing from outside gains a way in.
    pub fn attach_node(
        &mut self,
        underlay_ifname: &str,
        node_addr: Ipv4Addr,
    ) -> Result<(), LbError> {
        let kind = link_type(underlay_ifname);
        if kind != Some(ARPHRD_ETHER) {
            return Err(LbError::Io(
                format!("attaching to {underlay_ifname}"),
                std::io::Error::other(format!(
                    "the underlay interface is not Ethernet (link type {kind:?}): the load \
                     balancer's programs read Ethernet frames"
                )),
            ));
        }
        self.attach(NODE_INGRESS, None, underlay_ifname, TcAttachType::Ingress)?;
        self.attach(NODE_INGRESS, None, "lo", TcAttachType::Ingress)?;
        for knob in ["accept_local", "route_localnet"] {
            let path = format!("/proc/sys/net/ipv4/conf/lo/{knob}");
            // Without it only the node's own clients go unanswered: not fatal.
            if let Err(e) = std::fs::write(&path, "1") {
                tracing::warn!(path, error = %e, "published ports will not answer the node itself");
            }
        }
        self.config.underlay_ifindex = ifindex(underlay_ifname)?;
        self.node_ifaces
            .insert((underlay_ifname.to_string(), self.config.underlay_ifindex));
        self.config.snat_addr = u32::from_ne_bytes(node_addr.octets());
        self.config.vtep = self.config.snat_addr;
        self.write_config()?;
        self.refresh_local_addrs()
    }

    /// Attaches the reply path to the host end of the load-balancer port (made
    /// by the overlay) and points the mesh at it.
    pub fn attach_lb_port(&mut self, host_ifname: &str, mac: [u8; 6]) -> Result<(), LbError> {
        self.attach(NODE_REPLY, None, host_ifname, TcAttachType::Ingress)?;
        self.config.lb_ifindex = ifindex(host_ifname)?;
        self.config.lb_mac = mac;
        self.write_config()
    }

    /// Attaches the task programs to a task's port on a bridge, in the
    /// network's namespace.
    pub fn attach_task_port(&mut self, netns: &Path, port: &str) -> Result<(), LbError> {
        self.attach(TASK_OUT, Some(netns), port, TcAttachType::Ingress)?;
        self.attach(TASK_IN, Some(netns), port, TcAttachType::Egress)
    }

    fn attach(
        &mut self,
        which: usize,
        netns: Option<&Path>,
        ifname: &str,
        direction: TcAttachType,
    ) -> Result<(), LbError> {
        let (name, _) = abi::PROGRAMS[which];
        let prog: &mut SchedClassifier = self.objects[which]
            .program_mut(name)
            .expect("loaded in load()")
            .try_into()
            .expect("a classifier");
        let fail = |error: String| LbError::Attach {
            prog: name,
            ifname: ifname.to_string(),
            error,
        };
        in_netns(netns, || {
            if let Err(e) = tc::qdisc_add_clsact(ifname) {
                let exists = matches!(&e, tc::TcError::NetlinkError(n) if n.raw_os_error() == Some(nix::libc::EEXIST));
                if !exists {
                    return Err(format!("adding clsact: {e}"));
                }
            }
            let options = NlOptions {
                priority: TC_PRIORITY,
                handle: TcHandle::new(0, 1),
                ..NlOptions::default()
            };
            let id = match prog.attach_with_options(
                ifname,
                direction,
                TcAttachOptions::Netlink(options),
            ) {
                Ok(id) => id,
                Err(_) => {
                    // Already attached (a restarted shoald): replace in place.
                    let link = SchedClassifierLink::attached(
                        ifname,
                        direction,
                        TC_PRIORITY,
                        TcHandle::new(0, 1),
                        None,
                    )
                    .map_err(|e| e.to_string())?;
                    prog.attach_to_link(link).map_err(|e| format!("{e:?}"))?
                }
            };
            // The filter stays when shoald exits: keep established flows balanced.
            let link = prog.take_link(id).map_err(|e| e.to_string())?;
            std::mem::forget(link);
            Ok(())
        })
        .map_err(fail)
    }

    /// Records the IPv4 addresses of the daemon's namespace (lb_local_addrs):
    /// published ports answer on every one. Every Ethernet interface with an
    /// address gets the mesh's entry, so a published port answers on all of
    /// the host's addresses, as Docker's routing mesh does (a public interface
    /// beside the swarm's private one, say), and a flow's replies leave by
    /// the interface its requests came in by (lb_rev). Shoal's own devices,
    /// which carry no address, are left alone. Run on every apply and every
    /// conntrack sweep: an address or interface that appears later is served
    /// within seconds. A map or an attachment that fails is logged and the
    /// rest still done (the next run tries again).
    pub fn refresh_local_addrs(&mut self) -> Result<(), LbError> {
        let listed: Vec<_> = nix::ifaddrs::getifaddrs()
            .map_err(|e| LbError::Io("listing addresses".into(), e.into()))?
            .collect();
        // The programs read an Ethernet header first: interfaces without one
        // (WireGuard, tun: their packets start at the IP header) are not
        // served, never misread. getifaddrs names an address by its label
        // (eth0:1), a link by its device (eth0).
        let ethernet: BTreeSet<&str> = listed
            .iter()
            .filter(|a| {
                a.address
                    .as_ref()
                    .and_then(|s| s.as_link_addr())
                    .is_some_and(|l| l.hatype() == ARPHRD_ETHER)
            })
            .map(|a| a.interface_name.as_str())
            .collect();
        let mut addrs = BTreeSet::new();
        let mut ifaces = BTreeSet::new();
        for a in &listed {
            let Some(ip) = a
                .address
                .as_ref()
                .and_then(|s| s.as_sockaddr_in())
                .map(|s| s.ip())
            else {
                continue;
            };
            addrs.insert(u32::from_ne_bytes(ip.octets()));
            let device = a.interface_name.split(':').next().unwrap_or_default();
            // An interface gone since the listing is skipped: the next run
            // sees the world as it is then.
            if let Ok(index) = ifindex(device) {
                if index != LOOPBACK_IFINDEX && ethernet.contains(device) {
                    ifaces.insert((device.to_string(), index));
                }
            }
        }
        // Stale addresses first: the map has room for LB_MAX_LOCAL_ADDRS.
        let present: Vec<u32> = self.local_addrs.keys().filter_map(Result::ok).collect();
        for addr in &present {
            if !addrs.contains(addr) {
                let _ = self.local_addrs.remove(addr);
            }
        }
        for addr in &addrs {
            if !present.contains(addr) {
                if let Err(e) = self.local_addrs.insert(addr, 1, 0) {
                    let addr = Ipv4Addr::from(addr.to_ne_bytes());
                    tracing::warn!(%addr, error = %e, "published ports will not answer on this address");
                }
            }
        }
        // Interfaces gone (or renumbered) took their filters with them.
        self.node_ifaces.retain(|iface| ifaces.contains(iface));
        for iface in ifaces {
            if self.node_ifaces.contains(&iface) {
                continue;
            }
            match self.attach(NODE_INGRESS, None, &iface.0, TcAttachType::Ingress) {
                Ok(()) => {
                    tracing::info!(interface = %iface.0, "published ports answer on this interface");
                }
                Err(e) => tracing::warn!(error = %e, "published ports will not answer there"),
            }
            // Tried once per interface: a failure is not retried every sweep.
            self.node_ifaces.insert(iface);
        }
        Ok(())
    }

    /// Makes the maps hold exactly `desired` (frontends must be distinct: a later
    /// duplicate is ignored).
    pub fn apply(&mut self, desired: &[ServiceSpec]) -> Result<ApplyStats, LbError> {
        let started = Instant::now();
        let mut stats = ApplyStats::default();
        let mut wanted: BTreeMap<Frontend, &ServiceSpec> = BTreeMap::new();
        for spec in desired {
            wanted.entry(spec.frontend).or_insert(spec);
        }
        // Backends and new tables of every service, then the tables swapped in
        // with one batch per TABLES_PER_BATCH (each change to a map of maps waits
        // for an RCU grace period: ~10 ms, once per batch instead of once per
        // service), then the service entries, then what left. A staged table is
        // a file descriptor until it is swapped in: batches keep a large range of
        // published ports from running the daemon out of descriptors.
        let mut tables = Vec::new();
        for (frontend, spec) in &wanted {
            if let Some(table) = self.stage_service(*frontend, spec, &mut stats)? {
                tables.push(table);
            }
            if tables.len() >= TABLES_PER_BATCH {
                self.swap_tables(&tables)?;
                stats.tables_built += tables.len();
                tables.clear();
            }
        }
        self.swap_tables(&tables)?;
        stats.tables_built += tables.len();
        drop(tables);
        for (frontend, spec) in &wanted {
            self.publish_service(*frontend, spec, &mut stats)?;
        }
        let gone: Vec<Frontend> = self
            .services
            .keys()
            .filter(|f| !wanted.contains_key(f))
            .copied()
            .collect();
        let mut gone_ids = Vec::new();
        for frontend in gone {
            gone_ids.extend(self.remove_service(frontend, &mut stats));
        }
        self.drop_tables(&gone_ids);
        self.write_dsr(wanted.values().copied())?;
        stats.elapsed = started.elapsed();
        Ok(stats)
    }

    /// Makes lb_dsr say, for every backend of a published port, which port
    /// that is, unless two published ports share the backend (its node could
    /// not tell which one a client used: no direct return for it).
    fn write_dsr<'a>(
        &mut self,
        specs: impl Iterator<Item = &'a ServiceSpec>,
    ) -> Result<(), LbError> {
        self.dsr.sync(&dsr_entries(specs), "a direct-return entry")
    }

    /// Puts the tables into lb_maglev under their service ids: one batch
    /// update, or one update each where the kernel has no batches for it.
    fn swap_tables(&mut self, tables: &[StagedTable]) -> Result<(), LbError> {
        use aya::maps::IterableMap;
        use std::os::fd::AsRawFd;
        if tables.is_empty() {
            return Ok(());
        }
        let keys: Vec<u32> = tables.iter().map(|(id, _)| *id).collect();
        let fds: Vec<u32> = tables
            .iter()
            .map(|(_, t)| IterableMap::map(t).fd().as_fd().as_raw_fd() as u32)
            .collect();
        if batch(
            self.maglev_fd.fd().as_fd(),
            BPF_MAP_UPDATE_BATCH,
            &keys,
            Some(&fds),
        )
        .is_ok()
        {
            return Ok(());
        }
        for (id, table) in tables {
            self.maglev_map
                .insert(id, table, 0)
                .map_err(map_err("swapping in a Maglev table"))?;
        }
        Ok(())
    }

    /// Deletes the tables of these service ids from lb_maglev (batched likewise).
    fn drop_tables(&mut self, ids: &[u32]) {
        if ids.is_empty()
            || batch(self.maglev_fd.fd().as_fd(), BPF_MAP_DELETE_BATCH, ids, None).is_ok()
        {
            return;
        }
        for id in ids {
            let _ = self.maglev_map.remove(id);
        }
    }

    /// Writes the service's backends and, when its active set changed, builds
    /// its new Maglev table, returned with its service id for [`Self::swap_tables`].
    fn stage_service(
        &mut self,
        frontend: Frontend,
        spec: &ServiceSpec,
        stats: &mut ApplyStats,
    ) -> Result<Option<StagedTable>, LbError> {
        if !self.services.contains_key(&frontend) {
            let id = self.next_svc_id;
            self.next_svc_id += 1;
            self.services.insert(
                frontend,
                ServiceState {
                    id,
                    name: spec.name.clone(),
                    backends: BTreeMap::new(),
                    table_names: Vec::new(),
                    slots: HashMap::new(),
                    entry: None,
                },
            );
            let _ = self.svc_stats.insert(id, zero_counters()?, 0);
            stats.services_added += 1;
        }
        let state = self.services.get_mut(&frontend).expect("inserted above");
        state.name = spec.name.clone();
        // 1. Backends, new and changed.
        let mut wanted: BTreeMap<&str, &BackendSpec> = BTreeMap::new();
        for b in &spec.backends {
            wanted.entry(b.name.as_str()).or_insert(b);
        }
        for (name, b) in &wanted {
            let value = abi::Backend {
                addr: u32::from_ne_bytes(b.addr.octets()),
                port: b.port.to_be(),
                mac: b.mac,
                state: b.state.code(),
                pad: [0; 3],
            };
            match state.backends.get(*name) {
                Some((_, old)) if *old == value => {}
                Some((id, _)) => {
                    let id = *id;
                    self.backends_map
                        .insert(id, value, 0)
                        .map_err(map_err("writing a backend"))?;
                    state.backends.insert(name.to_string(), (id, value));
                    stats.backends_written += 1;
                }
                None => {
                    let id = self.next_backend_id;
                    self.next_backend_id += 1;
                    self.backends_map
                        .insert(id, value, 0)
                        .map_err(map_err("writing a backend"))?;
                    let _ = self.backend_stats.insert(id, zero_counters()?, 0);
                    state.backends.insert(name.to_string(), (id, value));
                    stats.backends_written += 1;
                }
            }
        }
        // 2. The table of the active backends, swapped in whole.
        let mut active: Vec<String> = wanted
            .values()
            .filter(|b| b.state == BackendState::Active)
            .map(|b| b.name.clone())
            .collect();
        active.sort();
        let size = self.settings.maglev_size;
        let mut staged = None;
        if active != state.table_names || state.entry.is_none() {
            state.slots.clear();
            if !active.is_empty() {
                let refs: Vec<&str> = active.iter().map(String::as_str).collect();
                let table = maglev::table(&refs, size);
                let ids: Vec<u32> = active.iter().map(|n| state.backends[n].0).collect();
                let inner: Array<MapData, u32> =
                    Array::create(size, BPF_F_INNER_MAP | BPF_F_MMAPABLE)
                        .map_err(map_err("creating a Maglev table"))?;
                let mut owned = vec![0u32; active.len()];
                let slots: Vec<u32> = table
                    .iter()
                    .map(|&owner| {
                        owned[owner as usize] += 1;
                        ids[owner as usize]
                    })
                    .collect();
                fill_array(&inner, &slots)?;
                state.slots = active.iter().cloned().zip(owned).collect();
                staged = Some((state.id, inner));
            }
            state.table_names = active;
        }
        Ok(staged)
    }

    /// Writes the service's entry (its table is in place) and removes the
    /// backends that left it.
    fn publish_service(
        &mut self,
        frontend: Frontend,
        spec: &ServiceSpec,
        stats: &mut ApplyStats,
    ) -> Result<(), LbError> {
        let size = self.settings.maglev_size;
        let state = self.services.get_mut(&frontend).expect("staged");
        // 3. The service entry.
        let svc = abi::Svc {
            id: state.id,
            maglev_size: if state.table_names.is_empty() {
                0
            } else {
                size
            },
            flags: 0,
            pad: 0,
        };
        // Written only when it changes: an apply repeats the whole desired state.
        if state.entry != Some(svc) {
            self.services_map
                .insert(frontend.key(), svc, 0)
                .map_err(map_err("writing a service"))?;
            state.entry = Some(svc);
        }
        // 4. Backends that left.
        let gone: Vec<String> = state
            .backends
            .keys()
            .filter(|n| !spec.backends.iter().any(|b| &b.name == *n))
            .cloned()
            .collect();
        for name in gone {
            if let Some((id, _)) = state.backends.remove(&name) {
                let _ = self.backends_map.remove(&id);
                let _ = self.backend_stats.remove(&id);
                stats.backends_removed += 1;
            }
        }
        Ok(())
    }

    /// Removes a service's entry and backends; returns its id, whose table
    /// goes with [`Self::drop_tables`].
    fn remove_service(&mut self, frontend: Frontend, stats: &mut ApplyStats) -> Option<u32> {
        let state = self.services.remove(&frontend)?;
        let _ = self.services_map.remove(&frontend.key());
        let _ = self.svc_stats.remove(&state.id);
        for (id, _) in state.backends.values() {
            let _ = self.backends_map.remove(id);
            let _ = self.backend_stats.remove(id);
            stats.backends_removed += 1;
        }
        stats.services_removed += 1;
        Some(state.id)
    }

    /// Deletes expired conntrack entries (and the reverse-NAT and return-path
    /// entries of their flows); returns how many flows expired.
    pub fn expire(&mut self) -> Result<usize, LbError> {
        let now = monotonic_ns();
        let timeouts = self.settings.timeouts;
        let ct = all_flows(&self.flow_fds[CT], &self.ct_map)?;
        let mut live = std::collections::HashSet::with_capacity(ct.len());
        let mut expired = Vec::new();
        for (key, ct) in ct {
            if now.saturating_sub(ct.last_seen) >= timeouts.expiry(ct.state) {
                expired.push(key);
            } else {
                live.insert(key);
            }
        }
        delete_flows(&self.flow_fds[CT], &mut self.ct_map, &expired);
        // Reverse entries whose flow is gone: the flow's key is the reply's,
        // turned around, with the frontend as destination (and the client's
        // own address and port for an SNATed flow).
        let mut stale_rev = Vec::new();
        for (key, rev) in all_flows(&self.flow_fds[REV], &self.rev_map)? {
            let snatted = rev.client_addr != 0;
            let flow = abi::FlowKey {
                saddr: if snatted { rev.client_addr } else { key.daddr },
                daddr: rev.addr,
                sport: if snatted { rev.client_port } else { key.dport },
                dport: rev.port,
                proto: key.proto,
                pad: [0; 3],
            };
            // A node port's conntrack key has the address the client reached,
            // which is the frontend address too: the same key.
            if !live.contains(&flow) && now.saturating_sub(rev.last_seen) > 2_000_000_000 {
                stale_rev.push(key);
            }
        }
        delete_flows(&self.flow_fds[REV], &mut self.rev_map, &stale_rev);
        let max_idle = timeouts
            .expiry(abi::CT_ESTABLISHED as u8)
            .max(timeouts.expiry(abi::CT_UDP as u8));
        let stale_ret: Vec<abi::FlowKey> = all_flows(&self.flow_fds[RET], &self.ret_map)?
            .into_iter()
            .filter(|(_, ret)| now.saturating_sub(ret.last_seen) >= max_idle)
            .map(|(key, _)| key)
            .collect();
        delete_flows(&self.flow_fds[RET], &mut self.ret_map, &stale_ret);
        Ok(expired.len())
    }

    /// Services, backends, Maglev shares, counters, live flows and conntrack
    /// counts. One pass over the conntrack map: its cost grows with the flows.
    pub fn report(&self) -> Report {
        let now = monotonic_ns();
        let mut flows: HashMap<u32, u64> = HashMap::new();
        let mut conntrack = ConntrackReport::default();
        let entries = all_flows(&self.flow_fds[CT], &self.ct_map).unwrap_or_default();
        for (_, ct) in entries {
            if now.saturating_sub(ct.last_seen) >= self.settings.timeouts.expiry(ct.state) {
                conntrack.expired += 1;
                continue;
            }
            *flows.entry(ct.backend_id).or_default() += 1;
            match ct.state as usize {
                abi::CT_SYN => conntrack.tcp_syn += 1,
                abi::CT_ESTABLISHED => conntrack.tcp_established += 1,
                abi::CT_CLOSING => conntrack.tcp_closing += 1,
                _ => conntrack.udp += 1,
            }
        }
        let sum = |values: Option<aya::maps::PerCpuValues<abi::Counters>>| {
            let mut total = abi::Counters::default();
            for c in values.iter().flat_map(|v| v.iter()) {
                total.packets += c.packets;
                total.bytes += c.bytes;
                total.new_flows += c.new_flows;
                total.drops += c.drops;
            }
            total
        };
        let mut out: Vec<ServiceReport> = self
            .services
            .iter()
            .map(|(frontend, state)| {
                let size = self.settings.maglev_size;
                let backends = state
                    .backends
                    .iter()
                    .map(|(name, (id, b))| {
                        let c = sum(self.backend_stats.get(id, 0).ok());
                        BackendReport {
                            name: name.clone(),
                            addr: Ipv4Addr::from(b.addr.to_ne_bytes()),
                            port: u16::from_be(b.port),
                            state: match b.state {
                                abi::BACKEND_ACTIVE => BackendState::Active,
                                abi::BACKEND_TERMINATING => BackendState::Terminating,
                                _ => BackendState::Down,
                            },
                            maglev_slots: state.slots.get(name).copied().unwrap_or(0),
                            packets: c.packets,
                            bytes: c.bytes,
                            new_flows: c.new_flows,
                            active_flows: flows.get(id).copied().unwrap_or(0),
                        }
                    })
                    .collect();
                ServiceReport {
                    name: state.name.clone(),
                    frontend: *frontend,
                    maglev_size: if state.table_names.is_empty() {
                        0
                    } else {
                        size
                    },
                    drops: sum(self.svc_stats.get(&state.id, 0).ok()).drops,
                    backends,
                }
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name).then(a.frontend.cmp(&b.frontend)));
        Report {
            services: out,
            conntrack,
        }
    }

    /// Live conntrack entries (all services).
    pub fn flow_count(&self) -> usize {
        self.ct_map.keys().filter(Result::is_ok).count()
    }
}

/// lb_dsr's contents for `specs`: backend (address, target port, protocol) ->
/// the published port (network order), leaving out backends two ports share.
fn dsr_entries<'a>(specs: impl Iterator<Item = &'a ServiceSpec>) -> HashMap<abi::DsrKey, u32> {
    let mut out: HashMap<abi::DsrKey, u32> = HashMap::new();
    let mut shared = std::collections::HashSet::new();
    for spec in specs {
        let Frontend::NodePort { proto, port } = spec.frontend else {
            continue;
        };
        for b in &spec.backends {
            let key = abi::DsrKey {
                addr: u32::from_ne_bytes(b.addr.octets()),
                port: b.port.to_be(),
                proto: proto.number(),
                pad: 0,
            };
            let value = u32::from(port.to_be());
            if *out.entry(key).or_insert(value) != value {
                shared.insert(key);
            }
        }
    }
    for key in shared {
        out.remove(&key);
    }
    out
}

/// Detaches the node-level programs from the daemon's namespace (`swarm leave`;
/// task ports go with their namespaces): the mesh's entry from every
/// interface (it may be on any that had an address), the reply path from the
/// load-balancer port. Pins go with [`remove_pins`].
pub fn detach_node(lb_port: &str) {
    let ifnames: Vec<String> = match nix::net::if_::if_nameindex() {
        Ok(list) => list
            .iter()
            .map(|i| i.name().to_string_lossy().into_owned())
            .collect(),
        Err(e) => {
            tracing::warn!(error = %e, "listing interfaces: the mesh's entry stays on them");
            vec!["lo".to_string()]
        }
    };
    for ifname in &ifnames {
        let _ =
            tc::qdisc_detach_program(ifname, TcAttachType::Ingress, abi::PROGRAMS[NODE_INGRESS].0);
    }
    let _ = tc::qdisc_detach_program(lb_port, TcAttachType::Ingress, abi::PROGRAMS[NODE_REPLY].0);
}

/// Zeroed per-CPU counters, one per possible CPU.
fn zero_counters() -> Result<aya::maps::PerCpuValues<abi::Counters>, LbError> {
    let cpus = aya::util::nr_cpus().map_err(|(what, e)| LbError::Io(what.to_string(), e))?;
    aya::maps::PerCpuValues::try_from(vec![abi::Counters::default(); cpus])
        .map_err(|e| LbError::Map(format!("counters: {e}")))
}

/// Indexes of [`LoadBalancer::flow_fds`].
const CT: usize = 0;
const REV: usize = 1;
const RET: usize = 2;

const BPF_MAP_LOOKUP_BATCH: u32 = 24;
const BPF_MAP_UPDATE_BATCH: u32 = 26;
const BPF_MAP_DELETE_BATCH: u32 = 27;

/// The `batch` member of `union bpf_attr` (linux/bpf.h).
#[repr(C)]
#[derive(Default)]
struct BatchAttr {
    in_batch: u64,
    out_batch: u64,
    keys: u64,
    values: u64,
    count: u32,
    map_fd: u32,
    elem_flags: u64,
    flags: u64,
}

/// BPF_MAP_UPDATE_BATCH (with `values`) or BPF_MAP_DELETE_BATCH of u32 keys
/// and values on `map`; aya 0.14 has no batch operations.
fn batch(
    map: std::os::fd::BorrowedFd<'_>,
    cmd: u32,
    keys: &[u32],
    values: Option<&[u32]>,
) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let mut attr = BatchAttr {
        keys: keys.as_ptr() as u64,
        values: values.map_or(0, |v| v.as_ptr() as u64),
        count: keys.len() as u32,
        map_fd: map.as_raw_fd() as u32,
        ..BatchAttr::default()
    };
    // SAFETY: the attr is the kernel's layout for these commands, its size
    // passed along; keys and values outlive the call and hold `count` elements
    // of the map's key and value sizes (u32 ids, u32 map fds).
    let rc = unsafe {
        nix::libc::syscall(
            nix::libc::SYS_bpf,
            cmd as nix::libc::c_long,
            &mut attr as *mut BatchAttr,
            std::mem::size_of::<BatchAttr>(),
        )
    };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    if attr.count as usize != keys.len() {
        return Err(std::io::Error::other(format!(
            "batch did {} of {}",
            attr.count,
            keys.len()
        )));
    }
    Ok(())
}

fn bpf_batch(cmd: u32, attr: &mut BatchAttr) -> std::io::Result<()> {
    // SAFETY: `attr` is the kernel's layout for the batch commands, its size
    // passed along; the caller's pointers in it outlive the call and hold
    // `count` keys and values of the map's sizes.
    let rc = unsafe {
        nix::libc::syscall(
            nix::libc::SYS_bpf,
            cmd as nix::libc::c_long,
            attr as *mut BatchAttr,
            std::mem::size_of::<BatchAttr>(),
        )
    };
    if rc < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Every entry of a flow-keyed hash map, read with BPF_MAP_LOOKUP_BATCH (a
/// syscall per 4096 entries, not two per entry); through `map`'s iterator
/// where the kernel has no batches.
fn all_flows<V: aya::Pod + Default>(
    fd: &MapData,
    map: &BpfHashMap<MapData, abi::FlowKey, V>,
) -> Result<Vec<(abi::FlowKey, V)>, LbError> {
    match batch_flows(fd) {
        Ok(flows) => Ok(flows),
        Err(Batch::Unsupported) => map
            .iter()
            .collect::<Result<Vec<_>, _>>()
            .map_err(map_err("reading flows")),
        Err(Batch::Failed(e)) => Err(LbError::Io("reading flows".into(), e)),
    }
}

enum Batch {
    /// The kernel has no batch operations for this map.
    Unsupported,
    Failed(std::io::Error),
}

fn batch_flows<V: aya::Pod + Default>(fd: &MapData) -> Result<Vec<(abi::FlowKey, V)>, Batch> {
    use std::os::fd::AsRawFd;
    const CHUNK: usize = 4096;
    let mut out = Vec::new();
    let mut keys = vec![abi::FlowKey::default(); CHUNK];
    let mut values = vec![V::default(); CHUNK];
    let mut token = 0u32;
    let mut first = true;
    loop {
        let mut next = 0u32;
        let mut attr = BatchAttr {
            in_batch: if first {
                0
            } else {
                &token as *const u32 as u64
            },
            out_batch: &mut next as *mut u32 as u64,
            keys: keys.as_mut_ptr() as u64,
            values: values.as_mut_ptr() as u64,
            count: CHUNK as u32,
            map_fd: fd.fd().as_fd().as_raw_fd() as u32,
            ..BatchAttr::default()
        };
        let result = bpf_batch(BPF_MAP_LOOKUP_BATCH, &mut attr);
        let n = (attr.count as usize).min(CHUNK);
        out.extend(keys[..n].iter().copied().zip(values[..n].iter().copied()));
        match result {
            Ok(()) => {}
            // The end of the map.
            Err(e) if e.raw_os_error() == Some(nix::libc::ENOENT) => return Ok(out),
            Err(_) if first => return Err(Batch::Unsupported),
            Err(e) => return Err(Batch::Failed(e)),
        }
        token = next;
        first = false;
    }
}

/// Deletes these keys from a flow-keyed hash map with BPF_MAP_DELETE_BATCH; a
/// key already gone (the programs or the LRU got there first) is skipped.
fn delete_flows<V: aya::Pod>(
    fd: &MapData,
    map: &mut BpfHashMap<MapData, abi::FlowKey, V>,
    keys: &[abi::FlowKey],
) {
    if let Err(rest) = batch_delete(fd, keys) {
        for key in rest {
            let _ = map.remove(key);
        }
    }
}

/// The batch part of [`delete_flows`]; Err: the keys it could not handle.
fn batch_delete<'k>(fd: &MapData, keys: &'k [abi::FlowKey]) -> Result<(), &'k [abi::FlowKey]> {
    use std::os::fd::AsRawFd;
    let mut rest = keys;
    while !rest.is_empty() {
        let mut attr = BatchAttr {
            keys: rest.as_ptr() as u64,
            count: rest.len() as u32,
            map_fd: fd.fd().as_fd().as_raw_fd() as u32,
            ..BatchAttr::default()
        };
        let done = (attr.count as usize).min(rest.len());
        match bpf_batch(BPF_MAP_DELETE_BATCH, &mut attr) {
            Ok(()) => return Ok(()),
            Err(e) if e.raw_os_error() == Some(nix::libc::ENOENT) => {
                // attr.count: deleted before the missing key, which is skipped.
                let deleted = (attr.count as usize).min(done);
                rest = &rest[(deleted + 1).min(rest.len())..];
            }
            Err(_) => return Err(rest),
        }
    }
    Ok(())
}

/// Writes `values` into a memory-mappable array map of u32, from slot 0. The
/// kernel keeps array elements 8-byte aligned: slot i is at byte 8 * i.
fn fill_array(map: &Array<MapData, u32>, values: &[u32]) -> Result<(), LbError> {
    use aya::maps::IterableMap;
    use nix::sys::mman::{mmap, munmap, MapFlags, ProtFlags};
    const STRIDE: usize = 8;
    let mut image = vec![0u8; values.len() * STRIDE];
    for (slot, v) in image.chunks_exact_mut(STRIDE).zip(values) {
        slot[..4].copy_from_slice(&v.to_ne_bytes());
    }
    let page = nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
        .ok()
        .flatten()
        .unwrap_or(4096) as usize;
    let Some(len) = std::num::NonZeroUsize::new(image.len().next_multiple_of(page)) else {
        return Ok(());
    };
    let fd = IterableMap::map(map).fd().as_fd();
    // SAFETY: a fresh shared mapping of the map's own pages (the kernel refuses
    // a length beyond the map's page-rounded size), written within `image.len()`
    // and unmapped before returning; nothing else refers into it.
    unsafe {
        let addr = mmap(
            None,
            len,
            ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
            MapFlags::MAP_SHARED,
            fd,
            0,
        )
        .map_err(|e| LbError::Io("mapping a Maglev table".into(), e.into()))?;
        std::ptr::copy_nonoverlapping(image.as_ptr(), addr.as_ptr().cast::<u8>(), image.len());
        munmap(addr, len.get())
            .map_err(|e| LbError::Io("unmapping a Maglev table".into(), e.into()))?;
    }
    Ok(())
}

fn monotonic_ns() -> u64 {
    let t = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .unwrap_or_else(|_| nix::sys::time::TimeSpec::new(0, 0));
    t.tv_sec() as u64 * 1_000_000_000 + t.tv_nsec() as u64
}

/// `lo`'s index in every network namespace.
const LOOPBACK_IFINDEX: u32 = 1;
/// An Ethernet interface's link type (linux/if_arp.h).
const ARPHRD_ETHER: u16 = 1;

/// The link type (ARPHRD_*) of interface `name`, if it exists.
fn link_type(name: &str) -> Option<u16> {
    nix::ifaddrs::getifaddrs().ok()?.find_map(|a| {
        (a.interface_name == name)
            .then(|| a.address.as_ref()?.as_link_addr().map(|l| l.hatype()))
            .flatten()
    })
}

fn ifindex(name: &str) -> Result<u32, LbError> {
    nix::net::if_::if_nametoindex(name)
        .map_err(|e| LbError::Io(format!("finding interface {name}"), e.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A flow's last_seen moves at most once a second, so it can be up to a second
    /// older than its last packet: the expiry age allows for that, and a flow idle
    /// for less than its timeout is never expired (nor kept a second past it).
    #[test]
    fn flows_expire_only_after_their_whole_timeout_idle() {
        let t = Timeouts {
            tcp_syn: Duration::from_secs(60),
            tcp_established: Duration::from_secs(3600),
            tcp_closing: Duration::from_secs(10),
            udp: Duration::from_secs(2),
        };
        let s = 1_000_000_000u64;
        assert_eq!(
            t.as_ns(),
            [61 * s, 3601 * s, 11 * s, 3 * s],
            "by state: syn, established, closing, udp"
        );
        // Last packet at 10 s; its clock last moved at 9 s (a packet each 0.1 s
        // until then). At 11.9 s (1.9 s idle) it stays; at 13 s it is gone.
        let (last_packet, last_seen) = (10 * s, 9 * s);
        let udp = abi::CT_UDP as u8;
        assert!(last_packet + 19 * s / 10 - last_seen < t.expiry(udp));
        assert!(last_packet + 3 * s - last_seen >= t.expiry(udp));
    }

    /// A timeout too long for the programs' nanosecond clock means "never": it
    /// saturates, where adding the clock's step overflowed and panicked the node's load
    /// balancer at load (`--lb-tcp-established-timeout=18446744073709551615s`).
    #[test]
    fn huge_timeouts_saturate() {
        let t = Timeouts {
            tcp_established: Duration::MAX,
            udp: Duration::from_secs(u64::MAX / 1_000_000_000 + 1),
            ..Timeouts::default()
        };
        let ns = t.as_ns();
        assert_eq!(ns[abi::CT_ESTABLISHED], u64::MAX);
        assert_eq!(ns[abi::CT_UDP], u64::MAX);
        assert_eq!(ns[abi::CT_SYN], 61_000_000_000);
    }

    #[test]
    fn dsr_entries_name_one_published_port_per_backend() {
        let backend = |last: u8, port: u16| BackendSpec {
            name: format!("t{last}"),
            addr: Ipv4Addr::new(10, 0, 0, last),
            port,
            mac: [2, 0x42, 10, 0, 0, last],
            state: BackendState::Active,
        };
        let spec = |frontend: Frontend, backends: Vec<BackendSpec>| ServiceSpec {
            name: "s".into(),
            frontend,
            backends,
        };
        let tcp = |port| Frontend::NodePort {
            proto: Proto::Tcp,
            port,
        };
        let specs = [
            spec(tcp(8080), vec![backend(5, 80), backend(6, 80)]),
            // The same task behind a second published port: ambiguous.
            spec(tcp(8081), vec![backend(6, 80)]),
            // Another port of the same task: fine.
            spec(tcp(8443), vec![backend(5, 443)]),
            spec(
                Frontend::NodePort {
                    proto: Proto::Udp,
                    port: 5353,
                },
                vec![backend(5, 80)],
            ),
            spec(
                Frontend::Vip(Ipv4Addr::new(10, 0, 0, 2)),
                vec![backend(7, 0)],
            ),
        ];
        let got = dsr_entries(specs.iter());
        let key = |last: u8, port: u16, proto: u8| abi::DsrKey {
            addr: u32::from_ne_bytes([10, 0, 0, last]),
            port: port.to_be(),
            proto,
            pad: 0,
        };
        let want: HashMap<abi::DsrKey, u32> = [
            (key(5, 80, 6), u32::from(8080u16.to_be())),
            (key(5, 443, 6), u32::from(8443u16.to_be())),
            (key(5, 80, 17), u32::from(5353u16.to_be())),
        ]
        .into_iter()
        .collect();
        assert_eq!(got, want);
    }

    /// A table written through the mapping reads back slot for slot through
    /// the syscall path the programs' lookups agree with (needs root and BPF).
    #[test]
    fn tables_written_through_the_mapping_read_back_whole() {
        assert!(
            nix::unistd::geteuid().is_root(),
            "this test creates BPF maps: run it as root"
        );
        for size in [1u32, 7, 1021, DEFAULT_MAGLEV_SIZE] {
            let map: Array<MapData, u32> =
                Array::create(size, BPF_F_INNER_MAP | BPF_F_MMAPABLE).expect("creating a table");
            let values: Vec<u32> = (0..size)
                .map(|i| i.wrapping_mul(2_654_435_761) | 1)
                .collect();
            fill_array(&map, &values).expect("filling");
            for (i, want) in values.iter().enumerate() {
                assert_eq!(
                    map.get(&(i as u32), 0).unwrap(),
                    *want,
                    "slot {i} of {size}"
                );
            }
        }
    }

    /// Batch reads see every entry across chunks; batch deletes remove exactly
    /// the keys asked, skipping those already gone (needs root; mounts bpffs, as
    /// shoald does, where the machine did not).
    #[test]
    fn flows_are_read_and_deleted_in_batches() {
        use aya::maps::IterableMap;
        assert!(
            nix::unistd::geteuid().is_root(),
            "this test creates BPF maps: run it as root"
        );
        mount_bpffs().expect("mounting bpffs");
        let key = |i: u32| abi::FlowKey {
            saddr: i,
            daddr: !i,
            sport: i as u16,
            dport: 80,
            proto: 6,
            pad: [0; 3],
        };
        let mut map: BpfHashMap<MapData, abi::FlowKey, abi::Ret> =
            BpfHashMap::create(20_000, 0).expect("creating a hash map");
        for i in 0..9_000 {
            let value = abi::Ret {
                last_seen: u64::from(i),
                ..abi::Ret::default()
            };
            map.insert(key(i), value, 0).unwrap();
        }
        let pin = Path::new(BPFFS).join(format!("shoal-test-flows-{}", std::process::id()));
        IterableMap::map(&map).pin(&pin).expect("pinning in bpffs");
        let fd = MapData::from_pin(&pin);
        let _ = std::fs::remove_file(&pin);
        let fd = fd.expect("opening the pin");

        // The batch paths themselves, not their fallbacks.
        let mut seen: Vec<(abi::FlowKey, abi::Ret)> = match batch_flows(&fd) {
            Ok(v) => v,
            Err(_) => panic!("BPF_MAP_LOOKUP_BATCH failed"),
        };
        seen.sort_by_key(|(k, _)| k.saddr);
        assert_eq!(seen.len(), 9_000);
        for (i, (k, v)) in seen.iter().enumerate() {
            assert_eq!((*k, v.last_seen), (key(i as u32), i as u64));
        }

        // Every third key of the first 6,000, with keys that were never there
        // among them (also first and last).
        let mut doomed: Vec<abi::FlowKey> = vec![key(50_000)];
        for i in (0..6_000).step_by(3) {
            doomed.push(key(i));
            if i % 999 == 0 {
                doomed.push(key(100_000 + i));
            }
        }
        doomed.push(key(60_000));
        assert!(
            batch_delete(&fd, &doomed).is_ok(),
            "BPF_MAP_DELETE_BATCH failed"
        );
        let left: std::collections::BTreeSet<u32> = all_flows(&fd, &map)
            .unwrap()
            .into_iter()
            .map(|(k, _)| k.saddr)
            .collect();
        let want: std::collections::BTreeSet<u32> =
            (0..9_000).filter(|i| *i >= 6_000 || i % 3 != 0).collect();
        assert_eq!(left, want);
    }
}
