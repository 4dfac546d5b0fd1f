#!/usr/bin/env bash
# make demo: the tutorial's cluster steps in a 3-node namespace lab, printed as they run.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/target/debug:$PATH"
LAB=${LAB:-demo}
bold=""; plain=""
if [ -t 1 ]; then bold=$(tput bold 2>/dev/null || true); plain=$(tput sgr0 2>/dev/null || true); fi
# Show a command as a user would type it (quote arguments with spaces).
show() { local a out=""; for a in "$@"; do [[ $a == *" "* ]] && a="'$a'"; out+="$a "; done; echo "${out% }"; }

say() { printf '\n%s# %s%s\n' "$bold" "$*" "$plain"; }
# Run a shoal command on a lab node, echoing it as the tutorial shows it.
on() { local node=$1; shift; printf '%s[%s]$ %s%s\n' "$bold" "$node" "$(show "$@")" "$plain"; shoal lab exec --name "$LAB" "$node" -- "$@"; }
quiet() { local node=$1; shift; shoal lab exec --name "$LAB" "$node" -- "$@"; }
# Wait (bounded) until a command's output matches a pattern.
wait_for() {
  local what=$1 node=$2 pattern=$3; shift 3
  for _ in $(seq 1 300); do
    if quiet "$node" "$@" 2>/dev/null | grep -Eq "$pattern"; then return 0; fi
    sleep 0.1
  done
  echo "timed out waiting for: $what" >&2; return 1
}

shoal lab down --name "$LAB" >/dev/null 2>&1 || true
trap 'shoal lab down --name "$LAB" >/dev/null 2>&1 || true' EXIT

say "Three hosts (vm1, vm2, vm3) as network namespaces, each running shoald"
shoal lab up --name "$LAB" --nodes 3
shoal lab ls --name "$LAB"

say "Initialise the swarm on vm1 (heartbeat 1s so the demo does not wait long)"
on vm1 shoal swarm init --advertise-addr 10.77.0.11 --dispatcher-heartbeat 1s

say "Join tokens: one per role"
on vm1 shoal swarm join-token manager
MANAGER_TOKEN=$(quiet vm1 shoal swarm join-token -q manager)
WORKER_TOKEN=$(quiet vm1 shoal swarm join-token -q worker)

say "vm2 joins as a manager, vm3 as a worker"
on vm2 shoal swarm join --token "$MANAGER_TOKEN" 10.77.0.11:2377
on vm3 shoal swarm join --token "$WORKER_TOKEN" 10.77.0.11:2377

say "Label the nodes, as the tutorial does"
on vm1 shoal node update --label-add os=linux vm2
on vm1 shoal node update --label-add os=linux vm3
on vm1 shoal node inspect --format '{{ .Spec.Labels }}' vm2
on vm1 shoal node ls

say "A worker cannot see or change cluster state"
on vm3 shoal node ls || true

say "Promote vm3 so three managers keep a quorum when one dies"
on vm1 shoal node promote vm3
wait_for "vm3 reachable" vm1 'vm3 +Ready +Active +Reachable' shoal node ls
on vm1 shoal node ls

say "Power off the leader (vm1): kill -9 its daemon"
shoal lab stop --name "$LAB" vm1
wait_for "a new leader" vm2 'Leader' shoal node ls
wait_for "vm1 down" vm2 'vm1 +Down' shoal node ls
on vm2 shoal node ls

say "Writes go on without vm1"
on vm2 shoal node update --label-add zone=b vm3

say "Power vm1 back on: it rejoins by itself and catches up"
shoal lab start --name "$LAB" vm1
wait_for "vm1 ready" vm2 'vm1 +Ready' shoal node ls
wait_for "vm1 caught up" vm1 'zone:b' shoal node inspect --format '{{ .Spec.Labels }}' vm3
on vm1 shoal node ls
on vm1 shoal node inspect --format '{{ .Spec.Labels }}' vm3

say "Done. The lab is torn down on exit."
