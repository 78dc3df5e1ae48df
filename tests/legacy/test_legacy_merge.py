"""The legacy serving merge: batch wins for periods with a finished run, speed elsewhere.

The DuckDB views are checked on hand-made rows; the BigQuery SQL (ours, and the one
Terraform deploys) is transpiled to DuckDB with sqlglot and must agree with them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import sqlglot

from lambda_legacy.merge import (
    LEGACY_VIEWS,
    FinishedPeriods,
    bigquery_sql,
    connect_with_legacy_views,
    served_batch,
    served_speed,
)
from pipelines.warehouse import Warehouse

P0 = 1_767_571_200_000  # 2026-01-05T00:00:00Z
PERIOD_MS, WINDOW_MS = 60_000, 10_000
ROOT = Path(__file__).resolve().parents[2]


def agg(
    window_start: int,
    tweet_id: int,
    count: int,
    pipeline: str,
    pane_index: int,
    emitted_at: int = 0,
    event_type: str = "like",
) -> dict:
    return {
        "window_start": window_start,
        "window_end": window_start + WINDOW_MS,
        "tweet_id": tweet_id,
        "event_type": event_type,
        "count": count,
        "pipeline": pipeline,
        "emitted_at": P0 + emitted_at,
        "pane": "FINAL" if pipeline == "legacy_batch" else "ON_TIME",
        "pane_index": pane_index,
    }


def run(period: int, pane_index: int, status: str) -> dict:
    start = P0 + period * PERIOD_MS
    return {
        "run_id": f"r{pane_index}",
        "period_start": start,
        "period_end": start + PERIOD_MS,
        "started_at": P0,
        "finished_at": None,
        "lines_read": None,
        "events_counted": None,
        "duplicates_removed": None,
        "late_dropped": None,
        "dead_lettered": None,
        "status": status,
        "pane_index": pane_index,
    }


def simple(wh: Warehouse) -> set[tuple]:
    """One finished run for period 0; speed for periods 0 and 1."""
    wh.append("batch_runs", [run(0, 100, "RUNNING"), run(0, 100, "FINISHED")])
    wh.append(
        "legacy_batch", [agg(P0, 1, 5, "legacy_batch", 100), agg(P0 + 10_000, 2, 3, "legacy_batch", 100)]
    )
    wh.append(
        "legacy_speed",
        [
            agg(P0, 1, 7, "legacy_speed", 0),
            agg(P0 + 20_000, 4, 2, "legacy_speed", 0),
            agg(P0 + 60_000, 1, 8, "legacy_speed", 0),
        ],
    )
    return {
        (P0, 1, "like", 5, "legacy_batch"),
        (P0 + 10_000, 2, "like", 3, "legacy_batch"),
        (P0 + 60_000, 1, "like", 8, "legacy_speed"),
    }


def reruns(wh: Warehouse) -> set[tuple]:
    """Period 0 re-run (a key vanished), a crashed third run; period 1 only a failed run."""
    wh.append(
        "batch_runs",
        [run(0, 100, "FINISHED"), run(0, 200, "FINISHED"), run(0, 300, "RUNNING"), run(1, 400, "FAILED")],
    )
    wh.append(
        "legacy_batch",
        [
            agg(P0, 1, 5, "legacy_batch", 100),
            agg(P0 + 10_000, 2, 3, "legacy_batch", 100),  # superseded run
            agg(P0, 1, 6, "legacy_batch", 200),  # latest finished run: key 2 is gone
            agg(P0, 1, 99, "legacy_batch", 300),  # never finished
            agg(P0 + 60_000, 1, 50, "legacy_batch", 400),  # failed
        ],
    )
    wh.append(
        "legacy_speed",
        [
            agg(P0, 1, 7, "legacy_speed", 0),
            agg(P0 + 20_000, 4, 2, "legacy_speed", 0),  # period 0: batch wins
            agg(P0 + 60_000, 1, 4, "legacy_speed", 0, emitted_at=1),
            agg(P0 + 60_000, 1, 8, "legacy_speed", 0, emitted_at=2),
            agg(P0 + 120_000, 5, 1, "legacy_speed", 0, event_type="reply"),
        ],
    )
    return {
        (P0, 1, "like", 6, "legacy_batch"),
        (P0 + 60_000, 1, "like", 8, "legacy_speed"),
        (P0 + 120_000, 5, "reply", 1, "legacy_speed"),
    }


SCENARIOS = {"simple": simple, "reruns": reruns}
KEY_SQL = "SELECT epoch_ms(window_start), tweet_id, event_type, count, pipeline FROM {}"


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_batch_value_wins_for_finished_periods_and_speed_serves_the_rest(tmp_path, scenario):
    wh = Warehouse(tmp_path)
    expected = SCENARIOS[scenario](wh)
    con = connect_with_legacy_views(wh, WINDOW_MS)
    assert set(con.execute(KEY_SQL.format("legacy_serving")).fetchall()) == expected


def test_key_the_finished_batch_never_saw_is_absent_not_the_speed_value(tmp_path):
    wh = Warehouse(tmp_path)
    simple(wh)
    con = connect_with_legacy_views(wh, WINDOW_MS)
    assert con.execute("SELECT count(*) FROM legacy_serving WHERE tweet_id = 4").fetchone()[0] == 0


def test_serving_view_has_the_aggregate_shape_and_exists_on_an_empty_warehouse(tmp_path):
    con = Warehouse(tmp_path).connect(WINDOW_MS, views=LEGACY_VIEWS)
    assert con.execute("SELECT count(*) FROM legacy_serving").fetchone()[0] == 0
    columns = [row[0] for row in con.execute("DESCRIBE legacy_serving").fetchall()]
    assert columns == [
        "window_start",
        "window_end",
        "tweet_id",
        "event_type",
        "count",
        "pipeline",
        "emitted_at",
        "pane",
        "pane_index",
    ]


def _bigquery_tables_in_duckdb(wh: Warehouse):
    """The warehouse's tables (and current views, as tables) under proj.ds, as BigQuery sees them."""
    con = connect_with_legacy_views(wh, WINDOW_MS)
    con.execute("ATTACH ':memory:' AS proj")
    con.execute("CREATE SCHEMA proj.ds")
    for name in (
        "legacy_batch",
        "legacy_speed",
        "batch_runs",
        "legacy_batch_current",
        "legacy_speed_current",
    ):
        con.execute(f"CREATE TABLE proj.ds.{name} AS SELECT * FROM {name}")
    return con


def _run_bigquery(con, sql: str) -> set[tuple]:
    duck = sqlglot.transpile(sql, read="bigquery", write="duckdb")[0]
    return set(con.execute(KEY_SQL.format(f"({duck})")).fetchall())


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_bigquery_sql_gives_the_duckdb_views_result(tmp_path, scenario):
    wh = Warehouse(tmp_path)
    expected = SCENARIOS[scenario](wh)
    con = _bigquery_tables_in_duckdb(wh)
    assert _run_bigquery(con, bigquery_sql("proj", "ds", PERIOD_MS // 1000)) == expected


def test_bigquery_sql_renders_every_placeholder():
    sql = bigquery_sql("my-project", "legacy", 3600)
    assert "${" not in sql and "`my-project.legacy.batch_runs`" in sql and "3600" in sql


def overlapping(wh: Warehouse) -> set[tuple]:
    """The batch period changed from 60 s to 30 s: two finished runs cover [P0, P0+30 s)."""
    half = run(0, 500, "FINISHED")
    half["period_end"] = P0 + PERIOD_MS // 2
    wh.append("batch_runs", [run(0, 100, "FINISHED"), half])
    wh.append(
        "legacy_batch",
        [
            agg(P0, 1, 5, "legacy_batch", 100),
            agg(P0 + 40_000, 2, 3, "legacy_batch", 100),
            agg(P0 + 10_000, 3, 9, "legacy_batch", 500),
        ],
    )
    wh.append(
        "legacy_speed", [agg(P0 + 50_000, 4, 2, "legacy_speed", 0), agg(P0 + 70_000, 4, 1, "legacy_speed", 0)]
    )
    return {
        (P0, 1, "like", 5, "legacy_batch"),
        (P0 + 40_000, 2, "like", 3, "legacy_batch"),
        (P0 + 10_000, 3, "like", 9, "legacy_batch"),
        (P0 + 70_000, 4, "like", 1, "legacy_speed"),
    }


@pytest.mark.parametrize("scenario", [*SCENARIOS, "overlapping"])
def test_the_numpy_form_of_the_rule_picks_the_rows_of_the_view(tmp_path, scenario):
    """`served_batch`/`served_speed` (what the serving API applies in memory) keep exactly
    the rows `legacy_serving` holds, also when finished periods overlap."""
    wh = Warehouse(tmp_path)
    expected = {**SCENARIOS, "overlapping": overlapping}[scenario](wh)
    con = connect_with_legacy_views(wh, WINDOW_MS)
    assert set(con.execute(KEY_SQL.format("legacy_serving")).fetchall()) == expected
    finished = FinishedPeriods.of(con.sql("SELECT * FROM batch_runs").to_arrow_table())
    picked = set()
    for table, current in (("legacy_speed", "legacy_speed_current"), ("legacy_batch", "legacy_batch")):
        rows = con.execute(
            "SELECT epoch_ms(window_start), tweet_id, event_type, count, pipeline, pane_index "
            f"FROM {current} QUALIFY row_number() OVER (PARTITION BY window_start, tweet_id, event_type, "
            "pane_index ORDER BY emitted_at DESC) = 1"
        ).fetchall()
        ws = np.array([r[0] for r in rows], np.int64)
        pane = np.array([r[5] for r in rows], np.int64)
        keep = served_speed(ws, finished) if table == "legacy_speed" else served_batch(ws, pane, finished)
        picked |= {r[:5] for r, k in zip(rows, keep.tolist(), strict=True) if k}
    assert picked == expected


def test_a_plain_connection_has_no_legacy_views(tmp_path):
    """Views come from the caller, never from an import: without `views` there is none."""
    con = Warehouse(tmp_path).connect(WINDOW_MS)
    names = {row[0] for row in con.execute("SELECT view_name FROM duckdb_views()").fetchall()}
    assert "truth" in names and not names & {"legacy_serving", "legacy_batch_served"}
