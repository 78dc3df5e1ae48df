"""`kappactl kappa run|backfill|graph`: the Kappa streaming job, its replay over the archive,
and the steps both run (one pipeline definition, `kappa.pipeline`).

Options the command does not know are passed to Beam (PipelineOptions), e.g.
`--runner DataflowRunner --project P --region R --temp_location gs://...`.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

import click

from pipelines.cli_common import with_config
from pipelines.config import Config
from pipelines.errors import ConfigError
from pipelines.instants import parse_optional_instant

_PASS_THROUGH = {"ignore_unknown_options": True, "allow_extra_args": True}


def _logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    for noisy in ("apache_beam", "google", "urllib3", "grpc"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


@click.group()
def kappa() -> None:
    """Kappa job: the streaming run (Pub/Sub) and the backfill (archive replay)."""


@kappa.command(context_settings=_PASS_THROUGH)
@with_config
@click.option("--warehouse", default=None, help="Warehouse root (default: paths.warehouse_root).")
@click.option(
    "--subscription", default=None, help="Pub/Sub subscription name or path (default: the config's first)."
)
@click.option("--replay-from", default=None, help="Seek the subscription to this ISO 8601 time first.")
@click.option("--max-runtime", type=float, default=None, help="Cancel the job after this many seconds.")
@click.option(
    "--exit-when-idle", type=float, default=None, help="Cancel once idle (no reads, no writes) this long."
)
@click.option(
    "--flush",
    type=click.FloatRange(min=0, min_open=True),
    default=1.0,
    show_default=True,
    help="Seconds rows are buffered per segment (more: fewer files, later results).",
)
@click.option("--bigquery-table", default=None, help="PROJECT:DATASET.TABLE for pane rows (cloud sink).")
@click.option(
    "--bigquery-dead-letter-table", default=None, help="Dead-letter table (default DATASET.dead_letter)."
)
@click.option(
    "--runner",
    default="direct",
    show_default=True,
    help="direct: Beam's BundleBasedDirectRunner here; flink: the Kappa cluster (`up --kappa-cluster`); "
    "any other name (e.g. DataflowRunner, as the flex template passes it) goes to Beam as its --runner.",
)
@click.option(
    "--source",
    type=click.Choice(["pubsub", "kafka"]),
    default=None,
    show_default="pubsub on direct, kafka on flink",
    help="pubsub: the config's subscription; kafka: the config's Kafka topic, read directly.",
)
@click.pass_context
def run(
    ctx: click.Context,
    config: Config,
    warehouse: str | None,
    subscription: str | None,
    replay_from: str | None,
    max_runtime: float | None,
    exit_when_idle: float | None,
    flush: float,
    bigquery_table: str | None,
    bigquery_dead_letter_table: str | None,
    runner: str,
    source: str | None,
) -> None:
    """Run the streaming job: Pub/Sub or Kafka -> parse/DLQ -> dedup -> windows -> kappa_stream."""
    from kappa.stream import RUNNERS, StreamJob, run_stream, stream_sink

    _logging()
    beam_args = list(ctx.args)
    if runner not in RUNNERS:  # Beam's own runner name: Beam picks it, the job runs as on direct
        if not runner.endswith("Runner"):
            raise ConfigError(
                f"--runner {runner!r}: use direct, flink or a Beam runner such as DataflowRunner"
            )
        beam_args, runner = [f"--runner={runner}", *beam_args], "direct"
    sink = stream_sink(
        str(warehouse or config.paths.warehouse_root), flush, bigquery_table, bigquery_dead_letter_table
    )
    job = StreamJob(
        config=config,
        sink=sink,
        subscription=subscription or config.pubsub.subscriptions[0],
        replay_from=_datetime(parse_optional_instant(replay_from, "--replay-from")),
        max_runtime_s=max_runtime,
        exit_when_idle_s=exit_when_idle,
        beam_args=beam_args,
        runner=runner,
        source=source or ("kafka" if runner == "flink" else "pubsub"),
    )
    result = run_stream(job)
    click.echo(json.dumps(result.summary()))


@kappa.command(context_settings=_PASS_THROUGH)
@with_config
@click.option("--archive", default=None, help="Archive root, local or gs:// (default: paths.archive_root).")
@click.option("--warehouse", default=None, help="Warehouse root (default: paths.warehouse_root).")
@click.option("--from", "start", default=None, help="First event time to count (ISO 8601, inclusive).")
@click.option("--to", "end", default=None, help="Event time to stop at (ISO 8601, exclusive).")
@click.option(
    "--buckets",
    type=click.IntRange(1, 484),
    default=None,
    show_default="two per worker",
    help="event_id buckets of the dedup shuffle.",
)
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=lambda: _default_workers(),
    show_default="one per core, at most 8",
    help="Local FnApiRunner workers (threads of this process unless --processes).",
)
@click.option("--processes", is_flag=True, help="Run the local --workers as processes, not threads.")
@click.option("--bigquery-table", default=None, help="PROJECT:DATASET.TABLE for FINAL rows (cloud sink).")
@click.option(
    "--bigquery-dead-letter-table", default=None, help="Dead-letter table (default DATASET.dead_letter)."
)
@click.pass_context
def backfill(
    ctx: click.Context,
    config: Config,
    archive: str | None,
    warehouse: str | None,
    start: str | None,
    end: str | None,
    buckets: int | None,
    workers: int,
    processes: bool,
    bigquery_table: str | None,
    bigquery_dead_letter_table: str | None,
) -> None:
    """Replay the archive through the Kappa semantics into kappa_backfill (pane FINAL)."""
    from kappa.backfill import BackfillJob, backfill_sink, run_backfill

    _logging()
    start_ms, end_ms = parse_optional_instant(start, "--from"), parse_optional_instant(end, "--to")
    if start_ms is not None and end_ms is not None and end_ms <= start_ms:
        raise ConfigError("--to must be after --from")
    job = BackfillJob(
        config=config,
        archive=str(archive or config.paths.archive_root),
        sink=backfill_sink(
            str(warehouse or config.paths.warehouse_root), bigquery_table, bigquery_dead_letter_table
        ),
        start_ms=start_ms,
        end_ms=end_ms,
        buckets=buckets,
        workers=workers,
        processes=processes,
        beam_args=list(ctx.args),
    )
    result = run_backfill(job)
    click.echo(json.dumps({"parts": result.parts, "seconds": round(result.seconds, 2), **result.counters}))


@kappa.command()
@with_config
@click.option("--mode", type=click.Choice(["stream", "backfill"]), required=True, help="Which job's steps.")
@click.option(
    "--source",
    type=click.Choice(["pubsub", "kafka"]),
    default="pubsub",
    show_default=True,
    help="The stream's source (kafka: read by the job's Python workers on the Kappa cluster).",
)
def graph(config: Config, mode: str, source: str) -> None:
    """Print the job's top-level steps, one per line, source first and sink last (runs nothing)."""
    logging.getLogger("apache_beam").setLevel(logging.ERROR)  # construction advice, not the graph
    for label in graph_labels(mode, config, source):
        click.echo(label)


def graph_labels(mode: str, config: Config, source: str = "pubsub") -> list[str]:
    """The top-level steps of the stream (from `source`) or the backfill, built and not run."""
    import apache_beam as beam

    from kappa.pipeline import top_level_labels

    if mode == "stream":
        from kappa.stream import StreamJob, build_stream, stream_sink
        from kappa.stream import pipeline_options as stream_options

        runner = "flink" if source == "kafka" else "direct"
        p = beam.Pipeline(options=stream_options([]))
        sink = stream_sink(str(config.paths.warehouse_root))
        build_stream(p, StreamJob(config, sink, runner=runner, source=source))
    else:
        from kappa.backfill import BackfillJob, backfill_sink, build_backfill
        from kappa.backfill import pipeline_options as backfill_options

        p = beam.Pipeline(options=backfill_options([]))
        sink = backfill_sink(str(config.paths.warehouse_root))
        build_backfill(p, BackfillJob(config, str(config.paths.archive_root), sink), parts=[])
    return top_level_labels(p)


def _default_workers() -> int:
    from kappa.backfill import default_workers

    return default_workers()


def _datetime(ms: int | None) -> datetime | None:
    return None if ms is None else datetime.fromtimestamp(ms / 1000, tz=UTC)
