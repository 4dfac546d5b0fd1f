#!/usr/bin/env bash
# Service scale benchmark (issue: services §10): in a 3-node lab, the time from
# `service scale web=50` to 50/50 tasks running (real processes in their own namespaces),
# beside the time for one task (scale 0 -> 1) measured in the same run.
# Results go to bench/results/scale-<timestamp>.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build -q --bins
export PATH="$PWD/target/debug:$PATH"
LAB=sbench$$
N=${N:-50}
out="bench/results/scale-$(date -u +%Y%m%dT%H%M%SZ).txt"
trap 'shoal lab down --name "$LAB" >/dev/null 2>&1 || true' EXIT
on() { local n=$1; shift; shoal lab exec --name "$LAB" "$n" -- "$@"; }
now() { date +%s.%N; }
# Seconds until `service ls` shows want/want for web (bounded: 120 s).
until_running() {
  local want=$1 start=$2
  for _ in $(seq 1 2400); do
    [ "$(on vm1 shoal service ls --format '{{.Replicas}}' 2>/dev/null)" = "$want/$want" ] && { echo "$(now) - $start" | bc; return 0; }
    sleep 0.05
  done
  echo "timed out waiting for $want/$want" >&2; return 1; }

shoal lab up --name "$LAB" --nodes 3 >/dev/null
on vm1 shoal swarm init --advertise-addr 10.77.0.11 >/dev/null
tok=$(on vm1 shoal swarm join-token -q worker)
on vm2 shoal swarm join --token "$tok" 10.77.0.11:2377 >/dev/null
on vm3 shoal swarm join --token "$tok" 10.77.0.11:2377 >/dev/null
on vm1 shoal service create -d -q --name web --replicas 0 shoal/demo-web:1.0 shoal-whoami --listen 0.0.0.0:80 >/dev/null

{
echo "# bench/scale.sh  ($(date -u +%FT%TZ), $(nproc) cores, kernel $(uname -r))"
echo "# command: N=$N bench/scale.sh"
t0=$(now); on vm1 shoal service scale -d web=1 >/dev/null
one=$(until_running 1 "$t0")
echo "baseline: scale web=1 (one task) to 1/1 running: ${one}s"
on vm1 shoal service scale -d web=0 >/dev/null; sleep 2
t0=$(now); on vm1 shoal service scale -d web="$N" >/dev/null
many=$(until_running "$N" "$t0")
echo "scale web=$N to $N/$N running: ${many}s (target <= 10 s)"
echo "ratio to one task: $(echo "scale=2; $many / $one" | bc)x for ${N}x the tasks"
echo "placement: $(on vm1 shoal service ps -f desired-state=running --format '{{.Node}}' web | sort | uniq -c | tr '\n' ' ')"
} | tee "$out"
echo "results: $out"
