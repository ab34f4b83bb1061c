#!/bin/sh
# The faces (agent, CLI) use only the library's public headers
# (include/zkcoord/): no header of src/lib/, no ZooKeeper client header.
top="${top_srcdir:-$(dirname "$0")/..}"
bad=0
for f in "$top"/src/cli/*.[ch] "$top"/src/agent/*.[ch]; do
    [ -f "$f" ] || continue
    dir=$(dirname "$f")
    # every #include, with its line number: "N:name"
    incs=$(sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*[<"]\([^>"]*\)[>"].*/\1/p' "$f")
    for h in $incs; do
        case "$h" in
        zookeeper/* | zookeeper.h | *src/lib/* | ../lib/*)
            echo "check-private-includes: $f includes $h" >&2
            bad=1
            continue
            ;;
        esac
        # A quoted name that resolves to src/lib/ (on the -I path) and not
        # to a header beside the file.
        if [ -f "$top/src/lib/$h" ] && [ ! -f "$dir/$h" ]; then
            echo "check-private-includes: $f includes src/lib/$h" >&2
            bad=1
        fi
    done
done
if [ "$bad" -ne 0 ]; then
    echo "check-private-includes: the agent and the CLI may use include/zkcoord/ only" >&2
    exit 1
fi
echo "check-private-includes: src/cli and src/agent use public headers only"
