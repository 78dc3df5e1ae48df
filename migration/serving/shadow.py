"""Shadow reads: after the response, read the other arm, compare, and count mismatches.

Comparisons run on a small bounded thread pool, never on the request path; when the pool is
saturated a shadow read is dropped and counted rather than queued without bound. Only
settled windows are compared (both arms final: `settle_ms` after window_end), so in-flight
windows do not count as mismatches. Stats are kept per cutover transition (`seq`): a late
read made before the current transition is counted as stale and ignored, never allowed to
replace the current stats. They are written to the cutover folder, where `kappactl cutover
check` reads them.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

from migration.cutover.gate import ShadowStats, write_shadow_stats
from migration.serving.metrics import Metrics

log = logging.getLogger(__name__)
# (ws_ms, we_ms, ..., event_type, count): the API's rows (with ISO times) or an arm's raw rows
Rows = list[tuple[Any, ...]]


@dataclass(frozen=True)
class Finality:
    """Which windows a shadow read may compare: ended `settle` before the snapshot was taken,
    and (when known) in a batch period whose legacy batch run had finished by then, so the
    legacy side is the batch value rather than the speed layer's."""

    settled_before_ms: int
    finished_periods: frozenset[int] | None = None
    period_ms: int = 0

    def final(self, window_start_ms: int, window_end_ms: int) -> bool:
        if window_end_ms > self.settled_before_ms:
            return False
        if self.finished_periods is None:
            return True
        return window_start_ms - window_start_ms % self.period_ms in self.finished_periods


def compare(
    primary: Rows, shadow: Rows, settled: int | Finality, tolerance: float = 0.0
) -> tuple[int, int, int]:
    """(keys compared, keys mismatched, keys pending) over the union of both arms' keys.

    `settled` is a Finality (or just the settled-before time in ms). A key mismatches when
    its counts differ by more than `tolerance` x the larger one."""
    finality = settled if isinstance(settled, Finality) else Finality(settled)
    left = {(r[0], r[-2]): (r[1], r[-1]) for r in primary}
    right = {(r[0], r[-2]): (r[1], r[-1]) for r in shadow}
    compared = mismatched = pending = 0
    for key in left.keys() | right.keys():
        window_end = (left.get(key) or right[key])[0]
        if not finality.final(key[0], window_end):
            pending += 1
            continue
        compared += 1
        a, b = left.get(key, (0, 0))[1], right.get(key, (0, 0))[1]
        if abs(a - b) > tolerance * max(a, b):
            mismatched += 1
    return compared, mismatched, pending


class ShadowRecorder:
    def __init__(
        self,
        metrics: Metrics,
        settle_ms: int,
        stats_dir: Path | None,
        workers: int = 2,
        backlog: int = 64,
        tolerance: float = 0.0,
    ):
        self.metrics = metrics
        self.settle_ms = settle_ms
        self.tolerance = tolerance
        self.stats_dir = stats_dir
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="shadow")
        self.backlog = backlog
        self._pending = 0
        self._lock = threading.Lock()
        self.stats = ShadowStats(seq=-1)
        self._dirty = False

    def submit(
        self,
        seq: int,
        primary_arm: str,
        shadow_arm: str,
        primary: Rows,
        read: Callable[[], Rows],
        finality: Finality | None = None,
    ) -> bool:
        """Queue one shadow read; False (and counted) if the backlog is full."""
        with self._lock:
            full = self._pending >= self.backlog
            self._pending += 0 if full else 1
        if full:
            self.metrics.inc("shadow_dropped_total", primary=primary_arm, shadow=shadow_arm)
            return False
        try:
            self._pool.submit(self._run, seq, primary_arm, shadow_arm, primary, read, finality)
        except RuntimeError:  # pool shut down while the server stops
            self._done()
            return False
        return True

    def _done(self) -> None:
        with self._lock:
            self._pending -= 1

    def _run(
        self,
        seq: int,
        primary_arm: str,
        shadow_arm: str,
        primary: Rows,
        read: Callable[[], Rows],
        finality: Finality | None = None,
    ) -> None:
        try:
            shadow = read()
            settled = finality or Finality(time.time_ns() // 1_000_000 - self.settle_ms)
            compared, mismatched, pending = compare(primary, shadow, settled, self.tolerance)
            labels = {"primary": primary_arm, "shadow": shadow_arm}
            self.metrics.inc("shadow_reads_total", 1, **labels)
            self.metrics.inc("shadow_keys_compared_total", compared, **labels)
            self.metrics.inc("shadow_keys_mismatched_total", mismatched, **labels)
            self.metrics.inc("shadow_keys_pending_total", pending, **labels)
            if mismatched:
                self.metrics.inc("shadow_mismatched_reads_total", 1, **labels)
            if not self._record(seq, compared, mismatched, pending):
                self.metrics.inc("shadow_stale_reads_total", 1, **labels)
        except Exception:  # a failed shadow read must never affect serving; it is counted
            log.exception("shadow read failed")
            self.metrics.inc("shadow_errors_total", primary=primary_arm, shadow=shadow_arm)
        finally:
            self._done()

    def _record(self, seq: int, compared: int, mismatched: int, pending: int) -> bool:
        """Add one read to the stats of transition `seq`; False (and nothing changed) for a
        read made before the current transition, which must not replace its stats."""
        with self._lock:
            if seq < self.stats.seq:
                return False
            stats = self.stats if self.stats.seq == seq else ShadowStats(seq=seq)
            self.stats = replace(
                stats,
                reads=stats.reads + 1,
                keys_compared=stats.keys_compared + compared,
                keys_mismatched=stats.keys_mismatched + mismatched,
                keys_pending=stats.keys_pending + pending,
                updated_ms=time.time_ns() // 1_000_000,
            )
            self._dirty = True
            return True

    def flush(self) -> None:
        """Write the stats file if anything changed (called by the refresher)."""
        with self._lock:
            if not self._dirty or self.stats_dir is None:
                return
            stats, self._dirty = self.stats, False
        write_shadow_stats(self.stats_dir, stats)

    def drain(self, timeout_s: float = 5.0) -> None:
        """Wait for queued shadow reads (tests and shutdown)."""
        deadline = time.monotonic() + timeout_s
        while self._pending and time.monotonic() < deadline:
            time.sleep(0.01)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
        self.flush()
