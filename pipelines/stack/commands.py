"""`kappactl up | down | status`."""

from __future__ import annotations

import json

import click

from pipelines.cli_common import with_config
from pipelines.config import Config
from pipelines.stack.flink_cluster import ClusterSettings, FlinkCluster
from pipelines.stack.kappa_cluster import KappaCluster
from pipelines.stack.local import LocalStack


def _print_table(statuses: list) -> None:
    for s in statuses:
        mark = "healthy" if s.healthy else "DOWN"
        pid = s.pid if s.pid is not None else "-"
        click.echo(
            f"{s.name:<8} {mark:<8} pid={pid:<8} port={s.port}{'' if s.managed else '  (not started by up)'}"
            + (f"  {s.detail}" if s.detail else "")
        )


def _cluster(config: Config, settings: ClusterSettings | None = None) -> FlinkCluster:
    return FlinkCluster(LocalStack(config).state_dir, settings)


@click.command()
@click.option(
    "--flink-cluster",
    is_flag=True,
    help="Also start a standalone Flink cluster (1 JobManager, 2 TaskManagers).",
)
@click.option("--flink-rest-port", type=click.IntRange(1, 65535), default=8081, show_default=True,
              help="With --flink-cluster: the JobManager's REST port on 127.0.0.1.")  # fmt: skip
@click.option("--flink-rpc-port", type=click.IntRange(1, 65535), default=6123, show_default=True,
              help="With --flink-cluster: the JobManager's RPC port on 127.0.0.1.")  # fmt: skip
@click.option("--flink-slots", type=click.IntRange(min=1), default=4, show_default=True,
              help="With --flink-cluster: task slots per TaskManager.")  # fmt: skip
@click.option(
    "--kappa-cluster",
    is_flag=True,
    help="Also start the Kappa arm's Flink 1.19 cluster, Beam job server and Kafka expansion service "
    "(`kappa run --runner flink`; ports in the config's kappa_flink section).",
)
@with_config
def up(
    config: Config,
    flink_cluster: bool,
    flink_rest_port: int,
    flink_rpc_port: int,
    flink_slots: int,
    kappa_cluster: bool,
) -> None:
    """Start Kafka (KRaft, 127.0.0.1) and the Pub/Sub emulator; create the topic and subscriptions.

    Idempotent: components already started by `up` are left running. If PUBSUB_EMULATOR_HOST
    is set, that emulator is used instead of starting one. With --flink-cluster, also a
    standalone Flink cluster from the PyFlink package (`legacy speed --flink-master`)."""
    click.echo("starting the local stack ...", err=True)
    statuses = LocalStack(config).up()
    if flink_cluster:
        click.echo("starting the Flink cluster ...", err=True)
        statuses += _cluster(config, ClusterSettings(flink_rest_port, flink_rpc_port, slots=flink_slots)).up()
    if kappa_cluster:
        click.echo(
            "starting the Kappa cluster (Flink 1.19 + Beam job server + Kafka expansion) ...", err=True
        )
        statuses += KappaCluster.of(config).up()
    _print_table(statuses)


@click.command()
@with_config
def down(config: Config) -> None:
    """Stop the components `up` started (by their pid files); nothing else."""
    stopped = LocalStack(config).down()
    if _cluster(config).down():
        stopped.append("flink-cluster")
    if KappaCluster.of(config).down():
        stopped.append("kappa-cluster")
    click.echo(f"stopped: {', '.join(stopped)}" if stopped else "nothing to stop")


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
@with_config
def status(config: Config, as_json: bool) -> None:
    """Health, pid and port of each component (and of the Flink cluster once `up --flink-cluster`
    started it: the JobManager and each TaskManager, from its REST API; likewise the Kappa cluster
    and its Beam services once `up --kappa-cluster` started them). Exits 4 when one is down."""
    statuses = LocalStack(config).status()
    cluster = _cluster(config)
    if cluster.configured:
        statuses += cluster.status()
    kappa_cluster = KappaCluster.of(config)
    if kappa_cluster.configured:
        statuses += kappa_cluster.status()
    if as_json:
        click.echo(json.dumps([s.as_json() for s in statuses], indent=2))
    else:
        _print_table(statuses)
    if not all(s.healthy for s in statuses):
        raise SystemExit(4)
