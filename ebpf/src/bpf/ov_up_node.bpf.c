// SPDX-License-Identifier: GPL-2.0-only OR Apache-2.0
/*
 * tc ingress of a network's uplink, node side: what the overlay's fast path
 * hands from the network's namespace to this end (bpf_redirect_peer):
 * encapsulated frames for other nodes and, with direct server return, replies
 * given the entry node's address, which go on by their destination (the
 * underlay's route to it; the kernel resolves the next hop); and replies of
 * mesh flows that entered at this node, from its own tasks, still addressed
 * to its load-balancer MAC: reverse-NATed here and sent on to their clients
 * (lb_reply). Nothing but IPv4 crosses: the rest is dropped.
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
	/* (Encapsulated frames have zero outer MACs, as has lb_mac until the
	 * load-balancer port exists: the MAC must be one.) */
	if (eth->h_dest[0] == LB_MAC0 && eth->h_dest[1] == LB_MAC1 &&
	    __builtin_memcmp(eth->h_dest, cfg->lb_mac, ETH_ALEN) == 0)
		return lb_reply(skb, cfg);
	return lb_reply_out(skb, cfg, ip->daddr, 0);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
