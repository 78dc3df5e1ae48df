"""The Kappa backfill: the stream's pipeline over the archive, as a bounded Beam job.

The steps between source and sink are the stream's (`kappa.pipeline.build_kappa`); only
the source differs: `ReadArchive` reads whole part files, each as one `LineBatch` of its
lines, and the composites run their bounded strategy over Arrow batches (vectorised
parse and validation; dedup after one GroupByKey on a bucket of event_id, so it stays
exact across part files; counts per batch summed per shard of tweet_id). Locally on
FnApiRunner with one in-memory worker per core, as threads of one process (Arrow
releases the GIL while it works).

Semantics shared with the stream: validation as `parse_event`, judged against the end of
the line's part's arrival interval (pipelines/archive.py, `ArrivalSpans`: the archive keeps
arrival time at partition, or Cloud Storage object, granularity);
dedup by exact event_id. Every copy of an event carries the same event_time, so "within
dedup_horizon of event time" holds for any two copies: the backfill dedups over the
whole run. Unlike the stream, nothing is too late: an event is counted whenever it
arrived, which is what a backfill is for. `--from/--to` select event times in
[from, to); parts are read from the arrival partition holding `from` onwards.
"""

from __future__ import annotations

import gc
import logging
import os
import time
from dataclasses import dataclass, field
from typing import Iterator

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions

from kappa.direct_runner import adapt_fn_api_runner
from kappa.pipeline import KappaRun, build_kappa
from pipelines.archive import arrival_spans, list_parts, read_part
from pipelines.beam import KappaCounter
from pipelines.beam.arrow_events import LineBatch, lines_of_blob
from pipelines.beam.destinations import Sink, WarehouseDestination
from pipelines.beam.runner import counters_of, on_dataflow
from pipelines.config import Config
from pipelines.errors import InputError, PipelineError
from pipelines.events import now_ms

log = logging.getLogger(__name__)
PIPELINE = "kappa_backfill"
TABLE = "kappa_backfill"
PROGRESS_EVERY_S = 10.0
# Two per worker: FnApiRunner deals the buckets to its workers in turn. Measured on 1M events
# with 2 workers: 4 buckets 1.40-1.49 s, 8 buckets 1.51-1.55 s (each bucket is one more
# element to decode and walk), 2 buckets 1.51-1.53 s (one big bucket each, nothing to overlap).
BUCKETS_PER_WORKER = 2


def backfill_sink(
    warehouse: str, bigquery_table: str | None = None, bigquery_dead_letter_table: str | None = None
) -> Sink:
    """The backfill's sink: BigQuery's table if given, else `kappa_backfill` in the warehouse,
    written as each bundle ends."""
    local = WarehouseDestination(warehouse, "kappa-backfill", buffering_s=None, batch_size=50_000)
    return Sink.choose(local, TABLE, bigquery_table, bigquery_dead_letter_table)


@dataclass
class BackfillJob:
    config: Config
    archive: str
    sink: Sink  # `backfill_sink`
    start_ms: int | None = None
    end_ms: int | None = None
    buckets: int | None = None  # event_id buckets of the dedup shuffle; None: BUCKETS_PER_WORKER each
    workers: int = field(default_factory=lambda: default_workers())
    processes: bool = False  # local workers as processes instead of threads of this one
    beam_args: list[str] = field(default_factory=list)
    run_epoch_ms: int = field(default_factory=now_ms)

    @property
    def kappa_run(self) -> KappaRun:
        """The run as the pipeline between source and sink sees it."""
        buckets = self.buckets or BUCKETS_PER_WORKER * self.workers
        return KappaRun(
            self.config, PIPELINE, self.sink, self.run_epoch_ms, self.start_ms, self.end_ms, buckets
        )


@dataclass
class BackfillResult:
    parts: int
    counters: dict[str, int]
    seconds: float


class _ReadPartFn(beam.DoFn):
    """(part index, path, received_at_ms) -> one LineBatch of the part's lines, counted as `read`.

    Logs its progress at most every PROGRESS_EVERY_S seconds (a long backfill is not silent).
    """

    def __init__(self, total_parts: int):
        self.total_parts = total_parts
        self.read = KappaCounter("read")

    def setup(self) -> None:
        self.parts_done = self.lines_done = 0
        self.logged_at = time.monotonic()

    def process(self, part: tuple[int, str, int]) -> Iterator[LineBatch]:
        index, path, received_at_ms = part
        lines = lines_of_blob(read_part(path))
        self.read.inc(len(lines))
        self._progress(len(lines))
        yield LineBatch(lines, received_at_ms, index)

    def _progress(self, lines: int) -> None:
        self.parts_done += 1
        self.lines_done += lines
        if time.monotonic() - self.logged_at >= PROGRESS_EVERY_S:
            self.logged_at = time.monotonic()
            log.info(
                "backfill: this worker has read %d parts (%d lines) of the %d",
                self.parts_done,
                self.lines_done,
                self.total_parts,
            )


class ReadArchive(beam.PTransform):
    """The backfill's source: archive parts (index, path, arrival) -> a LineBatch per part."""

    def __init__(self, parts: list[tuple[int, str, int]]):
        super().__init__()
        self.parts = parts

    def expand(self, pbegin: beam.pvalue.PBegin) -> beam.PCollection:
        return (
            pbegin
            | "Parts" >> beam.Create(self.parts)
            | "ReadParts" >> beam.ParDo(_ReadPartFn(len(self.parts)))
        )


def _parts(job: BackfillJob) -> list[tuple[int, str, int]]:
    """(position in arrival order, path, arrival) of the parts to read, largest first.

    Largest first: FnApiRunner deals a stage's elements to its workers in turn, so an archive
    whose plain and gzip parts alternate (the benchmark's does) gave every gzip part to one
    worker, and the other waited for it (0.2 s of a 1.2 s read of 1M events). Dealt largest
    first, each worker gets its share of each size; on Dataflow, largest first is also what
    balances best. "First copy" means first in arrival order, whatever order parts are read in.
    """
    period_ms = job.config.time.period_ms
    first = None if job.start_ms is None else job.start_ms - job.start_ms % period_ms
    parts = list_parts(job.archive, first, None, spans=arrival_spans(job.config))
    if not parts:
        raise InputError(
            f"no archive parts under {job.archive} (run `kappactl archive` first, or check --from)"
        )
    by_size = sorted(enumerate(parts), key=lambda item: -item[1].size)
    return [(i, part.path, part.arrival_end_ms) for i, part in by_size]


def build_backfill(p: beam.Pipeline, job: BackfillJob, parts: list[tuple[int, str, int]]) -> None:
    build_kappa(p, "ReadArchive", ReadArchive(parts), job.kappa_run)


def default_workers() -> int:
    """One local worker per core, at most 8."""
    return max(1, min(os.cpu_count() or 1, 8))


def runs_locally(beam_args: list[str]) -> bool:
    """Whether the job runs on the local FnApiRunner (no --runner among the Beam arguments)."""
    return not any(arg.startswith("--runner") for arg in beam_args)


def pipeline_options(beam_args: list[str], workers: int = 1, processes: bool = False) -> PipelineOptions:
    """Local default: FnApiRunner with `workers` in-memory workers; a --runner in beam_args wins.

    In-memory workers are threads of this process that exchange data without gRPC; Beam's
    `multi_threading` mode puts gRPC between them, which costs more than it gains here
    (1M events: 1.45 s in memory vs 2.35 s multi_threading vs 3.6 s multi_processing).
    `processes` starts worker processes instead, for DoFns that hold the GIL.
    """
    if not runs_locally(beam_args):
        return PipelineOptions(beam_args)
    mode = "multi_processing" if processes and workers > 1 else "in_memory"
    if mode == "in_memory" and workers > 1:
        _FN_RUNNER_LOG.addFilter(_quiet_in_memory_advice)
    return PipelineOptions(
        [
            "--runner=FnApiRunner",
            f"--direct_num_workers={workers}",
            f"--direct_running_mode={mode}",
            *beam_args,
        ]
    )


_FN_RUNNER_LOG = logging.getLogger("apache_beam.runners.portability.fn_api_runner.fn_runner")


def _quiet_in_memory_advice(record: logging.LogRecord) -> bool:
    """Drop FnApiRunner's advice against several in-memory workers (measured: they are faster here)."""
    return not str(record.msg).startswith("If direct_num_workers is not equal to 1")


def run_backfill(job: BackfillJob) -> BackfillResult:
    if runs_locally(job.beam_args):
        adapt_fn_api_runner()  # kappa.direct_runner: local-only, before the pipeline is built
    parts = _parts(job)
    log.info("backfill: %d part files from %s", len(parts), job.archive)
    started = time.perf_counter()
    p = beam.Pipeline(options=pipeline_options(job.beam_args, job.workers, job.processes))
    build_backfill(p, job, parts)
    # What is loaded by now (Beam and its dependencies: over a million objects) lives as long
    # as the process; frozen, a full garbage collection during the run does not walk it (one
    # such pause, which stops every worker thread, was 0.2 s of a 1M-event run).
    gc.freeze()
    try:
        result = p.run()
        if on_dataflow(job.beam_args):
            return BackfillResult(len(parts), {}, time.perf_counter() - started)  # submitted; runs on
        result.wait_until_finish()
    except Exception as exc:  # a Beam job failure of any kind, translated where it enters
        raise PipelineError(f"kappa backfill failed: {exc}") from exc
    finally:
        gc.unfreeze()
    return BackfillResult(len(parts), counters_of(result), time.perf_counter() - started)
