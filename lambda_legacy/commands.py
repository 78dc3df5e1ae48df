"""`kappactl legacy batch | speed | merged`: the legacy Lambda arms and their merge."""

from __future__ import annotations

import json
import signal
from typing import Any

import click

from pipelines.archive import arrival_spans
from pipelines.cli_common import echo_err, with_config
from pipelines.config import Config, batch_delay_error
from pipelines.errors import ConfigError
from pipelines.events import now_ms
from pipelines.instants import parse_instant, parse_optional_instant

_BEAM_ARGS = {"ignore_unknown_options": True, "allow_extra_args": True}


@click.group()
def legacy() -> None:
    """Legacy Lambda arms: Beam batch layer, PyFlink speed layer, and their merge (legacy_serving)."""


@legacy.command(context_settings=_BEAM_ARGS)
@with_config
@click.option("--archive", help="Archive root (local folder or gs://); default: paths.archive_root.")
@click.option("--warehouse", help="Warehouse root; default: paths.warehouse_root.")
@click.option("--period-start", help="ISO 8601 start of the first period to run (at a period boundary).")
@click.option("--periods", type=click.IntRange(min=1), default=1, show_default=True, help="Periods to run.")
@click.option(
    "--latest",
    is_flag=True,
    help="Run the latest period that ended at least time.batch_delay ago (for a scheduler).",
)
@click.option("--follow", is_flag=True, help="Run each period once it has ended plus time.batch_delay.")
@click.option("--max-periods", type=click.IntRange(min=1), help="With --follow: stop after this many runs.")
@click.option("--until", help="With --follow: stop after the last period ending at or before this time.")
@click.option(
    "--bigquery-dataset",
    help="PROJECT:DATASET (Terraform's `legacy`) for legacy_batch and batch_runs instead of the warehouse.",
)
@click.option(
    "--bigquery-dead-letter-table",
    default="migration.dead_letter",
    show_default=True,
    help="With --bigquery-dataset: DATASET.TABLE for dead letters.",
)
@click.pass_context
def batch(
    ctx: click.Context,
    config: Config,
    archive: str | None,
    warehouse: str | None,
    period_start: str | None,
    periods: int,
    latest: bool,
    follow: bool,
    max_periods: int | None,
    until: str | None,
    bigquery_dataset: str | None,
    bigquery_dead_letter_table: str,
) -> None:
    """Run the batch layer over archived periods (Beam; extra options go to Beam, e.g. --runner)."""
    from lambda_legacy.batch import runs
    from lambda_legacy.batch.destinations import BigQueryDestination, Destination

    archive_root = archive or config.paths.archive_root
    delay_error = batch_delay_error(config.time, config.gcp, archive_root)
    if delay_error:  # an --archive gs://... the config did not name
        raise ConfigError(delay_error)
    spans = arrival_spans(config)
    destination: Destination = warehouse or str(config.paths.warehouse_root)
    if bigquery_dataset:
        if warehouse:
            raise ConfigError("--warehouse and --bigquery-dataset are exclusive: one destination per run")
        destination = BigQueryDestination(bigquery_dataset, bigquery_dead_letter_table)
    if not follow:  # --follow may start before the archiver wrote its first part
        runs.check_archive(archive_root)
    period_ms, window_ms = config.time.period_ms, config.time.window_ms
    beam_args = list(ctx.args)
    if not follow:
        if latest == (period_start is not None):
            raise ConfigError("give one of --period-start ISO8601, --latest or --follow")
        if max_periods or until:
            raise ConfigError("--max-periods and --until go with --follow")
        if latest:
            if periods != 1:
                raise ConfigError("--periods goes with --period-start (--latest runs one period)")
            ended_by = now_ms() - config.time.batch_delay_ms
            start = runs.period_start_of(ended_by, period_ms) - period_ms
        else:
            start = parse_instant(str(period_start), "--period-start")
        for i in range(periods):
            _report(
                runs.run_period(
                    archive_root, destination, start + i * period_ms, period_ms, window_ms, beam_args, spans
                )
            )
        return
    if latest:
        raise ConfigError("--latest and --follow are exclusive")
    stopping: list[int] = []
    signal.signal(signal.SIGTERM, lambda signum, _frame: stopping.append(signum))
    done = runs.follow(
        archive_root,
        destination,
        period_ms,
        config.time.batch_delay_ms,
        window_ms,
        beam_args,
        parse_optional_instant(period_start, "--period-start"),
        max_periods,
        parse_optional_instant(until, "--until"),
        _report,
        lambda: bool(stopping),
        spans,
    )
    echo_err(f"legacy batch --follow: {done} period(s) run")


def _report(report: Any) -> None:
    click.echo(report.summary())
    click.echo(json.dumps({"batch_run": {"run_id": report.run_id, **report.counters}}))


@legacy.command()
@with_config
@click.option("--warehouse", help="Warehouse root; default: paths.warehouse_root.")
@click.option(
    "--state-dir", help="Checkpoints, savepoints, progress; default: <paths.state_dir>/legacy_speed."
)
@click.option("--parallelism", type=click.IntRange(min=1), help="Default: kafka.partitions.")
@click.option("--bounded", is_flag=True, help="Read up to the offsets at start, fire every window, finish.")
@click.option("--fresh", is_flag=True, help="Ignore retained checkpoints and savepoints.")
@click.option("--drain", is_flag=True, help="On stop, fire every open window before the savepoint.")
@click.option("--max-runtime", type=float, default=0.0, help="Stop after this many seconds (0: never).")
@click.option(
    "--exit-when-idle", type=float, default=0.0, help="Stop after this many seconds without records."
)
@click.option("--flush-ms", type=click.IntRange(min=100), default=3000, show_default=True)
@click.option("--checkpoint-ms", type=click.IntRange(min=500), default=5000, show_default=True)
@click.option("--from-earliest", is_flag=True, help="Start at the earliest offsets, not the committed ones.")
@click.option(
    "--flink-master",
    help="HOST:PORT of a Flink cluster's REST API (`kappactl up --flink-cluster`: 127.0.0.1:8081; "
    "Dataproc: the JobManager's REST endpoint); default: a mini-cluster in the job's process.",
)
@click.option(
    "--bigquery-dataset",
    help="PROJECT:DATASET (Terraform's `legacy`) for legacy_speed instead of the warehouse "
    "(dead letters to --bigquery-dead-letter-table; speed_late stays in the warehouse).",
)
@click.option(
    "--bigquery-dead-letter-table",
    default="migration.dead_letter",
    show_default=True,
    help="With --bigquery-dataset: DATASET.TABLE for dead letters.",
)
def speed(config: Config, from_earliest: bool, **options: Any) -> None:
    """Run the speed layer (PyFlink, in .venv-flink) until stopped (SIGTERM stops with a savepoint)."""
    from lambda_legacy.speed.launcher import SpeedOptions, run_speed_job

    opts = SpeedOptions(starting_offsets="earliest" if from_earliest else "committed", **options)
    raise SystemExit(0 if run_speed_job(config, opts) in (0, -signal.SIGTERM) else 5)


@legacy.command()
@with_config
@click.option("--warehouse", help="Warehouse root; default: paths.warehouse_root.")
@click.option("--tweet-id", type=int, help="Only this tweet.")
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True)
@click.option("--dry-run", is_flag=True, help="Print the view SQL (DuckDB and BigQuery) instead.")
def merged(config: Config, warehouse: str | None, tweet_id: int | None, limit: int, dry_run: bool) -> None:
    """Query the legacy merge, the `legacy_serving` view (batch wins for periods with a finished run)."""
    from lambda_legacy import merge

    if dry_run:
        click.echo(merge.legacy_batch_served_sql(config.time.window_ms))
        click.echo(merge.legacy_serving_sql(config.time.window_ms))
        click.echo(merge.bigquery_sql("PROJECT", "DATASET", config.time.batch_period_s))
        return
    con = merge.connect_with_legacy_views(
        str(warehouse or config.paths.warehouse_root), config.time.window_ms
    )
    where = "WHERE tweet_id = ?" if tweet_id is not None else ""
    params = [tweet_id] if tweet_id is not None else []
    rows = con.execute(
        f"SELECT window_start, tweet_id, event_type, count, pipeline FROM legacy_serving {where} "
        f"ORDER BY window_start DESC, count DESC LIMIT {limit}",
        params,
    ).fetchall()
    for window_start, tid, event_type, count, pipeline in rows:
        click.echo(f"{window_start:%Y-%m-%dT%H:%M:%SZ}  {tid:>12}  {event_type:<14} {count:>8}  {pipeline}")
