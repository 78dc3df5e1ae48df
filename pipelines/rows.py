"""Row shapes every arm writes (DESIGN.md 2.3), as Arrow schemas.

In Python, rows are plain dicts whose timestamp columns hold epoch milliseconds; the
table builders turn them into microsecond UTC timestamps on the way to Parquet.
"""

from __future__ import annotations

from typing import Iterable, Mapping

import pyarrow as pa

TS = pa.timestamp("us", tz="UTC")

AGGREGATE_SCHEMA = pa.schema(
    [
        ("window_start", TS),
        ("window_end", TS),
        ("tweet_id", pa.int64()),
        ("event_type", pa.string()),
        ("count", pa.int64()),
        ("pipeline", pa.string()),
        ("emitted_at", TS),
        ("pane", pa.string()),
        ("pane_index", pa.int64()),
    ]
)
DEAD_LETTER_SCHEMA = pa.schema(
    [("payload", pa.binary()), ("error", pa.string()), ("pipeline", pa.string()), ("failed_at", TS)]
)
TRUTH_LEDGER_SCHEMA = pa.schema(
    [("event_id", pa.string()), ("event_time", TS), ("event_type", pa.string()), ("tweet_id", pa.int64())]
)
VALIDATION_RUNS_SCHEMA = pa.schema(
    [
        ("run_id", pa.string()),
        ("started_at", TS),
        ("finished_at", TS),
        ("verdict", pa.string()),  # PASS | FAIL | INCONCLUSIVE
        ("left_arm", pa.string()),
        ("right_arm", pa.string()),
        ("reference_arm", pa.string()),
        ("keys_total", pa.int64()),
        ("keys_final", pa.int64()),
        ("keys_unexplained", pa.int64()),
        ("unexplained_rate", pa.float64()),
        ("report_path", pa.string()),
    ]
)
# One row per legacy batch run and status change (RUNNING, then FINISHED or FAILED); the
# legacy views serve, per period, the rows of its latest FINISHED run (by pane_index).
BATCH_RUNS_SCHEMA = pa.schema(
    [
        ("run_id", pa.string()),
        ("period_start", TS),
        ("period_end", TS),
        ("started_at", TS),
        ("finished_at", TS),
        ("lines_read", pa.int64()),
        ("events_counted", pa.int64()),
        ("duplicates_removed", pa.int64()),
        ("late_dropped", pa.int64()),
        ("dead_lettered", pa.int64()),
        ("status", pa.string()),  # RUNNING | FINISHED | FAILED | WAITING
        ("pane_index", pa.int64()),  # the pane_index of the run's legacy_batch rows
        ("reason", pa.string()),  # why a run FAILED or is WAITING (e.g. no archive parts yet)
    ]
)
# One row per event the legacy speed layer dropped as later than its watermark.
SPEED_LATE_SCHEMA = pa.schema(
    [
        ("event_id", pa.string()),
        ("event_time", TS),
        ("event_type", pa.string()),
        ("tweet_id", pa.int64()),
        ("window_start", TS),
        ("pipeline", pa.string()),
        ("dropped_at", TS),
    ]
)

PIPELINES = ("legacy_batch", "legacy_speed", "kappa_stream", "kappa_backfill", "truth")
PANES = ("EARLY", "ON_TIME", "LATE", "FINAL")
AGGREGATE_TABLES = ("legacy_batch", "legacy_speed", "kappa_stream", "kappa_backfill")
KEY_COLUMNS = ("window_start", "tweet_id", "event_type")


def window_start_ms(event_time_ms: int, window_ms: int) -> int:
    """Start of the tumbling window holding `event_time_ms` (windows aligned to the epoch)."""
    return event_time_ms - event_time_ms % window_ms


# Columns added later to a shape: rows written by older code may lack them (null).
OPTIONAL_COLUMNS = frozenset({"reason"})


def table_from_rows(rows: Iterable[Mapping[str, object]], schema: pa.Schema) -> pa.Table:
    """An Arrow table of `schema` from dict rows; timestamp columns given in epoch ms."""
    rows = list(rows)
    arrays = []
    for column in schema:
        if column.name in OPTIONAL_COLUMNS:
            values = [row.get(column.name) for row in rows]
        else:
            values = [row[column.name] for row in rows]
        if pa.types.is_timestamp(column.type):
            micros = [None if v is None else int(v) * 1000 for v in values]  # type: ignore[call-overload]
            arrays.append(pa.array(micros, pa.int64()).cast(column.type))
        else:
            arrays.append(pa.array(values, column.type))
    return pa.Table.from_arrays(arrays, schema=schema)
