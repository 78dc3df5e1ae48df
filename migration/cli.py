"""`kappactl`: a thin dispatcher. Each command lives with the concern it drives and is
imported only when used, so `kappactl up --help` does not load Beam or Ibis."""

from __future__ import annotations

import importlib
from typing import Any

import click

from pipelines.cli_common import run_command

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
    "legacy": ("lambda_legacy.commands:legacy", "Legacy Lambda arms: batch, speed, merged."),
    "kappa": ("kappa.commands:kappa", "Kappa job: streaming run and backfill."),
    "validate": ("migration.validator.commands:validate", "Compare two arms and give a verdict."),
    "cutover": ("migration.cutover.commands:cutover", "Cutover state: status, advance, rollback, history."),
    "serve": ("migration.serving.commands:serve", "Run the serving API (routes reads by cutover state)."),
    "demo": ("migration.demo:demo", "Run the whole dual run end to end."),
    "bench": ("bench.commands:bench", "Run the benchmarks and write bench/results."),
}


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


def main(argv: list[str] | None = None) -> Any:
    """kappactl with one-line errors and exit codes (pipelines.cli_common.run_command)."""
    return run_command(cli, argv)


if __name__ == "__main__":
    main()
