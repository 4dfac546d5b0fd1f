// SPDX-License-Identifier: GPL-2.0-only OR Apache-2.0
/*
 * tc ingress of the host end of the load-balancer port: replies of mesh flows
 * coming back out of the ingress network. Their source becomes again the
 * node address and published port the client used (and, for an SNATed flow,
 * their destination the client's own address and port), and they leave by the
 * route to the client (the kernel resolves the next hop), or, for a client
 * on this node, through lo. Nothing else may cross from the ingress network
 * into the host: other IP packets are dropped.
 */
#include "lb_helpers.h"

SEC("classifier")
int lb_node_reply(struct __sk_buff *skb)
{
	struct lb_config *cfg;
	struct lb_rev *rev;
	struct pkt p;

	if (parse(skb, &p)) {
		void *data = (void *)(long)skb->data;
		void *end = (void *)(long)skb->data_end;
		struct ethhdr *eth = data;
		/* ARP and the like from the bridge: harmless, the port has no address. */
		if ((void *)(eth + 1) <= end && eth->h_proto != bpf_htons(ETH_P_IP))
			return TC_ACT_OK;
		return TC_ACT_SHOT;
	}
	rev = bpf_map_lookup_elem(&lb_rev, &p.key);
	cfg = config();
	if (!rev || !cfg)
		return TC_ACT_SHOT;
	__u32 addr = rev->addr;
	__u16 port = rev->port;
	int snatted = rev->client_addr != 0;
	__u32 client = snatted ? rev->client_addr : p.key.daddr;
	__u16 client_port = snatted ? rev->client_port : p.key.dport;
	__u32 out = cfg->underlay_ifindex;
	if (nat(skb, &p, 0, addr, port))
		return TC_ACT_SHOT;
	if (snatted && nat(skb, &p, 1, client, client_port))
		return TC_ACT_SHOT;
	if (bpf_map_lookup_elem(&lb_local_addrs, &client)) {
		/* A client on this node: hand the reply to lo as if it came in there. */
		__u8 zero[ETH_ALEN] = {};
		if (set_macs(skb, zero, zero))
			return TC_ACT_SHOT;
		return bpf_redirect(1, BPF_F_INGRESS);
	}
	return bpf_redirect_neigh(out, NULL, 0, 0);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
