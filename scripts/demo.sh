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
TMP_LOOP=$(mktemp)
trap 'shoal lab down --name "$LAB" >/dev/null 2>&1 || true; rm -f "$TMP_LOOP"' EXIT

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
on vm1 shoal node update --label-add os=linux vm1
on vm1 shoal node update --label-add os=linux vm2
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

say "Deploy the tutorial's stack (db pinned to vm1; web on vm2, a node labelled os=linux)"
on vm1 shoal stack deploy -c examples/docker-compose.yml webapp
wait_for "web running" vm1 'webapp_web.1 .*vm2 +Running +Running' shoal stack ps webapp
wait_for "db running" vm1 'webapp_db.1 .*vm1 +Running +Running' shoal stack ps webapp
on vm1 shoal stack ps webapp
on vm1 shoal service ls

say "web (on vm2) reaches db (on vm1) by name over the stack's overlay network (VXLAN)"
on vm1 shoal exec webapp_web.1 cat /etc/resolv.conf
on vm1 shoal exec webapp_web.1 dig @127.0.0.11 +short db tasks.db
wait_for "web reaching db" vm1 'Node: vm1' shoal exec webapp_web.1 curl -s -m 2 http://tasks.db:3306/
on vm1 shoal exec webapp_web.1 sh -c 'curl -s http://tasks.db:3306/ | head -5'

say "The routing mesh: port 8080 answers on every node (vm3 runs no task), and web sees the client's own address"
for n in 11 12 13; do
  wait_for "10.77.0.$n:8080" client 'Task: webapp_web.1' curl -s -m 2 "http://10.77.0.$n:8080/"
  shoal lab exec --name "$LAB" client -- curl -s -m 2 "http://10.77.0.$n:8080/" | grep -E '^(Task|Node|Client):' | tr '\n' ' '; echo
done

say "Move web from vm2 to vm1 by changing its constraints"
on vm1 shoal service inspect --format '{{.Spec.TaskTemplate.Placement.Constraints}}' webapp_web
on vm1 shoal service update -d --constraint-rm 'node.hostname == vm2' --with-registry-auth webapp_web
on vm1 shoal service update --constraint-add 'node.hostname == vm1' --with-registry-auth webapp_web
on vm1 shoal service ps --format '{{.Node}}' -f desired-state=running webapp_web
on vm1 shoal service update -d --constraint-rm 'node.hostname == vm1' --with-registry-auth webapp_web
on vm1 shoal service inspect --format '{{.Spec.TaskTemplate.Placement.Constraints}}' webapp_web

say "Scale web to 2 replicas"
on vm1 shoal service update --replicas 2 webapp_web
on vm1 shoal service ls

say "Rolling update 1.0 -> 2.0, one task at a time, 2s apart, while a client loops through vm3's port 8080"
( for i in $(seq 1 400); do shoal lab exec --name "$LAB" client -- curl -s -m 2 -o /dev/null -w '%{http_code}\n' http://10.77.0.13:8080/ || echo fail; done ) > "$TMP_LOOP" &
LOOP=$!
on vm1 shoal service update --image shoal/demo-web:2.0 --args "--listen 0.0.0.0:80 --version 2.0" --update-parallelism 1 --update-delay 2s --with-registry-auth webapp_web
on vm1 shoal service ps webapp_web
kill $LOOP 2>/dev/null || true; wait $LOOP 2>/dev/null || true
echo "client requests during the update: $(grep -c '^200$' "$TMP_LOOP") answered, $(grep -vc '^200$' "$TMP_LOOP") failed"

say "Drain vm2 for maintenance: its tasks move"
on vm1 shoal node update --availability drain vm2
wait_for "both replicas on vm1" vm1 '^vm1 vm1 $' sh -c "shoal service ps -f desired-state=running --format '{{.Node}}' webapp_web | sort | tr '\\n' ' '"
on vm1 shoal node ls
on vm1 shoal stack ps webapp

say "Back to active, and --force rebalances the two replicas over the nodes"
on vm1 shoal node update --availability active vm2
on vm1 shoal service update --force --with-registry-auth webapp_web
on vm1 shoal service ps -f desired-state=running webapp_web

say "Done. The lab is torn down on exit."
