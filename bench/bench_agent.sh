#!/bin/sh
# Footprint of idle agents: 10 zkcoord agents in one cluster on a local
# ZooKeeper; once all 10 are members and one leads, print each agent's
# resident memory (VmRSS) and threads. Prints figures; no pass/fail.
#   bench/bench_agent.sh BUILD_DIR
set -eu
build=${1:?usage: bench_agent.sh BUILD_DIR}
n=10
work=$(mktemp -d "${TMPDIR:-/tmp}/zkcoord-bench.XXXXXX")
pids="" zkpid=""
cleanup() {
    for p in $pids; do kill -TERM "$p" 2>/dev/null || true; done
    for p in $pids; do wait "$p" 2>/dev/null || true; done
    [ -z "$zkpid" ] || { kill -TERM "$zkpid" 2>/dev/null || true; wait "$zkpid" 2>/dev/null || true; }
    rm -rf "$work"
}
trap cleanup EXIT INT TERM
"$build/tests/harness/zkharness" serve -q --connect-file "$work/servers" >/dev/null 2>&1 &
zkpid=$!
end=$(( $(date +%s) + 60 ))
until [ -s "$work/servers" ]; do [ "$(date +%s)" -lt "$end" ] || exit 1; sleep 0.1; done
servers=$(cat "$work/servers")
i=1
while [ $i -le $n ]; do
    cat >"$work/a$i.json" <<JSON
{"zookeeper": {"servers": "$servers", "session_timeout_ms": 10000},
 "cluster": "bench", "member": {"id": "agent-$i", "host": "127.0.0.1", "port": $((7000 + i))},
 "election": {"enabled": true},
 "handlers": [{"on": ["members_changed", "leader_changed"], "args": ["/bin/true"]}],
 "log": {"level": "warn"}}
JSON
    "$build/zkcoord" -c "$work/a$i.json" 2>>"$work/agents.log" &
    pids="$pids $!"
    i=$((i + 1))
done
# Wait until the cluster is complete (all members and a leader).
end=$(( $(date +%s) + 60 ))
until [ "$("$build/zkcoordctl" -s "$servers" --format json members bench 2>/dev/null | grep -o '"id"' | wc -l)" -ge $n ] &&
      "$build/zkcoordctl" -s "$servers" leader bench >/dev/null 2>&1; do
    [ "$(date +%s)" -lt "$end" ] || { echo "cluster did not form" >&2; tail "$work/agents.log" >&2; exit 1; }
    sleep 0.2
done
total=0 max=0
for p in $pids; do
    rss=$(awk '/^VmRSS/ {print $2}' "/proc/$p/status")
    thr=$(awk '/^Threads/ {print $2}' "/proc/$p/status")
    total=$((total + rss)); [ "$rss" -gt "$max" ] && max=$rss
    echo "agent pid $p: VmRSS ${rss} KiB, ${thr} threads"
done
echo "idle agent in a $n-member cluster: VmRSS mean $((total / n)) KiB, max $max KiB (target < 8192 KiB)"
