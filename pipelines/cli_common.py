"""What every `kappactl` command shares: the `--config`/`--set` options, progress output, and
`run_command`, which runs a click command with one-line errors and the project's exit codes
(the `kappactl` CLI and both flex templates run through it)."""

from __future__ import annotations

import functools
import os
import sys
from typing import Any, Callable

import click

from pipelines.config import Config, load_config
from pipelines.errors import ConfigError, KappaError

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


# Verdict commands use 0-2; everything that is bad input or configuration exits 3.
USAGE_EXIT = 3
INTERRUPTED_EXIT = 130


def run_command(
    command: click.Command,
    argv: list[str] | None = None,
    translate: Callable[[list[str]], list[str]] | None = None,
    prog_name: str = "kappactl",
) -> Any:
    """Run `command` as a program: a click usage error exits USAGE_EXIT, a `KappaError` its
    class's exit code, each with one line `kappactl: error: ...` on stderr. `translate` (a
    flex template's) first turns argv (default sys.argv[1:]) into the command's own
    arguments, under the same error handling. `prog_name` is the name usage text shows
    (`kappactl kappa` for the kappa group run alone)."""
    try:
        if translate is not None:
            argv = translate(sys.argv[1:] if argv is None else argv)
        return command.main(args=argv, prog_name=prog_name, standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.Abort:
        click.echo("kappactl: aborted", err=True)
        sys.exit(INTERRUPTED_EXIT)
    except click.ClickException as exc:
        click.echo("kappactl: error: " + exc.format_message(), err=True)
        sys.exit(USAGE_EXIT)
    except KappaError as exc:
        click.echo(f"kappactl: error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("kappactl: interrupted", err=True)
        sys.exit(INTERRUPTED_EXIT)
