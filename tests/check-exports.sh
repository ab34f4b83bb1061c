#!/bin/sh
# The shared library exports zkc_* and nothing else (zkc__ internals stay hidden).
lib="${top_builddir:-.}/.libs/libzkcoord.so"
if [ ! -f "$lib" ]; then
    echo "check-exports: $lib not built" >&2
    exit 1
fi
syms=$(nm -D --defined-only "$lib" | awk '$2 ~ /^[TDBRVW]$/ {print $3}' | sort)
bad=$(printf '%s\n' "$syms" | grep -v '^zkc_[a-z]' | grep -v '^$')
count=$(printf '%s\n' "$syms" | grep -c '^zkc_[a-z]')
if [ -n "$bad" ]; then
    echo "check-exports: symbols outside zkc_*:" >&2
    printf '  %s\n' $bad >&2
    exit 1
fi
if [ "$count" -lt 10 ]; then
    echo "check-exports: only $count zkc_ symbols exported" >&2
    exit 1
fi
echo "check-exports: $count symbols, all zkc_*"
