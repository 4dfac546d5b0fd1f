// SPDX-License-Identifier: GPL-2.0
/* Shoal overlay fast path experiment: bridge bypass with tc eBPF.
 *
 * fp_tx: tc ingress of a task veth's host end (the packets a task sends).
 *   - ARP request for a known endpoint IP -> answered in place with the endpoint's MAC,
 *     sent back to the task (bpf_redirect to the same port's egress).
 *   - IPv4 to a known endpoint:
 *       local  -> bpf_redirect_peer into the other task's namespace
 *       remote, FDB mode     -> bpf_redirect to the (non-external) VXLAN device's egress;
 *                               the VXLAN device's FDB maps the inner dst MAC to the VTEP
 *       remote, collect_md   -> bpf_skb_set_tunnel_key(VTEP, VNI) + bpf_redirect to the
 *                               external VXLAN device
 *   - anything else -> TC_ACT_OK: the bridge (slow path: gateway, broadcast, host port).
 * fp_rx: tc ingress of the VXLAN device (decapsulated frames).
 *   - IPv4 to a local endpoint -> PACKET_HOST + bpf_redirect_peer (or bpf_redirect) to the
 *     endpoint's host end; in collect_md mode the VNI of the tunnel must match.
 *   - anything else -> TC_ACT_OK (bridge in FDB mode) / TC_ACT_SHOT (collect_md mode).
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#define ARPHRD_ETHER 1
#define ARPOP_REQUEST 1
#define ARPOP_REPLY 2
#include <linux/if_packet.h>
#include <linux/ip.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

struct fp_ep {
	__u32 ifindex; /* local endpoint: its host-end veth in this namespace; 0 = remote */
	__u32 vtep;    /* remote endpoint: VTEP IPv4, network order */
	__u32 vni;
	__u8 mac[6];
	__u16 pad;
};

#define FP_MD        1 /* external (collect_md) VXLAN device: set the tunnel key */
#define FP_RX_PEER   2 /* RX: bpf_redirect_peer instead of bpf_redirect */
#define FP_ZERO_CSUM 4 /* collect_md: outer UDP checksum 0 (BPF_F_ZERO_CSUM_TX) */
#define FP_TX_PEER   8 /* local to local: bpf_redirect_peer instead of bpf_redirect */

struct fp_cfg {
	__u32 vxlan_ifindex;
	__u32 flags;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32); /* inner IPv4, network order */
	__type(value, struct fp_ep);
} fp_ep SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct fp_cfg);
} fp_cfg SEC(".maps");

struct arp_eth {
	__be16 htype, ptype;
	__u8 hlen, plen;
	__be16 op;
	__u8 sha[6];
	__be32 spa;
	__u8 tha[6];
	__be32 tpa;
} __attribute__((packed));

static __always_inline int answer_arp(struct __sk_buff *skb, void *data, void *end)
{
	struct ethhdr *eth = data;
	struct arp_eth *arp = (void *)(eth + 1);
	if ((void *)(arp + 1) > end)
		return TC_ACT_OK;
	if (arp->htype != bpf_htons(ARPHRD_ETHER) || arp->ptype != bpf_htons(ETH_P_IP) ||
	    arp->op != bpf_htons(ARPOP_REQUEST))
		return TC_ACT_OK;
	__be32 target = arp->tpa;
	struct fp_ep *ep = bpf_map_lookup_elem(&fp_ep, &target);
	if (!ep)
		return TC_ACT_OK; /* the gateway, unknown IPs: the bridge answers or floods */
	__u8 asker[6];
	__builtin_memcpy(asker, arp->sha, 6);
	__be32 asker_ip = arp->spa;
	arp->op = bpf_htons(ARPOP_REPLY);
	__builtin_memcpy(arp->tha, asker, 6);
	arp->tpa = asker_ip;
	__builtin_memcpy(arp->sha, ep->mac, 6);
	arp->spa = target;
	__builtin_memcpy(eth->h_dest, asker, 6);
	__builtin_memcpy(eth->h_source, ep->mac, 6);
	return bpf_redirect(skb->ifindex, 0); /* back out of the port, to the task */
}

SEC("tc")
int fp_tx(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	__u32 zero = 0;

	if ((void *)(eth + 1) > end)
		return TC_ACT_OK;
	if (eth->h_proto == bpf_htons(ETH_P_ARP))
		return answer_arp(skb, data, end);
	if (eth->h_proto != bpf_htons(ETH_P_IP))
		return TC_ACT_OK;
	struct iphdr *ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > end)
		return TC_ACT_OK;
	__be32 dst = ip->daddr;
	struct fp_ep *ep = bpf_map_lookup_elem(&fp_ep, &dst);
	struct fp_cfg *cfg = bpf_map_lookup_elem(&fp_cfg, &zero);
	if (!ep || !cfg)
		return TC_ACT_OK;
	/* The task addressed the frame from its neighbour table; make sure it is the
	 * endpoint's MAC (FDB lookup and the receiver's eth layer depend on it). */
	__builtin_memcpy(eth->h_dest, ep->mac, 6);
	if (ep->ifindex) {
		if (cfg->flags & FP_TX_PEER) {
			bpf_skb_change_type(skb, PACKET_HOST);
			return bpf_redirect_peer(ep->ifindex, 0);
		}
		return bpf_redirect(ep->ifindex, 0);
	}
	if (cfg->flags & FP_MD) {
		struct bpf_tunnel_key key = {};
		key.remote_ipv4 = bpf_ntohl(ep->vtep);
		key.tunnel_id = ep->vni;
		key.tunnel_ttl = 64;
		__u64 f = (cfg->flags & FP_ZERO_CSUM) ? BPF_F_ZERO_CSUM_TX : 0;
		if (bpf_skb_set_tunnel_key(skb, &key, sizeof(key), f) < 0)
			return TC_ACT_SHOT;
	}
	return bpf_redirect(cfg->vxlan_ifindex, 0);
}

SEC("tc")
int fp_rx(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	__u32 zero = 0;
	struct fp_cfg *cfg = bpf_map_lookup_elem(&fp_cfg, &zero);
	if (!cfg)
		return TC_ACT_OK;
	int miss = (cfg->flags & FP_MD) ? TC_ACT_SHOT : TC_ACT_OK;

	if ((void *)(eth + 1) > end)
		return miss;
	if (eth->h_proto != bpf_htons(ETH_P_IP))
		return miss;
	struct iphdr *ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > end)
		return miss;
	__be32 dst = ip->daddr;
	struct fp_ep *ep = bpf_map_lookup_elem(&fp_ep, &dst);
	if (!ep || !ep->ifindex)
		return miss;
	if (cfg->flags & FP_MD) {
		struct bpf_tunnel_key key = {};
		if (bpf_skb_get_tunnel_key(skb, &key, sizeof(key), 0) < 0 || key.tunnel_id != ep->vni)
			return TC_ACT_SHOT; /* isolation: another network's VNI */
	}
	/* vxlan_rcv ran eth_type_trans against the VXLAN device's MAC: the frame is
	 * PACKET_OTHERHOST, which the task's ip_rcv would drop after redirect_peer. */
#ifndef FP_NO_CHANGE_TYPE /* build with -DFP_NO_CHANGE_TYPE to see the drop */
	bpf_skb_change_type(skb, PACKET_HOST);
#endif
	if (cfg->flags & FP_RX_PEER)
		return bpf_redirect_peer(ep->ifindex, 0);
	return bpf_redirect(ep->ifindex, 0);
}

/* For the "XDP on veth" experiment: a program that passes everything. */
SEC("xdp")
int fp_xdp_pass(struct xdp_md *ctx)
{
	return XDP_PASS;
}

char _license[] SEC("license") = "GPL";
