#!/bin/sh
# An example task: prints what it was given and does a little work. Output goes to the
# agent's local log file for this attempt; the server never sees it.
echo "task ${TETHER_TASK_ID} of run ${TETHER_RUN_ID} (attempt ${TETHER_ATTEMPT}) on $(hostname)"
echo "params: $(cat)"
echo "dataset=${TETHER_PARAM_DATASET} variant=${TETHER_PARAM_VARIANT:-none}"
sleep 0.2
