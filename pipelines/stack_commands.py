"""`kappactl up | down | status`."""

from __future__ import annotations

import json

import click

from pipelines.cli_common import with_config
from pipelines.config import Config
from pipelines.stack import LocalStack


def _print_table(statuses: list) -> None:
    for s in statuses:
        mark = "healthy" if s.healthy else "DOWN"
        pid = s.pid if s.pid is not None else "-"
        click.echo(
            f"{s.name:<8} {mark:<8} pid={pid:<8} port={s.port}{'' if s.managed else '  (not started by up)'}"
        )


@click.command()
@with_config
def up(config: Config) -> None:
    """Start Kafka (KRaft, 127.0.0.1) and the Pub/Sub emulator; create the topic and subscriptions.

    Idempotent: components already started by `up` are left running. If PUBSUB_EMULATOR_HOST
    is set, that emulator is used instead of starting one."""
    click.echo("starting the local stack ...", err=True)
    _print_table(LocalStack(config).up())


@click.command()
@with_config
def down(config: Config) -> None:
    """Stop the components `up` started (by their pid files); nothing else."""
    stopped = LocalStack(config).down()
    click.echo(f"stopped: {', '.join(stopped)}" if stopped else "nothing to stop")


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
@with_config
def status(config: Config, as_json: bool) -> None:
    """Health, pid and port of each component. Exits 4 when one is down."""
    statuses = LocalStack(config).status()
    if as_json:
        click.echo(json.dumps([s.as_json() for s in statuses], indent=2))
    else:
        _print_table(statuses)
    if not all(s.healthy for s in statuses):
        raise SystemExit(4)
