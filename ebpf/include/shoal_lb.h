/* SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0) */
/*
 * The structs the load balancer's programs share with shoald, defined once.
 * Every struct here is mirrored by a #[repr(C)] type in ebpf/src/lib.rs, and a
 * test there checks both agree on every size and offset (ebpf/layout.c prints
 * the C side at build time). Addresses and ports are in network byte order.
 * Change anything here and the ABI version (a hash of this file, which names
 * the pin directory) changes with it, so a new shoald never reads old maps.
 */
#ifndef SHOAL_LB_H
#define SHOAL_LB_H

#include <linux/types.h>

/* Default Maglev table size (a prime); each service's table is an inner array. */
#define LB_MAGLEV_DEFAULT 16381
#define LB_MAX_SERVICES 65536
#define LB_MAX_BACKENDS 262144
#define LB_CT_ENTRIES 262144
#define LB_RET_ENTRIES 262144
#define LB_MAX_LOCAL_ADDRS 64
#define LB_FRAG_ENTRIES 16384
#define OV_MAX_ENDPOINTS 65536
#define OV_MAX_NETWORKS 4096
#define OV_MAX_NODES 4096

/* What a frontend is. */
enum lb_scope {
	/* A service VIP on an overlay network, any port and protocol (key port 0, proto 0). */
	LB_SCOPE_VIP = 1,
	/* A port published in ingress mode: any local address of the node (key addr 0). */
	LB_SCOPE_NODEPORT = 2,
};

struct lb_svc_key {
	__u32 addr;  /* VIP, or 0 for node ports */
	__u16 port;  /* published port, or 0 for a VIP */
	__u8 proto;  /* IPPROTO_TCP/UDP, or 0 for a VIP */
	__u8 scope;  /* enum lb_scope */
};

struct lb_svc {
	__u32 id;          /* key of the Maglev table and of the counters */
	__u32 maglev_size; /* entries in the table; 0: no backend can take new flows */
	__u32 flags;       /* LB_SVC_F_* */
	__u32 pad;
};

/* Rewrite the client's address to the node's own (the backend sees the node,
 * not the client). Always done for clients on the node's loopback addresses,
 * which a backend cannot answer. */
#define LB_SVC_F_SNAT 1
/* lb_config.flags: SNAT every mesh flow entering this node. */
#define LB_CFG_F_SNAT 1
/* lb_config.flags: the overlay fast path is on (VXLAN in eBPF, see overlay.h). */
#define LB_CFG_F_OVERLAY 2
/* lb_config.flags: mesh flows entering here may be answered by the backend's
 * node directly (direct server return), from this node's address. */
#define LB_CFG_F_DSR 4

enum lb_backend_state {
	/* Takes new flows. */
	LB_BACKEND_ACTIVE = 0,
	/* Shutting down: keeps its flows, gets no new ones. */
	LB_BACKEND_TERMINATING = 1,
	/* Its node stopped answering: its flows are picked again. */
	LB_BACKEND_DOWN = 2,
};

struct lb_backend {
	__u32 addr;    /* task address on the frontend's network */
	__u16 port;    /* target port; 0 keeps the destination port (VIPs) */
	__u8 mac[6];   /* the task's MAC on that network */
	__u8 state;    /* enum lb_backend_state */
	__u8 pad[3];
};

/* A flow as its first packet came in (before any rewrite). */
struct lb_flow_key {
	__u32 saddr;
	__u32 daddr;
	__u16 sport;
	__u16 dport;
	__u8 proto;
	__u8 pad[3];
};

/* An IPv4 datagram in fragments, as one hook sees it (its addresses before
 * any rewrite there): later fragments carry no ports, so they take their first
 * fragment's (lb_frags; the sender's IP id names the datagram). The hook keeps
 * what one program records from answering another (a packet from the
 * underlay speaks only for the underlay's plain traffic, not for decapsulated
 * replies); for what tasks send, the interface too (a task speaks only for
 * its own port; 0 elsewhere). */
struct lb_frag_key {
	__u32 saddr;
	__u32 daddr;
	__u32 ifindex;
	__u16 id;
	__u8 proto;
	__u8 hook; /* LB_FRAG_HOOK_* (lb_helpers.h) */
};

struct lb_frag {
	__u64 seen; /* bpf_ktime_get_ns() of the first fragment */
	__u16 sport;
	__u16 dport;
	__u32 pad;
};

enum lb_ct_state {
	LB_CT_SYN = 0,         /* TCP opening */
	LB_CT_ESTABLISHED = 1, /* TCP past the handshake */
	LB_CT_CLOSING = 2,     /* TCP FIN or RST seen */
	LB_CT_UDP = 3,         /* any UDP flow */
	LB_CT_STATES = 4,
};

/* Forward connection tracking: which backend a flow went to. */
struct lb_ct {
	__u64 last_seen; /* bpf_ktime_get_ns() of the last packet */
	__u32 backend_id;
	__u32 svc_id;
	__u8 state;      /* enum lb_ct_state */
	__u8 pad;
	__u16 nat_port;  /* source port after SNAT (0: not SNATed) */
	__u8 pad2[4];
};

/* Reverse NAT, keyed by the reply's tuple (saddr = backend, daddr = client,
 * or the node's address for an SNATed flow): what the reply's source, and for
 * an SNATed flow its destination, must become again. */
struct lb_rev {
	__u64 last_seen;
	__u32 addr;        /* the frontend address the client used */
	__u16 port;        /* and its port */
	__u8 mac[6];       /* source MAC the client side expects (VIP flows) */
	__u32 client_addr; /* SNATed flows: the client's own address; else 0 */
	__u16 client_port; /* and its port */
	__u16 pad;
	__u32 ifindex;     /* mesh flows: the interface the client's requests came
			    * in by, where replies leave (0: the underlay) */
};

/* At a backend's node, for flows that came through another node's mesh: the
 * ingress node's load-balancer MAC that replies go back to. Keyed by the
 * reply's tuple (saddr = task, daddr = client). */
struct lb_ret {
	__u64 last_seen;
	__u8 mac[6];
	/* Direct server return: the port the client used (published, network
	 * order), its address being the entry node's (in mac); replies leave
	 * from here. 0: replies go back through the entry node. */
	__u16 dsr_port;
};

/* A backend of a published port, as its node sees a mesh flow arrive (task
 * address and target port, protocol): which published port the flow came to,
 * when only one does (lb_dsr, for direct server return). */
struct lb_dsr_key {
	__u32 addr;
	__u16 port;
	__u8 proto;
	__u8 pad;
};

/* Per node, set by shoald (array of one). */
struct lb_config {
	__u32 maglev_seed;
	__u32 lb_ifindex;       /* host end of the veth into the ingress network */
	__u32 underlay_ifindex; /* where VXLAN leaves (and replies from no other interface's address) */
	__u32 snat_addr;        /* the node's address SNATed flows come from */
	__u8 lb_mac[6];         /* this node's load-balancer MAC */
	__u8 pad[2];
	__u32 flags;            /* LB_CFG_F_* */
	__u32 vtep;             /* this node's VTEP (underlay) address */
	/* Idle timeouts in ns, indexed by enum lb_ct_state. */
	__u64 timeout_ns[LB_CT_STATES];
	__u16 vxlan_port;       /* the swarm's VXLAN UDP port */
	__u8 pad3[6];
};

/* An overlay endpoint (a task's address on an overlay network), keyed by its
 * IPv4 address. Subnets of the swarm's networks never overlap, and shoald
 * leaves out an address two networks claim, so the address alone names it. */
struct ov_ep {
	__u32 vtep;    /* on another node: that node's VTEP address; 0: on this node */
	__u32 ifindex; /* on this node: its port's host end, in the network's namespace */
	__u32 vni;
	__u8 mac[6];
	__u8 pad[2];
};

/* An overlay network on this node, keyed by VNI: its uplink, the veth pair
 * between the node's namespace and the network's that the fast path uses. */
struct ov_net {
	__u32 up_net;  /* the uplink's end in the network's namespace */
	__u32 up_node; /* its end in the node's namespace */
	__u32 flags;   /* OV_NET_F_* */
	__u32 pad;
};

/* ov_net.flags: the ingress network, the only one mesh flows cross. */
#define OV_NET_F_INGRESS 1

/* Fast-path counters (per CPU), indexed by enum ov_stat. */
enum ov_stat {
	OV_TX = 0,       /* frames a task sent, encapsulated here */
	OV_TX_MESH = 1,  /* mesh requests encapsulated at the entry node */
	OV_RX = 2,       /* frames decapsulated here into a task */
	OV_RX_REPLY = 3, /* mesh replies decapsulated here, sent to the client */
	OV_TX_DSR = 4,   /* mesh replies sent from here straight to the client */
	OV_LOCAL = 5,    /* mesh packets between this node and a local task (both ways) */
	OV_FRAG_NEEDED = 6, /* mesh requests too large to encapsulate: ICMP "fragmentation needed" sent */
	OV_SPLIT = 7,    /* mesh request fragments too large to encapsulate: split in two */
	OV_STATS = 8,
};

/* Counters per service (per CPU; summed by shoald). */
struct lb_counters {
	__u64 packets;
	__u64 bytes;
	__u64 new_flows;
	__u64 drops;
};

#endif
