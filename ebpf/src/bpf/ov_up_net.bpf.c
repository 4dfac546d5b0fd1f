// SPDX-License-Identifier: GPL-2.0-only OR Apache-2.0
/*
 * tc ingress of a network's uplink, network side: frames the overlay's fast
 * path decapsulated on the underlay, each for a task of this network on this
 * node. What lb_task_in does on the task's bridge port is done here (the frame
 * never crosses the bridge), a direct-return mark included (ov_in left it only
 * on a frame from the node it names), then the frame goes straight into the
 * task's namespace (bpf_redirect_peer from its port). Nothing else: dropped.
 */
#include "overlay.h"

SEC("classifier")
int ov_up_net(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);

	if ((void *)(ip + 1) > end || eth->h_proto != bpf_htons(ETH_P_IP))
		return TC_ACT_SHOT;
	__u32 daddr = ip->daddr;
	struct ov_ep *ep = bpf_map_lookup_elem(&ov_eps, &daddr);
	if (!ep || ep->vtep)
		return TC_ACT_SHOT;
	__u32 port = ep->ifindex;
	int verdict = task_rx(skb, 1);
	if (verdict != TC_ACT_OK)
		return verdict;
	return bpf_redirect_peer(port, 0);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
