"""The DuckDB engine: an in-memory session over the local warehouse's views (those of
`Warehouse.connect`, with the legacy views passed in) and over Parquet and CSV files,
wrapped for Ibis. The session is set up here and nowhere else."""

from __future__ import annotations

import glob
from pathlib import Path
from typing import Any

import ibis.expr.types as ir

from lambda_legacy.merge import LEGACY_VIEWS
from migration.validator.archive_source import ARCHIVE_VIEW, archive_events_sql, archive_files
from migration.validator.engines.base import CachingEngine, RawArm, unreadable
from migration.validator.engines.compat import ibis_connection
from migration.validator.finality import FINISHED_STATUSES, finality_for
from migration.validator.options import RunOptions
from migration.validator.spec.model import ArmSpec, Source
from pipelines.config import TimeConfig
from pipelines.errors import ConfigError, InputError, first_line, map_exceptions
from pipelines.rows import AGGREGATE_TABLES
from pipelines.warehouse import ViewProvider, Warehouse

# The derived views a side may name besides the tables (legacy_serving, legacy_batch_served),
# passed explicitly to every warehouse connection the validator opens.
WAREHOUSE_VIEWS: tuple[ViewProvider, ...] = LEGACY_VIEWS
# The batch's current rows are those of the latest finished run of each period, not the
# highest pane_index per key (lambda_legacy.merge explains why).
PREFERRED_CURRENT = {"legacy_batch": "legacy_batch_served"}


def _session(options: RunOptions, time: TimeConfig | None, uses_warehouse: bool) -> Any:
    """The DuckDB connection, UTC, quiet, with the run's memory limit and threads."""
    import duckdb

    root = options.warehouse_root
    try:
        if uses_warehouse:
            assert root is not None
            views = WAREHOUSE_VIEWS if time is not None else ()
            raw = Warehouse(root).connect(time.window_ms if time else None, views)
        else:
            raw = duckdb.connect()
        raw.execute("SET TimeZone = 'UTC'")
        raw.execute("SET enable_progress_bar = false")  # it would print into --json output
        if options.memory_limit:
            raw.execute(f"SET memory_limit = '{options.memory_limit}'")
        if options.threads:
            raw.execute(f"SET threads = {int(options.threads)}")
    except duckdb.Error as exc:
        raise InputError(f"warehouse {root}: cannot open its views: {first_line(exc)}") from exc
    return raw


class DuckDBEngine(CachingEngine):
    name = "duckdb"
    exact_quantiles = True

    def __init__(self, options: RunOptions, time: TimeConfig | None, uses_warehouse: bool):
        super().__init__()
        if uses_warehouse and options.warehouse_root is None:
            raise InputError("table sides read the warehouse: pass --warehouse, or name files")
        self.root, self.time, self.has_warehouse = options.warehouse_root, time, uses_warehouse
        self.raw = _session(options, time, uses_warehouse)
        self.con: Any = ibis_connection(self.raw)
        self._tables = set(self.con.list_tables())

    def has_table(self, name: str) -> bool:
        return name in self._tables

    def _named(self, name: str, role: str) -> ir.Table:
        if not self.has_table(name):
            known = ", ".join(sorted(t for t in self._tables if not t.startswith("__"))) or "none"
            raise InputError(f"{role}: table '{name}' is not in the warehouse {self.root} "
                             f"(tables: {known}); pass --warehouse or name another table")  # fmt: skip
        return self.con.table(name)

    def table(self, source: Source, role: str) -> ir.Table:
        name = f"{role.split()[0]}_side"
        if source.kind == "table":
            return self._named(source.value, role)
        if source.kind not in ("path", "csv"):
            raise ConfigError(f"{role}: DuckDB does not read {source.kind} sides")
        found = (
            glob.glob(source.value, recursive=True) if source.kind == "path" else Path(source.value).is_file()
        )
        if not found:
            raise InputError(
                f"{role}: no {'file matches' if source.kind == 'path' else 'CSV file'} {source.value}"
            )
        form = "Parquet" if source.kind == "path" else "CSV"
        with map_exceptions(unreadable(f"{role}: cannot read {source.value} as {form}")):
            if source.kind == "path":
                return self.con.read_parquet(source.value, table_name=name)
            return self.con.read_csv(source.value, table_name=name)

    def arm(self, arm: ArmSpec) -> RawArm:
        role = f"{arm.role} arm"
        if arm.path is not None:
            table = self.table(arm.source, role)
            with map_exceptions(unreadable(f"{role}: cannot read {arm.path} as Parquet")):
                latest = (
                    "pane_index" in table.columns and (table.pane_index.max().to_pyarrow().as_py() or 0) > 0
                )
            return RawArm(table, finality_for(None, None, None, self._time(), ()), bool(latest), arm.path)
        assert arm.table is not None
        name = arm.table
        rows = self._named(name, role)
        current = PREFERRED_CURRENT.get(name, "")
        if not self.has_table(current):
            current = f"{name}_current" if name in AGGREGATE_TABLES else name
        runs = self.con.table("batch_runs") if self.has_table("batch_runs") else None
        with_panes = rows if "emitted_at" in rows.columns else None
        finality = finality_for(name, with_panes, runs, self._time(), FINISHED_STATUSES)
        return RawArm(self._named(current, role), finality, False, current)

    def _time(self) -> TimeConfig:
        assert self.time is not None, "interaction counts need the config's time settings"
        return self.time

    def archive_events(self, archive: str, since_ms: int | None) -> ir.Table:
        self.raw.execute(archive_events_sql(archive_files(archive, since_ms, self._time().period_ms)))
        return self.con.table(ARCHIVE_VIEW)

    def close(self) -> None:
        self.release()
        self.raw.close()
