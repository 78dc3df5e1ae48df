"""mkdocs hook: the reference pages' tables are generated from the code at build time, and the
benchmark pages include `bench/results/` as it is, so neither can drift from what it documents.

A page asks for a table with a marker line, e.g. `<!-- generated: config-keys -->`, and for a
file of the repository with `<!-- include: bench/results/latest.md -->`. An unknown marker, or
a source that moved, fails the build (the site is built with --strict)."""

from __future__ import annotations

import ast
import dataclasses
import importlib
import inspect
import io
import re
import sys
import tokenize
import typing
from pathlib import Path
from typing import Any, Callable

import yaml
from markdown import Markdown
from markdown.extensions import Extension
from markdown.preprocessors import Preprocessor
from mkdocs.config.defaults import MkDocsConfig
from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File, Files
from mkdocs.structure.pages import Page

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # the hook imports the project's own modules
    sys.path.insert(0, str(ROOT))

# Where each generated table reads from; a module that moves is renamed here.
CONFIG_MODULE = "pipelines.config"
POLICY_MODULE = "migration.policy"
SPEC_MODULE = "migration.validator.spec"
ERRORS_MODULE = "pipelines.errors"
CLI_COMMON_MODULE = "pipelines.cli_common"
VERDICT_MODULE = "migration.validator.report"
PROFILES = ("config/demo.yaml", "config/production.yaml", "config/gcp-emulated.yaml")
# Files outside docs/ the pages show: repository path -> path in the site.
ASSETS = {
    "bench/results/console-demo.png": "assets/console-demo.png",
    "bench/results/console.png": "assets/console.png",
}

_MARKER = re.compile(r"^<!-- (generated|include): ([\w./-]+) -->$", re.MULTILINE)


def _module(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise PluginError(f"docs/_hooks/reference.py: cannot import {name} ({exc}); update the hook") from exc


def _field_comments(cls: type) -> dict[str, str]:
    """Each dataclass field's comment in the source: the comment lines right above it and the
    one at the end of its line."""
    source = inspect.getsource(cls)
    lines = source.splitlines()
    comments: dict[int, str] = {}
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            comments[token.start[0]] = token.string.lstrip("#").strip()
    out: dict[str, str] = {}
    for node in ast.parse(source).body[0].body:  # type: ignore[attr-defined]
        if not isinstance(node, ast.AnnAssign) or not isinstance(node.target, ast.Name):
            continue
        above: list[str] = []
        line = node.lineno - 1
        while line >= 1 and lines[line - 1].strip().startswith("#"):
            above.insert(0, comments.get(line, ""))
            line -= 1
        trailing = comments.get(node.end_lineno or node.lineno)
        text = " ".join(part for part in [trailing or "", *above] if part)
        out[node.target.id] = text.replace("fmt: skip", "").strip()
    return out


def _docstring(cls: type) -> str:
    """The class's own docstring ("" for the one dataclass writes from the fields)."""
    doc = inspect.getdoc(cls) or ""
    return "" if doc.startswith(f"{cls.__name__}(") else doc


def _yaml_comments(path: Path) -> dict[str, str]:
    """`section.key` (or `key` at the top) -> the comment at the end of its line in a YAML file."""
    out: dict[str, str] = {}
    section = ""
    for line in path.read_text(encoding="utf-8").splitlines():
        match = re.match(r"^(\s*)([A-Za-z_]+):(.*)$", line)
        if not match:
            continue
        indent, key, rest = match.groups()
        if not indent:
            section = key
        dotted = f"{section}.{key}" if indent else key
        if "#" in rest:
            out[dotted] = rest.split("#", 1)[1].strip()
    return out


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def _show(value: Any) -> str:
    if value is dataclasses.MISSING:
        return "*required*"
    text = yaml.safe_dump(_plain(value), default_flow_style=True, width=1000).strip()
    text = text.removesuffix("\n...").removesuffix("...").strip()
    return f"`{text}`" if text else '`""`'


def _default(f: dataclasses.Field[Any]) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return dataclasses.MISSING


def _meta(f: dataclasses.Field[Any]) -> str:
    """A field's own description, where it declares one (`field(metadata={"doc": ...})`)."""
    return str(f.metadata.get("doc") or f.metadata.get("help") or "")


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _sections(config_cls: type) -> list[tuple[str, type, bool]]:
    """(YAML section, its dataclass, optional) for every dataclass-typed field of `Config`."""
    module = sys.modules[config_cls.__module__]
    hints = typing.get_type_hints(config_cls, vars(module))
    out: list[tuple[str, type, bool]] = []
    for f in dataclasses.fields(config_cls):
        hint = hints[f.name]
        args = [a for a in typing.get_args(hint) if a is not type(None)] or [hint]
        if isinstance(args[0], type) and dataclasses.is_dataclass(args[0]):
            out.append((f.name, args[0], len(typing.get_args(hint)) > 1))
    return out


def config_keys() -> str:
    config = _module(CONFIG_MODULE)
    profiles = {p: yaml.safe_load((ROOT / p).read_text(encoding="utf-8")) for p in PROFILES}
    yaml_notes: dict[str, str] = {}
    for p in PROFILES:
        for key, note in _yaml_comments(ROOT / p).items():
            yaml_notes.setdefault(key, note)
    names = [Path(p).stem for p in PROFILES]
    out = []
    for section, cls, optional in _sections(config.Config):
        doc = _docstring(cls)
        title = f"### `{section}`" + (" (cloud profile only)" if optional else "")
        header = "| key | type | default | " + " | ".join(f"`{n}`" for n in names) + " | meaning |"
        out += [title, "", " ".join(doc.split("\n\n")[0].split()), "", header]
        out.append("|---|---|---|" + "---|" * len(names) + "---|")
        notes = _field_comments(cls)
        for f in dataclasses.fields(cls):
            values = [(profiles[p].get(section) or {}).get(f.name, "") for p in PROFILES]
            shown = [_show(v) if v != "" else "" for v in values]
            meaning = _meta(f) or notes.get(f.name) or yaml_notes.get(f"{section}.{f.name}", "")
            out.append(
                f"| `{section}.{f.name}` | `{f.type}` | {_show(_default(f))} | "
                + " | ".join(_cell(s) for s in shown)
                + f" | {_cell(meaning)} |"
            )
        out.append("")
    return "\n".join(out)


def policy_keys() -> str:
    policy = _module(POLICY_MODULE)
    notes = _field_comments(policy.Policy)
    shipped = yaml.safe_load((ROOT / "config/policy.yaml").read_text(encoding="utf-8")) or {}
    yaml_notes = _yaml_comments(ROOT / "config/policy.yaml")
    out = ["| key | type | default | `config/policy.yaml` | meaning |", "|---|---|---|---|---|"]
    for f in dataclasses.fields(policy.Policy):
        meaning = _meta(f) or notes.get(f.name) or yaml_notes.get(f.name, "")
        value = _show(shipped[f.name]) if f.name in shipped else ""
        out.append(f"| `{f.name}` | `{f.type}` | {_show(_default(f))} | {value} | {_cell(meaning)} |")
    return "\n".join(out)


def spec_keys() -> str:
    spec = _module(SPEC_MODULE)
    fields_ = {f.name: f for f in dataclasses.fields(spec.Spec)}
    notes = _field_comments(spec.Spec)
    # A key whose field has another name in the Spec object, and the values a key takes.
    field_of = {getattr(spec, "EXPLAIN", "explain"): "archive"}
    values = {
        "kind": getattr(spec, "KINDS", ()),
        "left": [f"{{{k}: ...}}" for k in getattr(spec, "SOURCE_KINDS", ())],
        "right": [f"{{{k}: ...}}" for k in getattr(spec, "SOURCE_KINDS", ())],
        "reference": [f"{{{k}: ...}}" for k in getattr(spec, "SOURCE_KINDS", ())],
        "tolerance": getattr(spec, "TOLERANCE_KEYS", ()),
        "metrics": [f"{{column: C, tolerance: {{{k}: X}}}}" for k in getattr(spec, "TOLERANCE_KEYS", ())],
        "finality": [
            *getattr(spec, "FINALITY_KEYS", ()),
            *(f"rules: {r}" for r in getattr(spec, "FINALITY_RULES", ())),
        ],
        "aggregates": getattr(spec, "AGGREGATE_FUNCTIONS", ()),
        "explain": ["{archive: PATH}"],
    }
    out = ["| key | field type | default | takes | note in the code |", "|---|---|---|---|---|"]
    for key in spec.TOP_LEVEL:
        f = fields_.get(field_of.get(key, key))
        kind = f"`{f.type}`" if f else ""
        default = _show(_default(f)) if f else ""
        takes = ", ".join(f"`{v}`" for v in values.get(key, ()))
        note = notes.get(f.name, "") if f else ""
        out.append(f"| `{key}` | {_cell(kind)} | {_cell(default)} | {_cell(takes)} | {_cell(note)} |")
    return "\n".join(out)


def _error_classes(base: type) -> list[Any]:
    out: list[Any] = []
    subclasses: list[type] = base.__subclasses__()
    for cls in subclasses:
        out += [cls, *_error_classes(cls)]
    return out


def exit_codes() -> str:
    errors = _module(ERRORS_MODULE)
    cli_common = _module(CLI_COMMON_MODULE)
    verdicts = _module(VERDICT_MODULE).EXIT_CODES
    rows: dict[int, list[str]] = {0: ["success"]}
    for verdict, code in sorted(verdicts.items(), key=lambda item: item[1]):
        rows.setdefault(code, []).append(f"`validate`: {verdict}")
    rows.setdefault(cli_common.USAGE_EXIT, []).append("a bad command line (click's usage errors)")
    for cls in _error_classes(errors.KappaError):
        if cls.__module__ == errors.__name__:
            doc = (inspect.getdoc(cls) or "").split("\n")[0].rstrip(".")
            rows.setdefault(cls.exit_code, []).append(f"`{cls.__name__}`: {doc}")
    rows.setdefault(cli_common.INTERRUPTED_EXIT, []).append("interrupted (Ctrl-C) or aborted")
    out = ["| code | meaning |", "|---|---|"]
    out += [f"| {code} | {_cell('; '.join(items))} |" for code, items in sorted(rows.items())]
    return "\n".join(out)


PLOTS = "bench/results/plots"


def _plots() -> list[Path]:
    return sorted((ROOT / PLOTS).glob("*.png"))


def bench_plots() -> str:
    """One section per plot `make bench` drew, named by its figure."""
    out = []
    for plot in _plots():
        out += [f"### `{plot.stem}`", "", f"![{plot.stem}](../assets/plots/{plot.name})", ""]
    return "\n".join(out) or "No plots yet: `make bench` draws them."


GENERATED: dict[str, Callable[[], str]] = {
    "bench-plots": bench_plots,
    "config-keys": config_keys,
    "policy-keys": policy_keys,
    "spec-keys": spec_keys,
    "exit-codes": exit_codes,
}


def _include(path: str) -> str:
    """A repository file's Markdown, its headings one level down (the page keeps its title)."""
    source = ROOT / path
    if not source.is_file():
        raise PluginError(f"docs/_hooks/reference.py: {path} not found")
    text = source.read_text(encoding="utf-8")
    return re.sub(r"^(#+) ", lambda m: "#" + m.group(1) + " ", text, flags=re.MULTILINE)


# Help texts write placeholders as <name> (`<archive_root>/dt=...`); Markdown would pass them
# on as HTML tags, which a browser hides. Escaped after mkdocs-click (141) has expanded the
# help, before fenced code (25) and raw HTML (20) are read; code keeps them as they are.
_PLACEHOLDER = re.compile(r"<([A-Za-z_][\w.-]*)>")
_HTML_TAGS = {
    "a",
    "b",
    "br",
    "code",
    "details",
    "div",
    "em",
    "i",
    "img",
    "kbd",
    "p",
    "span",
    "strong",
    "summary",
}


def _escape_placeholders(line: str) -> str:
    parts = line.split("`")
    for i in range(0, len(parts), 2):  # outside inline code
        parts[i] = _PLACEHOLDER.sub(
            lambda m: m.group(0) if m.group(1).lower() in _HTML_TAGS else f"&lt;{m.group(1)}&gt;", parts[i]
        )
    return "`".join(parts)


class _Placeholders(Preprocessor):
    def run(self, lines: list[str]) -> list[str]:
        out, fenced = [], False
        for line in lines:
            if line.lstrip().startswith(("```", "~~~")):
                fenced = not fenced
            out.append(line if fenced or line.startswith("    ") else _escape_placeholders(line))
        return out


class _PlaceholderExtension(Extension):
    def extendMarkdown(self, md: Markdown) -> None:  # noqa: N802 - Markdown's name
        md.preprocessors.register(_Placeholders(md), "kappa_placeholders", 100)


def on_config(config: MkDocsConfig) -> MkDocsConfig:
    config.markdown_extensions.append(_PlaceholderExtension())
    return config


def on_files(files: Files, config: MkDocsConfig) -> Files:
    for source, dest in ASSETS.items():
        files.append(File.generated(config, dest, abs_src_path=str(ROOT / source)))
    for plot in _plots():
        files.append(File.generated(config, f"assets/plots/{plot.name}", abs_src_path=str(plot)))
    return files


def on_page_markdown(markdown: str, page: Page, config: MkDocsConfig, files: Files) -> str:
    def replace(match: re.Match[str]) -> str:
        what, name = match.groups()
        if what == "include":
            return _include(name)
        if name not in GENERATED:
            raise PluginError(f"{page.file.src_uri}: unknown marker 'generated: {name}'")
        return GENERATED[name]()

    return _MARKER.sub(replace, markdown)
