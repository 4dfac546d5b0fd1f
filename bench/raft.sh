#!/usr/bin/env bash
# Raft benchmark (issue: cluster foundation §11): a 3-manager lab over mTLS with the
# persistent log. Prints committed writes/s (concurrent clients), single-write latency
# p50/p99 and idle daemon RSS, each beside a baseline measured in the same run:
#   - the disk's raw fsync'd redb commit rate (the floor every durable write pays),
#   - the same writes on a 1-manager swarm (no replication).
# Results go to bench/results/raft-<timestamp>.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build -q --bins -p shoal -p shoal-bench
export PATH="$PWD/target/debug:$PATH"
LAB=rbench$$
CLIENTS=${CLIENTS:-64}
SECONDS_RUN=${SECONDS_RUN:-5}
out="bench/results/raft-$(date -u +%Y%m%dT%H%M%SZ).txt"
trap 'shoal lab down --name "$LAB" >/dev/null 2>&1 || true' EXIT

on() { local n=$1; shift; shoal lab exec --name "$LAB" "$n" -- "$@"; }
sock() { echo "unix:///var/lib/shoal-lab/$LAB/$1/shoal.sock"; }
rss_kib() { # resident memory of a node's shoald
  local pid; pid=$(cat "/var/lib/shoal-lab/$LAB/$1/shoald.pid"); awk '/VmRSS/ {print $2}' "/proc/$pid/status"; }
wait_ready() { # wait (bounded) until node ls on vm1 shows N Ready nodes
  for _ in $(seq 1 200); do
    [ "$(on vm1 shoal node ls --format '{{.Status}}' 2>/dev/null | grep -c Ready)" = "$1" ] && return 0; sleep 0.1; done
  echo "nodes not ready" >&2; return 1; }

up() { # a fresh lab with N managers, initialised and joined, all Ready
  shoal lab down --name "$LAB" >/dev/null 2>&1 || true
  shoal lab up --name "$LAB" --nodes "$1" >/dev/null
  on vm1 shoal swarm init --advertise-addr 10.77.0.11 >/dev/null
  local tok; tok=$(on vm1 shoal swarm join-token -q manager)
  for i in $(seq 2 "$1"); do on "vm$i" shoal swarm join --token "$tok" 10.77.0.11:2377 >/dev/null; done
  wait_ready "$1"; }

{
echo "# bench/raft.sh  ($(date -u +%FT%TZ), $(nproc) cores, kernel $(uname -r))"
echo "# command: CLIENTS=$CLIENTS SECONDS_RUN=$SECONDS_RUN bench/raft.sh"
echo "# each write: a node label update through the manager's API socket, one Raft entry"
echo "# (batched with whatever else is queued), fsync'd on a quorum before it is answered"
echo
echo "## baseline: raw fsync'd redb commits on the data disk"
shoal-bench fsync --dir "/var/lib/shoal-lab" --commits 2000

up 1
echo
echo "## baseline: 1 manager (no replication)"
shoal-bench writes --host "$(sock vm1)" --clients "$CLIENTS" --seconds "$SECONDS_RUN"

up 3
sleep 3  # idle: heartbeats only
echo
echo "## idle resident memory of a fresh 3-manager swarm (KiB)"
for n in vm1 vm2 vm3; do echo "$n shoald_rss_kib=$(rss_kib $n)"; done
echo
echo "## 3 managers over mTLS (writes on the leader, vm1)"
shoal-bench writes --host "$(sock vm1)" --clients "$CLIENTS" --seconds "$SECONDS_RUN"
echo
echo "## 3 managers, writes asked on a follower (vm2, forwarded to the leader)"
shoal-bench writes --host "$(sock vm2)" --clients "$CLIENTS" --seconds "$SECONDS_RUN" --latency-writes 200
sleep 3
echo
echo "## resident memory after the load, idle again (KiB)"
for n in vm1 vm2 vm3; do echo "$n shoald_rss_kib=$(rss_kib $n)"; done
} | tee "$out"
echo "results: $out"
