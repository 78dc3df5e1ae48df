"""The folders are floors and imports run one way, from the ground up: `pipelines/` ->
the arms (`lambda_legacy/`, `kappa/`) -> `migration/` -> the CLI (`migration/cli.py`).
A lower floor never imports a higher one, no two of our modules import each other even by
way of others (an import inside a function counts: it is a dependency all the same), and
our own modules are never loaded by `importlib` (registration happens by passing things
in), except by the CLI's lazy loading of its commands, which keeps `kappactl --help` fast."""

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


def module_name(path: Path) -> str:
    parts = path.with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """Each of our modules -> the modules of ours it imports, wherever the import stands.
    `from a.b import c` imports module a.b.c if there is one, else a name of a.b;
    `import a.b.c` of a name that is no module imports the nearest module above it."""
    names = {module_name(path): path for path in modules()}

    def nearest(name: str) -> str:
        while name not in names and "." in name:
            name = name.rpartition(".")[0]
        return name

    graph: dict[str, set[str]] = {}
    for name, path in names.items():
        found: set[str] = set()
        for node in ast.walk(ast.parse((ROOT / path).read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found |= {nearest(alias.name) for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found |= {
                    f"{node.module}.{alias.name}"
                    if f"{node.module}.{alias.name}" in names
                    else nearest(node.module)
                    for alias in node.names
                }
        graph[name] = (found & names.keys()) - {name}
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in sorted(graph[node]):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while (top := stack.pop()) != node:
                component.append(top)
            if component:
                found.append(sorted([node, *component]))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_circle_between_our_modules():
    graph = import_graph()
    found = [
        " <-> ".join(c)
        + "\n"
        + "\n".join(f"    {a} imports {b}" for a in c for b in sorted(graph[a]) if b in c)
        for c in circles(graph)
    ]
    assert not found, "import circles:\n" + "\n".join(found)


def test_the_circle_finder_finds_a_circle_by_way_of_others_and_no_other():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set(), "e": {"d"}}
    assert circles(graph) == [["a", "b", "c"]]
    assert circles({"a": {"b"}, "b": set()}) == []


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
