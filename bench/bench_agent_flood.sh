#!/bin/sh
# The agent under member floods (issue 11 item 2). One local ZooKeeper; the
# members are written by a raw client (bench/bench_flood), not by agents.
#  1. agent CPU per membership change with 100 / 1,000 / 10,000 members:
#     one agent (no handlers) watches a cluster of N flood members; then
#     400 changes (200 joins and their leaves, one at a time); CPU is the
#     agent's utime+stime from /proc (clock ticks) before and after.
#  2. demotion under a flood: the agent leads and supervises an app; 3,000
#     members join at once while its health check starts failing; the agent
#     logs how long after DEMOTED its app was gone.
#  3. TERM with 10,000 members: time from TERM to the agent's exit.
# Prints figures; no pass/fail.
#   bench/bench_agent_flood.sh BUILD_DIR
set -eu
build=${1:?usage: bench_agent_flood.sh BUILD_DIR}
work=$(mktemp -d "${TMPDIR:-/tmp}/zkcoord-flood.XXXXXX")
zkpid="" apid="" fpids=""
cleanup() {
    [ -z "$apid" ] || { kill -TERM "$apid" 2>/dev/null || true; wait "$apid" 2>/dev/null || true; }
    for p in $fpids; do kill -TERM "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
    [ -z "$zkpid" ] || { kill -TERM "$zkpid" 2>/dev/null || true; wait "$zkpid" 2>/dev/null || true; }
    rm -rf "$work"
}
trap cleanup EXIT INT TERM
"$build/tests/harness/zkharness" serve -q --connect-file "$work/servers" >/dev/null 2>&1 &
zkpid=$!
end=$(( $(date +%s) + 60 ))
until [ -s "$work/servers" ]; do [ "$(date +%s)" -lt "$end" ] || exit 1; sleep 0.1; done
servers=$(cat "$work/servers")
hz=$(getconf CLK_TCK)
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# Start a flood of $2 members in cluster $1 holding them until its fifo
# closes; waits for "created".
flood() {
    mkfifo "$work/hold-$1"
    "$build/bench/bench_flood" "$servers" "/zkcoord/$1/members" "$2" <"$work/hold-$1" >"$work/flood-$1.out" &
    fpids="$fpids $!"
    exec 7>"$work/hold-$1"
}
wait_flood() {
    end=$(( $(date +%s) + 120 ))
    until grep -q created "$work/flood-$1.out" 2>/dev/null; do
        [ "$(date +%s)" -lt "$end" ] || { echo "flood $1 did not finish" >&2; exit 1; }
        sleep 0.05
    done
}
# Wait until the agent's view holds $2 members (USR1 dumps its state).
wait_view() {
    end=$(( $(date +%s) + 180 ))
    # USR1 before the agent blocked it would kill it: wait until it runs.
    until grep -q "running for cluster" "$work/agent-$1.log" 2>/dev/null; do
        [ "$(date +%s)" -lt "$end" ] || { echo "agent did not start" >&2; exit 1; }
        sleep 0.05
    done
    while :; do
        kill -USR1 "$apid"
        sleep 0.2
        seen=$(grep -o '"members":[0-9]*' "$work/agent-$1.log" | tail -1 | cut -d: -f2)
        [ "${seen:-0}" -eq "$2" ] && return 0
        [ "$(date +%s)" -lt "$end" ] || { echo "agent view: ${seen:-0} of $2" >&2; exit 1; }
    done
}
agent_cfg() { # cluster, extra json
    cat >"$work/$1.json" <<JSON
{"zookeeper": {"servers": "$servers", "session_timeout_ms": 10000},
 "cluster": "$1", "member": {"id": "agent-$1", "host": "127.0.0.1", "port": 7000},
 "election": {"enabled": true}, $2
 "log": {"level": "info"}}
JSON
}

echo "== agent CPU per membership change (no handlers; 400 changes, one at a time)"
for n in 100 1000 10000; do
    c="cpu$n"
    flood "$c" "$n"
    wait_flood "$c"
    agent_cfg "$c" ""
    "$build/zkcoord" -c "$work/$c.json" 2>"$work/agent-$c.log" &
    apid=$!
    wait_view "$c" $((n + 1))
    t0=$(cpu_ticks "$apid")
    "$build/bench/bench_flood" "$servers" "/zkcoord/$c/members" 0 200 </dev/null >"$work/churn-$c.out"
    wait_view "$c" $((n + 1))
    sleep 1 # let the last batch settle
    t1=$(cpu_ticks "$apid")
    echo "  $n members: $(( (t1 - t0) * 1000000 / hz / 400 )) us CPU per change ($((t1 - t0)) ticks at $hz Hz for 400 changes; $(grep churned "$work/churn-$c.out"))"
    kill -TERM "$apid"; wait "$apid" || true; apid=""
    exec 7>&-
done

echo "== demotion under a flood of 3,000 joining members"
c=demote
cat >"$work/app.sh" <<'SH'
#!/bin/sh
trap 'exit 0' TERM
echo started >>"$1"
while :; do sleep 1; done
SH
touch "$work/ok"
agent_cfg "$c" "\"health\": {\"args\": [\"/bin/test\", \"-e\", \"$work/ok\"], \"interval_ms\": 100, \"rise\": 1, \"fall\": 1},
 \"supervise\": {\"args\": [\"/bin/sh\", \"$work/app.sh\", \"$work/app.out\"], \"while\": \"leader\", \"stop_grace_ms\": 3000},"
"$build/zkcoord" -c "$work/$c.json" 2>"$work/agent-$c.log" &
apid=$!
end=$(( $(date +%s) + 60 ))
until [ -s "$work/app.out" ]; do [ "$(date +%s)" -lt "$end" ] || { echo "app did not start" >&2; exit 1; }; sleep 0.05; done
flood "$c" 3000
rm -f "$work/ok"
t0=$(now_ms)
end=$(( $(date +%s) + 120 ))
until grep -q "stopped .* ms after DEMOTED" "$work/agent-$c.log"; do
    [ "$(date +%s)" -lt "$end" ] || { echo "no demotion" >&2; exit 1; }
    sleep 0.01
done
t1=$(now_ms)
wait_flood "$c"
echo "  $(grep -o 'supervised app stopped [0-9]* ms after DEMOTED' "$work/agent-$c.log" | tail -1)"
echo "  health file removed -> that log line seen: $((t1 - t0)) ms (health interval 100 ms, fall 1); $(cat "$work/flood-$c.out")"
kill -TERM "$apid"; wait "$apid" || true; apid=""
exec 7>&-

echo "== TERM with 10,000 members"
c=term
agent_cfg "$c" ""
"$build/zkcoord" -c "$work/$c.json" 2>"$work/agent-$c.log" &
apid=$!
wait_view "$c" 1
flood "$c" 10000 # they join once the agent is up: each is an event for it
wait_flood "$c"
wait_view "$c" 10001
t0=$(now_ms)
kill -TERM "$apid"
wait "$apid" || true
t1=$(now_ms)
apid=""
echo "  TERM -> exit: $((t1 - t0)) ms"
exec 7>&-
