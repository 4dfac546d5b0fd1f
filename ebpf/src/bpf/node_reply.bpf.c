// SPDX-License-Identifier: GPL-2.0-only OR Apache-2.0
/*
 * tc ingress of the host end of the load-balancer port: replies of mesh flows
 * coming back out of the ingress network (those the overlay's fast path did
 * not already take), sent on to the client by lb_reply. Nothing else may cross
 * from the ingress network into the host: other IP packets are dropped.
 */
#include "lb_helpers.h"

SEC("classifier")
int lb_node_reply(struct __sk_buff *skb)
{
	struct lb_config *cfg;
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;

	/* ARP and the like from the bridge: harmless, the port has no address. */
	if ((void *)(eth + 1) <= end && eth->h_proto != bpf_htons(ETH_P_IP))
		return TC_ACT_OK;
	cfg = config();
	if (!cfg)
		return TC_ACT_SHOT;
	return lb_reply(skb, cfg);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
