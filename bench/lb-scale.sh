#!/usr/bin/env bash
# Load-balancer scale benchmark (issue 5, section 5 "Scale"): 10, 1,000 and 10,000
# services with 10 backends each programmed into Shoal's load balancer through
# LoadBalancer::apply (the daemon's path: backends, one Maglev table per service,
# swapped in whole, then the service entry), timed; and wrk requests/s on one real
# service while they are there, against the same service alone (ratio x_base), in
# the same run.
#
# Topology (namespaces made here, removed on exit; the root namespace is not touched):
#   lbs<pid>-client (10.99.0.2) --veth-- lbs<pid>-node (10.99.0.1; the load balancer on
#   its underlay interface, as in shoald) --veth (the load-balancer port)-- lbs<pid>-task
#   (10.0.0.5, shoal-whoami on :80, default route through the load-balancer port).
# Published port 8080 -> 10.0.0.5:80; the synthetic services publish 10000.. and have
# made-up backends in 10.128.0.0/9. The maps are pinned in a directory of this run.
# Env: COUNTS (10,1000,10000), BACKENDS (10), SECS (5), REPS (3), CONNS (32).
# Results go to bench/results/lb-scale-<UTC timestamp>.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build -q --bins
cargo build -q --release -p shoal-whoami
cargo build -q -p shoal-bench --bin lb_scale
COUNTS=${COUNTS:-10,1000,10000}
BACKENDS=${BACKENDS:-10}
SECS=${SECS:-5}
REPS=${REPS:-3}
CONNS=${CONNS:-32}
P=lbs$$
C=$P-client N=$P-node T=$P-task
LB_MAC=02:53:0a:63:00:01
TASK_MAC=02:42:0a:00:00:05
PIN=/sys/fs/bpf/shoal-bench-$P
out="bench/results/lb-scale-$(date -u +%Y%m%dT%H%M%SZ).txt"
cleanup() {
  for ns in $C $N $T; do
    ip netns pids "$ns" 2>/dev/null | xargs -r kill 2>/dev/null || true
    ip netns del "$ns" 2>/dev/null || true
  done
  rm -rf "$PIN"
}
trap cleanup EXIT
for ns in $C $N $T; do ip netns add "$ns"; ip -n "$ns" link set lo up; done
ip link add "$P-c" netns "$C" type veth peer name eth0 netns "$N"
ip -n "$C" link set "$P-c" name eth0
ip -n "$N" link add shoal-lb address "$LB_MAC" type veth peer name eth0 netns "$T" address "$TASK_MAC"
ip -n "$C" addr add 10.99.0.2/24 dev eth0
ip -n "$N" addr add 10.99.0.1/24 dev eth0
ip -n "$T" addr add 10.0.0.5/24 dev eth0
for ns in $C $N $T; do ip -n "$ns" link set eth0 up; done
ip -n "$N" link set shoal-lb up
# The task's gateway is the load-balancer port (as the ingress network's is in shoald).
ip -n "$T" neigh add 10.0.0.1 lladdr "$LB_MAC" dev eth0 nud permanent
ip -n "$T" route add default via 10.0.0.1
ip netns exec "$T" "$PWD/target/release/shoal-whoami" --listen 0.0.0.0:80 >/dev/null 2>&1 &
ip netns exec "$C" sysctl -qw net.ipv4.tcp_tw_reuse=1
{
echo "# bench/lb-scale.sh  ($(date -u +%FT%TZ), $(nproc) cores, kernel $(uname -r))"
echo "# command: COUNTS=$COUNTS BACKENDS=$BACKENDS SECS=$SECS REPS=$REPS CONNS=$CONNS bench/lb-scale.sh"
echo "# program_s: LoadBalancer::apply of the real service plus N-1 synthetic ones from the real one"
echo "# alone; remove_s: back to the real one alone; req/s: wrk -t1 -c$CONNS keep-alive on the real"
echo "# service (median of $REPS x ${SECS}s) while the others are programmed; x_base: against 1 service."
ip netns exec "$N" ${WRAP:-} "$PWD/target/debug/lb_scale" \
  --counts "$COUNTS" --backends "$BACKENDS" --secs "$SECS" --reps "$REPS" --conns "$CONNS" \
  --underlay eth0 --node-addr 10.99.0.1 --lb-port shoal-lb --lb-mac "$LB_MAC" \
  --task-addr 10.0.0.5 --task-mac "$TASK_MAC" --client-netns "$C" --pin-dir "$PIN"
} | tee "$out"
echo "wrote $out"
