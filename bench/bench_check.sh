#!/bin/sh
# How long `zkcoord --check` takes on large configs (issue 11, item 7: the
# position index used to be quadratic, 10-15 s for 80k array elements).
# Prints one line per config; passes or fails on nothing.
#
#   bench/bench_check.sh BUILD_DIR     (e.g. _build/main)
set -eu
build=${1:?usage: bench_check.sh BUILD_DIR}
zkcoord="$build/zkcoord"
[ -x "$zkcoord" ] || { echo "bench_check: no $zkcoord" >&2; exit 1; }
dir=$(mktemp -d "${TMPDIR:-/tmp}/zkc_bench_check.XXXXXX")
trap 'rm -rf "$dir"' EXIT INT TERM

head='{"cluster": "big", "member": {"id": "m1", "port": 80}, "election": {"enabled": true},'

# supervise.args with N elements of W characters each.
args_config() { # file, elements, element width
    awk -v n="$2" -v w="$3" -v head="$head" 'BEGIN {
        pad = sprintf("%0" w "d", 0);
        printf "%s\n \"supervise\": {\"while\": \"leader\", \"args\": [\"/bin/true\"", head;
        for (i = 1; i < n; i++)
            printf ", \"%s\"", substr(sprintf("%0" w "d", i), 1, w);
        printf "]}}\n";
    }' >"$1"
}

# supervise.env with N keys.
env_config() { # file, keys
    awk -v n="$2" -v head="$head" 'BEGIN {
        printf "%s\n \"supervise\": {\"while\": \"leader\", \"args\": [\"/bin/true\"], \"env\": {", head;
        for (i = 0; i < n; i++)
            printf "%s\"V%06d\": \"x\"", (i ? ", " : ""), i;
        printf "}}}\n";
    }' >"$1"
}

args_config "$dir/80k.json" 80000 1
args_config "$dir/1mib.json" 80000 9
env_config "$dir/40k-keys.json" 40000

for f in 80k 1mib 40k-keys; do
    file="$dir/$f.json"
    bytes=$(wc -c <"$file")
    start=$(date +%s%N)
    "$zkcoord" --check -c "$file" >/dev/null
    end=$(date +%s%N)
    printf '%-10s %8d bytes  --check %5d ms\n' "$f" "$bytes" $(((end - start) / 1000000))
done
