#!/usr/bin/env python3
"""Where the CPU went, by layer: reads `perf script -F comm,ip,sym,dso` of a
whole-machine cpu-clock profile (with call chains) and charges each sample to
the innermost frame that names a layer: an eBPF program (by name), netfilter,
the bridge, veth, the device layer (transmit, backlog, tc, redirects), IP,
TCP/sockets (copies to and from user space included), the scheduler and idle.
A sample whose kernel frames name no layer counts as "kernel: other" (locks,
slab, syscall entry...), one in user space as "user: <command>".

Usage: perf_layers.py SCRIPT_OUTPUT [LABEL]. Prints one line per layer, most first:
share of all samples, and the share of the busy ones (idle left out).
"""
import collections
import re
import sys

# (layer, pattern on a kernel symbol): the first frame from the leaf up that
# matches any of them gives the sample its layer; patterns are tried in order.
LAYERS = [
    ("eBPF: {}", re.compile(r"^bpf_prog_[0-9a-f]+_(\w+)")),
    ("netfilter", re.compile(r"^(br_nf_|nf_|nft_|ipt_|ip_tables|iptable_|nf_hook)")),
    ("bridge", re.compile(r"^(br_|__br_)")),
    ("veth", re.compile(r"^veth_")),
    ("device layer (xmit, backlog, tc, redirect)", re.compile(
        r"^(__dev_queue_xmit|dev_hard_start_xmit|validate_xmit|__netif_receive|netif_receive|"
        r"process_backlog|__napi_poll|net_rx_action|enqueue_to_backlog|netif_rx|__netif_rx|"
        r"skb_do_redirect|__bpf_redirect|tc_run|tcf_|__tcf_|cls_bpf|dev_forward_skb|"
        r"__dev_forward_skb|skb_gso_segment|__skb_gso_segment)")),
    ("IP, routing, neighbours", re.compile(
        r"^(ip_|__ip_|ip4_|fib_|ipv4_|neigh_|__neigh|arp_|udp_|__udp|udp4_|inet_gso|inet_gro)")),
    ("TCP and sockets", re.compile(
        r"^(tcp_|__tcp_|inet_|__inet_|sock_|sk_|__sk_|skb_copy_datagram|_copy_to_iter|"
        r"_copy_from_iter|bbr_|__sys_sendto|__sys_recvfrom|sock_write_iter|sock_read_iter)")),
    ("eBPF maps read by shoald", re.compile(r"^(__sys_bpf|bpf_map_do_batch|map_lookup_elem|"
                                             r"generic_map_|__htab_map_lookup_and_delete_batch)")),
    ("epoll and other syscalls", re.compile(r"^(do_epoll|ep_|__x64_sys_|do_syscall_64|ksys_|vfs_)")),
    ("idle", re.compile(r"^(pv_native_safe_halt|default_idle|cpuidle|do_idle|cpu_startup_entry)")),
    ("scheduler", re.compile(r"^(__schedule|schedule|finish_task_switch|try_to_wake_up|"
                             r"ttwu_|enqueue_task|dequeue_task|pick_next)")),
]


def samples(path):
    comm, frames = None, []
    with open(path, errors="replace") as f:
        for line in f:
            if not line.strip():
                if comm is not None:
                    yield comm, frames
                comm, frames = None, []
            elif not line[0].isspace():
                comm, frames = line.strip(), []
            else:
                parts = line.split(None, 1)
                rest = parts[1] if len(parts) > 1 else ""
                # "<symbol> (<dso>)"; a symbol may hold spaces (Rust generics)
                m = re.match(r"(.*) \((.*)\)\s*$", rest)
                sym, dso = (m.group(1), m.group(2)) if m else (rest.strip(), "")
                kernel = dso == "[kernel.kallsyms]" or dso.startswith("bpf_prog_")
                frames.append((sym.split("+")[0], kernel))
    if comm is not None:
        yield comm, frames


def layer(comm, frames):
    if frames and not frames[0][1]:
        return f"user: {comm}"
    for sym, kernel in frames:
        if not kernel:
            break
        for name, pattern in LAYERS:
            m = pattern.match(sym)
            if m:
                return name.format(*m.groups())
    return "kernel: other"


def main():
    path = sys.argv[1]
    label = sys.argv[2] if len(sys.argv) > 2 else path
    counts = collections.Counter(layer(c, f) for c, f in samples(path))
    total = sum(counts.values())
    busy = total - counts.get("idle", 0)
    if not total:
        print(f"{label}: no samples")
        return
    print(f"{label}: {total} samples, {100 * busy / total:.1f}% busy")
    ebpf = sum(v for k, v in counts.items() if k.startswith("eBPF"))
    for name, n in counts.most_common():
        if n * 1000 < total and not name.startswith("eBPF"):
            continue
        share = "" if name == "idle" else f"{100 * n / busy:5.1f}% of busy"
        print(f"  {100 * n / total:5.1f}%  {share:>14}  {name}")
    print(f"  {100 * ebpf / total:5.1f}%  {100 * ebpf / max(busy, 1):5.1f}% of busy  eBPF, all programs")


if __name__ == "__main__":
    main()
