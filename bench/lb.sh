#!/usr/bin/env bash
# Load-balancer benchmark (issue 5, the eBPF load balancer, section 5 "Benchmarks").
#
# One lab (3 nodes + the lab's `client` namespace; underlay 10.77.0.0/24, node vmI at
# 10.77.0.(10+I), client at 10.77.0.2), one run, the same backend program behind every path,
# load from wrk in the client namespace. The paths:
#   direct     client -> the backend process in vm2's namespace on 10.77.0.12:8000. No load
#              balancer: the physical reference.
#   direct-ns  client -> the same program in a network namespace of its own on vm2 (10.78.0.2,
#              behind a veth, routed by vm2; the client routes 10.78.0.0/30 via vm2): no load
#              balancer, but one veth away as a task is (a container's own hop, which Docker's
#              tasks have too). Made by this script, forwarding on in vm2 only around its runs;
#              the targets stay against `direct`. DIRECT_NS=0 leaves it out.
#   nftables   client -> 10.77.0.13:9080 on vm3 (a node holding no backend) -> nftables DNAT to
#              10.77.0.12:8000 and masquerade (SNAT to vm3's address, so replies come back
#              through vm3): the shape of kube-proxy's nftables mode (mark in prerouting, DNAT,
#              masquerade marked packets in postrouting) and of swarm's IPVS+iptables mesh (IPVS
#              is not in this kernel). The rule set and ip_forward=1 exist in vm3's namespace
#              only, and only during the nftables runs, so conntrack does not tax the other
#              paths through vm3 (haproxy, Shoal); the root namespace is never touched.
#   haproxy    client -> haproxy (HTTP mode) on 10.77.0.13:9081 in vm3's namespace ->
#              10.77.0.12:8000. nbthread 2 (= cores), http-reuse always (server connections are
#              pooled, also when clients send Connection: close), maxconn 4096 / 256 per server:
#              the userspace gateway a user would otherwise put in front.
#   shoal-vm3  client -> 10.77.0.13:8080: Shoal's routing mesh (service `web`, --publish 8080:80,
#              one task, constrained to vm2) entered on a node holding no task of the service.
#              The task runs the same backend program, on 0.0.0.0:80 in its own namespace.
#   shoal-vm2  client -> 10.77.0.12:8080: the mesh entered on the node holding the task.
# The two Shoal rows need the eBPF load balancer: until it answers on the published port, the
# script prints "shoal mesh: not available (published port did not answer)" and reports the rest.
# (Search for "SHOAL MESH HOOK" below.)
#
# Per path: keep-alive requests/s (wrk -c CONNS -t THREADS), new connections/s (the same with
# -H 'Connection: close', one TCP connection per request), p50 and p99 latency (wrk --latency,
# for both), each the median of REPS runs of SECS seconds, interleaved across paths (others build
# on these 2 cores while we measure), and its ratio to direct and to nftables; plus wrk errors and
# trouble opening connections (SYN retransmissions, and resets of stale ACKs, counted in the client
# namespace) per path. When both mesh rows work, one more run opens connections through vm3 and
# vm2 at once from one port range (the same client port reaching the task through two nodes).
# Backend: shoal-whoami (demo-app, release build; the debug build would be the bottleneck) by
# default, BACKEND=nginx for nginx-light (2 workers, a 23-byte static file). A short direct check
# of both opens the results, so the choice is on record.
# Client namespace only: net.ipv4.tcp_tw_reuse=1, so Connection: close runs do not run out of
# client ports on TIME_WAIT, and ip_local_port_range set to a separate 12,000-port slice per path
# before each run, so one path's TIME_WAIT leftovers never meet another path's SYNs; printed.
# Env: SECS (5), REPS (3), CONNS (32), THREADS (2), BACKEND (whoami|nginx), BSECS (3; 0 skips
# the backend check), DSR (0; 1: the daemons run with --lb-dsr, direct server return),
# SNAT (0; 1: the daemons run with --lb-snat, the backend sees the entry node's address),
# DIRECT_NS (1).
# Results go to bench/results/lb-<UTC timestamp>.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build -q --bins
cargo build -q --release -p shoal-whoami
export PATH="$PWD/target/debug:$PATH"
WHOAMI="$PWD/target/release/shoal-whoami"
LAB=lbbench$$
SECS=${SECS:-5}
REPS=${REPS:-3}
CONNS=${CONNS:-32}
THREADS=${THREADS:-2}
BACKEND=${BACKEND:-whoami}
BSECS=${BSECS:-3}
DSR=${DSR:-0}
SNAT=${SNAT:-0}
DIRECT_NS=${DIRECT_NS:-1}
lab_args=()
[ "$DSR" = 1 ] && lab_args+=(--shoald-arg=--lb-dsr)
[ "$SNAT" = 1 ] && lab_args+=(--shoald-arg=--lb-snat)
VM2=10.77.0.12
VM3=10.77.0.13
BPORT=8000       # the backend process on vm2 (direct, nftables and haproxy all end there)
NFT_PORT=9080
HAP_PORT=9081
MESH_PORT=8080   # Shoal's published port (task port 80)
out="bench/results/lb-$(date -u +%Y%m%dT%H%M%SZ).txt"
TMP=$(mktemp -d /tmp/shoal-lbbench.XXXXXX)
CT_NS=lbbench$$-ct  # the direct-ns backend's namespace (not the lab's: removed here)
CT_ADDR=10.78.0.2
ct_down() { { ip netns pids "$CT_NS" 2>/dev/null | xargs -r kill -9; } 2>/dev/null || true; ip netns del "$CT_NS" 2>/dev/null || true; }
trap 'ct_down; shoal lab down --name "$LAB" >/dev/null 2>&1 || true; rm -rf "$TMP"' EXIT
# shellcheck source=bench/lib.sh
. bench/lib.sh
case $BACKEND in
  whoami) BNAME="shoal-whoami (release)" ;;
  nginx) BNAME="nginx-light" ;;
  *) echo "BACKEND must be whoami or nginx" >&2; exit 2 ;;
esac

chmod 755 "$TMP"   # nginx workers run as nobody
mkdir -p "$TMP/www" "$TMP/nginx-tmp"
printf 'hello from the backend\n' >"$TMP/www/index.html"
nginx_conf() { # listen-spec name -> config file path
  local f="$TMP/nginx-$2.conf"
  cat >"$f" <<EOF
daemon off;
worker_processes 2;
pid $TMP/nginx-$2.pid;
error_log stderr warn;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  client_body_temp_path $TMP/nginx-tmp;
  proxy_temp_path $TMP/nginx-tmp;
  fastcgi_temp_path $TMP/nginx-tmp;
  uwsgi_temp_path $TMP/nginx-tmp;
  scgi_temp_path $TMP/nginx-tmp;
  server {
    listen $1 reuseport backlog=4096;
    root $TMP/www;
    location / { default_type text/plain; }
  }
}
EOF
  echo "$f"
}
backend_argv() { # kind ip port name -> the program's argv, one word a line
  case $1 in
    whoami) printf '%s\n' "$WHOAMI" --listen "$2:$3" ;;
    nginx) printf '%s\n' nginx -e stderr -p "$TMP" -c "$(nginx_conf "$2:$3" "$4")" ;;
  esac
}
start_backend() { # kind node ip port name
  local argv; mapfile -t argv < <(backend_argv "$1" "$3" "$4" "$5")
  spawn "$2" "$TMP/$5.log" "${argv[@]}"
}
wait_http() { # url: bounded wait until it answers 200 from the client namespace
  for _ in $(seq 1 50); do
    [ "$(on client curl -s -m 1 -o /dev/null -w '%{http_code}' "$1" || true)" = 200 ] && return 0
    sleep 0.1
  done; echo "no answer from $1" >&2; return 1; }

# One wrk run from the client namespace -> "req/s p50_ms p99_ms errors" (bounded by timeout).
parse_wrk() {
  awk 'function ms(v) { if (v ~ /us$/) return (v + 0) / 1000; if (v ~ /ms$/) return v + 0
                        if (v ~ /m$/) return (v + 0) * 60000; if (v ~ /s$/) return (v + 0) * 1000; return v + 0 }
       /^ *50%/ { p50 = ms($2) }  /^ *99%/ { p99 = ms($2) }  /^Requests\/sec/ { rps = $2 }
       /Socket errors/ { gsub(",", ""); err += $4 + $6 + $8 + $10 }  /Non-2xx/ { err += $5 }
       END { printf "%.0f %.3f %.3f %d\n", rps, p50, p99, err }'; }
wrk_once() { # url mode(ka|close) secs [conns] [threads]
  local hdr=(); [ "$2" = close ] && hdr=(-H 'Connection: close')
  { on client timeout $(($3 + 15)) wrk -c "${4:-$CONNS}" -t "${5:-$THREADS}" -d "${3}s" --timeout 2s --latency "${hdr[@]}" "$1" || true; } | parse_wrk; }
# Client-namespace TCP counters -> "SYN-retransmissions stale-ACK-resets". wrk's latency starts
# after connect, so trouble opening connections shows here (and in conn/s), not in p99:
#  - a SYN that gets no answer is resent after 1 s: a stall;
#  - a SYN whose 4-tuple the far end still holds (TIME_WAIT that refuses it, e.g. on a timestamp
#    (PAWS) mismatch after NAT or a second entry address) is answered with a bare ACK; the client
#    resets it and resends the SYN a few ms later. Counted as min(syn-rtx, OutRsts - EstabResets)
#    (resets not sent from established connections; a few come from late segments on closed
#    sockets, hence the min), so syn-rtx minus them is about the 1 s stalls.
tcp_ctr() { on client awk '/^(Tcp|TcpExt):/ { if (!($1 in h)) { h[$1] = 1; for (i = 2; i <= NF; i++) k[$1, i] = $i }
                                               else for (i = 2; i <= NF; i++) v[k[$1, i]] = $i }
                            END { print v["TCPSynRetrans"] + 0, v["OutRsts"] - v["EstabResets"] }' /proc/net/snmp /proc/net/netstat; }
# Each path opens connections from its own slice of client ports, so TIME_WAIT state one path
# leaves on a backend never meets another path's SYNs (see the mixed-entry line for that case).
# nftables' slice stays below 32768: vm3's own outgoing ports (haproxy -> backend) start there.
declare -A PORTS=([direct]="1024 10999" [direct-ns]="11000 20999" [nftables]="21000 30999"
                  [haproxy]="31000 40999" [shoal-vm3]="41000 50999" [shoal-vm2]="51000 60999"
                  [mixed]="61000 65535")
min() { echo $(($1 < $2 ? $1 : $2)); }
ports() { on client sysctl -qw net.ipv4.ip_local_port_range="${PORTS[$1]}"; }

# nftables mesh on vm3, loaded only around its own runs.
cat >"$TMP/nft.conf" <<EOF
table ip shoal_lbbench {
  chain prerouting {
    type nat hook prerouting priority dstnat; policy accept;
    ip daddr $VM3 tcp dport $NFT_PORT meta mark set mark | 0x4000 dnat to $VM2:$BPORT
  }
  chain postrouting {
    type nat hook postrouting priority srcnat; policy accept;
    meta mark & 0x4000 == 0x4000 masquerade
  }
}
EOF
FWD0=0
nft_on() { on vm3 sysctl -qw net.ipv4.ip_forward=1; on vm3 nft -f "$TMP/nft.conf"; }
nft_off() { on vm3 nft delete table ip shoal_lbbench; on vm3 sysctl -qw net.ipv4.ip_forward="$FWD0"; }
FWD2=0
fwd2_on() { on vm2 sysctl -qw net.ipv4.ip_forward=1; }
fwd2_off() { on vm2 sysctl -qw net.ipv4.ip_forward="$FWD2"; }
# The direct-ns backend's namespace: a veth to vm2 (10.78.0.1/30 there), its default route via
# vm2, and the client's route to it via vm2's underlay address.
ct_up() {
  ip netns add "$CT_NS"
  on vm2 ip link add ctv0 type veth peer name eth0 netns "$CT_NS"
  on vm2 ip addr add 10.78.0.1/30 dev ctv0
  on vm2 ip link set ctv0 up
  ip -n "$CT_NS" addr add "$CT_ADDR/30" dev eth0
  ip -n "$CT_NS" link set lo up
  ip -n "$CT_NS" link set eth0 up
  ip -n "$CT_NS" route add default via 10.78.0.1
  on client ip route add 10.78.0.0/30 via "$VM2"
  local argv; mapfile -t argv < <(backend_argv "$BACKEND" "$CT_ADDR" "$BPORT" direct-ns)
  ip netns exec "$CT_NS" sh -c 'l=$1; shift; "$@" >"$l" 2>&1 </dev/null &' sh "$TMP/direct-ns.log" "${argv[@]}"
}
ct_stats() { # conntrack counters of vm3's namespace, summed over CPUs
  on vm3 cat /proc/net/stat/nf_conntrack 2>/dev/null | python3 -c '
import sys
rows = [l.split() for l in sys.stdin if l.strip()]
tot = [sum(int(r[i], 16) for r in rows[1:]) for i in range(len(rows[0]))] if rows else []
print(" ".join(f"{k}={v}" for k, v in zip(rows[0] if rows else [], tot) if k in ("found", "invalid", "insert_failed", "drop", "early_drop", "clashres")))'; }

cat >"$TMP/haproxy.cfg" <<EOF
global
  nbthread 2
  maxconn 4096
defaults
  mode http
  option http-keep-alive
  http-reuse always
  timeout connect 2s
  timeout client 30s
  timeout server 30s
  timeout http-keep-alive 30s
frontend fe
  bind $VM3:$HAP_PORT
  default_backend be
backend be
  server b1 $VM2:$BPORT maxconn 256
EOF

median() { sort -g | awk '{ a[NR] = $1 } END { if (NR == 0) print "nan"; else if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "n/a" || b == "n/a" || b + 0 == 0) print "-"; else printf "%.2f", a / b }'; }

{
start=$SECONDS
echo "# bench/lb.sh  ($(date -u +%FT%TZ), $(nproc) cores, kernel $(uname -r), load average at start: $(cut -d' ' -f1-3 /proc/loadavg))"
echo "# source: $(git describe --always --dirty 2>/dev/null || echo "not a git checkout")"
echo "# command: SECS=$SECS REPS=$REPS CONNS=$CONNS THREADS=$THREADS BACKEND=$BACKEND BSECS=$BSECS DSR=$DSR SNAT=$SNAT DIRECT_NS=$DIRECT_NS bench/lb.sh"
shoald_mode="defaults (replies back through the entry node)"
[ "$DSR" = 1 ] && shoald_mode="--lb-dsr (direct server return: the backend's node answers the client)"
[ "$SNAT" = 1 ] && shoald_mode="--lb-snat (the backend sees the entry node's address)"
[ "$DSR$SNAT" = 11 ] && shoald_mode="--lb-dsr --lb-snat"
echo "# shoald: $shoald_mode"
echo "# tools: $(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2), $(haproxy -v | head -1 | cut -d' ' -f1-3), $(nft --version)$(command -v nginx >/dev/null && echo ", $(nginx -v 2>&1 | cut -d' ' -f3)")"
awk -v n="$(nproc)" '$1 > n { print "warning: load average " $1 " on " n " cores: other work shares the CPUs; expect noise, see the per-run numbers" }' /proc/loadavg
shoal lab up --name "$LAB" --nodes 3 "${lab_args[@]}" >/dev/null
FWD0=$(on vm3 sysctl -n net.ipv4.ip_forward)
FWD2=$(on vm2 sysctl -n net.ipv4.ip_forward)
# Client namespace only: reuse TIME_WAIT ports for new connections, and a wide port range.
tw0=$(on client sysctl -n net.ipv4.tcp_tw_reuse); pr0=$(on client sysctl -n net.ipv4.ip_local_port_range | tr -s '\t ' ' ')
on client sysctl -qw net.ipv4.tcp_tw_reuse=1; ports direct
echo "client namespace (set here, client namespace only): net.ipv4.tcp_tw_reuse $tw0 -> $(on client sysctl -n net.ipv4.tcp_tw_reuse);" \
     "ip_local_port_range $pr0 -> one slice per path: $(for k in direct direct-ns nftables haproxy shoal-vm3 shoal-vm2 mixed; do printf '%s %s, ' "$k" "${PORTS[$k]// /-}"; done | sed 's/, $//')"

# The backend on vm2's underlay address, and haproxy on vm3.
start_backend "$BACKEND" vm2 "$VM2" "$BPORT" backend
spawn vm3 "$TMP/haproxy.log" haproxy -db -f "$TMP/haproxy.cfg"
wait_http "http://$VM2:$BPORT/"
wait_http "http://$VM3:$HAP_PORT/"
nft_on; wait_http "http://$VM3:$NFT_PORT/"; nft_off
if [ "$DIRECT_NS" = 1 ]; then ct_up; fwd2_on; wait_http "http://$CT_ADDR:$BPORT/"; fwd2_off; fi

# Backend choice on record: both candidates direct, one short keep-alive and one close run each.
if [ "$BSECS" -gt 0 ]; then
  other=$([ "$BACKEND" = whoami ] && echo nginx || echo whoami)
  if [ "$other" = whoami ] || command -v nginx >/dev/null; then
    start_backend "$other" vm2 "$VM2" 8001 check
    wait_http "http://$VM2:8001/"
    line="backend check (direct, one ${BSECS}s run each, keep-alive / Connection: close req/s):"
    for k in "$BACKEND:$BPORT" "$other:8001"; do
      ka=$(wrk_once "http://$VM2:${k#*:}/" ka "$BSECS" | cut -d' ' -f1)
      cl=$(wrk_once "http://$VM2:${k#*:}/" close "$BSECS" | cut -d' ' -f1)
      line="$line ${k%:*} $ka / $cl;"
    done
    echo "$line benchmark backend: $BNAME"
  fi
fi

# ---- SHOAL MESH HOOK -------------------------------------------------------------------
# A 3-node swarm; service `web` publishes 8080:80 and runs the same backend program as one task
# on vm2. The mesh rows are measured only if the published port answers within a few seconds
# (bounded curl from the client); until the eBPF LB lands it does not.
paths=(direct nftables haproxy)
[ "$DIRECT_NS" = 1 ] && paths=(direct direct-ns nftables haproxy)
npre=${#paths[@]}
declare -A URL=([direct]="http://$VM2:$BPORT/" [direct-ns]="http://$CT_ADDR:$BPORT/" [nftables]="http://$VM3:$NFT_PORT/" [haproxy]="http://$VM3:$HAP_PORT/"
                [shoal-vm3]="http://$VM3:$MESH_PORT/" [shoal-vm2]="http://$VM2:$MESH_PORT/")
mesh_reason=""
swarm_up() {
  on vm1 shoal swarm init --advertise-addr 10.77.0.11 --dispatcher-heartbeat 1s >/dev/null &&
    tok=$(on vm1 shoal swarm join-token -q worker) &&
    on vm2 shoal swarm join --token "$tok" 10.77.0.11:2377 >/dev/null &&
    on vm3 shoal swarm join --token "$tok" 10.77.0.11:2377 >/dev/null; }
mapfile -t task_argv < <(backend_argv "$BACKEND" 0.0.0.0 80 task)
if ! err=$(swarm_up 2>&1); then
  mesh_reason="swarm init/join failed: $err"
elif ! err=$(on vm1 shoal service create -d -q --name web --publish "$MESH_PORT:80" --constraint node.hostname==vm2 \
             "$BACKEND" "${task_argv[@]}" 2>&1 >/dev/null); then
  mesh_reason="service create failed: $err"
elif ! wait_running web; then
  mesh_reason="the web task did not reach Running"
else
  for p in shoal-vm3 shoal-vm2; do
    deadline=$((SECONDS + 3)) ok=""
    while [ $SECONDS -lt $deadline ]; do
      [ "$(on client curl -s -m 1 -o /dev/null -w '%{http_code}' "${URL[$p]}" || true)" = 200 ] && { ok=1; break; }
      sleep 0.2
    done
    if [ -n "$ok" ]; then paths+=("$p"); else echo "$p: not available (published port ${URL[$p]} did not answer)"; fi
  done
  [ "${#paths[@]}" -eq "$npre" ] && mesh_reason="published port did not answer"
fi
[ -n "$mesh_reason" ] && echo "shoal mesh: not available ($mesh_reason)"
# ---------------------------------------------------------------------------------------

# Measurements: REPS rounds; each round runs every path in both modes, in a rotated order.
declare -A RPS P50 P99 ERR SYN RST
ct0=$(ct_stats)
for r in $(seq 1 "$REPS"); do
  n=${#paths[@]}
  for mode in ka close; do
    for i in $(seq 0 $((n - 1))); do
      p=${paths[$(((i + r) % n))]}
      [ "$p" = nftables ] && nft_on
      [ "$p" = direct-ns ] && fwd2_on
      ports "$p"; read -r s0 r0 < <(tcp_ctr)
      read -r rps p50 p99 err < <(wrk_once "${URL[$p]}" "$mode" "$SECS")
      read -r s1 r1 < <(tcp_ctr)
      SYN[$p,$mode]=$((${SYN[$p,$mode]:-0} + s1 - s0)); RST[$p,$mode]=$((${RST[$p,$mode]:-0} + $(min $((r1 - r0)) $((s1 - s0)))))
      [ "$p" = nftables ] && nft_off
      [ "$p" = direct-ns ] && fwd2_off
      RPS[$p,$mode]+=" $rps"; P50[$p,$mode]+=" $p50"; P99[$p,$mode]+=" $p99"; ERR[$p,$mode]=$((${ERR[$p,$mode]:-0} + err))
    done
  done
done
ct1=$(ct_stats)
# Two entry nodes, one client: the task sees connections through vm3 and through vm2 as the same
# client address and port (the mesh keeps the client's address), while the client's TCP
# timestamps differ per destination address; a reused port then meets the other entry's TIME_WAIT.
mixed=""
if [ -n "${RPS[shoal-vm3,close]:-}" ] && [ -n "${RPS[shoal-vm2,close]:-}" ]; then
  ports mixed; read -r s0 r0 < <(tcp_ctr)
  wrk_once "${URL[shoal-vm3]}" close "$SECS" $((CONNS / 2)) 1 >"$TMP/mixed-vm3" &
  wrk_once "${URL[shoal-vm2]}" close "$SECS" $((CONNS / 2)) 1 >"$TMP/mixed-vm2" &
  wait
  read -r s1 r1 < <(tcp_ctr)
  mixed_rps=$(($(cut -d' ' -f1 "$TMP/mixed-vm3") + $(cut -d' ' -f1 "$TMP/mixed-vm2")))
  mixed="shoal mesh, new connections through vm3 and vm2 at once (2 x wrk -c $((CONNS / 2)) -t 1 -H 'Connection: close', one client port slice, one ${SECS}s run): $mixed_rps conn/s, syn-rtx $((s1 - s0)), reuse-rst $(min $((r1 - r0)) $((s1 - s0)))"
fi

declare -A M   # medians: M[path,mode,metric]
for p in direct direct-ns nftables haproxy shoal-vm3 shoal-vm2; do
  for mode in ka close; do
    if [ -n "${RPS[$p,$mode]:-}" ]; then
      M[$p,$mode,rps]=$(printf '%.0f' "$(printf '%s\n' ${RPS[$p,$mode]} | median)")
      M[$p,$mode,p50]=$(printf '%.3f' "$(printf '%s\n' ${P50[$p,$mode]} | median)")
      M[$p,$mode,p99]=$(printf '%.3f' "$(printf '%s\n' ${P99[$p,$mode]} | median)")
    else
      M[$p,$mode,rps]=n/a; M[$p,$mode,p50]=n/a; M[$p,$mode,p99]=n/a
    fi
  done
done

label() { case $1 in
  direct) echo "direct (vm2, no LB)" ;; direct-ns) echo "direct, own netns on vm2" ;; nftables) echo "nftables DNAT+masq (vm3)" ;;
  haproxy) echo "haproxy (vm3)" ;; shoal-vm3) echo "shoal mesh via vm3 (no task)" ;;
  shoal-vm2) echo "shoal mesh via vm2 (task)" ;; esac; }
table() { # mode title
  echo
  echo "$2 — median of $REPS x ${SECS}s, wrk -c $CONNS -t $THREADS; xD = / direct, xN = / nftables (latency: > 1 is slower)"
  printf '%-30s %10s %5s %5s  %8s %5s %5s  %8s %5s %5s  %6s %7s %9s\n' path "req/s" xD xN "p50 ms" xD xN "p99 ms" xD xN errors syn-rtx reuse-rst
  for p in direct direct-ns nftables haproxy shoal-vm3 shoal-vm2; do
    [ "$p" = direct-ns ] && [ "$DIRECT_NS" != 1 ] && continue
    local row; row=$(printf '%-30s' "$(label $p)")
    for k in rps p50 p99; do
      local v=${M[$p,$1,$k]}
      row+=$(printf ' %10s %5s %5s ' "$v" "$(ratio "$v" "${M[direct,$1,$k]}")" "$(ratio "$v" "${M[nftables,$1,$k]}")")
    done
    row+=$(printf ' %6s %7s %9s' "${ERR[$p,$1]:-n/a}" "${SYN[$p,$1]:-n/a}" "${RST[$p,$1]:-n/a}")
    echo "$row"
  done
}
table ka "keep-alive requests/s"
table close "new connections/s (Connection: close: one TCP connection per request)"
echo
echo "errors: wrk socket errors + non-2xx; syn-rtx: SYN retransmissions in the client namespace; reuse-rst: SYN retransmissions after the client reset a stale ACK to its SYN (the far end still held that 4-tuple; resent within ms); syn-rtx - reuse-rst ~ connects stalled 1 s. All summed over the runs."
echo "runs (req/s per run, in order):"
for p in "${paths[@]}"; do echo "  $(printf '%-30s' "$(label "$p")") keep-alive:${RPS[$p,ka]}   close:${RPS[$p,close]}"; done
echo "vm3 conntrack (nftables runs only): before: ${ct0:-none}; after: ${ct1:-none}; entries now: $(on vm3 cat /proc/sys/net/netfilter/nf_conntrack_count 2>/dev/null || echo -)"
[ -n "$mixed" ] && echo "$mixed ($(ratio "$mixed_rps" "${M[direct,close,rps]}")x direct)"
if [ -n "${RPS[shoal-vm3,ka]:-}" ]; then
  v=shoal-vm3
  echo "targets (issue 5) for the mesh via vm3: keep-alive >= 0.95x direct: $(ratio "${M[$v,ka,rps]}" "${M[direct,ka,rps]}")," \
       ">= 2x haproxy: $(ratio "${M[$v,ka,rps]}" "${M[haproxy,ka,rps]}"), new connections >= 0.9x direct: $(ratio "${M[$v,close,rps]}" "${M[direct,close,rps]}") with no stalls: ${SYN[$v,close]} SYN retransmissions, ${RST[$v,close]} of them after a stale ACK"
  [ "$DIRECT_NS" = 1 ] && echo "against the backend in its own netns (one veth away, as a task): mesh via vm3 keep-alive $(ratio "${M[$v,ka,rps]}" "${M[direct-ns,ka,rps]}")," \
       "new connections $(ratio "${M[$v,close,rps]}" "${M[direct-ns,close,rps]}"); via vm2 $(ratio "${M[shoal-vm2,ka,rps]}" "${M[direct-ns,ka,rps]}") / $(ratio "${M[shoal-vm2,close,rps]}" "${M[direct-ns,close,rps]}")"
fi
echo "elapsed $((SECONDS - start)) s; load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee "$out"
echo "results: $out"
