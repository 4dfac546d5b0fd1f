/* Prints "struct field offset size" for every field of the structs shared with
 * Rust, "struct - 0 size" for each struct, and "const NAME value 0" for the
 * constants Rust mirrors; ebpf/src/lib.rs's test compares. */
#include <stddef.h>
#include <stdio.h>
#include "shoal_lb.h"
#include "probe_wire.h"

#define S(t) printf("%s - 0 %zu\n", #t, sizeof(struct t))
#define K(c) printf("const %s %lld 0\n", #c, (long long)(c))
#define F(t, f) printf("%s %s %zu %zu\n", #t, #f, offsetof(struct t, f), sizeof(((struct t *)0)->f))

int main(void)
{
	S(lb_svc_key); F(lb_svc_key, addr); F(lb_svc_key, port); F(lb_svc_key, proto); F(lb_svc_key, scope);
	S(lb_svc); F(lb_svc, id); F(lb_svc, maglev_size); F(lb_svc, flags);
	S(lb_backend); F(lb_backend, addr); F(lb_backend, port); F(lb_backend, mac); F(lb_backend, state);
	S(lb_flow_key); F(lb_flow_key, saddr); F(lb_flow_key, daddr); F(lb_flow_key, sport); F(lb_flow_key, dport); F(lb_flow_key, proto);
	S(lb_ct); F(lb_ct, last_seen); F(lb_ct, backend_id); F(lb_ct, svc_id); F(lb_ct, state); F(lb_ct, nat_port);
	S(lb_rev); F(lb_rev, last_seen); F(lb_rev, addr); F(lb_rev, port); F(lb_rev, mac); F(lb_rev, client_addr); F(lb_rev, client_port); F(lb_rev, ifindex);
	S(lb_ret); F(lb_ret, last_seen); F(lb_ret, mac); F(lb_ret, dsr_port);
	S(lb_frag_key); F(lb_frag_key, saddr); F(lb_frag_key, daddr); F(lb_frag_key, ifindex); F(lb_frag_key, id); F(lb_frag_key, proto); F(lb_frag_key, hook);
	S(lb_frag); F(lb_frag, seen); F(lb_frag, sport); F(lb_frag, dport);
	S(lb_dsr_key); F(lb_dsr_key, addr); F(lb_dsr_key, port); F(lb_dsr_key, proto);
	S(lb_config); F(lb_config, maglev_seed); F(lb_config, lb_ifindex); F(lb_config, underlay_ifindex); F(lb_config, snat_addr); F(lb_config, lb_mac); F(lb_config, flags); F(lb_config, vtep); F(lb_config, timeout_ns); F(lb_config, vxlan_port);
	S(ov_ep); F(ov_ep, vtep); F(ov_ep, ifindex); F(ov_ep, vni); F(ov_ep, mac);
	S(ov_net); F(ov_net, up_net); F(ov_net, up_node); F(ov_net, flags);
	S(lb_counters); F(lb_counters, packets); F(lb_counters, bytes); F(lb_counters, new_flows); F(lb_counters, drops);
	K(LB_PROBE_PORT); K(LB_PROBE_LEN); K(LB_PROBE_KIND); K(LB_PROBE_ANSWER);
	return 0;
}
