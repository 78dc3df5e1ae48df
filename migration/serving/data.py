"""What the serving API reads: the legacy and kappa views, materialized in memory.

Per-request DuckDB over the Parquet segments costs tens of milliseconds (globbing plus a
window function over every segment). Instead a background thread rebuilds a snapshot when
the warehouse changed (a stat of each table folder), at most every `refresh_s`: it opens
`Warehouse.connect()` (the shared views, including `legacy_serving` registered by
lambda_legacy.serving), copies the two served views into in-memory tables sorted by
tweet_id, and swaps them in. A lookup is then a zone-map-pruned scan of about a millisecond,
and both arms always come from the same snapshot.
"""

from __future__ import annotations

import importlib
import logging
import os
import threading
import time
from dataclasses import dataclass
from typing import Any

import duckdb

from migration.serving.routing import KAPPA, LEGACY
from pipelines.warehouse import Warehouse

log = logging.getLogger(__name__)

LEGACY_VIEW = "legacy_serving"
KAPPA_VIEW = "kappa_stream_current"
# Used only while lambda_legacy.serving has not registered `legacy_serving`: per key the
# batch value where the batch wrote anything for the key's period, else the speed value.
PLACEHOLDER_LEGACY_VIEW = "legacy_serving_placeholder"


def placeholder_legacy_sql(period_ms: int) -> str:
    return f"""
        CREATE OR REPLACE TEMP VIEW {PLACEHOLDER_LEGACY_VIEW} AS
        WITH batch_periods AS (
            SELECT DISTINCT epoch_ms(window_start) // {period_ms} AS period FROM legacy_batch_current
        )
        SELECT * FROM legacy_batch_current
        UNION ALL
        SELECT s.* FROM legacy_speed_current s
        WHERE epoch_ms(s.window_start) // {period_ms} NOT IN (SELECT period FROM batch_periods)
    """


def _load_legacy_view_module() -> None:
    """Importing lambda_legacy.serving registers the `legacy_serving` view, once it exists."""
    try:
        importlib.import_module("lambda_legacy.serving")
    except ModuleNotFoundError as exc:
        if exc.name not in ("lambda_legacy.serving", "lambda_legacy"):
            raise


@dataclass(frozen=True)
class Snapshot:
    tables: dict[str, str]  # arm -> in-memory table name
    built_ms: int  # wall-clock time the snapshot was taken
    build_seconds: float
    rows: dict[str, int]
    legacy_view: str  # LEGACY_VIEW, or PLACEHOLDER_LEGACY_VIEW until legacy registers it


_SELECT = """
    SELECT tweet_id, event_type, epoch_ms(window_start) AS ws, epoch_ms(window_end) AS we,
           count::BIGINT AS count
    FROM {view} ORDER BY tweet_id
"""
_ISO = "strftime(make_timestamp({col} * 1000), '%Y-%m-%dT%H:%M:%S.%gZ')"
_LOOKUP = (
    f"SELECT ws, we, {_ISO.format(col='ws')}, {_ISO.format(col='we')}, event_type, count "
    "FROM {table} WHERE tweet_id = $1 ORDER BY ws, event_type"
)


class ServingData:
    def __init__(self, warehouse: Warehouse, window_ms: int, period_ms: int, refresh_s: float = 2.0):
        self.warehouse = warehouse
        self.window_ms = window_ms
        self.period_ms = period_ms
        self.refresh_s = refresh_s
        self._db = duckdb.connect()
        self._local = threading.local()
        self._builds = 0
        self._fingerprint: object = None
        self.snapshot: Snapshot | None = None
        self.last_error: str | None = None
        _load_legacy_view_module()

    def fingerprint(self) -> object:
        """Changes whenever a segment is added to (renamed into) any table folder."""
        root = self.warehouse.root
        try:
            entries = sorted((e.name, e.stat().st_mtime_ns) for e in os.scandir(root) if e.is_dir())
        except FileNotFoundError:
            return None
        return tuple(entries)

    def refresh_if_changed(self) -> bool:
        token = self.fingerprint()
        if token == self._fingerprint and self.snapshot is not None:
            return False
        try:
            self._build()
        except (duckdb.Error, OSError) as exc:
            self.last_error = f"{type(exc).__name__}: {exc}"
            log.warning("serving snapshot not refreshed: %s", self.last_error)
            return False
        self._fingerprint = token
        self.last_error = None
        return True

    def _build(self) -> None:
        started, built_ms = time.perf_counter(), time.time_ns() // 1_000_000
        source = self.warehouse.connect(self.window_ms)
        try:
            legacy_view = self._legacy_view(source)
            arrow = {arm: source.sql(_SELECT.format(view=view)).to_arrow_table()
                     for arm, view in ((LEGACY, legacy_view), (KAPPA, KAPPA_VIEW))}  # fmt: skip
        finally:
            source.close()
        self._builds += 1
        cursor = self._db.cursor()
        tables = {}
        for arm, data in arrow.items():
            name = f"served_{arm}_{self._builds}"
            cursor.register("incoming", data)
            cursor.execute(f"CREATE TABLE {name} AS SELECT * FROM incoming")
            cursor.unregister("incoming")
            tables[arm] = name
        previous = self.snapshot
        rows = {arm: data.num_rows for arm, data in arrow.items()}
        self.snapshot = Snapshot(tables, built_ms, time.perf_counter() - started, rows, legacy_view)
        if previous:  # readers of the previous snapshot had a full refresh interval to finish
            for old in self._stale_tables(previous):
                cursor.execute(f"DROP TABLE IF EXISTS {old}")
        cursor.close()

    def _stale_tables(self, previous: Snapshot) -> list[str]:
        return [f"served_{arm}_{self._builds - 2}" for arm in previous.tables] if self._builds > 2 else []

    def _legacy_view(self, con: duckdb.DuckDBPyConnection) -> str:
        found = con.execute(
            "SELECT count(*) FROM duckdb_views() WHERE view_name = ?", [LEGACY_VIEW]
        ).fetchall()  # fetchone() would leave the result open, which DuckDB 2 refuses to mix
        if found[0][0]:
            return LEGACY_VIEW
        if not getattr(self, "_warned", False):
            log.warning("view %s is not registered (lambda_legacy.serving): using %s", LEGACY_VIEW,
                        PLACEHOLDER_LEGACY_VIEW)  # fmt: skip
            self._warned = True
        con.execute(placeholder_legacy_sql(self.period_ms)).fetchall()
        return PLACEHOLDER_LEGACY_VIEW

    def _cursor(self) -> duckdb.DuckDBPyConnection:
        cursor = getattr(self._local, "cursor", None)
        if cursor is None:
            cursor = self._local.cursor = self._db.cursor()
        return cursor

    def lookup(self, arm: str, tweet_id: int, snapshot: Snapshot) -> list[tuple[Any, ...]]:
        """(ws_ms, we_ms, ws_iso, we_iso, event_type, count) rows of one tweet, in window order."""
        return self._cursor().execute(_LOOKUP.format(table=snapshot.tables[arm]), [tweet_id]).fetchall()


class Refresher(threading.Thread):
    """Calls `tick()` functions every `interval_s` until stopped."""

    def __init__(self, interval_s: float, *ticks: Any):
        super().__init__(name="serving-refresher", daemon=True)
        self.interval_s = interval_s
        self.ticks = ticks
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.wait(self.interval_s):
            for tick in self.ticks:
                try:
                    tick()
                except Exception:  # a failed tick must not kill the refresher; it retries next time
                    log.exception("serving background tick failed")

    def stop(self) -> None:
        self._stop_event.set()
