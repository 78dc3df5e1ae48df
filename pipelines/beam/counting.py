"""`CountPerKey`: interactions -> ((tweet_id, event_type), count) per window pane.

Bounded input (backfill): Arrow batches with a `window_start` column
(`WindowInteractions`), counted per batch, split by shard of tweet_id and summed per shard
after one GroupByKey (`pipelines.beam.bounded`).

Unbounded input (the stream): Beam does not lift a combine under a custom trigger, so a
naive count sends every event through the trigger machinery of its own key, and the
DirectRunner then runs every downstream step once per key and pane (a profile of a local
stream: 30% in per-key trigger state, 19% in trigger timers, 18% in per-bundle DoFn
set-up). Instead the composite

1. counts each bundle's events per window and shard of keys (`shards` by tweet_id), which
   is Beam's own combiner lifting done by hand, keeping each window;
2. merges those partial counts per shard under the upstream trigger (ACCUMULATING), so
   the trigger keeps state per (shard, window) rather than per key;
3. turns each shard pane back into per-key counts, emitting a key when its count changed
   since the shard's previous pane (and every key in the ON_TIME pane), so the output is
   what a per-key count with the same trigger would have said, pane by pane, less its
   repeats. The outputs keep their pane: `ToPaneRows` reads timing and index from it.
"""

from __future__ import annotations

import pickle
from collections import Counter
from typing import Any, Iterator

import apache_beam as beam
from apache_beam.coders import BytesCoder
from apache_beam.transforms import userstate
from apache_beam.utils.windowed_value import PaneInfoTiming, WindowedValue

from pipelines.beam import bounded
from pipelines.beam.metrics import KappaCounter
from pipelines.events import Interaction

Key = tuple[int, str]
STREAM_SHARDS = 8
BOUNDED_SHARDS = 2  # shards of the bounded sum: each is one segment written at the end

# {key: count last emitted}, kept pickled: Beam's state cache sizes bytes at once, a dict
# entry by entry (at every commit of a bundle that wrote it).
_EMITTED = userstate.ReadModifyWriteStateSpec("emitted", BytesCoder())
_EMITTED_PARAM = beam.DoFn.StateParam(_EMITTED)


class _CountInBundleFn(beam.DoFn):
    """Per bundle: {(window, shard): Counter of keys}, emitted at the end of the bundle."""

    def __init__(self, shards: int):
        self.shards = shards
        self.counted = KappaCounter("counted")
        self._partial: dict[tuple[Any, int], Counter[Key]] = {}
        self._events = 0

    def start_bundle(self) -> None:
        self._partial = {}
        self._events = 0

    def process(self, event: Interaction, win: Any = beam.DoFn.WindowParam) -> None:
        self._events += 1
        counts = self._partial.setdefault((win, event.tweet_id % self.shards), Counter())
        counts[(event.tweet_id, event.event_type)] += 1

    def finish_bundle(self) -> Iterator[WindowedValue]:
        for (win, shard), counts in self._partial.items():
            yield WindowedValue((shard, counts), win.max_timestamp(), (win,))
        self.counted.inc(self._events)
        self._partial = {}


class _MergeCounts(beam.CombineFn):
    def create_accumulator(self) -> Counter[Key]:
        return Counter()

    def add_input(self, acc: Counter[Key], counts: Counter[Key]) -> Counter[Key]:
        acc.update(counts)
        return acc

    def merge_accumulators(self, accs: Any) -> Counter[Key]:
        merged: Counter[Key] = Counter()
        for acc in accs:
            merged.update(acc)
        return merged

    def extract_output(self, acc: Counter[Key]) -> dict[Key, int]:
        return dict(acc)


class _EmitChangedFn(beam.DoFn):
    """Shard panes -> per-key counts that changed since the shard's previous pane."""

    def process(
        self,
        element: tuple[int, dict[Key, int]],
        pane: Any = beam.DoFn.PaneInfoParam,
        emitted_state: Any = _EMITTED_PARAM,
    ) -> Iterator[tuple[Key, int]]:
        _, totals = element
        blob = emitted_state.read()
        emitted: dict[Key, int] = pickle.loads(blob) if blob else {}
        every = pane.timing == PaneInfoTiming.ON_TIME
        changed = {key: n for key, n in totals.items() if every or emitted.get(key) != n}
        if not changed:
            return
        emitted.update(changed)
        emitted_state.write(pickle.dumps(emitted, pickle.HIGHEST_PROTOCOL))
        yield from changed.items()


class CountPerKey(beam.PTransform):
    """Interactions -> ((tweet_id, event_type), count) for each pane of each window."""

    def __init__(self, shards: int | None = None, label: str | None = None):
        super().__init__(label)
        self.shards = shards

    def expand(self, pcoll: beam.PCollection) -> beam.PCollection:
        if pcoll.is_bounded:
            return (
                pcoll
                | "PartialCounts" >> beam.ParDo(bounded.PartialCountsFn(self.shards or BOUNDED_SHARDS))
                | "GroupShard" >> beam.GroupByKey()
                | "SumPerShard" >> beam.Map(bounded.sum_partials)
            )
        return (
            pcoll
            | "CountInBundle" >> beam.ParDo(_CountInBundleFn(self.shards or STREAM_SHARDS))
            | "MergePerShard" >> beam.CombinePerKey(_MergeCounts())
            | "EmitChanged" >> beam.ParDo(_EmitChangedFn())
        )


__all__ = ["STREAM_SHARDS", "CountPerKey"]
