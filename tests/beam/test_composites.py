"""One test per shared composite, on the real Beam runners (TestStream on BundleBasedDirectRunner)."""

from __future__ import annotations

import apache_beam as beam
import pyarrow.parquet as pq
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.test_stream import TestStream
from apache_beam.testing.util import assert_that, equal_to
from apache_beam.transforms import window

from pipelines.beam import (
    CountPerKey,
    DedupByEventId,
    ParseInteractions,
    ToPaneRows,
    WindowInteractions,
    WriteToWarehouse,
    dead_letter_row,
)
from pipelines.beam.arrow_events import EventBatch, event_key, events_table
from pipelines.beam.runner import counters_of
from pipelines.beam.sinks import rows_in_flight
from pipelines.events import BadRecord, parse_event
from pipelines.warehouse import Warehouse
from tests.beam.sample import BASE_MS, bad_lines, event, good_variants

S = 1000  # ms per second


def streaming() -> TestPipeline:
    options = PipelineOptions(runner="BundleBasedDirectRunner")
    options.view_as(StandardOptions).streaming = True
    return TestPipeline(options=options)


def ts(ms: int) -> float:
    return ms / 1000.0


def windowed_pane_rows(stream: TestStream, lateness_ms: int = 30_000, early_ms: int = 2_000):
    """TestStream -> the pane rows of 10 s windows, as (window_start, count, pane) triples."""

    def expand(p: beam.Pipeline) -> beam.PCollection:
        return (
            p
            | stream
            | DedupByEventId(60_000)
            | WindowInteractions(10_000, lateness_ms, early_ms)
            | CountPerKey()
            | ToPaneRows("kappa_stream", run_epoch_ms=1)
            | beam.Map(lambda r: (r["window_start"] - BASE_MS, r["count"], r["pane"]))
        )

    return expand


def test_parse_splits_events_and_dead_letters() -> None:
    received = BASE_MS + 60 * S
    inputs = [(line, received) for line in [*good_variants(), *bad_lines()]]
    with TestPipeline(runner="FnApiRunner") as p:
        parsed = p | beam.Create(inputs) | ParseInteractions("kappa_backfill")
        events = parsed.events | "Ids" >> beam.Map(lambda e: e.event_type)
        errors = parsed.dead_letter | beam.Map(lambda r: (r.payload, r.pipeline, bool(r.error)))
        stamps = parsed.events | "Stamp" >> beam.ParDo(_TimestampOf())
        assert_that(events, equal_to(["like"] * 9 + ["impression", "like"]), label="events")
        assert_that(
            errors, equal_to([(line, "kappa_backfill", True) for line in bad_lines()]), label="errors"
        )
        expected = [parse_event(line, received).event_time for line in good_variants()]
        assert_that(stamps, equal_to(expected), label="timestamps")


class _TimestampOf(beam.DoFn):
    def process(self, element, t=beam.DoFn.TimestampParam):
        yield t.micros // 1000


def test_dead_letter_row_shape() -> None:
    row = dead_letter_row(BadRecord(b"x", "not JSON", "kappa_stream", 5))
    assert row == {"payload": b"x", "error": "not JSON", "pipeline": "kappa_stream", "failed_at": 5}


def test_duplicate_inside_horizon_counted_once_and_after_horizon_again() -> None:
    first = event(BASE_MS + 1 * S, event_id="00000000-0000-4000-8000-000000000001")
    other = event(BASE_MS + 2 * S)
    stream = (
        TestStream()
        .advance_watermark_to(ts(BASE_MS))
        .add_elements([window.TimestampedValue(e, ts(e.event_time)) for e in (first, other, first)])
        .advance_watermark_to(ts(BASE_MS + 30 * S))
        .add_elements([window.TimestampedValue(first, ts(first.event_time))])  # still inside 60 s
        .advance_watermark_to(ts(BASE_MS + 62 * S))
        .add_elements([window.TimestampedValue(first, ts(first.event_time))])  # horizon passed
        .advance_watermark_to_infinity()
    )
    with streaming() as p:
        ids = p | stream | DedupByEventId(60_000) | beam.Map(lambda e: e.event_id)
        assert_that(ids, equal_to([first.event_id, other.event_id, first.event_id]))


def test_early_on_time_and_late_panes_and_drop_beyond_lateness() -> None:
    e = [event(BASE_MS + i * S, seed=i) for i in range(4)]
    late_ok = event(BASE_MS + 5 * S, seed=10)
    too_late = event(BASE_MS + 6 * S, seed=11)
    stream = (
        TestStream()
        .advance_watermark_to(ts(BASE_MS))
        .add_elements([window.TimestampedValue(x, ts(x.event_time)) for x in e[:2]])
        .advance_processing_time(5)  # early firing after 2 s of processing time
        .add_elements([window.TimestampedValue(x, ts(x.event_time)) for x in e[2:]])
        .advance_watermark_to(ts(BASE_MS + 15 * S))  # window [0,10) on time
        .add_elements([window.TimestampedValue(late_ok, ts(late_ok.event_time))])
        .advance_watermark_to(ts(BASE_MS + 41 * S))  # past end + 30 s lateness
        .add_elements([window.TimestampedValue(too_late, ts(too_late.event_time))])
        .advance_watermark_to_infinity()
    )
    with streaming() as p:
        rows = windowed_pane_rows(stream)(p)
        assert_that(rows, equal_to([(0, 2, "EARLY"), (0, 4, "ON_TIME"), (0, 5, "LATE")]))


def test_pane_index_increases_per_key_and_run() -> None:
    e = [event(BASE_MS + i * S, seed=i) for i in range(3)]
    stream = (
        TestStream()
        .advance_watermark_to(ts(BASE_MS))
        .add_elements([window.TimestampedValue(e[0], ts(e[0].event_time))])
        .advance_watermark_to(ts(BASE_MS + 12 * S))
        .add_elements([window.TimestampedValue(e[1], ts(e[1].event_time))])
        .add_elements([window.TimestampedValue(e[2], ts(e[2].event_time))])
        .advance_watermark_to_infinity()
    )
    with streaming() as p:
        rows = (
            p
            | stream
            | WindowInteractions(10_000, 30_000, 2_000)
            | CountPerKey()
            | ToPaneRows("kappa_stream", run_epoch_ms=7)
            | beam.Map(lambda r: (r["count"], r["pane_index"]))
        )
        assert_that(rows, equal_to([(1, 7_000_000), (2, 7_000_001), (3, 7_000_002)]))


def test_write_to_warehouse_batches_rows_into_few_segments(tmp_path) -> None:
    events = [event(BASE_MS + (i % 50) * S, tweet_id=i % 7, seed=i) for i in range(300)]
    stream = TestStream().advance_watermark_to(ts(BASE_MS))
    for start in range(0, 300, 30):
        stream = stream.add_elements(
            [window.TimestampedValue(x, ts(x.event_time)) for x in events[start : start + 30]]
        )
    stream = stream.advance_watermark_to_infinity()
    with streaming() as p:
        rows = (
            p
            | stream
            | WindowInteractions(10_000, 30_000, 2_000)
            | CountPerKey()
            | ToPaneRows("kappa_stream", run_epoch_ms=1)
        )
        rows | WriteToWarehouse(str(tmp_path), "kappa_stream", batch_size=1000, buffering_s=1)
    warehouse = Warehouse(tmp_path)
    segments = warehouse.segments("kappa_stream")
    total_rows = sum(pq.read_metadata(s).num_rows for s in segments)
    assert total_rows >= 35  # 5 windows x 7 tweets, at least one pane each
    assert len(segments) <= 5
    con = warehouse.connect(10_000)
    assert con.execute("SELECT sum(count) FROM kappa_stream_current").fetchone()[0] == 300


def test_write_to_warehouse_per_bundle_in_batch_mode(tmp_path) -> None:
    rows = [dead_letter_row(BadRecord(b"%d" % i, "bad", "kappa", 1)) for i in range(25)]
    with TestPipeline(runner="FnApiRunner") as p:
        sink = WriteToWarehouse(str(tmp_path), "dead_letter", batch_size=10, buffering_s=None)
        p | beam.Create(rows) | sink
    con = Warehouse(tmp_path).connect()
    assert con.execute("SELECT count(*) FROM dead_letter").fetchone()[0] == 25


def test_a_buffered_sink_counts_the_rows_it_takes_in_beside_those_it_wrote(tmp_path) -> None:
    rows = [dead_letter_row(BadRecord(b"%d" % i, "bad", "kappa", 1)) for i in range(25)]
    p = TestPipeline(runner="FnApiRunner")
    (
        p
        | beam.Create(rows)
        | WriteToWarehouse(str(tmp_path), "dead_letter", batch_size=10, buffering_s=1, shards=3)
    )
    result = p.run()
    result.wait_until_finish()
    counters = counters_of(result)
    assert counters["rows_buffered_dead_letter"] == counters["rows_written_dead_letter"] == 25
    assert rows_in_flight(counters, ("dead_letter",)) == 0
    assert rows_in_flight({"rows_buffered_t": 7, "rows_written_t": 3}, ("t", "other")) == 4


def test_a_buffered_sink_writes_segments_of_at_most_batch_size_rows_from_chunks_of_a_bundle(tmp_path) -> None:
    rows = [dead_letter_row(BadRecord(b"%d" % i, "bad", "kappa", 1)) for i in range(2_345)]
    with TestPipeline(runner="FnApiRunner") as p:
        (
            p
            | beam.Create(rows)
            | WriteToWarehouse(str(tmp_path), "dead_letter", batch_size=1_000, buffering_s=1)
        )
    warehouse = Warehouse(tmp_path)
    sizes = [pq.read_metadata(s).num_rows for s in warehouse.segments("dead_letter")]
    assert sum(sizes) == 2_345 and max(sizes) <= 1_000
    payloads = warehouse.connect().execute("SELECT payload FROM dead_letter").fetchall()
    assert sorted(int(p) for (p,) in payloads) == list(range(2_345))


def test_bounded_dedup_keeps_the_first_copy_of_each_event_id_across_batches():
    """On bounded input the composites take their Arrow strategy: dedup after one GroupByKey
    on a bucket of event_id (no state, no expiry timers: a batch run's watermark jumps to the
    end, and a chain of expiry timers cost one bundle round per distinct expiry)."""
    first = [event(BASE_MS + offset * S, event_id=f"e{offset}") for offset in (5, 1)]
    second = [event(BASE_MS + offset * S, event_id=f"e{offset}") for offset in (9, 1, 3)]
    with TestPipeline(runner="FnApiRunner") as p:
        batches = p | beam.Create([EventBatch(events_table(first), 0), EventBatch(events_table(second), 1)])
        keys = batches | DedupByEventId(60_000) | beam.FlatMap(lambda table: table["event_key"].to_pylist())
        assert_that(keys, equal_to([event_key(f"e{i}") for i in (5, 1, 9, 3)]))


def test_bounded_composites_count_like_the_stream_with_one_final_pane() -> None:
    events = [event(BASE_MS + (i % 30) * S, tweet_id=i % 3, seed=i) for i in range(90)]
    events += events[:10]  # copies
    with TestPipeline(runner="FnApiRunner") as p:
        rows = (
            p
            | beam.Create(events)
            | DedupByEventId(60_000)
            | WindowInteractions(10_000, 30_000, 2_000)
            | CountPerKey()
            | ToPaneRows("kappa_backfill", run_epoch_ms=7)
            | beam.FlatMap(lambda table: table.to_pylist())
            | beam.Map(lambda r: (int(r["window_start"].timestamp()) * 1000 - BASE_MS, r["count"], r["pane"]))
        )
        want: dict[tuple, int] = {}
        for e in events[:90]:
            key = (e.event_time - e.event_time % 10_000 - BASE_MS, e.tweet_id)
            want[key] = want.get(key, 0) + 1
        assert_that(
            rows | beam.combiners.ToList() | beam.Map(lambda r: sorted(r)),
            equal_to([sorted((w, n, "FINAL") for (w, _), n in want.items())]),
        )


def test_an_id_is_forgotten_at_the_first_whole_second_at_or_after_event_time_plus_horizon() -> None:
    from pipelines.beam.transforms import expiry_second

    assert expiry_second(1_000, 60_000) == 61
    assert expiry_second(1_001, 60_000) == 62
    assert expiry_second(1_999, 60_000) == 62
