#!/bin/sh
# The short fixed-seed subset of the fault suite that scripts/check runs
# (at most 3 minutes): 10 schedules of seed 2026 that cover every fault type
# and workload, among them schedule 1, a lost-swap schedule (issue 9 bug 1,
# the unannounced session swap: it failed before the session fix of
# 1a15e03 and passes since), schedule 3, a work-assignment schedule (GC
# pause + cut + server kill: it found the ASSIGNED-before-LOST order bug of
# src/lib/work.c), and schedule 0, a task-queue schedule. Schedule 3 was an
# election schedule before the work and task workloads joined the mix;
# schedule 21 still covers elections. See README "Fault testing".
#   tests/fault/chaos-short.sh BUILD_DIR
set -u
top=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-$top/_build/plain}
seed=2026
indices=${ZKC_CHAOS_SHORT_INDICES:-0,1,2,3,7,14,17,21,35,64}
out=$(mktemp -d "${TMPDIR:-/tmp}/zkchaos-short.XXXXXX")
# One ensemble for all of them: the orchestrator prints the closing
# "N passed, N failed" line itself.
"$build/tests/fault/chaos" --seed $seed --index "$indices" \
    --worker "$build/tests/fault/chaos-worker" --checker "$top/tests/fault/check_history.py" \
    --out "$out" >"$out/run.log" 2>&1
rc=$?
grep -v '^    evidence' "$out/run.log"
[ $rc -eq 0 ] && rm -rf "$out"
exit $rc
