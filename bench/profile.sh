#!/usr/bin/env bash
# Where the CPU goes on each benchmark path: a whole-machine perf profile (cpu-clock, call
# chains) taken while load runs through one path, charged by bench/perf_layers.py to the layer
# each sample ran in (each eBPF program by name, netfilter, bridge, veth, device layer, IP, TCP,
# applications...). The companion of bench/lb.sh and bench/overlay.sh: those say how fast a
# path is against its baseline, this says what the difference is made of.
#
# One lab (3 nodes + client, as bench/lb.sh): service `web` (shoal-whoami, --publish 8080:80,
# one task on vm2) and the same program on vm2's own address (10.77.0.12:8000); network `perf`
# with an iperf3 server task on vm2 and a client task on vm1, and iperf3 on vm2's address.
# Paths (PATHS, any of):
#   direct  mesh-vm2  mesh-vm3      wrk from the client namespace (keep-alive; CLOSE=1 adds
#                                   the same with Connection: close), as in bench/lb.sh
#   underlay  overlay               iperf3 vm1 -> vm2 node to node, task to task, as in
#                                   bench/overlay.sh
# Env: PATHS ("direct mesh-vm2 mesh-vm3 underlay overlay"), SECS (5), CLOSE (1), DSR (0),
# FREQ (999 Hz). Needs perf (Debian's linux-perf). Results: bench/results/profile-<UTC>.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v perf >/dev/null || { echo "perf not found (apt-get install linux-perf)" >&2; exit 1; }
cargo build -q --bins
cargo build -q --release -p shoal-whoami
export PATH="$PWD/target/debug:$PATH"
WHOAMI="$PWD/target/release/shoal-whoami"
LAB=profile$$
PATHS=${PATHS:-"direct mesh-vm2 mesh-vm3 underlay overlay"}
SECS=${SECS:-5}
CLOSE=${CLOSE:-1}
DSR=${DSR:-0}
FREQ=${FREQ:-999}
lab_args=()
[ "$DSR" = 1 ] && lab_args=(--shoald-arg=--lb-dsr)
out="bench/results/profile-$(date -u +%Y%m%dT%H%M%SZ).txt"
TMP=$(mktemp -d /tmp/shoal-profile.XXXXXX)
trap 'shoal lab down --name "$LAB" >/dev/null 2>&1 || true; rm -rf "$TMP"' EXIT
# shellcheck source=bench/lib.sh
. bench/lib.sh
wait_ok() { # command...: bounded retries until it succeeds
  for _ in $(seq 1 100); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "no success from: $*" >&2; return 1; }

exec > >(tee "$out") 2>&1
echo "# bench/profile.sh  ($(date -u +%FT%TZ), $(nproc) cores, kernel $(uname -r), load average at start: $(cut -d' ' -f1-3 /proc/loadavg))"
echo "# source: $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- . 2>/dev/null || echo ' (with local changes)')"
echo "# command: PATHS=\"$PATHS\" SECS=$SECS CLOSE=$CLOSE DSR=$DSR FREQ=$FREQ bench/profile.sh"
echo "# $(perf --version); perf record -a -g -e cpu-clock -F $FREQ for the load's duration"

shoal lab up --name "$LAB" --nodes 3 "${lab_args[@]}" >/dev/null
on vm1 shoal swarm init --advertise-addr 10.77.0.11 >/dev/null
token=$(on vm1 shoal swarm join-token -q worker)
for n in vm2 vm3; do on "$n" shoal swarm join --token "$token" 10.77.0.11:2377 >/dev/null; done
on vm1 shoal service create -d -q --name web --publish 8080:80 --constraint node.hostname==vm2 \
  demo "$WHOAMI" --listen 0.0.0.0:80 >/dev/null
on vm1 shoal network create perf >/dev/null
on vm1 shoal service create -d -q --name srv --network perf --constraint node.hostname==vm2 perf iperf3 -s >/dev/null
on vm1 shoal service create -d -q --name cli --network perf --constraint node.hostname==vm1 perf sleep 3600 >/dev/null
spawn vm2 "$TMP/direct.log" "$WHOAMI" --listen 10.77.0.12:8000
spawn vm2 "$TMP/iperf.log" iperf3 -s -B 10.77.0.12
for s in web srv cli; do wait_running "$s"; done
srv_ip=$(on vm1 shoal inspect --format '{{range .NetworksAttachments}}{{index .Addresses 0}}{{end}}' "$(task_id srv)" | cut -d/ -f1)
cli_task=$(task_id cli)
wait_ok on client curl -sf -m 1 -o /dev/null http://10.77.0.13:8080/
wait_ok on client curl -sf -m 1 -o /dev/null http://10.77.0.12:8080/
wait_ok on client curl -sf -m 1 -o /dev/null http://10.77.0.12:8000/
wait_ok on vm1 shoal exec "$cli_task" iperf3 -c "$srv_ip" -n 1M
wait_ok on vm1 iperf3 -c 10.77.0.12 -n 1M

# profile LABEL COMMAND...: the load command runs while perf samples the whole machine.
profile() {
  local label=$1; shift
  perf record -q -o "$TMP/perf.data" -a -g -e cpu-clock -F "$FREQ" -- sleep "$SECS" >/dev/null 2>&1 &
  local rec=$!
  local result; result=$("$@")
  wait "$rec"
  perf script -i "$TMP/perf.data" -F comm,ip,sym,dso 2>/dev/null >"$TMP/script.txt"
  echo
  python3 bench/perf_layers.py "$TMP/script.txt" "$label ($result)"
}
wrk_load() { # url [header]
  local hdr=(); [ $# -gt 1 ] && hdr=(-H "$2")
  on client timeout $((SECS + 15)) wrk -c 32 -t 2 -d "${SECS}s" "${hdr[@]}" "$1" | awk '/^Requests\/sec/ { printf "%.0f req/s", $2 }'; }
iperf_load() { # [cmd...] -> Gbit/s
  "$@" -t "$SECS" -J | python3 -c 'import json,sys; d=json.load(sys.stdin); print("%.2f Gbit/s" % (d["end"]["sum_received"]["bits_per_second"]/1e9))'; }
declare -A URL=([direct]=http://10.77.0.12:8000/ [mesh-vm2]=http://10.77.0.12:8080/ [mesh-vm3]=http://10.77.0.13:8080/)
for p in $PATHS; do
  case $p in
    direct|mesh-vm2|mesh-vm3)
      profile "$p keep-alive" wrk_load "${URL[$p]}"
      [ "$CLOSE" = 1 ] && profile "$p Connection: close" wrk_load "${URL[$p]}" "Connection: close" ;;
    underlay) profile "underlay iperf3 vm1 -> vm2" iperf_load on vm1 iperf3 -c 10.77.0.12 ;;
    overlay) profile "overlay iperf3 task -> task" iperf_load on vm1 shoal exec "$cli_task" iperf3 -c "$srv_ip" ;;
    *) echo "unknown path $p" >&2; exit 2 ;;
  esac
done
echo
echo "results: $out"
