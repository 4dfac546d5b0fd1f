/* SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0) */
/*
 * ICMP errors about the routing mesh's replies (RFC 792, RFC 1191, RFC 1122
 * 4.2.3.9): a router between the client and this node that cannot forward a
 * reply (too big for its next hop and DF set, no route, TTL run out), or the
 * client's host itself (port unreachable), answers the reply's source: this
 * node's address and the published port. Only the backend that sent the
 * reply can act on it: TCP lowers its segment size to the path's MTU (path
 * MTU discovery; without it, a client behind a smaller MTU, a VPN or PPPoE,
 * waits forever for large replies: a black hole), a connected UDP socket
 * learns the port is closed. IPVS forwards these to its real servers too.
 *
 * So an ICMP error to a node address, quoting a reply of a mesh flow this node
 * tracks, is given to the flow's backend: addressed to it, the quote rewritten
 * as the backend sent the reply (its address and target port; for a SNATed
 * flow the node's address and the port it was SNATed to), every checksum
 * made right again (the quote's L4 checksum when it is in the quote, as
 * netfilter's NAT does), and sent the way the flow's requests go. The
 * router's address stays the source. Anything else (another ICMP message, a
 * quote of no tracked flow, IP options, a quote of another address than the
 * one the error went to) is the kernel's.
 */
#ifndef SHOAL_LB_ICMP_H
#define SHOAL_LB_ICMP_H

#include "overlay.h"

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
	__u32 rest;     /* unused, or the next hop's MTU, or a pointer */
	struct iphdr in; /* the quoted reply's header */
	__u16 sport;    /* its ports */
	__u16 dport;
	__u16 l4w2;     /* UDP: length; TCP: sequence number, high half */
	__u16 l4w3;     /* UDP: checksum; TCP: sequence number, low half */
};

#define ICMP_ERR_L4 (ETH_HLEN + 2 * sizeof(struct iphdr) + 8) /* the quoted L4 header */

/* A checksum `check` after the changes whose bpf_csum_diff is `seeded` by
 * (__u16)~check (RFC 1624: HC' = ~(~HC + ~m + m')). */
static __always_inline __u16 icmp_csum_update(__s64 seeded)
{
	return ov_csum_fold((__u32)seeded);
}

/*
 * The ICMP error in skb, if it is about a mesh flow's reply, to that flow's
 * backend: the verdict; else TC_ACT_OK (nothing changed).
 */
static __always_inline int lb_icmp_in(struct __sk_buff *skb, struct lb_config *cfg)
{
	struct icmp_err e, old;

	if (!cfg || !cfg->lb_ifindex || skb->protocol != bpf_htons(ETH_P_IP))
		return TC_ACT_OK;
	if (bpf_skb_load_bytes(skb, ETH_HLEN, &e, sizeof(e)))
		return TC_ACT_OK;
	if (e.ip.version != 4 || e.ip.ihl != 5 || e.ip.protocol != IPPROTO_ICMP ||
	    (e.ip.frag_off & bpf_htons(IP_MF | IP_OFFSET)))
		return TC_ACT_OK;
	__u32 tot = bpf_ntohs(e.ip.tot_len);
	if (tot < sizeof(e) || ETH_HLEN + tot > skb->len)
		return TC_ACT_OK;
	if (e.type != ICMP_DEST_UNREACH && e.type != ICMP_TIME_EXCEEDED &&
	    e.type != ICMP_PARAMETERPROB)
		return TC_ACT_OK;
	if (e.in.version != 4 || e.in.ihl != 5 ||
	    (e.in.protocol != IPPROTO_TCP && e.in.protocol != IPPROTO_UDP) ||
	    (e.in.frag_off & bpf_htons(IP_OFFSET)) || e.in.saddr != e.ip.daddr)
		return TC_ACT_OK;
	if (!bpf_map_lookup_elem(&lb_local_addrs, &e.ip.daddr))
		return TC_ACT_OK;
	/* The flow as its requests came in: the quote is its reply. */
	struct lb_flow_key key = {
		.saddr = e.in.daddr,
		.daddr = e.in.saddr,
		.sport = e.dport,
		.dport = e.sport,
		.proto = e.in.protocol,
	};
	struct lb_svc_key sk = {
		.port = e.sport,
		.proto = e.in.protocol,
		.scope = LB_SCOPE_NODEPORT,
	};
	struct lb_svc *svc = bpf_map_lookup_elem(&lb_services, &sk);
	struct lb_ct *ct = bpf_map_lookup_elem(&lb_ct, &key);
	if (!svc || !ct || ct->svc_id != svc->id ||
	    bpf_ktime_get_ns() - ct->last_seen >= cfg->timeout_ns[ct->state & 3])
		return TC_ACT_OK;
	__u32 backend_id = ct->backend_id;
	__u16 nat_port = ct->nat_port;
	struct lb_backend *be = bpf_map_lookup_elem(&lb_backends, &backend_id);
	if (!be || (nat_port && !cfg->snat_addr))
		return TC_ACT_OK;

	/* The quote as the backend sent it. */
	old = e;
	e.in.saddr = be->addr;
	e.sport = be->port ? be->port : e.sport;
	if (nat_port) {
		e.in.daddr = cfg->snat_addr;
		e.dport = nat_port;
	}
	e.in.check = 0;
	e.in.check = ov_ip_csum(&e.in);
	/* The quoted L4 checksum covers the addresses (pseudo-header) and ports. */
	__u32 was[3] = { old.in.saddr, old.in.daddr, ((__u32)old.sport << 16) | old.dport };
	__u32 now[3] = { e.in.saddr, e.in.daddr, ((__u32)e.sport << 16) | e.dport };
	/* TCP's checksum, when quoted (beyond the 8 bytes); a word for
	 * bpf_csum_diff, its second half zero. */
	union {
		__u32 word;
		__u16 half[2];
	} tcp_was = {}, tcp_now = {};
	int tcp_check = 0;
	if (e.in.protocol == IPPROTO_UDP) {
		if (e.l4w3) {
			__u16 c = icmp_csum_update(
				bpf_csum_diff(was, sizeof(was), now, sizeof(now), (__u16)~e.l4w3));
			e.l4w3 = c ? c : 0xffff;
		}
	} else if (ETH_HLEN + tot >= ICMP_ERR_L4 + 18) {
		if (bpf_skb_load_bytes(skb, ICMP_ERR_L4 + 16, &tcp_was.half[0], 2))
			return TC_ACT_OK;
		tcp_now = tcp_was;
		tcp_now.half[0] = icmp_csum_update(
			bpf_csum_diff(was, sizeof(was), now, sizeof(now), (__u16)~tcp_was.half[0]));
		tcp_check = 1;
	}
	/* The ICMP checksum covers the whole quote. */
	__s64 sum = bpf_csum_diff((__u32 *)&old.in, 28, (__u32 *)&e.in, 28, (__u16)~e.check);
	if (tcp_check)
		sum = bpf_csum_diff(&tcp_was.word, 4, &tcp_now.word, 4, (__u32)sum);
	e.check = icmp_csum_update(sum);
	/* To the backend, from the router still. */
	e.ip.daddr = e.in.saddr;
	e.ip.check = 0;
	e.ip.check = ov_ip_csum(&e.ip);
	if (bpf_skb_store_bytes(skb, ETH_HLEN, &e, sizeof(e), 0))
		return TC_ACT_SHOT;
	if (tcp_check && bpf_skb_store_bytes(skb, ICMP_ERR_L4 + 16, &tcp_now.half[0], 2, 0))
		return TC_ACT_SHOT;
	struct pkt counted = { .len = skb->len };
	count(backend_id, &counted, 0);

	/* The way the flow's requests go: through the uplink to a task on this
	 * node, over VXLAN to its node (it must fit: there is no error about an
	 * error), or through the ingress network's bridge. */
	__u8 dmac[ETH_ALEN], smac[ETH_ALEN];
	__builtin_memcpy(dmac, be->mac, ETH_ALEN);
	__builtin_memcpy(smac, cfg->lb_mac, ETH_ALEN);
	__u32 addr = e.in.saddr;
	struct ov_ep *ep = bpf_map_lookup_elem(&ov_eps, &addr);
	struct ov_net *net = ep && ov_enabled(cfg) ? bpf_map_lookup_elem(&ov_nets, &ep->vni) : NULL;
	if (net && !ep->vtep) {
		__u32 up = net->up_node;
		if (set_macs(skb, dmac, smac))
			return TC_ACT_SHOT;
		return bpf_redirect_peer(up, 0);
	}
	if (net) {
		__u32 vtep = ep->vtep, vni = ep->vni;
		if (ov_too_big(skb, cfg))
			return TC_ACT_SHOT;
		int err = ov_encap(skb, cfg, vtep, vni, dmac, smac);
		if (!err)
			return bpf_redirect_neigh(cfg->underlay_ifindex, NULL, 0, 0);
		if (err != -1)
			return TC_ACT_SHOT;
	}
	if (set_macs(skb, dmac, smac))
		return TC_ACT_SHOT;
	return bpf_redirect(cfg->lb_ifindex, 0);
}

#endif
