"""Vectorised parse, dedup and count for the backfill: whole part files at a time, in Arrow.

The verdict on every line is the one `pipelines.events.parse_event` gives (tested over a
corpus of good and bad lines):

- a line in the canonical shape `Interaction.to_json()` writes (fixed key order, no
  whitespace, canonical UUID, known event_type and client, ids of at most 18 digits) is
  matched by one RE2 expression in C++; its numeric values are then checked with Arrow
  compute (event_time not before 2006-03-21 and at most a day after arrival). For such a
  line those are the only checks `parse_event` can fail: it has seven distinct keys,
  ASCII only, no escapes, integers that are positive and fit in int64;
- every other line (bad ones, and valid ones in another shape) goes through
  `parse_event` itself, one by one, so rejected lines get its exact error message.

Dedup is by exact event_id string, like the stream's `DedupByEventId`. `bucket_of`
spreads event_ids over buckets by their last two characters, so every copy of one
event_id lands in the same bucket however many part files it is spread over.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipelines.events import (
    CLIENTS,
    EVENT_TYPES,
    MAX_FUTURE_MS,
    MIN_EVENT_TIME_MS,
    BadEvent,
    BadRecord,
    now_ms,
    parse_event,
)
from pipelines.rows import AGGREGATE_SCHEMA

_HEX = "[0-9a-fA-F]"
_ID = "[1-9][0-9]{0,17}"  # at most 18 digits: always a positive int64
CANONICAL = (
    r'^\{"event_id":"'
    + "-".join(f"{_HEX}{{{n}}}" for n in (8, 4, 4, 4, 12))
    + rf'","event_time":{_ID}'
    + r',"event_type":"(?:'
    + "|".join(EVENT_TYPES)
    + ")"
    + rf'","tweet_id":{_ID},"user_id":{_ID},"author_id":{_ID}'
    + r',"client":"(?:'
    + "|".join(CLIENTS)
    + r')"\}\n?$'  # a trailing newline is JSON whitespace: parse_blob keeps it on each line
)
# Fixed offsets in a canonical line: the UUID, then the event_time digits.
_ID_AT, _ID_END, _TIME_AT = 13, 49, 64
_TYPE_PREFIX, _TWEET_PREFIX = len('"event_type":"'), len('"tweet_id":')
_END = 1 << 20  # "to the end" (binary_slice without a stop is broken in pyarrow 25)
EVENTS_SCHEMA = pa.schema(
    [
        ("event_id", pa.string()),
        ("event_time", pa.int64()),
        ("event_type", pa.string()),
        ("tweet_id", pa.int64()),
    ]
)
_PAIRS = pa.array([a + b for a in "0123456789abcdefABCDEF" for b in "0123456789abcdefABCDEF"])


@dataclass
class ParsedPart:
    events: pa.Table  # EVENTS_SCHEMA, in line order
    rejected: list[BadRecord]
    lines: int


def parse_lines(lines: list[bytes], received_at_ms: int, pipeline: str) -> ParsedPart:
    """Validate raw lines in bulk: the valid events as an Arrow table, the rest as BadRecords."""
    return _parse_array(pa.array(lines, pa.binary()), lines.__getitem__, received_at_ms, pipeline)


def parse_blob(data: bytes, received_at_ms: int, pipeline: str) -> ParsedPart:
    """`parse_lines` over the lines of a whole part file's bytes (as `archive.read_lines`
    cuts them: an empty line is an empty record, the final newline ends none).

    The lines are cut without copying: an Arrow binary array over `data` whose values
    keep their trailing newline (JSON whitespace, so the verdict is unchanged).
    """
    if data and not data.endswith(b"\n"):
        data += b"\n"
    if len(data) >= 2**31:
        raise ValueError("a part file over 2 GiB: split it")
    ends = np.flatnonzero(np.frombuffer(data, np.uint8) == 10) + 1
    starts = np.concatenate((np.zeros(1, np.int64), ends[:-1]))
    offsets = np.concatenate((np.zeros(1, np.int64), ends)).astype(np.int32)
    raw = pa.Array.from_buffers(pa.binary(), len(ends), [None, pa.py_buffer(offsets), pa.py_buffer(data)])

    def line_at(i: int) -> bytes:
        return data[starts[i] : ends[i] - 1]

    return _parse_array(raw, line_at, received_at_ms, pipeline)


def _parse_array(
    raw: pa.Array, line_at: Callable[[int], bytes], received_at_ms: int, pipeline: str
) -> ParsedPart:
    matched = pc.match_substring_regex(raw, CANONICAL)
    all_matched = pc.all(matched).as_py() is not False
    fast_events, in_range = _canonical_events(raw if all_matched else pc.filter(raw, matched), received_at_ms)
    # Lines left for the exact parser: unmatched ones and matched ones out of range.
    matched_positions = pc.indices_nonzero(matched)
    out_of_range = pc.filter(matched_positions, pc.invert(in_range)).to_pylist()
    slow_positions = sorted(pc.indices_nonzero(pc.invert(matched)).to_pylist() + out_of_range)
    slow_events, rejected = _parse_slowly([line_at(i) for i in slow_positions], received_at_ms, pipeline)
    events = pa.concat_tables([fast_events, slow_events]) if slow_events.num_rows else fast_events
    return ParsedPart(events, rejected, len(raw))


def _canonical_events(lines: pa.Array, received_at_ms: int) -> tuple[pa.Table, pa.Array]:
    """Fields of lines known to match CANONICAL, cut at fixed offsets and commas."""
    head = pc.split_pattern(pc.binary_slice(lines, _TIME_AT, _END), b",", max_splits=3)
    event_time = _to_int(pc.list_element(head, 0))
    in_range = pc.and_(
        pc.greater_equal(event_time, MIN_EVENT_TIME_MS),
        pc.less_equal(event_time, received_at_ms + MAX_FUTURE_MS),
    )
    events = pa.table(
        {
            "event_id": pc.cast(pc.binary_slice(lines, _ID_AT, _ID_END), pa.string()),
            "event_time": event_time,
            "event_type": pc.cast(pc.binary_slice(pc.list_element(head, 1), _TYPE_PREFIX, -1), pa.string()),
            "tweet_id": _to_int(pc.binary_slice(pc.list_element(head, 2), _TWEET_PREFIX, _END)),
        },
        schema=EVENTS_SCHEMA,
    )
    return events.filter(in_range), in_range


def _to_int(digits: pa.Array) -> pa.Array:
    return pc.cast(pc.cast(digits, pa.string()), pa.int64())


def _parse_slowly(lines: list[bytes], received_at_ms: int, pipeline: str) -> tuple[pa.Table, list[BadRecord]]:
    good: dict[str, list] = {name: [] for name in EVENTS_SCHEMA.names}
    rejected = []
    for line in lines:
        try:
            event = parse_event(line, received_at_ms)
        except BadEvent as exc:
            rejected.append(BadRecord(line, str(exc), pipeline, now_ms()))
            continue
        for name in EVENTS_SCHEMA.names:
            good[name].append(getattr(event, name))
    return pa.table(good, schema=EVENTS_SCHEMA), rejected


def in_event_time_range(events: pa.Table, start_ms: int | None, end_ms: int | None) -> pa.Table:
    """Events whose event_time is in [start_ms, end_ms) (either bound optional)."""
    mask = None
    if start_ms is not None:
        mask = pc.greater_equal(events["event_time"], start_ms)
    if end_ms is not None:
        upper = pc.less(events["event_time"], end_ms)
        mask = upper if mask is None else pc.and_(mask, upper)
    return events if mask is None else events.filter(mask)


def bucket_of(event_ids: pa.ChunkedArray | pa.Array, buckets: int) -> pa.Array:
    """A bucket in [0, buckets) per event_id, from its last two characters (same id, same bucket)."""
    tail = pc.utf8_slice_codeunits(event_ids, -2)
    index = pc.fill_null(pc.index_in(tail, value_set=_PAIRS), 0)
    return _mod(pc.cast(index, pa.int64()), buckets)


def _mod(values: pa.Array | pa.ChunkedArray, divisor: int) -> pa.Array:
    """values % divisor for non-negative integers (Arrow's integer divide truncates)."""
    return pc.subtract(values, pc.multiply(pc.divide(values, divisor), divisor))


def split_by_bucket(events: pa.Table, buckets: int) -> dict[int, pa.Table]:
    """The events of a part, split by event_id bucket."""
    if events.num_rows == 0:
        return {}
    keys = bucket_of(events["event_id"], buckets)
    out = {}
    for bucket in pc.unique(keys).to_pylist():
        out[bucket] = events.filter(pc.equal(keys, bucket))
    return out


def dedup_and_count(tables: list[pa.Table], window_ms: int) -> tuple[pa.Table, int]:
    """Keep the first row of each event_id (in the order given), count per window/tweet/type.

    Returns a table (window_start ms, tweet_id, event_type, count) and the duplicates removed.
    """
    events = pa.concat_tables(tables) if len(tables) > 1 else tables[0]
    ids = events["event_id"]
    # index_in gives, for each distinct id, the position of its first occurrence.
    first_rows = pc.index_in(pc.unique(ids), value_set=ids)
    first = events.take(first_rows) if len(first_rows) < events.num_rows else events
    duplicates = events.num_rows - first.num_rows
    event_time = first["event_time"]
    keyed = pa.table(
        {
            "window_start": pc.subtract(event_time, _mod(event_time, window_ms)),
            "tweet_id": first["tweet_id"],
            "event_type": first["event_type"],
        }
    )
    counts = keyed.group_by(["window_start", "tweet_id", "event_type"]).aggregate([([], "count_all")])
    return counts.rename_columns(["window_start", "tweet_id", "event_type", "count"]), duplicates


def sum_counts(partials: list[pa.Table]) -> pa.Table:
    """Partial counts of disjoint event sets -> one count per key."""
    if not partials:
        return pa.table(
            {
                "window_start": pa.array([], pa.int64()),
                "tweet_id": pa.array([], pa.int64()),
                "event_type": pa.array([], pa.string()),
                "count": pa.array([], pa.int64()),
            }
        )
    table = pa.concat_tables(partials)
    summed = table.group_by(["window_start", "tweet_id", "event_type"]).aggregate([("count", "sum")])
    return summed.rename_columns(["window_start", "tweet_id", "event_type", "count"])


def final_rows(counts: pa.Table, window_ms: int, pipeline: str, pane_index: int) -> pa.Table:
    """Counts -> AGGREGATE_SCHEMA rows with pane FINAL."""
    n = counts.num_rows
    start_us = pc.multiply(counts["window_start"], 1000)
    return pa.table(
        {
            "window_start": pc.cast(start_us, AGGREGATE_SCHEMA.field("window_start").type),
            "window_end": pc.cast(
                pc.add(start_us, window_ms * 1000), AGGREGATE_SCHEMA.field("window_end").type
            ),
            "tweet_id": counts["tweet_id"],
            "event_type": counts["event_type"],
            "count": pc.cast(counts["count"], pa.int64()),
            "pipeline": pa.array([pipeline] * n, pa.string()),
            "emitted_at": pa.array([now_ms() * 1000] * n, pa.int64()).cast(
                AGGREGATE_SCHEMA.field("emitted_at").type
            ),
            "pane": pa.array(["FINAL"] * n, pa.string()),
            "pane_index": pa.array([pane_index] * n, pa.int64()),
        },
        schema=AGGREGATE_SCHEMA,
    )
