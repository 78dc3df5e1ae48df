"""What the two Dataflow flex templates share: reading the launcher's arguments.

The launcher runs a template's `main.py` with every template parameter as `--name=value`
and Beam's pipeline options (`--runner`, `--project`, `--temp_location`, ...) after them.
A template's `metadata.json` is the one list of its parameter names (Terraform passes
them; a test holds the two together): `split_parameters` takes those out, and the rest
goes to Beam untouched. Each `main.py` then turns its parameters into one `kappactl`
command of its own arm and runs that arm's click group with
`pipelines.cli_common.run_command(translate=...)`, as the CLI does: a template and the CLI
are one code path, with the same one-line errors and exit codes.
"""

from __future__ import annotations

import json
from pathlib import Path

from pipelines.errors import ConfigError


def parameter_names(metadata: Path) -> set[str]:
    return {p["name"] for p in json.loads(metadata.read_text(encoding="utf-8"))["parameters"]}


def split_parameters(argv: list[str], names: set[str]) -> tuple[dict[str, str], list[str]]:
    """(template parameters, Beam arguments) of the launcher's argv."""
    params: dict[str, str] = {}
    rest: list[str] = []
    for arg in argv:
        name, eq, value = arg.removeprefix("--").partition("=")
        if arg.startswith("--") and eq and name in names:
            params[name] = value
        else:
            rest.append(arg)
    return params, rest


def table_spec(table_id: str, parameter: str) -> str:
    """PROJECT:DATASET.TABLE for Beam from Terraform's project.dataset.table (either form in)."""
    project, _, rest = table_id.replace(":", ".", 1).partition(".")
    if not project or rest.count(".") != 1 or not all(rest.split(".")):
        raise ConfigError(f"{parameter}: {table_id!r} is not project.dataset.table")
    return f"{project}:{rest}"


def seconds_settings(params: dict[str, str], config_keys: dict[str, str]) -> list[str]:
    """`--set time.<key>=<n>s` for each `<parameter>` in `config_keys` that was given."""
    out = []
    for parameter, key in config_keys.items():
        if parameter not in params:
            continue
        value = params[parameter]
        if not value.isdigit() or int(value) == 0:
            raise ConfigError(f"{parameter}: a positive whole number of seconds, got {value!r}")
        out += ["--set", f"time.{key}={value}s"]
    return out
