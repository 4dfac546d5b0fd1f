// SPDX-License-Identifier: GPL-2.0
/* Shoal overlay fast path experiment 2: VXLAN encapsulation in tc eBPF, no VXLAN device and
 * no bridge on the fast path. Packets keep their GSO shape (one 64 KB TCP super-packet is
 * encapsulated once, with the skb marked SKB_GSO_UDP_TUNNEL so a NIC or the stack can segment
 * it later).
 *
 *   fp_enc_tx  tc ingress of a task's host-end veth (what the task sends):
 *              ARP request for a known endpoint -> answered in place (like fp.c);
 *              IPv4 to a local endpoint -> bpf_redirect_peer into its namespace;
 *              IPv4 to a remote endpoint -> bpf_skb_adjust_room(+50, MAC, ENCAP_L3_IPV4 |
 *                ENCAP_L4_UDP | ENCAP_L2_ETH(14) | FIXED_GSO), outer Ethernet/IPv4/UDP/VXLAN
 *                headers written from the maps, then
 *                  node layout (host end in the node namespace): bpf_redirect -> underlay egress
 *                  net layout (host end in the network's namespace): bpf_redirect_peer -> the
 *                    network's uplink veth, whose node-side end runs fp_fwd;
 *              anything else -> TC_ACT_OK (bridge / slow path).
 *   fp_fwd     tc ingress of the uplink's node-side end (net layout): VXLAN packets ->
 *              bpf_redirect to the underlay device's egress; rest TC_ACT_OK.
 *   fp_dec_rx  tc ingress of the underlay device (node namespace): UDP 4789 to our VTEP with a
 *              VNI we serve -> copy the inner Ethernet header over the outer one, shrink 50
 *              bytes after it (FIXED_GSO, NO_CSUM_RESET) -> PACKET_HOST ->
 *                node layout: bpf_redirect_peer into the task (inner dst IP -> host end, VNI checked)
 *                net layout: bpf_redirect_peer into the network's namespace (VNI -> uplink)
 *              anything else (the underlay's own traffic, unknown VNIs) -> TC_ACT_OK, so a kernel
 *              VXLAN device on the same port still gets it (slow path).
 *   fp_up_rx   tc ingress of the uplink's network-side end (net layout): inner dst IP ->
 *              bpf_redirect_peer into the task; rest TC_ACT_OK (bridge).
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <linux/ip.h>
#include <linux/in.h>
#include <linux/udp.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define ARPHRD_ETHER 1
#define ARPOP_REQUEST 1
#define ARPOP_REPLY 2
#define VXLAN_PORT 4789

struct fp_ep {
	__u32 ifindex; /* local endpoint: its host-end veth in this namespace; 0 = remote */
	__u32 vtep;    /* remote endpoint: VTEP IPv4, network order */
	__u32 vni;
	__u8 mac[6];
	__u16 pad;
};

#define FP_VIA_PEER 1 /* net layout: encapsulated frames leave through redirect_peer(out_ifindex) */
#define FP_DEC_VNI  2 /* net layout: decap hands to the VNI's uplink, not straight to the task */
#define FP_NOENCAP  4 /* control experiment ("route" mode): no VXLAN at all, frames go to the
                         underlay as they are (MACs rewritten) and are matched on the inner dst,
                         i.e. native routing between task subnets; the ceiling of any design that
                         keeps the task behind a veth */

struct fp_ecfg {
	__u32 out_ifindex; /* fp_enc_tx: underlay dev (node layout) or uplink's net end (net layout);
	                      fp_fwd: underlay dev */
	__u32 flags;
	__u32 vtep;        /* our VTEP IPv4, network order */
	__u8 mac[6];       /* our underlay MAC */
	__u16 pad;
};

struct fp_remote {
	__u8 mac[6]; /* the remote VTEP's underlay next-hop MAC (from the neighbour table) */
	__u16 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, struct fp_ep);
} fp_ep SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct fp_ecfg);
} fp_ecfg SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32); /* remote VTEP IPv4, network order */
	__type(value, struct fp_remote);
} fp_remote SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);   /* VNI */
	__type(value, __u32); /* uplink ifindex (node side) */
} fp_vni SEC(".maps");

struct arp_eth {
	__be16 htype, ptype;
	__u8 hlen, plen;
	__be16 op;
	__u8 sha[6];
	__be32 spa;
	__u8 tha[6];
	__be32 tpa;
} __attribute__((packed));

struct vxlanhdr_ {
	__be32 flags;
	__be32 vni;
};

struct encap {
	struct iphdr ip;
	struct udphdr udp;
	struct vxlanhdr_ vx;
	struct ethhdr inner;
} __attribute__((packed));

#define ENCAP_LEN ((int)sizeof(struct encap)) /* 50 */

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
		return TC_ACT_OK;
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
	return bpf_redirect(skb->ifindex, 0);
}

static __always_inline __u16 csum_fold(__u32 sum)
{
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)~sum;
}

SEC("tc")
int fp_enc_tx(struct __sk_buff *skb)
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
	struct fp_ecfg *cfg = bpf_map_lookup_elem(&fp_ecfg, &zero);
	if (!ep || !cfg)
		return TC_ACT_OK;
	if (ep->ifindex) {
		__builtin_memcpy(eth->h_dest, ep->mac, 6);
		bpf_skb_change_type(skb, PACKET_HOST);
		return bpf_redirect_peer(ep->ifindex, 0);
	}
	__be32 vtep = ep->vtep;
	struct fp_remote *rm = bpf_map_lookup_elem(&fp_remote, &vtep);
	if (!rm)
		return TC_ACT_SHOT;
	if (cfg->flags & FP_NOENCAP) {
		__builtin_memcpy(eth->h_dest, rm->mac, 6);
		__builtin_memcpy(eth->h_source, cfg->mac, 6);
		return bpf_redirect(cfg->out_ifindex, 0);
	}

	struct encap h = {};
	__builtin_memcpy(h.inner.h_dest, ep->mac, 6);
	__builtin_memcpy(h.inner.h_source, eth->h_source, 6);
	h.inner.h_proto = bpf_htons(ETH_P_IP);
	__u32 inner_len = skb->len; /* inner Ethernet frame */
	__u32 hash = bpf_get_hash_recalc(skb);

	struct iphdr iph = {};
	iph.version = 4;
	iph.ihl = 5;
	iph.ttl = 64;
	iph.protocol = IPPROTO_UDP;
	iph.saddr = cfg->vtep;
	iph.daddr = vtep;
	iph.tot_len = bpf_htons(inner_len + sizeof(struct iphdr) + sizeof(struct udphdr) +
				sizeof(struct vxlanhdr_));
	iph.check = csum_fold(bpf_csum_diff(0, 0, (__be32 *)&iph, sizeof(iph), 0));
	__builtin_memcpy(&h.ip, &iph, sizeof(iph));
	/* source port from the inner flow, as the kernel's udp_flow_src_port does */
	h.udp.source = bpf_htons((__u16)(((__u64)hash * (61000 - 32768)) >> 32) + 32768);
	h.udp.dest = bpf_htons(VXLAN_PORT);
	h.udp.len = bpf_htons(inner_len + sizeof(struct udphdr) + sizeof(struct vxlanhdr_));
	h.udp.check = 0; /* IPv4: zero UDP checksum, like vxlan's default noudpcsum */
	h.vx.flags = bpf_htonl(0x08000000);
	h.vx.vni = bpf_htonl(ep->vni << 8);

	__u64 flags = BPF_F_ADJ_ROOM_FIXED_GSO | BPF_F_ADJ_ROOM_ENCAP_L3_IPV4 |
		      BPF_F_ADJ_ROOM_ENCAP_L4_UDP | BPF_F_ADJ_ROOM_ENCAP_L2_ETH |
		      BPF_F_ADJ_ROOM_ENCAP_L2(sizeof(struct ethhdr));
	if (bpf_skb_adjust_room(skb, ENCAP_LEN, BPF_ADJ_ROOM_MAC, flags))
		return TC_ACT_SHOT;
	if (bpf_skb_store_bytes(skb, sizeof(struct ethhdr), &h, sizeof(h), 0))
		return TC_ACT_SHOT;
	struct ethhdr outer = {};
	__builtin_memcpy(outer.h_dest, rm->mac, 6);
	__builtin_memcpy(outer.h_source, cfg->mac, 6);
	outer.h_proto = bpf_htons(ETH_P_IP);
	if (bpf_skb_store_bytes(skb, 0, &outer, sizeof(outer), 0))
		return TC_ACT_SHOT;
	if (cfg->flags & FP_VIA_PEER)
		return bpf_redirect_peer(cfg->out_ifindex, 0);
	return bpf_redirect(cfg->out_ifindex, 0);
}

/* Is this an IPv4/UDP/VXLAN frame? Returns the VNI + 1, or 0. */
static __always_inline __u32 vxlan_vni(void *data, void *end, __be32 *daddr)
{
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > end || eth->h_proto != bpf_htons(ETH_P_IP))
		return 0;
	struct iphdr *ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > end || ip->ihl != 5 || ip->protocol != IPPROTO_UDP)
		return 0;
	struct udphdr *udp = (void *)(ip + 1);
	if ((void *)(udp + 1) > end || udp->dest != bpf_htons(VXLAN_PORT))
		return 0;
	struct vxlanhdr_ *vx = (void *)(udp + 1);
	if ((void *)(vx + 1) > end || vx->flags != bpf_htonl(0x08000000))
		return 0;
	*daddr = ip->daddr;
	return (bpf_ntohl(vx->vni) >> 8) + 1;
}

SEC("tc")
int fp_fwd(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	__u32 zero = 0;
	__be32 daddr;
	struct fp_ecfg *cfg = bpf_map_lookup_elem(&fp_ecfg, &zero);
	if (!cfg || !vxlan_vni(data, end, &daddr))
		return TC_ACT_OK;
	return bpf_redirect(cfg->out_ifindex, 0);
}

SEC("tc")
int fp_dec_rx(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	__u32 zero = 0;
	__be32 daddr;
	struct fp_ecfg *cfg = bpf_map_lookup_elem(&fp_ecfg, &zero);
	if (!cfg)
		return TC_ACT_OK;
	if (cfg->flags & FP_NOENCAP) {
		struct ethhdr *eth = data;
		if ((void *)(eth + 1) > end || eth->h_proto != bpf_htons(ETH_P_IP))
			return TC_ACT_OK;
		struct iphdr *ip = (void *)(eth + 1);
		if ((void *)(ip + 1) > end)
			return TC_ACT_OK;
		__be32 d = ip->daddr;
		struct fp_ep *ep = bpf_map_lookup_elem(&fp_ep, &d);
		if (!ep || !ep->ifindex)
			return TC_ACT_OK;
		__builtin_memcpy(eth->h_dest, ep->mac, 6);
		bpf_skb_change_type(skb, PACKET_HOST);
		return bpf_redirect_peer(ep->ifindex, 0);
	}
	__u32 v = vxlan_vni(data, end, &daddr);
	if (!v || daddr != cfg->vtep)
		return TC_ACT_OK;
	__u32 vni = v - 1;
	__u32 target;
	if (cfg->flags & FP_DEC_VNI) {
		__u32 *up = bpf_map_lookup_elem(&fp_vni, &vni);
		if (!up)
			return TC_ACT_OK; /* not ours: the kernel's VXLAN socket, if any */
		target = *up;
	} else {
		/* inner IPv4 dst at 14 + 50 + 12 + 4 */
		struct iphdr *iip = data + sizeof(struct ethhdr) + ENCAP_LEN;
		if ((void *)(iip + 1) > end)
			return TC_ACT_OK;
		__be32 idst = iip->daddr;
		struct fp_ep *ep = bpf_map_lookup_elem(&fp_ep, &idst);
		if (!ep || !ep->ifindex || ep->vni != vni)
			return TC_ACT_OK;
		target = ep->ifindex;
	}
	/* inner Ethernet header becomes the frame's; then drop outer IP/UDP/VXLAN + old inner eth */
	struct ethhdr inner;
	if (bpf_skb_load_bytes(skb, sizeof(struct ethhdr) + ENCAP_LEN - sizeof(struct ethhdr), &inner,
			       sizeof(inner)))
		return TC_ACT_SHOT;
	if (bpf_skb_store_bytes(skb, 0, &inner, sizeof(inner), 0))
		return TC_ACT_SHOT;
	if (bpf_skb_adjust_room(skb, -ENCAP_LEN, BPF_ADJ_ROOM_MAC,
				BPF_F_ADJ_ROOM_FIXED_GSO | BPF_F_ADJ_ROOM_NO_CSUM_RESET))
		return TC_ACT_SHOT;
	bpf_skb_change_type(skb, PACKET_HOST);
	return bpf_redirect_peer(target, 0);
}

SEC("tc")
int fp_up_rx(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > end || eth->h_proto != bpf_htons(ETH_P_IP))
		return TC_ACT_OK;
	struct iphdr *ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > end)
		return TC_ACT_OK;
	__be32 dst = ip->daddr;
	struct fp_ep *ep = bpf_map_lookup_elem(&fp_ep, &dst);
	if (!ep || !ep->ifindex)
		return TC_ACT_OK;
	bpf_skb_change_type(skb, PACKET_HOST);
	return bpf_redirect_peer(ep->ifindex, 0);
}

char _license[] SEC("license") = "GPL";
