//! Packet tests of the load balancer's tc programs (and the overlay fast
//! path's), run by the kernel
//! through BPF_PROG_TEST_RUN: each case fills the maps, feeds a packet built
//! here (Ethernet + IPv4 + TCP/UDP with correct checksums, or ARP, or something
//! malformed), and checks the verdict, the output packet byte for byte (its IP
//! and L4 checksums recomputed from scratch, pseudo-header included) and what
//! the program left in the maps.
//!
//! Needs root (make test runs it as root) and bpffs at /sys/fs/bpf (mounted
//! here if missing). Every case gets its own pin directory,
//! /sys/fs/bpf/shoal-test-<pid>-<n>, removed when the case ends, even on panic.
//! Loading every object in every case is also the test that the verifier
//! accepts each program.

use std::fs;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::panic::{self, AssertUnwindSafe};
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Once;

use aya::maps::{
    Array, HashMap, HashOfMaps, Map, MapData, MapError, PerCpuArray, PerCpuHashMap, PerCpuValues,
};
use aya::programs::SchedClassifier;
use aya::{Ebpf, EbpfLoader};
use shoal_ebpf::{
    flow_hash, Backend, Config, Counters, Ct, DsrKey, FlowKey, Frag, FragKey, OvEp, OvNet, Ret,
    Rev, Svc, SvcKey, BACKEND_ACTIVE, BACKEND_DOWN, BACKEND_TERMINATING, CFG_F_DSR, CFG_F_OVERLAY,
    CFG_F_SNAT, CT_CLOSING, CT_ESTABLISHED, CT_STATES, CT_SYN, CT_UDP, LB_PROBE_ANSWER,
    LB_PROBE_KIND, LB_PROBE_LEN, LB_PROBE_PORT, MAGLEV_DEFAULT, OV_FRAG_NEEDED, OV_LOCAL,
    OV_NET_F_INGRESS, OV_RX, OV_RX_REPLY, OV_SPLIT, OV_STATS, OV_TX, OV_TX_DSR, OV_TX_MESH,
    PROGRAMS, SCOPE_NODEPORT, SCOPE_VIP, SVC_F_SNAT,
};

// ---------------------------------------------------------------------------
// The kernel side: BPF_PROG_TEST_RUN.

const TC_ACT_OK: u32 = 0;
const TC_ACT_SHOT: u32 = 2;
/// What bpf_redirect and bpf_redirect_neigh return; test-run does not redirect.
const TC_ACT_REDIRECT: u32 = 7;

const BPF_PROG_TEST_RUN: libc::c_int = 10;
/// Inner-map template flag: inner maps of any size fit (they must carry it too).
const BPF_F_INNER_MAP: u32 = 1 << 12;
/// The tables are memory-mappable (see maps.h); an inner map's flags must match.
const BPF_F_MMAPABLE: u32 = 1 << 10;

/// The `test` member of `union bpf_attr`, up to `batch_size`.
#[repr(C)]
#[derive(Default)]
struct TestRunAttr {
    prog_fd: u32,
    retval: u32,
    data_size_in: u32,
    data_size_out: u32,
    data_in: u64,
    data_out: u64,
    repeat: u32,
    duration: u32,
    ctx_size_in: u32,
    ctx_size_out: u32,
    ctx_in: u64,
    ctx_out: u64,
    flags: u32,
    cpu: u32,
    batch_size: u32,
    /// Explicit tail padding: every byte the kernel reads is initialised (zero).
    pad: u32,
}

/// `struct __sk_buff` (192 bytes) and the offset of its `gso_size`, which
/// test-run copies into the packet's skb.
const SKB_CTX_LEN: usize = 192;
const SKB_CTX_GSO_SIZE: usize = 176;
const SKB_CTX_GSO_SEGS: usize = 164;
const SKB_CTX_IFINDEX: usize = 40;

/// Runs the program once on a copy of `input`, made a GSO packet of
/// `gso_size` unless 0, come in by interface `ifindex` (0: lo): (its return
/// value, the packet it left).
fn test_run_gso(
    prog: BorrowedFd<'_>,
    input: &[u8],
    gso_size: u32,
    ifindex: u32,
) -> io::Result<(u32, Vec<u8>)> {
    let mut ctx = [0u8; SKB_CTX_LEN];
    ctx[SKB_CTX_IFINDEX..SKB_CTX_IFINDEX + 4].copy_from_slice(&ifindex.to_ne_bytes());
    ctx[SKB_CTX_GSO_SIZE..SKB_CTX_GSO_SIZE + 4].copy_from_slice(&gso_size.to_ne_bytes());
    if gso_size != 0 {
        ctx[SKB_CTX_GSO_SEGS..SKB_CTX_GSO_SEGS + 4].copy_from_slice(&2u32.to_ne_bytes());
    }
    let mut out = vec![0u8; input.len() + 512];
    let mut attr = TestRunAttr {
        prog_fd: u32::try_from(prog.as_raw_fd()).expect("program fd"),
        data_size_in: u32::try_from(input.len()).expect("input size"),
        data_size_out: u32::try_from(out.len()).expect("output size"),
        data_in: input.as_ptr() as u64,
        data_out: out.as_mut_ptr() as u64,
        repeat: 1,
        ctx_size_in: u32::try_from(ctx.len()).expect("ctx size"),
        ctx_in: ctx.as_ptr() as u64,
        ..TestRunAttr::default()
    };
    // SAFETY: bpf(BPF_PROG_TEST_RUN) with a fully initialised attr of the size
    // passed. The kernel reads `data_size_in` bytes from `input` and writes at
    // most `data_size_out` bytes to `out` (it fails with ENOSPC rather than
    // overrun), and writes back into `attr`; all three are live, exclusively
    // borrowed (input shared, read only) for the whole call, and the kernel
    // keeps no pointer to them after it returns. `prog` is an open fd borrowed
    // for the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_TEST_RUN,
            &mut attr as *mut TestRunAttr,
            std::mem::size_of::<TestRunAttr>() as libc::c_uint,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    out.truncate(attr.data_size_out as usize);
    Ok((attr.retval, out))
}

/// CLOCK_MONOTONIC, the clock of bpf_ktime_get_ns.
fn now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the duration of the call.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime: {}", io::Error::last_os_error());
    u64::try_from(ts.tv_sec).unwrap() * 1_000_000_000 + u64::try_from(ts.tv_nsec).unwrap()
}

fn bpffs_mounted() -> bool {
    fs::read_to_string("/proc/mounts")
        .expect("/proc/mounts")
        .lines()
        .any(|l| {
            matches!(
                l.split_whitespace().collect::<Vec<_>>()[..],
                [_, "/sys/fs/bpf", "bpf", ..]
            )
        })
}

/// Root and bpffs, or a loud failure (these tests are never skipped).
fn prerequisites() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // SAFETY: geteuid has no preconditions and cannot fail.
        let euid = unsafe { libc::geteuid() };
        assert_eq!(
            euid, 0,
            "the packet tests load BPF programs: run them as root (make test does)"
        );
        if !bpffs_mounted() {
            let status = Command::new("mount")
                .args(["-t", "bpf", "bpf", "/sys/fs/bpf"])
                .status()
                .expect("run mount");
            assert!(status.success(), "mount -t bpf bpf /sys/fs/bpf: {status}");
            assert!(bpffs_mounted(), "bpffs still not mounted at /sys/fs/bpf");
        }
    });
}

/// A pin directory of its own, removed on drop (also when the case panics).
struct PinDir(PathBuf);

impl PinDir {
    fn new() -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let dir = PathBuf::from(format!("/sys/fs/bpf/shoal-test-{}-{n}", std::process::id()));
        fs::create_dir(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        Self(dir)
    }
}

impl Drop for PinDir {
    fn drop(&mut self) {
        if let Err(e) = fs::remove_dir_all(&self.0) {
            eprintln!("remove {}: {e}", self.0.display());
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Prog {
    NodeIngress,
    NodeReply,
    TaskOut,
    TaskIn,
    OvUpNode,
    OvUpNet,
}

const ALL_PROGS: [Prog; 6] = [
    Prog::NodeIngress,
    Prog::NodeReply,
    Prog::TaskOut,
    Prog::TaskIn,
    Prog::OvUpNode,
    Prog::OvUpNet,
];

impl Prog {
    fn name(self) -> &'static str {
        match self {
            Prog::NodeIngress => "lb_node_ingress",
            Prog::NodeReply => "lb_node_reply",
            Prog::TaskOut => "lb_task_out",
            Prog::TaskIn => "lb_task_in",
            Prog::OvUpNode => "ov_up_node",
            Prog::OvUpNet => "ov_up_net",
        }
    }
}

/// Maps the tests shrink (their size is no part of what the programs do; the
/// Maglev template keeps its size).
const SMALL_MAPS: [&str; 7] = [
    "lb_services",
    "lb_backends",
    "lb_ct",
    "lb_rev",
    "lb_ret",
    "lb_backend_stats",
    "lb_svc_stats",
];

/// The four programs loaded over one pin directory, and typed views of the maps.
struct Env {
    programs: Vec<(Prog, Ebpf)>,
    services: HashMap<MapData, SvcKey, Svc>,
    backends: HashMap<MapData, u32, Backend>,
    maglev: HashOfMaps<MapData, u32, Array<MapData, u32>>,
    ct: HashMap<MapData, FlowKey, Ct>,
    rev: HashMap<MapData, FlowKey, Rev>,
    ret: HashMap<MapData, FlowKey, Ret>,
    local_addrs: HashMap<MapData, u32, u32>,
    config: Array<MapData, Config>,
    backend_stats: PerCpuHashMap<MapData, u32, Counters>,
    svc_stats: PerCpuHashMap<MapData, u32, Counters>,
    ov_eps: HashMap<MapData, u32, OvEp>,
    ov_nets: HashMap<MapData, u32, OvNet>,
    ov_vteps: HashMap<MapData, u32, u32>,
    dsr: HashMap<MapData, DsrKey, u32>,
    ov_stats: PerCpuArray<MapData, u64>,
    frags: HashMap<MapData, FragKey, Frag>,
    // Last: the pins go after every fd is closed.
    _pins: PinDir,
}

fn take<T: TryFrom<Map, Error = MapError>>(ebpf: &mut Ebpf, name: &str) -> T {
    let map = ebpf
        .take_map(name)
        .unwrap_or_else(|| panic!("no map {name}"));
    T::try_from(map).unwrap_or_else(|e| panic!("map {name}: {e}"))
}

fn found<T>(r: Result<T, MapError>) -> Option<T> {
    match r {
        Ok(v) => Some(v),
        Err(MapError::KeyNotFound) => None,
        Err(e) => panic!("map lookup: {e}"),
    }
}

impl Env {
    fn new() -> Self {
        Self::load(true)
    }

    /// Loads the four objects; `small`: with the big maps shrunk (SMALL_MAPS).
    fn load(small: bool) -> Self {
        prerequisites();
        let pins = PinDir::new();
        let mut programs = Vec::new();
        for prog in ALL_PROGS {
            let (_, bytes) = PROGRAMS
                .iter()
                .find(|(name, _)| *name == prog.name())
                .unwrap_or_else(|| panic!("{} not in shoal_ebpf::PROGRAMS", prog.name()));
            let mut loader = EbpfLoader::new();
            loader.default_map_pin_directory(&pins.0);
            // The big preallocated maps, small: creating them dominates a
            // case's time, and a case holds a few entries.
            if small {
                for map in SMALL_MAPS {
                    loader.map_max_entries(map, 4096);
                }
            }
            let mut ebpf = loader
                .load(bytes)
                .unwrap_or_else(|e| panic!("load the object of {}: {e:?}", prog.name()));
            let p: &mut SchedClassifier = ebpf
                .program_mut(prog.name())
                .unwrap_or_else(|| panic!("no program {}", prog.name()))
                .try_into()
                .expect("a tc classifier");
            p.load()
                .unwrap_or_else(|e| panic!("the verifier rejects {}: {e:?}", prog.name()));
            programs.push((prog, ebpf));
        }
        // Every object pins the same maps by name: views from the first do for all.
        let first = &mut programs[0].1;
        Env {
            services: take(first, "lb_services"),
            backends: take(first, "lb_backends"),
            maglev: take(first, "lb_maglev"),
            ct: take(first, "lb_ct"),
            rev: take(first, "lb_rev"),
            ret: take(first, "lb_ret"),
            local_addrs: take(first, "lb_local_addrs"),
            config: take(first, "lb_config"),
            backend_stats: take(first, "lb_backend_stats"),
            svc_stats: take(first, "lb_svc_stats"),
            ov_eps: take(first, "ov_eps"),
            ov_nets: take(first, "ov_nets"),
            ov_vteps: take(first, "ov_vteps"),
            dsr: take(first, "lb_dsr"),
            ov_stats: take(first, "ov_stats"),
            frags: take(first, "lb_frags"),
            programs,
            _pins: pins,
        }
    }

    fn run(&self, prog: Prog, input: &[u8]) -> io::Result<(u32, Vec<u8>)> {
        self.run_gso(prog, input, 0)
    }

    fn run_gso(&self, prog: Prog, input: &[u8], gso_size: u32) -> io::Result<(u32, Vec<u8>)> {
        self.run_on(prog, input, gso_size, 0)
    }

    /// A test run of a packet that came in by interface `ifindex` (0: lo).
    fn run_on(
        &self,
        prog: Prog,
        input: &[u8],
        gso_size: u32,
        ifindex: u32,
    ) -> io::Result<(u32, Vec<u8>)> {
        let (_, ebpf) = self
            .programs
            .iter()
            .find(|(p, _)| *p == prog)
            .expect("loaded");
        let fd = ebpf
            .program(prog.name())
            .expect("program")
            .fd()
            .expect("loaded program fd");
        test_run_gso(fd.as_fd(), input, gso_size, ifindex)
    }

    /// The world's config, changed by `f`.
    fn set_config(&mut self, f: impl FnOnce(&mut Config)) {
        let mut cfg = Config {
            maglev_seed: SEED,
            lb_ifindex: 1,
            underlay_ifindex: 1,
            lb_mac: LB_MAC,
            timeout_ns: [TIMEOUT_NS; CT_STATES],
            snat_addr: ip(NODE),
            ..Config::default()
        };
        f(&mut cfg);
        self.config.set(0, cfg, 0).expect("lb_config");
    }

    fn service(&mut self, key: SvcKey, id: u32, maglev_size: u32) {
        let svc = Svc {
            id,
            maglev_size,
            flags: 0,
            pad: 0,
        };
        self.services.insert(key, svc, 0).expect("lb_services");
    }

    /// A Maglev table of `size` slots for service `id`, slot i holding `slot(i)`.
    fn table(&mut self, id: u32, size: u32, slot: impl Fn(u32) -> u32) {
        let mut inner = Array::<MapData, u32>::create(size, BPF_F_INNER_MAP | BPF_F_MMAPABLE)
            .expect("create a Maglev table");
        for i in 0..size {
            inner.set(i, slot(i), 0).expect("fill the Maglev table");
        }
        self.maglev.insert(id, &inner, 0).expect("lb_maglev");
    }

    fn backend_state(&mut self, id: u32, state: u8) {
        let mut b = self.backends.get(&id, 0).expect("backend");
        b.state = state;
        self.backends.insert(id, b, 0).expect("lb_backends");
    }

    fn put_ct(&mut self, key: FlowKey, backend_id: u32, svc_id: u32, state: usize, last_seen: u64) {
        let ct = Ct {
            last_seen,
            backend_id,
            svc_id,
            state: u8::try_from(state).unwrap(),
            ..Ct::default()
        };
        self.ct.insert(key, ct, 0).expect("lb_ct");
    }

    fn ct(&self, key: &FlowKey) -> Option<Ct> {
        found(self.ct.get(key, 0))
    }

    fn rev(&self, key: &FlowKey) -> Option<Rev> {
        found(self.rev.get(key, 0))
    }

    fn ret(&self, key: &FlowKey) -> Option<Ret> {
        found(self.ret.get(key, 0))
    }

    fn entries(&self) -> (usize, usize, usize) {
        (
            self.ct.keys().count(),
            self.rev.keys().count(),
            self.ret.keys().count(),
        )
    }

    fn zero_stats(&mut self, backend: Option<u32>, svc: Option<u32>) {
        let n = aya::util::nr_cpus().expect("nr_cpus");
        let zero = || PerCpuValues::try_from(vec![Counters::default(); n]).expect("per-CPU values");
        if let Some(id) = backend {
            self.backend_stats
                .insert(id, zero(), 0)
                .expect("lb_backend_stats");
        }
        if let Some(id) = svc {
            self.svc_stats.insert(id, zero(), 0).expect("lb_svc_stats");
        }
    }

    fn sum(values: &PerCpuValues<Counters>) -> Counters {
        values.iter().fold(Counters::default(), |a, c| Counters {
            packets: a.packets + c.packets,
            bytes: a.bytes + c.bytes,
            new_flows: a.new_flows + c.new_flows,
            drops: a.drops + c.drops,
        })
    }

    fn backend_counters(&self, id: u32) -> Counters {
        Self::sum(&self.backend_stats.get(&id, 0).expect("backend counters"))
    }

    fn svc_counters(&self, id: u32) -> Counters {
        Self::sum(&self.svc_stats.get(&id, 0).expect("service counters"))
    }
}

// ---------------------------------------------------------------------------
// The world every case starts from.

const SEED: u32 = 0x5eed_0b1a;
const TIMEOUT_NS: u64 = 3600 * 1_000_000_000;

const ROUTER_MAC: [u8; 6] = [0x52, 0x54, 0x00, 0x00, 0x00, 0x01];
const NODE_MAC: [u8; 6] = [0x52, 0x54, 0x00, 0x00, 0x00, 0x02];
const GATEWAY_MAC: [u8; 6] = [0x02, 0x42, 10, 255, 0, 1];
/// This node's load-balancer MAC, and another node's.
const LB_MAC: [u8; 6] = [0x02, 0x53, 198, 51, 100, 1];
const OTHER_LB_MAC: [u8; 6] = [0x02, 0x53, 198, 51, 100, 2];

const CLIENT: [u8; 4] = [192, 0, 2, 10];
const CLIENT2: [u8; 4] = [203, 0, 113, 77];
/// The node's addresses (in lb_local_addrs), and one that is not.
const NODE: [u8; 4] = [198, 51, 100, 1];
const NODE2: [u8; 4] = [10, 99, 0, 1];
const ELSEWHERE: [u8; 4] = [203, 0, 113, 5];

/// Published ports (ingress mode) and their services.
const PORT_TCP: u16 = 8080;
const PORT_UDP: u16 = 5353;
const SVC_TCP: u32 = 7;
const SVC_UDP: u32 = 8;
/// A service VIP on an overlay network, with a task there.
const SVC_VIP: u32 = 9;
const VIP: [u8; 4] = [10, 0, 1, 100];
const VIP_MAC: [u8; 6] = [0x02, 0x42, 10, 0, 1, 100];
const TASK: [u8; 4] = [10, 0, 1, 5];
const TASK_MAC: [u8; 6] = [0x02, 0x42, 10, 0, 1, 5];

/// Every service's table: TABLE slots, slot i naming backend ids[i % 3].
const TABLE: u32 = 13;

const TCP: u8 = 6;
const UDP: u8 = 17;
const ICMP: u8 = 1;
const FIN: u8 = 0x01;
const SYN: u8 = 0x02;
const ACK: u8 = 0x10;

const ETH_P_IP: u16 = 0x0800;
const ETH_P_ARP: u16 = 0x0806;
const ETH_P_IPV6: u16 = 0x86dd;
const ETH_P_8021Q: u16 = 0x8100;

struct Be {
    id: u32,
    addr: [u8; 4],
    port: u16,
    mac: [u8; 6],
}

const BACKENDS: [Be; 9] = [
    // Published TCP port 8080 -> 80.
    Be {
        id: 1,
        addr: [10, 255, 0, 11],
        port: 80,
        mac: [0x02, 0x42, 10, 255, 0, 11],
    },
    Be {
        id: 2,
        addr: [10, 255, 0, 12],
        port: 80,
        mac: [0x02, 0x42, 10, 255, 0, 12],
    },
    Be {
        id: 3,
        addr: [10, 255, 0, 13],
        port: 80,
        mac: [0x02, 0x42, 10, 255, 0, 13],
    },
    // Published UDP port 5353 -> 53.
    Be {
        id: 4,
        addr: [10, 255, 0, 14],
        port: 53,
        mac: [0x02, 0x42, 10, 255, 0, 14],
    },
    Be {
        id: 5,
        addr: [10, 255, 0, 15],
        port: 53,
        mac: [0x02, 0x42, 10, 255, 0, 15],
    },
    Be {
        id: 6,
        addr: [10, 255, 0, 16],
        port: 53,
        mac: [0x02, 0x42, 10, 255, 0, 16],
    },
    // The VIP's tasks (port 0: the destination port is kept).
    Be {
        id: 11,
        addr: [10, 0, 1, 11],
        port: 0,
        mac: [0x02, 0x42, 10, 0, 1, 11],
    },
    Be {
        id: 12,
        addr: [10, 0, 1, 12],
        port: 0,
        mac: [0x02, 0x42, 10, 0, 1, 12],
    },
    Be {
        id: 13,
        addr: [10, 0, 1, 13],
        port: 0,
        mac: [0x02, 0x42, 10, 0, 1, 13],
    },
];

fn be(id: u32) -> &'static Be {
    BACKENDS
        .iter()
        .find(|b| b.id == id)
        .expect("a backend of the world")
}

fn svc_backends(svc: u32) -> [u32; 3] {
    match svc {
        SVC_TCP => [1, 2, 3],
        SVC_UDP => [4, 5, 6],
        SVC_VIP => [11, 12, 13],
        _ => panic!("service {svc}"),
    }
}

fn svc_key(svc: u32) -> SvcKey {
    match svc {
        SVC_TCP => SvcKey {
            addr: 0,
            port: PORT_TCP.to_be(),
            proto: TCP,
            scope: SCOPE_NODEPORT,
        },
        SVC_UDP => SvcKey {
            addr: 0,
            port: PORT_UDP.to_be(),
            proto: UDP,
            scope: SCOPE_NODEPORT,
        },
        SVC_VIP => SvcKey {
            addr: ip(VIP),
            port: 0,
            proto: 0,
            scope: SCOPE_VIP,
        },
        _ => panic!("service {svc}"),
    }
}

/// An address as the maps hold it (network byte order).
fn ip(a: [u8; 4]) -> u32 {
    u32::from_ne_bytes(a)
}

fn world(env: &mut Env) {
    env.set_config(|_| {});
    for a in [NODE, NODE2] {
        env.local_addrs.insert(ip(a), 1, 0).expect("lb_local_addrs");
    }
    for b in &BACKENDS {
        let backend = Backend {
            addr: ip(b.addr),
            port: b.port.to_be(),
            mac: b.mac,
            state: BACKEND_ACTIVE,
            pad: [0; 3],
        };
        env.backends.insert(b.id, backend, 0).expect("lb_backends");
        env.zero_stats(Some(b.id), None);
    }
    for svc in [SVC_TCP, SVC_UDP, SVC_VIP] {
        env.service(svc_key(svc), svc, TABLE);
        let ids = svc_backends(svc);
        env.table(svc, TABLE, |i| ids[i as usize % 3]);
        env.zero_stats(None, Some(svc));
    }
}

/// Maglev's choice in the world's tables: node ports hash without the
/// destination address, VIPs with it.
fn pick_in(svc: u32, key: &FlowKey, size: u32) -> &'static Be {
    let slot = flow_hash(key, svc == SVC_VIP, SEED) % size;
    be(svc_backends(svc)[slot as usize % 3])
}

fn pick(svc: u32, key: &FlowKey) -> &'static Be {
    pick_in(svc, key, TABLE)
}

/// A backend of the service that is not `b`.
fn other(svc: u32, b: &Be) -> &'static Be {
    be(*svc_backends(svc).iter().find(|&&id| id != b.id).unwrap())
}

// ---------------------------------------------------------------------------
// Packets.

#[derive(Clone, Debug)]
struct Pkt {
    dmac: [u8; 6],
    smac: [u8; 6],
    saddr: [u8; 4],
    daddr: [u8; 4],
    proto: u8,
    sport: u16,
    dport: u16,
    tcp_flags: u8,
    /// IP options, a multiple of 4 bytes.
    options: Vec<u8>,
    /// Flags and fragment offset, host order.
    frag_off: u16,
    /// The IP id.
    id: u16,
    /// UDP sent without a checksum (0).
    no_udp_csum: bool,
    payload: Vec<u8>,
}

impl Pkt {
    fn new(proto: u8, (saddr, sport): ([u8; 4], u16), (daddr, dport): ([u8; 4], u16)) -> Self {
        Pkt {
            dmac: NODE_MAC,
            smac: ROUTER_MAC,
            saddr,
            daddr,
            proto,
            sport,
            dport,
            tcp_flags: 0,
            options: Vec::new(),
            frag_off: 0x4000, // DF
            id: 0x1c46,
            no_udp_csum: false,
            // Odd length: the checksums' odd tail is exercised.
            payload: b"hello, shoal".iter().chain(b"!").copied().collect(),
        }
    }

    fn tcp(src: ([u8; 4], u16), dst: ([u8; 4], u16), flags: u8) -> Self {
        Pkt {
            tcp_flags: flags,
            ..Pkt::new(TCP, src, dst)
        }
    }

    fn udp(src: ([u8; 4], u16), dst: ([u8; 4], u16)) -> Self {
        Pkt::new(UDP, src, dst)
    }

    fn macs(mut self, dmac: [u8; 6], smac: [u8; 6]) -> Self {
        self.dmac = dmac;
        self.smac = smac;
        self
    }

    fn to(mut self, daddr: [u8; 4], dport: u16) -> Self {
        self.daddr = daddr;
        self.dport = dport;
        self
    }

    fn from(mut self, saddr: [u8; 4], sport: u16) -> Self {
        self.saddr = saddr;
        self.sport = sport;
        self
    }

    fn no_csum(mut self) -> Self {
        self.no_udp_csum = true;
        self
    }

    /// The reply: addresses, ports and MACs swapped.
    fn reply(&self) -> Self {
        Pkt {
            dmac: self.smac,
            smac: self.dmac,
            saddr: self.daddr,
            daddr: self.saddr,
            sport: self.dport,
            dport: self.sport,
            tcp_flags: if self.tcp_flags & SYN != 0 {
                SYN | ACK
            } else {
                ACK
            },
            ..self.clone()
        }
    }

    /// Destination NAT to `b` (its port, or the same port when it has none).
    fn dnat(&self, b: &Be) -> Self {
        self.clone()
            .to(b.addr, if b.port != 0 { b.port } else { self.dport })
    }

    fn key(&self) -> FlowKey {
        FlowKey {
            saddr: ip(self.saddr),
            daddr: ip(self.daddr),
            sport: self.sport.to_be(),
            dport: self.dport.to_be(),
            proto: self.proto,
            pad: [0; 3],
        }
    }

    fn l4(&self) -> Vec<u8> {
        let mut l4 = Vec::new();
        l4.extend(self.sport.to_be_bytes());
        l4.extend(self.dport.to_be_bytes());
        let csum_at = match self.proto {
            TCP => {
                l4.extend(0x1020_3040u32.to_be_bytes());
                l4.extend(
                    (if self.tcp_flags & ACK != 0 {
                        0x5060_7080u32
                    } else {
                        0
                    })
                    .to_be_bytes(),
                );
                l4.extend([0x50, self.tcp_flags]);
                l4.extend(64240u16.to_be_bytes());
                l4.extend([0, 0, 0, 0]);
                16
            }
            UDP => {
                l4.extend(u16::try_from(8 + self.payload.len()).unwrap().to_be_bytes());
                l4.extend([0, 0]);
                6
            }
            p => panic!("protocol {p}"),
        };
        l4.extend(&self.payload);
        if !(self.proto == UDP && self.no_udp_csum) {
            let mut c = checksum(
                &[
                    &pseudo_header(self.saddr, self.daddr, self.proto, l4.len())[..],
                    &l4,
                ]
                .concat(),
            );
            if self.proto == UDP && c == 0 {
                c = 0xffff;
            }
            l4[csum_at..csum_at + 2].copy_from_slice(&c.to_be_bytes());
        }
        l4
    }

    fn bytes(&self) -> Vec<u8> {
        self.frame(&self.l4(), self.frag_off)
    }

    /// The frame carrying `l4` (the datagram's L4 bytes, or a fragment's).
    fn frame(&self, l4: &[u8], frag_off: u16) -> Vec<u8> {
        assert_eq!(self.options.len() % 4, 0);
        let ihl = 5 + self.options.len() / 4;
        let mut ip = vec![0x40 | u8::try_from(ihl).unwrap(), 0];
        ip.extend(u16::try_from(ihl * 4 + l4.len()).unwrap().to_be_bytes());
        ip.extend(self.id.to_be_bytes());
        ip.extend(frag_off.to_be_bytes());
        ip.extend([64, self.proto, 0, 0]);
        ip.extend(self.saddr);
        ip.extend(self.daddr);
        ip.extend(&self.options);
        let c = checksum(&ip);
        ip[10..12].copy_from_slice(&c.to_be_bytes());
        [&ethernet(self.dmac, self.smac, ETH_P_IP)[..], &ip, l4].concat()
    }

    /// Fragment `i` of the datagram sent in two (DF clear), as a host
    /// fragments it: 0, the L4 header and data up to FRAG_AT bytes, MF set;
    /// 1, the rest, at offset FRAG_AT.
    fn fragment(&self, i: usize) -> Vec<u8> {
        let l4 = self.l4();
        assert!(l4.len() > FRAG_AT, "a datagram too short to fragment");
        if i == 0 {
            self.frame(&l4[..FRAG_AT], 0x2000)
        } else {
            self.frame(&l4[FRAG_AT..], u16::try_from(FRAG_AT / 8).unwrap())
        }
    }

    /// A payload long enough to send in fragments (odd, as the default's).
    fn long(mut self) -> Self {
        self.payload = (0..99u8).collect();
        self
    }

    fn with_id(mut self, id: u16) -> Self {
        self.id = id;
        self
    }
}

/// Where Pkt::fragment splits a datagram's L4 bytes (a multiple of 8, past a
/// TCP header).
const FRAG_AT: usize = 24;

fn ethernet(dmac: [u8; 6], smac: [u8; 6], ethertype: u16) -> Vec<u8> {
    [&dmac[..], &smac, &ethertype.to_be_bytes()].concat()
}

fn pseudo_header(saddr: [u8; 4], daddr: [u8; 4], proto: u8, len: usize) -> Vec<u8> {
    [
        &saddr[..],
        &daddr,
        &[0, proto],
        &u16::try_from(len).unwrap().to_be_bytes(),
    ]
    .concat()
}

/// The Internet checksum of `data` (RFC 1071): over data holding a correct
/// checksum it is 0.
fn checksum(data: &[u8]) -> u16 {
    let mut sum: u64 = data
        .chunks(2)
        .map(|c| u64::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !u16::try_from(sum).unwrap()
}

/// Recomputes the IPv4 header checksum and the TCP/UDP checksum (pseudo-header
/// included) of a frame from scratch.
fn verify_checksums(f: &[u8]) -> Result<(), String> {
    if f.len() < 34 || u16::from_be_bytes([f[12], f[13]]) != ETH_P_IP {
        return Err("not an IPv4 frame".into());
    }
    let ihl = usize::from(f[14] & 0x0f) * 4;
    let tot = usize::from(u16::from_be_bytes([f[16], f[17]]));
    if ihl < 20 || f.len() < 14 + tot || tot < ihl {
        return Err(format!(
            "bad lengths: IHL {ihl}, total length {tot}, frame {}",
            f.len()
        ));
    }
    if checksum(&f[14..14 + ihl]) != 0 {
        return Err("IP header checksum is wrong".into());
    }
    // A fragment's L4 checksum is the whole datagram's: compared byte for
    // byte with the expected fragment instead.
    if u16::from_be_bytes([f[20], f[21]]) & 0x3fff != 0 {
        return Ok(());
    }
    let (proto, saddr, daddr) = (
        f[23],
        f[26..30].try_into().unwrap(),
        f[30..34].try_into().unwrap(),
    );
    let l4 = &f[14 + ihl..14 + tot];
    match proto {
        UDP if l4[6..8] == [0, 0] => Ok(()),
        TCP | UDP => {
            if checksum(&[&pseudo_header(saddr, daddr, proto, l4.len()), l4].concat()) != 0 {
                Err(format!(
                    "{} checksum is wrong",
                    if proto == TCP { "TCP" } else { "UDP" }
                ))
            } else {
                Ok(())
            }
        }
        ICMP => {
            if checksum(l4) != 0 {
                return Err("ICMP checksum is wrong".into());
            }
            // An error's quote starts with the datagram's IPv4 header.
            if matches!(l4[0], 3 | 11 | 12) && l4.len() >= 28 && checksum(&l4[8..28]) != 0 {
                return Err("the quoted IPv4 header's checksum is wrong".into());
            }
            Ok(())
        }
        p => Err(format!("protocol {p}")),
    }
}

/// A frame in words, for failure messages.
fn describe(f: &[u8]) -> String {
    let mac = |m: &[u8]| {
        m.iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(":")
    };
    if f.len() < 14 {
        return format!("{} bytes: {f:02x?}", f.len());
    }
    let mut s = format!(
        "eth {} <- {} type {:04x}",
        mac(&f[0..6]),
        mac(&f[6..12]),
        u16::from_be_bytes([f[12], f[13]])
    );
    if u16::from_be_bytes([f[12], f[13]]) == ETH_P_IP && f.len() >= 34 {
        let ihl = usize::from(f[14] & 0x0f) * 4;
        s += &format!(
            "; ip {}.{}.{}.{} -> {}.{}.{}.{} proto {} ihl {ihl} csum {:04x}",
            f[26],
            f[27],
            f[28],
            f[29],
            f[30],
            f[31],
            f[32],
            f[33],
            f[23],
            u16::from_be_bytes([f[24], f[25]])
        );
        let l4 = 14 + ihl;
        let frag = u16::from_be_bytes([f[20], f[21]]);
        if frag & 0x3fff != 0 {
            s += &format!(
                "; id {:04x} fragment at {}{}",
                u16::from_be_bytes([f[18], f[19]]),
                (frag & 0x1fff) * 8,
                if frag & 0x2000 != 0 { ", MF" } else { "" }
            );
        }
        if f.len() >= l4 + 8 && frag & 0x1fff == 0 {
            let at = if f[23] == TCP { 16 } else { 6 };
            s += &format!(
                "; ports {} -> {}",
                u16::from_be_bytes([f[l4], f[l4 + 1]]),
                u16::from_be_bytes([f[l4 + 2], f[l4 + 3]])
            );
            if f.len() >= l4 + at + 2 {
                s += &format!(
                    " l4 csum {:04x}",
                    u16::from_be_bytes([f[l4 + at], f[l4 + at + 1]])
                );
            }
        }
    }
    format!("{s}\n  {} bytes: {f:02x?}", f.len())
}

fn arp(
    op: u16,
    (dmac, smac): ([u8; 6], [u8; 6]),
    sha: [u8; 6],
    sip: [u8; 4],
    tha: [u8; 6],
    tip: [u8; 4],
) -> Vec<u8> {
    let mut f = ethernet(dmac, smac, ETH_P_ARP);
    f.extend(1u16.to_be_bytes()); // Ethernet
    f.extend(ETH_P_IP.to_be_bytes());
    f.extend([6, 4]);
    f.extend(op.to_be_bytes());
    f.extend(sha);
    f.extend(sip);
    f.extend(tha);
    f.extend(tip);
    f
}

/// The frame with its IPv4 header edited by `f`, the header checksum recomputed
/// over the 20 bytes present (so only what `f` broke is broken).
fn edit_ip(mut frame: Vec<u8>, f: impl FnOnce(&mut [u8])) -> Vec<u8> {
    f(&mut frame[14..]);
    frame[24..26].copy_from_slice(&[0, 0]);
    let c = checksum(&frame[14..34]);
    frame[24..26].copy_from_slice(&c.to_be_bytes());
    frame
}

// The world's typical packets.

/// A client's TCP packet to the node's published TCP port.
fn client_tcp(sport: u16, flags: u8) -> Pkt {
    Pkt::tcp((CLIENT, sport), (NODE, PORT_TCP), flags)
}

fn client_udp(sport: u16) -> Pkt {
    Pkt::udp((CLIENT, sport), (NODE, PORT_UDP))
}

/// The task's TCP packet to the VIP, port 80.
fn task_tcp(sport: u16, flags: u8) -> Pkt {
    Pkt::tcp((TASK, sport), (VIP, 80), flags).macs(VIP_MAC, TASK_MAC)
}

fn task_udp(sport: u16) -> Pkt {
    Pkt::udp((TASK, sport), (VIP, 53)).macs(VIP_MAC, TASK_MAC)
}

fn node_port_svc(p: &Pkt) -> u32 {
    if p.proto == TCP {
        SVC_TCP
    } else {
        SVC_UDP
    }
}

/// What node_ingress makes of a client's packet to a published port.
fn mesh_dnat(p: &Pkt, b: &Be) -> Pkt {
    p.dnat(b).macs(b.mac, LB_MAC)
}

/// What task_out makes of the task's packet to the VIP.
fn vip_dnat(p: &Pkt, b: &Be) -> Pkt {
    let mut q = p.dnat(b);
    q.dmac = b.mac;
    q
}

/// The reply tuple of `p` once DNATed to `b` (lb_rev's key).
fn reply_key(p: &Pkt, b: &Be) -> FlowKey {
    p.dnat(b).reply().key()
}

/// The loopback address, a local address of every node.
const LOOPBACK: [u8; 4] = [127, 0, 0, 1];

fn with_loopback(env: &mut Env) {
    env.local_addrs
        .insert(ip(LOOPBACK), 1, 0)
        .expect("lb_local_addrs");
}

/// What node_ingress makes of `p` when it SNATs it to the node's address and `port`.
fn snat_dnat(p: &Pkt, b: &Be, port: u16) -> Pkt {
    mesh_dnat(p, b).from(NODE, port)
}

/// The source port node_ingress derives for an SNATed flow whose own port is
/// taken: its `i`th try (see snat_port in lb_helpers.h).
fn derived_snat_port(p: &Pkt, i: u32) -> u16 {
    let h = flow_hash(&p.key(), true, SEED);
    (1024 + h.wrapping_add(i * 40503) % 64511) as u16
}

/// Checks the conntrack and reverse entries of SNATed flow `p` on `port`.
fn check_snat_flow(env: &Env, p: &Pkt, port: u16) {
    let b = pick(SVC_TCP, &p.key());
    let ct = env.ct(&p.key()).expect("an lb_ct entry for the flow");
    assert_eq!(
        (ct.backend_id, ct.nat_port),
        (b.id, port.to_be()),
        "lb_ct entry"
    );
    let rev = env
        .rev(&snat_dnat(p, b, port).reply().key())
        .expect("an lb_rev entry keyed by the SNATed reply");
    assert_eq!(
        (rev.addr, rev.port, rev.client_addr, rev.client_port),
        (ip(p.daddr), p.dport.to_be(), ip(p.saddr), p.sport.to_be()),
        "lb_rev: the frontend and the client to restore"
    );
}

// ---------------------------------------------------------------------------
// Cases.

enum Out {
    /// The packet comes out as it went in.
    Unchanged,
    /// This packet comes out (its checksums are verified too).
    Packet(Vec<u8>),
}

struct Step {
    prog: Prog,
    input: Vec<u8>,
    verdict: u32,
    output: Out,
}

fn step(prog: Prog, input: &Pkt, verdict: u32, output: Option<&Pkt>) -> Step {
    Step {
        prog,
        input: input.bytes(),
        verdict,
        output: output.map_or(Out::Unchanged, |p| Out::Packet(p.bytes())),
    }
}

/// A step with fragment `i` of `input`; the output is that fragment of `output`.
fn frag_step(prog: Prog, input: &Pkt, i: usize, verdict: u32, output: Option<&Pkt>) -> Step {
    Step {
        prog,
        input: input.fragment(i),
        verdict,
        output: output.map_or(Out::Unchanged, |p| Out::Packet(p.fragment(i))),
    }
}

/// Both fragments of `input` through `prog`, each as the same fragment of `output`.
fn frag_steps(prog: Prog, input: &Pkt, verdict: u32, output: Option<&Pkt>) -> [Step; 2] {
    [0, 1].map(|i| frag_step(prog, input, i, verdict, output))
}

struct Case {
    name: &'static str,
    /// Map contents beyond the world's.
    setup: fn(&mut Env),
    steps: Vec<Step>,
    /// What the maps must hold afterwards.
    check: fn(&Env),
}

fn nothing(_: &mut Env) {}
fn no_check(_: &Env) {}

fn assert_frame(step: usize, s: &Step, verdict: u32, out: &[u8]) {
    let ctx = format!("step {step} ({:?})", s.prog);
    assert_eq!(
        verdict,
        s.verdict,
        "{ctx}: verdict; the output was\n  {}",
        describe(out)
    );
    let want = match &s.output {
        Out::Unchanged => &s.input,
        Out::Packet(p) => p,
    };
    assert!(
        out == &want[..],
        "{ctx}: output packet\n   got {}\n  want {}\n input {}",
        describe(out),
        describe(want),
        describe(&s.input)
    );
    if let Out::Packet(_) = s.output {
        if u16::from_be_bytes([out[12], out[13]]) == ETH_P_IP {
            if let Err(e) = verify_checksums(out) {
                panic!("{ctx}: {e}: {}", describe(out));
            }
        }
    }
}

fn run_case(case: &Case) {
    let mut env = Env::new();
    world(&mut env);
    (case.setup)(&mut env);
    for (i, s) in case.steps.iter().enumerate() {
        let (verdict, out) = env
            .run(s.prog, &s.input)
            .unwrap_or_else(|e| panic!("step {i}: BPF_PROG_TEST_RUN of {:?}: {e}", s.prog));
        assert_frame(i, s, verdict, &out);
    }
    (case.check)(&env);
}

/// Runs every case (each in its own pin directory) and reports all failures.
fn run_table(cases: Vec<Case>) {
    let mut failures = Vec::new();
    let n = cases.len();
    for case in &cases {
        if let Err(e) = panic::catch_unwind(AssertUnwindSafe(|| run_case(case))) {
            let msg = e
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| (*s).to_string()))
                .unwrap_or_default();
            failures.push(format!("[{}] {msg}", case.name));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {n} cases failed:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

fn assert_counters(c: Counters, packets: u64, bytes: u64, new_flows: u64, drops: u64) {
    assert_eq!(
        (c.packets, c.bytes, c.new_flows, c.drops),
        (packets, bytes, new_flows, drops),
        "counters (packets, bytes, new flows, drops)"
    );
}

/// The checks after a new flow `p` went to Maglev's choice through node_ingress.
fn check_new_mesh_flow(env: &Env, p: &Pkt, state: usize) {
    let svc = node_port_svc(p);
    let b = pick(svc, &p.key());
    let ct = env.ct(&p.key()).expect("an lb_ct entry for the flow");
    assert_eq!(
        (ct.backend_id, ct.svc_id, usize::from(ct.state)),
        (b.id, svc, state),
        "lb_ct entry"
    );
    assert!(ct.last_seen > 0, "lb_ct last_seen set");
    let rev = env
        .rev(&reply_key(p, b))
        .expect("an lb_rev entry for the reply");
    assert_eq!(
        (rev.addr, rev.port, rev.mac),
        (ip(p.daddr), p.dport.to_be(), [0; 6]),
        "lb_rev: the reply's source becomes the node address and published port"
    );
    assert!(rev.last_seen > 0);
    assert_counters(env.backend_counters(b.id), 1, p.bytes().len() as u64, 1, 0);
}

fn node_ingress_cases() -> Vec<Case> {
    use Prog::NodeIngress as NI;
    let syn = client_tcp(40000, SYN);
    let ack = client_tcp(40000, ACK);
    let b = pick(SVC_TCP, &syn.key());
    let o = other(SVC_TCP, b);
    let udp = client_udp(40001);
    let ub = pick(SVC_UDP, &udp.key());
    let mut opts = client_tcp(40002, SYN);
    opts.options = vec![0x94, 0x04, 0x00, 0x00]; // router alert: IHL 6
    let mut opts40 = client_tcp(40003, SYN);
    opts40.options = [vec![0x01; 39], vec![0x00]].concat(); // NOPs, EOL: IHL 15
    let maglev_flows: Vec<Pkt> = (0..24u16)
        .map(|i| {
            client_tcp(41000 + i * 7, SYN)
                .from(if i % 2 == 0 { CLIENT } else { CLIENT2 }, 41000 + i * 7)
        })
        .collect();
    let big = |p: &Pkt| pick_in(SVC_TCP, &p.key(), MAGLEV_DEFAULT);
    let lo_syn = loopback_tcp(40000, SYN);
    let lo_ack = loopback_tcp(40000, ACK);
    let lo_b = pick(SVC_TCP, &lo_syn.key());
    let lo_port = derived_snat_port(&lo_syn, 1);
    // A port from which a loopback client and one on the node's address reach
    // the same backend.
    let shared = shared_port();
    let lo_shared = loopback_tcp(shared, SYN);
    let node_syn = Pkt::tcp((NODE, shared), (NODE, PORT_TCP), SYN);
    let shared_b = pick(SVC_TCP, &node_syn.key());
    let node_port = derived_snat_port(&node_syn, 1);

    vec![
        Case {
            name: "node_ingress: TCP SYN to a published port is DNATed to Maglev's backend",
            setup: nothing,
            steps: vec![step(NI, &syn, TC_ACT_REDIRECT, Some(&mesh_dnat(&syn, b)))],
            check: |env| check_new_mesh_flow(env, &client_tcp(40000, SYN), CT_SYN),
        },
        Case {
            name: "node_ingress: UDP to a published port is DNATed to Maglev's backend, port rewritten",
            setup: nothing,
            steps: vec![step(NI, &udp, TC_ACT_REDIRECT, Some(&mesh_dnat(&udp, ub)))],
            check: |env| check_new_mesh_flow(env, &client_udp(40001), CT_UDP),
        },
        Case {
            name: "node_ingress: UDP without a checksum keeps checksum 0",
            setup: nothing,
            steps: vec![step(
                NI,
                &udp.clone().no_csum(),
                TC_ACT_REDIRECT,
                Some(&mesh_dnat(&udp, ub).no_csum()),
            )],
            check: no_check,
        },
        Case {
            name: "node_ingress: TCP with IP options (IHL 6) is DNATed, options kept",
            setup: nothing,
            steps: vec![step(NI, &opts, TC_ACT_REDIRECT, Some(&mesh_dnat(&opts, pick(SVC_TCP, &opts.key()))))],
            check: no_check,
        },
        Case {
            name: "node_ingress: TCP with 40 bytes of IP options (IHL 15) is DNATed",
            setup: nothing,
            steps: vec![step(
                NI,
                &opts40,
                TC_ACT_REDIRECT,
                Some(&mesh_dnat(&opts40, pick(SVC_TCP, &opts40.key()))),
            )],
            check: no_check,
        },
        Case {
            name: "node_ingress: the same client flow through either node address gets the same backend",
            setup: nothing,
            steps: vec![
                step(NI, &syn, TC_ACT_REDIRECT, Some(&mesh_dnat(&syn, b))),
                step(
                    NI,
                    &syn.clone().to(NODE2, PORT_TCP),
                    TC_ACT_REDIRECT,
                    Some(&mesh_dnat(&syn.clone().to(NODE2, PORT_TCP), b)),
                ),
            ],
            check: |env| {
                let p = client_tcp(40000, SYN);
                let a = env.ct(&p.key()).unwrap().backend_id;
                let c = env.ct(&p.to(NODE2, PORT_TCP).key()).unwrap().backend_id;
                assert_eq!(a, c);
            },
        },
        Case {
            name: "node_ingress: Maglev: a new flow goes to table[flow_hash(key, no daddr, seed) % size]",
            setup: |env| {
                env.service(svc_key(SVC_TCP), SVC_TCP, MAGLEV_DEFAULT);
                env.table(SVC_TCP, MAGLEV_DEFAULT, |i| svc_backends(SVC_TCP)[i as usize % 3]);
            },
            steps: maglev_flows
                .iter()
                .map(|p| step(NI, p, TC_ACT_REDIRECT, Some(&mesh_dnat(p, big(p)))))
                .collect(),
            check: |env| {
                // The flows must spread over every backend, and hashing the
                // destination address in would have moved some: the case tells.
                let flows: Vec<Pkt> = (0..24u16)
                    .map(|i| client_tcp(0, SYN).from(if i % 2 == 0 { CLIENT } else { CLIENT2 }, 41000 + i * 7))
                    .collect();
                let chosen: std::collections::BTreeSet<u32> =
                    flows.iter().map(|p| pick_in(SVC_TCP, &p.key(), MAGLEV_DEFAULT).id).collect();
                assert_eq!(chosen.len(), 3, "the flows should cover all backends: {chosen:?}");
                assert!(flows.iter().any(|p| {
                    let k = p.key();
                    flow_hash(&k, true, SEED) % MAGLEV_DEFAULT % 3 != flow_hash(&k, false, SEED) % MAGLEV_DEFAULT % 3
                }));
                for p in &flows {
                    let want = pick_in(SVC_TCP, &p.key(), MAGLEV_DEFAULT).id;
                    assert_eq!(env.ct(&p.key()).unwrap().backend_id, want);
                }
            },
        },
        Case {
            name: "node_ingress: conntrack hit: the flow stays on its backend, not the table's",
            setup: |env| {
                let p = client_tcp(40000, ACK);
                let o = other(SVC_TCP, pick(SVC_TCP, &p.key()));
                env.put_ct(p.key(), o.id, SVC_TCP, CT_SYN, now_ns());
            },
            steps: vec![step(NI, &ack, TC_ACT_REDIRECT, Some(&mesh_dnat(&ack, o)))],
            check: |env| {
                let p = client_tcp(40000, ACK);
                let o = other(SVC_TCP, pick(SVC_TCP, &p.key()));
                let ct = env.ct(&p.key()).unwrap();
                assert_eq!((ct.backend_id, usize::from(ct.state)), (o.id, CT_ESTABLISHED));
                assert_counters(env.backend_counters(o.id), 1, p.bytes().len() as u64, 0, 0);
            },
        },
        Case {
            name: "node_ingress: conntrack miss: another flow's entry does not apply",
            setup: |env| {
                let p = client_tcp(40000, SYN);
                let o = other(SVC_TCP, pick(SVC_TCP, &p.key()));
                env.put_ct(client_tcp(40999, SYN).key(), o.id, SVC_TCP, CT_ESTABLISHED, now_ns());
            },
            steps: vec![step(NI, &syn, TC_ACT_REDIRECT, Some(&mesh_dnat(&syn, b)))],
            check: |env| {
                check_new_mesh_flow(env, &client_tcp(40000, SYN), CT_SYN);
                let o = other(SVC_TCP, pick(SVC_TCP, &client_tcp(40000, SYN).key()));
                assert_eq!(env.ct(&client_tcp(40999, SYN).key()).unwrap().backend_id, o.id);
            },
        },
        Case {
            name: "node_ingress: a conntrack entry of another service does not apply",
            setup: |env| {
                let p = client_tcp(40000, SYN);
                let o = other(SVC_TCP, pick(SVC_TCP, &p.key()));
                env.put_ct(p.key(), o.id, 99, CT_ESTABLISHED, now_ns());
            },
            steps: vec![step(NI, &syn, TC_ACT_REDIRECT, Some(&mesh_dnat(&syn, b)))],
            check: |env| check_new_mesh_flow(env, &client_tcp(40000, SYN), CT_SYN),
        },
        Case {
            name: "node_ingress: a conntrack entry older than its timeout is ignored",
            setup: |env| {
                env.set_config(|c| c.timeout_ns = [1_000_000_000; CT_STATES]);
                let p = client_tcp(40000, ACK);
                let o = other(SVC_TCP, pick(SVC_TCP, &p.key()));
                env.put_ct(p.key(), o.id, SVC_TCP, CT_ESTABLISHED, 1);
            },
            steps: vec![step(NI, &ack, TC_ACT_REDIRECT, Some(&mesh_dnat(&ack, b)))],
            check: |env| {
                let p = client_tcp(40000, ACK);
                let ct = env.ct(&p.key()).unwrap();
                assert_eq!(ct.backend_id, pick(SVC_TCP, &p.key()).id, "re-chosen by Maglev");
                assert!(ct.last_seen > 1, "the new entry is fresh");
                assert_eq!(usize::from(ct.state), CT_ESTABLISHED, "a mid-flow packet: established");
            },
        },
        Case {
            name: "node_ingress: a conntrack entry within its timeout is kept",
            setup: |env| {
                env.set_config(|c| c.timeout_ns = [1_000_000_000; CT_STATES]);
                let p = client_tcp(40000, ACK);
                let o = other(SVC_TCP, pick(SVC_TCP, &p.key()));
                env.put_ct(p.key(), o.id, SVC_TCP, CT_ESTABLISHED, now_ns());
            },
            steps: vec![step(NI, &ack, TC_ACT_REDIRECT, Some(&mesh_dnat(&ack, o)))],
            check: no_check,
        },
        Case {
            name: "node_ingress: the timeout is the entry's state's (short SYN timeout, long others)",
            setup: |env| {
                env.set_config(|c| c.timeout_ns[CT_SYN] = 1_000_000_000);
                let p = client_tcp(40000, ACK);
                let o = other(SVC_TCP, pick(SVC_TCP, &p.key()));
                env.put_ct(p.key(), o.id, SVC_TCP, CT_SYN, now_ns() - 2_000_000_000);
            },
            steps: vec![step(NI, &ack, TC_ACT_REDIRECT, Some(&mesh_dnat(&ack, b)))],
            check: no_check,
        },
        Case {
            name: "node_ingress: a TERMINATING backend keeps its established flow",
            setup: |env| {
                let p = client_tcp(40000, ACK);
                let o = other(SVC_TCP, pick(SVC_TCP, &p.key()));
                env.backend_state(o.id, BACKEND_TERMINATING);
                env.put_ct(p.key(), o.id, SVC_TCP, CT_ESTABLISHED, now_ns());
            },
            steps: vec![step(NI, &ack, TC_ACT_REDIRECT, Some(&mesh_dnat(&ack, o)))],
            check: no_check,
        },
        Case {
            name: "node_ingress: a TERMINATING backend gets no new flow: dropped and counted",
            setup: |env| {
                env.table(SVC_TCP, TABLE, |_| 2);
                env.backend_state(2, BACKEND_TERMINATING);
            },
            steps: vec![step(NI, &syn, TC_ACT_SHOT, None)],
            check: |env| {
                assert_counters(env.svc_counters(SVC_TCP), 0, 0, 0, 1);
                assert_counters(env.backend_counters(2), 0, 0, 0, 0);
                assert_eq!(env.entries(), (0, 0, 0), "no conntrack or reverse NAT for a dropped flow");
            },
        },
        Case {
            name: "node_ingress: a DOWN backend's flow is re-chosen",
            setup: |env| {
                let p = client_tcp(40000, ACK);
                let o = other(SVC_TCP, pick(SVC_TCP, &p.key()));
                env.backend_state(o.id, BACKEND_DOWN);
                env.put_ct(p.key(), o.id, SVC_TCP, CT_ESTABLISHED, now_ns());
            },
            steps: vec![step(NI, &ack, TC_ACT_REDIRECT, Some(&mesh_dnat(&ack, b)))],
            check: |env| check_new_mesh_flow(env, &client_tcp(40000, ACK), CT_ESTABLISHED),
        },
        Case {
            name: "node_ingress: a service with no backend (Maglev size 0) drops and counts",
            setup: |env| env.service(svc_key(SVC_TCP), SVC_TCP, 0),
            steps: vec![step(NI, &syn, TC_ACT_SHOT, None)],
            check: |env| assert_counters(env.svc_counters(SVC_TCP), 0, 0, 0, 1),
        },
        Case {
            name: "node_ingress: a FIN marks the flow CLOSING",
            setup: |env| {
                let p = client_tcp(40000, ACK);
                env.put_ct(p.key(), pick(SVC_TCP, &p.key()).id, SVC_TCP, CT_ESTABLISHED, now_ns());
            },
            steps: vec![step(
                NI,
                &client_tcp(40000, FIN | ACK),
                TC_ACT_REDIRECT,
                Some(&mesh_dnat(&client_tcp(40000, FIN | ACK), b)),
            )],
            check: |env| {
                let ct = env.ct(&client_tcp(40000, ACK).key()).unwrap();
                assert_eq!(usize::from(ct.state), CT_CLOSING);
            },
        },
        Case {
            name: "node_ingress: a SYN reusing a CLOSING flow's tuple is a new flow (never to a TERMINATING backend)",
            setup: |env| {
                let p = client_tcp(40000, SYN);
                let o = other(SVC_TCP, pick(SVC_TCP, &p.key()));
                env.backend_state(o.id, BACKEND_TERMINATING);
                env.put_ct(p.key(), o.id, SVC_TCP, CT_CLOSING, now_ns());
            },
            steps: vec![
                step(NI, &syn, TC_ACT_REDIRECT, Some(&mesh_dnat(&syn, b))),
                step(NI, &ack, TC_ACT_REDIRECT, Some(&mesh_dnat(&ack, b))),
            ],
            check: |env| {
                let p = client_tcp(40000, SYN);
                let ct = env.ct(&p.key()).unwrap();
                assert_eq!(
                    (ct.backend_id, usize::from(ct.state)),
                    (pick(SVC_TCP, &p.key()).id, CT_ESTABLISHED),
                    "the new connection is tracked on Maglev's backend, established after its ACK"
                );
                assert!(env.rev(&reply_key(&p, pick(SVC_TCP, &p.key()))).is_some(), "its replies are reverse-NATed");
            },
        },
        Case {
            name: "node_ingress: a retransmitted SYN of a live flow does not move it",
            setup: |env| {
                let p = client_tcp(40000, SYN);
                let o = other(SVC_TCP, pick(SVC_TCP, &p.key()));
                env.put_ct(p.key(), o.id, SVC_TCP, CT_SYN, now_ns());
            },
            steps: vec![
                step(NI, &syn, TC_ACT_REDIRECT, Some(&mesh_dnat(&syn, o))),
                step(NI, &ack, TC_ACT_REDIRECT, Some(&mesh_dnat(&ack, o))),
                step(NI, &syn, TC_ACT_REDIRECT, Some(&mesh_dnat(&syn, o))),
            ],
            check: |env| {
                let p = client_tcp(40000, SYN);
                let ct = env.ct(&p.key()).unwrap();
                assert_eq!(usize::from(ct.state), CT_ESTABLISHED);
            },
        },
        Case {
            name: "node_ingress: a packet to an address that is not the node's passes",
            setup: nothing,
            steps: vec![step(NI, &syn.clone().to(ELSEWHERE, PORT_TCP), TC_ACT_OK, None)],
            check: |env| assert_eq!(env.entries(), (0, 0, 0)),
        },
        Case {
            name: "node_ingress: a port that is not published passes",
            setup: nothing,
            steps: vec![step(NI, &syn.clone().to(NODE, 9999), TC_ACT_OK, None)],
            check: |env| assert_eq!(env.entries(), (0, 0, 0)),
        },
        Case {
            name: "node_ingress: UDP to a port published for TCP only passes",
            setup: nothing,
            steps: vec![step(NI, &udp.clone().to(NODE, PORT_TCP), TC_ACT_OK, None)],
            check: |env| assert_eq!(env.entries(), (0, 0, 0)),
        },
        Case {
            name: "node_ingress: without a load-balancer port (lb_ifindex 0) everything passes",
            setup: |env| env.set_config(|c| c.lb_ifindex = 0),
            steps: vec![step(NI, &syn, TC_ACT_OK, None)],
            check: |env| assert_eq!(env.entries(), (0, 0, 0)),
        },
        Case {
            name: "node_ingress: a client on 127.0.0.1 is SNATed to the node's address, its port kept",
            setup: with_loopback,
            steps: vec![step(NI, &lo_syn, TC_ACT_REDIRECT, Some(&snat_dnat(&lo_syn, lo_b, 40000)))],
            check: |env| check_snat_flow(env, &loopback_tcp(40000, SYN), 40000),
        },
        Case {
            name: "node_ingress: an SNATed flow keeps its port for its next packets",
            setup: with_loopback,
            steps: vec![
                step(NI, &lo_syn, TC_ACT_REDIRECT, Some(&snat_dnat(&lo_syn, lo_b, 40000))),
                step(NI, &lo_ack, TC_ACT_REDIRECT, Some(&snat_dnat(&lo_ack, lo_b, 40000))),
            ],
            check: no_check,
        },
        Case {
            name: "node_ingress: SNAT takes another port when the client's is held toward that backend",
            setup: |env| {
                with_loopback(env);
                // A client on the node's address holds NODE:40000 -> backend.
                let p = Pkt::tcp((NODE, 40000), (NODE, PORT_TCP), SYN);
                let b = pick(SVC_TCP, &loopback_tcp(40000, SYN).key());
                let r = Rev {
                    last_seen: now_ns(),
                    addr: ip(NODE),
                    port: PORT_TCP.to_be(),
                    ..Rev::default()
                };
                env.rev.insert(reply_key(&p, b), r, 0).expect("lb_rev");
            },
            steps: vec![step(NI, &lo_syn, TC_ACT_REDIRECT, Some(&snat_dnat(&lo_syn, lo_b, lo_port)))],
            check: |env| {
                let p = loopback_tcp(40000, SYN);
                check_snat_flow(env, &p, derived_snat_port(&p, 1));
            },
        },
        Case {
            name: "node_ingress: a client on the node's address gets another port when a SNATed flow holds its own",
            setup: with_loopback,
            steps: vec![
                step(NI, &lo_shared, TC_ACT_REDIRECT, Some(&snat_dnat(&lo_shared, shared_b, shared))),
                step(NI, &node_syn, TC_ACT_REDIRECT, Some(&snat_dnat(&node_syn, shared_b, node_port))),
            ],
            check: |env| {
                let p = Pkt::tcp((NODE, shared_port()), (NODE, PORT_TCP), SYN);
                check_snat_flow(env, &p, derived_snat_port(&p, 1));
            },
        },
        Case {
            name: "node_ingress: in SNAT mode (node flag) an outside client is SNATed too",
            setup: |env| env.set_config(|c| c.flags = CFG_F_SNAT),
            steps: vec![step(NI, &syn, TC_ACT_REDIRECT, Some(&snat_dnat(&syn, b, 40000)))],
            check: |env| check_snat_flow(env, &client_tcp(40000, SYN), 40000),
        },
        Case {
            name: "node_ingress: a service with the SNAT flag SNATs its flows",
            setup: |env| {
                let mut svc = env.services.get(&svc_key(SVC_TCP), 0).expect("service");
                svc.flags = SVC_F_SNAT;
                env.services.insert(svc_key(SVC_TCP), svc, 0).expect("lb_services");
            },
            steps: vec![step(NI, &syn, TC_ACT_REDIRECT, Some(&snat_dnat(&syn, b, 40000)))],
            check: |env| check_snat_flow(env, &client_tcp(40000, SYN), 40000),
        },
        Case {
            name: "node_ingress: a lost lb_rev entry (LRU eviction) is written again by the flow's next packets",
            setup: |env| {
                let p = client_tcp(40000, ACK);
                let b = pick(SVC_TCP, &p.key());
                env.put_ct(p.key(), b.id, SVC_TCP, CT_ESTABLISHED, now_ns() - 2_000_000_000);
            },
            steps: vec![step(NI, &ack, TC_ACT_REDIRECT, Some(&mesh_dnat(&ack, b)))],
            check: |env| {
                let p = client_tcp(40000, ACK);
                let rev = env
                    .rev(&reply_key(&p, pick(SVC_TCP, &p.key())))
                    .expect("lb_rev written again");
                assert_eq!((rev.addr, rev.port), (ip(NODE), PORT_TCP.to_be()));
            },
        },
    ]
}

/// The first client port from which 127.0.0.1 and the node's address pick the
/// same backend of the TCP service.
fn shared_port() -> u16 {
    (40000..41000)
        .find(|&p| {
            pick(SVC_TCP, &loopback_tcp(p, SYN).key()).id
                == pick(SVC_TCP, &Pkt::tcp((NODE, p), (NODE, PORT_TCP), SYN).key()).id
        })
        .expect("some port shares a backend")
}

fn loopback_tcp(sport: u16, flags: u8) -> Pkt {
    Pkt::tcp((LOOPBACK, sport), (LOOPBACK, PORT_TCP), flags).macs([0; 6], [0; 6])
}

/// A backend's reply to the client of `p`, as it leaves the ingress network.
fn mesh_reply(p: &Pkt, b: &Be) -> Pkt {
    mesh_dnat(p, b).reply()
}

fn node_reply_cases() -> Vec<Case> {
    use Prog::{NodeIngress as NI, NodeReply as NR};
    let syn = client_tcp(40000, SYN);
    let b = pick(SVC_TCP, &syn.key());
    let reply = mesh_reply(&syn, b);
    let udp = client_udp(40001);
    let ub = pick(SVC_UDP, &udp.key());
    let ureply = mesh_reply(&udp, ub);
    let local = Pkt::tcp((NODE, 40000), (NODE, PORT_TCP), SYN);
    let lb = pick(SVC_TCP, &local.key());
    let local_reply = mesh_reply(&local, lb);
    let mut local_out = local.reply();
    local_out.dmac = [0; 6];
    local_out.smac = [0; 6];
    let lo_syn = loopback_tcp(40000, SYN);
    let lo_b = pick(SVC_TCP, &lo_syn.key());
    let lo_reply = snat_dnat(&lo_syn, lo_b, 40000).reply();
    // Back to the client on lo: from the frontend, to the client, MACs cleared.
    let lo_back = lo_syn.reply();

    fn rev(env: &mut Env, p: &Pkt) {
        let b = pick(node_port_svc(p), &p.key());
        let r = Rev {
            last_seen: now_ns(),
            addr: ip(p.daddr),
            port: p.dport.to_be(),
            ..Rev::default()
        };
        env.rev.insert(reply_key(p, b), r, 0).expect("lb_rev");
    }

    vec![
        Case {
            name: "node_reply: a TCP reply gets back the node address and published port as source",
            setup: |env| rev(env, &client_tcp(40000, SYN)),
            steps: vec![step(NR, &reply, TC_ACT_REDIRECT, Some(&reply.clone().from(NODE, PORT_TCP)))],
            check: no_check,
        },
        Case {
            name: "node_reply: a UDP reply gets back the node address and published port as source",
            setup: |env| rev(env, &client_udp(40001)),
            steps: vec![step(NR, &ureply, TC_ACT_REDIRECT, Some(&ureply.clone().from(NODE, PORT_UDP)))],
            check: no_check,
        },
        Case {
            name: "node_reply: a UDP reply without a checksum keeps checksum 0",
            setup: |env| rev(env, &client_udp(40001)),
            steps: vec![step(
                NR,
                &ureply.clone().no_csum(),
                TC_ACT_REDIRECT,
                Some(&ureply.clone().from(NODE, PORT_UDP).no_csum()),
            )],
            check: no_check,
        },
        Case {
            name: "node_reply: a reply to a client on this node goes to lo with zero MACs",
            setup: |env| rev(env, &Pkt::tcp((NODE, 40000), (NODE, PORT_TCP), SYN)),
            steps: vec![step(NR, &local_reply, TC_ACT_REDIRECT, Some(&local_out))],
            check: no_check,
        },
        Case {
            name: "node_reply: a packet with no reverse NAT entry is dropped",
            setup: nothing,
            steps: vec![step(NR, &reply, TC_ACT_SHOT, None)],
            check: no_check,
        },
        Case {
            name: "node_reply: ICMP from the ingress network is dropped",
            setup: nothing,
            steps: vec![Step {
                prog: NR,
                input: edit_ip(reply.bytes(), |h| h[9] = ICMP),
                verdict: TC_ACT_SHOT,
                output: Out::Unchanged,
            }],
            check: no_check,
        },
        Case {
            name: "node_reply: ARP from the ingress network passes",
            setup: nothing,
            steps: vec![Step {
                prog: NR,
                input: arp(1, ([0xff; 6], b.mac), b.mac, b.addr, [0; 6], [10, 255, 0, 1]),
                verdict: TC_ACT_OK,
                output: Out::Unchanged,
            }],
            check: no_check,
        },
        Case {
            name: "node_reply: round trip: node_ingress's DNAT, then the backend's reply reverse-NATed",
            setup: nothing,
            steps: vec![
                step(NI, &syn, TC_ACT_REDIRECT, Some(&mesh_dnat(&syn, b))),
                step(NR, &reply, TC_ACT_REDIRECT, Some(&reply.clone().from(NODE, PORT_TCP))),
                step(NI, &udp, TC_ACT_REDIRECT, Some(&mesh_dnat(&udp, ub))),
                step(NR, &ureply, TC_ACT_REDIRECT, Some(&ureply.clone().from(NODE, PORT_UDP))),
            ],
            check: no_check,
        },
        Case {
            name: "node_reply: round trip of a client on 127.0.0.1: SNAT there, both addresses restored here",
            setup: with_loopback,
            steps: vec![
                step(NI, &lo_syn, TC_ACT_REDIRECT, Some(&snat_dnat(&lo_syn, lo_b, 40000))),
                step(NR, &lo_reply, TC_ACT_REDIRECT, Some(&lo_back)),
            ],
            check: no_check,
        },
    ]
}

fn task_out_cases() -> Vec<Case> {
    use Prog::TaskOut as TO;
    let syn = task_tcp(50000, SYN);
    let b = pick(SVC_VIP, &syn.key());
    let o = other(SVC_VIP, b);
    let udp = task_udp(50001);
    let ub = pick(SVC_VIP, &udp.key());
    let vip_flows: Vec<Pkt> = (0..24u16).map(|i| task_tcp(51000 + i * 11, SYN)).collect();
    let request = arp(1, ([0xff; 6], TASK_MAC), TASK_MAC, TASK, [0; 6], VIP);
    let answer = arp(2, (TASK_MAC, VIP_MAC), VIP_MAC, VIP, TASK_MAC, TASK);
    // A backend task of the published port answering a client that came
    // through another node's mesh.
    let mesh_back =
        Pkt::tcp((be(1).addr, 80), (CLIENT, 40000), SYN | ACK).macs(GATEWAY_MAC, be(1).mac);

    vec![
        Case {
            name: "task_out: TCP to a VIP is DNATed to Maglev's backend, port kept",
            setup: nothing,
            steps: vec![step(TO, &syn, TC_ACT_OK, Some(&vip_dnat(&syn, b)))],
            check: |env| {
                let p = task_tcp(50000, SYN);
                let b = pick(SVC_VIP, &p.key());
                let ct = env.ct(&p.key()).expect("lb_ct entry");
                assert_eq!(
                    (ct.backend_id, ct.svc_id, usize::from(ct.state)),
                    (b.id, SVC_VIP, CT_SYN)
                );
                let rev = env.rev(&reply_key(&p, b)).expect("lb_rev entry");
                assert_eq!(
                    (rev.addr, rev.port, rev.mac),
                    (ip(VIP), 80u16.to_be(), VIP_MAC),
                    "lb_rev: the VIP, its port and MAC"
                );
                assert_counters(env.backend_counters(b.id), 1, p.bytes().len() as u64, 1, 0);
            },
        },
        Case {
            name: "task_out: UDP to a VIP is DNATed to Maglev's backend",
            setup: nothing,
            steps: vec![step(TO, &udp, TC_ACT_OK, Some(&vip_dnat(&udp, ub)))],
            check: |env| {
                let p = task_udp(50001);
                let ct = env.ct(&p.key()).expect("lb_ct entry");
                assert_eq!(usize::from(ct.state), CT_UDP);
            },
        },
        Case {
            name: "task_out: UDP without a checksum to a VIP keeps checksum 0",
            setup: nothing,
            steps: vec![step(
                TO,
                &udp.clone().no_csum(),
                TC_ACT_OK,
                Some(&vip_dnat(&udp, ub).no_csum()),
            )],
            check: no_check,
        },
        Case {
            name: "task_out: Maglev for VIPs: table[flow_hash(key, with daddr, seed) % size]",
            setup: nothing,
            steps: vip_flows
                .iter()
                .map(|p| {
                    step(
                        TO,
                        p,
                        TC_ACT_OK,
                        Some(&vip_dnat(p, pick(SVC_VIP, &p.key()))),
                    )
                })
                .collect(),
            check: |env| {
                let flows: Vec<Pkt> = (0..24u16).map(|i| task_tcp(51000 + i * 11, SYN)).collect();
                let chosen: std::collections::BTreeSet<u32> =
                    flows.iter().map(|p| pick(SVC_VIP, &p.key()).id).collect();
                assert_eq!(
                    chosen.len(),
                    3,
                    "the flows should cover all backends: {chosen:?}"
                );
                assert!(flows.iter().any(|p| {
                    let k = p.key();
                    flow_hash(&k, true, SEED) % TABLE % 3 != flow_hash(&k, false, SEED) % TABLE % 3
                }));
                for p in &flows {
                    assert_eq!(
                        env.ct(&p.key()).unwrap().backend_id,
                        pick(SVC_VIP, &p.key()).id
                    );
                }
            },
        },
        Case {
            name: "task_out: conntrack hit: a VIP flow stays on its backend",
            setup: |env| {
                let p = task_tcp(50000, ACK);
                let o = other(SVC_VIP, pick(SVC_VIP, &p.key()));
                env.put_ct(p.key(), o.id, SVC_VIP, CT_ESTABLISHED, now_ns());
            },
            steps: vec![step(
                TO,
                &task_tcp(50000, ACK),
                TC_ACT_OK,
                Some(&vip_dnat(&task_tcp(50000, ACK), o)),
            )],
            check: no_check,
        },
        Case {
            name: "task_out: a TERMINATING VIP backend gets no new flow: dropped and counted",
            setup: |env| {
                let p = task_tcp(50000, SYN);
                let b = pick(SVC_VIP, &p.key());
                env.backend_state(b.id, BACKEND_TERMINATING);
            },
            steps: vec![step(TO, &syn, TC_ACT_SHOT, None)],
            check: |env| {
                assert_counters(env.svc_counters(SVC_VIP), 0, 0, 0, 1);
                assert_eq!(env.entries(), (0, 0, 0));
            },
        },
        Case {
            name: "task_out: an ARP request for a VIP is answered back to the task",
            setup: nothing,
            steps: vec![Step {
                prog: TO,
                input: request.clone(),
                verdict: TC_ACT_REDIRECT,
                output: Out::Packet(answer),
            }],
            check: no_check,
        },
        Case {
            name: "task_out: an ARP request for another address passes",
            setup: nothing,
            steps: vec![Step {
                prog: TO,
                input: arp(
                    1,
                    ([0xff; 6], TASK_MAC),
                    TASK_MAC,
                    TASK,
                    [0; 6],
                    [10, 0, 1, 11],
                ),
                verdict: TC_ACT_OK,
                output: Out::Unchanged,
            }],
            check: no_check,
        },
        Case {
            name: "task_out: an ARP reply about a VIP passes",
            setup: nothing,
            steps: vec![Step {
                prog: TO,
                input: arp(2, (VIP_MAC, TASK_MAC), TASK_MAC, TASK, VIP_MAC, VIP),
                verdict: TC_ACT_OK,
                output: Out::Unchanged,
            }],
            check: no_check,
        },
        Case {
            name: "task_out: a truncated ARP request for a VIP passes",
            setup: nothing,
            steps: vec![Step {
                prog: TO,
                input: request[..request.len() - 4].to_vec(),
                verdict: TC_ACT_OK,
                output: Out::Unchanged,
            }],
            check: no_check,
        },
        Case {
            name: "task_out: a reply of a mesh flow goes to the ingress node's load-balancer MAC",
            setup: |env| {
                let key = Pkt::tcp((be(1).addr, 80), (CLIENT, 40000), ACK).key();
                let r = Ret {
                    last_seen: now_ns(),
                    mac: OTHER_LB_MAC,
                    dsr_port: 0,
                };
                env.ret.insert(key, r, 0).expect("lb_ret");
            },
            steps: vec![step(
                TO,
                &mesh_back,
                TC_ACT_OK,
                Some(&mesh_back.clone().macs(OTHER_LB_MAC, be(1).mac)),
            )],
            check: no_check,
        },
        Case {
            name: "task_out: a packet to an address that is no VIP passes",
            setup: nothing,
            steps: vec![step(TO, &syn.clone().to(o.addr, 80), TC_ACT_OK, None)],
            check: |env| assert_eq!(env.entries(), (0, 0, 0)),
        },
    ]
}

fn task_in_cases() -> Vec<Case> {
    use Prog::{NodeIngress as NI, NodeReply as NR, TaskIn as TI, TaskOut as TO};
    let syn = task_tcp(50000, SYN);
    let b = pick(SVC_VIP, &syn.key());
    // The backend's reply as the bridge delivers it to the task.
    let back = vip_dnat(&syn, b).reply().macs(TASK_MAC, b.mac);
    let udp = task_udp(50001);
    let ub = pick(SVC_VIP, &udp.key());
    let uback = vip_dnat(&udp, ub).reply().macs(TASK_MAC, ub.mac);
    // A mesh flow from another node, at the backend task's port.
    let mesh_in = Pkt::tcp((CLIENT, 40000), (be(1).addr, 80), SYN).macs(be(1).mac, OTHER_LB_MAC);
    let mesh_back =
        Pkt::tcp((be(1).addr, 80), (CLIENT, 40000), SYN | ACK).macs(GATEWAY_MAC, be(1).mac);
    // The whole mesh path on one node: in, to the task, its reply, out.
    let client = client_tcp(40000, SYN);
    let mb = pick(SVC_TCP, &client.key());
    let at_task = mesh_dnat(&client, mb);
    let task_reply = at_task.reply().macs(GATEWAY_MAC, mb.mac);
    let to_lb = task_reply.clone().macs(LB_MAC, mb.mac);

    fn vip_rev(env: &mut Env, p: &Pkt) {
        let b = pick(SVC_VIP, &p.key());
        let r = Rev {
            last_seen: now_ns(),
            addr: ip(VIP),
            port: p.dport.to_be(),
            mac: VIP_MAC,
            ..Rev::default()
        };
        env.rev.insert(reply_key(p, b), r, 0).expect("lb_rev");
    }

    vec![
        Case {
            name: "task_in: a VIP backend's TCP reply gets back the VIP and its MAC as source",
            setup: |env| vip_rev(env, &task_tcp(50000, SYN)),
            steps: vec![step(TI, &back, TC_ACT_OK, Some(&back.clone().from(VIP, 80).macs(TASK_MAC, VIP_MAC)))],
            check: no_check,
        },
        Case {
            name: "task_in: a VIP backend's ICMP error about the task's request comes from the VIP, quoting it as sent",
            setup: |env| vip_rev(env, &task_udp(50001)),
            steps: vec![Step {
                prog: TI,
                input: {
                    let got = vip_dnat(&udp, ub);
                    let mut f = icmp(ub.addr, TASK, (DEST_UNREACH, PORT_UNREACH), [0; 4], &quote(&got, usize::MAX));
                    f[..12].copy_from_slice(&[TASK_MAC, ub.mac].concat());
                    f
                },
                verdict: TC_ACT_OK,
                output: Out::Packet({
                    let mut f = icmp(VIP, TASK, (DEST_UNREACH, PORT_UNREACH), [0; 4], &quote(&udp, usize::MAX));
                    f[..12].copy_from_slice(&[TASK_MAC, VIP_MAC].concat());
                    f
                }),
            }],
            check: no_check,
        },
        Case {
            name: "task_in: a VIP backend's UDP reply without a checksum keeps checksum 0",
            setup: |env| vip_rev(env, &task_udp(50001)),
            steps: vec![step(
                TI,
                &uback.clone().no_csum(),
                TC_ACT_OK,
                Some(&uback.clone().from(VIP, 53).macs(TASK_MAC, VIP_MAC).no_csum()),
            )],
            check: no_check,
        },
        Case {
            name: "task_in: VIP round trip: task_out's DNAT, then the backend's reply reverse-NATed",
            setup: nothing,
            steps: vec![
                step(TO, &syn, TC_ACT_OK, Some(&vip_dnat(&syn, b))),
                step(TI, &back, TC_ACT_OK, Some(&back.clone().from(VIP, 80).macs(TASK_MAC, VIP_MAC))),
                step(TO, &udp, TC_ACT_OK, Some(&vip_dnat(&udp, ub))),
                step(TI, &uback, TC_ACT_OK, Some(&uback.clone().from(VIP, 53).macs(TASK_MAC, VIP_MAC))),
            ],
            check: no_check,
        },
        Case {
            name: "task_in: a frame from a node's load-balancer MAC records lb_ret; task_out sends the reply there",
            setup: nothing,
            steps: vec![
                step(TI, &mesh_in, TC_ACT_OK, None),
                step(TO, &mesh_back, TC_ACT_OK, Some(&mesh_back.clone().macs(OTHER_LB_MAC, be(1).mac))),
            ],
            check: |env| {
                let key = Pkt::tcp((be(1).addr, 80), (CLIENT, 40000), ACK).key();
                let ret = env.ret(&key).expect("an lb_ret entry keyed by the reply's tuple");
                assert_eq!(ret.mac, OTHER_LB_MAC);
                assert!(ret.last_seen > 0);
            },
        },
        Case {
            name: "task_in: a frame from any other MAC records nothing",
            setup: nothing,
            steps: vec![
                step(TI, &mesh_in.clone().macs(be(1).mac, ROUTER_MAC), TC_ACT_OK, None),
                step(TO, &mesh_back, TC_ACT_OK, None),
            ],
            check: |env| assert_eq!(env.entries(), (0, 0, 0)),
        },
        Case {
            name: "mesh round trip on one node: node_ingress, task_in, task_out, node_reply",
            setup: nothing,
            steps: vec![
                step(NI, &client, TC_ACT_REDIRECT, Some(&at_task)),
                step(TI, &at_task, TC_ACT_OK, None),
                step(TO, &task_reply, TC_ACT_OK, Some(&to_lb)),
                step(NR, &to_lb, TC_ACT_REDIRECT, Some(&to_lb.clone().from(NODE, PORT_TCP))),
            ],
            check: |env| {
                let p = client_tcp(40000, SYN);
                let b = pick(SVC_TCP, &p.key());
                assert_eq!(env.ret(&reply_key(&p, b)).expect("lb_ret").mac, LB_MAC);
            },
        },
    ]
}

/// Datagrams in fragments: each later fragment goes where its first went,
/// with the same address rewrites (its IP checksum fixed, its payload
/// untouched); the first's L4 checksum is fixed for the whole datagram.
fn fragment_cases() -> Vec<Case> {
    use Prog::{NodeIngress as NI, NodeReply as NR, TaskIn as TI, TaskOut as TO};
    let udp = client_udp(40001).long();
    let ub = pick(SVC_UDP, &udp.key());
    let udp2 = udp.clone().with_id(0x2222);
    let syn = client_tcp(40000, SYN).long();
    let b = pick(SVC_TCP, &syn.key());
    let lo = loopback_tcp(40000, SYN).long();
    let lo_b = pick(SVC_TCP, &lo.key());
    let ureply = mesh_reply(&udp, ub);
    let vip = task_udp(50001).long();
    let vb = pick(SVC_VIP, &vip.key());
    let vback = vip_dnat(&vip, vb).reply().macs(TASK_MAC, vb.mac);
    let mesh_in = Pkt::udp((CLIENT, 40000), (be(1).addr, 80)).macs(be(1).mac, OTHER_LB_MAC);
    let mesh_back = mesh_in.reply().macs(GATEWAY_MAC, be(1).mac).long();
    // The whole mesh path on one node, both ways in fragments.
    let at_task = mesh_dnat(&udp, ub);
    let task_reply = at_task.reply().macs(GATEWAY_MAC, ub.mac);
    let to_lb = task_reply.clone().macs(LB_MAC, ub.mac);

    fn udp_rev(env: &mut Env) {
        let p = client_udp(40001);
        let b = pick(SVC_UDP, &p.key());
        let r = Rev {
            last_seen: now_ns(),
            addr: ip(p.daddr),
            port: p.dport.to_be(),
            ..Rev::default()
        };
        env.rev.insert(reply_key(&p, b), r, 0).expect("lb_rev");
    }

    /// node_ingress's record of client_udp(40001)'s first fragment, as if
    /// made `age_s` seconds ago.
    fn frag_record(env: &mut Env, age_s: u64) {
        let p = client_udp(40001);
        let key = FragKey {
            saddr: ip(p.saddr),
            daddr: ip(p.daddr),
            ifindex: 0, // only what tasks send is keyed by interface
            id: p.id.to_be(),
            proto: UDP,
            hook: 1, // LB_FRAG_HOOK_NODE_IN
        };
        let frag = Frag {
            seen: now_ns() - age_s * 1_000_000_000,
            sport: p.sport.to_be(),
            dport: p.dport.to_be(),
            pad: 0,
        };
        env.frags.insert(key, frag, 0).expect("lb_frags");
    }

    let cat = |parts: Vec<Vec<Step>>| parts.into_iter().flatten().collect::<Vec<_>>();
    vec![
        Case {
            name: "fragments: a first fragment recorded by another program does not serve node_ingress",
            setup: nothing,
            steps: vec![
                frag_step(TO, &udp, 0, TC_ACT_OK, None),
                frag_step(NI, &udp, 1, TC_ACT_OK, None),
                frag_step(NI, &udp, 0, TC_ACT_REDIRECT, Some(&mesh_dnat(&udp, ub))),
                frag_step(NI, &udp, 1, TC_ACT_REDIRECT, Some(&mesh_dnat(&udp, ub))),
            ],
            check: no_check,
        },
        Case {
            name: "fragments: a record is what steers a later fragment",
            setup: |env| frag_record(env, 0),
            steps: vec![frag_step(NI, &udp, 1, TC_ACT_REDIRECT, Some(&mesh_dnat(&udp, ub)))],
            check: no_check,
        },
        Case {
            name: "fragments: a record older than LB_FRAG_TIMEOUT_NS is another datagram's",
            setup: |env| frag_record(env, 6),
            steps: vec![frag_step(NI, &udp, 1, TC_ACT_OK, None)],
            check: no_check,
        },
        Case {
            name: "fragments: a UDP datagram to a published port, both fragments to Maglev's backend",
            setup: nothing,
            steps: frag_steps(NI, &udp, TC_ACT_REDIRECT, Some(&mesh_dnat(&udp, ub))).into(),
            check: |env| {
                let p = client_udp(40001).long();
                let b = pick(SVC_UDP, &p.key());
                let ct = env.ct(&p.key()).expect("the flow's lb_ct entry");
                assert_eq!(ct.backend_id, b.id);
                // Bytes: the two frames, one flow.
                let bytes = (p.fragment(0).len() + p.fragment(1).len()) as u64;
                assert_counters(env.backend_counters(b.id), 2, bytes, 1, 0);
            },
        },
        Case {
            name: "fragments: a later fragment before its first is the kernel's; after it, it follows",
            setup: nothing,
            steps: vec![
                frag_step(NI, &udp, 1, TC_ACT_OK, None),
                frag_step(NI, &udp, 0, TC_ACT_REDIRECT, Some(&mesh_dnat(&udp, ub))),
                frag_step(NI, &udp, 1, TC_ACT_REDIRECT, Some(&mesh_dnat(&udp, ub))),
            ],
            check: no_check,
        },
        Case {
            name: "fragments: another datagram's later fragment (another IP id) is not taken for it",
            setup: nothing,
            steps: vec![
                frag_step(NI, &udp, 0, TC_ACT_REDIRECT, Some(&mesh_dnat(&udp, ub))),
                frag_step(NI, &udp2, 1, TC_ACT_OK, None),
                frag_step(NI, &udp2, 0, TC_ACT_REDIRECT, Some(&mesh_dnat(&udp2, ub))),
                frag_step(NI, &udp2, 1, TC_ACT_REDIRECT, Some(&mesh_dnat(&udp2, ub))),
            ],
            check: |env| {
                let p = client_udp(40001);
                let b = pick(SVC_UDP, &p.key());
                assert_eq!(env.backend_counters(b.id).new_flows, 1, "one flow");
            },
        },
        Case {
            name: "fragments: a TCP SYN in fragments (DF clear): both DNATed, the flow stays opening",
            setup: nothing,
            steps: frag_steps(NI, &syn, TC_ACT_REDIRECT, Some(&mesh_dnat(&syn, b))).into(),
            check: |env| {
                let ct = env.ct(&client_tcp(40000, SYN).key()).expect("lb_ct");
                assert_eq!(usize::from(ct.state), CT_SYN, "a later fragment has no flags to go by");
            },
        },
        Case {
            name: "fragments: a client on 127.0.0.1 is SNATed in both fragments",
            setup: with_loopback,
            steps: frag_steps(NI, &lo, TC_ACT_REDIRECT, Some(&snat_dnat(&lo, lo_b, 40000))).into(),
            check: no_check,
        },
        Case {
            name: "fragments: a reply in fragments is reverse-NATed in both",
            setup: udp_rev,
            steps: frag_steps(NR, &ureply, TC_ACT_REDIRECT, Some(&ureply.clone().from(NODE, PORT_UDP)))
                .into(),
            check: no_check,
        },
        Case {
            name: "fragments: a later reply fragment of no known datagram is dropped (node_reply)",
            setup: udp_rev,
            steps: vec![frag_step(NR, &ureply, 1, TC_ACT_SHOT, None)],
            check: no_check,
        },
        Case {
            name: "fragments: a datagram to a VIP, both fragments to its backend; the reply's back from the VIP",
            setup: nothing,
            steps: cat(vec![
                frag_steps(TO, &vip, TC_ACT_OK, Some(&vip_dnat(&vip, vb))).into(),
                frag_steps(TI, &vback, TC_ACT_OK, Some(&vback.clone().from(VIP, 53).macs(TASK_MAC, VIP_MAC)))
                    .into(),
            ]),
            check: no_check,
        },
        Case {
            name: "fragments: a mesh reply in fragments goes to the entry node's load-balancer MAC, both",
            setup: nothing,
            steps: cat(vec![
                vec![step(TI, &mesh_in, TC_ACT_OK, None)],
                frag_steps(TO, &mesh_back, TC_ACT_OK, Some(&mesh_back.clone().macs(OTHER_LB_MAC, be(1).mac)))
                    .into(),
            ]),
            check: no_check,
        },
        Case {
            name: "fragments: mesh round trip on one node, both ways in fragments",
            setup: nothing,
            steps: cat(vec![
                frag_steps(NI, &udp, TC_ACT_REDIRECT, Some(&at_task)).into(),
                frag_steps(TI, &at_task, TC_ACT_OK, None).into(),
                frag_steps(TO, &task_reply, TC_ACT_OK, Some(&to_lb)).into(),
                frag_steps(NR, &to_lb, TC_ACT_REDIRECT, Some(&to_lb.clone().from(NODE, PORT_UDP))).into(),
            ]),
            check: no_check,
        },
    ]
}

#[test]
fn fragmented_datagrams() {
    run_table(fragment_cases());
}

#[test]
fn node_ingress_packets() {
    run_table(node_ingress_cases());
}

/// A router between the client and the nodes.
const ROUTER: [u8; 4] = [203, 0, 113, 1];
const DEST_UNREACH: u8 = 3;
const FRAG_NEEDED: u8 = 4;
const PORT_UNREACH: u8 = 3;
const TIME_EXCEEDED: u8 = 11;
/// "Fragmentation needed", next-hop MTU 1280 (RFC 1191).
const MTU_1280: [u8; 4] = [0, 0, 0x05, 0x00];

/// An ICMP message (`typ`, `code`, then `rest`) from `from` to `to`, carrying
/// `quote` (for an error, the offending datagram from its IPv4 header on, cut
/// where its sender cut it), as the node receives it from the router.
fn icmp(from: [u8; 4], to: [u8; 4], (typ, code): (u8, u8), rest: [u8; 4], quote: &[u8]) -> Vec<u8> {
    let mut msg = vec![typ, code, 0, 0];
    msg.extend(rest);
    msg.extend(quote);
    let c = checksum(&msg);
    msg[2..4].copy_from_slice(&c.to_be_bytes());
    let mut ip = vec![0x45, 0xc0];
    ip.extend(u16::try_from(20 + msg.len()).unwrap().to_be_bytes());
    ip.extend([0x0b, 0xad, 0, 0, 64, ICMP, 0, 0]);
    ip.extend(from);
    ip.extend(to);
    let c = checksum(&ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    [&ethernet(NODE_MAC, ROUTER_MAC, ETH_P_IP)[..], &ip, &msg].concat()
}

/// The first `n` bytes of `p`'s IPv4 datagram (all of it for usize::MAX).
fn quote(p: &Pkt, n: usize) -> Vec<u8> {
    let datagram = p.bytes()[14..].to_vec();
    datagram[..n.min(datagram.len())].to_vec()
}

/// A step: the router's error about `seen` (a reply as the client got it),
/// quoted to `n` bytes, into node_ingress; out comes the same error for the
/// backend `b` (addressed to it, through the ingress network's bridge),
/// quoting `sent` (the reply as the backend sent it) to as many bytes.
fn icmp_step(kind: (u8, u8), rest: [u8; 4], seen: &Pkt, sent: &Pkt, b: &Be, n: usize) -> Step {
    let mut out = icmp(ROUTER, b.addr, kind, rest, &quote(sent, n));
    out[..12].copy_from_slice(&[b.mac, LB_MAC].concat());
    Step {
        prog: Prog::NodeIngress,
        input: icmp(ROUTER, seen.saddr, kind, rest, &quote(seen, n)),
        verdict: TC_ACT_REDIRECT,
        output: Out::Packet(out),
    }
}

/// A step: this ICMP message is the kernel's, untouched.
fn icmp_passes(input: Vec<u8>) -> Step {
    Step {
        prog: Prog::NodeIngress,
        input,
        verdict: TC_ACT_OK,
        output: Out::Unchanged,
    }
}

/// The ICMP "port unreachable" backend `b`'s host sends about `got` (a
/// request as the backend got it), to the request's source, on its way out
/// of the task's port toward `dmac`.
fn backend_error(got: &Pkt, b: &Be, dmac: [u8; 6]) -> Vec<u8> {
    let mut f = icmp(
        b.addr,
        got.saddr,
        (DEST_UNREACH, PORT_UNREACH),
        [0; 4],
        &quote(got, usize::MAX),
    );
    f[..12].copy_from_slice(&[dmac, b.mac].concat());
    f
}

/// A client's `request` through node_ingress (DNATed as `got`, to backend
/// `b`), into the task's port (lb_ret records the entry node), then the
/// backend's ICMP error about it: task_out sends it to the entry node's
/// load-balancer MAC, and node_reply there makes it come from the address
/// the client reached, quoting the request as the client sent it.
fn backend_error_steps(request: &Pkt, got: &Pkt, b: &Be) -> Vec<Step> {
    let mut back = icmp(
        request.daddr,
        request.saddr,
        (DEST_UNREACH, PORT_UNREACH),
        [0; 4],
        &quote(request, usize::MAX),
    );
    back[..12].copy_from_slice(&[LB_MAC, b.mac].concat());
    vec![
        step(Prog::NodeIngress, request, TC_ACT_REDIRECT, Some(got)),
        step(Prog::TaskIn, got, TC_ACT_OK, None),
        Step {
            prog: Prog::TaskOut,
            input: backend_error(got, b, GATEWAY_MAC),
            verdict: TC_ACT_OK,
            output: Out::Packet(backend_error(got, b, LB_MAC)),
        },
        Step {
            prog: Prog::NodeReply,
            input: backend_error(got, b, LB_MAC),
            verdict: TC_ACT_REDIRECT,
            output: Out::Packet(back),
        },
    ]
}

fn icmp_error_cases() -> Vec<Case> {
    use Prog::NodeIngress as NI;
    let syn = client_tcp(40000, SYN);
    let b = pick(SVC_TCP, &syn.key());
    // The reply as the backend sent it, and as the client got it.
    let sent = mesh_dnat(&syn, b).reply();
    let seen = sent.clone().from(NODE, PORT_TCP);
    let udp = client_udp(40001);
    let ub = pick(SVC_UDP, &udp.key());
    let usent = mesh_dnat(&udp, ub).reply();
    let useen = usent.clone().from(NODE, PORT_UDP);
    let bare = client_udp(40001).no_csum();
    let bare_sent = mesh_dnat(&bare, ub).reply();
    let bare_seen = bare_sent.clone().from(NODE, PORT_UDP);
    let snat_sent = snat_dnat(&syn, b, 40000).reply();
    let frag = (DEST_UNREACH, FRAG_NEEDED);
    let all = usize::MAX;
    // The flow set up: the client's first packet through node_ingress.
    let flow = || step(NI, &syn, TC_ACT_REDIRECT, Some(&mesh_dnat(&syn, b)));
    let stranger = Pkt::tcp((NODE, PORT_TCP), (CLIENT, 40999), ACK);
    let mut fragmented = icmp(ROUTER, NODE, frag, MTU_1280, &quote(&seen, all));
    fragmented[20] = 0x20; // MF: a fragment of an ICMP error is the kernel's

    vec![
        Case {
            name: "icmp: fragmentation needed about a mesh reply reaches its backend, the quote as the backend sent it",
            setup: nothing,
            steps: vec![flow(), icmp_step(frag, MTU_1280, &seen, &sent, b, all)],
            check: |env| {
                let syn = client_tcp(40000, SYN);
                let c = env.backend_counters(pick(SVC_TCP, &syn.key()).id);
                assert_eq!((c.packets, c.new_flows), (2, 1), "the error counts as the backend's");
            },
        },
        Case {
            name: "icmp: a quote of 8 L4 bytes (RFC 792's least) gets its addresses and ports rewritten",
            setup: nothing,
            steps: vec![
                flow(),
                icmp_step(frag, MTU_1280, &seen, &sent, b, 28),
            ],
            check: no_check,
        },
        Case {
            name: "icmp: a quote that ends after TCP's checksum has the checksum rewritten too",
            setup: nothing,
            steps: vec![
                flow(),
                icmp_step(frag, MTU_1280, &seen, &sent, b, 38),
            ],
            check: no_check,
        },
        Case {
            name: "icmp: time exceeded is forwarded the same way",
            setup: nothing,
            steps: vec![
                flow(),
                icmp_step((TIME_EXCEEDED, 0), [0; 4], &seen, &sent, b, all),
            ],
            check: no_check,
        },
        Case {
            name: "icmp: port unreachable from the client about a UDP reply reaches the backend, UDP checksum right",
            setup: nothing,
            steps: vec![
                step(NI, &udp, TC_ACT_REDIRECT, Some(&mesh_dnat(&udp, ub))),
                icmp_step((DEST_UNREACH, PORT_UNREACH), [0; 4], &useen, &usent, ub, all),
            ],
            check: no_check,
        },
        Case {
            name: "icmp: a quoted UDP reply without a checksum keeps none",
            setup: nothing,
            steps: vec![
                step(NI, &bare, TC_ACT_REDIRECT, Some(&mesh_dnat(&bare, ub))),
                icmp_step((DEST_UNREACH, PORT_UNREACH), [0; 4], &bare_seen, &bare_sent, ub, all),
            ],
            check: no_check,
        },
        Case {
            name: "icmp: for a SNATed flow the quote goes back to the node's address and SNAT port",
            setup: |env| env.set_config(|c| c.flags = CFG_F_SNAT),
            steps: vec![
                step(NI, &syn, TC_ACT_REDIRECT, Some(&snat_dnat(&syn, b, 40000))),
                icmp_step(frag, MTU_1280, &seen, &snat_sent, b, all),
            ],
            check: no_check,
        },
        Case {
            name: "icmp: messages that are not about a tracked mesh reply are the kernel's",
            setup: nothing,
            steps: vec![
                flow(),
                // No such flow.
                icmp_passes(icmp(ROUTER, NODE, frag, MTU_1280, &quote(&stranger, all))),
                // Not an error: an echo request carrying the same bytes.
                icmp_passes(icmp(ROUTER, NODE, (8, 0), [0, 1, 0, 1], &quote(&seen, all))),
                // The error went to another address than the quote's source.
                icmp_passes(icmp(ROUTER, NODE2, frag, MTU_1280, &quote(&seen, all))),
                // To an address that is not the node's.
                icmp_passes(icmp(ROUTER, ELSEWHERE, frag, MTU_1280, &quote(&seen.clone().from(ELSEWHERE, PORT_TCP), all))),
                // Cut inside the quoted ports.
                icmp_passes(icmp(ROUTER, NODE, frag, MTU_1280, &quote(&seen, 22))),
                icmp_passes(fragmented),
                // A quote of the request direction (the client's own packet).
                icmp_passes(icmp(ROUTER, NODE, frag, MTU_1280, &quote(&syn, all))),
            ],
            check: no_check,
        },
        Case {
            name: "icmp: port unreachable from a backend goes back through the entry node, from the address the client reached",
            setup: nothing,
            steps: backend_error_steps(&udp, &mesh_dnat(&udp, ub), ub),
            check: no_check,
        },
        Case {
            name: "icmp: for a SNATed flow the backend's error goes back to the client's own address and port",
            setup: |env| env.set_config(|c| c.flags = CFG_F_SNAT),
            steps: backend_error_steps(&udp, &snat_dnat(&udp, ub, 40001), ub),
            check: no_check,
        },
        Case {
            name: "icmp: a backend's error about no known flow goes nowhere",
            setup: nothing,
            steps: vec![
                // No lb_ret entry at the task's port: left as it is.
                Step {
                    prog: Prog::TaskOut,
                    input: backend_error(&mesh_dnat(&udp, ub), ub, GATEWAY_MAC),
                    verdict: TC_ACT_OK,
                    output: Out::Unchanged,
                },
                // No lb_rev entry at the entry node: dropped, as replies are.
                Step {
                    prog: Prog::NodeReply,
                    input: backend_error(&mesh_dnat(&udp, ub), ub, LB_MAC),
                    verdict: TC_ACT_SHOT,
                    output: Out::Unchanged,
                },
            ],
            check: no_check,
        },
        Case {
            name: "icmp: an error about an expired flow is the kernel's",
            setup: |env| {
                let syn = client_tcp(40000, SYN);
                let b = pick(SVC_TCP, &syn.key());
                env.set_config(|c| c.timeout_ns = [1_000_000_000; CT_STATES]);
                env.put_ct(syn.key(), b.id, SVC_TCP, CT_ESTABLISHED, now_ns() - 2_000_000_000);
            },
            steps: vec![icmp_passes(icmp(ROUTER, NODE, frag, MTU_1280, &quote(&seen, all)))],
            check: no_check,
        },
    ]
}

#[test]
fn icmp_errors_about_mesh_replies() {
    run_table(icmp_error_cases());
}

#[test]
fn node_reply_packets() {
    run_table(node_reply_cases());
}

#[test]
fn task_out_packets() {
    run_table(task_out_cases());
}

#[test]
fn task_in_packets() {
    run_table(task_in_cases());
}

#[test]
fn every_program_loads() {
    // With the maps at their real sizes, as shoald creates them.
    let env = Env::load(false);
    assert_eq!(env.programs.len(), PROGRAMS.len());
    for (name, _) in PROGRAMS {
        assert!(
            ALL_PROGS.iter().any(|p| p.name() == name),
            "{name} is not tested"
        );
    }
    // And they work on maps of that size.
    let mut env = env;
    world(&mut env);
    let syn = client_tcp(40000, SYN);
    let (verdict, out) = env.run(Prog::NodeIngress, &syn.bytes()).expect("test run");
    assert_eq!(verdict, TC_ACT_REDIRECT);
    assert_eq!(out, mesh_dnat(&syn, pick(SVC_TCP, &syn.key())).bytes());
}

// ---------------------------------------------------------------------------
// Malformed input: every program, with the world in place (so each packet
// would be rewritten if it were taken for a flow), passes it untouched or
// drops it, and records nothing.

struct Bad {
    name: &'static str,
    input: Vec<u8>,
    /// node_ingress, node_reply, task_out, task_in, ov_up_node, ov_up_net.
    verdicts: [u32; 6],
}

fn malformed() -> Vec<Bad> {
    // The uplink's ends only ever get what the fast path sent there: the
    // network's end drops what is not for one of its tasks, the node's end
    // anything but IPv4 (and sends IPv4 on to the underlay).
    const PASS: [u32; 6] = [
        TC_ACT_OK,
        TC_ACT_OK,
        TC_ACT_OK,
        TC_ACT_OK,
        TC_ACT_SHOT,
        TC_ACT_SHOT,
    ];
    // node_reply lets nothing IPv4 it cannot parse into the host.
    const IPV4: [u32; 6] = [
        TC_ACT_OK,
        TC_ACT_SHOT,
        TC_ACT_OK,
        TC_ACT_OK,
        TC_ACT_REDIRECT,
        TC_ACT_SHOT,
    ];
    // Without a whole IP header the node's end of the uplink has no destination.
    const IPV4_SHORT: [u32; 6] = [
        TC_ACT_OK,
        TC_ACT_SHOT,
        TC_ACT_OK,
        TC_ACT_OK,
        TC_ACT_SHOT,
        TC_ACT_SHOT,
    ];
    let tcp = client_tcp(40000, SYN);
    let udp = client_udp(40001);
    let vip = task_tcp(50000, SYN);
    let t = tcp.bytes();
    let frag_mf = tcp.clone();
    let mut frag_off = udp.clone();
    frag_off.frag_off = 185;
    let later_empty = udp.frame(&[], 185);
    let mut ipv6 = ethernet(NODE_MAC, ROUTER_MAC, ETH_P_IPV6);
    ipv6.extend([0x60, 0, 0, 0, 0, 20, TCP, 64]);
    ipv6.extend([0x20, 0x01, 0x0d, 0xb8].iter().chain(&[0; 12]));
    ipv6.extend([0x20, 0x01, 0x0d, 0xb8].iter().chain(&[0; 11]).chain(&[1]));
    ipv6.extend(&t[34..54]);
    let mut vlan = ethernet(NODE_MAC, ROUTER_MAC, ETH_P_8021Q);
    vlan.extend([0x00, 0x64]);
    vlan.extend(&t[12..]);

    vec![
        Bad {
            name: "Ethernet header only (IPv4 ethertype)",
            input: t[..14].to_vec(),
            verdicts: IPV4_SHORT,
        },
        Bad {
            name: "Ethernet and 1 byte of IP",
            input: t[..15].to_vec(),
            verdicts: IPV4_SHORT,
        },
        Bad {
            name: "short IP header (12 of 20 bytes)",
            input: t[..26].to_vec(),
            verdicts: IPV4_SHORT,
        },
        Bad {
            name: "IHL 4",
            input: edit_ip(t.clone(), |h| h[0] = 0x44),
            verdicts: IPV4,
        },
        Bad {
            name: "IHL 0",
            input: edit_ip(t.clone(), |h| h[0] = 0x40),
            verdicts: IPV4,
        },
        Bad {
            name: "IHL 15 but only 20 bytes of header and a TCP header",
            input: edit_ip(t.clone(), |h| h[0] = 0x4f),
            verdicts: IPV4,
        },
        Bad {
            name: "IHL 15 in a frame that ends at 60 bytes of header",
            input: edit_ip([&t[..], &[0; 26]].concat()[..74].to_vec(), |h| h[0] = 0x4f),
            verdicts: IPV4,
        },
        Bad {
            name: "IP version 6 in an IPv4 ethertype",
            input: edit_ip(t.clone(), |h| h[0] = 0x65),
            verdicts: IPV4,
        },
        Bad {
            name: "total length shorter than the IP header",
            input: edit_ip(t.clone(), |h| h[2..4].copy_from_slice(&12u16.to_be_bytes())),
            verdicts: IPV4,
        },
        Bad {
            name: "IP total length ends inside the TCP header (frame padded)",
            input: edit_ip(t.clone(), |h| h[2..4].copy_from_slice(&30u16.to_be_bytes())),
            verdicts: IPV4,
        },
        Bad {
            name: "IP total length ends inside the UDP header (frame padded)",
            input: edit_ip(udp.bytes(), |h| {
                h[2..4].copy_from_slice(&26u16.to_be_bytes())
            }),
            verdicts: IPV4,
        },
        Bad {
            name: "first fragment cut inside its TCP header (8 bytes of TCP)",
            input: frag_mf.frame(&frag_mf.l4()[..8], 0x2000),
            verdicts: IPV4,
        },
        Bad {
            name: "later fragment (offset 185) of no datagram seen, UDP to a published port",
            input: frag_off.bytes(),
            verdicts: IPV4,
        },
        Bad {
            name: "later fragment with no payload after its header",
            input: later_empty,
            verdicts: IPV4,
        },
        Bad {
            name: "TCP cut before its header ends (10 of 20 bytes)",
            input: t[..44].to_vec(),
            verdicts: IPV4,
        },
        Bad {
            name: "TCP with only its ports",
            input: t[..38].to_vec(),
            verdicts: IPV4,
        },
        Bad {
            name: "UDP cut before its header ends (6 of 8 bytes)",
            input: udp.bytes()[..40].to_vec(),
            verdicts: IPV4,
        },
        Bad {
            name: "TCP to a VIP cut before its header ends",
            input: vip.bytes()[..50].to_vec(),
            verdicts: IPV4,
        },
        Bad {
            name: "IP protocol ICMP to the node",
            input: edit_ip(t.clone(), |h| h[9] = ICMP),
            verdicts: IPV4,
        },
        Bad {
            name: "IPv6 ethertype",
            input: ipv6,
            verdicts: PASS,
        },
        Bad {
            name: "VLAN-tagged IPv4",
            input: vlan,
            verdicts: PASS,
        },
    ]
}

#[test]
fn malformed_packets_pass_or_drop() {
    let mut failures = Vec::new();
    for bad in malformed() {
        let result = panic::catch_unwind(AssertUnwindSafe(|| {
            let mut env = Env::new();
            overlay_world(&mut env);
            for (prog, verdict) in ALL_PROGS.into_iter().zip(bad.verdicts) {
                let s = Step {
                    prog,
                    input: bad.input.clone(),
                    verdict,
                    output: Out::Unchanged,
                };
                match env.run(prog, &s.input) {
                    // The node's end of the uplink sends IPv4 on by its
                    // destination (to lo, MACs cleared, for the node's own).
                    Ok((got, out)) if prog == Prog::OvUpNode && got == TC_ACT_REDIRECT => {
                        assert_eq!(got, verdict, "{prog:?}");
                        assert_eq!(
                            &out[12..],
                            &s.input[12..],
                            "{prog:?}: changed beyond the MACs"
                        );
                    }
                    Ok((got, out)) => assert_frame(0, &s, got, &out),
                    // Test-run refuses an IPv4 frame too short for an IP header
                    // (6.x kernels) before any program sees it; a kernel that
                    // hands it over gets its verdict checked above.
                    Err(e) if e.raw_os_error() == Some(libc::EINVAL) && s.input.len() < 14 + 20 => {
                    }
                    Err(e) => panic!("test run of {prog:?}: {e}"),
                }
            }
            assert_eq!(env.entries(), (0, 0, 0), "malformed input recorded flows");
            for svc in [SVC_TCP, SVC_UDP, SVC_VIP] {
                assert_counters(env.svc_counters(svc), 0, 0, 0, 0);
            }
            for stat in 0..OV_STATS {
                assert_eq!(env.ov_stat(stat), 0, "the fast path took malformed input");
            }
        }));
        if let Err(e) = result {
            let msg = e.downcast_ref::<String>().cloned().unwrap_or_default();
            failures.push(format!("[{}] {msg}", bad.name));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn frames_shorter_than_ethernet_never_reach_a_program() {
    // The kernel refuses them before any program runs (and tc only sees frames
    // of an Ethernet device): no program can be handed one.
    let env = Env::new();
    for prog in ALL_PROGS {
        let err = env
            .run(prog, &client_tcp(40000, SYN).bytes()[..10])
            .expect_err("a 10-byte frame");
        assert_eq!(err.raw_os_error(), Some(libc::EINVAL), "{prog:?}: {err}");
    }
}

#[test]
fn the_checksum_helpers_are_right() {
    // Guard the guards: a known header checksum, and valid and corrupted
    // frames told apart.
    let f = client_tcp(40000, SYN).bytes();
    verify_checksums(&f).expect("a built frame is valid");
    let mut bad = f.clone();
    bad[37] ^= 1; // destination port
    assert!(
        verify_checksums(&bad).is_err(),
        "a changed port breaks the TCP checksum"
    );
    let mut bad = f.clone();
    bad[33] ^= 1; // destination address: both checksums
    assert!(verify_checksums(&bad).is_err());
    let u = client_udp(40001).no_csum().bytes();
    verify_checksums(&u).expect("UDP without checksum");
    assert_eq!(&u[40..42], &[0, 0]);
    // 0x4500 0x0073 0x0000 0x4000 0x4011 [csum] 0xc0a8 0x0001 0xc0a8 0x00c7: 0xb861.
    let h = [
        0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8, 0x00,
        0x01, 0xc0, 0xa8, 0x00, 0xc7,
    ];
    assert_eq!(checksum(&h), 0xb861);
}

// ---------------------------------------------------------------------------
// The overlay's fast path (overlay.h): VXLAN encapsulation in task_out and
// node_ingress, decapsulation in node_ingress, and the uplink's two ends.

/// The task network's VNI, another network's, and the ingress network's.
const VNI: u32 = 4097;
const OTHER_VNI: u32 = 4098;
const INGRESS_VNI: u32 = 4096;
const VXLAN_PORT: u16 = 4789;
/// Another node (its VTEP is the address in OTHER_LB_MAC).
const REMOTE_VTEP: [u8; 4] = [198, 51, 100, 2];
/// A task of VNI on that node, and one of OTHER_VNI there.
const PEER: [u8; 4] = [10, 0, 1, 7];
const PEER_MAC: [u8; 6] = [0x02, 0x42, 10, 0, 1, 7];
const STRANGER: [u8; 4] = [10, 0, 2, 7];
/// Interface indexes the world's uplinks and task port have. The task port is
/// the interface test-run's packets come in by (lo, 1): the fast path sends a
/// task's frame only from that task's own port.
const UP_NET: u32 = 21;
const UP_NODE: u32 = 22;
const TASK_PORT: u32 = 1;
/// Another task port of this node (not the one test-run's packets come by).
const OTHER_PORT: u32 = 23;

impl Env {
    fn ov_stat(&self, which: u32) -> u64 {
        self.ov_stats.get(&which, 0).expect("ov_stats").iter().sum()
    }

    fn endpoint(&mut self, addr: [u8; 4], vtep: Option<[u8; 4]>, vni: u32, mac: [u8; 6]) {
        let port = if vtep.is_none() { TASK_PORT } else { 0 };
        self.endpoint_on(addr, vtep, vni, mac, port);
    }

    /// The backend Maglev gives `syn` among SVC_TCP's, made an endpoint of the
    /// ingress network: on this node (`None`) or behind `vtep`.
    fn mesh_backend(&mut self, syn: &Pkt, vtep: Option<[u8; 4]>) -> &'static Be {
        let b = pick(SVC_TCP, &syn.key());
        self.endpoint(b.addr, vtep, INGRESS_VNI, b.mac);
        b
    }

    /// An endpoint whose port (when local) is `port`.
    fn endpoint_on(
        &mut self,
        addr: [u8; 4],
        vtep: Option<[u8; 4]>,
        vni: u32,
        mac: [u8; 6],
        port: u32,
    ) {
        let ep = OvEp {
            vtep: vtep.map_or(0, ip),
            ifindex: port,
            vni,
            mac,
            pad: [0; 2],
        };
        self.ov_eps.insert(ip(addr), ep, 0).expect("ov_eps");
    }
}

/// The world, the fast path on: TASK is a local endpoint of VNI, PEER a
/// remote one, STRANGER a remote one of another network; every network has an
/// uplink here.
fn overlay_world(env: &mut Env) {
    world(env);
    env.set_config(|c| {
        c.flags |= CFG_F_OVERLAY;
        c.vtep = ip(NODE);
        c.vxlan_port = VXLAN_PORT;
    });
    env.endpoint(TASK, None, VNI, TASK_MAC);
    env.endpoint(PEER, Some(REMOTE_VTEP), VNI, PEER_MAC);
    env.endpoint(
        STRANGER,
        Some(REMOTE_VTEP),
        OTHER_VNI,
        [0x02, 0x42, 10, 0, 2, 7],
    );
    env.ov_vteps
        .insert(ip(REMOTE_VTEP), 1, 0)
        .expect("ov_vteps");
    for vni in [VNI, OTHER_VNI, INGRESS_VNI] {
        let net = OvNet {
            up_net: UP_NET,
            up_node: UP_NODE,
            flags: if vni == INGRESS_VNI {
                OV_NET_F_INGRESS
            } else {
                0
            },
            pad: 0,
        };
        env.ov_nets.insert(vni, net, 0).expect("ov_nets");
    }
}

/// `inner` in VXLAN from `src` to `dst`:`port`, as Shoal's VXLAN devices (or
/// another node's fast path) send it: without an outer UDP checksum.
fn vxlan(src: [u8; 4], dst: [u8; 4], port: u16, vni: u32, inner: &[u8]) -> Vec<u8> {
    let udp_len = 8 + 8 + inner.len();
    let mut ip = vec![0x45, 0];
    ip.extend(u16::try_from(20 + udp_len).unwrap().to_be_bytes());
    ip.extend([0, 0, 0, 0, 64, UDP, 0, 0]);
    ip.extend(src);
    ip.extend(dst);
    let c = checksum(&ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    let mut udp = 54321u16.to_be_bytes().to_vec();
    udp.extend(port.to_be_bytes());
    udp.extend(u16::try_from(udp_len).unwrap().to_be_bytes());
    udp.extend([0, 0]);
    udp.extend(0x0800_0000u32.to_be_bytes());
    udp.extend((vni << 8).to_be_bytes());
    [
        &ethernet(NODE_MAC, ROUTER_MAC, ETH_P_IP)[..],
        &ip,
        &udp,
        inner,
    ]
    .concat()
}

/// `out` is `inner` encapsulated by this node for `vtep` and `vni`: outer
/// MACs left for the kernel to fill, IPv4 from this node's VTEP with a valid
/// checksum, UDP from a port of the flow's hash to the swarm's port without a
/// checksum, VXLAN with the I flag.
fn assert_encap(out: &[u8], vtep: [u8; 4], vni: u32, inner: &[u8]) {
    assert_eq!(out.len(), 50 + inner.len(), "50 bytes of headers added");
    assert_eq!(&out[..12], &[0; 12], "outer MACs are left to the kernel");
    assert_eq!(&out[12..14], &ETH_P_IP.to_be_bytes());
    let ip = &out[14..34];
    assert_eq!(ip[0], 0x45, "IPv4, no options");
    assert_eq!(
        usize::from(u16::from_be_bytes([ip[2], ip[3]])),
        out.len() - 14,
        "outer total length"
    );
    assert_eq!(
        &ip[6..8],
        &[0, 0],
        "not a fragment, DF clear (as the kernel device)"
    );
    assert_eq!((ip[8], ip[9]), (64, UDP), "TTL and protocol");
    assert_eq!(checksum(ip), 0, "outer IPv4 checksum");
    assert_eq!((&ip[12..16], &ip[16..20]), (&NODE[..], &vtep[..]), "VTEPs");
    let udp = &out[34..42];
    let sport = u16::from_be_bytes([udp[0], udp[1]]);
    assert!((32768..61000).contains(&sport), "source port {sport}");
    assert_eq!(u16::from_be_bytes([udp[2], udp[3]]), VXLAN_PORT);
    assert_eq!(
        usize::from(u16::from_be_bytes([udp[4], udp[5]])),
        out.len() - 34
    );
    assert_eq!(&udp[6..8], &[0, 0], "no UDP checksum");
    assert_eq!(&out[42..46], &0x0800_0000u32.to_be_bytes(), "VXLAN flags");
    assert_eq!(&out[46..50], &(vni << 8).to_be_bytes(), "VNI");
    assert_eq!(describe(&out[50..]), describe(inner), "the inner frame");
    assert_eq!(&out[50..], inner, "the inner frame, byte for byte");
}

fn run_ok(env: &Env, prog: Prog, input: &[u8]) -> (u32, Vec<u8>) {
    env.run(prog, input)
        .unwrap_or_else(|e| panic!("test run of {prog:?}: {e}"))
}

/// A named case of the overlay tables: what it does to a fresh overlay world.
type OverlayCase = (&'static str, fn(&mut Env));

/// Runs each case in a fresh overlay world; collects every failure.
fn run_overlay_cases(cases: Vec<OverlayCase>) {
    let mut failures = Vec::new();
    let n = cases.len();
    for (name, case) in cases {
        let result = panic::catch_unwind(AssertUnwindSafe(|| {
            let mut env = Env::new();
            overlay_world(&mut env);
            case(&mut env);
        }));
        if let Err(e) = result {
            let msg = e
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| (*s).to_string()))
                .unwrap_or_default();
            failures.push(format!("[{name}] {msg}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {n} cases failed:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

/// A task's TCP packet to PEER, as the task sends it (PEER's MAC from ARP).
fn to_peer() -> Pkt {
    Pkt::tcp((TASK, 50000), (PEER, 80), SYN).macs(PEER_MAC, TASK_MAC)
}

fn unchanged(env: &Env, prog: Prog, input: &[u8], verdict: u32) {
    let (got, out) = run_ok(env, prog, input);
    assert_eq!(got, verdict, "verdict");
    assert_eq!(
        describe(&out),
        describe(input),
        "the frame must be unchanged"
    );
    assert_eq!(out, input, "the frame must be unchanged");
}

#[test]
fn overlay_encapsulation() {
    run_overlay_cases(vec![
        (
            "task_out: a task forging a local task of another network stays in its own",
            |env| {
                // 10.0.2.9: a task of OTHER_VNI on this node, behind another port.
                let forged = [10, 0, 2, 9];
                env.endpoint_on(forged, None, OTHER_VNI, [0x02, 0x42, 10, 0, 2, 9], OTHER_PORT);
                let p = Pkt::tcp((forged, 50000), (STRANGER, 80), SYN)
                    .macs([0x02, 0x42, 10, 0, 2, 7], TASK_MAC);
                unchanged(env, Prog::TaskOut, &p.bytes(), TC_ACT_OK);
                assert_eq!(env.ov_stat(OV_TX), 0);
                // From that task's own port, the same frame is its network's.
                env.endpoint_on(forged, None, OTHER_VNI, [0x02, 0x42, 10, 0, 2, 9], TASK_PORT);
                let (verdict, out) = run_ok(env, Prog::TaskOut, &p.bytes());
                assert_eq!(verdict, TC_ACT_REDIRECT);
                assert_encap(&out, REMOTE_VTEP, OTHER_VNI, &p.bytes());
            },
        ),
        (
            "task_out: a frame from a load-balancer MAC is never a task's: the kernel's",
            |env| {
                for mac in [OTHER_LB_MAC, DSR_MAC, OTHER_DSR_MAC] {
                    let p = to_peer().macs(PEER_MAC, mac);
                    unchanged(env, Prog::TaskOut, &p.bytes(), TC_ACT_OK);
                }
                assert_eq!(env.ov_stat(OV_TX), 0);
            },
        ),
        (
            "task_out: TCP to a task on another node is encapsulated for its VTEP",
            |env| {
                let p = to_peer();
                let (verdict, out) = run_ok(env, Prog::TaskOut, &p.bytes());
                assert_eq!(verdict, TC_ACT_REDIRECT, "into the uplink");
                assert_encap(&out, REMOTE_VTEP, VNI, &p.bytes());
                assert_eq!(env.ov_stat(OV_TX), 1);
            },
        ),
        (
            "task_out: UDP without a checksum too, the inner MAC from the endpoint",
            |env| {
                let p = Pkt::udp((TASK, 5000), (PEER, 53))
                    .no_csum()
                    .macs(GATEWAY_MAC, TASK_MAC);
                let (verdict, out) = run_ok(env, Prog::TaskOut, &p.bytes());
                assert_eq!(verdict, TC_ACT_REDIRECT);
                assert_encap(
                    &out,
                    REMOTE_VTEP,
                    VNI,
                    &p.clone().macs(PEER_MAC, TASK_MAC).bytes(),
                );
            },
        ),
        (
            "task_out: a flow's packets keep one outer source port",
            |env| {
                let p = to_peer();
                let (_, a) = run_ok(env, Prog::TaskOut, &p.bytes());
                let (_, b) = run_ok(env, Prog::TaskOut, &p.bytes());
                assert_eq!(&a[34..36], &b[34..36]);
            },
        ),
        (
            "task_out: a VIP's backend on another node: DNAT, then encapsulation",
            |env| {
                let syn = task_tcp(50000, SYN);
                let b = pick(SVC_VIP, &syn.key());
                env.endpoint(b.addr, Some(REMOTE_VTEP), VNI, b.mac);
                let (verdict, out) = run_ok(env, Prog::TaskOut, &syn.bytes());
                assert_eq!(verdict, TC_ACT_REDIRECT);
                assert_encap(&out, REMOTE_VTEP, VNI, &vip_dnat(&syn, b).bytes());
                assert!(
                    env.ct(&syn.key()).is_some(),
                    "the flow is tracked as before"
                );
            },
        ),
        (
            "task_out: a mesh reply goes back to the VTEP in the entry node's MAC",
            |env| {
                let b = be(1);
                env.endpoint(b.addr, None, INGRESS_VNI, b.mac);
                let reply =
                    Pkt::tcp((b.addr, 80), (CLIENT, 40000), SYN | ACK).macs(GATEWAY_MAC, b.mac);
                let ret = Ret {
                    last_seen: now_ns(),
                    mac: OTHER_LB_MAC,
                    dsr_port: 0,
                };
                env.ret.insert(reply.key(), ret, 0).expect("lb_ret");
                let (verdict, out) = run_ok(env, Prog::TaskOut, &reply.bytes());
                assert_eq!(verdict, TC_ACT_REDIRECT);
                assert_encap(
                    &out,
                    REMOTE_VTEP,
                    INGRESS_VNI,
                    &reply.clone().macs(OTHER_LB_MAC, b.mac).bytes(),
                );
            },
        ),
        (
            "task_out: a reply to this node's own MAC of a flow it does not know is dropped past the uplink",
            |env| {
                let b = be(1);
                env.endpoint(b.addr, None, INGRESS_VNI, b.mac);
                let reply = Pkt::tcp((b.addr, 80), (CLIENT, 40000), ACK).macs(GATEWAY_MAC, b.mac);
                let ret = Ret {
                    last_seen: now_ns(),
                    mac: LB_MAC,
                    dsr_port: 0,
                };
                env.ret.insert(reply.key(), ret, 0).expect("lb_ret");
                let (verdict, out) = run_ok(env, Prog::TaskOut, &reply.bytes());
                assert_eq!(verdict, TC_ACT_REDIRECT, "into the uplink");
                assert_eq!(out, reply.clone().macs(LB_MAC, b.mac).bytes());
                unchanged(env, Prog::OvUpNode, &out, TC_ACT_SHOT);
            },
        ),
        (
            "task_out: a load-balancer MAC of no node of the swarm stays on the bridge",
            |env| {
                let b = be(1);
                env.endpoint(b.addr, None, INGRESS_VNI, b.mac);
                let reply = Pkt::tcp((b.addr, 80), (CLIENT, 40000), ACK).macs(GATEWAY_MAC, b.mac);
                let stranger_mac = [0x02, 0x53, 203, 0, 113, 9];
                let ret = Ret {
                    last_seen: now_ns(),
                    mac: stranger_mac,
                    dsr_port: 0,
                };
                env.ret.insert(reply.key(), ret, 0).expect("lb_ret");
                unchanged_but_macs(env, &reply, stranger_mac);
                assert_eq!(env.ov_stat(OV_TX), 0);
            },
        ),
        (
            "task_out: only the ingress network sends to load-balancer MACs",
            |env| {
                // A task of VNI addressing a frame to another node's load-balancer
                // MAC: the bridge has no such port on this network (it drops it).
                let p = to_peer().macs(OTHER_LB_MAC, TASK_MAC);
                unchanged(env, Prog::TaskOut, &p.bytes(), TC_ACT_OK);
            },
        ),
        (
            "task_out: another network's task is not reached through the fast path",
            |env| {
                let p = to_peer().to(STRANGER, 80);
                unchanged(env, Prog::TaskOut, &p.bytes(), TC_ACT_OK);
            },
        ),
        (
            "task_out: an address no endpoint has goes to the bridge",
            |env| {
                let p = to_peer().to([10, 0, 1, 99], 80);
                unchanged(env, Prog::TaskOut, &p.bytes(), TC_ACT_OK);
            },
        ),
        (
            "task_out: a sender that is no local endpoint goes to the bridge",
            |env| {
                let p = to_peer().from([10, 0, 1, 8], 50000);
                unchanged(env, Prog::TaskOut, &p.bytes(), TC_ACT_OK);
            },
        ),
        ("task_out: a local destination goes to the bridge", |env| {
            env.endpoint([10, 0, 1, 8], None, VNI, [0x02, 0x42, 10, 0, 1, 8]);
            let p = to_peer().to([10, 0, 1, 8], 80);
            unchanged(env, Prog::TaskOut, &p.bytes(), TC_ACT_OK);
        }),
        (
            "task_out: a network without an uplink here goes to the bridge",
            |env| {
                env.ov_nets.remove(&VNI).expect("remove");
                unchanged(env, Prog::TaskOut, &to_peer().bytes(), TC_ACT_OK);
            },
        ),
        (
            "task_out: nothing is encapsulated with the fast path off",
            |env| {
                env.set_config(|_| {});
                unchanged(env, Prog::TaskOut, &to_peer().bytes(), TC_ACT_OK);
                assert_eq!(env.ov_stat(OV_TX), 0);
            },
        ),
        (
            "node_ingress: a mesh request for a backend on another node goes straight there",
            |env| {
                let syn = client_tcp(40000, SYN);
                let b = env.mesh_backend(&syn, Some(REMOTE_VTEP));
                let (verdict, out) = run_ok(env, Prog::NodeIngress, &syn.bytes());
                assert_eq!(verdict, TC_ACT_REDIRECT, "to the underlay");
                assert_encap(&out, REMOTE_VTEP, INGRESS_VNI, &mesh_dnat(&syn, b).bytes());
                check_new_mesh_flow(env, &syn, CT_SYN);
                assert_eq!(env.ov_stat(OV_TX_MESH), 1);
            },
        ),
        (
            "node_ingress: a mesh request in fragments for another node's backend: both go there",
            |env| {
                let syn = client_tcp(40000, SYN).long();
                let b = env.mesh_backend(&syn, Some(REMOTE_VTEP));
                for i in 0..2 {
                    let (verdict, out) = run_ok(env, Prog::NodeIngress, &syn.fragment(i));
                    assert_eq!(verdict, TC_ACT_REDIRECT, "fragment {i} to the underlay");
                    assert_encap(&out, REMOTE_VTEP, INGRESS_VNI, &mesh_dnat(&syn, b).fragment(i));
                }
                assert_eq!(env.ov_stat(OV_TX_MESH), 2);
            },
        ),
        (
            "node_ingress: a mesh request for a local backend goes through the uplink",
            |env| {
                let syn = client_tcp(40000, SYN);
                let b = env.mesh_backend(&syn, None);
                let (verdict, out) = run_ok(env, Prog::NodeIngress, &syn.bytes());
                assert_eq!(verdict, TC_ACT_REDIRECT);
                assert_eq!(out, mesh_dnat(&syn, b).bytes());
                assert_eq!((env.ov_stat(OV_TX_MESH), env.ov_stat(OV_LOCAL)), (0, 1));
            },
        ),
        (
            "node_ingress: an ICMP error about a mesh reply goes to the backend's node over VXLAN",
            |env| {
                let syn = client_tcp(40000, SYN);
                let b = env.mesh_backend(&syn, Some(REMOTE_VTEP));
                let (verdict, _) = run_ok(env, Prog::NodeIngress, &syn.bytes());
                assert_eq!(verdict, TC_ACT_REDIRECT, "the flow is set up");
                let sent = mesh_dnat(&syn, b).reply();
                let s = icmp_step(
                    (DEST_UNREACH, FRAG_NEEDED),
                    MTU_1280,
                    &sent.clone().from(NODE, PORT_TCP),
                    &sent,
                    b,
                    usize::MAX,
                );
                let (verdict, out) = run_ok(env, Prog::NodeIngress, &s.input);
                assert_eq!(verdict, TC_ACT_REDIRECT, "to the underlay");
                let Out::Packet(want) = s.output else {
                    unreachable!()
                };
                assert_encap(&out, REMOTE_VTEP, INGRESS_VNI, &want);
                verify_checksums(&out[50..]).expect("the error's checksums");
            },
        ),
        (
            "node_ingress: an ICMP error about a local backend's reply goes through the uplink",
            |env| {
                let syn = client_tcp(40000, SYN);
                let b = env.mesh_backend(&syn, None);
                run_ok(env, Prog::NodeIngress, &syn.bytes());
                let sent = mesh_dnat(&syn, b).reply();
                let s = icmp_step(
                    (DEST_UNREACH, FRAG_NEEDED),
                    MTU_1280,
                    &sent.clone().from(NODE, PORT_TCP),
                    &sent,
                    b,
                    usize::MAX,
                );
                let (verdict, out) = run_ok(env, Prog::NodeIngress, &s.input);
                assert_eq!(verdict, TC_ACT_REDIRECT);
                let Out::Packet(want) = s.output else {
                    unreachable!()
                };
                assert_eq!(describe(&out), describe(&want));
            },
        ),
        (
            "node_ingress: without the fast path, a local backend takes the load-balancer port",
            |env| {
                env.set_config(|_| {});
                let syn = client_tcp(40000, SYN);
                let b = env.mesh_backend(&syn, None);
                let (verdict, out) = run_ok(env, Prog::NodeIngress, &syn.bytes());
                assert_eq!(verdict, TC_ACT_REDIRECT);
                assert_eq!(out, mesh_dnat(&syn, b).bytes());
                assert_eq!(env.ov_stat(OV_LOCAL), 0);
            },
        ),
        (
            "task_out: a local task's mesh reply takes the uplink, where ov_up_node reverse-NATs it as node_reply would",
            |env| {
                let syn = client_tcp(40000, SYN);
                let b = env.mesh_backend(&syn, None);
                run_ok(env, Prog::NodeIngress, &syn.bytes());
                let reply = mesh_dnat(&syn, b).reply();
                let ret = Ret {
                    last_seen: now_ns(),
                    mac: LB_MAC,
                    dsr_port: 0,
                };
                env.ret.insert(reply.key(), ret, 0).expect("lb_ret");
                let (want_verdict, want) = run_ok(env, Prog::NodeReply, &reply.bytes());
                let sent = reply.clone().macs(GATEWAY_MAC, b.mac);
                let (verdict, out) = run_ok(env, Prog::TaskOut, &sent.bytes());
                assert_eq!(verdict, TC_ACT_REDIRECT, "into the uplink");
                assert_eq!(out, reply.bytes(), "to the load-balancer MAC, not NATed yet");
                let (verdict, out) = run_ok(env, Prog::OvUpNode, &out);
                assert_eq!((verdict, want_verdict), (TC_ACT_REDIRECT, TC_ACT_REDIRECT));
                assert_eq!(describe(&out), describe(&want));
                assert_eq!(out, want);
                assert_eq!(env.ov_stat(OV_LOCAL), 2, "the request and the reply");
                // A reply of no flow this node knows is dropped there.
                let stranger = reply.clone().to(CLIENT, 40999);
                unchanged(env, Prog::OvUpNode, &stranger.bytes(), TC_ACT_SHOT);
            },
        ),
        (
            "ov_up_node: an encapsulated frame (zero outer MACs) goes out before the load-balancer port exists",
            |env| {
                env.set_config(|c| {
                    c.lb_mac = [0; 6];
                    c.lb_ifindex = 0;
                    c.flags = CFG_F_OVERLAY;
                    c.vtep = ip(NODE);
                    c.vxlan_port = VXLAN_PORT;
                });
                let inner = from_peer().bytes();
                let mut frame = vxlan(NODE, REMOTE_VTEP, VXLAN_PORT, VNI, &inner);
                frame[..12].copy_from_slice(&[0; 12]);
                unchanged(env, Prog::OvUpNode, &frame, TC_ACT_REDIRECT);
            },
        ),
        (
            "ov_up_node: a reply to this node's own address goes to lo, others by route",
            |env| {
                let to_node = Pkt::tcp((NODE, 8080), (NODE2, 40000), ACK).macs(GATEWAY_MAC, GATEWAY_MAC);
                let (verdict, out) = run_ok(env, Prog::OvUpNode, &to_node.bytes());
                assert_eq!(verdict, TC_ACT_REDIRECT);
                assert_eq!(out, to_node.clone().macs([0; 6], [0; 6]).bytes());
                let to_client = Pkt::tcp((NODE, 8080), (CLIENT, 40000), ACK);
                unchanged(env, Prog::OvUpNode, &to_client.bytes(), TC_ACT_REDIRECT);
            },
        ),
    ]);
}

/// The frame unchanged but for its destination MAC, and left to the bridge.
fn unchanged_but_macs(env: &Env, p: &Pkt, dmac: [u8; 6]) {
    let (verdict, out) = run_ok(env, Prog::TaskOut, &p.bytes());
    assert_eq!(verdict, TC_ACT_OK);
    assert_eq!(out, p.clone().macs(dmac, p.smac).bytes());
}

/// A client's flow through this node's mesh, set up by node_ingress; the
/// reply of its backend, as the backend sends it.
fn established_mesh_reply(env: &Env) -> Pkt {
    let syn = client_tcp(40000, SYN);
    let b = pick(SVC_TCP, &syn.key());
    let (verdict, _) = run_ok(env, Prog::NodeIngress, &syn.bytes());
    assert_eq!(verdict, TC_ACT_REDIRECT, "the flow is set up");
    mesh_dnat(&syn, b).reply()
}

/// PEER's packet to TASK as it arrives from PEER's node.
fn from_peer() -> Pkt {
    to_peer().reply()
}

#[test]
fn overlay_decapsulation() {
    run_overlay_cases(vec![
        (
            "node_ingress: VXLAN for a local task is decapsulated into its network",
            |env| {
                let inner = from_peer().bytes();
                let frame = vxlan(REMOTE_VTEP, NODE, VXLAN_PORT, VNI, &inner);
                let (verdict, out) = run_ok(env, Prog::NodeIngress, &frame);
                assert_eq!(verdict, TC_ACT_REDIRECT, "into the uplink");
                assert_eq!(describe(&out), describe(&inner));
                assert_eq!(out, inner, "the inner frame, byte for byte");
                verify_checksums(&out).expect("inner checksums untouched");
                assert_eq!(env.ov_stat(OV_RX), 1);
            },
        ),
        (
            "node_ingress: VXLAN with a damaged outer IPv4 header is the kernel's to drop",
            |env| {
                let inner = from_peer().bytes();
                let mut frame = vxlan(REMOTE_VTEP, NODE, VXLAN_PORT, VNI, &inner);
                frame[14 + 8] ^= 0x01; // the TTL, under the header checksum
                unchanged(env, Prog::NodeIngress, &frame, TC_ACT_OK);
                assert_eq!(env.ov_stat(OV_RX), 0);
            },
        ),
        (
            "node_ingress: a GSO packet the kernel cannot shrink in place is left to it",
            |env| {
                // Test-run's GSO packets have no TCP GSO type, and the kernel only
                // shrinks TCP GSO packets (the lab tests decapsulate real ones).
                let inner = from_peer().bytes();
                let frame = vxlan(REMOTE_VTEP, NODE, VXLAN_PORT, VNI, &inner);
                let (verdict, out) = env.run_gso(Prog::NodeIngress, &frame, 1400).expect("run");
                assert_eq!((verdict, out), (TC_ACT_OK, frame));
                assert_eq!(env.ov_stat(OV_RX), 0);
            },
        ),
        (
            "node_ingress: a mesh reply is decapsulated and sent on as node_reply would",
            |env| {
                let reply = established_mesh_reply(env);
                let (want_verdict, want) = run_ok(env, Prog::NodeReply, &reply.bytes());
                assert_eq!(want_verdict, TC_ACT_REDIRECT);
                let frame = vxlan(REMOTE_VTEP, NODE, VXLAN_PORT, INGRESS_VNI, &reply.bytes());
                let (verdict, out) = run_ok(env, Prog::NodeIngress, &frame);
                assert_eq!(verdict, want_verdict);
                assert_eq!(describe(&out), describe(&want));
                assert_eq!(out, want);
                assert_eq!(env.ov_stat(OV_RX_REPLY), 1);
            },
        ),
        (
            "node_ingress: a mesh reply in fragments is decapsulated and reverse-NATed, both",
            |env| {
                let udp = client_udp(40001).long();
                let (verdict, _) = run_ok(env, Prog::NodeIngress, &udp.bytes());
                assert_eq!(verdict, TC_ACT_REDIRECT, "the flow is set up");
                let reply = mesh_reply(&udp, pick(SVC_UDP, &udp.key()));
                let want = reply.clone().from(NODE, PORT_UDP);
                for i in 0..2 {
                    let frame = vxlan(
                        REMOTE_VTEP,
                        NODE,
                        VXLAN_PORT,
                        INGRESS_VNI,
                        &reply.fragment(i),
                    );
                    let (verdict, out) = run_ok(env, Prog::NodeIngress, &frame);
                    assert_eq!(verdict, TC_ACT_REDIRECT, "fragment {i} on to the client");
                    assert_eq!(describe(&out), describe(&want.fragment(i)));
                    assert_eq!(out, want.fragment(i));
                }
                assert_eq!(env.ov_stat(OV_RX_REPLY), 2);
            },
        ),
        (
            "node_ingress: a frame to the load-balancer MAC on another network is not a reply",
            |env| {
                let reply = established_mesh_reply(env);
                let frame = vxlan(REMOTE_VTEP, NODE, VXLAN_PORT, VNI, &reply.bytes());
                let (verdict, out) = run_ok(env, Prog::NodeIngress, &frame);
                assert_eq!((verdict, out), (TC_ACT_OK, frame));
                assert_eq!(env.ov_stat(OV_RX_REPLY), 0);
            },
        ),
        (
            "node_ingress: a GRO'd mesh reply is left to the kernel's VXLAN device",
            |env| {
                let reply = established_mesh_reply(env);
                let frame = vxlan(REMOTE_VTEP, NODE, VXLAN_PORT, INGRESS_VNI, &reply.bytes());
                let (verdict, out) = env.run_gso(Prog::NodeIngress, &frame, 1400).expect("run");
                assert_eq!((verdict, out), (TC_ACT_OK, frame));
                assert_eq!(env.ov_stat(OV_RX_REPLY), 0);
            },
        ),
        (
            "node_ingress: VXLAN the fast path does not serve passes untouched",
            |env| {
                let inner = from_peer().bytes();
                let ok = |env: &Env, what: &str, frame: Vec<u8>| {
                    let (verdict, out) = run_ok(env, Prog::NodeIngress, &frame);
                    assert_eq!(verdict, TC_ACT_OK, "{what}");
                    assert_eq!(out, frame, "{what}: unchanged");
                };
                ok(
                    env,
                    "another port",
                    vxlan(REMOTE_VTEP, NODE, 4790, VNI, &inner),
                );
                ok(
                    env,
                    "another VTEP",
                    vxlan(REMOTE_VTEP, NODE2, VXLAN_PORT, VNI, &inner),
                );
                ok(
                    env,
                    "unknown VNI",
                    vxlan(REMOTE_VTEP, NODE, VXLAN_PORT, 5000, &inner),
                );
                ok(
                    env,
                    "the task is on another network",
                    vxlan(REMOTE_VTEP, NODE, VXLAN_PORT, OTHER_VNI, &inner),
                );
                let stranger = from_peer().to(STRANGER, 50000).bytes();
                ok(
                    env,
                    "a remote address",
                    vxlan(REMOTE_VTEP, NODE, VXLAN_PORT, VNI, &stranger),
                );
                let nobody = from_peer().to([10, 0, 1, 99], 50000).bytes();
                ok(
                    env,
                    "no such endpoint",
                    vxlan(REMOTE_VTEP, NODE, VXLAN_PORT, VNI, &nobody),
                );
                let request = arp(1, ([0xff; 6], PEER_MAC), PEER_MAC, PEER, [0; 6], TASK);
                ok(
                    env,
                    "inner ARP",
                    vxlan(REMOTE_VTEP, NODE, VXLAN_PORT, VNI, &request),
                );
                let mut flags = vxlan(REMOTE_VTEP, NODE, VXLAN_PORT, VNI, &inner);
                flags[42] = 0;
                ok(env, "no I flag", flags);
                let full = vxlan(REMOTE_VTEP, NODE, VXLAN_PORT, VNI, &inner);
                ok(
                    env,
                    "cut in the inner IP header",
                    full[..14 + 50 + 10].to_vec(),
                );
                ok(
                    env,
                    "cut in the VXLAN header",
                    full[..14 + 20 + 8 + 4].to_vec(),
                );
                ok(env, "padded", [&full[..], &[0; 8]].concat());
                // A test-run skb's checksum is never marked checked: the
                // kernel checks it (and its VXLAN device takes the frame).
                let mut csum = full.clone();
                csum[14 + 20 + 6..14 + 20 + 8].copy_from_slice(&[0x12, 0x34]);
                ok(env, "an outer UDP checksum nobody checked yet", csum);
                let mut frag = full.clone();
                frag[20] = 0x20; // MF
                ok(env, "outer fragment", frag);
                env.set_config(|_| {});
                ok(env, "fast path off", full);
                for stat in 0..OV_STATS {
                    assert_eq!(env.ov_stat(stat), 0);
                }
            },
        ),
        (
            "ov_up_net: a frame for a local task goes into it; task_in's work is done",
            |env| {
                let p = from_peer();
                unchanged(env, Prog::OvUpNet, &p.bytes(), TC_ACT_REDIRECT);
                let mesh = client_tcp(40000, SYN)
                    .to(TASK, 80)
                    .macs(TASK_MAC, OTHER_LB_MAC);
                unchanged(env, Prog::OvUpNet, &mesh.bytes(), TC_ACT_REDIRECT);
                let ret = env.ret(&mesh.reply().key()).expect("lb_ret entry");
                assert_eq!(ret.mac, OTHER_LB_MAC, "replies go back to the entry node");
            },
        ),
        ("ov_up_net: anything else is dropped", |env| {
            unchanged(env, Prog::OvUpNet, &to_peer().bytes(), TC_ACT_SHOT);
            let nobody = from_peer().to([10, 0, 1, 99], 50000);
            unchanged(env, Prog::OvUpNet, &nobody.bytes(), TC_ACT_SHOT);
            let request = arp(1, ([0xff; 6], PEER_MAC), PEER_MAC, PEER, [0; 6], TASK);
            unchanged(env, Prog::OvUpNet, &request, TC_ACT_SHOT);
        }),
        (
            "ov_up_node: encapsulated frames go out; nothing else crosses",
            |env| {
                let frame = vxlan(NODE, REMOTE_VTEP, VXLAN_PORT, VNI, &to_peer().bytes());
                unchanged(env, Prog::OvUpNode, &frame, TC_ACT_REDIRECT);
                let request = arp(1, ([0xff; 6], PEER_MAC), PEER_MAC, PEER, [0; 6], TASK);
                unchanged(env, Prog::OvUpNode, &request, TC_ACT_SHOT);
            },
        ),
    ]);
}

// ---------------------------------------------------------------------------
// Direct server return: the entry node marks a mesh request (source MAC 02:44
// + its address) when it allows it; the backend's node records the published
// port (lb_dsr) with the flow, and its replies leave from there with the
// entry node's address and that port.

/// The entry node's MAC on a request that may be answered directly.
const DSR_MAC: [u8; 6] = [0x02, 0x44, 198, 51, 100, 1];
const OTHER_DSR_MAC: [u8; 6] = [0x02, 0x44, 198, 51, 100, 2];

fn dsr_world(env: &mut Env) {
    overlay_world(env);
    env.set_config(|c| {
        c.flags |= CFG_F_OVERLAY | CFG_F_DSR;
        c.vtep = ip(NODE);
        c.vxlan_port = VXLAN_PORT;
    });
}

/// be(1) on this node's ingress network, and lb_dsr saying it backs PORT_TCP.
fn local_backend(env: &mut Env) -> &'static Be {
    let b = be(1);
    env.endpoint(b.addr, None, INGRESS_VNI, b.mac);
    let key = DsrKey {
        addr: ip(b.addr),
        port: b.port.to_be(),
        proto: TCP,
        pad: 0,
    };
    env.dsr
        .insert(key, u32::from(PORT_TCP.to_be()), 0)
        .expect("lb_dsr");
    b
}

#[test]
fn direct_server_return() {
    run_overlay_cases(vec![
        ("node_ingress: a request to another node's backend asks for direct return", |env| {
            dsr_world(env);
            let syn = client_tcp(40000, SYN);
            let b = env.mesh_backend(&syn, Some(REMOTE_VTEP));
            let (verdict, out) = run_ok(env, Prog::NodeIngress, &syn.bytes());
            assert_eq!(verdict, TC_ACT_REDIRECT);
            let inner = mesh_dnat(&syn, b).macs(b.mac, DSR_MAC);
            assert_encap(&out, REMOTE_VTEP, INGRESS_VNI, &inner.bytes());
        }),
        ("node_ingress: not for a client of another node address, nor without the flag", |env| {
            dsr_world(env);
            let syn = client_tcp(40000, SYN).to(NODE2, PORT_TCP);
            let b = env.mesh_backend(&syn, Some(REMOTE_VTEP));
            let (_, out) = run_ok(env, Prog::NodeIngress, &syn.bytes());
            assert_encap(&out, REMOTE_VTEP, INGRESS_VNI, &mesh_dnat(&syn, b).bytes());
            overlay_world(env);
            let syn = client_tcp(40001, SYN);
            let b = env.mesh_backend(&syn, Some(REMOTE_VTEP));
            let (_, out) = run_ok(env, Prog::NodeIngress, &syn.bytes());
            assert_encap(&out, REMOTE_VTEP, INGRESS_VNI, &mesh_dnat(&syn, b).bytes());
        }),
        ("ov_up_net: a marked request records the published port with the flow", |env| {
            dsr_world(env);
            let b = local_backend(env);
            let syn = Pkt::tcp((CLIENT, 40000), (b.addr, 80), SYN).macs(b.mac, OTHER_DSR_MAC);
            let mut p = syn.clone();
            p.dmac = b.mac;
            env.endpoint(b.addr, None, INGRESS_VNI, b.mac);
            unchanged(env, Prog::OvUpNet, &p.bytes(), TC_ACT_REDIRECT);
            let ret = env.ret(&syn.reply().key()).expect("lb_ret");
            assert_eq!(ret.mac, OTHER_LB_MAC, "where the kernel path sends replies");
            assert_eq!(u16::from_be(ret.dsr_port), PORT_TCP);
        }),
        ("node_ingress: a mark from another node than the datagram's sender is taken off", |env| {
            dsr_world(env);
            let b = local_backend(env);
            let third = [0x02, 0x44, 198, 51, 100, 3];
            let syn = Pkt::tcp((CLIENT, 40000), (b.addr, 80), SYN).macs(b.mac, third);
            let frame = vxlan(REMOTE_VTEP, NODE, VXLAN_PORT, INGRESS_VNI, &syn.bytes());
            let (verdict, out) = run_ok(env, Prog::NodeIngress, &frame);
            assert_eq!(verdict, TC_ACT_REDIRECT, "into the uplink");
            let want = syn.clone().macs(b.mac, [0x02, 0x53, 198, 51, 100, 3]);
            assert_eq!(describe(&out), describe(&want.bytes()));
            assert_eq!(out, want.bytes());
            // From the node the mark names, it stays.
            let syn = syn.macs(b.mac, OTHER_DSR_MAC);
            let frame = vxlan(REMOTE_VTEP, NODE, VXLAN_PORT, INGRESS_VNI, &syn.bytes());
            let (_, out) = run_ok(env, Prog::NodeIngress, &frame);
            assert_eq!(out, syn.bytes());
        }),
        ("task_in: on the kernel's path a marked request records no published port", |env| {
            dsr_world(env);
            let b = local_backend(env);
            let syn = Pkt::tcp((CLIENT, 40000), (b.addr, 80), SYN).macs(b.mac, OTHER_DSR_MAC);
            unchanged(env, Prog::TaskIn, &syn.bytes(), TC_ACT_OK);
            let ret = env.ret(&syn.reply().key()).expect("lb_ret");
            assert_eq!((ret.mac, ret.dsr_port), (OTHER_LB_MAC, 0));
        }),
        ("ov_up_net: without an lb_dsr entry, replies go back through the entry node", |env| {
            dsr_world(env);
            let b = be(1);
            env.endpoint(b.addr, None, INGRESS_VNI, b.mac);
            let syn = Pkt::tcp((CLIENT, 40000), (b.addr, 80), SYN).macs(b.mac, OTHER_DSR_MAC);
            unchanged(env, Prog::OvUpNet, &syn.bytes(), TC_ACT_REDIRECT);
            let ret = env.ret(&syn.reply().key()).expect("lb_ret");
            assert_eq!((ret.mac, ret.dsr_port), (OTHER_LB_MAC, 0));
        }),
        ("task_out: a reply leaves from here with the entry node's address and port", |env| {
            dsr_world(env);
            let b = local_backend(env);
            let reply = Pkt::tcp((b.addr, 80), (CLIENT, 40000), SYN | ACK).macs(GATEWAY_MAC, b.mac);
            let ret = Ret {
                last_seen: now_ns(),
                mac: OTHER_LB_MAC,
                dsr_port: PORT_TCP.to_be(),
            };
            env.ret.insert(reply.key(), ret, 0).expect("lb_ret");
            let (verdict, out) = run_ok(env, Prog::TaskOut, &reply.bytes());
            assert_eq!(verdict, TC_ACT_REDIRECT, "into the uplink, to the underlay");
            let want = reply.clone().from(REMOTE_VTEP, PORT_TCP);
            assert_eq!(describe(&out), describe(&want.bytes()));
            assert_eq!(out, want.bytes());
            verify_checksums(&out).expect("checksums");
            assert_eq!(env.ov_stat(OV_TX_DSR), 1);
        }),
        ("task_out: a reply in fragments leaves from here, both with the entry node's address", |env| {
            dsr_world(env);
            let b = local_backend(env);
            let reply = Pkt::tcp((b.addr, 80), (CLIENT, 40000), ACK).macs(GATEWAY_MAC, b.mac).long();
            let ret = Ret {
                last_seen: now_ns(),
                mac: OTHER_LB_MAC,
                dsr_port: PORT_TCP.to_be(),
            };
            env.ret.insert(reply.key(), ret, 0).expect("lb_ret");
            let want = reply.clone().from(REMOTE_VTEP, PORT_TCP);
            for i in 0..2 {
                let (verdict, out) = run_ok(env, Prog::TaskOut, &reply.fragment(i));
                assert_eq!(verdict, TC_ACT_REDIRECT, "fragment {i} into the uplink");
                assert_eq!(describe(&out), describe(&want.fragment(i)));
                assert_eq!(out, want.fragment(i));
            }
            assert_eq!(env.ov_stat(OV_TX_DSR), 2);
        }),
        ("task_out: to a client on this node, or with the fast path off, back through the entry node", |env| {
            dsr_world(env);
            let b = local_backend(env);
            let to_node = Pkt::tcp((b.addr, 80), (NODE2, 40000), ACK).macs(GATEWAY_MAC, b.mac);
            let ret = Ret {
                last_seen: now_ns(),
                mac: OTHER_LB_MAC,
                dsr_port: PORT_TCP.to_be(),
            };
            env.ret.insert(to_node.key(), ret, 0).expect("lb_ret");
            let (verdict, out) = run_ok(env, Prog::TaskOut, &to_node.bytes());
            assert_eq!(verdict, TC_ACT_REDIRECT);
            assert_encap(
                &out,
                REMOTE_VTEP,
                INGRESS_VNI,
                &to_node.clone().macs(OTHER_LB_MAC, b.mac).bytes(),
            );
            let reply = Pkt::tcp((b.addr, 80), (CLIENT, 40000), ACK).macs(GATEWAY_MAC, b.mac);
            env.ret.insert(reply.key(), ret, 0).expect("lb_ret");
            env.set_config(|_| {});
            unchanged_but_macs(env, &reply, OTHER_LB_MAC);
            assert_eq!(env.ov_stat(OV_TX_DSR), 0);
        }),
    ]);
}

// ---------------------------------------------------------------------------
// Mesh requests too large for the underlay once encapsulated: an ICMP
// "fragmentation needed" for a whole datagram, a split in two for a fragment.
// These need a real underlay device (its MTU) and a real uplink (the split's
// clone goes there): veths in a network namespace of the test's own thread.

/// The underlay's MTU in these tests, and what fits in VXLAN over it.
const UNDERLAY_MTU: usize = 1500;
const INNER_MTU: usize = UNDERLAY_MTU - 50;

fn ip_cmd(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Moves the calling thread into a new network namespace (gone with the
/// thread) holding an underlay `ul0` of UNDERLAY_MTU and the world's uplink
/// end `up0` (index UP_NODE), veths (this kernel has no dummy devices), up;
/// the underlay's index.
fn private_underlay() -> u32 {
    // SAFETY: unshare(CLONE_NEWNET) takes no pointers; it moves only the
    // calling thread, which the caller made for this.
    let rc = unsafe { libc::unshare(libc::CLONE_NEWNET) };
    assert_eq!(
        rc,
        0,
        "unshare(CLONE_NEWNET): {}",
        io::Error::last_os_error()
    );
    // No IPv6 chatter (router solicitations, MLD) on the links.
    for conf in ["all", "default"] {
        fs::write(format!("/proc/sys/net/ipv6/conf/{conf}/disable_ipv6"), "1")
            .expect("disable IPv6 in the test's namespace");
    }
    let mtu = UNDERLAY_MTU.to_string();
    let up = UP_NODE.to_string();
    ip_cmd(&[
        "link", "add", "ul0", "mtu", &mtu, "type", "veth", "peer", "ul1",
    ]);
    ip_cmd(&[
        "link", "add", "up0", "index", &up, "type", "veth", "peer", "up1",
    ]);
    for link in ["ul0", "ul1", "up0", "up1"] {
        ip_cmd(&["link", "set", link, "up"]);
    }
    let name = std::ffi::CString::new("ul0").unwrap();
    // SAFETY: a valid NUL-terminated name, read during the call only.
    let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
    assert_ne!(index, 0, "ul0: {}", io::Error::last_os_error());
    index
}

/// A packet socket on interface `ifindex`: every frame that comes in there.
struct Capture(std::os::fd::OwnedFd);

impl Capture {
    fn new(ifindex: u32) -> Self {
        let all = (libc::ETH_P_ALL as u16).to_be();
        // SAFETY: socket() takes no pointers; the fd it returns is owned below.
        let fd = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                i32::from(all),
            )
        };
        assert!(fd >= 0, "packet socket: {}", io::Error::last_os_error());
        // SAFETY: fd is a fresh socket nothing else owns.
        let fd = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
        // SAFETY: sockaddr_ll is plain old data: all zeros is a valid value.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = all;
        sll.sll_ifindex = i32::try_from(ifindex).unwrap();
        // SAFETY: a valid sockaddr_ll of the size passed, read during the call.
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                &sll as *const libc::sockaddr_ll as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        assert_eq!(
            rc,
            0,
            "bind the packet socket: {}",
            io::Error::last_os_error()
        );
        Capture(fd)
    }

    /// The next IPv4 frame, waiting at most a second for each frame.
    fn next(&self) -> Option<Vec<u8>> {
        loop {
            let f = self.next_frame()?;
            if f.len() >= 14 && f[12..14] == ETH_P_IP.to_be_bytes() {
                return Some(f);
            }
        }
    }

    fn next_frame(&self) -> Option<Vec<u8>> {
        let mut pfd = libc::pollfd {
            fd: self.0.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd, for the duration of the call.
        if unsafe { libc::poll(&mut pfd, 1, 1000) } != 1 {
            return None;
        }
        let mut buf = vec![0u8; 65536];
        // SAFETY: buf is writable for its whole length during the call.
        let n = unsafe {
            libc::recv(
                self.0.as_raw_fd(),
                buf.as_mut_ptr() as *mut libc::c_void,
                buf.len(),
                libc::MSG_DONTWAIT,
            )
        };
        let n = usize::try_from(n).ok()?;
        buf.truncate(n);
        Some(buf)
    }
}

/// One's complement addition, for checksum arithmetic.
fn oc_add(a: u16, b: u16) -> u16 {
    let s = u32::from(a) + u32::from(b);
    ((s & 0xffff) + (s >> 16)) as u16
}

/// The UDP checksum field of `p` that test-run's NAT (which updates a field as
/// a full checksum: its skbs are never CHECKSUM_PARTIAL) turns into what a
/// CHECKSUM_PARTIAL datagram has after the kernel's NAT: only the folded
/// pseudo-header sum of `nat`, `p` rewritten. The field's update is linear:
/// ~after = ~before + (~full(nat) - ~full(p)).
fn partial_before_nat(p: &Pkt, nat: &Pkt) -> u16 {
    let field = |q: &Pkt| u16::from_be_bytes([q.l4()[6], q.l4()[7]]);
    let len = nat.l4().len();
    let partial = !checksum(&pseudo_header(nat.saddr, nat.daddr, UDP, len));
    !oc_add(oc_add(!partial, field(nat)), !field(p))
}

/// The ICMP "fragmentation needed" node_ingress answers `request` with: from
/// the node to the client, quoting the request's IP header and 8 bytes.
fn frag_needed(request: &[u8], saddr: [u8; 4], daddr: [u8; 4], mtu: u16) -> Vec<u8> {
    let quote = &request[14..14 + 28];
    let mut icmp = vec![3, 4, 0, 0, 0, 0];
    icmp.extend(mtu.to_be_bytes());
    icmp.extend(quote);
    let c = checksum(&icmp);
    icmp[2..4].copy_from_slice(&c.to_be_bytes());
    let mut ip = vec![0x45, 0xc0];
    ip.extend(u16::try_from(20 + icmp.len()).unwrap().to_be_bytes());
    ip.extend([0, 0, 0, 0, 64, ICMP, 0, 0]);
    ip.extend(saddr);
    ip.extend(daddr);
    let c = checksum(&ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    [&[0u8; 12][..], &ETH_P_IP.to_be_bytes(), &ip, &icmp].concat()
}

#[test]
fn oversized_mesh_requests_are_answered_or_split() {
    std::thread::spawn(|| {
        let underlay = private_underlay();
        let mut env = Env::new();
        overlay_world(&mut env);
        env.set_config(|c| {
            c.flags |= CFG_F_OVERLAY;
            c.vtep = ip(NODE);
            c.vxlan_port = VXLAN_PORT;
            c.underlay_ifindex = underlay;
        });
        let up = Capture::new(UP_NODE);
        // A UDP datagram of `len` bytes (IP) from the client, its backend on
        // another node.
        let datagram = |len: usize| {
            let mut p = client_udp(40001);
            p.payload = (0..len - 28).map(|i| i as u8).collect();
            p
        };
        let b = pick(SVC_UDP, &client_udp(40001).key());
        env.endpoint(b.addr, Some(REMOTE_VTEP), INGRESS_VNI, b.mac);
        let run = |env: &Env, frame: &[u8]| {
            env.run_on(Prog::NodeIngress, frame, 0, underlay)
                .unwrap_or_else(|e| panic!("test run: {e}"))
        };
        let head = (INNER_MTU - 20) & !7;
        let at = |bytes: usize| u16::try_from(bytes / 8).unwrap();

        // What fits (the inner MTU exactly) is encapsulated as always.
        let fits = datagram(INNER_MTU);
        let (verdict, out) = run(&env, &fits.bytes());
        assert_eq!(verdict, TC_ACT_REDIRECT);
        assert_encap(&out, REMOTE_VTEP, INGRESS_VNI, &mesh_dnat(&fits, b).bytes());

        // One byte more, a whole datagram that must not be fragmented (DF):
        // "fragmentation needed", the inner MTU in it, back to the client from
        // the address it sent to.
        for len in [INNER_MTU + 1, UNDERLAY_MTU] {
            let big = datagram(len).bytes();
            let (verdict, out) = run(&env, &big);
            assert_eq!(verdict, TC_ACT_REDIRECT, "{len}: to the client");
            let want = frag_needed(&big, NODE, CLIENT, INNER_MTU as u16);
            assert_eq!(describe(&out), describe(&want), "{len}");
            assert_eq!(out, want, "{len}");
        }
        assert_eq!(env.ov_stat(OV_FRAG_NEEDED), 2);
        assert!(up.next().is_none(), "nothing sent through the uplink");

        // The same datagram with DF clear: two fragments, as a router makes;
        // the second (a clone, through the uplink) goes first. Its checksum
        // is only the pseudo-header's, as a sender on a veth leaves it to
        // offload: made whole, or the fragments would never be completed.
        // (An odd length: the sum's padding to whole 32-bit words is used.)
        let mut whole = datagram(UNDERLAY_MTU - 1).with_id(0x2222);
        whole.frag_off = 0;
        let dnat = mesh_dnat(&whole, b).l4();
        let mut input = whole.bytes();
        input[40..42]
            .copy_from_slice(&partial_before_nat(&whole, &mesh_dnat(&whole, b)).to_be_bytes());
        let (verdict, out) = run(&env, &input);
        assert_eq!(verdict, TC_ACT_REDIRECT, "DF clear: to the underlay");
        let want = mesh_dnat(&whole, b);
        let first = want.frame(&dnat[..head], 0x2000);
        assert_encap(&out, REMOTE_VTEP, INGRESS_VNI, &first);
        let second = up.next().expect("the second part through the uplink");
        assert_encap(
            &second,
            REMOTE_VTEP,
            INGRESS_VNI,
            &want.frame(&dnat[head..], at(head)),
        );
        assert_eq!(env.ov_stat(OV_SPLIT), 1);
        // A full checksum that is wrong stays wrong: the receiver must still
        // see the damage (only a partial one is made whole).
        let mut damaged = whole.bytes();
        damaged[40] ^= 0x01;
        let (_, out) = run(&env, &damaged);
        let at_csum = 50 + 14 + 20 + 6;
        assert_ne!(out[at_csum..at_csum + 2], first[40..42], "made right");
        assert_eq!(out[at_csum + 2..], first[42..], "the rest as split");
        up.next().expect("its second part");

        // Datagrams the client fragmented at the full MTU: each fragment that
        // does not fit goes as two that do, with the original's more-fragments
        // flag on the second (the last fragment's is clear); one that fits (the
        // second datagram's last) goes as it is.
        let mut splits = 2;
        for (id, l4_len) in [(0x3333, 3 * 1480), (0x4444, 2 * 1480 + 40)] {
            let long = datagram(20 + l4_len).with_id(id);
            let dnat = mesh_dnat(&long, b);
            let (l4, l4d) = (long.l4(), dnat.l4());
            for from in (0..l4_len).step_by(1480) {
                let to = (from + 1480).min(l4_len);
                let mf = if to < l4_len { 0x2000 } else { 0 };
                let (verdict, out) = run(&env, &long.frame(&l4[from..to], mf | at(from)));
                let ctx = format!("datagram {id:#x}, fragment at {from}");
                assert_eq!(verdict, TC_ACT_REDIRECT, "{ctx}: to the underlay");
                if to - from + 20 <= INNER_MTU {
                    let want = dnat.frame(&l4d[from..to], mf | at(from));
                    assert_encap(&out, REMOTE_VTEP, INGRESS_VNI, &want);
                    continue;
                }
                let first = dnat.frame(&l4d[from..from + head], 0x2000 | at(from));
                assert_encap(&out, REMOTE_VTEP, INGRESS_VNI, &first);
                let second = up
                    .next()
                    .unwrap_or_else(|| panic!("{ctx}: the second part"));
                let want = dnat.frame(&l4d[from + head..to], mf | at(from + head));
                assert_encap(&second, REMOTE_VTEP, INGRESS_VNI, &want);
                splits += 1;
            }
        }
        assert_eq!(splits, 2 + 3 + 2);
        assert_eq!(env.ov_stat(OV_SPLIT), splits);
        assert_eq!(env.ov_stat(OV_TX_MESH), 3 + 3 + 3);
        assert!(up.next().is_none(), "one clone a split");

        // More than two parts' worth (only a client with a larger MTU than
        // the underlay's sends that): dropped, counted.
        let long = datagram(20 + 3 * 1480).with_id(0x5555);
        let (verdict, _) = run(&env, &long.frame(&long.l4()[..2960], 0x2000));
        assert_eq!(verdict, TC_ACT_SHOT);
        assert_eq!(env.svc_counters(SVC_UDP).drops, 1);
        assert!(up.next().is_none());
    })
    .join()
    .unwrap_or_else(|e| panic::resume_unwind(e));
}

/// A liveness probe's payload: magic, kind, nonce (probe_wire.h).
fn probe_payload(kind: u8) -> Vec<u8> {
    let mut m = b"SHOALPRB".to_vec();
    m.push(kind);
    m.extend(0x0123_4567_89ab_cdefu64.to_be_bytes());
    assert_eq!(m.len(), LB_PROBE_LEN);
    m
}

fn probe(kind: u8) -> Pkt {
    let port = LB_PROBE_PORT;
    let mut p = Pkt::udp((NODE2, port), (NODE, port));
    p.payload = probe_payload(kind);
    p
}

/// The answer node_ingress makes of `p`: back where it came from, as the answer.
fn probe_answer(p: &Pkt) -> Pkt {
    let mut a = Pkt::udp((p.daddr, p.dport), (p.saddr, p.sport)).macs(p.smac, p.dmac);
    a.payload = probe_payload(LB_PROBE_ANSWER);
    a.no_udp_csum = p.no_udp_csum;
    a
}

/// Other nodes' liveness probes are answered by the data plane, not shoald: back out
/// of the interface they came in by (the verdict is the redirect), addresses, ports
/// and MACs swapped, the kind made the answer's, every checksum right, a fresh TTL.
/// Anything else to the probe port goes on to shoald's socket untouched.
#[test]
fn liveness_probes_are_answered_by_the_data_plane() {
    use Prog::NodeIngress as NI;
    let p = probe(LB_PROBE_KIND);
    let spent_ttl = edit_ip(p.bytes(), |ip| ip[8] = 50);
    let unchecked = probe(LB_PROBE_KIND).no_csum();
    let mut longer = probe(LB_PROBE_KIND);
    longer.payload.push(0);
    let mut old = probe(0);
    old.payload.truncate(9);
    let raw = |prog, input: Vec<u8>, verdict, output: Option<&Pkt>| Step {
        prog,
        input,
        verdict,
        output: output.map_or(Out::Unchanged, |p| Out::Packet(p.bytes())),
    };
    run_table(vec![
        Case {
            name: "a probe is answered where it came from",
            setup: nothing,
            steps: vec![
                step(NI, &p, TC_ACT_REDIRECT, Some(&probe_answer(&p))),
                raw(NI, spent_ttl, TC_ACT_REDIRECT, Some(&probe_answer(&p))),
            ],
            check: no_check,
        },
        Case {
            name: "a probe without a UDP checksum is answered without one",
            setup: nothing,
            steps: vec![step(
                NI,
                &unchecked,
                TC_ACT_REDIRECT,
                Some(&probe_answer(&unchecked)),
            )],
            check: no_check,
        },
        Case {
            name: "answers, other lengths, old probes and other addresses go on",
            setup: nothing,
            steps: vec![
                step(NI, &probe(LB_PROBE_ANSWER), TC_ACT_OK, None),
                step(NI, &longer, TC_ACT_OK, None),
                step(NI, &old, TC_ACT_OK, None),
                step(NI, &p.clone().to(ELSEWHERE, LB_PROBE_PORT), TC_ACT_OK, None),
                step(NI, &p.clone().to(NODE, LB_PROBE_PORT + 1), TC_ACT_OK, None),
            ],
            check: no_check,
        },
    ]);
}
