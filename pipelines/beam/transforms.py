"""The Kappa job's composite PTransforms, shared by streaming and bounded (backfill) runs.

Contract (see `pipelines.beam` for the summary):

- `ParseInteractions(pipeline)`: input elements are raw payloads in one of three shapes —
  `bytes`/`str`, a Pub/Sub message (anything with `.data`, optional `.publish_time`),
  or a `(payload, received_at_ms)` tuple (archive lines). Output is a tuple-tagged
  result: `.events` (`Interaction`, timestamped with its event_time) and `.dead_letter`
  (`BadRecord`). Validation is `pipelines.events.parse_event` against the arrival time.
- `DedupByEventId(horizon_s)`: `Interaction` -> `Interaction`, the first of each event_id
  kept; state is held until event_time + horizon (an event-time timer), so the result is
  the same on replay, whatever the processing speed.
- `WindowInteractions(window_s, allowed_lateness_s, early_firing_s, bounded=False)`:
  FixedWindows with AfterWatermark(early=AfterProcessingTime, late=AfterCount(1)),
  ACCUMULATING; `bounded=True` for backfills (default trigger, one final pane).
- `CountPerKey(shards)` (`pipelines.beam.counting`): `Interaction` -> `((tweet_id, event_type), count)` per window pane.
- `ToPaneRows(pipeline, run_epoch_ms, final=False)`: counts -> aggregate row dicts of
  DESIGN.md 2.3 (timestamps in epoch ms). pane_index = run_epoch_ms * 1e6 + pane index,
  so a restarted run's panes supersede the crashed run's ones in `<table>_current`.

Every DoFn counts what it rejects or drops with a Beam metric in namespace `kappa`.
"""

from __future__ import annotations

import threading
import time
import zlib
from collections import Counter
from typing import Any, Iterator

import apache_beam as beam
from apache_beam import pvalue
from apache_beam.coders import PickleCoder, VarIntCoder
from apache_beam.metrics import Metrics
from apache_beam.transforms import trigger, userstate, window
from apache_beam.transforms.timeutil import TimeDomain
from apache_beam.utils.timestamp import Duration, Timestamp
from apache_beam.utils.windowed_value import PaneInfoTiming, WindowedValue

from pipelines.events import BadEvent, BadRecord, Interaction, now_ms, parse_event

METRICS_NAMESPACE = "kappa"
EVENTS_TAG = "events"
DEAD_LETTER_TAG = "dead_letter"
# Room for pane indexes below one run's epoch: run_epoch_ms * 1e6 stays under 2**63 until 2262.
PANE_INDEX_SCALE = 1_000_000

_LOCAL_COUNTS: Counter[str] = Counter()
_LOCAL_LOCK = threading.Lock()


class KappaCounter:
    """A Beam counter in namespace `kappa` that also keeps a process-local total.

    The BundleBasedDirectRunner does not update a streaming job's metrics while it runs,
    so the local streaming job reads its live progress (and its summary after a cancel)
    from `local_counts()`; every other runner reports the Beam metric.
    """

    def __init__(self, name: str):
        self.name = name
        self._beam = Metrics.counter(METRICS_NAMESPACE, name)

    def inc(self, n: int = 1) -> None:
        self._beam.inc(n)
        with _LOCAL_LOCK:
            _LOCAL_COUNTS[self.name] += n


def local_counts() -> dict[str, int]:
    with _LOCAL_LOCK:
        return dict(_LOCAL_COUNTS)


def reset_local_counts() -> None:
    with _LOCAL_LOCK:
        _LOCAL_COUNTS.clear()


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


class _ParseFn(beam.DoFn):
    def __init__(self, pipeline: str):
        self.pipeline = pipeline
        self.parsed = KappaCounter("parsed")
        self.rejected = KappaCounter("dead_lettered")

    def process(self, element: Any) -> Iterator[Any]:
        payload, received_at_ms = payload_and_arrival(element)
        try:
            event = parse_event(payload, received_at_ms)
        except BadEvent as exc:
            self.rejected.inc()
            record = BadRecord(payload, str(exc), self.pipeline, now_ms())
            yield pvalue.TaggedOutput(DEAD_LETTER_TAG, record)
            return
        self.parsed.inc()
        yield window.TimestampedValue(event, event.event_time / 1000.0)


class ParseInteractions(beam.PTransform):
    """Raw payloads -> `.events` (event-time timestamped) and `.dead_letter` (BadRecord)."""

    def __init__(self, pipeline: str, label: str | None = None):
        super().__init__(label)
        self.pipeline = pipeline

    def expand(self, pcoll: beam.PCollection) -> pvalue.DoOutputsTuple:
        return pcoll | "ParseOrReject" >> beam.ParDo(_ParseFn(self.pipeline)).with_outputs(
            DEAD_LETTER_TAG, main=EVENTS_TAG
        )


_SEEN = userstate.ReadModifyWriteStateSpec("seen", PickleCoder())  # {event_id: expiry micros}
_NEXT = userstate.ReadModifyWriteStateSpec("next_expiry", VarIntCoder())
_EXPIRY = userstate.TimerSpec("expiry", TimeDomain.WATERMARK)
_SEEN_PARAM = beam.DoFn.StateParam(_SEEN)
_NEXT_PARAM = beam.DoFn.StateParam(_NEXT)
_EXPIRY_PARAM = beam.DoFn.TimerParam(_EXPIRY)


def dedup_bucket(event_id: str, buckets: int) -> int:
    """A stable bucket of an event_id (the same in every process, unlike hash())."""
    return zlib.crc32(event_id.encode("utf-8", "surrogateescape")) % buckets


class _BatchPerBucketFn(beam.DoFn):
    """A bundle's events grouped by bucket of event_id, stamped with the oldest event time."""

    def __init__(self, buckets: int):
        self.buckets = buckets
        self._batches: dict[int, list[Interaction]] = {}

    def start_bundle(self) -> None:
        self._batches = {}

    def process(self, event: Interaction) -> None:
        self._batches.setdefault(dedup_bucket(event.event_id, self.buckets), []).append(event)

    def finish_bundle(self) -> Iterator[WindowedValue]:
        for bucket, events in self._batches.items():
            oldest = min(e.event_time for e in events)
            yield WindowedValue((bucket, events), Timestamp(micros=oldest * 1000), [window.GlobalWindow()])
        self._batches = {}


class _DedupFn(beam.DoFn):
    """Per bucket of event_ids: the ids seen, each forgotten at its event time + horizon.

    One state cell and one timer per bucket rather than per event_id: the DirectRunner
    scans every pending timer per bundle, so a timer per event_id slows a local stream
    down to a crawl within a minute. The timer is kept at the earliest expiry. Its input
    is a bundle's events of one bucket (`_BatchPerBucketFn`), so the state is read and
    written once per batch, not once per event.

    Without `expire` (a bounded run) nothing is forgotten before the end, so no timer is
    set: in a batch run the watermark jumps to the end of time and the chain of expiry
    timers would fire one bundle round per distinct expiry (100k events: 317 s instead
    of seconds, and thousands of rounds that overflow FnApiRunner's metrics merging).
    """

    def __init__(self, horizon_s: float, expire: bool = True):
        self.horizon_micros = Duration.of(horizon_s).micros
        self.expire = expire
        self.duplicates = KappaCounter("duplicates_removed")

    def process(
        self,
        element: tuple[int, list[Interaction]],
        seen_state: Any = _SEEN_PARAM,
        next_state: Any = _NEXT_PARAM,
        expiry: Any = _EXPIRY_PARAM,
    ) -> Iterator[window.TimestampedValue]:
        seen = seen_state.read() or {}
        earliest = None
        for event in element[1]:
            if event.event_id in seen:
                self.duplicates.inc()
                continue
            expires = event.event_time * 1000 + self.horizon_micros
            seen[event.event_id] = expires
            earliest = expires if earliest is None else min(earliest, expires)
            yield window.TimestampedValue(event, event.event_time / 1000.0)
        if earliest is None:
            return
        seen_state.write(seen)
        pending = next_state.read() if self.expire else None
        if self.expire and (pending is None or earliest < pending):
            expiry.set(Timestamp(micros=earliest))
            next_state.write(earliest)

    @userstate.on_timer(_EXPIRY)
    def forget(
        self,
        fired: Timestamp = beam.DoFn.TimestampParam,
        seen_state: Any = _SEEN_PARAM,
        next_state: Any = _NEXT_PARAM,
        expiry: Any = _EXPIRY_PARAM,
    ) -> None:
        kept = {k: v for k, v in (seen_state.read() or {}).items() if v > fired.micros}
        if not kept:
            seen_state.clear()
            next_state.clear()
            return
        seen_state.write(kept)
        earliest = min(kept.values())
        expiry.set(Timestamp(micros=earliest))
        next_state.write(earliest)


class DedupByEventId(beam.PTransform):
    """Drop repeated event_ids seen within `horizon_s` of event time (state + timers).

    `bounded=True` (backfill): over the whole run, as every copy of an event carries the
    same event_time (so any two copies are within the horizon of each other).
    """

    def __init__(self, horizon_s: float, buckets: int = 64, label: str | None = None, bounded: bool = False):
        super().__init__(label)
        self.horizon_s = horizon_s
        self.buckets = buckets
        self.bounded = bounded

    def expand(self, pcoll: beam.PCollection) -> beam.PCollection:
        buckets = self.buckets
        return (
            pcoll
            | "BatchPerBucket" >> beam.ParDo(_BatchPerBucketFn(buckets))
            | "KeepFirst" >> beam.ParDo(_DedupFn(self.horizon_s, expire=not self.bounded))
        )


class WindowInteractions(beam.PTransform):
    """Event-time tumbling windows with early, on-time and late accumulating panes.

    `bounded=True` (backfill): plain FixedWindows with the default trigger. In a bounded run
    the watermark only moves at the end, so every event is on time and the single pane
    holds the final count; FnApiRunner's batch GroupByKey also has no processing-time clock
    for the early firings.
    """

    def __init__(
        self, window_s: float, allowed_lateness_s: float, early_firing_s: float, bounded: bool = False
    ):
        super().__init__()
        self.window_s = window_s
        self.allowed_lateness_s = allowed_lateness_s
        self.early_firing_s = early_firing_s
        self.bounded = bounded

    def expand(self, pcoll: beam.PCollection) -> beam.PCollection:
        if self.bounded:
            return pcoll | "FixedWindows" >> beam.WindowInto(window.FixedWindows(self.window_s))
        return pcoll | "FixedWindows" >> beam.WindowInto(
            window.FixedWindows(self.window_s),
            trigger=trigger.AfterWatermark(
                # Beam's runner API keeps whole seconds of this delay (ms // 1000).
                early=trigger.AfterProcessingTime(max(1, round(self.early_firing_s))),
                late=trigger.AfterCount(1),
            ),
            accumulation_mode=trigger.AccumulationMode.ACCUMULATING,
            allowed_lateness=Duration.of(self.allowed_lateness_s),
        )


class _PaneRowFn(beam.DoFn):
    def __init__(self, pipeline: str, run_epoch_ms: int, final: bool):
        self.pipeline = pipeline
        self.run_epoch_ms = run_epoch_ms
        self.final = final
        self.panes = {
            name: KappaCounter(f"panes_{name.lower()}") for name in ("EARLY", "ON_TIME", "LATE", "FINAL")
        }

    def process(
        self,
        element: tuple[tuple[int, str], int],
        win: window.IntervalWindow = beam.DoFn.WindowParam,
        pane: Any = beam.DoFn.PaneInfoParam,
    ) -> Iterator[dict]:
        (tweet_id, event_type), count = element
        timing = "FINAL" if self.final else _TIMING_NAMES.get(pane.timing, "ON_TIME")
        self.panes[timing].inc()
        yield {
            "window_start": win.start.micros // 1000,
            "window_end": win.end.micros // 1000,
            "tweet_id": tweet_id,
            "event_type": event_type,
            "count": count,
            "pipeline": self.pipeline,
            "emitted_at": int(time.time() * 1000),
            "pane": timing,
            "pane_index": self.run_epoch_ms * PANE_INDEX_SCALE + pane.index,
        }


class ToPaneRows(beam.PTransform):
    """Windowed counts -> aggregate row dicts (DESIGN.md 2.3, timestamps in epoch ms)."""

    def __init__(self, pipeline: str, run_epoch_ms: int | None = None, final: bool = False):
        super().__init__()
        self.pipeline = pipeline
        self.run_epoch_ms = run_epoch_ms if run_epoch_ms is not None else now_ms()
        self.final = final

    def expand(self, pcoll: beam.PCollection) -> beam.PCollection:
        return pcoll | "PaneRow" >> beam.ParDo(_PaneRowFn(self.pipeline, self.run_epoch_ms, self.final))


def dead_letter_row(record: BadRecord) -> dict:
    """A BadRecord as a `dead_letter` table row (timestamps in epoch ms)."""
    return {
        "payload": record.payload,
        "error": record.error,
        "pipeline": record.pipeline,
        "failed_at": record.failed_at_ms,
    }
