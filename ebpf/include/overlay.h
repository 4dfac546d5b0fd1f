/* SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0) */
/*
 * The overlay's fast path: VXLAN (RFC 7348, the kernel VXLAN device's wire
 * format) encapsulated and decapsulated in tc eBPF, so that frames between
 * tasks on different nodes skip the bridge, the kernel VXLAN device and the
 * host's UDP stack. Measured in bench/experiments/overlay-fastpath: the kernel
 * VXLAN device is what costs; skipping only the bridge buys nothing.
 *
 * Each network on a node has an uplink, a veth pair between the node's
 * namespace and the network's (struct ov_net); frames move through it with
 * bpf_redirect_peer, which switches namespace without a backlog queue.
 *
 *   send (ov_out, at the end of lb_task_out on a task port): a frame from a
 *     local endpoint to a remote endpoint of the same network (struct ov_ep),
 *     or to another node's load-balancer MAC (a mesh reply), is encapsulated
 *     in place (its GSO shape kept) and handed to the uplink; on the node's
 *     side ov_up_node sends it out of the underlay, next hop resolved by the
 *     kernel (bpf_redirect_neigh).
 *   receive (ov_in, first in lb_node_ingress on the underlay): VXLAN to this
 *     VTEP on the swarm's port, for a network this node has, to a local
 *     endpoint of that network: decapsulated, through the uplink, and on the
 *     network's side (ov_up_net) what task_in does on a bridge port, then
 *     straight into the task's namespace. A mesh reply to this node's
 *     load-balancer MAC is decapsulated and sent on to the client as
 *     lb_node_reply does.
 *   everything else (ARP and broadcasts, endpoints shoald has not written,
 *     a reply GRO merged into a super-packet, whose stale tunnel GSO state
 *     would break its segmentation when forwarded) takes the kernel's path:
 *     bridge and VXLAN device, which stay configured as before.
 *
 * No packet is dropped here that the kernel path would deliver: a frame the
 * kernel will not let a program encapsulate (say, a task's own tunnel packet,
 * already marked encapsulated) is left untouched to the kernel's path.
 *
 * A task speaks for itself only: a frame is sent as its source endpoint's
 * network only from that endpoint's own port (a task forging another
 * network's address would otherwise be encapsulated into that network), and
 * frames from a load-balancer MAC are never a task's (the kernel path takes
 * them, where the direct-return mark means nothing). The direct-return mark
 * (02:44 + the entry node's address) counts only on a frame this node's fast
 * path decapsulated from that very address (ov_in), handed to the task by
 * ov_up_net; everywhere else it is an ordinary load-balancer MAC.
 */
#ifndef SHOAL_OVERLAY_H
#define SHOAL_OVERLAY_H

#include <linux/if_packet.h>
#include "lb_helpers.h"

#define OV_VXLAN_FLAGS 0x08000000 /* the I flag: a valid VNI follows */
#define OV_HDR_LEN 50             /* outer IPv4 20 + UDP 8 + VXLAN 8 + inner Ethernet 14 */
#define OV_IP_OFF ETH_HLEN        /* outer IPv4 header, after the outer Ethernet header */
#define OV_INNER_OFF (ETH_HLEN + 36) /* the inner Ethernet header */
/* Source ports of the outer UDP header, from the inner flow's hash (as the
 * kernel's udp_flow_src_port picks them), so the underlay spreads flows. */
#define OV_SPORT_MIN 32768
#define OV_SPORT_RANGE (61000 - 32768)

struct ov_vxlan {
	__be32 flags;
	__be32 vni; /* VNI << 8 */
};

struct ov_outer {
	struct iphdr ip;
	struct udphdr udp;
	struct ov_vxlan vx;
	struct ethhdr inner;
} __attribute__((packed));

static __always_inline void ov_count(__u32 which)
{
	__u64 *n = bpf_map_lookup_elem(&ov_stats, &which);
	if (n)
		*n += 1;
}

static __always_inline int ov_enabled(const struct lb_config *cfg)
{
	return cfg && (cfg->flags & LB_CFG_F_OVERLAY) && cfg->vtep && cfg->vxlan_port;
}

/*
 * Encapsulates the Ethernet frame in skb in place for `vtep`/`vni`, the inner
 * frame addressed from `smac` to `dmac`: outer Ethernet (MACs left zero for
 * bpf_redirect_neigh to fill), IPv4 from this node's VTEP, UDP to the swarm's
 * port with a zero checksum (as RFC 7348 recommends and Shoal's VXLAN devices
 * send), VXLAN.
 * The skb keeps its GSO shape, marked as a UDP tunnel, so whoever transmits it
 * segments it (or the NIC does). -1: the kernel refused to make room (the
 * frame is untouched: say, already a tunnel packet with offloads), -2: it
 * failed half-way (the frame is broken: drop it). ov_encap_with takes the
 * adjust_room flags: without the encapsulation ones the skb is not marked a
 * tunnel packet and can still change length (bpf_skb_change_tail refuses a
 * tunnel packet), for a whole, non-GSO packet only (ov_split).
 */
static __always_inline int ov_encap_with(struct __sk_buff *skb, const struct lb_config *cfg,
					 __u32 vtep, __u32 vni, const __u8 *dmac, const __u8 *smac,
					 __u64 flags)
{
	__u32 inner_len = skb->len;
	struct ov_outer h = {};
	struct ethhdr outer = {};

	__builtin_memcpy(h.inner.h_dest, dmac, ETH_ALEN);
	__builtin_memcpy(h.inner.h_source, smac, ETH_ALEN);
	h.inner.h_proto = bpf_htons(ETH_P_IP);
	h.ip.version = 4;
	h.ip.ihl = 5;
	h.ip.ttl = 64;
	h.ip.protocol = IPPROTO_UDP;
	h.ip.saddr = cfg->vtep;
	h.ip.daddr = vtep;
	h.ip.tot_len = bpf_htons(inner_len + sizeof(struct iphdr) + sizeof(struct udphdr) +
				 sizeof(struct ov_vxlan));
	__u32 hash = bpf_get_hash_recalc(skb);
	h.ip.id = bpf_htons((__u16)hash);
	struct iphdr iph = h.ip; /* aligned, for the checksum helper */
	h.ip.check = ip_csum(&iph);
	h.udp.source = bpf_htons((__u16)(((__u64)hash * OV_SPORT_RANGE) >> 32) + OV_SPORT_MIN);
	h.udp.dest = bpf_htons(cfg->vxlan_port);
	h.udp.len = bpf_htons(inner_len + sizeof(struct udphdr) + sizeof(struct ov_vxlan));
	h.vx.flags = bpf_htonl(OV_VXLAN_FLAGS);
	h.vx.vni = bpf_htonl(vni << 8);

	if (bpf_skb_adjust_room(skb, OV_HDR_LEN, BPF_ADJ_ROOM_MAC, flags))
		return -1;
	if (bpf_skb_store_bytes(skb, ETH_HLEN, &h, sizeof(h), 0))
		return -2;
	outer.h_proto = bpf_htons(ETH_P_IP);
	if (bpf_skb_store_bytes(skb, 0, &outer, sizeof(outer), 0))
		return -2;
	return 0;
}

static __always_inline int ov_encap(struct __sk_buff *skb, const struct lb_config *cfg, __u32 vtep,
				    __u32 vni, const __u8 *dmac, const __u8 *smac)
{
	return ov_encap_with(skb, cfg, vtep, vni, dmac, smac,
			     BPF_F_ADJ_ROOM_FIXED_GSO | BPF_F_ADJ_ROOM_ENCAP_L3_IPV4 |
				     BPF_F_ADJ_ROOM_ENCAP_L4_UDP | BPF_F_ADJ_ROOM_ENCAP_L2_ETH |
				     BPF_F_ADJ_ROOM_ENCAP_L2(ETH_HLEN));
}

/*
 * A mesh request too large for the underlay once encapsulated (the entry node
 * adds 50 bytes to what its client sent at the full MTU; the kernel's router
 * would fragment or answer ICMP): the underlay's MTU if so, else 0. A GSO
 * packet's segments are what count (their MSS follows the task's MTU).
 */
static __always_inline __u32 ov_too_big(struct __sk_buff *skb, const struct lb_config *cfg)
{
	__u32 mtu = 0;

	if (bpf_check_mtu(skb, cfg->underlay_ifindex, &mtu, OV_HDR_LEN, 0) ==
	    BPF_MTU_CHK_RET_FRAG_NEEDED)
		return mtu;
	return 0;
}

/*
 * An ICMP "fragmentation needed" (RFC 792, RFC 1191: the next hop's MTU in it)
 * for the request `p` in skb, not yet rewritten, to its client from the
 * address the client sent to: made in place of the request, sent the way
 * replies go. The client's stack lowers its path MTU to that node and sends
 * smaller packets (fragments, for a datagram too large) from then on. Only for
 * a whole datagram that must not be fragmented (DF): others are split
 * (ov_split). Never larger than the request (no amplification).
 */
static __always_inline int ov_frag_needed(struct __sk_buff *skb, const struct lb_config *cfg,
					  const struct pkt *p, __u32 mtu)
{
	struct {
		__u8 type;
		__u8 code;
		__u16 check;
		__u16 unused;
		__u16 mtu;
		__u8 quote[68]; /* the request's IP header and 8 bytes after it */
	} m = {};
	__u32 to = bpf_ntohl(p->key.saddr);
	__u8 vihl;

	/* No ICMP error to an address that cannot have sent the request
	 * (RFC 1812 4.3.2.7): "this network", loopback, multicast, reserved and
	 * broadcast. */
	if ((to >> 24) == 0 || (to >> 24) == 127 || (to >> 28) >= 0xe)
		return TC_ACT_SHOT;
	if (bpf_skb_load_bytes(skb, ETH_HLEN, &vihl, 1))
		return TC_ACT_SHOT;
	/* Bounded by construction, as the verifier wants it: 28 to 68. */
	__u32 quote = (vihl & 0xf) * 4 + 8;
	if (bpf_skb_load_bytes(skb, ETH_HLEN, m.quote, quote))
		return TC_ACT_SHOT;
	m.type = 3; /* destination unreachable */
	m.code = 4; /* fragmentation needed */
	m.mtu = bpf_htons(mtu);
	/* The zeros past the quote add nothing to the sum. */
	m.check = csum_fold(bpf_csum_diff(0, 0, (__be32 *)&m, sizeof(m), 0));
	struct iphdr ip = {
		.version = 4,
		.ihl = 5,
		.tos = 0xc0, /* internetwork control, as the kernel's ICMP */
		.tot_len = bpf_htons(sizeof(struct iphdr) + 8 + quote),
		.ttl = 64,
		.protocol = IPPROTO_ICMP,
		.saddr = p->key.daddr,
		.daddr = p->key.saddr,
	};
	ip.check = ip_csum(&ip);
	/* Ethernet and the quote, then room for the IP and ICMP headers between. */
	if (bpf_skb_change_tail(skb, ETH_HLEN + quote, 0) ||
	    bpf_skb_adjust_room(skb, sizeof(struct iphdr) + 8, BPF_ADJ_ROOM_MAC, 0))
		return TC_ACT_SHOT;
	if (bpf_skb_store_bytes(skb, ETH_HLEN, &ip, sizeof(ip), 0) ||
	    bpf_skb_store_bytes(skb, ETH_HLEN + sizeof(ip), &m, 8, 0))
		return TC_ACT_SHOT;
	__u8 zero[ETH_ALEN] = {};
	if (set_macs(skb, zero, zero))
		return TC_ACT_SHOT;
	ov_count(OV_FRAG_NEEDED);
	return lb_reply_out(skb, cfg, p->key.saddr, skb->ifindex);
}

/* The most ov_split puts in its first part (a multiple of 8, <= 4095). */
#define OV_SPLIT_MAX 4088

/*
 * Makes the UDP checksum of the (whole, not yet split) datagram in skb, whose
 * IPv4 header is `h`, a whole one, using `scratch`. A datagram from a sender on
 * this host or a veth may carry only its pseudo-header's sum there, the rest
 * left to offload (CHECKSUM_PARTIAL, which a program cannot see directly):
 * split in fragments it would never be completed. Only such a field is
 * replaced: a full checksum, right or wrong, is left for the receiver to
 * check. 0, or -1: not a datagram this can do (too long for the scratch
 * space, or a UDP length beyond the IP packet's). Without a checksum (0), none.
 */
static __always_inline int ov_udp_csum(struct __sk_buff *skb, const struct iphdr *h,
				       struct ov_scratch *scratch)
{
	__u32 l4 = ETH_HLEN + sizeof(*h);
	struct udphdr uh;

	if (bpf_skb_load_bytes(skb, l4, &uh, sizeof(uh)))
		return -1;
	if (uh.check == 0)
		return 0;
	__u32 ulen = bpf_ntohs(uh.len);
	if (ulen < sizeof(uh) || ulen > bpf_ntohs(h->tot_len) - sizeof(*h) ||
	    ulen > OV_SCRATCH_LEN - 4)
		return -1;
	struct {
		__u32 saddr;
		__u32 daddr;
		__u8 zero;
		__u8 proto;
		__u16 len;
	} pseudo = {
		.saddr = h->saddr,
		.daddr = h->daddr,
		.proto = IPPROTO_UDP,
		.len = uh.len,
	};
	__s64 sum = bpf_csum_diff(0, 0, (__be32 *)&pseudo, sizeof(pseudo), 0);
	if (sum < 0)
		return -1;
	/* A partial field holds the folded pseudo-header sum, not inverted. */
	if (uh.check != (__u16)~csum_fold(sum))
		return 0;
	if (bpf_skb_load_bytes(skb, l4, scratch->data, ulen))
		return -1;
	/* Zeros to a multiple of 4 (the helper sums 32-bit words), and in place
	 * of the checksum itself. */
	for (int i = 0; i < 3; i++)
		scratch->data[(ulen + i) & (OV_SCRATCH_LEN - 1)] = 0;
	scratch->data[6] = 0;
	scratch->data[7] = 0;
	__u32 words = (ulen + 3) & ~3U;
	for (int i = 0; i < OV_SCRATCH_LEN / 512; i++) {
		__u32 off = i * 512;
		if (off >= words)
			break;
		__u32 n = words - off < 512 ? words - off : 512;
		sum = bpf_csum_diff(0, 0, (__be32 *)&scratch->data[off], n, sum);
		if (sum < 0)
			return -1;
	}
	__u16 check = csum_fold(sum);
	if (check == 0)
		check = 0xffff;
	return bpf_skb_store_bytes(skb, l4 + offsetof(struct udphdr, check), &check, sizeof(check), 0)
		       ? -1
		       : 0;
}

/*
 * A mesh request too large to encapsulate for the underlay's `mtu` (a
 * fragment: the client fragmented a datagram at its own, full MTU; or a whole
 * datagram that may be fragmented, DF clear), already rewritten for its
 * backend: split in two fragments that fit, as a router on the way would.
 * The second part is encapsulated and sent first, a clone
 * handed to the uplink's node end (`up`, where ov_up_node sends it on by the
 * route to `vtep`); then skb becomes the encapsulated first part, for the
 * caller to send. 0, or -1: dropped (more than two parts' worth, IP options).
 */
static __always_inline int ov_split(struct __sk_buff *skb, const struct lb_config *cfg, __u32 mtu,
				    __u32 up, __u32 vtep, __u32 vni, const __u8 *dmac,
				    const __u8 *smac, int whole_udp)
{
	struct iphdr h;
	__u32 zero = 0;

	if (bpf_skb_load_bytes(skb, ETH_HLEN, &h, sizeof(h)) || h.ihl != 5)
		return -1;
	__u32 len = bpf_ntohs(h.tot_len);
	__u16 frag = bpf_ntohs(h.frag_off);
	/* The first part: as much as fits, a multiple of 8 (fragment offsets),
	 * and at most what bpf_skb_adjust_room moves at once (4095 bytes): on a
	 * jumbo underlay the second part is then the larger, which fits too. */
	if (mtu < OV_HDR_LEN + sizeof(h) + 8)
		return -1;
	__u32 room = mtu - OV_HDR_LEN - sizeof(h);
	__u32 head = room < OV_SPLIT_MAX ? room & ~7U : OV_SPLIT_MAX;
	/* In a way the verifier sees: a multiple of 8 below OV_SCRATCH_LEN. */
	head &= OV_SCRATCH_LEN - 8;
	if (head == 0 || len <= sizeof(h) + head || len - sizeof(h) - head > room ||
	    (frag & IP_OFFSET) + head / 8 > IP_OFFSET)
		return -1;
	struct ov_scratch *scratch = bpf_map_lookup_elem(&ov_scratch, &zero);
	if (!scratch || (whole_udp && ov_udp_csum(skb, &h, scratch)) ||
	    bpf_skb_load_bytes(skb, ETH_HLEN + sizeof(h), scratch->data, head))
		return -1;
	/* The second part: the datagram's bytes after `head`, at their offset,
	 * with the original's more-fragments flag. */
	if (bpf_skb_adjust_room(skb, -(__s32)head, BPF_ADJ_ROOM_NET, 0))
		return -1;
	struct iphdr h2 = h;
	h2.tot_len = bpf_htons(len - head);
	h2.frag_off = bpf_htons((frag & IP_MF) | ((frag & IP_OFFSET) + head / 8));
	h2.check = 0;
	h2.check = ip_csum(&h2);
	if (bpf_skb_store_bytes(skb, ETH_HLEN, &h2, sizeof(h2), 0))
		return -1;
	if (ov_encap_with(skb, cfg, vtep, vni, dmac, smac, 0))
		return -1;
	if (bpf_clone_redirect(skb, up, BPF_F_INGRESS))
		return -1;
	/* The first part in the same skb: the headers again, `head` bytes. */
	__u32 inner_ip = ETH_HLEN + OV_HDR_LEN;
	__u32 total = inner_ip + sizeof(h) + head;
	if (bpf_skb_change_tail(skb, total, 0) ||
	    bpf_skb_store_bytes(skb, inner_ip + sizeof(h), scratch->data, head, 0))
		return -1;
	struct iphdr h1 = h;
	h1.tot_len = bpf_htons(sizeof(h) + head);
	h1.frag_off = bpf_htons(IP_MF | (frag & IP_OFFSET));
	h1.check = 0;
	h1.check = ip_csum(&h1);
	struct iphdr outer;
	if (bpf_skb_load_bytes(skb, ETH_HLEN, &outer, sizeof(outer)))
		return -1;
	outer.tot_len = bpf_htons(total - ETH_HLEN);
	outer.check = 0;
	outer.check = ip_csum(&outer);
	__u16 udp_len = bpf_htons(total - ETH_HLEN - sizeof(outer));
	if (bpf_skb_store_bytes(skb, inner_ip, &h1, sizeof(h1), 0) ||
	    bpf_skb_store_bytes(skb, ETH_HLEN, &outer, sizeof(outer), 0) ||
	    bpf_skb_store_bytes(skb, ETH_HLEN + sizeof(outer) + offsetof(struct udphdr, len), &udp_len,
				sizeof(udp_len), 0))
		return -1;
	ov_count(OV_SPLIT);
	return 0;
}

/* The network of a frame's sender, when the sender is a task on this node
 * and the frame came in by that task's own port (its VNI in *vni); NULL
 * otherwise. */
static __always_inline struct ov_net *ov_sender_net(const struct __sk_buff *skb, __u32 saddr,
						    __u32 *vni)
{
	struct ov_ep *src = bpf_map_lookup_elem(&ov_eps, &saddr);

	if (!src || src->vtep || src->ifindex != skb->ifindex)
		return NULL;
	*vni = src->vni;
	return bpf_map_lookup_elem(&ov_nets, vni);
}

/*
 * A reply of a mesh flow that entered at this node, from a local task (or an
 * ICMP error about one of its requests): out through the uplink, not through
 * the bridge and the load-balancer port; ov_up_node reverse-NATs it there as
 * lb_node_reply would, and sends it on by the interface its client used (a
 * flow this node does not know is dropped there).
 */
static __always_inline int ov_local_reply(struct __sk_buff *skb, __u32 up)
{
	ov_count(OV_LOCAL);
	return bpf_redirect_peer(up, 0);
}

/*
 * A task's frame at the end of lb_task_out: TC_ACT_OK (the bridge takes it) or
 * the redirect of the encapsulated frame into the network's uplink.
 */
static __always_inline int ov_out(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	struct lb_config *cfg = config();
	__u8 dmac[ETH_ALEN], smac[ETH_ALEN];
	__u32 vtep, vni;

	if (!ov_enabled(cfg) || (void *)(ip + 1) > end || eth->h_proto != bpf_htons(ETH_P_IP))
		return TC_ACT_OK;
	__u32 daddr = ip->daddr;
	/* A task never sends from a load-balancer MAC: the kernel path may
	 * take such a frame, the fast path does not. */
	if (eth->h_source[0] == LB_MAC0 &&
	    (eth->h_source[1] == LB_MAC1 || eth->h_source[1] == LB_DSR_MAC1))
		return TC_ACT_OK;
	struct ov_net *net = ov_sender_net(skb, ip->saddr, &vni);
	if (!net)
		return TC_ACT_OK;
	__builtin_memcpy(smac, eth->h_source, ETH_ALEN);
	if (eth->h_dest[0] == LB_MAC0 && eth->h_dest[1] == LB_MAC1) {
		/* A mesh reply: back to the node whose load-balancer MAC it is
		 * (02:53 + its underlay address). Only the ingress network carries
		 * mesh flows; elsewhere such a frame is the bridge's to drop. */
		if (!(net->flags & OV_NET_F_INGRESS))
			return TC_ACT_OK;
		__builtin_memcpy(&vtep, &eth->h_dest[2], 4);
		__builtin_memcpy(dmac, eth->h_dest, ETH_ALEN);
		if (vtep == cfg->vtep)
			return ov_local_reply(skb, net->up_net);
		/* Only to another node of the swarm, as the bridge's FDB would. */
		if (!bpf_map_lookup_elem(&ov_vteps, &vtep))
			return TC_ACT_OK;
	} else {
		struct ov_ep *dst = bpf_map_lookup_elem(&ov_eps, &daddr);
		/* Only within the sender's network: another network's tasks are
		 * not reachable from this one, on any path. */
		if (!dst || !dst->vtep || dst->vni != vni)
			return TC_ACT_OK;
		vtep = dst->vtep;
		__builtin_memcpy(dmac, dst->mac, ETH_ALEN);
	}
	/* The outer IPv4 length must hold it (a GSO super-packet can come close);
	 * what does not fit takes the kernel's path. */
	if (skb->len > 0xffff - OV_HDR_LEN)
		return TC_ACT_OK;
	__u32 up = net->up_net;
	int err = ov_encap(skb, cfg, vtep, vni, dmac, smac);
	if (err)
		return err == -1 ? TC_ACT_OK : TC_ACT_SHOT;
	ov_count(OV_TX);
	return bpf_redirect_peer(up, 0);
}

/*
 * A reply of a mesh flow whose entry node asked for direct server return
 * (lb_ret.dsr_port): it leaves from this node, its source the address and
 * port the client used (the entry node's address, in its MAC, and the
 * published port), straight to the client instead of back through the entry
 * node. -1: not here (the fast path is off, the task is not on the ingress
 * network here, the entry node is no node of the swarm, or the client is this
 * node): the caller sends it back through the entry node as usual.
 */
static __always_inline int ov_dsr(struct __sk_buff *skb, const struct pkt *p, const __u8 *lb_mac,
				  __u16 port)
{
	struct lb_config *cfg = config();
	__u32 client = p->key.daddr, addr, vni;

	if (!ov_enabled(cfg))
		return -1;
	struct ov_net *net = ov_sender_net(skb, p->key.saddr, &vni);
	if (!net || !(net->flags & OV_NET_F_INGRESS))
		return -1;
	__builtin_memcpy(&addr, &lb_mac[2], 4);
	if (addr == cfg->vtep || !bpf_map_lookup_elem(&ov_vteps, &addr) ||
	    bpf_map_lookup_elem(&lb_local_addrs, &client))
		return -1;
	__u32 up = net->up_net;
	if (nat(skb, p, 0, addr, port))
		return TC_ACT_SHOT;
	ov_count(OV_TX_DSR);
	return bpf_redirect_peer(up, 0);
}

/* What ov_in found in a VXLAN frame. */
struct ov_frame {
	__u32 vni;
	__u32 outer_saddr;
	__u32 inner_daddr;
	__u8 inner_dmac[ETH_ALEN];
	__u8 inner_smac[ETH_ALEN];
};

/* Is skb a VXLAN frame to this VTEP and port, carrying Ethernet + IPv4? 0: yes. */
static __always_inline int ov_parse(struct __sk_buff *skb, const struct lb_config *cfg,
				    struct ov_frame *f)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	struct udphdr *udp = (void *)(ip + 1);
	struct ov_vxlan *vx = (void *)(udp + 1);
	struct ethhdr *ieth = (void *)(vx + 1);
	struct iphdr *iip = (void *)(ieth + 1);

	if ((void *)(ip + 1) > end || eth->h_proto != bpf_htons(ETH_P_IP))
		return -1;
	if (ip->version != 4 || ip->ihl != 5 || ip->protocol != IPPROTO_UDP ||
	    (ip->frag_off & bpf_htons(IP_MF | IP_OFFSET)) || ip->daddr != cfg->vtep)
		return -1;
	if ((void *)(iip + 1) > end)
		return -1;
	/* A damaged outer header is the kernel's to drop (ip_rcv does). */
	if (ip_csum(ip) != 0)
		return -1;
	if (udp->dest != bpf_htons(cfg->vxlan_port) || vx->flags != bpf_htonl(OV_VXLAN_FLAGS) ||
	    ieth->h_proto != bpf_htons(ETH_P_IP))
		return -1;
	/* Shoal's nodes send no outer UDP checksum. One that another peer sent
	 * (the kernel device's default) is taken only when already checked
	 * (CHECKSUM_UNNECESSARY, a NIC's word); else the kernel checks it and
	 * drops a damaged frame before its VXLAN device sees it. */
	if (udp->check && bpf_csum_level(skb, BPF_CSUM_LEVEL_QUERY) < 0)
		return -1;
	/* The datagram is the whole frame (a VXLAN frame is too long to need
	 * Ethernet padding; anything else is left to the kernel). */
	if (bpf_ntohs(ip->tot_len) + ETH_HLEN != skb->len)
		return -1;
	if (iip->version != 4 || iip->ihl < 5)
		return -1;
	f->vni = bpf_ntohl(vx->vni) >> 8;
	f->outer_saddr = ip->saddr;
	f->inner_daddr = iip->daddr;
	__builtin_memcpy(f->inner_dmac, ieth->h_dest, ETH_ALEN);
	__builtin_memcpy(f->inner_smac, ieth->h_source, ETH_ALEN);
	return 0;
}

/*
 * Strips the outer headers: the inner Ethernet frame is what is left (with
 * `unmark`, a direct-return mark in its source MAC made a plain
 * load-balancer MAC). -1: the frame is untouched (the kernel cannot shrink it
 * in place: a GSO packet that is not TCP), -2: it was changed half-way (drop
 * it).
 */
static __always_inline int ov_decap(struct __sk_buff *skb, int unmark)
{
	struct ethhdr inner;

	if (bpf_skb_load_bytes(skb, OV_INNER_OFF, &inner, sizeof(inner)))
		return -1;
	if (unmark)
		inner.h_source[1] = LB_MAC1;
	/* The checksum state is reset (CHECKSUM_UNNECESSARY from a NIC spoke for
	 * the outer headers): the inner checksums are checked where they end. */
	if (bpf_skb_adjust_room(skb, -OV_HDR_LEN, BPF_ADJ_ROOM_MAC, BPF_F_ADJ_ROOM_FIXED_GSO))
		return -1;
	if (bpf_skb_store_bytes(skb, 0, &inner, sizeof(inner), 0))
		return -2;
	bpf_skb_change_type(skb, PACKET_HOST);
	return 0;
}

/*
 * First thing on the underlay's ingress. -1: not the fast path's (the caller
 * goes on, the kernel VXLAN device gets what it should); else the verdict.
 */
static __always_inline int ov_in(struct __sk_buff *skb, struct lb_config *cfg)
{
	struct ov_frame f;

	if (!ov_enabled(cfg) || ov_parse(skb, cfg, &f))
		return -1;
	struct ov_net *net = bpf_map_lookup_elem(&ov_nets, &f.vni);
	if (!net)
		return -1;
	if (__builtin_memcmp(f.inner_dmac, cfg->lb_mac, ETH_ALEN) == 0) {
		/* A reply of a mesh flow this node NATed (only on the ingress
		 * network: no other network reaches the load-balancer port, so
		 * no other network's frames may either). A GRO super-packet keeps
		 * its tunnel GSO state through bpf_skb_adjust_room and could not be
		 * segmented right on its way out: the kernel's path takes it. */
		if (!(net->flags & OV_NET_F_INGRESS) || skb->gso_size)
			return -1;
		int err = ov_decap(skb, 0);
		if (err)
			return err == -1 ? -1 : TC_ACT_SHOT;
		ov_count(OV_RX_REPLY);
		return lb_reply(skb, cfg);
	}
	struct ov_ep *ep = bpf_map_lookup_elem(&ov_eps, &f.inner_daddr);
	if (!ep || ep->vtep || ep->vni != f.vni)
		return -1;
	__u32 up = net->up_node;
	/* A direct-return mark holds only from the node whose address it
	 * carries: the one that sent this datagram. */
	__u32 marked_by;
	__builtin_memcpy(&marked_by, &f.inner_smac[2], 4);
	int unmark = f.inner_smac[0] == LB_MAC0 && f.inner_smac[1] == LB_DSR_MAC1 &&
		     marked_by != f.outer_saddr;
	int err = ov_decap(skb, unmark);
	if (err)
		return err == -1 ? -1 : TC_ACT_SHOT;
	ov_count(OV_RX);
	return bpf_redirect_peer(up, 0);
}

#endif
