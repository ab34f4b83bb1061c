#!/bin/sh
# Demo "legacy app": runs only while its agent leads (supervise.while=leader).
echo "[$1 app] started, fencing token $ZKCOORD_FENCING_TOKEN" >>"${DEMO_EVENTS:-/dev/stderr}"
trap 'echo "[$1 app] stopping (TERM)" >>"${DEMO_EVENTS:-/dev/stderr}"; exit 0' TERM
while :; do sleep 1; done
