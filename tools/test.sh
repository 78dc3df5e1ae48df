#!/usr/bin/env bash
# `make test`: the whole suite as two pytest runs side by side, one per core.
#   services  every test marked stack, flink or cloud (tests/conftest.py marks a test that uses
#             the session's stack or Flink cluster too), one after another as ever: they share
#             the session's services, and no drill's bounds assume a second drill beside it.
#   units     everything else: pure functions, Beam transforms, the CLI and API, Terraform.
# The services run prints as it goes; the units run is logged to .local/logs/test-units.log
# and printed when both have ended. Arguments go to both (e.g. `-k`, `--durations=30`).
# Exit status: the services run's, else the units run's (pytest's own codes; "no test
# collected" in one run is fine when the other ran some, e.g. for `-k` or a single file).
set -uo pipefail
cd "$(dirname "$0")/.."
services='stack or flink or cloud'
log=.local/logs/test-units.log
mkdir -p "$(dirname "$log")"

.venv/bin/python -m pytest -m "not ($services)" "$@" > "$log" 2>&1 &
units=$!
trap 'kill "$units" 2>/dev/null' INT TERM
.venv/bin/python -m pytest -m "$services" "$@"
services_rc=$?
wait "$units"
units_rc=$?

echo
echo "==================== the units run, beside the services ($log) ===================="
cat "$log"
echo "test: services run exited $services_rc, units run exited $units_rc"
no_tests=5
if ((services_rc == no_tests && units_rc != no_tests)); then services_rc=0; fi
if ((units_rc == no_tests && services_rc == 0)); then units_rc=0; fi
if ((services_rc != 0)); then exit "$services_rc"; fi
exit "$units_rc"
