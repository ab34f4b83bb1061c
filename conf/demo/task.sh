#!/bin/sh
# Demo task handler: the task's payload (JSON, as submitted) arrives on
# stdin; what this prints becomes the task's result output, its exit code
# the result's status.
in=$(cat)
printf '%s ran %s: %s' "$ZKCOORD_MEMBER_ID" "$ZKCOORD_TASK_ID" "$(printf '%s' "$in" | tr 'a-z' 'A-Z')"
