"""A spec file read once and validated into a `Spec`: every problem of a file is collected
and reported in one ConfigError (exit 3), each naming its key. What needs the data (do the
columns exist, do the types agree) is checked when the sides are opened (`kinds.sides`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from migration.validator.spec.filter import parse_filter
from migration.validator.spec.model import (
    AGGREGATE_FUNCTIONS,
    AGGREGATES,
    COLUMN_AGGREGATES,
    COLUMNS,
    EXPLAIN,
    FILTER,
    FINALITY,
    FINALITY_KEYS,
    FINALITY_RULES,
    GROUP_BY,
    KEYS,
    KIND,
    KINDS,
    LEFT,
    METRIC_DIFF,
    METRICS,
    NAME,
    POLICY,
    REFERENCE,
    RIGHT,
    ROW_HASH,
    SCHEMA,
    SOURCE_KINDS,
    STREAM_KEYS,
    TOLERANCE,
    TOLERANCE_KEYS,
    TOP_LEVEL,
    TOP_N,
    FinalityRule,
    Metric,
    Source,
    Spec,
    Tolerance,
)
from pipelines.config import parse_duration, seconds_to_ms
from pipelines.errors import ConfigError, InputError
from pipelines.yaml_io import read_yaml


def _names(value: Any, key: str, errors: list[str], required: bool) -> tuple[str, ...]:
    if value is None:
        if required:
            errors.append(f"{key}: required (a list of column names)")
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        errors.append(f"{key}: must be a list of column names, got {value!r}")
        return ()
    if len(set(value)) != len(value):
        errors.append(f"{key}: names a column twice ({value})")
    if required and not value:
        errors.append(f"{key}: must name at least one column")
    return tuple(value)


def _source(value: Any, key: str, errors: list[str]) -> Source | None:
    if not isinstance(value, Mapping) or len(value) != 1:
        errors.append(f"{key}: must be one of {{path: GLOB}}, {{csv: PATH}}, {{table: NAME}}, "
                      f"{{bigquery: PROJECT.DATASET.TABLE}}, got {value!r}")  # fmt: skip
        return None
    ((kind, where),) = value.items()
    if kind not in SOURCE_KINDS:
        errors.append(f"{key}.{kind}: unknown source kind; use one of {', '.join(SOURCE_KINDS)}")
        return None
    if not isinstance(where, str) or not where.strip():
        errors.append(f"{key}.{kind}: must be a non-empty string, got {where!r}")
        return None
    if kind == "bigquery" and where.count(".") != 2:
        errors.append(f"{key}.bigquery: must be PROJECT.DATASET.TABLE, got {where!r}")
        return None
    if kind == "table" and not where.replace("_", "").replace(".", "").isalnum():
        errors.append(f"{key}.table: {where!r} is not a table name (letters, digits, '_' and '.')")
        return None
    return Source(str(kind), where)


def _tolerance(value: Any, key: str, errors: list[str]) -> Tolerance:
    if value is None:
        return Tolerance()
    if not isinstance(value, Mapping) or not value:
        errors.append(f"{key}: must be {{absolute: X}} and/or {{relative: X}}, got {value!r}")
        return Tolerance()
    out = {}
    for name, number in value.items():
        if name not in TOLERANCE_KEYS:
            errors.append(f"{key}.{name}: unknown key; use absolute or relative")
        elif isinstance(number, bool) or not isinstance(number, (int, float)) or number < 0:
            errors.append(f"{key}.{name}: must be a non-negative number, got {number!r}")
        else:
            out[str(name)] = float(number)
    return Tolerance(**out)


def _metrics(value: Any, errors: list[str]) -> tuple[Metric, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        errors.append(f"metrics: must be a list of {{column: NAME, tolerance: ...}}, got {value!r}")
        return ()
    out = []
    for i, item in enumerate(value):
        item = {"column": item} if isinstance(item, str) else item
        if not isinstance(item, Mapping) or not isinstance(item.get("column"), str):
            errors.append(f"metrics[{i}]: must be {{column: NAME}} (tolerance optional), got {item!r}")
            continue
        for extra in set(item) - {"column", TOLERANCE}:
            errors.append(f"metrics[{i}].{extra}: unknown key; use column and tolerance")
        out.append(Metric(item["column"], _tolerance(item.get(TOLERANCE), f"metrics[{i}].tolerance", errors)))
    names = [m.column for m in out]
    if len(set(names)) != len(names):
        errors.append(f"metrics: names a column twice ({names})")
    return tuple(out)


def _finality(value: Any, keys: tuple[str, ...], errors: list[str]) -> FinalityRule | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        errors.append(f"finality: must be {{column: NAME, lateness: 1d}} or {{rules: arms}}, got {value!r}")
        return None
    for extra in set(value) - set(FINALITY_KEYS):
        errors.append(f"finality.{extra}: unknown key; use {', '.join(FINALITY_KEYS)}")
    if "rules" in value:
        if value["rules"] not in FINALITY_RULES or len(value) > 1:
            errors.append(f"finality.rules: only 'arms', and alone, got {dict(value)!r}")
        return FinalityRule(arm_rules=True)
    column = value.get("column")
    if not isinstance(column, str) or column not in keys:
        errors.append(f"finality.column: must be one of the keys {list(keys)}, got {column!r}")
        return None
    try:
        given = value.get("lateness")
        lateness = 0.0 if given in (None, 0) else parse_duration(given)
    except ValueError as exc:
        errors.append(f"finality.lateness: {exc}")
        return None
    return FinalityRule(column=column, lateness_ms=seconds_to_ms(lateness))


def _checked_kind(raw: Mapping[str, Any], errors: list[str]) -> str:
    kind = raw.get(KIND, METRIC_DIFF)
    if kind not in KINDS:
        errors.append(f"kind: unknown kind {kind!r}; use one of {', '.join(KINDS)}")
        return METRIC_DIFF
    return str(kind)


def _kind_rules(spec: dict[str, Any], raw: Mapping[str, Any], errors: list[str]) -> None:
    """What each kind needs and what it does not take."""
    kind = spec["kind"]
    if kind == METRIC_DIFF and not spec["metrics"]:
        errors.append("metrics: required by kind metric_diff (or use kind row_hash to compare whole rows)")
    if kind in (METRIC_DIFF, ROW_HASH) and not spec["keys"]:
        errors.append(f"keys: required by kind {kind}")
    if kind != METRIC_DIFF:
        for key in (METRICS, EXPLAIN, REFERENCE):
            if key in raw:
                errors.append(f"{key}: only kind metric_diff takes it (this spec is kind {kind})")
    if kind != COLUMN_AGGREGATES:
        for key in (GROUP_BY, AGGREGATES, TOLERANCE):
            if key in raw:
                errors.append(f"{key}: only kind aggregates takes it (this spec is kind {kind})")
    if kind in (SCHEMA, COLUMN_AGGREGATES) and FINALITY in raw:
        errors.append(f"finality: kinds metric_diff and row_hash take it, not {kind}")
    finality = spec["finality"]
    if (finality and finality.arm_rules) or spec["archive"] or spec["reference"]:
        _streaming_rules(spec, raw, errors)
    overlap = set(spec["keys"]) & {m.column for m in spec["metrics"]}
    if overlap:
        errors.append(f"metrics: {sorted(overlap)} are keys, not metrics")


def _streaming_rules(spec: dict[str, Any], raw: Mapping[str, Any], errors: list[str]) -> None:
    """`finality: {rules: arms}`, `explain` and `reference` read the aggregate rows of
    DESIGN.md 2.3: these keys and one exact metric `count`, no filter."""
    why = "finality rules: arms, explain and reference compare interaction counts, so they need"
    if spec["keys"] != STREAM_KEYS:
        errors.append(f"keys: {why} keys {list(STREAM_KEYS)}")
    if spec["metrics"] != (Metric("count"),):
        errors.append(f"metrics: {why} the one exact metric count")
    if FILTER in raw:
        errors.append(f"filter: {why} no filter (use --since/--until)")
    for key in (LEFT, RIGHT, REFERENCE):
        side = raw.get(key)
        if isinstance(side, Mapping) and set(side) - {"table", "path"}:
            errors.append(f"{key}: {why} a warehouse table or Parquet files")
    if spec.get("left") is not None and spec.get("left") == spec.get("right"):
        errors.append(f"right: the same arm as left ({spec['left'].label}): compare two different arms")


def _archive(value: Any, errors: list[str]) -> str | None:
    if value is None:
        return None
    if not isinstance(value, Mapping) or set(value) != {"archive"} or not isinstance(value["archive"], str):
        errors.append(f"explain: must be {{archive: PATH}}, got {value!r}")
        return None
    return str(value["archive"])


def _aggregates(value: Any, errors: list[str]) -> tuple[str, ...]:
    if value is None:
        return AGGREGATE_FUNCTIONS
    names = _names(value, AGGREGATES, errors, required=True)
    for name in names:
        if name not in AGGREGATE_FUNCTIONS:
            errors.append(f"aggregates: unknown aggregate {name!r}; use {', '.join(AGGREGATE_FUNCTIONS)}")
    return names


def parse_spec(raw: Any, origin: str = "<dict>") -> Spec:
    """The typed spec, or one ConfigError naming every bad key of it."""
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{origin}: a validation spec must be a YAML mapping")
    errors = [f"unknown key '{k}'; keys are {', '.join(TOP_LEVEL)}" for k in raw if k not in TOP_LEVEL]
    name = raw.get(NAME)
    if not isinstance(name, str) or not name.replace("_", "").replace("-", "").isalnum():
        errors.append(f"name: required, letters, digits, '_' and '-' only, got {name!r}")
    left = _source(raw.get(LEFT), LEFT, errors)
    right = _source(raw.get(RIGHT), RIGHT, errors)
    keys = _names(raw.get(KEYS), KEYS, errors, required=False)
    top_n = raw.get(TOP_N)
    if top_n is not None and (isinstance(top_n, bool) or not isinstance(top_n, int) or top_n < 0):
        errors.append(f"top_n: must be a non-negative integer, got {top_n!r}")
    flt = raw.get(FILTER)
    if flt is not None:
        try:
            parse_filter(flt)
        except InputError as exc:
            errors.append(str(exc))
    group_by = raw.get(GROUP_BY)
    if group_by is not None and not isinstance(group_by, str):
        errors.append(f"group_by: must be one column name, got {group_by!r}")
    policy = raw.get(POLICY) or {}
    if not isinstance(policy, Mapping):
        errors.append(f"policy: must be a mapping of policy keys, got {policy!r}")
        policy = {}
    fields: dict[str, Any] = {
        "kind": _checked_kind(raw, errors),
        "keys": keys,
        "metrics": _metrics(raw.get(METRICS), errors),
        "finality": _finality(raw.get(FINALITY), keys, errors),
        "columns": _names(raw.get(COLUMNS), COLUMNS, errors, required=False),
        "aggregates": _aggregates(raw.get(AGGREGATES), errors),
        "tolerance": _tolerance(raw.get(TOLERANCE), TOLERANCE, errors),
        "archive": _archive(raw.get(EXPLAIN), errors),
        "reference": _source(raw[REFERENCE], REFERENCE, errors) if raw.get(REFERENCE) else None,
    }
    _kind_rules({**fields, "left": left, "right": right}, raw, errors)
    if errors:
        raise ConfigError(f"{origin}: " + "; ".join(errors))
    assert left is not None and right is not None
    return Spec(name=str(name), left=left, right=right, filter=flt, group_by=group_by, policy=dict(policy),
                top_n=top_n, origin=origin, **fields)  # fmt: skip


def load_spec(path: str | Path) -> Spec:
    return parse_spec(read_yaml(Path(path), "validation spec"), str(path))


def load_specs(paths: list[str]) -> list[Spec]:
    """Every spec named (a directory means its *.yaml and *.yml files, sorted); the
    problems of all of them in one ConfigError; two specs may not share a name."""
    files: list[Path] = []
    errors: list[str] = []
    for given in paths:
        p = Path(given)
        if p.is_dir():
            found = sorted([*p.glob("*.yaml"), *p.glob("*.yml")])
            if not found:
                errors.append(f"{p}: no *.yaml spec in this folder")
            files += found
        else:
            files.append(p)
    specs = []
    for f in files:
        try:
            specs.append(load_spec(f))
        except ConfigError as exc:
            errors.append(str(exc))
    names = [s.name for s in specs]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        errors.append(f"spec names must differ within a run: {', '.join(twice)} appear twice")
    if errors:
        raise ConfigError(" | ".join(errors))
    return specs
