// SPDX-License-Identifier: GPL-2.0-only OR Apache-2.0
/*
 * tc ingress of the node's underlay interface (and of lo, for the node's own
 * clients): the routing mesh's entry. A TCP/UDP packet to a published port on
 * one of the node's addresses is given a backend (conntrack, else Maglev),
 * DNATed to it, addressed to its MAC from this node's load-balancer MAC, and
 * redirected into the ingress network through the load-balancer port; the
 * bridge there delivers it to the local task or over VXLAN to the backend's
 * node. The client's source address is kept, except for clients on a loopback
 * address and in SNAT mode, which come from the node's address (and a port
 * free for that backend). Everything else passes untouched.
 *
 * With the overlay's fast path (overlay.h) on, VXLAN frames for this node are
 * looked at first (decapsulated straight to a local task, or a mesh reply sent
 * on to its client), and a request for a backend on another node is
 * encapsulated here and sent to that node, skipping the ingress network; one
 * too large for the underlay once encapsulated is answered or split as a
 * router would (ov_frag_needed, ov_split).
 *
 * An ICMP error about a mesh flow's reply (path MTU discovery) goes on to the
 * flow's backend (lb_icmp.h). Other nodes' liveness probes are answered here
 * (lb_probe.h).
 */
#include "lb_icmp.h"
#include "lb_probe.h"

SEC("classifier")
int lb_node_ingress(struct __sk_buff *skb)
{
	struct lb_config *cfg;
	struct lb_backend *be;
	struct lb_svc *svc;
	struct choice c;
	struct pkt p;
	__u16 port;

	cfg = config();
	if (cfg && skb->ifindex == cfg->underlay_ifindex) {
		int verdict = ov_in(skb, cfg);
		if (verdict >= 0)
			return verdict;
	}
	if (parse(skb, &p, LB_FRAG_HOOK_NODE_IN))
		return lb_icmp_in(skb, cfg);
	if (!bpf_map_lookup_elem(&lb_local_addrs, &p.key.daddr))
		return TC_ACT_OK;
	/* Another node asking whether this one forwards: the data plane answers. */
	if (p.key.proto == IPPROTO_UDP && p.key.dport == bpf_htons(LB_PROBE_PORT))
		return lb_probe_answer(skb, &p);
	struct lb_svc_key sk = {
		.addr = 0,
		.port = p.key.dport,
		.proto = p.key.proto,
		.scope = LB_SCOPE_NODEPORT,
	};
	svc = bpf_map_lookup_elem(&lb_services, &sk);
	if (!svc)
		return TC_ACT_OK;
	if (!cfg || !cfg->lb_ifindex)
		return TC_ACT_OK;
	be = select_backend(&p, svc, cfg, 0, &c);
	if (!be) {
		count_drop(svc->id);
		return TC_ACT_SHOT;
	}
	port = be->port ? be->port : p.key.dport;
	/* A backend cannot answer a loopback address: such clients are always
	 * SNATed to the node's address, others when the node or service says so.
	 * A client on the node's address goes the same way (the address stays, the
	 * port too unless a SNATed flow holds it), so the two never share a reply
	 * tuple. */
	__u32 snat_addr = cfg->snat_addr;
	int snat = is_loopback(p.key.saddr) || p.key.saddr == snat_addr ||
		   (cfg->flags & LB_CFG_F_SNAT) || (svc->flags & LB_SVC_F_SNAT);
	__u16 nat_port = c.nat_port;
	if (snat && !snat_addr) {
		count_drop(svc->id);
		return TC_ACT_SHOT;
	}
	if (snat && !nat_port) {
		nat_port = snat_port(&p, snat_addr, be->addr, port, cfg->maglev_seed);
		if (!nat_port) {
			count_drop(svc->id);
			return TC_ACT_SHOT;
		}
	}
	/* The reverse entry is written with the flow and rewritten about once a
	 * second, so an LRU eviction of it only lasts that long. */
	if (c.is_new || c.refreshed) {
		struct lb_flow_key rk = reply_key(&p, be->addr, port);
		struct lb_rev rev = {
			.last_seen = bpf_ktime_get_ns(),
			.addr = p.key.daddr,
			.port = p.key.dport,
			.ifindex = skb->ifindex,
		};
		if (snat) {
			rk.daddr = snat_addr;
			rk.dport = nat_port;
			rev.client_addr = p.key.saddr;
			rev.client_port = p.key.sport;
		}
		bpf_map_update_elem(&lb_rev, &rk, &rev, BPF_ANY);
	}
	__u8 dmac[ETH_ALEN];
	__builtin_memcpy(dmac, be->mac, ETH_ALEN);
	__u32 addr = be->addr;
	__u32 ifindex = cfg->lb_ifindex;
	__u8 smac[ETH_ALEN];
	__builtin_memcpy(smac, cfg->lb_mac, ETH_ALEN);
	/* With the overlay's fast path, past the ingress network's bridge. */
	struct ov_ep *ep = bpf_map_lookup_elem(&ov_eps, &addr);
	struct ov_net *net = ep && ov_enabled(cfg) ? bpf_map_lookup_elem(&ov_nets, &ep->vni) : NULL;
	/* To a backend on another node, whichever interface the request came
	 * in by (the underlay, another address of the host, lo): over VXLAN,
	 * which must fit the underlay's MTU. A datagram that does not, and must not be
	 * fragmented (DF), is answered "fragmentation needed" (before any
	 * rewrite: the ICMP quotes what the client sent); anything else that does
	 * not is split in two below. */
	__u32 vtep = 0, vni = 0, uplink = 0, too_big = 0;
	if (net && ep->vtep && skb->len <= 0xffff - OV_HDR_LEN) {
		vtep = ep->vtep;
		vni = ep->vni;
		uplink = net->up_node;
		too_big = ov_too_big(skb, cfg);
	}
	count(c.backend_id, &p, c.is_new);
	/* A whole datagram is split only when UDP and short enough for its
	 * checksum to be made whole (ov_udp_csum: at most a 4 KiB datagram,
	 * fragments of a jumbo one); TCP without DF is rare: both get the ICMP. */
	if (too_big && p.frag == PKT_WHOLE &&
	    (p.df || p.key.proto != IPPROTO_UDP || p.len - p.l4off > OV_SCRATCH_LEN - 4))
		return ov_frag_needed(skb, cfg, &p, too_big - OV_HDR_LEN);
	if (nat(skb, &p, 1, addr, port))
		return TC_ACT_SHOT;
	if (snat && nat(skb, &p, 0, snat_addr, nat_port))
		return TC_ACT_SHOT;
	if (net && !ep->vtep) {
		/* A backend on this node: into its network through the uplink, where
		 * ov_up_net hands it to the task, past the bridge. */
		__u32 up = net->up_node;
		if (set_macs(skb, dmac, smac))
			return TC_ACT_SHOT;
		ov_count(OV_LOCAL);
		return bpf_redirect_peer(up, 0);
	}
	if (vtep) {
		/* Straight to the backend's node, as the ingress network's
		 * bridge would have sent it. Direct server return, when this
		 * node allows it: the reply may come from the backend's node with
		 * this node's address. Not for a flow SNATed here, nor one to
		 * another address of this node (the backend's node knows the
		 * address from the MAC, not the flow), nor one that came in by
		 * another interface than the underlay (the backend's node answers
		 * by its own underlay). */
		if ((cfg->flags & LB_CFG_F_DSR) && !snat && p.key.daddr == cfg->vtep &&
		    skb->ifindex == cfg->underlay_ifindex)
			smac[1] = LB_DSR_MAC1;
		if (too_big) {
			if (ov_split(skb, cfg, too_big, uplink, vtep, vni, dmac, smac,
				     p.frag == PKT_WHOLE)) {
				count_drop(svc->id);
				return TC_ACT_SHOT;
			}
			ov_count(OV_TX_MESH);
			return bpf_redirect_neigh(cfg->underlay_ifindex, NULL, 0, 0);
		}
		int err = ov_encap(skb, cfg, vtep, vni, dmac, smac);
		if (!err) {
			ov_count(OV_TX_MESH);
			return bpf_redirect_neigh(cfg->underlay_ifindex, NULL, 0, 0);
		}
		if (err != -1)
			return TC_ACT_SHOT;
		/* Refused, untouched: the ingress network's bridge takes it. */
		smac[1] = LB_MAC1;
	}
	if (set_macs(skb, dmac, smac))
		return TC_ACT_SHOT;
	return bpf_redirect(ifindex, 0);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
