"""The legacy serving merge: per key, the batch value once its period has a finished run.

The rule has two forms, kept in this one module and tested equal:

- SQL views for the warehouse, passed explicitly to `Warehouse.connect(window_ms,
  views=LEGACY_VIEWS)` (or opened with `connect_with_legacy_views`):
  - `legacy_batch_served`: the rows of the latest FINISHED batch run of each period (not
    the highest pane_index per key: a key that the latest run no longer produces must not
    survive from an older run, so `legacy_batch_current` is the wrong view for batch);
  - `legacy_serving`: `legacy_batch_served` for periods with a finished run (a key that
    run never saw is absent, i.e. 0), `legacy_speed_current` for every other period. The
    column `pipeline` says which arm served the key.
- NumPy masks over one key's rows for in-memory readers (the serving API's snapshot):
  `FinishedPeriods` (the `latest_finished_run` of the views) and `served_speed` /
  `served_batch`, which pick the rows `legacy_serving` holds.

The same rule for BigQuery is `sql/legacy_serving.bigquery.sql` (`bigquery_sql()`
renders it). The view names are contracts (the validator, the gate and Terraform name them).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from string import Template
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipelines.warehouse import ViewProvider, Warehouse

if TYPE_CHECKING:
    import duckdb

AGGREGATE_COLUMNS = (
    "window_start, window_end, tweet_id, event_type, count, pipeline, emitted_at, pane, pane_index"
)

_LATEST_FINISHED_RUN = """
    SELECT period_start, period_end, max(pane_index) AS pane_index
    FROM batch_runs
    WHERE status = 'FINISHED'
    GROUP BY period_start, period_end
"""


def legacy_batch_served_sql(window_ms: int) -> str:
    return f"""
        CREATE OR REPLACE VIEW legacy_batch_served AS
        WITH latest_finished_run AS ({_LATEST_FINISHED_RUN})
        SELECT {", ".join("b." + c.strip() for c in AGGREGATE_COLUMNS.split(","))}
        FROM legacy_batch AS b
        JOIN latest_finished_run AS r
          ON b.pane_index = r.pane_index
         AND b.window_start >= r.period_start AND b.window_start < r.period_end
        -- a retried bundle may have written a run's row twice: keep one copy
        QUALIFY row_number() OVER (PARTITION BY b.window_start, b.tweet_id, b.event_type
                                   ORDER BY b.emitted_at DESC) = 1
    """


def legacy_serving_sql(window_ms: int) -> str:
    return f"""
        CREATE OR REPLACE VIEW legacy_serving AS
        WITH latest_finished_run AS ({_LATEST_FINISHED_RUN})
        SELECT {AGGREGATE_COLUMNS} FROM legacy_batch_served
        UNION ALL
        SELECT {AGGREGATE_COLUMNS} FROM legacy_speed_current AS s
        WHERE NOT EXISTS (
            SELECT 1 FROM latest_finished_run AS r
            WHERE s.window_start >= r.period_start AND s.window_start < r.period_end
        )
    """


# The legacy arm's derived views, in creation order (legacy_serving reads legacy_batch_served).
LEGACY_VIEWS: tuple[ViewProvider, ...] = (legacy_batch_served_sql, legacy_serving_sql)


def connect_with_legacy_views(warehouse: Warehouse | str, window_ms: int) -> duckdb.DuckDBPyConnection:
    """A warehouse connection that has `legacy_batch_served` and `legacy_serving`."""
    if not isinstance(warehouse, Warehouse):
        warehouse = Warehouse(warehouse)
    return warehouse.connect(window_ms, views=LEGACY_VIEWS)


@dataclass(frozen=True)
class FinishedPeriods:
    """Per batch period with a FINISHED run: [start, end) in epoch ms and the pane_index of
    its latest finished run (`latest_finished_run` of the views), sorted by start."""

    starts: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    ends: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    panes: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))

    @classmethod
    def of(cls, batch_runs: pa.Table) -> FinishedPeriods:
        """From rows of `batch_runs` (at least period_start, period_end, status, pane_index)."""
        runs = batch_runs.filter(pc.equal(batch_runs.column("status"), "FINISHED"))
        if not runs.num_rows:
            return cls()
        latest = runs.group_by(["period_start", "period_end"]).aggregate([("pane_index", "max")])
        latest = latest.sort_by([("period_start", "ascending"), ("period_end", "ascending")])

        def ms(name: str) -> np.ndarray:
            column = pc.cast(latest.column(name), pa.timestamp("ms", tz="UTC"))
            return pc.cast(column, pa.int64()).to_numpy()

        panes = latest.column("pane_index_max").to_numpy().astype(np.int64)
        return cls(ms("period_start"), ms("period_end"), panes)

    @property
    def disjoint(self) -> bool:
        """No two periods overlap (the usual case; not after a change of time.batch_period)."""
        return bool(np.all(self.ends[:-1] <= self.starts[1:]))

    def period_of(self, ws: np.ndarray) -> np.ndarray:
        """For disjoint periods: the index of the period each window starts in, -1 if none."""
        if not len(self.starts):
            return np.full(len(ws), -1, np.int64)
        idx = np.searchsorted(self.starts, ws, side="right") - 1
        inside = (idx >= 0) & (ws < self.ends[np.maximum(idx, 0)])
        return np.where(inside, idx, -1)

    def covered(self, ws: np.ndarray) -> np.ndarray:
        """(windows, periods) bool: window i starts in finished period j (any periods)."""
        return (ws[:, None] >= self.starts[None, :]) & (ws[:, None] < self.ends[None, :])


def served_speed(ws: np.ndarray, finished: FinishedPeriods) -> np.ndarray:
    """Which speed rows (current per key) `legacy_serving` holds: those whose window no
    finished batch period covers."""
    if finished.disjoint:
        return np.less(finished.period_of(ws), 0)
    return np.logical_not(finished.covered(ws).any(axis=1))


def served_batch(ws: np.ndarray, pane: np.ndarray, finished: FinishedPeriods) -> np.ndarray:
    """Which batch rows (newest per key and pane_index) `legacy_batch_served` holds: those
    written by the latest finished run of a period that covers their window."""
    if finished.disjoint:
        idx = finished.period_of(ws)
        return (idx >= 0) & (pane == finished.panes[np.maximum(idx, 0)]) if len(finished.panes) else idx >= 0
    return (finished.covered(ws) & (pane[:, None] == finished.panes[None, :])).any(axis=1)


def bigquery_sql(
    project: str,
    dataset: str,
    batch_period_seconds: int,
    batch_table: str = "legacy_batch",
    speed_table: str = "legacy_speed",
    batch_runs_table: str = "batch_runs",
) -> str:
    """The BigQuery view query of `legacy_serving` for these dataset and table names."""
    text = resources.files("lambda_legacy").joinpath("sql/legacy_serving.bigquery.sql").read_text()
    return Template(text).substitute(
        project=project,
        dataset=dataset,
        batch_period_seconds=int(batch_period_seconds),
        batch_table=batch_table,
        speed_table=speed_table,
        batch_runs_table=batch_runs_table,
    )
