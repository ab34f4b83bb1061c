#!/bin/bash
# Interop: a zkcoord mutex (tests/interop/lock_driver) and Curator's
# InterProcessMutex (tests/interop/CuratorMutex.java) on one path exclude
# each other and queue behind each other, against a server from the harness.
# Skips (77) only when the Curator jars are missing: install
# libcurator-recipes-java (scripts/install-deps does).
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
driver="$top_builddir/tests/interop/lock_driver"
harness="$top_builddir/tests/harness/zkharness"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
javac -d "$work" -cp "$CP" "$top_srcdir/tests/interop/CuratorMutex.java" || { echo "FAIL: javac"; exit 1; }
export CP work driver

# The scenario, run with ZKC_TEST_SERVERS set by the harness.
cat >"$work/scenario.sh" <<'SCEN'
set -u
S=$ZKC_TEST_SERVERS
java_() { java -cp "$work:$CP" CuratorMutex "$S" "$@"; }
fail() { echo "FAIL: $*"; exit 1; }
expect() { # fd, word
    local line
    read -r -t 60 line <&"$1" || fail "no line (wanted $2)"
    echo "  got: $line"
    case "$line" in "$2"*) ;; *) fail "wanted $2, got '$line'";; esac
}

echo "== C holds: Curator cannot get in, then queues and gets it on release"
mkfifo "$work/cin" "$work/cout"
"$driver" "$S" /interop/mutex hold <"$work/cin" >"$work/cout" &
exec 3>"$work/cin" 4<"$work/cout"
expect 4 HELD
out=$(java_ /interop/mutex try 1500) ; echo "  curator try: $out"
case "$out" in *TIMEOUT*) ;; *) fail "curator acquired a lock held by C";; esac
java_ /interop/mutex try 20000 >"$work/jtry" &
jpid=$!
"$driver" "$S" /interop/mutex waitn 2 30000 || fail "curator's node never queued"
echo release >&3
expect 4 RELEASED
wait $jpid || fail "curator did not acquire after C released"
grep -q ACQUIRED "$work/jtry" || fail "curator: $(cat "$work/jtry")"
echo "  curator: $(tr '\n' ' ' <"$work/jtry")"
exec 3>&- 4<&-

echo "== Curator holds: C cannot get in, then queues and gets it on release"
mkfifo "$work/jin" "$work/jout"
java_ /interop/mutex hold <"$work/jin" >"$work/jout" &
exec 5>"$work/jin" 6<"$work/jout"
expect 6 HELD
"$driver" "$S" /interop/mutex waitn 1 10000 | grep NODE | grep -q -- '^NODE _c_.*-lock-[0-9]\{10\}$' \
    || fail "curator's node is not _c_<uuid>-lock-<seq>"
out=$("$driver" "$S" /interop/mutex try 1000); echo "  zkcoord try: $out"
case "$out" in *TIMEOUT*) ;; *) fail "C acquired a lock held by Curator";; esac
"$driver" "$S" /interop/mutex try 20000 >"$work/ctry" &
cpid=$!
"$driver" "$S" /interop/mutex waitn 2 30000 || fail "C's node never queued"
echo release >&5
expect 6 RELEASED
wait $cpid || fail "C did not acquire after Curator released"
echo "  zkcoord: $(tr '\n' ' ' <"$work/ctry")"
exec 5>&- 6<&-
"$driver" "$S" /interop/mutex waitn 0 10000 >/dev/null || fail "nodes left behind"
echo "PASS: zkcoord and Curator mutexes exclude each other and share one queue"
SCEN
"$harness" run -q -- bash "$work/scenario.sh"
