"""The BigQuery engine: the cloud tables through Ibis (needs the `ibis-framework[bigquery]`
extra), or the emulator's when BIGQUERY_EMULATOR_HOST is set. A table side is
`PROJECT.DATASET.TABLE`, or a table name in the run's dataset (`--bigquery-project`,
`--dataset`)."""

from __future__ import annotations

import os
from typing import Any

import ibis
import ibis.expr.types as ir

from migration.validator.archive_source import ARCHIVE_COLUMNS
from migration.validator.engines.base import CachingEngine, RawArm, unreadable
from migration.validator.finality import FINISHED_STATUSES, finality_for
from migration.validator.spec.model import ArmSpec, Source
from pipelines.config import TimeConfig
from pipelines.errors import Causes, ConfigError, InputError, Translation, first_line, map_exceptions
from pipelines.rows import AGGREGATE_TABLES


def bigquery_connection(project: str | None, dataset: str | None = None) -> tuple[Any, bool]:
    """An Ibis BigQuery connection and whether it is the emulator's (BIGQUERY_EMULATOR_HOST:
    its endpoint, anonymous credentials); ConfigError when it cannot be made."""
    driver = ConfigError("the BigQuery backend needs its driver: pip install 'ibis-framework[bigquery]'")
    causes: dict[Causes, Translation] = {
        (ImportError, AttributeError): lambda _: driver,
        Exception: lambda why: ConfigError(f"BigQuery {project}: cannot connect: {why}"),  # google.auth, API
    }
    with map_exceptions(causes):
        from pipelines.bigquery_io import EMULATOR_ENV, bigquery_client

        emulated = bool(os.environ.get(EMULATOR_ENV))
        client = bigquery_client(project or "") if emulated else None
        con = ibis.bigquery.connect(
            project_id=project,
            dataset_id=dataset or "",  # Ibis reads "" as "no default dataset", not None
            client=client,
            credentials=client._credentials if client is not None else None,
        )
    return con, emulated


def is_not_found(exc: BaseException) -> bool:
    """Whether a table lookup failed because the table (or its dataset) does not exist, as
    opposed to a refused, throttled or unreachable service, which says nothing about it."""
    from google.api_core import exceptions as google_errors
    from ibis.common.exceptions import TableNotFound

    return isinstance(exc, (TableNotFound, google_errors.NotFound))


class BigQueryEngine(CachingEngine):
    name = "bigquery"
    exact_quantiles = False  # BigQuery has APPROX_QUANTILES only
    has_warehouse = False

    def __init__(self, project: str, dataset: str | None, time: TimeConfig | None):
        super().__init__()
        self.con, self.emulated = bigquery_connection(project, dataset)
        self.project, self.dataset, self.time = project, dataset, time
        self.can_cache = not self.emulated  # bqemulator has no anonymous dataset for Ibis's cache

    def fetch(self, expr: ir.Table) -> list[dict[str, Any]]:
        # The compiled SQL through the jobs API: results here are a few summary rows, and
        # bqemulator cannot serve Ibis's Storage-API read of query results.
        return [dict(row.items()) for row in self.con.client.query(self.con.compile(expr)).result()]

    def _split(self, name: str) -> tuple[str, str | None]:
        dataset, _, table = name.rpartition(".")
        return table, dataset or self.dataset

    def has_table(self, name: str) -> bool:
        """False only when BigQuery says the table does not exist; any other failure is an
        InputError (a transient error must not read as "no batch_runs table")."""
        table, dataset = self._split(name)
        try:
            self.con.table(table, database=dataset)
        except Exception as exc:
            if is_not_found(exc):
                return False
            raise InputError(
                f"BigQuery table {dataset}.{table}: cannot tell whether it exists: {first_line(exc)}"
            ) from exc
        return True

    def _named(self, name: str) -> ir.Table:
        table, dataset = self._split(name)
        with map_exceptions(unreadable(f"BigQuery table {dataset}.{table}")):
            return self.con.table(table, database=dataset)

    def table(self, source: Source, role: str) -> ir.Table:
        if source.kind == "table":
            return self._named(source.value)
        if source.kind != "bigquery":
            raise ConfigError(f"{role}: BigQuery reads tables, not {source.kind} sides: use DuckDB for files")
        project, dataset, table = source.value.split(".")
        with map_exceptions(unreadable(f"{role}: cannot read {source.label}")):  # NotFound, Forbidden, ...
            return self.con.table(table, database=(project, dataset))

    def arm(self, arm: ArmSpec) -> RawArm:
        if arm.table is None:
            raise ConfigError(f"{arm.role} arm: file arms are read by DuckDB, not BigQuery")
        table, dataset = self._split(arm.table)
        source = f"{dataset}.{table}_current" if table in AGGREGATE_TABLES else f"{dataset}.{table}"
        rows = self._named(f"{dataset}.{table}")
        runs_name = f"{dataset}.batch_runs"
        runs = self._named(runs_name) if self.has_table(runs_name) else None
        with_panes = rows if "emitted_at" in rows.columns else None
        assert self.time is not None, "interaction counts need the config's time settings"
        finality = finality_for(table, with_panes, runs, self.time, FINISHED_STATUSES)
        return RawArm(self._named(source), finality, False, source)

    def archive_events(self, archive: str, since_ms: int | None) -> ir.Table:
        events = self._named(archive)
        missing = [c for c in ARCHIVE_COLUMNS if c not in events.columns]
        if missing:
            raise InputError(f"--archive {archive}: a BigQuery archive table needs columns {ARCHIVE_COLUMNS}")
        return events

    def close(self) -> None:
        self.release()
