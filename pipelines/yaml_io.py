"""The one YAML reader of the project's declarations: the config, the policy and validation specs.

Each file is read with `yaml.safe_load`; a missing, unreadable or malformed file is a
`ConfigError` in one line that names the file. Validating what was read into typed
objects is the caller's (every bad key reported at once).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from pipelines.errors import ConfigError, first_line


def read_yaml(path: str | os.PathLike[str], what: str, hint: str = "") -> Any:
    """The parsed content of the YAML file `path` (None when empty), `what` naming it in errors
    ("config file", "policy file", "validation spec") and `hint` saying how to find a good one."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ConfigError(f"{what} not found: {path}" + (f" ({hint})" if hint else "")) from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not valid YAML: not UTF-8 text (invalid byte at {exc.start})") from exc
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the {what} ({exc.strerror})") from exc
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {first_line(exc)}") from exc


def parse_yaml_value(text: str) -> Any:
    """One value written as YAML (a `--set KEY=VALUE` override): `10s`, `3`, `[a, b]`, `true`."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"not a YAML value: {text!r} ({first_line(exc)})") from exc
