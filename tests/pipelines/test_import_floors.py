"""The folders are floors and imports run one way, from the ground up: `pipelines/` ->
the arms (`lambda_legacy/`, `kappa/`) -> `migration/` -> the CLI (`migration/cli.py`).
A lower floor never imports a higher one, and our own modules are never loaded by
`importlib` (registration happens by passing things in), except by the CLI's lazy
loading of its commands, which keeps `kappactl --help` fast."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FLOOR = {"pipelines": 0, "lambda_legacy": 1, "kappa": 1, "migration": 2, "bench": 3}
OWN = set(FLOOR)
CLI = Path("migration/cli.py")


def modules() -> list[Path]:
    return sorted(p.relative_to(ROOT) for top in FLOOR for p in (ROOT / top).rglob("*.py"))


def imported(tree: ast.AST) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
    return found


@pytest.mark.parametrize("path", modules(), ids=str)
def test_no_module_imports_a_higher_floor(path: Path):
    own_floor = FLOOR[path.parts[0]]
    tree = ast.parse((ROOT / path).read_text(encoding="utf-8"))
    above = [
        f"{path}:{line} imports {name}"
        for line, name in imported(tree)
        if name.split(".")[0] in FLOOR and FLOOR[name.split(".")[0]] > own_floor
    ]
    assert not above, "\n".join(above)


@pytest.mark.parametrize("path", modules(), ids=str)
def test_no_importlib_for_our_own_modules(path: Path):
    if path == CLI:
        return
    tree = ast.parse((ROOT / path).read_text(encoding="utf-8"))
    calls = [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in ("import_module", "__import__")
    ]
    assert not calls, f"{path}: importlib.import_module at lines {calls}"
