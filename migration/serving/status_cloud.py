"""The console's `MigrationSource` in the cloud profile: BigQuery and the GCS state store.

It reads what `kappactl cutover` reads there, so `GET /v1/migration/status` and the CLI
agree: the cutover state and audit log from the state store (`gcp.cutover_state`, a
`GcsStateStore`), the runs from BigQuery's `migration.validation_runs` (finished rows only,
as the cloud gate), each arm's row count, newest window and newest write from the tables
Terraform creates (`kappa.kappa_stream`, `legacy.legacy_batch`, ...), and the dead letters
of the last hour from `migration.dead_letter`. A run's report is the table's `report`
column (the whole report.json); its `report.html` is linked only where this server can read
it (the run's `report_path` is a file here), as a cloud validator's disk is not.

Every read goes through the jobs API (query results, never the Storage API), which
bqemulator also serves. An arm table Terraform did not create (legacy decommissioned) shows
as empty. `fingerprint` counts the runs and dead letters and reads the state's generation;
the arms' row counts are re-read when those change or the console's `max_age_s` passed
(their lag grows with the clock at every status request either way).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from migration.cutover.gate import ShadowStats, ValidationRun, read_bigquery_validation_runs
from migration.cutover.model import CutoverState, Transition
from migration.cutover.store import StateStore
from migration.serving.status import (
    ArmStats,
    RunSummary,
    count_reasons,
    run_summary,
    shadow_file_of,
)
from pipelines.bigquery_io import AGGREGATE_TABLES as DATASET_TABLES
from pipelines.rows import AGGREGATE_TABLES

RUNS_TABLE = "migration.validation_runs"
DEAD_LETTER_TABLE = "migration.dead_letter"
_RUN_FIELDS = (
    "run_id, UNIX_MILLIS(started_at) AS started_at, UNIX_MILLIS(finished_at) AS finished_at, verdict, "
    "left_arm, right_arm, keys_total, spec_filter, policy_overrides, "
    "keys_same, keys_explained, keys_unexplained, keys_pending, unexplained_rate, report_path, "
    "report IS NOT NULL AS has_report"
)


def reachable_report(report_path: str | None) -> str | None:
    """`report_path` if its report.html can be served from here, else None."""
    if not report_path or "://" in report_path:
        return None
    return report_path if Path(report_path).with_name("report.html").is_file() else None


class BigQueryMigrationSource:
    """The cloud profile: BigQuery project `project` and a cutover state store."""

    def __init__(self, project: str, store: StateStore, client: Any = None):
        from pipelines.bigquery_io import bigquery_client

        self.project = project
        self.store = store
        self.client = client or bigquery_client(project)
        self._with_report: set[str] = set()

    def _table(self, table: str) -> str:
        return f"`{self.project}.{table}`"

    def _query(self, sql: str, what: str, params: dict[str, str] | None = None) -> list[dict[str, Any]]:
        from pipelines.bigquery_io import query_rows

        return query_rows(self.client, sql, f"BigQuery {self.project}.{what}", params)

    def cutover(self) -> tuple[CutoverState, int, list[Transition], str]:
        state, generation = self.store.load()
        return state, generation, self.store.history(), self.store.describe()

    def validation_runs(self) -> list[RunSummary]:
        rows = self._query(
            f"SELECT {_RUN_FIELDS} FROM {self._table(RUNS_TABLE)} WHERE finished_at IS NOT NULL "
            "ORDER BY finished_at, run_id",
            RUNS_TABLE,
        )
        self._with_report = {str(r["run_id"]) for r in rows if r["has_report"]}
        return [run_summary({**r, "report_path": reachable_report(r["report_path"])}) for r in rows]

    def arm_stats(self) -> list[ArmStats]:
        return [self._arm(dataset, table) for dataset, table in _ordered_tables()]

    def _arm(self, dataset: str, table: str) -> ArmStats:
        from google.api_core.exceptions import NotFound

        from pipelines.bigquery_io import bigquery_errors

        sql = (
            "SELECT COUNT(*) AS n, UNIX_MILLIS(MAX(window_end)) AS w, UNIX_MILLIS(MAX(emitted_at)) AS e "
            f"FROM {self._table(f'{dataset}.{table}')}"
        )
        with bigquery_errors(f"BigQuery {self.project}.{dataset}.{table}"):
            try:
                (row,) = list(self.client.query(sql).result())
            except NotFound:  # not created (e.g. the legacy tables after decommissioning)
                return ArmStats(table, 0, None, None)
        return ArmStats(table, int(row["n"] or 0), _int(row["w"]), _int(row["e"]))

    def dead_letters(self, since_ms: int) -> list[tuple[str, str, int]]:
        rows = self._query(
            f"SELECT pipeline, error, COUNT(*) AS n FROM {self._table(DEAD_LETTER_TABLE)} "
            f"WHERE failed_at >= TIMESTAMP_MILLIS({int(since_ms)}) GROUP BY pipeline, error",
            DEAD_LETTER_TABLE,
        )
        return count_reasons((r["pipeline"], r["error"], r["n"]) for r in rows)

    def report(self, run: RunSummary) -> dict[str, Any] | None:
        if run.run_id not in self._with_report:
            return None
        rows = self._query(
            f"SELECT report FROM {self._table(RUNS_TABLE)} WHERE run_id = @run_id LIMIT 1",
            RUNS_TABLE,
            {"run_id": run.run_id},
        )
        try:
            report = json.loads(rows[0]["report"]) if rows and rows[0]["report"] else None
        except ValueError:
            return None
        return report if isinstance(report, dict) else None

    def gate_runs(self, arms: tuple[str, str]) -> list[ValidationRun]:
        return read_bigquery_validation_runs(self.project, arms, RUNS_TABLE)

    def shadow_file(self) -> ShadowStats | None:
        return shadow_file_of(self.store)

    def fingerprint(self) -> object:
        (counts,) = self._query(
            f"SELECT (SELECT COUNT(*) FROM {self._table(RUNS_TABLE)}) AS runs, "
            f"(SELECT COUNT(*) FROM {self._table(DEAD_LETTER_TABLE)}) AS dead",
            "migration fingerprint",
        )
        return counts["runs"], counts["dead"], self.store.load()[1]


def _ordered_tables() -> list[tuple[str, str]]:
    """(dataset, table) of each arm, in the order the local source lists them."""
    datasets = {table: dataset for dataset, table in DATASET_TABLES}
    return [(datasets[table], table) for table in AGGREGATE_TABLES]


def _int(value: Any) -> int | None:
    return None if value is None else int(value)
