// SPDX-License-Identifier: GPL-2.0-only OR Apache-2.0
/*
 * tc ingress of a network's uplink, node side: the overlay's fast path hands
 * encapsulated frames from the network's namespace to this end
 * (bpf_redirect_peer); they leave by the underlay, next hop resolved by the
 * kernel. Nothing else has business crossing: dropped.
 */
#include "overlay.h"

SEC("classifier")
int ov_up_node(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	struct lb_config *cfg = config();

	if (!cfg || (void *)(eth + 1) > end || eth->h_proto != bpf_htons(ETH_P_IP))
		return TC_ACT_SHOT;
	return bpf_redirect_neigh(cfg->underlay_ifindex, NULL, 0, 0);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
