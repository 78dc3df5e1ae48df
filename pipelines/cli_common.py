"""What every `kappactl` command shares: the `--config`/`--set` options and progress output."""

from __future__ import annotations

import functools
import os
from typing import Any, Callable

import click

from pipelines.config import Config, load_config
from pipelines.errors import ConfigError

DEFAULT_CONFIG = "config/demo.yaml"


def _parse_sets(values: tuple[str, ...]) -> dict[str, str]:
    overrides = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set {item!r}: use SECTION.KEY=VALUE, e.g. --set time.window_size=5s")
        overrides[key.strip()] = value
    return overrides


def with_config(func: Callable[..., Any]) -> Callable[..., Any]:
    """Add `--config` and `--set` to a command and pass it the loaded `config: Config`."""

    @click.option(
        "--config",
        "config_path",
        default=lambda: os.environ.get("KAPPA_CONFIG", DEFAULT_CONFIG),
        show_default=f"$KAPPA_CONFIG or {DEFAULT_CONFIG}",
        help="YAML config file (config/demo.yaml or config/production.yaml).",
    )
    @click.option(
        "--set",
        "sets",
        multiple=True,
        metavar="SECTION.KEY=VALUE",
        help="Override one config value, e.g. --set time.window_size=5s (repeatable).",
    )
    @functools.wraps(func)
    def wrapper(*args: Any, config_path: str, sets: tuple[str, ...], **kwargs: Any) -> Any:
        config: Config = load_config(config_path, _parse_sets(sets))
        if config.gcp is not None:  # the cloud profile: the Google clients find the emulators
            for name, value in config.gcp.environment().items():
                os.environ.setdefault(name, value)
        return func(*args, config=config, **kwargs)

    return wrapper


exit_when_idle_option = click.option(
    "--exit-when-idle",
    type=click.FloatRange(min=0, min_open=True),
    metavar="S",
    help="Stop after S seconds without new records (default: run until SIGTERM).",
)


def echo_err(message: str) -> None:
    click.echo(message, err=True)
