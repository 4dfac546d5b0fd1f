// SPDX-License-Identifier: GPL-2.0-only OR Apache-2.0
/*
 * tc egress of a task's port on an overlay bridge: what the task receives
 * through the bridge (reverse NAT of VIP flows, the return MAC of mesh flows:
 * task_rx). Everything passes. A direct-return mark means nothing here: who
 * set it cannot be told on the kernel's path.
 */
#include "lb_helpers.h"

SEC("classifier")
int lb_task_in(struct __sk_buff *skb)
{
	return task_rx(skb, 0);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
