"""Flex-template entry point of the Kappa job: `command=run|backfill` and the parameters of
`metadata.json` (the names Terraform passes) as one `kappactl kappa` command; the rest of
the launcher's arguments are Beam's pipeline options and go through untouched.
"""

from __future__ import annotations

import logging
from pathlib import Path

from pipelines.errors import ConfigError
from pipelines.flex import parameter_names, seconds_settings, split_parameters, table_spec

METADATA = Path(__file__).with_name("metadata.json")
TIMING = {
    "window_size_seconds": "window_size",
    "allowed_lateness_seconds": "kappa_allowed_lateness",
    "early_firing_seconds": "kappa_early_firing",
    "dedup_horizon_seconds": "dedup_horizon",
}
OPTIONS = {  # parameter -> kappactl option, value passed as it is
    "subscription": "--subscription",
    "replay_from": "--replay-from",
    "archive_root": "--archive",
    "from": "--from",
    "to": "--to",
}


def kappactl_args(argv: list[str]) -> list[str]:
    """The `kappactl` argv for the launcher's argv."""
    params, beam_args = split_parameters(argv, parameter_names(METADATA))
    command = params.get("command", "run")
    if command not in ("run", "backfill"):
        raise ConfigError(f"command: run or backfill, got {command!r}")
    args = ["kappa", command, "--config", params.get("config", "config/production.yaml")]
    args += seconds_settings(params, TIMING)
    for parameter, option in OPTIONS.items():
        if parameter in params:
            args += [option, params[parameter]]
    args += ["--bigquery-table", table_spec(params.get("output_table", ""), "output_table")]
    if "dead_letter_table" in params:
        args += ["--bigquery-dead-letter-table", table_spec(params["dead_letter_table"], "dead_letter_table")]
    return args + beam_args


def command_args(argv: list[str]) -> list[str]:
    """The arguments of the `kappa` group itself: kappactl_args without the group's name."""
    return kappactl_args(argv)[1:]


if __name__ == "__main__":
    from kappa.commands import kappa
    from pipelines.cli_common import run_command

    logging.getLogger().setLevel(logging.INFO)
    run_command(kappa, translate=command_args, prog_name="kappactl kappa")
