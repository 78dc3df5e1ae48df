"""What the serving API reads: the legacy and kappa views, materialized in memory.

Per-request DuckDB over the Parquet segments costs tens of milliseconds (globbing plus a
window function over every segment). Instead a background thread rebuilds a snapshot when
the warehouse changed (a stat of each table folder), at most every refresh interval: it
opens `Warehouse.connect()` (the shared views, including `legacy_serving` registered by
lambda_legacy.serving), reads the two served views sorted by tweet_id into Arrow/NumPy
arrays, and swaps them in. A lookup is then a binary search and a slice of about a hundred
rows (tens of microseconds, no DuckDB cursor shared between request threads), and both arms
always come from the same snapshot.
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
import numpy as np
import pyarrow as pa

from migration.serving.routing import KAPPA, LEGACY
from pipelines.errors import KappaError
from pipelines.instants import utc_iso
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
class ArmIndex:
    """One served view, sorted by tweet_id: a lookup is two binary searches and a slice."""

    tweet_id: np.ndarray
    ws: np.ndarray  # window_start, epoch ms
    we: np.ndarray  # window_end, epoch ms
    event_type: pa.Array
    count: np.ndarray

    @classmethod
    def from_arrow(cls, table: pa.Table) -> ArmIndex:
        def ints(name: str) -> np.ndarray:
            return table.column(name).to_numpy().astype(np.int64, copy=False)

        return cls(
            ints("tweet_id"),
            ints("ws"),
            ints("we"),
            table.column("event_type").combine_chunks(),
            ints("count"),
        )

    def rows(self, tweet_id: int) -> list[tuple[int, int, str, int]]:
        lo, hi = np.searchsorted(self.tweet_id, [tweet_id, tweet_id + 1])
        if lo == hi:
            return []
        types = self.event_type.slice(lo, hi - lo).to_pylist()
        return sorted(zip(self.ws[lo:hi].tolist(), self.we[lo:hi].tolist(), types, self.count[lo:hi].tolist(),
                          strict=True))  # fmt: skip


@dataclass(frozen=True)
class Snapshot:
    arms: dict[str, ArmIndex]
    built_ms: int  # wall-clock time the snapshot was taken
    build_seconds: float
    rows: dict[str, int]
    legacy_view: str  # LEGACY_VIEW, or PLACEHOLDER_LEGACY_VIEW until legacy registers it
    finished_periods: frozenset[int] = frozenset()  # batch periods (start ms) with a FINISHED run


_SELECT = """
    SELECT tweet_id, event_type, epoch_ms(window_start) AS ws, epoch_ms(window_end) AS we,
           count::BIGINT AS count
    FROM {view} ORDER BY tweet_id
"""
Row = tuple[int, int, str, str, str, int]
# A rebuild waits at least this many times the last build's duration after it (at most 20% of
# a core on rebuilds): snapshots of a large warehouse get older, the request path stays fast.
BUILD_DUTY_FACTOR = 5  # ws_ms, we_ms, ws_iso, we_iso, event_type, count


class ServingData:
    def __init__(self, warehouse: Warehouse, window_ms: int, period_ms: int):
        self.warehouse = warehouse
        self.window_ms = window_ms
        self.period_ms = period_ms
        self._fingerprint: object = None
        self._iso: dict[int, str] = {}
        self._warned = False
        self._built_at = 0.0
        self.snapshot: Snapshot | None = None
        self.last_error: str | None = None
        _load_legacy_view_module()

    def fingerprint(self) -> object:
        """Changes whenever a segment is added to (renamed into) any table folder."""
        try:
            return tuple(
                sorted((e.name, e.stat().st_mtime_ns) for e in os.scandir(self.warehouse.root) if e.is_dir())
            )
        except FileNotFoundError:
            return None

    def refresh_if_changed(self) -> bool:
        """Rebuild if a segment appeared, but spend at most 1/BUILD_DUTY_FACTOR of a core on it."""
        if (
            self.snapshot
            and time.monotonic() - self._built_at < BUILD_DUTY_FACTOR * self.snapshot.build_seconds
        ):
            return False
        try:
            token = self.fingerprint()
            if token == self._fingerprint and self.snapshot is not None:
                return False
            self._build()
        except (duckdb.Error, OSError, KappaError) as exc:
            self.last_error = f"{type(exc).__name__}: {exc}"
            log.warning("serving snapshot not refreshed: %s", self.last_error)
            return False
        self._fingerprint = token
        self._built_at = time.monotonic()
        self.last_error = None
        return True

    def _build(self) -> None:
        started, built_ms = time.perf_counter(), time.time_ns() // 1_000_000
        source = self.warehouse.connect(self.window_ms)
        try:
            source.execute("SET threads = 1").fetchall()  # leave the other core to the requests
            legacy_view = self._legacy_view(source)
            arrow = {arm: source.sql(_SELECT.format(view=view)).to_arrow_table()
                     for arm, view in ((LEGACY, legacy_view), (KAPPA, KAPPA_VIEW))}  # fmt: skip
            finished = frozenset(
                row[0]
                for row in source.execute(
                    "SELECT DISTINCT epoch_ms(period_start) FROM batch_runs WHERE status = 'FINISHED'"
                ).fetchall()
            )
        finally:
            source.close()
        arms = {arm: ArmIndex.from_arrow(table) for arm, table in arrow.items()}
        rows = {arm: table.num_rows for arm, table in arrow.items()}
        if len(self._iso) > 100_000:
            self._iso = {}
        self.snapshot = Snapshot(arms, built_ms, time.perf_counter() - started, rows, legacy_view, finished)

    def _legacy_view(self, con: duckdb.DuckDBPyConnection) -> str:
        found = con.execute(
            "SELECT count(*) FROM duckdb_views() WHERE view_name = ?", [LEGACY_VIEW]
        ).fetchall()  # fetchone() would leave the result open, which DuckDB 2 refuses to mix
        if found[0][0]:
            return LEGACY_VIEW
        if not self._warned:
            log.warning("view %s is not registered (lambda_legacy.serving): using %s", LEGACY_VIEW,
                        PLACEHOLDER_LEGACY_VIEW)  # fmt: skip
            self._warned = True
        con.execute(placeholder_legacy_sql(self.period_ms)).fetchall()
        return PLACEHOLDER_LEGACY_VIEW

    def iso(self, ms: int) -> str:
        text = self._iso.get(ms)
        if text is None:
            text = self._iso[ms] = utc_iso(ms)
        return text

    def lookup(self, arm: str, tweet_id: int, snapshot: Snapshot) -> list[Row]:
        """(ws_ms, we_ms, ws_iso, we_iso, event_type, count) rows of one tweet, in window order."""
        return [
            (ws, we, self.iso(ws), self.iso(we), et, c) for ws, we, et, c in snapshot.arms[arm].rows(tweet_id)
        ]


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
