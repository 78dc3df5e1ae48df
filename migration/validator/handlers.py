"""Re-exports `report.handlers` at the path earlier callers import it from."""

from migration.validator.report.handlers import (
    VALIDATION_RUNS_EXTRA,
    VALIDATION_RUNS_ROW_SCHEMA,
    BigQueryRecord,
    ReportFiles,
    StdoutSummary,
    WarehouseRecord,
    bigquery_run_row,
    default_handlers,
    run_row,
    streak,
)

__all__ = [
    "VALIDATION_RUNS_EXTRA",
    "VALIDATION_RUNS_ROW_SCHEMA",
    "BigQueryRecord",
    "ReportFiles",
    "StdoutSummary",
    "WarehouseRecord",
    "bigquery_run_row",
    "default_handlers",
    "run_row",
    "streak",
]
