"""The pure stages of the legacy speed job, importable in both venvs and tested without Flink.

The Flink job (`job.py`) only wires these together: parse a Kafka record or reject it,
turn a fired window into an aggregate row, turn a late event into a `speed_late` row, and
write a buffer of rows to the warehouse as one Parquet segment.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from pipelines.events import BadRecord, Interaction, now_ms, one_line, parse_or_reject, raw_bytes
from pipelines.rows import (
    AGGREGATE_SCHEMA,
    DEAD_LETTER_SCHEMA,
    SPEED_LATE_SCHEMA,
    table_from_rows,
    window_start_ms,
)
from pipelines.warehouse import Warehouse

PIPELINE = "legacy_speed"
AGGREGATE_TABLE = "legacy_speed"
LATE_TABLE = "speed_late"
DEAD_LETTER_TABLE = "dead_letter"

TABLE_SCHEMAS = {
    AGGREGATE_TABLE: AGGREGATE_SCHEMA,
    LATE_TABLE: SPEED_LATE_SCHEMA,
    DEAD_LETTER_TABLE: DEAD_LETTER_SCHEMA,
}


class SpeedEvent(NamedTuple):
    """What the windows need of an interaction (a Flink tuple: tweet_id, event_type, time, id)."""

    tweet_id: int
    event_type: str
    event_time: int
    event_id: str


def parse_record(payload: bytes | str, received_at_ms: int | None) -> SpeedEvent | BadRecord:
    """The event in one Kafka record, or its dead-letter record (never raises).

    The record is judged in its one-line form, the bytes the bridge publishes and the
    archiver writes, so that every arm dead-letters the same payload with the same reason."""
    result = parse_or_reject(
        one_line(raw_bytes(payload)),
        PIPELINE,
        received_at_ms if received_at_ms and received_at_ms > 0 else None,
    )
    if isinstance(result, Interaction):
        return SpeedEvent(result.tweet_id, result.event_type, result.event_time, result.event_id)
    return result


def dead_letter_row(record: BadRecord) -> dict[str, Any]:
    return {
        "payload": record.payload,
        "error": record.error,
        "pipeline": record.pipeline,
        "failed_at": record.failed_at_ms,
    }


def aggregate_row(
    window_start: int, window_end: int, tweet_id: int, event_type: str, count: int
) -> dict[str, Any]:
    """A fired event-time window as an aggregate row; emitted_at is stamped at write time.

    Flink fires each window once (no allowed lateness), so the pane is ON_TIME, index 0.
    """
    return {
        "window_start": window_start,
        "window_end": window_end,
        "tweet_id": tweet_id,
        "event_type": event_type,
        "count": count,
        "pipeline": PIPELINE,
        "emitted_at": None,
        "pane": "ON_TIME",
        "pane_index": 0,
    }


def late_row(event: SpeedEvent, window_ms: int, dropped_at_ms: int | None = None) -> dict[str, Any]:
    return {
        "event_id": event.event_id,
        "event_time": event.event_time,
        "event_type": event.event_type,
        "tweet_id": event.tweet_id,
        "window_start": window_start_ms(event.event_time, window_ms),
        "pipeline": PIPELINE,
        "dropped_at": dropped_at_ms if dropped_at_ms is not None else now_ms(),
    }


def write_rows(warehouse_root: str, table: str, rows: list[dict[str, Any]], writer: str) -> int:
    """Write buffered rows of one table as one segment; returns the number of rows written."""
    if not rows:
        return 0
    stamp = now_ms()
    if table == AGGREGATE_TABLE:
        rows = [{**row, "emitted_at": stamp} for row in rows]
    Warehouse(warehouse_root).append(table, table_from_rows(rows, TABLE_SCHEMAS[table]), writer=writer)
    return len(rows)


def flush_due(buffered: int, oldest_ms: int | None, now: int, flush_ms: int, max_rows: int) -> bool:
    """Whether a sink buffer should be written now: old enough, or large enough."""
    if buffered == 0 or oldest_ms is None:
        return False
    return buffered >= max_rows or now - oldest_ms >= flush_ms
