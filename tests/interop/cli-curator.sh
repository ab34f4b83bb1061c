#!/bin/bash
# Interop: `zkcoordctl lock` and Curator's InterProcessMutex
# (tests/interop/CuratorMutex.java) on one path exclude each other and queue
# behind each other; `zkcoordctl locks` shows a Curator holder. Against a
# server from the harness. Skips (77) only when the Curator jars are missing
# (install libcurator-recipes-java; scripts/install-deps does).
set -u
top_srcdir=${top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}
top_builddir=${top_builddir:-.}
J=/usr/share/java
for jar in curator-client curator-framework curator-recipes zookeeper guava; do
    if [ ! -e "$J/$jar.jar" ]; then
        echo "SKIP: $J/$jar.jar missing (install libcurator-recipes-java)"
        exit 77
    fi
done
command -v javac >/dev/null || { echo "FAIL: javac not found"; exit 1; }
CP=$(printf "$J/%s.jar:" curator-client curator-framework curator-recipes zookeeper \
    zookeeper-jute guava failureaccess slf4j-api slf4j-nop netty-handler netty-transport \
    netty-common netty-buffer netty-resolver netty-codec netty-transport-native-epoll \
    netty-transport-native-unix-common metrics-core)
ctl="$(cd "$top_builddir" && pwd)/zkcoordctl"
harness="$top_builddir/tests/harness/zkharness"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
javac -d "$work" -cp "$CP" "$top_srcdir/tests/interop/CuratorMutex.java" || { echo "FAIL: javac"; exit 1; }
export CP work ctl

cat >"$work/scenario.sh" <<'SCEN'
set -u
export ZKCOORD_SERVERS=$ZKC_TEST_SERVERS
L=/zkcoord/ic/locks/m
java_() { java -cp "$work:$CP" CuratorMutex "$ZKCOORD_SERVERS" "$@"; }
fail() { echo "FAIL: $*"; exit 1; }
expect() { # fd, word
    local line
    read -r -t 60 line <&"$1" || fail "no line (wanted $2)"
    echo "  got: $line"
    case "$line" in "$2"*) ;; *) fail "wanted $2, got '$line'";; esac
}
waiting() { # n: wait until the lock has n waiters
    for _ in $(seq 1 300); do
        "$ctl" -f json locks ic m 2>/dev/null | grep -q "\"waiting\": $1" && return 0
        sleep 0.1
    done
    return 1
}

echo "== Curator holds: zkcoordctl lock times out, then queues and runs on release"
mkfifo "$work/jin" "$work/jout"
java_ $L hold <"$work/jin" >"$work/jout" &
exec 5>"$work/jin" 6<"$work/jout"
expect 6 HELD
"$ctl" -f json locks ic m | grep -q '"node": "_c_.*-lock-0000000000"' \
    || fail "zkcoordctl locks does not show Curator's holder"
"$ctl" lock --timeout 1000 $L -- true; rc=$?
[ $rc -eq 6 ] || fail "zkcoordctl lock got a lock held by Curator (exit $rc)"
"$ctl" lock $L -- sh -c 'echo "RAN $ZKCOORD_FENCING_TOKEN"' >"$work/cout" &
cpid=$!
waiting 1 || fail "zkcoordctl's node never queued"
echo release >&5
expect 6 RELEASED
wait $cpid || fail "zkcoordctl lock failed after Curator released"
grep -q '^RAN [1-9]' "$work/cout" || fail "CMD did not run: $(cat "$work/cout")"
exec 5>&- 6<&-

echo "== zkcoordctl holds: Curator cannot get in until CMD exits"
mkfifo "$work/cin" "$work/cheld"
"$ctl" lock $L -- sh -c 'echo HELD; read x' <"$work/cin" >"$work/cheld" &
cpid=$!
exec 3>"$work/cin" 4<"$work/cheld"
expect 4 HELD
out=$(java_ $L try 1500); echo "  curator try: $out"
case "$out" in *TIMEOUT*) ;; *) fail "Curator acquired a lock held by zkcoordctl";; esac
echo go >&3
wait $cpid || fail "zkcoordctl lock exit status"
out=$(java_ $L try 10000); echo "  curator try: $out"
case "$out" in *ACQUIRED*) ;; *) fail "Curator did not get the lock after zkcoordctl";; esac
exec 3>&- 4<&-
echo "PASS: zkcoordctl lock and Curator's InterProcessMutex exclude each other"
SCEN
"$harness" run -q -- bash "$work/scenario.sh"
