#!/usr/bin/env bash
# One measuring session of a lab variant (knobs: see lab.sh), in the manner of bench/overlay.sh:
# pairs of (underlay run, overlay run) of SECS s each, order alternating; before each pair wait
# (at most QUIET_WAIT s) until the CPUs are >= (100-QUIET)% idle over a second, then hold
# /tmp/shoal-lab.lock only while the pair runs. During each run the CPU used by others is
# estimated (fpcpu.py: busy - both iperf3 processes - kernel threads); a pair is clean when it
# started quiet and both runs saw <= FOREIGN% foreign CPU. Pairs are repeated until REPS clean
# pairs or MAXTRY pairs. Underlay = iperf3 fp-n1 -> fp-n2 (192.168.250.2), overlay = iperf3
# fp-t1 -> fp-t2 (10.250.0.3). Appends every pair to $OUT (results/runs.jsonl).
#   usage: MODE=fdb MTU=1500 [REPS=5 MAXTRY=12 SECS=10 P=1 QUIET=10 FOREIGN=8] bench.sh LABEL
set -u
FP=${FP:-$(cd "$(dirname "$0")" && pwd)}
. "$FP/lab.sh"
LABEL=${1:?label}
PRIO=${PRIO:-1}
REPS=${REPS:-5}; MAXTRY=${MAXTRY:-12}; SECS=${SECS:-10}; P=${P:-1}
QUIET=${QUIET:-10}; QUIET_WAIT=${QUIET_WAIT:-300}; FOREIGN=${FOREIGN:-8}
OUT=${OUT:-$FP/results/runs.jsonl}
TMPD=$(mktemp -d /tmp/fp-tmp.XXXX)
exec 9>>/tmp/shoal-lab.lock
cleanup() { flock -u 9 2>/dev/null; lab_down; rm -rf "$TMPD"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

BUSY=100
busy() {
  local a b t=0 i idle
  read -r -a a < /proc/stat; sleep 1; read -r -a b < /proc/stat
  for i in 1 2 3 4 5 6 7 8; do t=$(( t + b[i] - a[i] )); done
  idle=$(( b[4] + b[5] - a[4] - a[5] ))
  BUSY=$(( 100 - 100 * idle / (t > 0 ? t : 1) ))
}
WAITED=0
wait_quiet() { # sets BUSY, WAITED; status 1 if never quiet
  for WAITED in $(seq 1 "$QUIET_WAIT"); do busy; [ "$BUSY" -le "$QUIET" ] && return 0; done
  return 1
}
R=""
run() { # ns dst port -> R="gbits retr cpu_snd cpu_rcv foreign busy user"
  python3 "$FP/fpcpu.py" snap "$TMPD/s.json"
  ip netns exec "$1" "${NICE[@]}" iperf3 -c "$2" -p "$3" -t "$SECS" -P "$P" -J > "$TMPD/r.json" 2>/dev/null
  local x; x=$(python3 -c '
import json,sys
d=json.load(open(sys.argv[1])); e=d["end"]; c=e["cpu_utilization_percent"]
print("%.3f %d %.0f %.0f" % (e["sum_received"]["bits_per_second"]/1e9, e["sum_sent"].get("retransmits",0), c["host_total"], c["remote_total"]))' "$TMPD/r.json") || x="0 0 0 0"
  set -- $x
  R="$x $(python3 "$FP/fpcpu.py" diff "$TMPD/s.json" "$3" "$4")"
}

# PRIO=1: our iperf3 processes (clients and servers alike, on both paths) run at nice -20 in an
# autogroup of nice -20, so that other people's compilers (nice 0, their own autogroups) take
# little CPU from a run. The servers stay in this session (no -D) to share the autogroup.
NICE=()
if [ "$PRIO" = 1 ]; then
  [ "$(cat /proc/sys/kernel/sched_autogroup_enabled 2>/dev/null)" = 1 ] && echo -20 > /proc/$$/autogroup
  NICE=(nice -n -20)
fi
lab_up || { echo "lab_up failed: $(lab_desc)" >&2; exit 1; }
ip netns exec fp-t2 "${NICE[@]}" iperf3 -s -p 5201 >/dev/null 2>&1 &
ip netns exec fp-n2 "${NICE[@]}" iperf3 -s -p 5301 >/dev/null 2>&1 &
sleep 0.5
for k in $(seq 1 50); do ip netns exec fp-n1 iperf3 -c $U2 -p 5301 -n 1M >/dev/null 2>&1 && break; sleep 0.1; done
for k in $(seq 1 50); do ip netns exec fp-t1 iperf3 -c $T2 -p 5201 -n 1M >/dev/null 2>&1 && break; sleep 0.1; done
echo "# $LABEL: $(lab_desc) PRIO=$PRIO REPS=$REPS SECS=$SECS P=$P QUIET=$QUIET FOREIGN=$FOREIGN load=$(cut -d' ' -f1-3 /proc/loadavg) $(date -u +%FT%TZ)"
clean=0
for i in $(seq 1 "$MAXTRY"); do
  [ "$clean" -ge "$REPS" ] && break
  quiet=1; wait_quiet || quiet=0
  b1=$BUSY; w=$WAITED
  flock 9
  busy; b2=$BUSY; [ "$b2" -le "$QUIET" ] || quiet=0
  load=$(cut -d' ' -f1 /proc/loadavg)
  if [ $(((i + ${ROUND:-0}) % 2)) = 1 ]; then run fp-n1 $U2 5301; u=$R; run fp-t1 $T2 5201; o=$R
  else run fp-t1 $T2 5201; o=$R; run fp-n1 $U2 5301; u=$R; fi
  flock -u 9
  set -- $u; ug=$1 ur=$2 uc="$3/$4" uf=$5
  set -- $o; og=$1 or=$2 oc="$3/$4" of=$5
  ok=$quiet; [ "$uf" -le "$FOREIGN" ] && [ "$of" -le "$FOREIGN" ] || ok=0
  [ "$ok" = 1 ] && clean=$((clean + 1))
  ratio=$(python3 -c "print('%.3f' % ($og/$ug if $ug else 0))")
  printf '  %s mtu %s pair %d: underlay %s overlay %s ratio %s | before %s%%/%s%% (waited %ss) load %s | foreign u %s%% o %s%% | cpu snd/rcv u %s o %s | retr u %s o %s%s\n' \
    "$LABEL" "$MTU" "$i" "$ug" "$og" "$ratio" "$b1" "$b2" "$w" "$load" "$uf" "$of" "$uc" "$oc" "$ur" "$or" "$([ $ok = 1 ] || echo ' NOISY')"
  printf '{"label":"%s","mode":"%s","mtu":%s,"p":%s,"secs":%s,"pair":%d,"under":%s,"over":%s,"ratio":%s,"clean":%d,"busy_before":%s,"foreign_u":%s,"foreign_o":%s,"load":%s,"cpu_u":"%s","cpu_o":"%s","retr_u":%s,"retr_o":%s,"prio":%s,"knobs":"%s"}\n' \
    "$LABEL" "$MODE" "$MTU" "$P" "$SECS" "$i" "$ug" "$og" "$ratio" "$ok" "$b2" "$uf" "$of" "$load" "$uc" "$oc" "$ur" "$or" "$PRIO" "$(lab_desc)" >> "$OUT"
done
echo "# $LABEL mtu $MTU: $clean clean pairs of $((i)) tried"
