#!/bin/sh
# C++ users: compile tests/cxx/embed.cpp (examples/embed.c as C++17) and each
# public header on its own with g++ -std=c++17 -Wall -Wextra -Werror -pedantic
# against an INSTALLED libzkcoord (headers, libzkcoord.pc, the .so), link it
# with `pkg-config --cflags --libs libzkcoord`, and run its no-server
# self-test with the installed library.
#
#   tests/cxx/check.sh ROOT PCDIR
#     ROOT   a staged install: `make install DESTDIR=ROOT`, or extracted .debs
#     PCDIR  the directory holding libzkcoord.pc, inside ROOT
# ROOT is passed to pkg-config as PKG_CONFIG_SYSROOT_DIR, so the .pc's
# -I/-L paths point into ROOT. Extra environment: CXX (default g++),
# ZKC_TEST_SERVERS (also campaign against this ZooKeeper and wait to lead).
set -eu
root=$(cd "$1" && pwd)
pcdir=$(cd "$2" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
cxx=${CXX:-g++}
cxxflags="-std=c++17 -Wall -Wextra -Werror -pedantic"
work=$(mktemp -d "${TMPDIR:-/tmp}/zkcoord-cxx.XXXXXX")
trap 'rm -rf "$work"' EXIT

pc() { PKG_CONFIG_SYSROOT_DIR=$root PKG_CONFIG_PATH=$pcdir pkg-config "$@" libzkcoord; }
cflags=$(pc --cflags)
libs=$(pc --libs)
echo "cxx: pkg-config libzkcoord $(pc --modversion): $cflags $libs"
libdir=$(PKG_CONFIG_SYSROOT_DIR='' PKG_CONFIG_PATH=$pcdir pkg-config --variable=libdir libzkcoord)
incdir=$(PKG_CONFIG_SYSROOT_DIR='' PKG_CONFIG_PATH=$pcdir pkg-config --variable=includedir libzkcoord)

# Each header alone: self-contained and clean as C++, as installed (the
# source tree's tests/check-headers.sh checks the same in C99 and C++17). A
# header listed here is expected to fail; the check fails when it starts
# compiling, so the list does not go stale. Empty since fence.h was fixed.
known_not_standalone=""
n=0
for h in "$root$incdir"/zkcoord/*.h; do
    [ -f "$h" ] || { echo "cxx: no headers in $root$incdir/zkcoord" >&2; exit 1; }
    name=$(basename "$h")
    printf '#include <zkcoord/%s>\nint main() { return 0; }\n' "$name" >"$work/h.cpp"
    ok=1
    # shellcheck disable=SC2086
    $cxx $cxxflags $cflags -c "$work/h.cpp" -o "$work/h.o" 2>"$work/h.err" || ok=0
    case " $known_not_standalone " in
    *" $name "*)
        if [ $ok -eq 1 ]; then
            echo "cxx: <zkcoord/$name> now compiles alone: drop it from known_not_standalone" >&2
            exit 1
        fi
        echo "cxx: <zkcoord/$name> alone: fails as known ($(grep -m1 'error:' "$work/h.err" | sed 's/.*error: //'))"
        ;;
    *)
        if [ $ok -eq 0 ]; then
            cat "$work/h.err" >&2
            echo "cxx: <zkcoord/$name> does not compile alone as C++17" >&2
            exit 1
        fi
        n=$((n + 1))
        ;;
    esac
done
echo "cxx: $n headers compile alone as C++17 with $cxxflags"

# shellcheck disable=SC2086
$cxx $cxxflags $cflags "$here/embed.cpp" -o "$work/embed-cxx" $libs
export LD_LIBRARY_PATH="$root$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
# The library it runs with is the installed one, not a build tree's.
got=$(ldd "$work/embed-cxx" | awk '$1 == "libzkcoord.so.0" {print $3}')
if [ "$got" != "$root$libdir/libzkcoord.so.0" ]; then
    echo "cxx: embed-cxx resolves libzkcoord.so.0 to '$got', expected $root$libdir/libzkcoord.so.0" >&2
    exit 1
fi
"$work/embed-cxx" --selftest

# With a server: campaign alone, so it must be elected; then SIGTERM.
if [ -n "${ZKC_TEST_SERVERS:-}" ]; then
    "$work/embed-cxx" "$ZKC_TEST_SERVERS" /zkcoord-cxx/leader cxx-1 >"$work/run.out" 2>&1 &
    pid=$!
    deadline=$(($(date +%s) + 60))
    until grep -q '^elected: cxx-1 leads' "$work/run.out"; do
        if ! kill -0 "$pid" 2>/dev/null || [ "$(date +%s)" -ge "$deadline" ]; then
            kill "$pid" 2>/dev/null || true
            cat "$work/run.out" >&2
            echo "cxx: embed-cxx was not elected within 60 s" >&2
            exit 1
        fi
        sleep 0.2 # polling a file for a line, bounded by the deadline above
    done
    kill -TERM "$pid"
    rc=0
    wait "$pid" || rc=$?
    cat "$work/run.out"
    if [ "$rc" -ne 0 ] || ! grep -q '^signal 15: leaving' "$work/run.out"; then
        echo "cxx: embed-cxx did not leave cleanly on SIGTERM (exit $rc)" >&2
        exit 1
    fi
fi
echo "cxx: ok"
