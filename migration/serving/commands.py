"""`kappactl serve`: the serving API, routing reads by the cutover state."""

from __future__ import annotations

from pathlib import Path

import click

from migration.cutover.store import default_state_location, open_store
from migration.serving.app import ServingSettings
from migration.serving.server import serve_forever
from pipelines.cli_common import with_config
from pipelines.config import Config, parse_duration, seconds_to_ms
from pipelines.errors import ConfigError


def _seconds(name: str, text: str | None) -> float | None:
    if text is None:
        return None
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise ConfigError(f"--{name}: {exc}") from exc


@click.command()
@with_config
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option(
    "--port", default=8000, show_default=True, type=click.IntRange(0, 65535), help="Port (0: any free)."
)
@click.option(
    "--warehouse", type=click.Path(path_type=Path), help="Warehouse root (default: paths.warehouse_root)."
)
@click.option(
    "--state", "state_location", help="Cutover state folder or gs://... (default: <warehouse>/../cutover)."
)
@click.option(
    "--refresh", default="2s", show_default=True, help="How often to look for new warehouse segments."
)
@click.option("--settle", default=None, help="Compare a window in shadow reads this long after it ends "
              "(default: max(kappa_allowed_lateness, batch_period + batch_delay) + 30s).")  # fmt: skip
@click.option("--policy", "policy_path", default=None, help="Policy YAML (default: config/policy.yaml).")
@click.option("--allow-actions", is_flag=True, help="Let the console advance and roll back the cutover "
              "(POST /v1/migration/advance|rollback; refused with 403 without this flag). Accepted only from "
              "this server's own console page: same Host and Origin, JSON, the page's token; recorded as "
              "the user running this command.")  # fmt: skip
@click.option("--log-level", default="info", type=click.Choice(["debug", "info", "warning", "error"]))
def serve(
    config: Config,
    host: str,
    port: int,
    warehouse: Path | None,
    state_location: str | None,
    refresh: str,
    settle: str | None,
    policy_path: str | None,
    allow_actions: bool,
    log_level: str,
) -> None:
    """Serve GET /v1/tweets/{id}/counts, /healthz, /metrics and the /console over the warehouse."""
    settings = ServingSettings.from_config(config, warehouse, refresh_s=_seconds("refresh", refresh) or 2.0)
    if (settle_s := _seconds("settle", settle)) is not None:
        settings = ServingSettings(settings.warehouse_root, settings.window_ms, settings.period_ms,
                                   seconds_to_ms(settle_s), settings.refresh_s)  # fmt: skip
    from dataclasses import replace

    from migration.policy import load_policy

    policy = load_policy(policy_path)
    cloud = config.gcp is not None and warehouse is None  # the cloud profile: BigQuery and GCS
    settings = replace(
        settings,
        shadow_tolerance=policy.shadow_relative_tolerance,
        policy=policy,
        allow_actions=allow_actions,
        bigquery_project=config.gcp.project if cloud and config.gcp else None,
    )
    default_state = config.gcp.cutover_state if cloud and config.gcp else None
    store = open_store(state_location or default_state or default_state_location(settings.warehouse_root))
    source = f"BigQuery project {settings.bigquery_project}" if cloud else str(settings.warehouse_root)
    click.echo(f"serving {source} on http://{host}:{port} (cutover state: {store.describe()})")
    actions = "actions allowed" if allow_actions else "read-only; --allow-actions enables advance/rollback"
    click.echo(f"console: http://{host}:{port}/console ({actions})")
    serve_forever(settings, store, host, port, log_level)
