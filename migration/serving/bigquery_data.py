"""The serving API's snapshot read from BigQuery (the cloud profile): the same two served
views Terraform creates, `legacy.legacy_serving` and `kappa.kappa_stream_current`, and the
FINISHED periods of `legacy.batch_runs`, read through the jobs API into the same in-memory
lookups as the warehouse snapshot (migration/serving/data.py). The tables are append-only, so
their row counts tell when a rebuild is due.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from migration.serving.data import KAPPA_VIEW, LEGACY_VIEW, ServingData, Snapshot
from migration.serving.routing import KAPPA, LEGACY
from pipelines.warehouse import Warehouse

_BASE_TABLES = ("legacy.legacy_batch", "legacy.legacy_speed", "legacy.batch_runs", "kappa.kappa_stream")


@dataclass(frozen=True)
class ViewArm:
    """A served view's rows sorted by tweet_id; `.rows(tweet_id)` as the warehouse arms give them."""

    tweet_id: np.ndarray
    ws: np.ndarray
    we: np.ndarray
    count: np.ndarray
    event_type: list[str]

    @classmethod
    def of(cls, table: pa.Table) -> ViewArm:
        def ints(name: str) -> np.ndarray:
            return table.column(name).to_numpy().astype(np.int64)

        return cls(
            ints("tweet_id"), ints("ws"), ints("we"), ints("count"), table.column("event_type").to_pylist()
        )

    def rows(self, tweet_id: int) -> list[tuple[int, int, str, int]]:
        lo, hi = np.searchsorted(self.tweet_id, [tweet_id, tweet_id + 1])
        return sorted(
            zip(
                self.ws[lo:hi].tolist(),
                self.we[lo:hi].tolist(),
                self.event_type[lo:hi],
                self.count[lo:hi].tolist(),
                strict=True,
            )
        )


class BigQueryServingData(ServingData):
    def __init__(self, project: str, window_ms: int, period_ms: int, client: Any = None):
        super().__init__(Warehouse(f".bigquery-{project}"), window_ms, period_ms)
        from pipelines.bigquery_io import bigquery_client

        self.project = project
        self.client = client or bigquery_client(project)

    def _query(self, sql: str, what: str) -> list[dict[str, Any]]:
        from pipelines.bigquery_io import query_rows

        return query_rows(self.client, sql, f"BigQuery {what}")

    def fingerprint(self) -> object:
        counts = ", ".join(
            f"(SELECT COUNT(*) FROM `{self.project}.{t}`) AS c{i}" for i, t in enumerate(_BASE_TABLES)
        )
        return tuple(self._query(f"SELECT {counts}", "serving fingerprint")[0].values())

    def _build(self) -> None:
        started, built_ms = time.perf_counter(), time.time_ns() // 1_000_000
        views = {LEGACY: f"legacy.{LEGACY_VIEW}", KAPPA: f"kappa.{KAPPA_VIEW}"}
        arrow = {arm: self._arm_table(view) for arm, view in views.items()}
        finished = frozenset(
            int(r["p"])
            for r in self._query(
                f"SELECT DISTINCT UNIX_MILLIS(period_start) AS p FROM `{self.project}.legacy.batch_runs` "
                "WHERE status = 'FINISHED'",
                "legacy.batch_runs",
            )
        )
        arms = {arm: ViewArm.of(table) for arm, table in arrow.items()}
        rows = {arm: table.num_rows for arm, table in arrow.items()}
        (watermark,) = self._query(
            f"SELECT UNIX_MILLIS(MAX(window_end)) AS w FROM `{self.project}.kappa.kappa_stream` "
            "WHERE pane IN ('ON_TIME', 'LATE')",
            "kappa.kappa_stream watermark",
        )
        self.snapshot = Snapshot(
            arms, built_ms, time.perf_counter() - started, rows, LEGACY_VIEW, finished,
            kappa_watermark_ms=None if watermark["w"] is None else int(watermark["w"]),
        )  # fmt: skip

    def _arm_table(self, view: str) -> pa.Table:
        rows = self._query(
            "SELECT tweet_id, event_type, UNIX_MILLIS(window_start) AS ws, UNIX_MILLIS(window_end) AS we, "
            f"`count` FROM `{self.project}.{view}` ORDER BY tweet_id",
            view,
        )
        schema = pa.schema([("tweet_id", pa.int64()), ("event_type", pa.string()), ("ws", pa.int64()),
                            ("we", pa.int64()), ("count", pa.int64())])  # fmt: skip
        return pa.Table.from_pylist(rows, schema=schema)
