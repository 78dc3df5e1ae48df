"""The Kappa job's composite PTransforms, one definition for stream and backfill.

Each composite picks its strategy from its input, as Beam's WriteToBigQuery picks file
loads or streaming inserts: on unbounded input (the stream) the per-element path below,
with state, timers and triggers; on bounded input (the backfill) the Arrow-batch DoFns of
`pipelines.beam.bounded`. Contract (see `pipelines.beam` for the summary):

- `ParseInteractions(pipeline, window_ms=None, allowed_lateness_ms=None)`: raw payloads —
  `bytes`/`str`, a Pub/Sub message (`.data`, `.publish_time`, `.attributes`), a
  `(payload, received_at_ms)` tuple, or a `LineBatch` of a part file's lines — ->
  `.events` (`Interaction` timestamped with its event_time, or one `EventBatch` per
  `LineBatch`) and `.dead_letter` (`BadRecord`). Validation is `parse_event` against the
  arrival time. A Pub/Sub message whose `event_id`/`event_time` attributes disagree with
  its valid payload is dead-lettered. On unbounded input with a window and allowed
  lateness, an event that arrived more than allowed lateness after its window ended is
  dropped and counted (`too_late`); in a bounded run nothing is late.
- `SelectEventTimes(start_ms, end_ms)`: the events with event_time in [start, end).
- `DedupByEventId(horizon_ms)`: the first of each event_id kept (a copy is a re-send: the
  same id and event_time); on unbounded input state is held per (expiry second, bucket)
  until the first whole second at or after event_time + horizon (an event-time timer), so
  the result is the same on replay, whatever the processing speed; on bounded input over
  the whole run.
- `WindowInteractions(window_ms, allowed_lateness_ms, early_firing_ms)`: FixedWindows with
  AfterWatermark(early=AfterProcessingTime, late=AfterCount(1)), ACCUMULATING (no early
  panes when early_firing_ms is None); on bounded input one final pane per window.
- `CountPerKey(shards)` (`pipelines.beam.counting`): ((tweet_id, event_type), count) per
  window pane.
- `ToPaneRows(pipeline, run_epoch_ms)`: counts -> aggregate rows of DESIGN.md 2.3 (dicts
  with epoch-ms timestamps, or on bounded input AGGREGATE_SCHEMA tables, pane FINAL).
  pane_index = run_epoch_ms * 1e6 + pane index, so a restarted run's panes supersede the
  crashed run's ones in `<table>_current`.

Every DoFn counts what it rejects or drops with a Beam metric in namespace `kappa`.
"""

from __future__ import annotations

import pickle
import time
import zlib
from typing import Any, Iterator

import apache_beam as beam
from apache_beam import pvalue
from apache_beam.coders import BytesCoder
from apache_beam.transforms import trigger, userstate, window
from apache_beam.transforms.timeutil import TimeDomain
from apache_beam.utils.timestamp import Duration, Timestamp
from apache_beam.utils.windowed_value import PaneInfoTiming, WindowedValue

from pipelines.beam import bounded
from pipelines.beam.arrow_events import LineBatch, parse_batch
from pipelines.beam.metrics import METRICS_NAMESPACE, KappaCounter, local_counts, reset_local_counts
from pipelines.events import BadEvent, BadRecord, Interaction, now_ms, parse_event
from pipelines.rows import window_start_ms

EVENTS_TAG = "events"
DEAD_LETTER_TAG = "dead_letter"
# Room for pane indexes below one run's epoch: run_epoch_ms * 1e6 stays under 2**63 until 2262.
PANE_INDEX_SCALE = 1_000_000
BOUNDED_BUCKETS = 8  # event_id buckets of the dedup shuffle (bounded input)
STREAM_BUCKETS = 4  # event_id buckets per expiry second of the dedup state (unbounded input)
__all__ = ["METRICS_NAMESPACE", "KappaCounter", "local_counts", "reset_local_counts"]


_TIMING_NAMES = {
    PaneInfoTiming.EARLY: "EARLY",
    PaneInfoTiming.ON_TIME: "ON_TIME",
    PaneInfoTiming.LATE: "LATE",
    PaneInfoTiming.UNKNOWN: "ON_TIME",
}


def payload_and_arrival(element: Any) -> tuple[bytes, int]:
    """The raw payload and its arrival time (ms) of any input shape ParseInteractions takes."""
    if isinstance(element, tuple):
        payload, received_at_ms = element
        return _as_bytes(payload), int(received_at_ms)
    if hasattr(element, "data"):
        published = getattr(element, "publish_time", None)
        received = int(published.timestamp() * 1000) if published is not None else now_ms()
        return _as_bytes(element.data), received
    return _as_bytes(element), now_ms()


def _as_bytes(payload: bytes | str | None) -> bytes:
    if payload is None:
        return b""
    return payload if isinstance(payload, bytes) else payload.encode("utf-8", "surrogateescape")


def attribute_error(attributes: dict[str, str], event: Interaction) -> str | None:
    """Why these Pub/Sub attributes may not carry this event, or None if they match it exactly."""
    for name, expected in event.attributes().items():
        value = attributes.get(name)
        if value is None:
            return f"Pub/Sub attribute '{name}' is missing"
        if value != expected:
            return f"Pub/Sub attribute {name}={value[:40]!r} does not match the payload's {name} {expected}"
    return None


class _ParseFn(beam.DoFn):
    """Payloads -> events and dead letters; `too_late_ms`: (window_ms, allowed lateness ms) or None."""

    def __init__(self, pipeline: str, too_late_ms: tuple[int, int] | None = None):
        self.pipeline_name = pipeline
        self.too_late_ms = too_late_ms
        self.parsed = KappaCounter("parsed")
        self.rejected = KappaCounter("dead_lettered")
        self.too_late = KappaCounter("too_late")

    def process(self, element: Any) -> Iterator[Any]:
        if isinstance(element, LineBatch):
            yield from self._batch(element)
            return
        payload, received_at_ms = payload_and_arrival(element)
        try:
            event = parse_event(payload, received_at_ms)
            error = attribute_error(element.attributes or {}, event) if hasattr(element, "data") else None
        except BadEvent as exc:
            error = str(exc)
        if error is not None:
            self.rejected.inc()
            yield pvalue.TaggedOutput(
                DEAD_LETTER_TAG, BadRecord(payload, error, self.pipeline_name, now_ms())
            )
        elif self._too_late(event.event_time, received_at_ms):
            self.too_late.inc()
        else:
            self.parsed.inc()
            yield window.TimestampedValue(event, event.event_time / 1000.0)

    def _too_late(self, event_time_ms: int, received_at_ms: int) -> bool:
        if self.too_late_ms is None:
            return False
        window_ms, lateness_ms = self.too_late_ms
        return window_start_ms(event_time_ms, window_ms) + window_ms + lateness_ms <= received_at_ms

    def _batch(self, batch: LineBatch) -> Iterator[Any]:
        events, rejected = parse_batch(batch, self.pipeline_name)
        self.parsed.inc(events.events.num_rows)
        self.rejected.inc(len(rejected))
        for record in rejected:
            yield pvalue.TaggedOutput(DEAD_LETTER_TAG, record)
        yield events


class ParseInteractions(beam.PTransform):
    """Raw payloads -> `.events` (event-time timestamped) and `.dead_letter` (BadRecord)."""

    def __init__(
        self,
        pipeline: str,
        window_ms: int | None = None,
        allowed_lateness_ms: int | None = None,
        label: str | None = None,
    ):
        super().__init__(label)
        self.pipeline_name = pipeline  # not `pipeline`: a PTransform's own attribute
        self.window_ms, self.allowed_lateness_ms = window_ms, allowed_lateness_ms

    def expand(self, pcoll: beam.PCollection) -> pvalue.DoOutputsTuple:
        too_late_ms = None
        if not pcoll.is_bounded and self.window_ms is not None and self.allowed_lateness_ms is not None:
            too_late_ms = (self.window_ms, self.allowed_lateness_ms)
        return pcoll | "ParseOrReject" >> beam.ParDo(_ParseFn(self.pipeline_name, too_late_ms)).with_outputs(
            DEAD_LETTER_TAG, main=EVENTS_TAG
        )


class SelectEventTimes(beam.PTransform):
    """The events whose event_time is in [start_ms, end_ms); both None: all of them."""

    def __init__(self, start_ms: int | None = None, end_ms: int | None = None):
        super().__init__()
        self.start_ms, self.end_ms = start_ms, end_ms

    def expand(self, pcoll: beam.PCollection) -> beam.PCollection:
        if self.start_ms is None and self.end_ms is None:
            return pcoll  # every event: no step at all
        return pcoll | "InRange" >> beam.ParDo(bounded.SelectEventTimesFn(self.start_ms, self.end_ms))


_SEEN = userstate.ReadModifyWriteStateSpec("seen", BytesCoder())  # the key's event_ids, a pickled set
_EXPIRY = userstate.TimerSpec("expiry", TimeDomain.WATERMARK)
_SEEN_PARAM = beam.DoFn.StateParam(_SEEN)
_EXPIRY_PARAM = beam.DoFn.TimerParam(_EXPIRY)


def dedup_bucket(event_id: str, buckets: int) -> int:
    """A stable bucket of an event_id (the same in every process, unlike hash())."""
    return zlib.crc32(event_id.encode("utf-8", "surrogateescape")) % buckets


def expiry_second(event_time_ms: int, horizon_ms: int) -> int:
    """When an event_id is forgotten: the first whole second at or after event time + horizon."""
    return -(-(event_time_ms + horizon_ms) // 1000)


class _BatchPerKeyFn(beam.DoFn):
    """A bundle's events grouped by dedup key, stamped with the oldest event time.

    The key is (expiry second, bucket of event_id) as one int: every copy of an event (a
    re-send: the same event_id and event_time) has the same key, and a key's ids are all
    forgotten at once, when the watermark passes its second.
    """

    def __init__(self, buckets: int, horizon_ms: int):
        self.buckets, self.horizon_ms = buckets, horizon_ms
        self._batches: dict[int, list[Interaction]] = {}

    def start_bundle(self) -> None:
        self._batches = {}

    def process(self, event: Interaction) -> None:
        key = expiry_second(event.event_time, self.horizon_ms) * self.buckets
        self._batches.setdefault(key + dedup_bucket(event.event_id, self.buckets), []).append(event)

    def finish_bundle(self) -> Iterator[WindowedValue]:
        for key, events in self._batches.items():
            oldest = min(e.event_time for e in events)
            yield WindowedValue((key, events), Timestamp(micros=oldest * 1000), (window.GlobalWindow(),))
        self._batches = {}


class _DedupFn(beam.DoFn):
    """Per dedup key (`_BatchPerKeyFn`): the event_ids seen, forgotten together at the key's
    expiry second (one event-time timer, set when the key's first id is kept).

    A key holds the ids of about a second of events of one bucket, so its state is small
    and read and written once per batch, whatever the horizon: one state cell per bucket
    of the whole horizon made every batch encode (and Beam's state cache measure) all the
    ids seen within it, on Flink a third of the SDK harness's time at 3,000 events/s. The
    set is kept pickled, as bytes: the state cache sizes bytes at once, a set id by id.

    Unbounded input only: in a batch run the watermark jumps to the end of time and each
    key's timer would fire one bundle round after another, so bounded input takes the
    GroupByKey path of `DedupByEventId` instead.
    """

    def __init__(self, buckets: int):
        self.buckets = buckets
        self.duplicates = KappaCounter("duplicates_removed")

    def process(
        self,
        element: tuple[int, list[Interaction]],
        seen_state: Any = _SEEN_PARAM,
        expiry: Any = _EXPIRY_PARAM,
    ) -> Iterator[window.TimestampedValue]:
        key, events = element
        blob = seen_state.read()
        seen: set[str] = pickle.loads(blob) if blob else set()
        kept = len(seen)
        for event in events:
            if event.event_id in seen:
                self.duplicates.inc()
                continue
            seen.add(event.event_id)
            yield window.TimestampedValue(event, event.event_time / 1000.0)
        if len(seen) == kept:
            return
        if not blob:  # the key's first ids: forget them all at its expiry second
            expiry.set(Timestamp(seconds=key // self.buckets))
        seen_state.write(pickle.dumps(seen, pickle.HIGHEST_PROTOCOL))

    @userstate.on_timer(_EXPIRY)
    def forget(self, seen_state: Any = _SEEN_PARAM) -> None:
        seen_state.clear()


class DedupByEventId(beam.PTransform):
    """Drop repeated event_ids seen within `horizon_ms` of event time.

    A copy of an event is a re-send: the same event_id and the same event_time (DESIGN.md
    2.1). Unbounded input: state + a timer per (expiry second, bucket of event_ids), so an
    id is forgotten at the first whole second at or after its event time + horizon.
    Bounded input: over the whole run, as any two copies are within the horizon of each
    other: one GroupByKey on the bucket, Arrow per bucket.
    """

    def __init__(self, horizon_ms: int, buckets: int | None = None, label: str | None = None):
        super().__init__(label)
        self.horizon_ms = horizon_ms
        self.buckets = buckets

    def expand(self, pcoll: beam.PCollection) -> beam.PCollection:
        if pcoll.is_bounded:
            return (
                pcoll
                | "SplitByBucket" >> beam.ParDo(bounded.SplitByBucketFn(self.buckets or BOUNDED_BUCKETS))
                | "GroupBucket" >> beam.GroupByKey()
                | "KeepFirst" >> beam.ParDo(bounded.KeepFirstFn())
            )
        buckets = self.buckets or STREAM_BUCKETS
        return (
            pcoll
            | "BatchPerKey" >> beam.ParDo(_BatchPerKeyFn(buckets, self.horizon_ms))
            | "KeepFirst" >> beam.ParDo(_DedupFn(buckets))
        )


class WindowInteractions(beam.PTransform):
    """Event-time tumbling windows with early, on-time and late accumulating panes.

    Bounded input (backfill): the watermark only moves at the end, so every event is on
    time and each window has one pane, its final count: the window becomes a
    `window_start` column of the Arrow batches (FnApiRunner's batch GroupByKey also has no
    processing-time clock for early firings).
    """

    def __init__(self, window_ms: int, allowed_lateness_ms: int, early_firing_ms: int | None):
        super().__init__()
        self.window_ms = window_ms
        self.allowed_lateness_ms = allowed_lateness_ms
        self.early_firing_ms = early_firing_ms

    def expand(self, pcoll: beam.PCollection) -> beam.PCollection:
        if pcoll.is_bounded:
            return pcoll | "WindowStart" >> beam.ParDo(bounded.WindowStartFn(self.window_ms))
        early = None
        if self.early_firing_ms is not None:
            # Beam's runner API keeps whole seconds of this delay (ms // 1000).
            early = trigger.AfterProcessingTime(max(1, round(self.early_firing_ms / 1000)))
        return pcoll | "FixedWindows" >> beam.WindowInto(
            window.FixedWindows(Duration(micros=self.window_ms * 1000)),
            trigger=trigger.AfterWatermark(early=early, late=trigger.AfterCount(1)),
            accumulation_mode=trigger.AccumulationMode.ACCUMULATING,
            allowed_lateness=Duration(micros=self.allowed_lateness_ms * 1000),
        )


class _PaneRowFn(beam.DoFn):
    def __init__(self, pipeline: str, run_epoch_ms: int):
        self.pipeline_name = pipeline
        self.run_epoch_ms = run_epoch_ms
        self.panes = {
            name: KappaCounter(f"panes_{name.lower()}") for name in ("EARLY", "ON_TIME", "LATE", "FINAL")
        }

    def process(
        self,
        element: tuple[tuple[int, str], int],
        win: Any = beam.DoFn.WindowParam,
        pane: Any = beam.DoFn.PaneInfoParam,
    ) -> Iterator[dict]:
        (tweet_id, event_type), count = element
        timing = _TIMING_NAMES.get(pane.timing, "ON_TIME")
        self.panes[timing].inc()
        yield {
            "window_start": win.start.micros // 1000,
            "window_end": win.end.micros // 1000,
            "tweet_id": tweet_id,
            "event_type": event_type,
            "count": count,
            "pipeline": self.pipeline_name,
            "emitted_at": int(time.time() * 1000),
            "pane": timing,
            "pane_index": self.run_epoch_ms * PANE_INDEX_SCALE + pane.index,
        }


class ToPaneRows(beam.PTransform):
    """Windowed counts -> aggregate rows (DESIGN.md 2.3): dicts with epoch-ms timestamps, or on
    bounded input AGGREGATE_SCHEMA tables with pane FINAL."""

    def __init__(self, pipeline: str, run_epoch_ms: int | None = None):
        super().__init__()
        self.pipeline_name = pipeline  # not `pipeline`: a PTransform's own attribute
        self.run_epoch_ms = run_epoch_ms if run_epoch_ms is not None else now_ms()

    def expand(self, pcoll: beam.PCollection) -> beam.PCollection:
        if pcoll.is_bounded:
            pane_index = self.run_epoch_ms * PANE_INDEX_SCALE
            return pcoll | "FinalRows" >> beam.ParDo(bounded.FinalRowsFn(self.pipeline_name, pane_index))
        return pcoll | "PaneRow" >> beam.ParDo(_PaneRowFn(self.pipeline_name, self.run_epoch_ms))


def dead_letter_row(record: BadRecord) -> dict:
    """A BadRecord as a `dead_letter` table row (timestamps in epoch ms)."""
    return {
        "payload": record.payload,
        "error": record.error,
        "pipeline": record.pipeline,
        "failed_at": record.failed_at_ms,
    }
