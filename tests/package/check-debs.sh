#!/bin/sh
# Check the Debian packages that scripts/package built (in DIR, default
# _build/package): what each one ships (dpkg-deb -c), its control data
# (version, dependencies, conffiles, maintainer scripts), and that they work
# when unpacked together into a throwaway root: the agent and the CLI run
# from it against the unpacked library, the example config passes
# `zkcoord --check`, and tests/cxx/check.sh builds C++ against the unpacked
# libzkcoord-dev (headers, .so link, libzkcoord.pc).
#
# Why unpacking (dpkg-deb -x) rather than installing: `dpkg --root` needs a
# dpkg database in the root and runs the maintainer scripts (adduser,
# deb-systemd-helper) against the host's tools and /etc; a real chroot needs
# debootstrap (minutes and a mirror). Unpacking needs neither, runs in
# seconds and touches nothing outside a temp dir; what it cannot run (the
# postinst) is checked by content instead.
#
#   tests/package/check-debs.sh [DIR]
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
dir=$(cd "${1:-$top/_build/package}" && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/zkcoord-debs.XXXXXX")
trap 'rm -rf "$work"' EXIT
fail=0
bad() { echo "check-debs: $*" >&2; fail=1; }

ac_version=$(sed -n 's/^AC_INIT(\[[^]]*\], *\[\([^]]*\)\].*/\1/p' "$top/configure.ac")
ma=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
arch=$(dpkg-architecture -qDEB_HOST_ARCH)

deb_of() { # package -> its .deb
    set -- "$dir/$1"_*_"$arch".deb
    if [ $# -ne 1 ] || [ ! -f "$1" ]; then
        echo "check-debs: no single $1 .deb in $dir" >&2
        exit 1
    fi
    echo "$1"
}
lib=$(deb_of libzkcoord0)
dev=$(deb_of libzkcoord-dev)
agent=$(deb_of zkcoord)

# ---- file lists: everything each package must ship, and nothing misplaced
ships() { # deb, paths...
    deb=$1; shift
    dpkg-deb -c "$deb" | awk '{print $6}' | sed 's|^\./|/|; s|/$||' >"$work/list"
    for p in "$@"; do
        grep -qxF "$p" "$work/list" || bad "$(basename "$deb") lacks $p"
    done
}
ships "$lib" "/usr/lib/$ma/libzkcoord.so.0" "/usr/lib/$ma/libzkcoord.so.0.0.0" \
    /usr/share/doc/libzkcoord0/copyright
ships "$dev" /usr/include/zkcoord/zkcoord.h /usr/include/zkcoord/group.h \
    /usr/include/zkcoord/election.h /usr/include/zkcoord/lock.h /usr/include/zkcoord/fence.h \
    "/usr/lib/$ma/libzkcoord.so" "/usr/lib/$ma/pkgconfig/libzkcoord.pc" \
    /usr/share/man/man3/libzkcoord.3.gz
ships "$agent" /usr/bin/zkcoord /usr/bin/zkcoordctl /usr/share/man/man8/zkcoord.8.gz \
    /usr/share/man/man1/zkcoordctl.1.gz /usr/share/bash-completion/completions/zkcoordctl \
    /lib/systemd/system/zkcoord.service /etc/zkcoord/zkcoord.json
# Every public header of the tree is in -dev; no header, .so link or .la
# anywhere else; the runtime library only in libzkcoord0.
for h in "$top"/include/zkcoord/*.h; do ships "$dev" "/usr/include/zkcoord/$(basename "$h")"; done
paths() { dpkg-deb -c "$1" | awk '{print $6}'; }
for deb in "$lib" "$agent"; do
    paths "$deb" | grep -E '\.h$|libzkcoord\.so$|\.la$|\.a$|\.pc$' && bad "$(basename "$deb") ships development files"
done
paths "$dev" | grep -E 'libzkcoord\.so\.|\.la$|\.a$' && bad "libzkcoord-dev ships runtime or libtool files"

# ---- control data
for deb in "$lib" "$dev" "$agent"; do
    v=$(dpkg-deb -f "$deb" Version)
    [ "${v%-*}" = "$ac_version" ] || bad "$(basename "$deb"): version $v, configure.ac says $ac_version"
done
v=$(dpkg-deb -f "$lib" Version)
dpkg-deb -f "$dev" Depends | grep -qF "libzkcoord0 (= $v)" || bad "libzkcoord-dev does not depend on libzkcoord0 (= $v)"
dpkg-deb -f "$dev" Depends | grep -q 'libjansson-dev' || bad "libzkcoord-dev lacks libjansson-dev (libzkcoord.pc Requires.private: jansson)"
for d in adduser libzookeeper-mt libjansson libmicrohttpd; do
    dpkg-deb -f "$agent" Depends | grep -q "$d" || bad "zkcoord does not depend on $d*"
done
dpkg-deb -f "$lib" Depends | grep -q 'libzookeeper-mt' || bad "libzkcoord0 does not depend on libzookeeper-mt*"
dpkg-deb --info "$lib" symbols >"$work/symbols" 2>/dev/null || bad "libzkcoord0 has no symbols file"
grep -q '^ zkc_session_new@Base' "$work/symbols" || bad "libzkcoord0's symbols file lacks zkc_session_new"
[ "$(dpkg-deb --info "$agent" conffiles 2>/dev/null)" = /etc/zkcoord/zkcoord.json ] ||
    bad "zkcoord's conffiles are not exactly /etc/zkcoord/zkcoord.json"
dpkg-deb --info "$agent" postinst >"$work/postinst" 2>/dev/null || bad "zkcoord has no postinst"
# (continuation lines joined before matching)
sed -e ':a' -e '/\\$/N; s/\\\n *//; ta' "$work/postinst" |
    grep -q 'adduser --system --group .* zkcoord$' || bad "zkcoord's postinst does not create the zkcoord system user"
sh -n "$work/postinst" || bad "zkcoord's postinst is not valid sh"
grep -q 'deb-systemd-helper' "$work/postinst" || bad "zkcoord's postinst does not register the systemd unit"
[ $fail -eq 0 ] && echo "check-debs: file lists and control data as expected"

# ---- a throwaway root with the three packages unpacked
root="$work/root"
mkdir "$root"
for deb in "$lib" "$dev" "$agent"; do dpkg-deb -x "$deb" "$root"; done
grep -q '^User=zkcoord$' "$root/lib/systemd/system/zkcoord.service" || bad "the unit does not run as User=zkcoord"
export LD_LIBRARY_PATH="$root/usr/lib/$ma"
for b in zkcoord zkcoordctl; do
    ldd "$root/usr/bin/$b" | grep 'not found' && bad "$b: unresolved libraries"
    out=$("$root/usr/bin/$b" --version) || bad "$b --version failed"
    [ "$out" = "$b $ac_version" ] || bad "$b --version says '$out', expected '$b $ac_version'"
    "$root/usr/bin/$b" --help >"$work/help" || bad "$b --help failed"
    grep -q "usage" "$work/help" || bad "$b --help prints no usage"
done
# The unit's ExecStartPre, on the shipped example config.
"$root/usr/bin/zkcoord" --check -c "$root/etc/zkcoord/zkcoord.json" || bad "zkcoord --check rejects the shipped /etc/zkcoord/zkcoord.json"
# Only an unset LD_LIBRARY_PATH for the C++ check: it sets its own from the .pc.
unset LD_LIBRARY_PATH
"$top/tests/cxx/check.sh" "$root" "$root/usr/lib/$ma/pkgconfig" || bad "C++ against the unpacked libzkcoord-dev failed"

[ $fail -eq 0 ] || exit 1
echo "check-debs: ok ($(basename "$lib") $(basename "$dev") $(basename "$agent"))"
