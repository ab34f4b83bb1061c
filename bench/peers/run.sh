#!/bin/sh
# Peers side by side: zkcoord (bench/bench_lock, bench/bench_election),
# Curator (bench/peers/CuratorBench.java) and kazoo (bench/peers/kazoo_bench.py)
# in one run on one machine, then one comparison table. Prints figures;
# nothing here passes or fails on time. Request counts come from the server's
# mntr (zk_packets_received) and do not depend on machine noise; times do.
#
#   bench/peers/run.sh BUILD_DIR [CYCLES [ROUNDS]]     defaults 2000, 200
#
# One server from the harness (zkharness serve, loopback, tmpfs, tickTime
# 2000 like bench_lock's own) serves bench_lock (-s), Curator and kazoo, one
# after the other. bench_election cannot use an existing server: it starts its
# own, identical apart from tickTime (the harness default, 100 ms).
# Needs javac and the Curator jars (libcurator-recipes-java) and Debian's
# python3-kazoo for /usr/bin/python3; a peer whose parts are missing is
# reported as skipped.
set -eu
build=${1:?usage: run.sh BUILD_DIR [CYCLES [ROUNDS]]}
build=$(cd "$build" && pwd)
cycles=${2:-2000}
rounds=${3:-200}
here=$(cd "$(dirname "$0")" && pwd)
J=/usr/share/java
CP=$(printf "$J/%s.jar:" curator-client curator-framework curator-recipes zookeeper \
    zookeeper-jute guava failureaccess slf4j-api slf4j-nop netty-handler netty-transport \
    netty-common netty-buffer netty-resolver netty-codec netty-transport-native-epoll \
    netty-transport-native-unix-common metrics-core)
PY=/usr/bin/python3

work=$(mktemp -d "${TMPDIR:-/tmp}/zkcoord-peers.XXXXXX")
zkpid=""
cleanup() {
    if [ -n "$zkpid" ]; then
        kill -TERM "$zkpid" 2>/dev/null || true
        wait "$zkpid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

for t in bench/bench_lock bench/bench_election tests/harness/zkharness; do
    [ -x "$build/$t" ] || { echo "run.sh: $build/$t not built" >&2; exit 1; }
done

java_ok=1
for jar in curator-client curator-framework curator-recipes zookeeper guava; do
    [ -e "$J/$jar.jar" ] || java_ok=0
done
command -v javac >/dev/null 2>&1 || java_ok=0
if [ $java_ok = 1 ]; then
    mkdir -p "$work/classes"
    javac -d "$work/classes" -cp "$CP" "$here/CuratorBench.java" || java_ok=0
fi
kazoo_ok=1
"$PY" -c 'import kazoo' 2>/dev/null || kazoo_ok=0

"$build/tests/harness/zkharness" serve -q -t 2000 --connect-file "$work/servers" \
    >/dev/null 2>"$work/zkharness.err" &
zkpid=$!
end=$(($(date +%s) + 60))
until [ -s "$work/servers" ]; do
    if ! kill -0 "$zkpid" 2>/dev/null || [ "$(date +%s)" -ge "$end" ]; then
        echo "run.sh: the harness did not start a server" >&2
        cat "$work/zkharness.err" >&2
        exit 1
    fi
    sleep 0.1
done
S=$(cat "$work/servers")
echo "peers: one ZooKeeper from the harness at $S (loopback, tickTime 2000)"
echo "       $(uptime)"
echo

echo "==> zkcoord: bench/bench_lock -n $cycles -s $S"
"$build/bench/bench_lock" -n "$cycles" -s "$S" | tee "$work/ours.out"
echo
echo "==> zkcoord: bench/bench_election $rounds (its own server: it cannot take -s)"
"$build/bench/bench_election" "$rounds" | tee "$work/ourel.out"
echo
if [ $java_ok = 1 ]; then
    echo "==> Curator: java CuratorBench $S $cycles $rounds"
    java -cp "$work/classes:$CP" CuratorBench "$S" "$cycles" "$rounds" | tee "$work/curator.out"
else
    echo "==> Curator: skipped (javac or Curator jars missing, or javac failed)"
fi
echo
if [ $kazoo_ok = 1 ]; then
    echo "==> kazoo: $PY kazoo_bench.py $S $cycles $rounds"
    "$PY" "$here/kazoo_bench.py" "$S" "$cycles" "$rounds" | tee "$work/kazoo.out"
else
    echo "==> kazoo: skipped ($PY cannot import kazoo: install python3-kazoo)"
fi
echo
echo "       $(uptime)"
echo

# The table: uncontended lock cycle, and leader hand-off (2 and 10
# participants, median). zkcoord's hand-off is bench_election's resign ->
# ELECTED; Curator's LeaderLatch close -> isLeader(); kazoo's Election
# function return -> next function.
ours=$(awk '/cycles\/s/ {c=$2} /time per cycle/ {m=$4} /requests per cycle/ {r=$4}
    END {printf "%s %s %s", c, m, r}' "$work/ours.out")
el=$(awk '/^participants/ {for (i = 1; i < NF; i++) if ($i == "median") {printf "%s ", $(i+1); break}}' \
    "$work/ourel.out")
echo "comparison (one run; uncontended lock cycle on one session; leader hand-off median)"
printf '%-28s %10s %10s %14s %14s %14s\n' tool cycles/s ms/cycle requests/cycle hand-off2_ms hand-off10_ms
# shellcheck disable=SC2086
set -- $ours $el
printf '%-28s %10s %10s %14s %14s %14s\n' "zkcoord (C)" "$1" "$2" "$3" "${4:--}" "${5:--}"
for f in curator kazoo; do
    if [ -s "$work/$f.out" ] && grep -q '^SUMMARY' "$work/$f.out"; then
        # shellcheck disable=SC2046
        set -- $(grep '^SUMMARY' "$work/$f.out")
        case $f in curator) name="Curator InterProcessMutex" ;; *) name="kazoo Lock" ;; esac
        printf '%-28s %10s %10s %14s %14s %14s\n' "$name" "$3" "$4" "$5" "$6" "$7"
    else
        printf '%-28s %10s\n' "$f" "(skipped or failed)"
    fi
done
echo "hand-off: zkcoord election resign -> ELECTED (bench_election, own server, tick 100);"
echo "          Curator LeaderLatch close -> isLeader(); kazoo Election function return -> next."
echo "requests: mntr zk_packets_received delta per cycle, the mntr calls' own packet"
echo "          (1 per call) subtracted. Times are noisy on a shared machine; requests are not."

# Counters (issue 12): CAS increments under contention from 10 sessions on
# one counter, zkcoord's zkc_counter_add (8-byte) vs Curator's
# DistributedAtomicLong, on the same server, one after the other.
counter_adds=${COUNTER_ADDS:-500}
echo
echo "==> zkcoord: bench/bench_counter -n $counter_adds -c 10 -s $S"
"$build/bench/bench_counter" -n "$counter_adds" -c 10 -s "$S" | tee "$work/ourctr.out" || true
if [ $java_ok = 1 ] && javac -d "$work/classes" -cp "$CP" "$here/CuratorCounterBench.java"; then
    echo "==> Curator: java CuratorCounterBench $S $counter_adds 10"
    java -cp "$work/classes:$CP" CuratorCounterBench "$S" "$counter_adds" 10 | tee "$work/curctr.out" || true
else
    echo "==> Curator counter: skipped (javac or Curator jars missing, or javac failed)"
fi
echo
echo "comparison (one run; counter +1: uncontended on one session, contended from 10 sessions)"
printf '%-32s %10s %12s %14s %16s\n' tool ms/add req/add inc/s@10 req/inc@10
for f in ourctr curctr; do
    if [ -s "$work/$f.out" ] && grep -q '^SUMMARY' "$work/$f.out"; then
        # shellcheck disable=SC2046
        set -- $(grep '^SUMMARY' "$work/$f.out")
        case $f in ourctr) name="zkcoord zkc_counter_add" ;; *) name="Curator DistributedAtomicLong" ;; esac
        printf '%-32s %10s %12s %14s %16s\n' "$name" "$3" "$4" "$5" "$6"
    else
        printf '%-32s %10s\n' "$f" "(skipped or failed)"
    fi
done
