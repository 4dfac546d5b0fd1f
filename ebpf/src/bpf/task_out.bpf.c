// SPDX-License-Identifier: GPL-2.0-only OR Apache-2.0
/*
 * tc ingress of a task's port on an overlay bridge: what the task sends.
 * - ARP for a service VIP is answered here (the VIP's MAC is 02:42 + its address).
 * - A reply of a mesh flow (one that came in through some node's mesh) is
 *   addressed to that node's load-balancer MAC, so it returns through the node
 *   that did the NAT and the client sees the address it connected to.
 * - A packet to a VIP gets a backend (conntrack, else Maglev) and is DNATed to
 *   it, any port; the bridge then delivers it locally or over VXLAN.
 * - An ICMP error about a mesh flow's request goes back as its replies do.
 * Everything else passes to the bridge untouched. Then an IPv4 frame to a task
 * on another node, or back to another node's mesh, is encapsulated here and
 * skips the bridge (the overlay's fast path, overlay.h).
 */
#include "lb_icmp.h"

/* From linux/if_arp.h, which drags in libc headers. */
#define ARPHRD_ETHER 1
#define ARPOP_REQUEST 1
#define ARPOP_REPLY 2

struct arphdr {
	__be16 ar_hrd;
	__be16 ar_pro;
	__u8 ar_hln;
	__u8 ar_pln;
	__be16 ar_op;
};

struct arp_eth_ipv4 {
	__u8 sha[ETH_ALEN];
	__u32 sip;
	__u8 tha[ETH_ALEN];
	__u32 tip;
} __attribute__((packed));

static __always_inline int answer_arp(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	struct arphdr *arp = (void *)(eth + 1);
	struct arp_eth_ipv4 *body = (void *)(arp + 1);

	if ((void *)(body + 1) > end)
		return TC_ACT_OK;
	if (arp->ar_hrd != bpf_htons(ARPHRD_ETHER) || arp->ar_pro != bpf_htons(ETH_P_IP) ||
	    arp->ar_hln != ETH_ALEN || arp->ar_pln != 4 || arp->ar_op != bpf_htons(ARPOP_REQUEST))
		return TC_ACT_OK;
	struct lb_svc_key sk = { .addr = body->tip, .scope = LB_SCOPE_VIP };
	if (!bpf_map_lookup_elem(&lb_services, &sk))
		return TC_ACT_OK;
	__u32 vip = body->tip;
	__u32 asker = body->sip;
	__u8 asker_mac[ETH_ALEN];
	__builtin_memcpy(asker_mac, body->sha, ETH_ALEN);
	__u8 vip_mac[ETH_ALEN] = { 0x02, 0x42 };
	__builtin_memcpy(&vip_mac[2], &vip, 4);

	__builtin_memcpy(eth->h_dest, asker_mac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, vip_mac, ETH_ALEN);
	arp->ar_op = bpf_htons(ARPOP_REPLY);
	__builtin_memcpy(body->tha, asker_mac, ETH_ALEN);
	body->tip = asker;
	__builtin_memcpy(body->sha, vip_mac, ETH_ALEN);
	body->sip = vip;
	/* Back out of the port it came in by: to the task. */
	return bpf_redirect(skb->ifindex, 0);
}

SEC("classifier")
int lb_task_out(struct __sk_buff *skb)
{
	struct lb_config *cfg;
	struct lb_backend *be;
	struct lb_svc *svc;
	struct lb_ret *ret;
	struct choice c;
	struct pkt p;
	__u16 port;

	if (parse(skb, &p, LB_FRAG_HOOK_TASK_OUT)) {
		void *data = (void *)(long)skb->data;
		void *end = (void *)(long)skb->data_end;
		struct ethhdr *eth = data;
		if ((void *)(eth + 1) <= end && eth->h_proto == bpf_htons(ETH_P_ARP))
			return answer_arp(skb);
		lb_icmp_out(skb);
		return ov_out(skb);
	}
	ret = bpf_map_lookup_elem(&lb_ret, &p.key);
	if (ret) {
		__u8 mac[ETH_ALEN];
		__builtin_memcpy(mac, ret->mac, ETH_ALEN);
		__u16 dsr_port = ret->dsr_port;
		if (dsr_port) {
			int verdict = ov_dsr(skb, &p, mac, dsr_port);
			if (verdict >= 0)
				return verdict;
		}
		if (set_macs(skb, mac, NULL))
			return TC_ACT_SHOT;
		return ov_out(skb);
	}
	struct lb_svc_key sk = { .addr = p.key.daddr, .scope = LB_SCOPE_VIP };
	svc = bpf_map_lookup_elem(&lb_services, &sk);
	if (!svc)
		return ov_out(skb);
	cfg = config();
	if (!cfg)
		return TC_ACT_OK;
	be = select_backend(&p, svc, cfg, 1, &c);
	if (!be) {
		count_drop(svc->id);
		return TC_ACT_SHOT;
	}
	port = be->port ? be->port : p.key.dport;
	if (c.is_new || c.refreshed) {
		struct lb_flow_key rk = reply_key(&p, be->addr, port);
		struct lb_rev rev = {
			.last_seen = bpf_ktime_get_ns(),
			.addr = p.key.daddr,
			.port = p.key.dport,
			.mac = { 0x02, 0x42 },
		};
		__builtin_memcpy(&rev.mac[2], &p.key.daddr, 4);
		bpf_map_update_elem(&lb_rev, &rk, &rev, BPF_ANY);
	}
	__u8 dmac[ETH_ALEN];
	__builtin_memcpy(dmac, be->mac, ETH_ALEN);
	__u32 addr = be->addr;
	count(c.backend_id, &p, c.is_new);
	if (nat(skb, &p, 1, addr, port) || set_macs(skb, dmac, NULL))
		return TC_ACT_SHOT;
	return ov_out(skb);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
