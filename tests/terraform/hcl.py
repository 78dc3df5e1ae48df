"""Helpers of the static Terraform checks: the tree's paths and python-hcl2's output made
plain (quotes, '${...}' and '__is_block__' keys stripped), shared by the test modules."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Iterator

ROOT = Path(__file__).resolve().parents[2]
TERRAFORM_DIR = ROOT / "terraform"
MODULES_DIR = TERRAFORM_DIR / "modules"
ENV_DIR = TERRAFORM_DIR / "envs" / "dev"
BIGQUERY_DIR = MODULES_DIR / "bigquery"

_INTERPOLATION = re.compile(r"^\$\{(.*)\}$", re.DOTALL)


def normalise(value: Any) -> Any:
    """Strip what python-hcl2 8.x keeps: quotes ('"kappa"'), '${...}' and '__is_block__'-style keys."""
    if isinstance(value, dict):
        return {normalise(k): normalise(v) for k, v in value.items() if not k.startswith("__")}
    if isinstance(value, list):
        return [normalise(v) for v in value]
    if isinstance(value, str):
        if len(value) >= 2 and value[0] == value[-1] == '"':
            return value[1:-1]
        match = _INTERPOLATION.match(value)
        return match.group(1) if match else value
    return value


def named_blocks(doc: dict[str, Any], kind: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """(name, body) of single-label blocks: variable, output, module."""
    for entry in doc.get(kind, []):
        yield from entry.items()


def locals_of(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: v for entry in doc.get("locals", []) for k, v in entry.items()}


def expand_locals(expression: str, locals_: dict[str, Any]) -> str:
    """Replace local.<name> by that local's expression, so a gate behind a local is visible."""
    return re.sub(r"local\.(\w+)", lambda m: str(locals_.get(m.group(1), m.group(0))), expression)


def only(body: dict[str, Any], key: str) -> dict[str, Any]:
    nested = body.get(key)
    assert isinstance(nested, list) and len(nested) == 1, f"expected one {key} block, got {nested!r}"
    return nested[0]
