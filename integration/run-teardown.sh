#!/usr/bin/env bash
# Sourced by critest.sh and node-e2e.sh: the teardown of a run that starts
# a ginkgo suite in a process group of its own, background processes
# (`started_pids`) and host changes to undo (`cleanups`, shell commands run
# last in, first out).

# stop_ginkgo_group <pid>: interrupts the suite whose process group leader
# is <pid>. Ginkgo takes SIGTERM as an interrupt and runs the specs'
# clean-up (its grace period is 30 s); the group (its parallel processes
# outlive it) gets a minute, then what is left is killed.
stop_ginkgo_group() {
  local pid=$1
  kill -TERM -- "-$pid" 2>/dev/null || true
  for _ in $(seq 1 60); do
    kill -0 -- "-$pid" 2>/dev/null || break
    sleep 1
  done
  kill -KILL -- "-$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

# run_teardown: stops every started_pids process, then runs the cleanups.
run_teardown() {
  local pid i
  for pid in "${started_pids[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${started_pids[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  for ((i = ${#cleanups[@]} - 1; i >= 0; i--)); do
    eval "${cleanups[i]}" || true
  done
}
