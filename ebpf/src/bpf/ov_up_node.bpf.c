// SPDX-License-Identifier: GPL-2.0-only OR Apache-2.0
/*
 * tc ingress of a network's uplink, node side: what the overlay's fast path
 * hands from the network's namespace to this end (bpf_redirect_peer):
 * encapsulated frames for other nodes, and replies of mesh flows already
 * reverse-NATed (or, with direct server return, given the entry node's
 * address) for their clients. Each goes on by its destination: lo for this
 * node's own addresses, else the route to it (the kernel resolves the next
 * hop). Nothing but IPv4 crosses: the rest is dropped.
 */
#include "overlay.h"

SEC("classifier")
int ov_up_node(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	struct lb_config *cfg = config();

	if (!cfg || (void *)(ip + 1) > end || eth->h_proto != bpf_htons(ETH_P_IP))
		return TC_ACT_SHOT;
	return lb_reply_out(skb, cfg, ip->daddr);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
