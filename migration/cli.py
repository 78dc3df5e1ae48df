"""`kappactl`: a thin dispatcher. Each command lives with the concern it drives and is
imported only when used, so `kappactl up --help` does not load Beam or Ibis."""

from __future__ import annotations

import importlib
import sys
from typing import Any, Callable

import click

from pipelines.errors import KappaError

COMMANDS: dict[str, tuple[str, str]] = {
    "up": ("pipelines.stack.commands:up", "Start the local stack: Kafka (KRaft) and the Pub/Sub emulator."),
    "down": ("pipelines.stack.commands:down", "Stop what `up` started."),
    "status": ("pipelines.stack.commands:status", "Health, pid and port of each local component."),
    "generate": ("pipelines.source.generator_commands:generate", "Produce synthetic interaction events."),
    "bridge": ("pipelines.source.bridge:bridge", "Forward Kafka to Pub/Sub (the event processors)."),
    "archive": ("pipelines.source.archiver:archive", "Archive Kafka to arrival-time partitions."),
    "archive-gcs": (
        "pipelines.gcs_archive:archive_gcs",
        "Stand-in for the Cloud Storage subscription: Pub/Sub `archive` -> gs:// objects.",
    ),
    "legacy": ("lambda_legacy.commands:legacy", "Legacy Lambda arms: batch, speed, serve."),
    "kappa": ("kappa.commands:kappa", "Kappa job: streaming run and backfill."),
    "validate": ("migration.validator.commands:validate", "Compare two arms and give a verdict."),
    "cutover": ("migration.cutover.commands:cutover", "Cutover state: status, advance, rollback, history."),
    "serve": ("migration.serving.commands:serve", "Run the serving API (routes reads by cutover state)."),
    "demo": ("migration.demo:demo", "Run the whole dual run end to end."),
    "bench": ("bench.commands:bench", "Run the benchmarks and write bench/results."),
}

# Verdict commands use 0-2; everything that is bad input or configuration exits 3.
USAGE_EXIT = 3


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        module_name, attr = COMMANDS[name][0].split(":")
        return getattr(importlib.import_module(module_name), attr)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # The summaries live here so `kappactl --help` imports no command module.
        with formatter.section("Commands"):
            formatter.write_dl([(name, summary) for name, (_, summary) in COMMANDS.items()])


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="kappa-migration")
def cli() -> None:
    """kappa-migration: run a Lambda pipeline and its Kappa replacement side by side,
    validate their outputs against each other, and cut reads over when it is safe."""


def main(argv: list[str] | None = None, translate: Callable[[list[str]], list[str]] | None = None) -> Any:
    """kappactl with one-line errors and exit codes. `translate` (a flex template's) first turns
    the given argv into kappactl's own, under the same error handling."""
    try:
        if translate is not None:
            argv = translate(sys.argv[1:] if argv is None else argv)
        return cli.main(args=argv, prog_name="kappactl", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.Abort:
        click.echo("kappactl: aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        click.echo(f"kappactl: error: {exc.format_message()}", err=True)
        sys.exit(USAGE_EXIT)
    except KappaError as exc:
        click.echo(f"kappactl: error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("kappactl: interrupted", err=True)
        sys.exit(130)


if __name__ == "__main__":
    main()
