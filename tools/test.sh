#!/usr/bin/env bash
# `make test`: the whole suite as two lanes side by side, one per core.
#   services  every test marked stack, flink or cloud (tests/conftest.py marks a test that
#             uses the session's stack or Flink cluster too), except the Kappa cluster's, one
#             after another as ever: they share the session's services.
#   second    everything else: pure functions, Beam transforms, the CLI and API, Terraform;
#             then the Kappa cluster's tests (marked kappa_cluster), one after another, on a
#             stack of that run's own session (free ports, own folders).
# Each lane runs one test at a time, so no drill runs beside a second drill of its own lane;
# every bound in the tests allows for a busy core beside them. The services lane prints as
# it goes; the second lane is logged to .local/logs/test-second.log and printed when both
# have ended. Arguments go to every run (e.g. `-k`, `--durations=30`).
# Exit status: the first failing run's (pytest's own codes; "no test collected" in a run is
# fine when another ran some, e.g. for `-k` or a single file).
set -uo pipefail
cd "$(dirname "$0")/.."
own_session='kappa_cluster'
log=.local/logs/test-second.log
mkdir -p "$(dirname "$log")"
no_tests=5

second() {
  .venv/bin/python -m pytest -m "not (stack or flink or cloud)" "$@"
  local units=$?
  echo
  echo "==================== the Kappa cluster's tests ===================="
  .venv/bin/python -m pytest -m "$own_session" "$@"
  local own=$?
  echo "second lane: units exited $units, Kappa cluster tests exited $own"
  return $(( units != 0 && units != no_tests ? units : own != no_tests ? own : units ))
}

second "$@" > "$log" 2>&1 &
second_pid=$!
trap 'kill "$second_pid" 2>/dev/null' INT TERM
.venv/bin/python -m pytest -m "(stack or flink or cloud) and not ($own_session)" "$@"
services_rc=$?
wait "$second_pid"
second_rc=$?

echo
echo "==================== the second lane, beside the services ($log) ===================="
cat "$log"
echo "test: services lane exited $services_rc, second lane exited $second_rc"
if ((services_rc == no_tests && second_rc != no_tests)); then services_rc=0; fi
if ((second_rc == no_tests && services_rc == 0)); then second_rc=0; fi
if ((services_rc != 0)); then exit "$services_rc"; fi
exit "$second_rc"
