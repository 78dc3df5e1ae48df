"""The legacy batch layer: one bounded Beam pipeline per batch period (TSAR-style).

For period P = [start, end) it reads the archive parts whose arrival interval overlaps P
(pipelines/archive.py, `ArrivalSpans`: locally exactly P's partition; in Cloud Storage also
the objects started up to `max_duration` before P), parses them (bad lines -> dead_letter),
removes duplicate event_ids within the run, keeps the events whose event_time is in P, and
counts them per (window_start, tweet_id, event_type).

    archive parts -> ReadArchiveLines -> ParseInteractions -> DedupWithinRun
      -> KeepEventsOfPeriod -> CountPerWindowKey -> ToBatchRows -> the destination's sink

(`destinations`: the local warehouse, or BigQuery in the cloud.)

An event that arrived after its period is thereby dropped (it is not in P's parts, and in
the next period its event_time is outside the period): counted as `late_dropped` in the
run it arrived in. So is an event stamped after the end of P (a client clock running
ahead), which no run will count, and an event of a neighbouring period in a Cloud Storage
object spanning the boundary (both runs read that object; the neighbour's run counts it).
An object's arrival time is known only to its `max_duration`: a late event in an object
started in P is counted by P's run. Every line read is accounted for:

    lines_read = events_counted + duplicates_removed + late_dropped + dead_lettered
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator

import apache_beam as beam
from apache_beam.metrics import Metrics, MetricsFilter
from apache_beam.options.pipeline_options import PipelineOptions

from lambda_legacy.batch.destinations import Destination, sinks
from pipelines.archive import ArchivePart, read_lines
from pipelines.beam import (
    DEAD_LETTER_TAG,
    EVENTS_TAG,
    METRICS_NAMESPACE,
    PANE_INDEX_SCALE,
    ParseInteractions,
    dead_letter_row,
)
from pipelines.events import Interaction
from pipelines.rows import window_start_ms

PIPELINE = "legacy_batch"
NAMESPACE = "legacy_batch"
COUNTERS = ("lines_read", "events_counted", "duplicates_removed", "late_dropped")


@dataclass(frozen=True)
class BatchRun:
    """What one run computes: a period, its input parts, and how its rows are stamped."""

    period_start_ms: int
    period_end_ms: int
    window_ms: int
    started_at_ms: int
    parts: tuple[ArchivePart, ...]

    @property
    def pane_index(self) -> int:
        """The run's pane_index: later runs of a period supersede earlier ones."""
        return self.started_at_ms * PANE_INDEX_SCALE


class _ReadLinesFn(beam.DoFn):
    """An archive part -> (raw line, arrival time) for ParseInteractions."""

    def __init__(self) -> None:
        self.lines = Metrics.counter(NAMESPACE, "lines_read")

    def process(self, part: ArchivePart) -> Iterator[tuple[bytes, int]]:
        for line in read_lines(part.path):
            self.lines.inc()
            yield line, part.arrival_start_ms


class _FirstOfEachEventIdFn(beam.DoFn):
    def __init__(self) -> None:
        self.duplicates = Metrics.counter(NAMESPACE, "duplicates_removed")

    def process(self, element: tuple[str, Any]) -> Iterator[Interaction]:
        copies = list(element[1])
        if len(copies) > 1:
            self.duplicates.inc(len(copies) - 1)
        yield min(copies, key=lambda e: e.to_json())  # deterministic whichever copy came first


class DedupWithinRun(beam.PTransform):
    """One Interaction per event_id among everything this run read (no time horizon)."""

    def expand(self, pcoll: beam.PCollection) -> beam.PCollection:
        return (
            pcoll
            | "KeyByEventId" >> beam.Map(lambda e: (e.event_id, e))
            | "GroupCopies" >> beam.GroupByKey()
            | "KeepOne" >> beam.ParDo(_FirstOfEachEventIdFn())
        )


class _InPeriodFn(beam.DoFn):
    def __init__(self, start_ms: int, end_ms: int):
        self.start_ms, self.end_ms = start_ms, end_ms
        self.late = Metrics.counter(NAMESPACE, "late_dropped")
        self.kept = Metrics.counter(NAMESPACE, "events_counted")

    def process(self, event: Interaction) -> Iterator[Interaction]:
        if self.start_ms <= event.event_time < self.end_ms:
            self.kept.inc()
            yield event
        else:
            self.late.inc()


class CountPerWindowKey(beam.PTransform):
    """Interactions -> ((window_start_ms, tweet_id, event_type), count)."""

    def __init__(self, window_ms: int):
        super().__init__()
        self.window_ms = window_ms

    def expand(self, pcoll: beam.PCollection) -> beam.PCollection:
        window_ms = self.window_ms
        return (
            pcoll
            | "KeyByWindowKey"
            >> beam.Map(lambda e: ((window_start_ms(e.event_time, window_ms), e.tweet_id, e.event_type), 1))
            | "Count" >> beam.CombinePerKey(sum)
        )


def batch_row(
    key: tuple[int, int, str], count: int, window_ms: int, pane_index: int, emitted_at_ms: int
) -> dict:
    window_start, tweet_id, event_type = key
    return {
        "window_start": window_start,
        "window_end": window_start + window_ms,
        "tweet_id": tweet_id,
        "event_type": event_type,
        "count": count,
        "pipeline": PIPELINE,
        "emitted_at": emitted_at_ms,
        "pane": "FINAL",
        "pane_index": pane_index,
    }


def build(p: beam.Pipeline, run: BatchRun, destination: Destination) -> None:
    """Assemble the batch pipeline for one period on `p`, writing to `destination`."""
    window_ms, pane_index, started_at = run.window_ms, run.pane_index, run.started_at_ms
    write_aggregates, write_dead_letters = sinks(destination)
    parsed = (
        p
        | "ArchiveParts" >> beam.Create(list(run.parts))
        | "ReadArchiveLines" >> beam.ParDo(_ReadLinesFn())
        | "ParseInteractions" >> ParseInteractions(PIPELINE)
    )
    (
        parsed[EVENTS_TAG]
        | "DedupWithinRun" >> DedupWithinRun()
        | "KeepEventsOfPeriod" >> beam.ParDo(_InPeriodFn(run.period_start_ms, run.period_end_ms))
        | "CountPerWindowKey" >> CountPerWindowKey(run.window_ms)
        | "ToBatchRows"
        >> beam.MapTuple(lambda key, count: batch_row(key, count, window_ms, pane_index, started_at))
        | "WriteAggregates" >> write_aggregates
    )
    (
        parsed[DEAD_LETTER_TAG]
        | "DeadLetterRows" >> beam.Map(dead_letter_row)
        | "WriteDeadLetters" >> write_dead_letters
    )


def execute(run: BatchRun, destination: Destination, beam_args: list[str]) -> dict[str, int]:
    """Run the pipeline to completion; the run's counters (see the module doc)."""
    options = PipelineOptions(beam_args)
    if not any(a.startswith("--runner") for a in beam_args):
        options = PipelineOptions(["--runner=FnApiRunner", *beam_args])
    p = beam.Pipeline(options=options)
    build(p, run, destination)
    result = p.run()
    result.wait_until_finish()
    counters = {name: _counter(result, NAMESPACE, name) for name in COUNTERS}
    counters["dead_lettered"] = _counter(result, METRICS_NAMESPACE, "dead_lettered")
    return counters


def _counter(result: Any, namespace: str, name: str) -> int:
    query = result.metrics().query(MetricsFilter().with_namespace(namespace).with_name(name))
    return int(sum(c.committed or 0 for c in query["counters"]))
