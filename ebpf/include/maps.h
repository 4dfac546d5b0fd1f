/* SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0) */
/*
 * Every map of the load balancer, defined once. Hash maps that grow with the
 * services are not preallocated (creating them must not stall shoald's start). Each program object includes
 * this file; all maps are pinned by name in shoald's pin directory, so the
 * objects share them and they outlive a restart of shoald (established flows
 * keep their conntrack entries).
 */
#ifndef SHOAL_MAPS_H
#define SHOAL_MAPS_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "shoal_lb.h"

/* Frontends: VIPs and published ports. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, LB_MAX_SERVICES);
	__type(key, struct lb_svc_key);
	__type(value, struct lb_svc);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} lb_services SEC(".maps");

/* Backends by id (ids are this node's own; tables name them by id). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, LB_MAX_BACKENDS);
	__type(key, __u32);
	__type(value, struct lb_backend);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} lb_backends SEC(".maps");

/* One Maglev table per service id: an array of backend ids. shoald fills a new
 * inner map and swaps it in with one update, so no packet sees half a table.
 * Memory-mappable, so a table is written with one copy, not a syscall a slot. */
struct lb_maglev_inner {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, LB_MAGLEV_DEFAULT);
	__uint(map_flags, BPF_F_INNER_MAP | BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, __u32);
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH_OF_MAPS);
	__uint(max_entries, LB_MAX_SERVICES);
	__type(key, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__array(values, struct lb_maglev_inner);
} lb_maglev SEC(".maps");

/* Connection tracking, forward (keyed by the original tuple). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, LB_CT_ENTRIES);
	__type(key, struct lb_flow_key);
	__type(value, struct lb_ct);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} lb_ct SEC(".maps");

/* Reverse NAT (keyed by the reply's tuple). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, LB_CT_ENTRIES);
	__type(key, struct lb_flow_key);
	__type(value, struct lb_rev);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} lb_rev SEC(".maps");

/* Return path of mesh flows at the backend's node (keyed by the reply's tuple). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, LB_RET_ENTRIES);
	__type(key, struct lb_flow_key);
	__type(value, struct lb_ret);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} lb_ret SEC(".maps");

/* The ports of fragmented datagrams, from their first fragments (struct
 * lb_frag_key); a record older than LB_FRAG_TIMEOUT_NS is not used. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, LB_FRAG_ENTRIES);
	__type(key, struct lb_frag_key);
	__type(value, struct lb_frag);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} lb_frags SEC(".maps");

/* Direct server return: published port by backend (shoald leaves out a
 * backend two published ports share). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, LB_MAX_BACKENDS);
	__type(key, struct lb_dsr_key);
	__type(value, __u32); /* the published port, network order, in the low 16 bits */
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} lb_dsr SEC(".maps");

/* The node's own IPv4 addresses: published ports answer on each. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, LB_MAX_LOCAL_ADDRS);
	__type(key, __u32);
	__type(value, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} lb_local_addrs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct lb_config);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} lb_config SEC(".maps");

/* Counters per backend id, and per service id for flows no backend took. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, LB_MAX_BACKENDS);
	__type(key, __u32);
	__type(value, struct lb_counters);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} lb_backend_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, LB_MAX_SERVICES);
	__type(key, __u32);
	__type(value, struct lb_counters);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} lb_svc_stats SEC(".maps");

/* The overlay fast path: endpoints by address, networks by VNI (overlay.h). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, OV_MAX_ENDPOINTS);
	__type(key, __u32);
	__type(value, struct ov_ep);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ov_eps SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, OV_MAX_NETWORKS);
	__type(key, __u32);
	__type(value, struct ov_net);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ov_nets SEC(".maps");

/* The other nodes' VTEPs a mesh reply may go to (their load-balancer MACs
 * name them): only those. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, OV_MAX_NODES);
	__type(key, __u32);
	__type(value, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ov_vteps SEC(".maps");

/* Scratch space of a request the fast path splits: its first part (ov_split:
 * at most OV_SPLIT_MAX), or a whole datagram whose checksum is made whole
 * first (ov_udp_csum). A power of two, which the two mask with. */
#define OV_SCRATCH_LEN 4096
struct ov_scratch {
	__u8 data[OV_SCRATCH_LEN];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ov_scratch);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ov_scratch SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, OV_STATS);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ov_stats SEC(".maps");

#endif
