"""Where the expressions run: a small registry of Ibis backends.

- `duckdb`: an in-memory DuckDB over the local warehouse (the views of
  `Warehouse.connect`, wrapped with `ibis.duckdb.from_connection`) and over Parquet files.
- `bigquery`: the cloud tables (`--bigquery-project`, `--dataset`); needs the
  `ibis-framework[bigquery]` extra.

Each backend turns an `ArmSpec` into a raw Ibis table plus its finality rule, and an
archive argument into the `archive_events` table the explanation reads.
"""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass
from typing import Any

import ibis
import ibis.expr.types as ir

from lambda_legacy.merge import LEGACY_VIEWS
from migration.validator.archive_source import (
    ARCHIVE_COLUMNS,
    ARCHIVE_VIEW,
    archive_events_sql,
    archive_files,
)
from migration.validator.duckdb_compat import ibis_connection
from migration.validator.finality import Finality, finality_for
from migration.validator.inputs import ArmSpec, ValidationInputs
from pipelines.errors import ConfigError, InputError
from pipelines.rows import AGGREGATE_TABLES
from pipelines.warehouse import ViewProvider, Warehouse

# The derived views an arm may name besides the tables (legacy_serving, legacy_batch_served),
# passed explicitly to every warehouse connection the validator opens.
WAREHOUSE_VIEWS: tuple[ViewProvider, ...] = LEGACY_VIEWS
# The batch's current rows are those of the latest finished run of each period, not the
# highest pane_index per key (lambda_legacy.merge explains why).
PREFERRED_CURRENT = {"legacy_batch": "legacy_batch_served"}


@dataclass
class RawArm:
    table: ir.Table
    finality: Finality
    latest_pane: bool  # several panes per key: keep the highest pane_index
    source: str  # the table, view or files actually read


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


class DuckDBBackend:
    name = "duckdb"
    exact_quantiles = True

    def __init__(self, inputs: ValidationInputs):
        import duckdb

        self.inputs = inputs
        arms = [a for a in (inputs.left, inputs.right, inputs.reference) if a is not None]
        # Files only: no warehouse views to build (globbing every table costs time).
        root = inputs.warehouse_root if any(not a.from_files for a in arms) else None
        self.has_warehouse = root is not None
        try:
            raw = (
                Warehouse(root).connect(inputs.time.window_ms, WAREHOUSE_VIEWS) if root else duckdb.connect()
            )
            raw.execute("SET TimeZone = 'UTC'")
            raw.execute("SET enable_progress_bar = false")  # it would print into --json output
            if inputs.memory_limit:
                raw.execute(f"SET memory_limit = '{inputs.memory_limit}'")
            if inputs.threads:
                raw.execute(f"SET threads = {int(inputs.threads)}")
        except duckdb.Error as exc:
            raise InputError(f"warehouse {root}: cannot open its views: {_first_line(exc)}") from exc
        self.raw = raw
        self.con: Any = ibis_connection(raw)
        self._tables = set(self.con.list_tables())
        self._cached: list[ir.Table] = []

    def has_table(self, name: str) -> bool:
        return name in self._tables

    def table(self, name: str) -> ir.Table:
        return self.con.table(name)

    def arm(self, spec: ArmSpec) -> RawArm:
        if spec.path is not None:
            return self._file_arm(spec)
        assert spec.table is not None
        name = spec.table
        source = self._current_view(name)
        if not self.has_table(source):
            known = ", ".join(sorted(t for t in self._tables if not t.startswith("__"))) or "none"
            raise InputError(
                f"{spec.role} arm: table '{name}' is not in the warehouse {self.inputs.warehouse_root} "
                f"(tables: {known}); pass --warehouse, another --{spec.role}, or --{spec.role}-path FILES"
            )
        rows = self.table(name)
        runs = self.table("batch_runs") if self.has_table("batch_runs") else None
        return RawArm(self.table(source), self._finality(name, rows, runs), False, source)

    def _current_view(self, name: str) -> str:
        """The view holding one current row per key of table `name`."""
        if name in PREFERRED_CURRENT and self.has_table(PREFERRED_CURRENT[name]):
            return PREFERRED_CURRENT[name]
        return f"{name}_current" if name in AGGREGATE_TABLES else name

    def _finality(self, name: str | None, rows: ir.Table | None, runs: ir.Table | None) -> Finality:
        if rows is not None and "emitted_at" not in rows.columns:
            rows = None
        return finality_for(name, rows, runs, self.inputs.time, self.inputs.finished_statuses)

    def _file_arm(self, spec: ArmSpec) -> RawArm:
        assert spec.path is not None
        if not glob.glob(spec.path, recursive=True):
            raise InputError(f"{spec.role} arm: no file matches {spec.path}")
        try:
            table = self.con.read_parquet(spec.path, table_name=f"{spec.role}_arm")
            latest = "pane_index" in table.columns and (table.pane_index.max().to_pyarrow().as_py() or 0) > 0
        except Exception as exc:  # DuckDB's IOException, InvalidInputException, ...
            raise InputError(
                f"{spec.role} arm: cannot read {spec.path} as Parquet: {_first_line(exc)}"
            ) from exc
        return RawArm(table, self._finality(None, None, None), bool(latest), spec.path)

    def cache(self, expr: ir.Table) -> ir.Table:
        """Materialize `expr` in the engine (a temp table); released by `close`."""
        cached = expr.cache()
        self._cached.append(cached)
        return cached

    def archive_events(self, archive: str, since_ms: int | None) -> ir.Table:
        self.raw.execute(archive_events_sql(archive_files(archive, since_ms, self.inputs.time.period_ms)))
        return self.table(ARCHIVE_VIEW)

    def close(self) -> None:
        for cached in self._cached:
            cached.release()
        self._cached.clear()
        self.raw.close()


def bigquery_connection(project: str | None, dataset: str | None = None) -> tuple[Any, bool]:
    """An Ibis BigQuery connection and whether it is the emulator's (BIGQUERY_EMULATOR_HOST:
    its endpoint, anonymous credentials); ConfigError when it cannot be made."""
    try:
        from pipelines.bigquery_io import EMULATOR_ENV, bigquery_client

        emulated = bool(os.environ.get(EMULATOR_ENV))
        client = bigquery_client(project or "") if emulated else None
        con = ibis.bigquery.connect(
            project_id=project,
            dataset_id=dataset or "",  # Ibis reads "" as "no default dataset", not None
            client=client,
            credentials=client._credentials if client is not None else None,
        )
    except (ImportError, AttributeError) as exc:
        raise ConfigError(
            "the BigQuery backend needs its driver: pip install 'ibis-framework[bigquery]'"
        ) from exc
    except Exception as exc:  # google.auth / API errors
        raise ConfigError(f"BigQuery {project}: cannot connect: {_first_line(exc)}") from exc
    return con, emulated


def is_not_found(exc: BaseException) -> bool:
    """Whether a table lookup failed because the table (or its dataset) does not exist, as
    opposed to a refused, throttled or unreachable service, which says nothing about it."""
    from google.api_core import exceptions as google_errors
    from ibis.common.exceptions import TableNotFound

    return isinstance(exc, (TableNotFound, google_errors.NotFound))


class BigQueryBackend:
    name = "bigquery"
    exact_quantiles = False  # BigQuery has APPROX_QUANTILES only

    def __init__(self, inputs: ValidationInputs):
        self.con, self.emulated = bigquery_connection(inputs.bigquery_project, inputs.bigquery_dataset)
        self.inputs = inputs
        self._cached: list[ir.Table] = []

    def cache(self, expr: ir.Table) -> ir.Table:
        if self.emulated:  # bqemulator has no anonymous dataset for Ibis's cache: recompute instead
            return expr
        cached = expr.cache()  # a table in the session's anonymous dataset
        self._cached.append(cached)
        return cached

    def _split(self, name: str) -> tuple[str, str | None]:
        dataset, _, table = name.rpartition(".")
        return table, dataset or self.inputs.bigquery_dataset

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
                f"BigQuery table {dataset}.{table}: cannot tell whether it exists: {_first_line(exc)}"
            ) from exc
        return True

    def table(self, name: str) -> ir.Table:
        table, dataset = self._split(name)
        try:
            return self.con.table(table, database=dataset)
        except Exception as exc:
            raise InputError(f"BigQuery table {dataset}.{table}: {_first_line(exc)}") from exc

    def arm(self, spec: ArmSpec) -> RawArm:
        assert spec.table is not None
        table, dataset = self._split(spec.table)
        source = f"{dataset}.{table}_current" if table in AGGREGATE_TABLES else f"{dataset}.{table}"
        rows = self.table(f"{dataset}.{table}")
        runs_name = f"{dataset}.batch_runs"
        runs = self.table(runs_name) if self.has_table(runs_name) else None
        with_panes = rows if "emitted_at" in rows.columns else None
        finality = finality_for(table, with_panes, runs, self.inputs.time, self.inputs.finished_statuses)
        return RawArm(self.table(source), finality, False, source)

    def archive_events(self, archive: str, since_ms: int | None) -> ir.Table:
        events = self.table(archive)
        missing = [c for c in ARCHIVE_COLUMNS if c not in events.columns]
        if missing:
            raise InputError(f"--archive {archive}: a BigQuery archive table needs columns {ARCHIVE_COLUMNS}")
        return events

    def close(self) -> None:
        for cached in self._cached:
            cached.release()
        self._cached.clear()


BACKENDS: dict[str, type[DuckDBBackend] | type[BigQueryBackend]] = {
    "duckdb": DuckDBBackend,
    "bigquery": BigQueryBackend,
}


def open_backend(inputs: ValidationInputs) -> DuckDBBackend | BigQueryBackend:
    try:
        factory = BACKENDS[inputs.backend]
    except KeyError:
        raise ConfigError(f"unknown backend {inputs.backend!r}; choose one of {sorted(BACKENDS)}") from None
    return factory(inputs)
