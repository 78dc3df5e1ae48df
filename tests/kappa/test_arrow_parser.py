"""The bounded path's vectorised parser gives parse_event's verdict on every line (the two
implementations of one rule table, `pipelines.events`), and its dedup and counts are exact."""

from __future__ import annotations

import json
import random

import pyarrow as pa

from pipelines.beam.arrow_events import (
    LineBatch,
    bucket_of,
    count_per_key,
    event_key,
    first_of_each_id,
    lines_of_blob,
    parse_batch,
    split_by_bucket,
    sum_counts,
    window_starts,
)
from pipelines.events import BadEvent, parse_event
from pipelines.rows import window_start_ms
from tests.beam.sample import BASE_MS, bad_lines, good_variants, random_events
from tests.fuzz.hostile import boundary_events, hostile_payloads

RECEIVED = BASE_MS + 3_600_000


def parse_lines(lines: list[bytes], received_at_ms: int, pipeline: str):
    """(events table, rejected records, lines) of raw lines given one by one."""
    events, rejected = parse_batch(LineBatch(pa.array(lines, pa.binary()), received_at_ms, 0), pipeline)
    return events.events, rejected, len(lines)


def parse_blob(blob: bytes, received_at_ms: int, pipeline: str):
    """(events table, rejected records, lines) of a part file's bytes."""
    lines = lines_of_blob(blob)
    events, rejected = parse_batch(LineBatch(lines, received_at_ms, 0), pipeline)
    return events.events, rejected, len(lines)


def mutations(lines: list[bytes], n: int, seed: int = 3) -> list[bytes]:
    """Near misses of valid lines: one byte changed, dropped or duplicated, or a cut."""
    rng = random.Random(seed)
    alphabet = b'0123456789abcdefABCDEF{}[]":,.- \\eE+nutl\x00\xc3\xff'
    out = []
    for _ in range(n):
        line = bytearray(rng.choice(lines))
        i = rng.randrange(len(line))
        op = rng.randrange(4)
        if op == 0:
            line[i] = rng.choice(alphabet)
        elif op == 1:
            del line[i]
        elif op == 2:
            line.insert(i, rng.choice(alphabet))
        else:
            line = line[:i]
        out.append(bytes(line))
    return out


def expected(lines: list[bytes]) -> tuple[list[tuple], list[tuple]]:
    good, bad = [], []
    for line in lines:
        try:
            e = parse_event(line, RECEIVED)
            good.append((event_key(e.event_id), e.event_time, e.event_type, e.tweet_id))
        except BadEvent as exc:
            bad.append((line, str(exc)))
    return sorted(good), sorted(bad)


def test_batched_parser_equals_parse_event_on_good_bad_and_mutated_lines() -> None:
    valid = [e.to_json() for e in random_events(2000)] + good_variants()
    edge = [
        e.to_json()
        for e in random_events(5, start_ms=RECEIVED + 86_400_000 - 2, span_ms=4)  # at the future bound
    ] + [e.to_json() for e in random_events(3, start_ms=1_142_899_199_998, span_ms=4)]  # first-tweet bound
    hostile = [v for v in hostile_payloads(RECEIVED - 60_000).values() if v is not None]
    hostile += boundary_events(random_events(2, seed=9))  # valid, of 64 KiB - 1 and 64 KiB
    corpus = valid + edge + bad_lines() + hostile + mutations(valid[:200] + good_variants(), 3000)
    random.Random(1).shuffle(corpus)
    events, rejected, lines = parse_lines(corpus, RECEIVED, "kappa_backfill")
    good = sorted(zip(*(events[c].to_pylist() for c in events.column_names), strict=True))
    bad = sorted((r.payload, r.error) for r in rejected)
    want_good, want_bad = expected(corpus)
    assert lines == len(corpus)
    assert len(want_good) > 2000 and len(want_bad) > 1000
    assert good == want_good
    assert bad == want_bad
    assert {r.pipeline for r in rejected} == {"kappa_backfill"}


def test_same_event_id_same_bucket_and_dedup_across_parts() -> None:
    events = random_events(500)
    lines = [e.to_json() for e in events]
    part_a = parse_lines(lines[:300] + lines[:50], RECEIVED, "k")[0]
    part_b = parse_lines(lines[250:] + lines[100:120], RECEIVED, "k")[0]
    by_bucket: dict[int, list] = {}
    for part in (part_a, part_b):
        for bucket, table in split_by_bucket(part, 4).items():
            by_bucket.setdefault(bucket, []).append(table)
    partials, removed = [], 0
    for tables in by_bucket.values():
        first, duplicates = first_of_each_id(tables)
        keyed = first.append_column("window_start", window_starts(first["event_time"], 10_000))
        partials.append(count_per_key(keyed))
        removed += duplicates
    counts = sum_counts(partials)
    assert removed == 50 + 50 + 20
    assert sum(counts["count"].to_pylist()) == 500
    want: dict[tuple, int] = {}
    for e in events:
        key = (window_start_ms(e.event_time, 10_000), e.tweet_id, e.event_type)
        want[key] = want.get(key, 0) + 1
    got = dict(
        zip(
            zip(*(counts[c].to_pylist() for c in ("window_start", "tweet_id", "event_type")), strict=True),
            counts["count"].to_pylist(),
            strict=True,
        )
    )
    assert got == want
    ids = part_a["event_key"]
    assert bucket_of(ids, 4).to_pylist() == bucket_of(ids, 4).to_pylist()
    assert set(bucket_of(ids, 4).to_pylist()) == {0, 1, 2, 3}


def test_parse_blob_equals_parse_lines_with_empty_lines_and_no_final_newline() -> None:
    lines = [e.to_json() for e in random_events(300)] + bad_lines()[2:] + good_variants()
    random.Random(2).shuffle(lines)
    lines.insert(100, b"")  # an empty line is an empty record (an empty Kafka message)
    blob = b"\n".join(lines)
    blob_events, blob_rejected, blob_lines = parse_blob(blob, RECEIVED, "k")
    line_events, line_rejected, line_count = parse_lines(lines, RECEIVED, "k")
    assert blob_lines == line_count == len(lines)
    assert blob_events.sort_by("event_key").equals(line_events.sort_by("event_key"))
    assert sorted((r.payload, r.error) for r in blob_rejected) == sorted(
        (r.payload, r.error) for r in line_rejected
    )


def test_events_keep_line_order_whatever_path_each_line_took() -> None:
    """Canonical lines with a 13-digit event_time are checked in two pieces, other canonical
    lines by the whole expression, the rest by parse_event: the events come out in line order,
    with parse_event's verdict on each (received in 2286, so 12, 13 and 14 digits all occur)."""
    received = 10**13 + 3_600_000
    times = [10**13 + 5, 9_999_999_999_000, 10**13 + 7, 999_999_999_999, 10**13 + 9]  # 14, 13, 14, 12, 14
    canonical = [e.to_json() for e in random_events(len(times))]
    lines = [
        json.dumps({**json.loads(line), "event_time": t}, separators=(",", ":")).encode()
        for line, t in zip(canonical, times, strict=True)
    ]
    good = json.loads(good_variants()[2])
    lines.insert(2, json.dumps({**good, "event_time": 10**13 + 6}).encode())  # valid, not canonical
    events, rejected, _ = parse_lines(lines, received, "k")
    want = []
    for line in lines:
        try:
            e = parse_event(line, received)
            want.append((event_key(e.event_id), e.event_time, e.event_type, e.tweet_id))
        except BadEvent:
            pass
    assert list(zip(*(events[c].to_pylist() for c in events.column_names), strict=True)) == want
    assert [t for _, t, _, _ in want] == [10**13 + 5, 9_999_999_999_000, 10**13 + 6, 10**13 + 7, 10**13 + 9]
    assert [r.payload for r in rejected] == [lines[4]]  # the 12-digit one: before the first tweet
