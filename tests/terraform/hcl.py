"""Helpers of the static Terraform checks: the tree's paths and python-hcl2's output made
plain (quotes, '${...}' and '__is_block__' keys stripped), shared by the test modules."""

from __future__ import annotations

import re
import shutil
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


def block_text(text: str, header: str) -> str:
    """The source of the block that opens with `header` (e.g. 'variable "timing"'), braces
    balanced outside strings (an error message may hold a brace)."""
    start = text.index("{", text.index(header + " {"))
    depth, in_string, escaped = 0, False, False
    for i in range(start, len(text)):
        char = text[i]
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
            continue
        if char == '"':
            in_string = True
        depth += {"{": 1, "}": -1}.get(char, 0)
        if depth == 0:
            return text[text.index(header + " {") : i + 1]
    raise AssertionError(f"unbalanced block {header}")


def terraform_binary() -> str | None:
    """terraform or OpenTofu, on PATH or in .local/bin (what `make setup` installs)."""
    for name in ("terraform", "tofu"):
        found = shutil.which(name)
        if found:
            return found
        local = ROOT / ".local" / "bin" / name
        if local.is_file():
            return str(local)
    return None
