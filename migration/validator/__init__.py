"""The dual-run validator (DESIGN.md section 4).

Layers: `inputs` (what to compare, built once) -> `backends` (DuckDB or BigQuery via
Ibis) -> `builder` (Ibis expressions) -> `runner` (executes aggregates only) ->
`report` (verdict) -> `handlers` (stdout, report files, validation_runs, BigQuery).

    from migration.validator import build_inputs, run_validation
    report = run_validation(build_inputs(config, archive=".local/archive"), load_policy())
"""

from migration.validator.inputs import ArmSpec, ValidationInputs, build_inputs
from migration.validator.report import FAIL, INCONCLUSIVE, PASS, Report
from migration.validator.runner import build_plan, run_validation

__all__ = [
    "FAIL",
    "INCONCLUSIVE",
    "PASS",
    "ArmSpec",
    "Report",
    "ValidationInputs",
    "build_inputs",
    "build_plan",
    "run_validation",
]
