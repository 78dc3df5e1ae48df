"""The composites' strategy for bounded input: Arrow batches, shuffled by key.

A bounded run's watermark moves only at its end, so every event is on time and every
window has one pane, its final one; nothing needs state, timers or triggers. The
composites of `pipelines.beam` therefore run, on bounded input, the DoFns here over Arrow
tables (`pipelines.beam.arrow_events`), the same rules as their per-element stream path:

- `ParseInteractions`: a `LineBatch` (a part file's lines) -> one `EventBatch` and its
  dead letters (per-element input is parsed one by one, as in the stream);
- `SelectEventTimes`: the rows of each batch in [start, end);
- `DedupByEventId`: batches split by event_id bucket, one GroupByKey on the bucket, the
  first copy of each event_id kept (in part order, then line order);
- `WindowInteractions`: a `window_start` column (tumbling windows aligned to the epoch);
- `CountPerKey`: counts per batch, split by shard of tweet_id, summed per shard;
- `ToPaneRows`: the counts as AGGREGATE_SCHEMA rows, pane FINAL.
"""

from __future__ import annotations

from typing import Any, Iterable, Iterator

import apache_beam as beam
import pyarrow as pa

from pipelines.beam import arrow_events as ae
from pipelines.beam.metrics import KappaCounter
from pipelines.events import Interaction


def as_events(element: Any) -> pa.Table:
    """An EventBatch, an events table or one Interaction as an EVENTS_SCHEMA table."""
    if isinstance(element, ae.EventBatch):
        return element.events
    if isinstance(element, pa.Table):
        return element
    return ae.events_table([element])


class SelectEventTimesFn(beam.DoFn):
    def __init__(self, start_ms: int | None, end_ms: int | None):
        self.start_ms, self.end_ms = start_ms, end_ms
        self.outside = KappaCounter("outside_range")

    def process(self, element: Any) -> Iterator[Any]:
        if isinstance(element, Interaction):
            if (self.start_ms is None or element.event_time >= self.start_ms) and (
                self.end_ms is None or element.event_time < self.end_ms
            ):
                yield element
            else:
                self.outside.inc()
            return
        events = as_events(element)
        kept = ae.in_event_time_range(events, self.start_ms, self.end_ms)
        self.outside.inc(events.num_rows - kept.num_rows)
        yield ae.EventBatch(kept, getattr(element, "order", 0))


class SplitByBucketFn(beam.DoFn):
    """Batches -> (bucket, (order, events of that bucket)); single events are gathered per bundle."""

    def __init__(self, buckets: int):
        self.buckets = buckets
        self._single: list[Interaction] = []

    def start_bundle(self) -> None:
        self._single = []

    def process(self, element: Any) -> Iterator[tuple[int, tuple[int, pa.Table]]]:
        if isinstance(element, Interaction):
            self._single.append(element)
            return
        yield from self._split(as_events(element), getattr(element, "order", 0))

    def finish_bundle(self) -> Iterator[Any]:
        from apache_beam.transforms import window
        from apache_beam.utils.windowed_value import WindowedValue

        if self._single:
            for kv in self._split(ae.events_table(self._single), 0):
                yield WindowedValue(kv, window.GlobalWindow().max_timestamp(), (window.GlobalWindow(),))
        self._single = []

    def _split(self, events: pa.Table, order: int) -> Iterator[tuple[int, tuple[int, pa.Table]]]:
        for bucket, table in ae.split_by_bucket(events, self.buckets).items():
            yield bucket, (order, table)


class KeepFirstFn(beam.DoFn):
    """(bucket, [(order, events)]) -> the first copy of each event_id, as one table."""

    def __init__(self) -> None:
        self.duplicates = KappaCounter("duplicates_removed")

    def process(self, element: tuple[int, Iterable[tuple[int, pa.Table]]]) -> Iterator[pa.Table]:
        ordered = [table for _, table in sorted(element[1], key=lambda item: item[0])]
        first, duplicates = ae.first_of_each_id(ordered)
        self.duplicates.inc(duplicates)
        yield first


class WindowStartFn(beam.DoFn):
    def __init__(self, window_ms: int):
        self.window_ms = window_ms

    def process(self, element: Any) -> Iterator[ae.Windowed]:
        events = as_events(element)
        starts = ae.window_starts(events["event_time"], self.window_ms)
        yield ae.Windowed(events.append_column("window_start", starts), self.window_ms)


class PartialCountsFn(beam.DoFn):
    """Windowed events -> (shard of tweet_id, partial counts of that shard)."""

    def __init__(self, shards: int):
        self.shards = shards
        self.counted = KappaCounter("counted")

    def process(self, windowed: ae.Windowed) -> Iterator[tuple[int, ae.Windowed]]:
        self.counted.inc(windowed.table.num_rows)
        if windowed.table.num_rows == 0:
            return
        counts = ae.count_per_key(windowed.table)
        for shard, table in ae.split_by(counts, ae.modulo(counts["tweet_id"], self.shards)).items():
            yield shard, ae.Windowed(table, windowed.window_ms)


def sum_partials(element: tuple[int, Iterable[ae.Windowed]]) -> ae.Windowed:
    partials = list(element[1])
    return ae.Windowed(ae.sum_counts([p.table for p in partials]), partials[0].window_ms)


class FinalRowsFn(beam.DoFn):
    def __init__(self, pipeline: str, pane_index: int):
        self.pipeline, self.pane_index = pipeline, pane_index
        self.final = KappaCounter("panes_final")

    def process(self, counts: ae.Windowed) -> Iterator[pa.Table]:
        self.final.inc(counts.table.num_rows)
        yield ae.final_rows(counts.table, counts.window_ms, self.pipeline, self.pane_index)
