"""The Kappa pipeline between source and sink: one definition, stream and backfill alike.

    source -> Parse -> SelectEventTimes -> Dedup -> Window -> Count -> PaneRows
                 \\-> DeadLetterRows -------------------------------------------> Write

The source is the only step that differs: `ReadFromPubSub` or `ReadFromKafka` for the
stream (`kappa.stream`, `kappa.flink`), `ReadArchive` for the backfill (`kappa.backfill`). The composites of
`pipelines.beam` choose their own strategy from their input's boundedness: per element
with state, timers and triggers on the stream's unbounded input; over Arrow batches of
whole part files on the backfill's bounded input. `kappactl kappa graph --mode
stream|backfill` prints the top-level steps of each (`top_level_labels`): the same between
the first line and the last.
"""

from __future__ import annotations

from dataclasses import dataclass

import apache_beam as beam

from pipelines.beam import (
    CountPerKey,
    DedupByEventId,
    ParseInteractions,
    SelectEventTimes,
    ToPaneRows,
    WindowInteractions,
    dead_letter_row,
)
from pipelines.beam.destinations import Sink, WriteOutputs
from pipelines.config import Config

SINK_LABEL = "Write"
MODES = ("stream", "backfill")


@dataclass(frozen=True)
class KappaRun:
    """What the pipeline between source and sink needs to know about one run."""

    config: Config
    pipeline: str  # the `pipeline` column of its rows and dead letters
    sink: Sink
    run_epoch_ms: int
    start_ms: int | None = None  # event times selected: [start_ms, end_ms)
    end_ms: int | None = None
    dedup_buckets: int | None = None  # None: the composite's default for the input
    # False: on-time and late panes only, for Prism, which panics on the stream's
    # AfterWatermark(early=AfterProcessingTime(...)) trigger (Beam 2.77).
    early_firing: bool = True


def build_kappa(p: beam.Pipeline, source_label: str, source: beam.PTransform, run: KappaRun) -> None:
    """source -> the Kappa steps -> the run's destination, on `p`."""
    t = run.config.time
    parsed = (
        p
        | source_label >> source
        | "Parse" >> ParseInteractions(run.pipeline, t.window_ms, t.kappa_allowed_lateness_ms)
    )
    rows = (
        parsed.events
        | "SelectEventTimes" >> SelectEventTimes(run.start_ms, run.end_ms)
        | "Dedup" >> DedupByEventId(t.dedup_horizon_ms, run.dedup_buckets)
        | "Window"
        >> WindowInteractions(
            t.window_ms, t.kappa_allowed_lateness_ms, t.kappa_early_firing_ms if run.early_firing else None
        )
        | "Count" >> CountPerKey()
        | "PaneRows" >> ToPaneRows(run.pipeline, run.run_epoch_ms)
    )
    dead_letters = parsed.dead_letter | "DeadLetterRows" >> beam.Map(dead_letter_row)
    {"rows": rows, "dead_letters": dead_letters} | SINK_LABEL >> WriteOutputs(
        run.sink.destination, run.sink.table
    )


def top_level_labels(p: beam.Pipeline) -> list[str]:
    """The labels of the pipeline's top-level steps, in the order they were applied."""
    return [node.full_label for node in p.transforms_stack[0].parts]
