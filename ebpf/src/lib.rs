//! Shoal's load balancer in eBPF: the compiled programs, one object per attach
//! point, and Rust mirrors of the structs they share with shoald (defined once,
//! in `include/shoal_lb.h`; a test checks every size and offset against C).
//!
//! The programs (in `src/bpf/`):
//! - `node_ingress` (tc ingress of the underlay interface and lo): the routing
//!   mesh's entry; published ports on any node address, DNAT to a backend,
//!   into the ingress network through the node's load-balancer port.
//! - `node_reply` (tc ingress of the host end of the load-balancer port):
//!   replies of mesh flows, reverse NAT, out towards the client.
//! - `task_out` (tc ingress of a task's bridge port): VIP load balancing, ARP for
//!   VIPs, and the return path of mesh flows to the node that did the NAT.
//! - `task_in` (tc egress of a task's bridge port): reverse NAT of VIP flows;
//!   records which node's mesh a flow came through.
//! - `ov_up_node` / `ov_up_net` (tc ingress of the two ends of a network's
//!   uplink): the overlay's fast path (`include/overlay.h`), VXLAN in eBPF:
//!   `task_out` encapsulates frames to tasks on other nodes and `node_ingress`
//!   decapsulates frames for local tasks; the uplink carries them between the
//!   network's namespace and the node's.
//!
//! All maps are defined once (`include/maps.h`) and pinned by name, so the
//! objects share them and they outlive shoald.

/// The object of each program; aligned for the ELF parser.
pub const NODE_INGRESS: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/node_ingress.bpf.o"));
pub const NODE_REPLY: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/node_reply.bpf.o"));
pub const TASK_OUT: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/task_out.bpf.o"));
pub const TASK_IN: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/task_in.bpf.o"));
pub const OV_UP_NODE: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/ov_up_node.bpf.o"));
pub const OV_UP_NET: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/ov_up_net.bpf.o"));

/// (object, program name) for each attach point.
pub const PROGRAMS: [(&str, &[u8]); 6] = [
    ("lb_node_ingress", NODE_INGRESS),
    ("lb_node_reply", NODE_REPLY),
    ("lb_task_out", TASK_OUT),
    ("lb_task_in", TASK_IN),
    ("ov_up_node", OV_UP_NODE),
    ("ov_up_net", OV_UP_NET),
];

/// A hash of the shared header and map definitions: pins live under a
/// directory named by it, so a shoald never reuses maps of another layout.
pub const ABI_VERSION: &str = include_str!(concat!(env!("OUT_DIR"), "/abi.txt"));

pub const MAGLEV_DEFAULT: u32 = 16381;
pub const MAX_SERVICES: u32 = 65536;
pub const MAX_BACKENDS: u32 = 262_144;
pub const CT_ENTRIES: u32 = 262_144;

pub const SCOPE_VIP: u8 = 1;
pub const SCOPE_NODEPORT: u8 = 2;
pub const SVC_F_SNAT: u32 = 1;
pub const CFG_F_SNAT: u32 = 1;
pub const CFG_F_OVERLAY: u32 = 2;
pub const CFG_F_DSR: u32 = 4;
/// Second byte of a mesh request's source MAC when its entry node allows direct
/// server return (`LB_DSR_MAC1`).
pub const LB_DSR_MAC1: u8 = 0x44;
pub const OV_MAX_ENDPOINTS: u32 = 65536;
/// The data-plane liveness probes (`probe_wire.h`): their UDP port, payload length, and
/// the kinds of a probe and of its answer.
pub const LB_PROBE_PORT: u16 = 7946;
pub const LB_PROBE_LEN: usize = 17;
pub const LB_PROBE_KIND: u8 = 2;
pub const LB_PROBE_ANSWER: u8 = 3;
/// `ov_net.flags`: the ingress network.
pub const OV_NET_F_INGRESS: u32 = 1;

/// Indexes of `ov_stats` (`enum ov_stat`).
pub const OV_TX: u32 = 0;
pub const OV_TX_MESH: u32 = 1;
pub const OV_RX: u32 = 2;
pub const OV_RX_REPLY: u32 = 3;
pub const OV_TX_DSR: u32 = 4;
pub const OV_LOCAL: u32 = 5;
pub const OV_FRAG_NEEDED: u32 = 6;
pub const OV_SPLIT: u32 = 7;
pub const OV_STATS: u32 = 8;

pub const BACKEND_ACTIVE: u8 = 0;
pub const BACKEND_TERMINATING: u8 = 1;
pub const BACKEND_DOWN: u8 = 2;

pub const CT_SYN: usize = 0;
pub const CT_ESTABLISHED: usize = 1;
pub const CT_CLOSING: usize = 2;
pub const CT_UDP: usize = 3;
pub const CT_STATES: usize = 4;

/// First two bytes of a node's load-balancer MAC (then its underlay address).
pub const LB_MAC_PREFIX: [u8; 2] = [0x02, 0x53];

/// Declares a #[repr(C)] mirror of a C struct and makes it plain old data for aya.
macro_rules! pod {
    ($(#[$m:meta])* pub struct $name:ident { $($(#[$fm:meta])* pub $f:ident: $t:ty,)* }) => {
        $(#[$m])*
        #[repr(C)]
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
        pub struct $name { $($(#[$fm])* pub $f: $t,)* }
        // SAFETY: a repr(C) struct of integers and integer arrays, with explicit
        // padding fields: every bit pattern is valid and there are no pointers.
        unsafe impl aya::Pod for $name {}
    };
}

pod! {
    /// `struct lb_svc_key`: a frontend. Address and port in network byte order.
    pub struct SvcKey { pub addr: u32, pub port: u16, pub proto: u8, pub scope: u8, }
}
pod! {
    /// `struct lb_svc`.
    pub struct Svc { pub id: u32, pub maglev_size: u32, pub flags: u32, pub pad: u32, }
}
pod! {
    /// `struct lb_backend`.
    pub struct Backend { pub addr: u32, pub port: u16, pub mac: [u8; 6], pub state: u8, pub pad: [u8; 3], }
}
pod! {
    /// `struct lb_flow_key`: a flow's tuple, network byte order.
    pub struct FlowKey { pub saddr: u32, pub daddr: u32, pub sport: u16, pub dport: u16, pub proto: u8, pub pad: [u8; 3], }
}
pod! {
    /// `struct lb_ct`.
    pub struct Ct { pub last_seen: u64, pub backend_id: u32, pub svc_id: u32, pub state: u8, pub pad: u8, pub nat_port: u16, pub pad2: [u8; 4], }
}
pod! {
    /// `struct lb_rev`.
    pub struct Rev { pub last_seen: u64, pub addr: u32, pub port: u16, pub mac: [u8; 6], pub client_addr: u32, pub client_port: u16, pub pad: u16, pub ifindex: u32, }
}
pod! {
    /// `struct lb_ret`.
    pub struct Ret { pub last_seen: u64, pub mac: [u8; 6], pub dsr_port: u16, }
}
pod! {
    /// `struct lb_frag_key`: a fragmented datagram at one hook and interface
    /// (addresses network order, the IP id as on the wire).
    pub struct FragKey { pub saddr: u32, pub daddr: u32, pub ifindex: u32, pub id: u16, pub proto: u8, pub hook: u8, }
}
pod! {
    /// `struct lb_frag`: its ports, network order, and when its first fragment came.
    pub struct Frag { pub seen: u64, pub sport: u16, pub dport: u16, pub pad: u32, }
}
pod! {
    /// `struct lb_dsr_key`: a backend of a published port (address, target port
    /// in network order, protocol).
    pub struct DsrKey { pub addr: u32, pub port: u16, pub proto: u8, pub pad: u8, }
}
pod! {
    /// `struct lb_config`.
    pub struct Config {
        pub maglev_seed: u32,
        pub lb_ifindex: u32,
        pub underlay_ifindex: u32,
        pub snat_addr: u32,
        pub lb_mac: [u8; 6],
        pub pad: [u8; 2],
        pub flags: u32,
        pub vtep: u32,
        pub timeout_ns: [u64; CT_STATES],
        pub vxlan_port: u16,
        pub pad3: [u8; 6],
    }
}
pod! {
    /// `struct ov_ep`: an overlay endpoint. `vtep` 0: on this node.
    pub struct OvEp { pub vtep: u32, pub ifindex: u32, pub vni: u32, pub mac: [u8; 6], pub pad: [u8; 2], }
}
pod! {
    /// `struct ov_net`: a network's uplink ends.
    pub struct OvNet { pub up_net: u32, pub up_node: u32, pub flags: u32, pub pad: u32, }
}
pod! {
    /// `struct lb_counters`.
    pub struct Counters { pub packets: u64, pub bytes: u64, pub new_flows: u64, pub drops: u64, }
}

fn mix(mut h: u32, mut k: u32) -> u32 {
    k = k.wrapping_mul(0xcc9e_2d51);
    k = k.rotate_left(15);
    k = k.wrapping_mul(0x1b87_3593);
    h ^= k;
    h = h.rotate_left(13);
    h.wrapping_mul(5).wrapping_add(0xe654_6b64)
}

/// The programs' flow hash (`flow_hash` in lb_helpers.h), bit for bit: the
/// Maglev slot of a flow is `flow_hash(..) % table size`. Node ports hash
/// without the destination address.
pub fn flow_hash(key: &FlowKey, with_daddr: bool, seed: u32) -> u32 {
    let mut h = seed;
    h = mix(h, key.saddr);
    h = mix(h, if with_daddr { key.daddr } else { 0 });
    h = mix(h, (u32::from(key.sport) << 16) | u32::from(key.dport));
    h = mix(h, u32::from(key.proto));
    h ^= 16;
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^= h >> 16;
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::mem::{offset_of, size_of};

    fn c_layout() -> HashMap<(String, String), (usize, usize)> {
        include_str!(concat!(env!("OUT_DIR"), "/layout.txt"))
            .lines()
            .map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                (
                    (f[0].to_string(), f[1].to_string()),
                    (f[2].parse().unwrap(), f[3].parse().unwrap()),
                )
            })
            .collect()
    }

    macro_rules! check {
        ($c:expr, $cname:literal, $t:ty, [$($f:ident),*]) => {{
            assert_eq!($c[&($cname.to_string(), "-".to_string())].1, size_of::<$t>(), "size of {}", $cname);
            $(
                let (off, size) = $c[&($cname.to_string(), stringify!($f).to_string())];
                let v: $t = Default::default();
                assert_eq!(off, offset_of!($t, $f), "offset of {}.{}", $cname, stringify!($f));
                assert_eq!(size, std::mem::size_of_val(&v.$f), "size of {}.{}", $cname, stringify!($f));
            )*
        }};
    }

    #[test]
    fn rust_constants_match_the_c_ones() {
        let c = c_layout();
        let k = |name: &str| c[&("const".to_string(), name.to_string())].0;
        assert_eq!(k("LB_PROBE_PORT"), usize::from(LB_PROBE_PORT));
        assert_eq!(k("LB_PROBE_LEN"), LB_PROBE_LEN);
        assert_eq!(k("LB_PROBE_KIND"), usize::from(LB_PROBE_KIND));
        assert_eq!(k("LB_PROBE_ANSWER"), usize::from(LB_PROBE_ANSWER));
    }

    #[test]
    fn rust_mirrors_match_the_c_structs() {
        let c = c_layout();
        check!(c, "lb_svc_key", SvcKey, [addr, port, proto, scope]);
        check!(c, "lb_svc", Svc, [id, maglev_size, flags]);
        check!(c, "lb_backend", Backend, [addr, port, mac, state]);
        check!(
            c,
            "lb_flow_key",
            FlowKey,
            [saddr, daddr, sport, dport, proto]
        );
        check!(
            c,
            "lb_ct",
            Ct,
            [last_seen, backend_id, svc_id, state, nat_port]
        );
        check!(
            c,
            "lb_rev",
            Rev,
            [last_seen, addr, port, mac, client_addr, client_port]
        );
        check!(c, "lb_ret", Ret, [last_seen, mac, dsr_port]);
        check!(
            c,
            "lb_frag_key",
            FragKey,
            [saddr, daddr, ifindex, id, proto, hook]
        );
        check!(c, "lb_frag", Frag, [seen, sport, dport]);
        check!(c, "lb_dsr_key", DsrKey, [addr, port, proto]);
        check!(
            c,
            "lb_config",
            Config,
            [
                maglev_seed,
                lb_ifindex,
                underlay_ifindex,
                snat_addr,
                lb_mac,
                flags,
                vtep,
                timeout_ns,
                vxlan_port
            ]
        );
        check!(c, "ov_ep", OvEp, [vtep, ifindex, vni, mac]);
        check!(c, "ov_net", OvNet, [up_net, up_node, flags]);
        check!(
            c,
            "lb_counters",
            Counters,
            [packets, bytes, new_flows, drops]
        );
        // Every struct of the C layout is checked above.
        let structs: std::collections::BTreeSet<_> = c
            .keys()
            .map(|(s, _)| s.clone())
            .filter(|s| s != "const")
            .collect();
        assert_eq!(structs.len(), 14, "{structs:?}");
    }

    #[test]
    fn abi_version_is_a_hash() {
        assert_eq!(ABI_VERSION.len(), 16);
        assert!(ABI_VERSION.chars().all(|c| c.is_ascii_hexdigit()));
    }
}
