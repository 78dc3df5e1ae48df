"""Running the batch layer period by period: the `batch_runs` ledger, re-runs, `--follow`.

Each run appends a RUNNING row to `batch_runs`, then a FINISHED (with its counters) or
FAILED row. A run of period P reads every archive part whose arrival interval overlaps P
(pipelines/archive.py, `ArrivalSpans`: a local partition is P itself, a Cloud Storage object
may span `max_duration` past its start) and counts the events stamped in P. A period with no
archive part is never a FINISHED run of 0 lines (an archive
written late or to the wrong place would look like a quiet hour and the ledger would hide
the loss): a single run (and `--follow --until`) fails with a FAILED row saying why; an
open-ended `--follow` appends one WAITING row saying why and waits for the period's first
part. Its aggregate rows carry the run's pane_index; the legacy views serve, per period,
the rows of the latest FINISHED run only. So a re-run replaces a period's rows while every
table stays append-only, and a run that crashed half-way is never served.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Callable

from lambda_legacy.batch.destinations import Destination, ledger
from lambda_legacy.batch.pipeline import BatchRun, execute
from pipelines.archive import ArrivalSpans, list_parts
from pipelines.errors import ConfigError, InputError, KappaError, PipelineError, map_exceptions
from pipelines.events import now_ms
from pipelines.instants import utc_iso

LOG = logging.getLogger("legacy_batch")


@dataclass(frozen=True)
class RunReport:
    run_id: str
    period_start_ms: int
    period_end_ms: int
    parts: int
    counters: dict[str, int]
    seconds: float

    @property
    def balanced(self) -> bool:
        c = self.counters
        accounted = c["events_counted"] + c["duplicates_removed"] + c["late_dropped"] + c["dead_lettered"]
        return c["lines_read"] == accounted

    def summary(self) -> str:
        c = self.counters
        return (
            f"legacy batch {iso(self.period_start_ms)}..{iso(self.period_end_ms)}: {self.parts} parts, "
            f"{c['lines_read']} lines read = {c['events_counted']} counted + {c['duplicates_removed']} "
            f"duplicates + {c['late_dropped']} late dropped + {c['dead_lettered']} dead-lettered"
            f"{'' if self.balanced else '  (UNBALANCED)'} in {self.seconds:.1f}s"
        )


def iso(ms: int) -> str:
    return utc_iso(ms, "seconds")


def period_start_of(instant_ms: int, period_ms: int) -> int:
    return instant_ms - instant_ms % period_ms


def _ledger_row(
    run: BatchRun, run_id: str, status: str, counters: dict[str, int] | None, reason: str | None = None
) -> dict:
    c = counters or {}
    return {
        "run_id": run_id,
        "period_start": run.period_start_ms,
        "period_end": run.period_end_ms,
        "started_at": run.started_at_ms,
        "finished_at": None if status == "RUNNING" else now_ms(),
        "lines_read": c.get("lines_read"),
        "events_counted": c.get("events_counted"),
        "duplicates_removed": c.get("duplicates_removed"),
        "late_dropped": c.get("late_dropped"),
        "dead_lettered": c.get("dead_lettered"),
        "status": status,
        "pane_index": run.pane_index,
        "reason": reason,
    }


def _started_at(period_start_ms: int) -> int:
    # pane_index must grow with every run of a period, even two runs in the same millisecond.
    global _last_started
    stamp = max(now_ms(), _last_started + 1)
    _last_started = stamp
    return stamp


_last_started = 0


def run_period(
    archive_root: str,
    destination: Destination,
    period_start_ms: int,
    period_ms: int,
    window_ms: int,
    beam_args: list[str],
    spans: ArrivalSpans | None = None,
) -> RunReport:
    """One batch run over one period, recorded in the destination's `batch_runs`
    (`destination`: a local warehouse root or a `BigQueryDestination`; `spans`: the
    archive's arrival rule, by default `period_ms` and Terraform's max_duration)."""
    if period_start_ms % period_ms:
        raise ConfigError(
            f"--period-start {iso(period_start_ms)} is not at a batch period boundary ({period_ms} ms)"
        )
    end_ms = period_start_ms + period_ms
    spans = spans or ArrivalSpans(period_ms)
    parts = tuple(list_parts(archive_root, period_start_ms, end_ms, spans=spans))
    run = BatchRun(period_start_ms, end_ms, window_ms, _started_at(period_start_ms), parts)
    run_id = f"legacy_batch-{iso(period_start_ms)}-{run.started_at_ms}"
    runs = ledger(destination)
    if not parts:
        reason = no_parts_reason(archive_root, period_start_ms, end_ms)
        runs.append(_ledger_row(run, run_id, "FAILED", None, reason))
        raise InputError(f"legacy batch run {run_id} FAILED: {reason}")
    runs.append(_ledger_row(run, run_id, "RUNNING", None))
    began = time.monotonic()
    try:  # a Beam job failure of any kind, translated where it enters; ours pass through
        with map_exceptions(
            {Exception: lambda why: PipelineError(f"legacy batch run {run_id} failed: {why}")}
        ):
            counters = execute(run, destination, beam_args)
    except KappaError:
        runs.append(_ledger_row(run, run_id, "FAILED", None))
        raise
    runs.append(_ledger_row(run, run_id, "FINISHED", counters))
    return RunReport(run_id, period_start_ms, end_ms, len(parts), counters, time.monotonic() - began)


def no_parts_reason(archive_root: str, start_ms: int, end_ms: int) -> str:
    return (
        f"no archive parts under {archive_root} arrived in {iso(start_ms)}..{iso(end_ms)}; "
        "a period without parts is not counted as empty (check the archiver or the Cloud Storage "
        "subscription, then run the period again)"
    )


def wait_for_parts(
    archive_root: str,
    destination: Destination,
    period_start_ms: int,
    period_ms: int,
    stop_requested: Callable[[], bool],
    poll_s: float = 1.0,
    spans: ArrivalSpans | None = None,
) -> bool:
    """Block until the period has a part (True) or a stop is requested (False); the first
    time it has none, a WAITING row in the ledger says why."""
    end_ms = period_start_ms + period_ms
    spans = spans or ArrivalSpans(period_ms)
    recorded = False
    while not list_parts(archive_root, period_start_ms, end_ms, spans=spans):
        if not recorded:
            run = BatchRun(period_start_ms, end_ms, 0, _started_at(period_start_ms), ())
            run_id = f"legacy_batch-{iso(period_start_ms)}-{run.started_at_ms}"
            reason = no_parts_reason(archive_root, period_start_ms, end_ms) + "; --follow waits for one"
            ledger(destination).append(_ledger_row(run, run_id, "WAITING", None, reason))
            LOG.warning("legacy batch: %s", reason)
            recorded = True
        if stop_requested():
            return False
        time.sleep(poll_s)
    return True


def follow(
    archive_root: str,
    destination: Destination,
    period_ms: int,
    delay_ms: int,
    window_ms: int,
    beam_args: list[str],
    start_ms: int | None,
    max_periods: int | None,
    until_ms: int | None,
    report: Callable[[RunReport], None],
    stop_requested: Callable[[], bool] = lambda: False,
    spans: ArrivalSpans | None = None,
) -> int:
    """Run each period once it has ended plus `delay_ms`; returns the number of runs.

    Without `start_ms` it starts at the earliest archived period and skips periods that
    already have a finished run, so restarting `--follow` does not redo work; an open-ended
    follow over an archive with no part yet waits for the first one and starts at its
    period (not at the current one, which may end before any traffic arrives and would then
    wait forever). A due period without parts is waited for (one WAITING ledger row says
    why), except with `until_ms`: a bounded follow then fails on it like a single run.
    """
    skip: set[int] = set()
    spans = spans or ArrivalSpans(period_ms)
    if start_ms is None:
        first = _first_arrival_ms(archive_root, spans, stop_requested, wait=until_ms is None)
        if first is None and until_ms is None:
            return 0  # stopped while waiting for the first part
        start_ms = period_start_of(now_ms() if first is None else first, period_ms)
        skip = ledger(destination).finished_periods()
    period = period_start_of(start_ms, period_ms)
    runs = 0
    while (max_periods is None or runs < max_periods) and (
        until_ms is None or period + period_ms <= until_ms
    ):
        if period in skip:
            period += period_ms
            continue
        due = period + period_ms + delay_ms
        while now_ms() < due:
            if stop_requested():
                return runs
            time.sleep(min(1.0, (due - now_ms()) / 1000))
        # A bounded follow runs the period now (without parts it fails loudly); else wait.
        if until_ms is None and not wait_for_parts(
            archive_root, destination, period, period_ms, stop_requested, spans=spans
        ):
            return runs
        report(run_period(archive_root, destination, period, period_ms, window_ms, beam_args, spans))
        runs += 1
        period += period_ms
        if stop_requested():
            break
    return runs


def _first_arrival_ms(
    archive_root: str,
    spans: ArrivalSpans,
    stop_requested: Callable[[], bool],
    wait: bool,
    poll_s: float = 1.0,
) -> int | None:
    """The arrival start of the archive's earliest part; with `wait`, blocks until there is
    one (None if a stop is requested first), else None for an archive without parts."""
    logged = False
    while True:
        parts = list_parts(archive_root, spans=spans)
        if parts:
            return parts[0].arrival_start_ms
        if not wait or stop_requested():
            return None
        if not logged:
            LOG.info(
                "legacy batch: no archive part under %s yet; --follow waits for the first one", archive_root
            )
            logged = True
        time.sleep(poll_s)


def check_archive(archive_root: str) -> None:
    if not archive_root.startswith("gs://"):
        from pathlib import Path

        if not Path(archive_root).exists():
            raise InputError(f"archive not found: {archive_root} (run `kappactl archive` or pass --archive)")
