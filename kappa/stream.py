"""The Kappa streaming job: Pub/Sub -> parse/DLQ -> dedup -> event-time windows -> pane rows.

The steps between source and sink are `kappa.pipeline.build_kappa`, the backfill's too.
`--runner flink --source kafka` runs the same steps on the Kappa cluster's Flink, reading
Kafka directly (`kappa.flink`); what follows is about the Pub/Sub source.

Locally it runs on BundleBasedDirectRunner against the Pub/Sub emulator and writes Parquet
segments to the warehouse (`kappa_stream`, `dead_letter`); on Dataflow (`--runner
DataflowRunner` in the Beam args) it reads with `id_label="event_id"` too and writes to
BigQuery tables.

Stopping: a streaming pipeline never finishes by itself. `max_runtime_s` cancels it after
that long; `exit_when_idle_s` cancels it once nothing was read and no row was written for
that long (so every buffered segment is flushed and every on-time pane is out); SIGTERM or
Ctrl-C cancels it once it has been idle for `drain_s` (every event read is in a written
early pane), exit 0.

Restarting after a crash: the DirectRunner acks messages before processing them, so a
crash loses in-flight events; `replay_from` seeks the subscription back before the job
starts. pane_index = run start (ms) * 1e6 + pane index, so a restarted run's panes win in
`kappa_stream_current`. A window is recomputed in full only if the replay starts before
its first event: replay from (oldest window not yet final) - dedup_horizon, e.g. crash
time - allowed_lateness - window_size - dedup_horizon, and keep the outage shorter than
allowed_lateness, or re-run the backfill for what the stream then drops as too late.

Hostile publishers: locally the job reads without `timestamp_attribute` (the DirectRunner's
reader raises on an unparseable `event_time` attribute and its read loop stops for good, the
messages of that pull already acked) and `ParseInteractions` dead-letters a message whose
payload is a valid event but whose `event_id`/`event_time` attributes are missing or
disagree with the payload: what Dataflow's id_label and timestamp_attribute read must be
what the event says. On Dataflow the reader parses the timestamp attribute before any of
this code runs, so only the bridge may publish to the topic (terraform IAM).

Too late: an event that arrived (its Pub/Sub publish time) more than allowed_lateness
after its window ended is dropped before windowing (by `ParseInteractions`, on unbounded
input) and counted as `too_late`, so per run
read = dead_lettered + too_late + duplicates_removed + counted exactly, and the rule is
the one the backfill and the validator reproduce from arrival times. Nothing else is ever
dropped by the windowing: the watermark never passes the publish time of a message not
yet read (locally `kappa.direct_runner` holds it there; Dataflow's Pub/Sub source
estimates it the same way), so a stream that falls behind produces its results later,
never different ones.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable, Iterator

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

from kappa.direct_runner import adapt_direct_runner, local_counts, reader_progress, reset_local_counts
from kappa.pipeline import KappaRun, build_kappa
from pipelines.beam import KappaCounter
from pipelines.beam.destinations import DEAD_LETTER_TABLE, Sink, WarehouseDestination
from pipelines.beam.runner import counters_of, on_dataflow
from pipelines.beam.sinks import rows_in_flight
from pipelines.config import Config
from pipelines.errors import ConfigError, PipelineError
from pipelines.events import now_ms
from pipelines.stop_signals import StopSignals

log = logging.getLogger(__name__)
POLL_S = 0.5
STOP_GIVE_UP_S = 60.0  # after SIGTERM, cancel even if the input never pauses
PROGRESS_PREFIX = "kappa stream: "
PIPELINE = "kappa_stream"
TABLE = "kappa_stream"
RUNNERS = ("direct", "flink")  # Dataflow: `--runner DataflowRunner` among the Beam arguments
SOURCES = ("pubsub", "kafka")
SUBMIT_ATTEMPTS = 3  # on Flink: a job whose source hands out no partition is submitted again
KAFKA_GROUP = "kappa-stream"  # the consumer group whose offsets follow the stream's checkpoints
FLUSH_S = 1.0  # the sink's buffering: 2 s cost the ON_TIME panes 1-2 s of freshness beside the speed job
JOB_NAME_PREFIX = "kappa-stream-"  # a Flink job's name: this and the run's start (ms)


def stream_sink(
    warehouse: str,
    flush_s: float = FLUSH_S,
    bigquery_table: str | None = None,
    bigquery_dead_letter_table: str | None = None,
) -> Sink:
    """The stream's sink: BigQuery's table if given, else `kappa_stream` in the warehouse,
    in segments of rows buffered `flush_s`."""
    local = WarehouseDestination(warehouse, "kappa-stream", flush_s, batch_size=20_000)
    return Sink.choose(local, TABLE, bigquery_table, bigquery_dead_letter_table)


@dataclass
class StreamJob:
    config: Config
    sink: Sink  # `stream_sink`
    subscription: str = "kappa"
    replay_from: datetime | None = None
    max_runtime_s: float | None = None
    exit_when_idle_s: float | None = None
    beam_args: list[str] = field(default_factory=list)
    run_epoch_ms: int = field(default_factory=now_ms)
    progress_every_s: float = 5.0
    runner: str = "direct"  # RUNNERS
    source: str = "pubsub"  # SOURCES

    def __post_init__(self) -> None:
        if self.runner not in RUNNERS or self.source not in SOURCES:
            raise ConfigError(f"--runner must be one of {RUNNERS} and --source one of {SOURCES}")
        if (self.runner == "flink") != (self.source == "kafka"):
            raise ConfigError(
                "--source kafka runs on --runner flink, and --runner flink reads --source kafka "
                "(the Kafka read keeps its offsets and watermark in Flink's checkpoints; Python's "
                "Pub/Sub read runs on no portable runner)"
            )

    @property
    def job_name(self) -> str:
        """The Flink job's name: how its metrics and cancel are found on the cluster."""
        return f"{JOB_NAME_PREFIX}{self.run_epoch_ms}"

    @property
    def drain_s(self) -> float:
        """Idle time that proves, after a stop signal, that every event read is in a
        written pane: an early firing, then a segment flush, then some."""
        return max(5.0, 2 * (self.config.time.kappa_early_firing_s + self.sink.buffering_s))

    @property
    def kappa_run(self) -> KappaRun:
        """The run as the pipeline between source and sink sees it."""
        return KappaRun(self.config, PIPELINE, self.sink, self.run_epoch_ms)

    @property
    def subscription_path(self) -> str:
        if self.subscription.startswith("projects/"):
            return self.subscription
        return self.config.pubsub.subscription_path(self.subscription)


@dataclass
class StreamResult:
    counters: dict[str, int]
    seconds: float
    stopped_because: str

    def summary(self) -> dict[str, Any]:
        c = self.counters
        return {
            "read": c.get("read", 0),
            "dead_lettered": c.get("dead_lettered", 0),
            "too_late": c.get("too_late", 0),
            "duplicates_removed": c.get("duplicates_removed", 0),
            "counted": c.get("parsed", 0) - c.get("duplicates_removed", 0),
            "rows_written": c.get(f"rows_written_{TABLE}", 0),
            "dead_letters_written": c.get("rows_written_dead_letter", 0),
            "seconds": round(self.seconds, 1),
            "stopped_because": self.stopped_because,
        }


class _CountReadFn(beam.DoFn):
    def __init__(self) -> None:
        self.read = KappaCounter("read")

    def process(self, message: Any) -> Iterator[Any]:
        self.read.inc()
        yield message


class ReadPubSub(beam.PTransform):
    """The stream's source: Pub/Sub messages with their attributes, counted as `read`.

    Locally no timestamp_attribute: a hostile attribute would stop the reader (module doc).
    """

    def __init__(self, subscription_path: str, dataflow: bool):
        super().__init__()
        self.subscription_path, self.dataflow = subscription_path, dataflow

    def expand(self, pbegin: beam.pvalue.PBegin) -> beam.PCollection:
        from apache_beam.io.gcp.pubsub import ReadFromPubSub

        read_args: dict[str, Any] = (
            {"id_label": "event_id", "timestamp_attribute": "event_time"} if self.dataflow else {}
        )
        return (
            pbegin
            | "Read" >> ReadFromPubSub(subscription=self.subscription_path, with_attributes=True, **read_args)
            | "CountRead" >> beam.ParDo(_CountReadFn())
        )


def build_stream(p: beam.Pipeline, job: StreamJob) -> None:
    if job.source == "kafka":
        from kappa.kafka_source import ReadKafkaPartitions

        build_kappa(p, "ReadFromKafka", ReadKafkaPartitions(job.config, KAFKA_GROUP), job.kappa_run)
    else:
        source = ReadPubSub(job.subscription_path, on_dataflow(job.beam_args))
        build_kappa(p, "ReadFromPubSub", source, job.kappa_run)


def pipeline_options(beam_args: list[str]) -> PipelineOptions:
    args = list(beam_args)
    if not any(arg.startswith("--runner") for arg in args):
        args.insert(0, "--runner=BundleBasedDirectRunner")
    options = PipelineOptions(args)
    options.view_as(StandardOptions).streaming = True
    return options


def prepare_source(job: StreamJob) -> None:
    """Locally: point clients at the emulator, create the topic/subscription, seek if asked."""
    from pipelines import pubsub_io

    if not on_dataflow(job.beam_args):
        pubsub_io.use_emulator(job.config)
        pubsub_io.ensure_topic_and_subscriptions(job.config, extra=(job.subscription_path.rsplit("/", 1)[1],))
    if job.replay_from is not None:
        log.info("seeking %s to %s", job.subscription_path, job.replay_from.isoformat())
        pubsub_io.seek(job.config, job.subscription_path, job.replay_from)


@dataclass
class _Watched:
    """What `_watch` needs of a running job, whatever runs it."""

    counters: Callable[[], dict[str, int]]
    reading: Callable[[dict[str, int]], bool]  # (counters) the source reads: idleness counts from here
    terminal: Callable[[], str | None]  # "pipeline <STATE>" once it ended by itself
    cancel: Callable[[], None]
    extra: Callable[[], dict[str, Any]] = dict  # runner-specific progress fields
    seen: dict[str, int] = field(default_factory=dict)  # the counters at the last poll


def run_stream(job: StreamJob) -> StreamResult:
    """Run until cancelled by max_runtime_s / exit_when_idle_s (or forever without them)."""
    if job.runner == "flink":
        return _run_on_flink(job)
    if not on_dataflow(job.beam_args) and not adapt_direct_runner():
        raise PipelineError("this Beam version's DirectRunner Pub/Sub reader cannot be adapted")
    prepare_source(job)
    reset_local_counts()
    p = beam.Pipeline(options=pipeline_options(job.beam_args))
    build_stream(p, job)
    started = time.monotonic()
    result = _submit(p)
    if on_dataflow(job.beam_args) and job.max_runtime_s is None and job.exit_when_idle_s is None:
        return StreamResult({}, time.monotonic() - started, "submitted to Dataflow")
    if on_dataflow(job.beam_args):
        watched = _Watched(lambda: counters_of(result), lambda _: True, lambda: _ended(result), result.cancel)
    else:
        _surface_failures(result)
        # The DirectRunner only: process-local counts (its metrics do not move while it runs)
        # and where its adapted Pub/Sub reader is (kappa.direct_runner).
        watched = _Watched(local_counts, lambda _: reader_progress().answering(), lambda: _ended(result),
                           result.cancel, lambda: {"watermark_age_s": reader_progress().watermark_age_s()})  # fmt: skip
    return _finish(job, watched, started)


def _run_on_flink(job: StreamJob) -> StreamResult:
    """Submit to the Kappa cluster's job server; progress, summary and cancel through Flink.

    A job whose source has handed out no partition `SOURCE_STUCK_S` after all its tasks run
    is cancelled and submitted again, up to `SUBMIT_ATTEMPTS` times in all. Seen here: now
    and then the Impulse reaches the source's stage and the SDK harness is never asked to
    process it (no bundle descriptor requested for that stage), so the job reads nothing,
    forever, while it checkpoints. Not understood; nothing has been read when it happens.
    """
    from kappa.flink import SOURCE_STUCK

    for attempt in range(1, SUBMIT_ATTEMPTS + 1):
        result = _run_on_flink_once(job)
        if not result.stopped_because.startswith(SOURCE_STUCK):
            return result
        log.warning("kappa stream: %s (attempt %d of %d)", result.stopped_because, attempt, SUBMIT_ATTEMPTS)
    raise PipelineError(
        f"kappa stream: {result.stopped_because}, {SUBMIT_ATTEMPTS} times; see the cluster's logs"
    )


def _run_on_flink_once(job: StreamJob) -> StreamResult:
    from kappa.flink import SOURCE_STUCK, SOURCE_STUCK_S, FlinkJob, SourceWatch, portable_args

    p = beam.Pipeline(options=pipeline_options([*portable_args(job.config, job.job_name), *job.beam_args]))
    build_stream(p, job)
    submitted_ms, started = now_ms(), time.monotonic()
    result = _submit(p)
    log.info("kappa stream: submitted to the Flink job server in %.1fs", time.monotonic() - started)
    flink = FlinkJob(job.config, job.job_name, started_after_ms=submitted_ms - 1000)
    source = SourceWatch(flink)

    def terminal() -> str | None:
        state = flink.state()
        if state in ("FAILED", "CANCELED", "FINISHED"):
            return f"pipeline {state}"
        if source.stuck():
            flink.cancel()
            return f"{SOURCE_STUCK} {SOURCE_STUCK_S:g}s after its tasks started"
        return _ended(result)

    # Idleness counts from the first record read: deploying the job and starting its Java
    # Kafka reader take a minute or more on a busy machine, and are not idleness.
    watched = _Watched(flink.counters, lambda counters: counters.get("read", 0) > 0, terminal, flink.cancel,
                       lambda: {"checkpoints": flink.checkpoints(), **flink.restarts(),
                                "watermark_age_s": flink.watermark_age_s()})  # fmt: skip
    return _finish(job, watched, started)


def _submit(p: beam.Pipeline) -> Any:
    try:
        return p.run()
    except Exception as exc:  # a Beam job failure of any kind, translated where it enters
        raise PipelineError(f"kappa stream failed to start: {exc}") from exc


def _ended(result: Any) -> str | None:
    from apache_beam.runners.runner import PipelineState

    return f"pipeline {result.state}" if PipelineState.is_terminal(result.state) else None


def _finish(job: StreamJob, watched: _Watched, started: float) -> StreamResult:
    with StopSignals() as stop:
        reason = _watch(watched, job, started, stop)
    # After a cancel a runner may report fewer counters than it last did (Flink drops a
    # finished job's task metrics): the higher of the two is the total.
    last, now = watched.seen, watched.counters()
    counters = {name: max(last.get(name, 0), now.get(name, 0)) for name in {*last, *now}}
    if reason.startswith("pipeline") and reason.endswith("FAILED"):  # not cancelled by us
        raise PipelineError(
            f"kappa stream failed after {time.monotonic() - started:.0f}s ({counters}); see the log above. "
            "Restart it with --replay-from (the oldest window not yet final minus dedup_horizon)"
        )
    return StreamResult(counters, time.monotonic() - started, reason)


def _surface_failures(result: Any) -> None:
    """Make a local job's failure visible in `result.state`.

    The DirectRunner gives up on a bundle after four failed attempts (e.g. its Pub/Sub reader
    cannot pull) but its result stays RUNNING until someone waits on it: without this, a job
    whose reader died would sit idle forever, or exit 0 on --exit-when-idle.
    """

    def wait() -> None:
        try:
            result.wait_until_finish()
        except Exception as exc:  # the failure itself is in result.state and the runner's log
            log.error("kappa stream pipeline failed: %s", str(exc).splitlines()[0][:500])

    threading.Thread(target=wait, name="kappa-stream-failure-watch", daemon=True).start()


def stream_progress(log: str) -> dict:
    """The newest progress line in a `kappa run` log (its running summary), or {} before the first."""
    marker = f"{PROGRESS_PREFIX}{{"
    for line in reversed(log.splitlines()):
        if marker in line:
            return json.loads(line[line.index(marker) + len(marker) - 1 :])
    return {}


def _watch(watched: _Watched, job: StreamJob, started: float, stop: StopSignals) -> str:
    """Poll the job's counters, log progress, cancel on a stop condition; returns why it stopped.

    Idleness counts only while the source is reading (locally: after the reader's first
    pull; on Flink: after the first record read; the pipeline's start-up is not idleness) and only the
    time this loop saw pass, at most one poll interval a tick, so a process that was paused
    is not idle on waking. SIGTERM/SIGINT stop the job once it has been idle `drain_s` (what
    it read is counted and written), or after STOP_GIVE_UP_S if its input never pauses.
    """
    idle_s, last_seen, last_log, last_tick = 0.0, None, 0.0, time.monotonic()
    while True:
        time.sleep(POLL_S)
        ended = watched.terminal()
        if ended is not None:
            return ended
        now = time.monotonic()
        tick, last_tick = min(now - last_tick, POLL_S * 2), now
        counters = watched.seen = watched.counters()
        seen = (counters.get("read", 0), counters.get(f"rows_written_{TABLE}", 0),
                counters.get(f"rows_buffered_{TABLE}", 0))  # fmt: skip
        settled = seen == last_seen and not rows_in_flight(counters, (TABLE, DEAD_LETTER_TABLE))
        idle_s = idle_s + tick if settled and watched.reading(counters) else 0.0
        last_seen = seen
        if now - last_log >= job.progress_every_s:
            last_log = now
            progress = {**StreamResult(counters, now - started, "running").summary(), **watched.extra()}
            log.info("%s%s", PROGRESS_PREFIX, json.dumps(progress))
        if job.max_runtime_s is not None and now - started >= job.max_runtime_s:
            reason = f"max runtime {job.max_runtime_s:g}s reached"
        elif job.exit_when_idle_s is not None and idle_s >= job.exit_when_idle_s:
            reason = f"idle for {job.exit_when_idle_s:g}s"
        elif stop and idle_s >= job.drain_s:
            reason = f"{stop.requested}: stopped once idle for {job.drain_s:g}s"
        elif stop and now - stop.at >= STOP_GIVE_UP_S:
            reason = (
                f"{stop.requested}: input never paused in {STOP_GIVE_UP_S:g}s; stopped with rows in flight"
            )
        else:
            continue
        watched.cancel()
        return reason
