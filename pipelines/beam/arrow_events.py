"""The Kappa rules over Arrow batches: what the composites run on bounded input.

The verdict on every line is the one `pipelines.events.parse_event` gives (tests/kappa/
test_arrow_parser.py checks it over a corpus of good, bad and mutated lines). The rule
table is `pipelines.event_rules` (the fields and their kinds, MIN_EVENT_TIME_MS,
MAX_FUTURE_MS), the one `parse_event` and the validator's SQL apply too:

- a line in the canonical shape `Interaction.to_json()` writes is found and read by
  `pipelines.beam.event_lines` (vectorised, mostly NumPy with one RE2 expression built from
  that table); its event_time is then checked (not before MIN_EVENT_TIME_MS and at most
  MAX_FUTURE_MS after arrival);
- every other line (bad ones, and valid ones in another shape) goes through `parse_event`
  itself, one by one, so rejected lines get its exact error message.

A batch's events stay in line order. Dedup is by exact event_id string, like the stream's,
through `event_key`; `bucket_of` spreads keys over buckets by their last two bytes, so
every copy of one event_id lands in the same bucket however many part files it is spread
over. Window starts are `pipelines.rows.window_start_ms` over a column (`window_starts`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipelines.beam.event_lines import EVENTS_SCHEMA, canonical_events, event_key, event_types, value_offsets
from pipelines.event_rules import EVENT_TYPES, MAX_FUTURE_MS, MIN_EVENT_TIME_MS
from pipelines.events import (
    BadEvent,
    BadRecord,
    Interaction,
    now_ms,
    parse_event,
)
from pipelines.rows import AGGREGATE_SCHEMA

_TYPE_CODES = {name: code for code, name in enumerate(EVENT_TYPES)}
COUNT_KEYS = ["window_start", "tweet_id", "event_type"]


@dataclass
class LineBatch:
    """Raw lines of one archive part (each may keep its trailing newline), as they arrived."""

    lines: pa.Array  # binary
    received_at_ms: int
    order: int  # the part's position in arrival order: "first copy" means first here

    def line(self, i: int) -> bytes:
        value = self.lines[i].as_py()
        return value[:-1] if value.endswith(b"\n") else value


@dataclass
class Windowed:
    """Rows with a `window_start` column (windowed events, or counts) of windows `window_ms` long."""

    table: pa.Table
    window_ms: int


@dataclass
class EventBatch:
    """Valid events (EVENTS_SCHEMA) of one LineBatch, in line order."""

    events: pa.Table
    order: int


def lines_of_blob(data: bytes) -> pa.Array:
    """The lines of a whole part file's bytes, as `archive.read_lines` cuts them (an empty
    line is an empty record, the final newline ends none), without copying: an Arrow binary
    array over `data` whose values keep their trailing newline (JSON whitespace)."""
    if data and not data.endswith(b"\n"):
        data += b"\n"
    if len(data) >= 2**31:
        raise ValueError("a part file over 2 GiB: split it")
    ends = np.flatnonzero(np.frombuffer(data, np.uint8) == 10) + 1
    offsets = np.concatenate((np.zeros(1, np.int64), ends)).astype(np.int32)
    return pa.Array.from_buffers(pa.binary(), len(ends), [None, pa.py_buffer(offsets), pa.py_buffer(data)])


def parse_batch(batch: LineBatch, pipeline: str) -> tuple[EventBatch, list[BadRecord]]:
    """Validate a batch of raw lines: the valid events (in line order), and the rest as BadRecords."""
    events, positions = canonical_events(batch.lines)
    in_range = pc.and_(
        pc.greater_equal(events["event_time"], MIN_EVENT_TIME_MS),
        pc.less_equal(events["event_time"], batch.received_at_ms + MAX_FUTURE_MS),
    ).to_numpy(zero_copy_only=False)
    if not in_range.all():
        events, positions = events.filter(in_range), positions[in_range]
    # Lines left for the exact parser: not canonical, or canonical and out of range.
    slow_at = np.setdiff1d(np.arange(len(batch.lines)), positions, assume_unique=True)
    slow_events, good_at, rejected = _parse_slowly(batch, slow_at, pipeline)
    if slow_events.num_rows:
        positions = np.concatenate((positions, good_at))
        events = pa.concat_tables([events, slow_events]).take(np.argsort(positions, kind="stable"))
    return EventBatch(events, batch.order), rejected


def _parse_slowly(
    batch: LineBatch, positions: np.ndarray, pipeline: str
) -> tuple[pa.Table, np.ndarray, list[BadRecord]]:
    """`parse_event` over the lines at `positions`: the good ones' events and positions, the rest rejected."""
    good: list[Interaction] = []
    good_at: list[int] = []
    rejected = []
    for i in positions.tolist():
        line = batch.line(i)
        try:
            good.append(parse_event(line, batch.received_at_ms))
            good_at.append(i)
        except BadEvent as exc:
            rejected.append(BadRecord(line, str(exc), pipeline, now_ms()))
    return events_table(good), np.array(good_at, np.int64), rejected


def events_table(events: list[Interaction]) -> pa.Table:
    """Interactions as an EVENTS_SCHEMA table."""
    return pa.table(
        [
            pa.array([event_key(e.event_id) for e in events], pa.binary()),
            pa.array([e.event_time for e in events], pa.int64()),
            event_types([_TYPE_CODES[e.event_type] for e in events]),
            pa.array([e.tweet_id for e in events], pa.int64()),
        ],
        schema=EVENTS_SCHEMA,
    )


def in_event_time_range(events: pa.Table, start_ms: int | None, end_ms: int | None) -> pa.Table:
    """Events whose event_time is in [start_ms, end_ms) (either bound optional)."""
    mask = None
    if start_ms is not None:
        mask = pc.greater_equal(events["event_time"], start_ms)
    if end_ms is not None:
        upper = pc.less(events["event_time"], end_ms)
        mask = upper if mask is None else pc.and_(mask, upper)
    return events if mask is None else events.filter(mask)


def bucket_of(keys: pa.ChunkedArray | pa.Array, buckets: int) -> pa.Array:
    """A bucket in [0, buckets) per event key, from its last two bytes (same id, same bucket)."""
    chunks = keys.chunks if isinstance(keys, pa.ChunkedArray) else [keys]
    codes = [_last_two_bytes(chunk) for chunk in chunks]
    return pa.array(np.concatenate(codes) % buckets if codes else np.zeros(0, np.int64))


def _last_two_bytes(strings: pa.Array) -> np.ndarray:
    """last byte + 256 * the byte before, per string (0 for a missing byte), read off the buffers."""
    offsets, data = value_offsets(strings), strings.buffers()[2]
    values = np.frombuffer(data, np.uint8) if data is not None and data.size else np.zeros(1, np.uint8)
    ends, lengths = offsets[1:].astype(np.int64), np.diff(offsets)
    last = np.where(lengths >= 1, values[np.clip(ends - 1, 0, values.size - 1)], 0).astype(np.int64)
    before = np.where(lengths >= 2, values[np.clip(ends - 2, 0, values.size - 1)], 0).astype(np.int64)
    return last + 256 * before


def modulo(values: pa.Array | pa.ChunkedArray, divisor: int) -> pa.Array:
    """values % divisor for non-negative integers (Arrow's integer divide truncates)."""
    return pc.subtract(values, pc.multiply(pc.divide(values, divisor), divisor))


def split_by(table: pa.Table, keys: pa.Array) -> dict[int, pa.Table]:
    """The rows of `table` per distinct value of `keys` (one int per row), in their order."""
    if table.num_rows == 0:
        return {}
    values = np.asarray(keys)
    order = np.argsort(values, kind="stable")
    bounds = [0, *(np.flatnonzero(np.diff(values[order])) + 1), len(order)]
    # One take per key (not slices of one take: a slice pickles its whole buffers).
    return {
        int(values[order[start]]): table.take(order[start:end])
        for start, end in zip(bounds[:-1], bounds[1:], strict=True)
    }


def split_by_bucket(events: pa.Table, buckets: int) -> dict[int, pa.Table]:
    """The events of a batch, split by event_id bucket."""
    return split_by(events, bucket_of(events["event_key"], buckets)) if events.num_rows else {}


def first_of_each_id(tables: list[pa.Table]) -> tuple[pa.Table, int]:
    """Keep the first row of each event key (in the order given); the duplicates removed."""
    events = pa.concat_tables(tables) if len(tables) > 1 else tables[0]
    if events.num_rows == 0:
        return events, 0
    # Dictionary codes are numbered in order of first occurrence (one memo over all chunks):
    # a row is a first copy when its code exceeds every code before it.
    chunks = pc.dictionary_encode(events["event_key"]).chunks
    codes = np.concatenate([chunk.indices.to_numpy() for chunk in chunks])
    first = np.empty(len(codes), np.bool_)
    first[0] = True
    np.greater(codes[1:], np.maximum.accumulate(codes)[:-1], out=first[1:])
    kept = events.filter(first) if not first.all() else events
    return kept, events.num_rows - kept.num_rows


def window_starts(event_time: pa.Array | pa.ChunkedArray, window_ms: int) -> pa.Array:
    """`pipelines.rows.window_start_ms` over a column of non-negative event times."""
    return pc.subtract(event_time, modulo(event_time, window_ms))


def count_per_key(keyed: pa.Table) -> pa.Table:
    """Rows with COUNT_KEYS -> (window_start, tweet_id, event_type, count)."""
    counts = keyed.select(COUNT_KEYS).group_by(COUNT_KEYS).aggregate([([], "count_all")])
    return counts.rename_columns([*COUNT_KEYS, "count"])


def sum_counts(partials: list[pa.Table]) -> pa.Table:
    """Partial counts of disjoint event sets -> one count per key."""
    table = pa.concat_tables(partials) if len(partials) > 1 else partials[0]
    summed = table.group_by(COUNT_KEYS).aggregate([("count", "sum")])
    return summed.rename_columns([*COUNT_KEYS, "count"])


def final_rows(counts: pa.Table, window_ms: int, pipeline: str, pane_index: int) -> pa.Table:
    """Counts -> AGGREGATE_SCHEMA rows with pane FINAL."""
    n = counts.num_rows
    start_us = pc.multiply(counts["window_start"], 1000)
    ts = AGGREGATE_SCHEMA.field("window_start").type
    return pa.table(
        {
            "window_start": pc.cast(start_us, ts),
            "window_end": pc.cast(pc.add(start_us, window_ms * 1000), ts),
            "tweet_id": counts["tweet_id"],
            "event_type": pc.cast(counts["event_type"], pa.string()),
            "count": pc.cast(counts["count"], pa.int64()),
            "pipeline": pa.array([pipeline] * n, pa.string()),
            "emitted_at": pa.array([now_ms() * 1000] * n, pa.int64()).cast(ts),
            "pane": pa.array(["FINAL"] * n, pa.string()),
            "pane_index": pa.array([pane_index] * n, pa.int64()),
        },
        schema=AGGREGATE_SCHEMA,
    )


def row_dicts(rows: pa.Table) -> list[dict]:
    """AGGREGATE_SCHEMA rows as dict rows with epoch-ms timestamps (what the stream's sinks take)."""
    for name in ("window_start", "window_end", "emitted_at"):
        ms = pc.divide(pc.cast(rows[name], pa.int64()), 1000)
        rows = rows.set_column(rows.schema.get_field_index(name), name, ms)
    return rows.to_pylist()
