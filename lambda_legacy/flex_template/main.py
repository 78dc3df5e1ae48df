"""Flex-template entry point of the legacy batch: the parameters of `metadata.json` (the
names Terraform's Cloud Scheduler job passes) as one `kappactl legacy batch` run of the
latest period that ended at least batch_delay ago (or of `period_start`); the rest of the
launcher's arguments are Beam's pipeline options and go through untouched.

Its image is built from kappa/flex_template/Dockerfile with
`--build-arg TEMPLATE_MAIN=lambda_legacy/flex_template/main.py` (README, "Running on Dataflow").
"""

from __future__ import annotations

import logging
from pathlib import Path

from pipelines.errors import ConfigError
from pipelines.flex import parameter_names, seconds_settings, split_parameters, table_spec

METADATA = Path(__file__).with_name("metadata.json")
TIMING = {
    "window_size_seconds": "window_size",
    "batch_period_seconds": "batch_period",
    "batch_delay_seconds": "batch_delay",
}
# The BigQuery destination writes these tables of one dataset (terraform/modules/bigquery).
TABLES = {"output_table": "legacy_batch", "batch_runs_table": "batch_runs"}


def kappactl_args(argv: list[str]) -> list[str]:
    """The `kappactl` argv for the launcher's argv."""
    params, beam_args = split_parameters(argv, parameter_names(METADATA))
    if "archive_root" not in params:
        raise ConfigError("archive_root: the gs:// root of the archive is required")
    datasets = set()
    for parameter, table in TABLES.items():
        spec = table_spec(params.get(parameter, ""), parameter)
        dataset, _, name = spec.rpartition(".")
        if name != table:
            raise ConfigError(f"{parameter}: the legacy batch writes {table}, got {spec!r}")
        datasets.add(dataset)
    if len(datasets) != 1:
        raise ConfigError("output_table and batch_runs_table must be in one dataset")
    dataset = datasets.pop()
    args = ["legacy", "batch", "--config", params.get("config", "config/production.yaml")]
    args += seconds_settings(params, TIMING)
    args += ["--archive", params["archive_root"], "--bigquery-dataset", dataset]
    if "dead_letter_table" in params:
        dead_letter = table_spec(params["dead_letter_table"], "dead_letter_table")
        project, _, table = dead_letter.partition(":")
        if project != dataset.partition(":")[0]:
            raise ConfigError("dead_letter_table must be in the project of output_table")
        args += ["--bigquery-dead-letter-table", table]
    args += ["--period-start", params["period_start"]] if "period_start" in params else ["--latest"]
    return args + beam_args


def command_args(argv: list[str]) -> list[str]:
    """The arguments of the `legacy` group itself: kappactl_args without the group's name."""
    return kappactl_args(argv)[1:]


if __name__ == "__main__":
    from lambda_legacy.commands import legacy
    from pipelines.cli_common import run_command

    logging.getLogger().setLevel(logging.INFO)
    run_command(legacy, translate=command_args, prog_name="kappactl legacy")
