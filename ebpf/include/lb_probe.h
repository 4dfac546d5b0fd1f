/* SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0) */
/*
 * The other nodes' data-plane liveness probes, answered here, in the node's
 * data plane, not by shoald. A node that stops answering takes no new mesh
 * flows and its flows move to other backends within a second; a node whose
 * shoald restarts (an upgrade, a crash, kill -9) keeps forwarding, its tasks
 * keep running and its pinned maps and filters stay, so it must not be taken
 * for dead: answered by shoald, every flow to its tasks was moved, and reset by
 * its new backend, each time shoald restarted. Answered here, a node is alive
 * exactly as long as its kernel runs these programs: until it loses power or
 * leaves the swarm (which detaches them).
 *
 * A probe (UDP to LB_PROBE_PORT on one of this node's addresses, a whole
 * datagram of exactly the probe's length with its magic and kind) goes back out
 * of the interface it came in by, as its answer: MACs, addresses and ports
 * swapped (which leaves every checksum as it was), the kind made
 * LB_PROBE_ANSWER (the UDP checksum adjusted; one of 0, none, stays 0), a
 * fresh TTL. Anything else to that port, answers included, goes on to shoald's
 * socket. The answer is no larger than the probe, as shoald's was: nothing to
 * amplify.
 */
#ifndef SHOAL_LB_PROBE_H
#define SHOAL_LB_PROBE_H

#include "lb_helpers.h"
#include "probe_wire.h"


/* TC_ACT_OK: not a probe, left untouched; else the verdict for its answer. */
static __always_inline int lb_probe_answer(struct __sk_buff *skb, const struct pkt *p)
{
	struct {
		struct udphdr udp;
		__u8 msg[LB_PROBE_LEN];
	} __attribute__((packed)) d;
	struct iphdr ip;

	if (p->frag != PKT_WHOLE || bpf_skb_load_bytes(skb, p->l4off, &d, sizeof(d)))
		return TC_ACT_OK;
	if (bpf_skb_load_bytes(skb, ETH_HLEN, &ip, sizeof(ip)))
		return TC_ACT_OK;
	if (bpf_ntohs(d.udp.len) != sizeof(d) ||
	    bpf_ntohs(ip.tot_len) != p->l4off - ETH_HLEN + sizeof(d))
		return TC_ACT_OK;
	if (__builtin_memcmp(d.msg, "SHOALPRB", 8) || d.msg[8] != LB_PROBE_KIND)
		return TC_ACT_OK;

	__u32 kind_off = p->l4off + sizeof(struct udphdr) + 8;
	__u32 csum_off = p->l4off + offsetof(struct udphdr, check);
	/* The kind and the nonce's first byte: one 16-bit word of the checksum. */
	__u16 old_word, new_word;
	__u8 answer[2] = { LB_PROBE_ANSWER, d.msg[9] };
	__builtin_memcpy(&old_word, &d.msg[8], 2);
	__builtin_memcpy(&new_word, answer, 2);
	if (bpf_l4_csum_replace(skb, csum_off, old_word, new_word,
				sizeof(__u16) | BPF_F_MARK_MANGLED_0))
		return TC_ACT_SHOT;
	if (bpf_skb_store_bytes(skb, kind_off, answer, 1, 0))
		return TC_ACT_SHOT;

	__u8 macs[2 * ETH_ALEN];
	if (bpf_skb_load_bytes(skb, 0, macs, sizeof(macs)))
		return TC_ACT_SHOT;
	__u8 swapped[2 * ETH_ALEN];
	__builtin_memcpy(swapped, macs + ETH_ALEN, ETH_ALEN);
	__builtin_memcpy(swapped + ETH_ALEN, macs, ETH_ALEN);
	if (bpf_skb_store_bytes(skb, 0, swapped, sizeof(swapped), 0))
		return TC_ACT_SHOT;

	__u32 addrs[2] = { ip.daddr, ip.saddr };
	if (bpf_skb_store_bytes(skb, ETH_HLEN + offsetof(struct iphdr, saddr), addrs,
				sizeof(addrs), 0))
		return TC_ACT_SHOT;
	__u16 ports[2] = { d.udp.dest, d.udp.source };
	if (bpf_skb_store_bytes(skb, p->l4off, ports, sizeof(ports), 0))
		return TC_ACT_SHOT;
	/* A fresh TTL, as any sender's: the probe's was spent on the way here. */
	__u16 old_ttl, new_ttl;
	__u8 ttl_proto[2] = { 64, ip.protocol };
	__builtin_memcpy(&old_ttl, &ip.ttl, 2);
	__builtin_memcpy(&new_ttl, ttl_proto, 2);
	if (bpf_l3_csum_replace(skb, ETH_HLEN + offsetof(struct iphdr, check), old_ttl, new_ttl,
				sizeof(__u16)))
		return TC_ACT_SHOT;
	if (bpf_skb_store_bytes(skb, ETH_HLEN + offsetof(struct iphdr, ttl), &ttl_proto[0], 1, 0))
		return TC_ACT_SHOT;
	return bpf_redirect(skb->ifindex, 0);
}

#endif
