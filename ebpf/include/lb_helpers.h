/* SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0) */
/*
 * Parsing, NAT, flow hashing, Maglev choice and connection tracking, shared by
 * the programs. Everything is __always_inline: each program is one function to
 * the verifier.
 *
 * Malformed input is never an error here: a packet that is not IPv4 TCP/UDP,
 * has a bad IHL or is shorter than its headers is "not ours" and goes on
 * untouched to the kernel, which drops what is really broken.
 *
 * Fragments: a datagram's first fragment is parsed (and NATed) as a whole
 * datagram would be, and its ports are recorded (lb_frags, by addresses, IP id
 * and protocol); each later fragment, which has no L4 header, takes the ports
 * of its first and so the same flow, backend and path, with only its IP
 * header rewritten (the L4 checksum, in the first fragment, covers the whole
 * datagram and is fixed there). Each hook keeps its own records, per
 * interface (LB_FRAG_HOOK_*), for LB_FRAG_TIMEOUT_NS. A later fragment that
 * comes before its first is not ours: the kernel gets it (and the datagram is
 * lost, as it is to any middlebox that tracks fragments without reassembling
 * them).
 */
#ifndef SHOAL_LB_HELPERS_H
#define SHOAL_LB_HELPERS_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/pkt_cls.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>
#include "maps.h"

#define IP_DF 0x4000
#define IP_MF 0x2000
#define IP_OFFSET 0x1FFF
#define TCP_FLAG_FIN 0x01
#define TCP_FLAG_SYN 0x02
#define TCP_FLAG_RST 0x04
#define TCP_FLAG_ACK 0x10

/* The MAC prefix of the nodes' load-balancer ports: 02:53 ("S") then the node's
 * underlay address. A frame from such a MAC came through a node's mesh. */
#define LB_MAC0 0x02
#define LB_MAC1 0x53
/* The same node's MAC as the source of a mesh request that may be answered
 * directly (direct server return): 02:44 ("D") then the entry node's address. */
#define LB_DSR_MAC1 0x44

/* Which program parsed a packet (struct lb_frag_key.hook). */
#define LB_FRAG_HOOK_NODE_IN 1  /* lb_node_ingress, a packet as it came */
#define LB_FRAG_HOOK_REPLY 2    /* lb_reply: a mesh reply on its way to the client */
#define LB_FRAG_HOOK_TASK_OUT 3 /* lb_task_out: what a task sent */
#define LB_FRAG_HOOK_TASK_IN 4  /* task_rx: what a task receives */
/* A later fragment follows a first one seen at most this long ago (the
 * fragments of one datagram come together; an older record is of another
 * datagram that had the same IP id). */
#define LB_FRAG_TIMEOUT_NS 5000000000ULL

/* struct pkt.frag */
#define PKT_WHOLE 0
#define PKT_FRAG_FIRST 1 /* more fragments follow; this one has the L4 header */
#define PKT_FRAG_LATER 2 /* no L4 header: ports from the first fragment */

struct pkt {
	struct lb_flow_key key;
	__u32 l4off;
	__u32 len;
	__u8 tcp_flags;
	__u8 frag; /* PKT_* */
	__u8 df;   /* don't fragment */
};

/* Fills `p` from an Ethernet + IPv4 + TCP/UDP packet, at `hook`; non-zero:
 * not ours. */
static __always_inline int parse(struct __sk_buff *skb, struct pkt *p, __u8 hook)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip;
	__u16 ports[2];
	__u32 l4len;

	if ((void *)(eth + 1) > end || eth->h_proto != bpf_htons(ETH_P_IP))
		return -1;
	ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > end)
		return -1;
	if (ip->version != 4 || ip->ihl < 5)
		return -1;
	if (ip->protocol != IPPROTO_TCP && ip->protocol != IPPROTO_UDP)
		return -1;
	p->l4off = ETH_HLEN + ip->ihl * 4;
	p->df = !!(ip->frag_off & bpf_htons(IP_DF));
	p->frag = !(ip->frag_off & bpf_htons(IP_MF | IP_OFFSET)) ? PKT_WHOLE
		  : (ip->frag_off & bpf_htons(IP_OFFSET))      ? PKT_FRAG_LATER
								: PKT_FRAG_FIRST;
	struct lb_frag_key fk = {
		.saddr = ip->saddr,
		.daddr = ip->daddr,
		/* The interface only where it isolates senders: a task speaks
		 * for its own port; elsewhere one datagram's fragments may come
		 * by two ways (the fast path and the kernel's). */
		.ifindex = hook == LB_FRAG_HOOK_TASK_OUT ? skb->ifindex : 0,
		.id = ip->id,
		.proto = ip->protocol,
		.hook = hook,
	};
	if (p->frag == PKT_FRAG_LATER) {
		/* Some payload after the header, in the datagram and the frame. */
		if (bpf_ntohs(ip->tot_len) <= ip->ihl * 4 || skb->len <= p->l4off)
			return -1;
		struct lb_frag *first = bpf_map_lookup_elem(&lb_frags, &fk);
		if (!first || (__s64)(bpf_ktime_get_ns() - first->seen) > (__s64)LB_FRAG_TIMEOUT_NS)
			return -1;
		p->key.saddr = fk.saddr;
		p->key.daddr = fk.daddr;
		p->key.proto = fk.proto;
		p->key.pad[0] = p->key.pad[1] = p->key.pad[2] = 0;
		p->key.sport = first->sport;
		p->key.dport = first->dport;
		p->len = skb->len;
		p->tcp_flags = 0;
		return 0;
	}
	l4len = ip->protocol == IPPROTO_TCP ? sizeof(struct tcphdr) : sizeof(struct udphdr);
	/* The whole L4 header must be there, in the datagram as well as in the
	 * frame (which may be padded): the checksum is rewritten in it. */
	if (bpf_ntohs(ip->tot_len) < ip->ihl * 4 + l4len)
		return -1;
	if (skb->len < p->l4off + l4len)
		return -1;
	p->key.saddr = ip->saddr;
	p->key.daddr = ip->daddr;
	p->key.proto = ip->protocol;
	p->key.pad[0] = p->key.pad[1] = p->key.pad[2] = 0;
	p->len = skb->len;
	if (bpf_skb_load_bytes(skb, p->l4off, ports, sizeof(ports)))
		return -1;
	p->key.sport = ports[0];
	p->key.dport = ports[1];
	p->tcp_flags = 0;
	if (ip->protocol == IPPROTO_TCP &&
	    bpf_skb_load_bytes(skb, p->l4off + 13, &p->tcp_flags, 1))
		return -1;
	if (p->frag == PKT_FRAG_FIRST) {
		struct lb_frag ports = {
			.seen = bpf_ktime_get_ns(),
			.sport = p->key.sport,
			.dport = p->key.dport,
		};
		bpf_map_update_elem(&lb_frags, &fk, &ports, BPF_ANY);
	}
	return 0;
}

/* The one's complement of a checksum's 32-bit partial sum, folded. */
static __always_inline __u16 csum_fold(__u32 sum)
{
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)~sum;
}

/* The IPv4 header checksum of `ip` (no options) with its check field zero; 0
 * for a header with a right one. */
static __always_inline __u16 ip_csum(const struct iphdr *ip)
{
	return csum_fold(bpf_csum_diff(0, 0, (__be32 *)ip, sizeof(*ip), 0));
}

static __always_inline struct lb_config *config(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&lb_config, &zero);
}

/* Rewrites the source (dst == 0) or destination (dst == 1) address and port,
 * fixing the IP checksum and the L4 checksum (pseudo-header included). A UDP
 * checksum of 0 (none) stays 0. A later fragment has only its address
 * rewritten (its ports and checksum are in the first fragment). */
static __always_inline int nat(struct __sk_buff *skb, const struct pkt *p, int dst,
			       __u32 new_addr, __u16 new_port)
{
	__u32 old_addr = dst ? p->key.daddr : p->key.saddr;
	__u16 old_port = dst ? p->key.dport : p->key.sport;
	__u32 addr_off = ETH_HLEN + (dst ? offsetof(struct iphdr, daddr) : offsetof(struct iphdr, saddr));
	__u32 port_off = p->l4off + (dst ? 2 : 0);
	__u32 csum_off = p->l4off + (p->key.proto == IPPROTO_TCP ? offsetof(struct tcphdr, check)
								  : offsetof(struct udphdr, check));
	__u64 mangled = p->key.proto == IPPROTO_UDP ? BPF_F_MARK_MANGLED_0 : 0;

	int l4 = p->frag != PKT_FRAG_LATER;

	if (new_addr != old_addr) {
		if (l4 && bpf_l4_csum_replace(skb, csum_off, old_addr, new_addr,
					      BPF_F_PSEUDO_HDR | mangled | sizeof(new_addr)))
			return -1;
		if (bpf_l3_csum_replace(skb, ETH_HLEN + offsetof(struct iphdr, check), old_addr,
					new_addr, sizeof(new_addr)))
			return -1;
		if (bpf_skb_store_bytes(skb, addr_off, &new_addr, sizeof(new_addr), 0))
			return -1;
	}
	if (l4 && new_port != old_port) {
		if (bpf_l4_csum_replace(skb, csum_off, old_port, new_port, mangled | sizeof(new_port)))
			return -1;
		if (bpf_skb_store_bytes(skb, port_off, &new_port, sizeof(new_port), 0))
			return -1;
	}
	return 0;
}

static __always_inline int set_macs(struct __sk_buff *skb, const __u8 *dst, const __u8 *src)
{
	if (dst && bpf_skb_store_bytes(skb, 0, dst, ETH_ALEN, 0))
		return -1;
	if (src && bpf_skb_store_bytes(skb, ETH_ALEN, src, ETH_ALEN, 0))
		return -1;
	return 0;
}

/* murmur3's 32-bit mixing; mirrored by shoal_ebpf::flow_hash (tests). */
static __always_inline __u32 mix(__u32 h, __u32 k)
{
	k *= 0xcc9e2d51;
	k = (k << 15) | (k >> 17);
	k *= 0x1b873593;
	h ^= k;
	h = (h << 13) | (h >> 19);
	return h * 5 + 0xe6546b64;
}

/* The flow's hash: the same on every node for the same flow. Node ports leave
 * the destination address out (it is whichever node the client reached), so a
 * client's flow maps to the same backend through any node. */
static __always_inline __u32 flow_hash(const struct lb_flow_key *k, int with_daddr, __u32 seed)
{
	__u32 h = seed;
	h = mix(h, k->saddr);
	h = mix(h, with_daddr ? k->daddr : 0);
	h = mix(h, ((__u32)k->sport << 16) | k->dport);
	h = mix(h, k->proto);
	h ^= 16;
	h ^= h >> 16;
	h *= 0x85ebca6b;
	h ^= h >> 13;
	h *= 0xc2b2ae35;
	h ^= h >> 16;
	return h;
}

static __always_inline __u8 ct_state(const struct pkt *p, __u8 old, int is_new)
{
	if (p->key.proto != IPPROTO_TCP)
		return LB_CT_UDP;
	/* A later fragment has no flags: it says nothing of the state. */
	if (p->frag == PKT_FRAG_LATER)
		return is_new ? LB_CT_ESTABLISHED : old;
	if (p->tcp_flags & (TCP_FLAG_FIN | TCP_FLAG_RST))
		return LB_CT_CLOSING;
	if (!is_new && old == LB_CT_CLOSING)
		return LB_CT_CLOSING;
	if ((p->tcp_flags & TCP_FLAG_SYN) && !(p->tcp_flags & TCP_FLAG_ACK))
		return is_new ? LB_CT_SYN : old;
	return LB_CT_ESTABLISHED;
}

static __always_inline void count(__u32 backend_id, const struct pkt *p, int is_new)
{
	struct lb_counters *c = bpf_map_lookup_elem(&lb_backend_stats, &backend_id);
	if (c) {
		c->packets++;
		c->bytes += p->len;
		c->new_flows += is_new;
	}
}

static __always_inline void count_drop(__u32 svc_id)
{
	struct lb_counters *c = bpf_map_lookup_elem(&lb_svc_stats, &svc_id);
	if (c)
		c->drops++;
}

/* Refresh an entry's clock at most every this many ns (fewer writes to a shared line). */
#define LB_CT_REFRESH_NS 1000000000ULL

/* What select_backend found besides the backend. */
struct choice {
	__u32 backend_id;
	int is_new;     /* no live conntrack entry: chosen now */
	int refreshed;  /* an existing entry's clock was moved on time (about once a second) */
	__u16 nat_port; /* the flow's SNAT source port, 0 if none */
};

/*
 * The backend of the flow `p` to `svc`: its conntrack entry's, while the entry
 * is fresh and its backend still exists and is not down; else Maglev's choice
 * among the active backends, recorded. c->is_new says which. NULL: no backend
 * (the packet is dropped and counted). A SYN on the tuple of a closing flow
 * (the client reused its port) opens a new connection: it is chosen afresh,
 * so a terminating backend gets no new connection that way, and the new one
 * is not tracked with the closing timeout.
 */
static __always_inline struct lb_backend *select_backend(const struct pkt *p, const struct lb_svc *svc,
							  const struct lb_config *cfg, int with_daddr,
							  struct choice *c)
{
	__u64 now = bpf_ktime_get_ns();
	struct lb_ct *ct = bpf_map_lookup_elem(&lb_ct, &p->key);
	struct lb_backend *be;
	void *table;
	__u32 *id, idx;

	if (ct && ct->state == LB_CT_CLOSING &&
	    (p->tcp_flags & (TCP_FLAG_SYN | TCP_FLAG_ACK)) == TCP_FLAG_SYN)
		ct = NULL;
	if (ct && ct->svc_id == svc->id && ct->state < LB_CT_STATES &&
	    now - ct->last_seen < cfg->timeout_ns[ct->state & 3]) {
		be = bpf_map_lookup_elem(&lb_backends, &ct->backend_id);
		if (be && be->state != LB_BACKEND_DOWN) {
			__u8 state = ct_state(p, ct->state, 0);
			/* The clock moves at most once a second (fewer writes to a
			 * shared line), and a state change moves it too; only the
			 * former has the caller rewrite the flow's reverse entry
			 * (against its eviction): a TCP handshake and close need
			 * no map updates beyond the first packet's. */
			c->refreshed = now - ct->last_seen > LB_CT_REFRESH_NS;
			if (state != ct->state || c->refreshed) {
				ct->state = state;
				ct->last_seen = now;
			}
			c->backend_id = ct->backend_id;
			c->nat_port = ct->nat_port;
			c->is_new = 0;
			return be;
		}
	}
	if (svc->maglev_size == 0)
		return NULL;
	table = bpf_map_lookup_elem(&lb_maglev, &svc->id);
	if (!table)
		return NULL;
	idx = flow_hash(&p->key, with_daddr, cfg->maglev_seed) % svc->maglev_size;
	id = bpf_map_lookup_elem(table, &idx);
	if (!id)
		return NULL;
	be = bpf_map_lookup_elem(&lb_backends, id);
	if (!be || be->state != LB_BACKEND_ACTIVE)
		return NULL;
	struct lb_ct entry = {
		.last_seen = now,
		.backend_id = *id,
		.svc_id = svc->id,
		.state = ct_state(p, 0, 1),
	};
	bpf_map_update_elem(&lb_ct, &p->key, &entry, BPF_ANY);
	c->backend_id = *id;
	c->is_new = 1;
	c->refreshed = 0;
	c->nat_port = 0;
	return be;
}

static __always_inline int is_loopback(__u32 addr)
{
	return (bpf_ntohl(addr) >> 24) == 127;
}

/* Tries for a free SNAT source port before giving up on a new flow. */
#define LB_SNAT_TRIES 8

/*
 * The source port a new flow from `p` SNATed to (snat_addr, port) takes toward
 * (baddr, bport): the client's own port when no other flow holds that reply
 * tuple, else one derived from the flow's hash. Recorded in the flow's
 * conntrack entry. 0: none free (the flow is dropped).
 */
static __always_inline __u16 snat_port(const struct pkt *p, __u32 snat_addr, __u32 baddr, __u16 bport,
				       __u32 seed)
{
	struct lb_flow_key rk = {
		.saddr = baddr,
		.daddr = snat_addr,
		.sport = bport,
		.proto = p->key.proto,
	};
	__u32 h = flow_hash(&p->key, 1, seed);
	__u16 port = 0;

	for (int i = 0; i < LB_SNAT_TRIES; i++) {
		__u16 candidate = i == 0 ? p->key.sport : bpf_htons(1024 + (h + i * 40503) % 64511);
		rk.dport = candidate;
		struct lb_rev *held = bpf_map_lookup_elem(&lb_rev, &rk);
		if (!held || (held->client_addr == p->key.saddr && held->client_port == p->key.sport)) {
			port = candidate;
			break;
		}
	}
	if (port) {
		struct lb_ct *ct = bpf_map_lookup_elem(&lb_ct, &p->key);
		if (ct)
			ct->nat_port = port;
	}
	return port;
}

/* The reply tuple of `p` once its destination became (addr, port). */
static __always_inline struct lb_flow_key reply_key(const struct pkt *p, __u32 addr, __u16 port)
{
	struct lb_flow_key k = {
		.saddr = addr,
		.daddr = p->key.saddr,
		.sport = port,
		.dport = p->key.sport,
		.proto = p->key.proto,
	};
	return k;
}

/*
 * The reverse NAT of the reply `p` of a mesh flow: its source becomes again the
 * node address and published port the client used (and, for an SNATed flow,
 * its destination the client's own address and port). 0, with the client's
 * address in *client; 1: no such flow (nothing changed); -1: a rewrite failed.
 */
static __always_inline int lb_reply_nat(struct __sk_buff *skb, const struct pkt *p, __u32 *client,
					__u32 *ifindex)
{
	struct lb_rev *rev = bpf_map_lookup_elem(&lb_rev, &p->key);

	if (!rev)
		return 1;
	*ifindex = rev->ifindex;
	__u32 addr = rev->addr;
	__u16 port = rev->port;
	int snatted = rev->client_addr != 0;
	__u16 client_port = snatted ? rev->client_port : p->key.dport;
	*client = snatted ? rev->client_addr : p->key.daddr;
	if (nat(skb, p, 0, addr, port))
		return -1;
	if (snatted && nat(skb, p, 1, *client, client_port))
		return -1;
	return 0;
}

/* lo's index in every network namespace. */
#define LB_LOOPBACK_IFINDEX 1

/* A reverse-NATed reply on to its client: to a client on this node through lo
 * (as if it came in there), else out of `ifindex`, the interface the client's
 * requests came in by (on a host with a public interface beside the swarm's,
 * replies leave by the one their client used; 0: the underlay), by the route
 * to the client there (the kernel resolves the next hop). */
static __always_inline int lb_reply_out(struct __sk_buff *skb, const struct lb_config *cfg,
					__u32 client, __u32 ifindex)
{
	if (bpf_map_lookup_elem(&lb_local_addrs, &client)) {
		__u8 zero[ETH_ALEN] = {};
		if (set_macs(skb, zero, zero))
			return TC_ACT_SHOT;
		return bpf_redirect(LB_LOOPBACK_IFINDEX, BPF_F_INGRESS);
	}
	if (!ifindex || ifindex == LB_LOOPBACK_IFINDEX)
		ifindex = cfg->underlay_ifindex;
	return bpf_redirect_neigh(ifindex, NULL, 0, 0);
}

/* The ICMP errors that quote a datagram (linux/icmp.h would pull in libc). */
#define ICMP_DEST_UNREACH 3
#define ICMP_TIME_EXCEEDED 11
#define ICMP_PARAMETERPROB 12

/* An ICMP error as far as it is looked at: its IPv4 header, its own header,
 * and the quoted datagram's IPv4 header and first 8 bytes of L4 (all RFC 792
 * guarantees). No IP options either side. */
struct icmp_err {
	struct iphdr ip;
	__u8 type;
	__u8 code;
	__u16 check;
	__u32 rest;      /* unused, or the next hop's MTU, or a pointer */
	struct iphdr in; /* the quoted datagram's header */
	__u16 sport;     /* its ports */
	__u16 dport;
	__u16 l4w2;      /* UDP: length; TCP: sequence number, high half */
	__u16 l4w3;      /* UDP: checksum; TCP: sequence number, low half */
};

#define ICMP_ERR_L4 (ETH_HLEN + 2 * sizeof(struct iphdr) + 8) /* the quoted L4 header */

/* Loads the ICMP error in skb (destination unreachable, time exceeded,
 * parameter problem) that quotes a TCP or UDP datagram's header and ports,
 * with no IP options and not from a later fragment. 0: it is one. */
static __always_inline int icmp_err_load(struct __sk_buff *skb, struct icmp_err *e)
{
	if (skb->protocol != bpf_htons(ETH_P_IP) ||
	    bpf_skb_load_bytes(skb, ETH_HLEN, e, sizeof(*e)))
		return -1;
	if (e->ip.version != 4 || e->ip.ihl != 5 || e->ip.protocol != IPPROTO_ICMP ||
	    (e->ip.frag_off & bpf_htons(IP_MF | IP_OFFSET)))
		return -1;
	__u32 tot = bpf_ntohs(e->ip.tot_len);
	if (tot < sizeof(*e) || ETH_HLEN + tot > skb->len)
		return -1;
	if (e->type != ICMP_DEST_UNREACH && e->type != ICMP_TIME_EXCEEDED &&
	    e->type != ICMP_PARAMETERPROB)
		return -1;
	if (e->in.version != 4 || e->in.ihl != 5 ||
	    (e->in.protocol != IPPROTO_TCP && e->in.protocol != IPPROTO_UDP) ||
	    (e->in.frag_off & bpf_htons(IP_OFFSET)))
		return -1;
	return 0;
}

/* The quoted datagram's tuple with its ends swapped: the reply tuple of a
 * quoted request, the request tuple of a quoted reply. */
static __always_inline struct lb_flow_key icmp_err_swapped(const struct icmp_err *e)
{
	struct lb_flow_key k = {
		.saddr = e->in.daddr,
		.daddr = e->in.saddr,
		.sport = e->dport,
		.dport = e->sport,
		.proto = e->in.protocol,
	};
	return k;
}

/*
 * Writes the ICMP error `e` into skb, which holds `old`: its addresses and the
 * quote's addresses and ports as the caller set them in `e`, every checksum
 * made right (the quote's IPv4 header; its L4 checksum, which covers the
 * addresses and ports, when it is in the quote, as netfilter's NAT does; the
 * ICMP checksum over the quote; the IPv4 header). 0: done; 1: nothing
 * changed (the quote could not be read); -1: changed half-way (drop it).
 */
static __always_inline int icmp_err_rewrite(struct __sk_buff *skb, const struct icmp_err *old,
					    struct icmp_err *e)
{
	__u32 tot = bpf_ntohs(old->ip.tot_len);
	e->in.check = 0;
	e->in.check = ip_csum(&e->in);
	__u32 was[3] = { old->in.saddr, old->in.daddr, ((__u32)old->sport << 16) | old->dport };
	__u32 now[3] = { e->in.saddr, e->in.daddr, ((__u32)e->sport << 16) | e->dport };
	/* TCP's checksum, when quoted (beyond the 8 bytes); a word for
	 * bpf_csum_diff, its second half zero. */
	union {
		__u32 word;
		__u16 half[2];
	} tcp_was = {}, tcp_now = {};
	int tcp_check = 0;
	if (e->in.protocol == IPPROTO_UDP) {
		/* RFC 1624: HC' = ~(~HC + ~m + m'); a UDP checksum 0 means none. */
		if (e->l4w3) {
			__u16 c = csum_fold(
				bpf_csum_diff(was, sizeof(was), now, sizeof(now), (__u16)~e->l4w3));
			e->l4w3 = c ? c : 0xffff;
		}
	} else if (ETH_HLEN + tot >= ICMP_ERR_L4 + 18) {
		if (bpf_skb_load_bytes(skb, ICMP_ERR_L4 + 16, &tcp_was.half[0], 2))
			return 1;
		tcp_now = tcp_was;
		tcp_now.half[0] = csum_fold(
			bpf_csum_diff(was, sizeof(was), now, sizeof(now), (__u16)~tcp_was.half[0]));
		tcp_check = 1;
	}
	/* The ICMP checksum covers the whole quote. */
	__s64 sum = bpf_csum_diff((__u32 *)&old->in, 28, (__u32 *)&e->in, 28, (__u16)~e->check);
	if (tcp_check)
		sum = bpf_csum_diff(&tcp_was.word, 4, &tcp_now.word, 4, (__u32)sum);
	e->check = csum_fold((__u32)sum);
	e->ip.check = 0;
	e->ip.check = ip_csum(&e->ip);
	if (bpf_skb_store_bytes(skb, ETH_HLEN, e, sizeof(*e), 0))
		return -1;
	if (tcp_check && bpf_skb_store_bytes(skb, ICMP_ERR_L4 + 16, &tcp_now.half[0], 2, 0))
		return -1;
	return 0;
}

/*
 * An ICMP error a backend sent about a mesh flow's request (a UDP port it does
 * not listen on, say), on its way back through the entry node (lb_reply): from
 * the node address the client reached, quoting the request as the client sent
 * it (to that address and the published port; for a SNATed flow, addressed to
 * the client and quoting its own address and port). A quote of no known flow
 * is dropped, as any reply of no known flow is.
 */
static __always_inline int lb_icmp_reply(struct __sk_buff *skb, const struct lb_config *cfg)
{
	struct icmp_err e, old;

	if (icmp_err_load(skb, &e) || e.in.daddr != e.ip.saddr)
		return TC_ACT_SHOT;
	/* The flow's reply tuple: the quote is its request, as the backend got it. */
	struct lb_flow_key rk = icmp_err_swapped(&e);
	struct lb_rev *rev = bpf_map_lookup_elem(&lb_rev, &rk);
	if (!rev)
		return TC_ACT_SHOT;
	__u32 ifindex = rev->ifindex;
	old = e;
	e.ip.saddr = rev->addr;
	e.in.daddr = rev->addr;
	e.dport = rev->port;
	if (rev->client_addr) {
		e.ip.daddr = rev->client_addr;
		e.in.saddr = rev->client_addr;
		e.sport = rev->client_port;
	}
	if (icmp_err_rewrite(skb, &old, &e))
		return TC_ACT_SHOT;
	return lb_reply_out(skb, cfg, e.ip.daddr, ifindex);
}

/*
 * A reply of a mesh flow on its way back to the client (lb_node_reply, or a
 * reply the overlay's fast path decapsulated): its source becomes again the
 * node address and published port the client used (and, for an SNATed flow,
 * its destination the client's own address and port), and it leaves by the
 * route to the client (the kernel resolves the next hop), or, for a client on
 * this node, through lo. A packet of no known flow is dropped.
 */
static __always_inline int lb_reply(struct __sk_buff *skb, const struct lb_config *cfg)
{
	struct pkt p;
	__u32 client, ifindex;

	if (parse(skb, &p, LB_FRAG_HOOK_REPLY))
		return lb_icmp_reply(skb, cfg);
	int nat_result = lb_reply_nat(skb, &p, &client, &ifindex);
	if (nat_result)
		return TC_ACT_SHOT;
	return lb_reply_out(skb, cfg, client, ifindex);
}

/*
 * An ICMP error a VIP flow's backend sent about the task's request (port
 * unreachable for a UDP port nothing listens on, say), on its way into the
 * task: it comes from the VIP, quoting the request as the task sent it (to
 * the VIP and port), as the flow's replies do, so the task's socket, which
 * talks to the VIP, hears it. TC_ACT_OK (changed or not), or TC_ACT_SHOT
 * when a rewrite failed half-way.
 */
static __always_inline int lb_icmp_vip(struct __sk_buff *skb)
{
	struct icmp_err e, old;

	if (icmp_err_load(skb, &e) || e.in.daddr != e.ip.saddr)
		return TC_ACT_OK;
	struct lb_flow_key rk = icmp_err_swapped(&e);
	struct lb_rev *rev = bpf_map_lookup_elem(&lb_rev, &rk);
	/* Only a VIP flow's entry (a mesh flow's has no VIP MAC). */
	if (!rev || rev->client_addr || rev->mac[0] != 0x02 || rev->mac[1] != 0x42)
		return TC_ACT_OK;
	__u8 mac[ETH_ALEN];
	__builtin_memcpy(mac, rev->mac, ETH_ALEN);
	old = e;
	e.ip.saddr = rev->addr;
	e.in.daddr = rev->addr;
	e.dport = rev->port;
	int err = icmp_err_rewrite(skb, &old, &e);
	if (err)
		return err > 0 ? TC_ACT_OK : TC_ACT_SHOT;
	return set_macs(skb, NULL, mac) ? TC_ACT_SHOT : TC_ACT_OK;
}

/*
 * What a task receives, on its way in (lb_task_in on its bridge port, or the
 * overlay's fast path before it hands the frame to the task):
 * - an ICMP error about a VIP flow's request gets the VIP back (lb_icmp_vip);
 * - a reply from a backend of a VIP flow this task opened gets its source
 *   back: the VIP and the port the task connected to;
 * - a packet of a mesh flow (from some node's load-balancer MAC) records that
 *   MAC for the flow's replies (see lb_task_out), and, with `dsr_ok` (the
 *   fast path checked who marked it: ov_in), whether it asked for direct
 *   server return.
 * TC_ACT_OK, or TC_ACT_SHOT when a rewrite failed.
 */
static __always_inline int task_rx(struct __sk_buff *skb, int dsr_ok)
{
	struct lb_rev *rev;
	struct pkt p;

	if (parse(skb, &p, LB_FRAG_HOOK_TASK_IN))
		return lb_icmp_vip(skb);
	rev = bpf_map_lookup_elem(&lb_rev, &p.key);
	if (rev) {
		__u32 addr = rev->addr;
		__u16 port = rev->port;
		__u8 mac[ETH_ALEN];
		__builtin_memcpy(mac, rev->mac, ETH_ALEN);
		if (nat(skb, &p, 0, addr, port) || set_macs(skb, NULL, mac))
			return TC_ACT_SHOT;
		return TC_ACT_OK;
	}
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > end)
		return TC_ACT_OK;
	if (eth->h_source[0] != LB_MAC0 ||
	    (eth->h_source[1] != LB_MAC1 && eth->h_source[1] != LB_DSR_MAC1))
		return TC_ACT_OK;
	struct lb_flow_key rk = {
		.saddr = p.key.daddr,
		.daddr = p.key.saddr,
		.sport = p.key.dport,
		.dport = p.key.sport,
		.proto = p.key.proto,
	};
	struct lb_ret *ret = bpf_map_lookup_elem(&lb_ret, &rk);
	__u64 now = bpf_ktime_get_ns();
	/* The stored MAC is always the entry node's load-balancer MAC (where the
	 * bridge and the kernel path send replies); whether it asked for direct
	 * server return is dsr_port. */
	if (ret && __builtin_memcmp(&ret->mac[2], &eth->h_source[2], 4) == 0 &&
	    now - ret->last_seen < LB_CT_REFRESH_NS)
		return TC_ACT_OK;
	struct lb_ret entry = { .last_seen = now };
	__builtin_memcpy(entry.mac, eth->h_source, ETH_ALEN);
	entry.mac[1] = LB_MAC1;
	if (dsr_ok && eth->h_source[1] == LB_DSR_MAC1) {
		struct lb_dsr_key dk = {
			.addr = p.key.daddr,
			.port = p.key.dport,
			.proto = p.key.proto,
		};
		__u32 *published = bpf_map_lookup_elem(&lb_dsr, &dk);
		if (published)
			entry.dsr_port = (__u16)*published;
	}
	bpf_map_update_elem(&lb_ret, &rk, &entry, BPF_ANY);
	return TC_ACT_OK;
}

#endif
