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
 *
 * The other way, an ICMP error a backend's host sends about a request (port
 * unreachable for a UDP port nothing listens on: the client learns at once
 * instead of waiting) goes back through the entry node as the flow's
 * replies do (lb_icmp_out here, at the task's port), where lb_icmp_reply
 * (lb_helpers.h) makes it come from the address the client reached.
 */
#ifndef SHOAL_LB_ICMP_H
#define SHOAL_LB_ICMP_H

#include "overlay.h"

/*
 * The ICMP error in skb, if it is about a mesh flow's reply, to that flow's
 * backend: the verdict; else TC_ACT_OK (nothing changed).
 */
static __always_inline int lb_icmp_in(struct __sk_buff *skb, struct lb_config *cfg)
{
	struct icmp_err e, old;

	if (!cfg || !cfg->lb_ifindex || icmp_err_load(skb, &e) || e.in.saddr != e.ip.daddr)
		return TC_ACT_OK;
	if (!bpf_map_lookup_elem(&lb_local_addrs, &e.ip.daddr))
		return TC_ACT_OK;
	/* The flow as its requests came in: the quote is its reply. */
	struct lb_flow_key key = icmp_err_swapped(&e);
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

	/* To the backend, from the router still, the quote as the backend sent
	 * the reply. */
	old = e;
	e.ip.daddr = be->addr;
	e.in.saddr = be->addr;
	e.sport = be->port ? be->port : e.sport;
	if (nat_port) {
		e.in.daddr = cfg->snat_addr;
		e.dport = nat_port;
	}
	int err = icmp_err_rewrite(skb, &old, &e);
	if (err)
		return err > 0 ? TC_ACT_OK : TC_ACT_SHOT;
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

/*
 * What a task sends: an ICMP error about a request of a mesh flow (the task's
 * host answers "port unreachable" to a UDP request, say) is addressed to the
 * flow's entry node's load-balancer MAC, as the flow's replies are
 * (lb_task_out), so it goes back through that node (lb_icmp_reply) to the
 * client. Anything else is left as it is.
 */
static __always_inline void lb_icmp_out(struct __sk_buff *skb)
{
	struct icmp_err e;

	if (icmp_err_load(skb, &e) || e.in.daddr != e.ip.saddr)
		return;
	struct lb_flow_key rk = icmp_err_swapped(&e);
	struct lb_ret *ret = bpf_map_lookup_elem(&lb_ret, &rk);
	if (!ret)
		return;
	__u8 mac[ETH_ALEN];
	__builtin_memcpy(mac, ret->mac, ETH_ALEN);
	set_macs(skb, mac, NULL);
}

#endif
