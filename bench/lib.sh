# Helpers the lab benchmarks share (sourced by bench/lb.sh, bench/overlay.sh and
# bench/profile.sh after they set LAB, the lab's name).

# Runs a command in a lab namespace (vm1..vmN or client).
on() { local n=$1; shift; shoal lab exec --name "$LAB" "$n" -- "$@"; }

# Starts a long-running program in a lab namespace, its output to a file (never to our
# pipe). `lab down` kills every process in the lab's namespaces.
spawn() { local n=$1 log=$2; shift 2; on "$n" sh -c 'l=$1; shift; "$@" >"$l" 2>&1 </dev/null &' sh "$log" "$@"; }

# Waits (at most 20 s) until a task of the service runs.
wait_running() { # service name
  for _ in $(seq 1 400); do
    on vm1 shoal service ps -f desired-state=running --format '{{.CurrentState}}' "$1" 2>/dev/null | grep -q '^Running' && return 0
    sleep 0.05
  done; echo "timed out waiting for $1" >&2; return 1; }

# The id of a running task of the service.
task_id() { on vm1 shoal service ps -q -f desired-state=running "$1" | head -1; }
