"""The legacy serving merge: per key, the batch value once its period has a finished run.

Importing this module registers two DuckDB views with `pipelines.warehouse.register_view`,
so every `Warehouse(root).connect(window_ms)` made afterwards has them:

- `legacy_batch_served`: the rows of the latest FINISHED batch run of each period (not
  the highest pane_index per key: a key that the latest run no longer produces must not
  survive from an older run, so `legacy_batch_current` is the wrong view for batch);
- `legacy_serving`: `legacy_batch_served` for periods with a finished run (a key that run
  never saw is absent, i.e. 0), `legacy_speed_current` for every other period. The
  column `pipeline` says which arm served the key.

`connect_with_serving(warehouse, window_ms)` is the explicit form. The same rule for
BigQuery is `sql/legacy_serving.bigquery.sql` (`bigquery_sql()` renders it).
"""

from __future__ import annotations

from importlib import resources
from string import Template
from typing import TYPE_CHECKING

from pipelines.warehouse import Warehouse, register_view

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


register_view("legacy_batch_served", legacy_batch_served_sql)
register_view("legacy_serving", legacy_serving_sql)


def connect_with_serving(warehouse: Warehouse | str, window_ms: int) -> duckdb.DuckDBPyConnection:
    """A warehouse connection that has `legacy_batch_served` and `legacy_serving`."""
    if not isinstance(warehouse, Warehouse):
        warehouse = Warehouse(warehouse)
    return warehouse.connect(window_ms)


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
