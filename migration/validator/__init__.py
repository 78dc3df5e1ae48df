"""The validator (DESIGN.md section 4): one engine for every validation.

Layers: `spec` (what to compare, declared in YAML; the interaction-count flags build the
shipped spec) -> `engines` (DuckDB or BigQuery via Ibis, one session per run) -> `kinds`
(interaction counts, metric diff and row hash, schema and column aggregates: Ibis
expressions, only aggregates come back) -> `report` (one report type, one renderer, the
handlers: stdout, report files, validation_runs, BigQuery). `run.run_spec` joins them.

    from migration.validator import build_inputs, run_validation
    report = run_validation(build_inputs(config, archive=".local/archive"), load_policy())
"""

from migration.validator.report.model import FAIL, INCONCLUSIVE, PASS, Report
from migration.validator.run import build_plan, run_spec, run_validation
from migration.validator.spec.flags import ValidationInputs, build_inputs
from migration.validator.spec.model import ArmSpec

__all__ = [
    "FAIL",
    "INCONCLUSIVE",
    "PASS",
    "ArmSpec",
    "Report",
    "ValidationInputs",
    "build_inputs",
    "build_plan",
    "run_spec",
    "run_validation",
]
