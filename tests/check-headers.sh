#!/bin/sh
# Every public header compiles on its own, first in a file, as C and (when
# g++ is there) as C++: a user may include any one of them alone.
top="${top_srcdir:-$(dirname "$0")/..}"
cc="${CC:-cc}"
tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT
bad=0
n=0
for h in "$top"/include/zkcoord/*.h; do
    name=$(basename "$h")
    printf '#include <zkcoord/%s>\nint zkc_header_check_%s;\n' "$name" "$n" >"$tmp/t.c"
    if ! $cc -std=c99 -Wall -Wextra -Werror -pedantic -fsyntax-only -I"$top/include" "$tmp/t.c" \
            >"$tmp/out" 2>&1; then
        echo "check-headers: <zkcoord/$name> does not compile alone as C:" >&2
        cat "$tmp/out" >&2
        bad=1
    fi
    if command -v g++ >/dev/null 2>&1; then
        cp "$tmp/t.c" "$tmp/t.cpp"
        if ! g++ -std=c++17 -Wall -Wextra -Werror -pedantic -fsyntax-only -I"$top/include" \
                "$tmp/t.cpp" >"$tmp/out" 2>&1; then
            echo "check-headers: <zkcoord/$name> does not compile alone as C++:" >&2
            cat "$tmp/out" >&2
            bad=1
        fi
    fi
    n=$((n + 1))
done
[ "$bad" -eq 0 ] || exit 1
echo "check-headers: $n public headers compile alone (C99, C++17)"
