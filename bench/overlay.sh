#!/usr/bin/env bash
# Overlay benchmark (issue: overlay networks §5): iperf3 between two tasks on different
# nodes over a Shoal overlay, against iperf3 between the same two nodes' namespaces over
# the underlay, in the same run, at underlay MTU 1500 and 9000; and endpoint propagation:
# from a task reaching running on one node to it answering a task on another node.
# Results go to bench/results/overlay-<timestamp>.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build -q --bins
export PATH="$PWD/target/debug:$PATH"
LAB=obench$$
SECS=${SECS:-5}
N=${N:-20}
out="bench/results/overlay-$(date -u +%Y%m%dT%H%M%SZ).txt"
trap 'shoal lab down --name "$LAB" >/dev/null 2>&1 || true' EXIT
on() { local n=$1; shift; shoal lab exec --name "$LAB" "$n" -- "$@"; }
gbits() { python3 -c 'import json,sys; d=json.load(sys.stdin); print("%.2f" % (d["end"]["sum_received"]["bits_per_second"]/1e9))'; }
wait_running() { # service name
  for _ in $(seq 1 400); do
    on vm1 shoal service ps -f desired-state=running --format '{{.CurrentState}}' "$1" 2>/dev/null | grep -q '^Running' && return 0
    sleep 0.05
  done; echo "timed out waiting for $1" >&2; return 1; }
task_ip() { on vm1 shoal inspect --format '{{range .NetworksAttachments}}{{index .Addresses 0}}{{end}}' "$(on vm1 shoal service ps -q -f desired-state=running "$1" | head -1)" | cut -d/ -f1; }

run_mtu() {
  local mtu=$1
  shoal lab down --name "$LAB" >/dev/null 2>&1 || true
  shoal lab up --name "$LAB" --nodes 2 --mtu "$mtu" >/dev/null
  on vm1 shoal swarm init --advertise-addr 10.77.0.11 --dispatcher-heartbeat 1s >/dev/null
  on vm2 shoal swarm join --token "$(on vm1 shoal swarm join-token -q worker)" 10.77.0.11:2377 >/dev/null
  on vm1 shoal network create perf >/dev/null
  on vm1 shoal service create -d -q --name srv --network perf --constraint node.hostname==vm2 perf iperf3 -s >/dev/null
  on vm1 shoal service create -d -q --name cli --network perf --constraint node.hostname==vm1 perf sleep 3600 >/dev/null
  wait_running srv; wait_running cli
  local ip; ip=$(task_ip srv)
  # Underlay: the same two nodes' namespaces, no overlay.
  on vm2 iperf3 -s -D -p 5301 >/dev/null; sleep 0.3
  local under over
  under=$(on vm1 iperf3 -c 10.77.0.12 -p 5301 -t "$SECS" -J | gbits)
  sleep 0.5
  over=$(on vm1 shoal exec cli.1 iperf3 -c "$ip" -t "$SECS" -J | gbits)
  echo "MTU $mtu: underlay ${under} Gbit/s, overlay ${over} Gbit/s, ratio $(echo "scale=2; $over / $under" | bc)"
}

propagation() {
  # Time from a task running on vm2 to a task on vm1 reaching it, N times.
  shoal lab down --name "$LAB" >/dev/null 2>&1 || true
  shoal lab up --name "$LAB" --nodes 2 >/dev/null
  on vm1 shoal swarm init --advertise-addr 10.77.0.11 --dispatcher-heartbeat 1s >/dev/null
  on vm2 shoal swarm join --token "$(on vm1 shoal swarm join-token -q worker)" 10.77.0.11:2377 >/dev/null
  on vm1 shoal network create prop >/dev/null
  on vm1 shoal service create -d -q --name probe --network prop --constraint node.hostname==vm1 perf sleep 3600 >/dev/null
  wait_running probe
  local times=()
  for i in $(seq 1 "$N"); do
    on vm1 shoal service create -d -q --name "t$i" --network prop --constraint node.hostname==vm2 perf shoal-whoami --listen 0.0.0.0:80 >/dev/null
    wait_running "t$i"
    local t0 ip; t0=$(date +%s.%N); ip=$(task_ip "t$i")
    for _ in $(seq 1 200); do
      on vm1 shoal exec probe.1 curl -s -m 0.2 -o /dev/null "http://$ip/" && break
    done
    times+=("$(echo "$(date +%s.%N) - $t0" | bc)")
    on vm1 shoal service rm "t$i" >/dev/null
  done
  printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1} END {printf "endpoint propagation over %d tasks (running -> reachable from another node, incl. ~%s s of CLI polling): p50 %.3f s, p99 %.3f s\n", NR, "0.05", a[int(NR*0.5+0.5)], a[NR]}'
}

{
echo "# bench/overlay.sh  ($(date -u +%FT%TZ), $(nproc) cores, kernel $(uname -r))"
echo "# command: SECS=$SECS N=$N bench/overlay.sh"
run_mtu 1500
run_mtu 9000
propagation
} | tee "$out"
echo "results: $out"
