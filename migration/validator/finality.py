"""When a window of an arm can no longer change (DESIGN.md 4): a key is compared only
when its window is final in both arms; otherwise it is PENDING.

- files (`--left-path`...), `kappa_backfill`, `truth` and unknown tables: final (bounded
  outputs: nothing will rewrite them).
- `kappa_stream`: final once the stream's watermark has passed window_end +
  kappa_allowed_lateness. The table says how far the watermark got: an ON_TIME or LATE
  pane of a window is only ever written after the watermark passed that window's end, so
  the newest such window_end is a lower bound of the watermark, on the DirectRunner and
  on Dataflow alike, however far behind the stream runs (its watermark follows what it
  has read, not the clock). No such pane yet: nothing is final.
- `legacy_speed`: final once window_end + speed_out_of_orderness is at or before the
  newest `emitted_at` in the table (Flink's bounded-out-of-orderness watermark, estimated
  by when the job last wrote).
- `legacy_serving`, `legacy_batch`: final once the key's batch period has a finished run
  in `batch_runs` (status FINISHED or SUCCEEDED): from then on serving returns the batch
  value, which only a re-run of the period could change.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import ibis
import ibis.expr.types as ir

from pipelines.config import TimeConfig

# batch_runs.status values that mark a finished legacy batch run (the legacy batch writes
# FINISHED; SUCCEEDED is accepted for ledgers written by other schedulers).
FINISHED_STATUSES = ("FINISHED", "SUCCEEDED")


class Finality(Protocol):
    def expr(self, window_start: ir.TimestampValue, window_end: ir.TimestampValue) -> ir.BooleanValue: ...

    def describe(self) -> str: ...


@dataclass(frozen=True)
class AlwaysFinal:
    why: str

    def expr(self, window_start: ir.TimestampValue, window_end: ir.TimestampValue) -> ir.BooleanValue:
        return ibis.literal(True)

    def describe(self) -> str:
        return f"final ({self.why})"


@dataclass(frozen=True)
class WatermarkFinal:
    """window_end + lateness <= the arm's watermark, as its raw table shows it: the newest
    `emitted_at`, or with `from_panes` the newest window_end of an ON_TIME or LATE pane."""

    rows: ir.Table
    lateness_ms: int
    what: str
    from_panes: bool = False

    def expr(self, window_start: ir.TimestampValue, window_end: ir.TimestampValue) -> ir.BooleanValue:
        if self.from_panes:
            watermark = self.rows.filter(self.rows.pane.isin(["ON_TIME", "LATE"])).window_end.max()
        else:
            watermark = self.rows.emitted_at.max()
        closed = window_end + ibis.interval(milliseconds=self.lateness_ms) <= watermark.as_scalar()
        return closed.coalesce(False)

    def describe(self) -> str:
        watermark = (
            "the newest window_end of an ON_TIME or LATE pane (a lower bound of the stream's watermark)"
            if self.from_panes
            else "max(emitted_at)"
        )
        return f"final when window_end + {self.what} ({self.lateness_ms} ms) <= {watermark}"


@dataclass(frozen=True)
class BatchRunFinal:
    """The window's batch period has a finished run in `batch_runs`."""

    runs: ir.Table | None
    period_s: int
    statuses: tuple[str, ...]

    def expr(self, window_start: ir.TimestampValue, window_end: ir.TimestampValue) -> ir.BooleanValue:
        if self.runs is None:
            return ibis.literal(False)
        runs = self.runs
        period_s = self.period_s
        done = runs.filter(runs.status.isin(list(self.statuses))).select(p=runs.period_start.epoch_seconds())
        seconds = window_start.epoch_seconds()
        period = seconds - seconds % period_s  # not `//`: BigQuery's IEEE_DIVIDE has no DuckDB twin
        return period.isin(done.p)

    def describe(self) -> str:
        if self.runs is None:
            return "never final: no batch_runs table (no legacy batch has run)"
        return f"final when its {self.period_s}s batch period has a run with status in {self.statuses}"


def finality_for(
    base_table: str | None,
    rows: ir.Table | None,
    batch_runs: ir.Table | None,
    time: TimeConfig,
    statuses: tuple[str, ...],
) -> Finality:
    """The rule of an arm, by the warehouse table it reads (None: files), with the config's
    lateness and period."""
    if base_table is None:
        return AlwaysFinal("files are final")
    name = base_table.rsplit(".", 1)[-1].removesuffix("_current")
    if name == "kappa_stream" and rows is not None:
        return WatermarkFinal(rows, time.kappa_allowed_lateness_ms, "kappa_allowed_lateness", from_panes=True)
    if name == "legacy_speed" and rows is not None:
        return WatermarkFinal(rows, time.speed_out_of_orderness_ms, "speed_out_of_orderness")
    if name in ("legacy_serving", "legacy_batch"):
        return BatchRunFinal(batch_runs, time.batch_period_s, statuses)
    return AlwaysFinal(f"{name} is a bounded output")
