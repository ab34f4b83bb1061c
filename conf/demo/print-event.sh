#!/bin/sh
# Demo handler: one line per event. The event document arrives on stdin; the
# environment carries the summary (never spliced into argv by the agent).
doc=$(cat)
printf '[%s handler] %-15s leader=%s token=%s members=%s\n' \
    "$ZKCOORD_MEMBER_ID" "$ZKCOORD_EVENT" "${ZKCOORD_LEADER_ID:--}" \
    "${ZKCOORD_FENCING_TOKEN:--}" "${ZKCOORD_MEMBERS:--}" >>"${DEMO_EVENTS:-/dev/stderr}"
: "$doc"
