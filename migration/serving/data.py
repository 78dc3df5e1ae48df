"""What the serving API reads: the legacy and kappa arms, materialized in memory.

Per-request DuckDB over the Parquet segments costs tens of milliseconds (globbing plus a
window function over every segment). Instead a background thread keeps a snapshot in
memory and refreshes it *incrementally* when a segment appears (a stat of each table
folder), at most every refresh interval: it reads only the new segments of
`legacy_speed`, `legacy_batch` and `kappa_stream` into sorted runs (runs.py: DuckDB
queries, which release the GIL, on a thread of lower CPU priority than the requests', so
request threads keep running and keep their core), re-reads the
small `batch_runs` table when it changed, and swaps in a new immutable `Snapshot`. The cost
of a refresh is bounded by the new rows (plus merges of geometrically growing runs), not by
the table size. A lookup is a binary search per run and a per-key reduce of about a hundred
rows (tens of microseconds, no DuckDB cursor shared between request threads), and both arms
always come from the same snapshot.

The legacy arm applies the legacy arm's own rule, the NumPy form of the `legacy_serving`
view (lambda_legacy.merge: `served_batch`, `served_speed`): per window, the rows of its batch
period's latest FINISHED run if the period has one (a key that run did not produce is
absent), else the speed value (`legacy_speed_current`). The kappa arm is
`kappa_stream_current`. tests/migration/serving/test_serving_refresh.py asserts both
equal the DuckDB views after every refresh.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from lambda_legacy.merge import FinishedPeriods, served_batch, served_speed
from migration.serving.routing import KAPPA, LEGACY
from migration.serving.runs import Run, Vocabulary, add_run, gather, newest_per_key, read_segments, reducer
from pipelines.errors import KappaError
from pipelines.instants import utc_iso
from pipelines.warehouse import Warehouse

log = logging.getLogger(__name__)

LEGACY_VIEW = "legacy_serving"  # the rule the legacy arm applies (see the module doc)
KAPPA_VIEW = "kappa_stream_current"
Row = tuple[int, int, str, str, str, int]  # ws_ms, we_ms, ws_iso, we_iso, event_type, count
# A refresh waits at least this many times the last refresh's duration after it (at most 20%
# of a core on refreshes): the request path stays fast whatever the warehouse does.
BUILD_DUTY_FACTOR = 5
BACKGROUND_NICE = 10  # the refresher thread is this much nicer than the request thread


@dataclass(frozen=True)
class TableRuns:
    """One aggregate table in memory: the segments read so far and their runs."""

    name: str
    keep_panes: bool = False
    seen: frozenset[str] = frozenset()
    runs: tuple[Run, ...] = ()

    @property
    def rows(self) -> int:
        return sum(len(run) for run in self.runs)

    def refreshed(
        self, con: duckdb.DuckDBPyConnection, warehouse: Warehouse, vocab: Vocabulary
    ) -> tuple[TableRuns, int]:
        """This table with the segments that appeared since; (itself, 0) if none did."""
        listed = {str(p) for p in warehouse.segments(self.name)}
        base = self
        if not self.seen <= listed:  # a segment vanished (rewritten warehouse): reload the table
            base = TableRuns(self.name, self.keep_panes)
        new = sorted(listed - base.seen)
        if not new:
            return base, 0
        run, read = read_segments(con, [*map(Path, new)], vocab, self.keep_panes)
        runs = add_run(con, base.runs, run, self.keep_panes)
        return replace(base, seen=base.seen | frozenset(new), runs=runs), read


def finished_periods(warehouse: Warehouse) -> FinishedPeriods:
    """The batch periods with a FINISHED run, from the warehouse's `batch_runs` segments."""
    paths = warehouse.segments("batch_runs")
    if not paths:
        return FinishedPeriods()
    cols = ["period_start", "period_end", "status", "pane_index"]
    runs = pa.concat_tables([pq.read_table(p, columns=cols) for p in paths], promote_options="permissive")
    return FinishedPeriods.of(runs)


def _rows(rows: dict[str, np.ndarray] | None, names: list[str]) -> list[tuple[int, int, str, int]]:
    if rows is None or not len(rows["ws"]):
        return []
    types = [names[code] for code in rows["et"].tolist()]
    return sorted(zip(rows["ws"].tolist(), rows["we"].tolist(), types, rows["count"].tolist(), strict=True))


@dataclass(frozen=True)
class KappaArm:
    table: TableRuns
    names: list[str]

    def rows(self, tweet_id: int) -> list[tuple[int, int, str, int]]:
        found = gather(self.table.runs, tweet_id)
        return _rows(None if found is None else newest_per_key(found), self.names)


@dataclass(frozen=True)
class LegacyArm:
    speed: TableRuns
    batch: TableRuns
    finished: FinishedPeriods
    names: list[str]

    def rows(self, tweet_id: int) -> list[tuple[int, int, str, int]]:
        """The tweet's rows of `legacy_serving`, by the legacy arm's own rule (lambda_legacy.merge)."""
        out: list[tuple[int, int, str, int]] = []
        speed = gather(self.speed.runs, tweet_id)
        if speed is not None:
            speed = newest_per_key(speed)
            keep = served_speed(speed["ws"], self.finished)
            out += _rows({name: values[keep] for name, values in speed.items()}, self.names)
        batch = gather(self.batch.runs, tweet_id)
        if batch is not None:
            batch = newest_per_key(batch, keep_panes=True)
            keep = served_batch(batch["ws"], batch["pane"], self.finished)
            out += _rows({name: values[keep] for name, values in batch.items()}, self.names)
        return sorted(out)


@dataclass(frozen=True)
class Snapshot:
    arms: dict[str, Any]  # KappaArm / LegacyArm: .rows(tweet_id)
    built_ms: int  # wall-clock time the snapshot was taken
    build_seconds: float  # how long the refresh that made it took
    rows: dict[str, int]
    legacy_view: str = LEGACY_VIEW
    finished_periods: frozenset[int] = frozenset()  # batch periods (start ms) with a FINISHED run
    new_rows: int = 0  # segment rows this refresh read
    runs: int = 0  # sorted runs held in memory (all tables)
    # The kappa stream's watermark as its table shows it: the newest window_end of an
    # ON_TIME or LATE pane (None before the first). A stream running behind is not settled.
    kappa_watermark_ms: int | None = None

    def settled_before_ms(self, settle_ms: int) -> int:
        """Windows ending at or before this are settled in both arms (shadow reads compare them)."""
        if self.kappa_watermark_ms is None:
            return 0
        return min(self.built_ms, self.kappa_watermark_ms) - settle_ms


class ServingData:
    def __init__(self, warehouse: Warehouse, window_ms: int, period_ms: int):
        self.warehouse = warehouse
        self.window_ms = window_ms
        self.period_ms = period_ms
        self._fingerprint: object = None
        self._iso: dict[int, str] = {}
        self._built_at = 0.0
        self._refresh_s = 0.0  # the last refresh's duration (0 after the first load: no wait)
        self._con = reducer()
        self._vocab = Vocabulary()
        self._tables = {
            "legacy_speed": TableRuns("legacy_speed"),
            "legacy_batch": TableRuns("legacy_batch", keep_panes=True),
            "kappa_stream": TableRuns("kappa_stream"),
        }
        self._finished = FinishedPeriods()
        self._runs_token: object = None
        self._kappa_panes_seen: frozenset[str] = frozenset()
        self._kappa_watermark_ms: int | None = None
        self.snapshot: Snapshot | None = None
        self.last_error: str | None = None

    def fingerprint(self) -> object:
        """Changes whenever a segment is added to (renamed into) any table folder."""
        try:
            return tuple(
                sorted((e.name, e.stat().st_mtime_ns) for e in os.scandir(self.warehouse.root) if e.is_dir())
            )
        except FileNotFoundError:
            return None

    def refresh_if_changed(self) -> bool:
        """Read new segments if any appeared, but spend at most 1/BUILD_DUTY_FACTOR of a core."""
        if self.snapshot and time.monotonic() - self._built_at < BUILD_DUTY_FACTOR * self._refresh_s:
            return False
        first = self.snapshot is None
        try:
            token = self.fingerprint()
            if token == self._fingerprint and self.snapshot is not None:
                return False
            self._build()
        except (duckdb.Error, pa.ArrowException, OSError, KappaError) as exc:
            self.last_error = f"{type(exc).__name__}: {exc}"
            log.warning("serving snapshot not refreshed: %s", self.last_error)
            return False
        self._fingerprint = token
        self._built_at = time.monotonic()
        self._refresh_s = 0.0 if first or self.snapshot is None else self.snapshot.build_seconds
        self.last_error = None
        return True

    def _build(self) -> None:
        """Fold the new segments into the tables and publish a new snapshot (one writer thread)."""
        started, built_ms = time.perf_counter(), time.time_ns() // 1_000_000
        tables, new_rows = dict(self._tables), 0
        for name, table in tables.items():
            tables[name], read = table.refreshed(self._con, self.warehouse, self._vocab)
            new_rows += read
        runs_token = tuple(str(p) for p in self.warehouse.segments("batch_runs"))
        finished = self._finished if runs_token == self._runs_token else finished_periods(self.warehouse)
        self._tables, self._finished, self._runs_token = tables, finished, runs_token
        self._advance_kappa_watermark()
        names = list(self._vocab.names)
        arms = {
            LEGACY: LegacyArm(tables["legacy_speed"], tables["legacy_batch"], finished, names),
            KAPPA: KappaArm(tables["kappa_stream"], names),
        }
        rows = {
            LEGACY: tables["legacy_speed"].rows + tables["legacy_batch"].rows,
            KAPPA: tables["kappa_stream"].rows,
        }
        if len(self._iso) > 100_000:
            self._iso = {}
        self.snapshot = Snapshot(
            arms, built_ms, time.perf_counter() - started, rows, LEGACY_VIEW,
            frozenset(int(s) for s in finished.starts.tolist()), new_rows,
            sum(len(t.runs) for t in tables.values()), self._kappa_watermark_ms,
        )  # fmt: skip

    def _advance_kappa_watermark(self) -> None:
        """The newest ON_TIME/LATE window_end of kappa_stream, reading only new segments."""
        listed = {str(p) for p in self.warehouse.segments("kappa_stream")}
        new = sorted(listed - self._kappa_panes_seen)
        if not new:
            return
        ((newest,),) = self._con.execute(
            "SELECT epoch_ms(max(window_end)) FROM read_parquet(?) WHERE pane IN ('ON_TIME', 'LATE')", [new]
        ).fetchall()
        if newest is not None:
            self._kappa_watermark_ms = max(newest, self._kappa_watermark_ms or newest)
        self._kappa_panes_seen = frozenset(listed)

    def iso(self, ms: int) -> str:
        text = self._iso.get(ms)
        if text is None:
            text = self._iso[ms] = utc_iso(ms)
        return text

    def lookup(self, arm: str, tweet_id: int, snapshot: Snapshot) -> list[Row]:
        """(ws_ms, we_ms, ws_iso, we_iso, event_type, count) rows of one tweet, in window order."""
        return self.with_iso(snapshot.arms[arm].rows(tweet_id))

    def with_iso(self, raw: list[tuple[int, int, str, int]]) -> list[Row]:
        """An arm's raw (ws_ms, we_ms, event_type, count) rows with their ISO times added."""
        return [(ws, we, self.iso(ws), self.iso(we), et, c) for ws, we, et, c in raw]


class Refresher(threading.Thread):
    """Calls `tick()` functions every `interval_s` until stopped, at a lower CPU priority.

    The ticks (snapshot refresh, console re-read) are bursts of DuckDB work on one core. At
    the process's priority, on a busy machine, a burst took CPU the request thread needed and
    reads queued behind it (~1% of requests during refreshes waited 40-100 ms). The thread runs
    `BACKGROUND_NICE` steps nicer, so the scheduler serves requests first and gives the ticks
    the spare time. Nice is per thread on Linux; elsewhere the ticks run at normal priority.
    """

    def __init__(self, interval_s: float, *ticks: Any):
        super().__init__(name="serving-refresher", daemon=True)
        self.interval_s = interval_s
        self.ticks = ticks
        self._stop_event = threading.Event()

    def run(self) -> None:
        lower_thread_priority(BACKGROUND_NICE)
        while not self._stop_event.wait(self.interval_s):
            for tick in self.ticks:
                try:
                    tick()
                except Exception:  # a failed tick must not kill the refresher; it retries next time
                    log.exception("serving background tick failed")

    def stop(self, timeout_s: float = 30.0) -> None:
        """Stop, and wait for a tick under way: a daemon thread still inside DuckDB when the
        interpreter exits aborts the process ("terminate called ... exception not rethrown")."""
        self._stop_event.set()
        if self.is_alive() and threading.current_thread() is not self:
            self.join(timeout_s)


def lower_thread_priority(steps: int) -> int | None:
    """Make the calling thread `steps` nicer than it is (Linux: nice is per thread, at most 19).

    Returns the thread's new nice value, or None where per-thread priorities are not available.
    """
    try:
        thread = threading.get_native_id()
        nice = min(os.getpriority(os.PRIO_PROCESS, thread) + steps, 19)
        os.setpriority(os.PRIO_PROCESS, thread, nice)
    except (AttributeError, OSError):  # not here: the ticks run at the process's priority
        return None
    return nice
