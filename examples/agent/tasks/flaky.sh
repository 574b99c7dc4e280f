#!/bin/sh
# An example task that fails on its first attempt, to show retries.
echo "flaky task ${TETHER_TASK_ID}, attempt ${TETHER_ATTEMPT}"
if [ "${TETHER_ATTEMPT}" = "1" ]; then
  echo "failing on purpose" >&2
  exit 3
fi
echo "succeeded on retry"
