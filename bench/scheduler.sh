#!/usr/bin/env bash
# Scheduler benchmark: placements/s of shoal-scheduler on a simulated 1,000-node cluster
# with 100,000 tasks (constraints, max replicas, spread), beside a naive per-task scan of
# all nodes measured in the same run. Results go to bench/results/scheduler-<timestamp>.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
cmd="cargo run --release -q -p shoal-scheduler --example sim"
now=$(date -u +%s)
out="bench/results/scheduler-$(date -u -d "@$now" +%Y%m%dT%H%M%SZ).txt"
mkdir -p bench/results
cargo build --release -q -p shoal-scheduler --example sim
{
echo "# command: $cmd  ($(date -u -d "@$now" +%FT%TZ), $(nproc) cores, kernel $(uname -r))"
$cmd
} | tee "$out"
echo "results: $out"
