// SPDX-License-Identifier: GPL-2.0-only OR Apache-2.0
/*
 * tc egress of a task's port on an overlay bridge: what the task receives.
 * - A reply from a backend of a VIP flow this task opened gets its source
 *   back: the VIP and the port the task connected to.
 * - A packet of a mesh flow (from some node's load-balancer MAC) records that
 *   MAC for the flow's replies (see task_out).
 * Everything passes.
 */
#include "lb_helpers.h"

SEC("classifier")
int lb_task_in(struct __sk_buff *skb)
{
	struct lb_rev *rev;
	struct pkt p;

	if (parse(skb, &p))
		return TC_ACT_OK;
	rev = bpf_map_lookup_elem(&lb_rev, &p.key);
	if (rev) {
		__u32 addr = rev->addr;
		__u16 port = rev->port;
		__u8 mac[ETH_ALEN];
		__builtin_memcpy(mac, rev->mac, ETH_ALEN);
		if (nat(skb, &p, 0, addr, port) || set_macs(skb, NULL, mac))
			return TC_ACT_SHOT;
		return TC_ACT_OK;
	}
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > end)
		return TC_ACT_OK;
	if (eth->h_source[0] != LB_MAC0 || eth->h_source[1] != LB_MAC1)
		return TC_ACT_OK;
	struct lb_flow_key rk = {
		.saddr = p.key.daddr,
		.daddr = p.key.saddr,
		.sport = p.key.dport,
		.dport = p.key.sport,
		.proto = p.key.proto,
	};
	struct lb_ret *ret = bpf_map_lookup_elem(&lb_ret, &rk);
	__u64 now = bpf_ktime_get_ns();
	if (ret && __builtin_memcmp(ret->mac, eth->h_source, ETH_ALEN) == 0 &&
	    now - ret->last_seen < LB_CT_REFRESH_NS)
		return TC_ACT_OK;
	struct lb_ret entry = { .last_seen = now };
	__builtin_memcpy(entry.mac, eth->h_source, ETH_ALEN);
	bpf_map_update_elem(&lb_ret, &rk, &entry, BPF_ANY);
	return TC_ACT_OK;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
