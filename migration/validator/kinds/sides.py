"""The two sides of a spec as Ibis tables, filtered and checked against what the kind reads.

Both sides live in one engine (`engines`), so the join is pushed down whole. The spec's
`filter` is a restricted predicate (`spec.filter`) turned into an Ibis expression, which
each engine compiles in its own dialect. The type-compatibility table (`compatibility`) is
shared by the schema kind and by the checks of key and metric columns.
"""

from __future__ import annotations

from dataclasses import dataclass

import ibis.expr.datatypes as dt
import ibis.expr.types as ir

from migration.validator.engines import Engine
from migration.validator.spec.filter import filter_predicate
from migration.validator.spec.model import COLUMN_AGGREGATES, METRIC_DIFF, ROW_HASH, Spec
from pipelines.errors import InputError

SAME_TYPE, COMPATIBLE, INCOMPATIBLE = "SAME", "COMPATIBLE", "INCOMPATIBLE"
NUMERIC = ("integer", "decimal", "floating")
# Families that differ but hold the same values for a comparison (numeric widening).
COMPATIBLE_FAMILIES = {frozenset(p) for p in (("integer", "decimal"), ("integer", "floating"),
                                              ("decimal", "floating"))}  # fmt: skip


def family(t: dt.DataType) -> str:
    """integer, decimal, floating, string, boolean, date, timestamp, time, binary or the type."""
    checks = (("integer", t.is_integer), ("decimal", t.is_decimal), ("floating", t.is_floating),
              ("string", t.is_string), ("boolean", t.is_boolean), ("date", t.is_date),
              ("timestamp", t.is_timestamp), ("time", t.is_time), ("binary", t.is_binary))  # fmt: skip
    return next((name for name, check in checks if check()), str(t))


def compatibility(left: dt.DataType, right: dt.DataType) -> str:
    """SAME (equal types, nullability aside), COMPATIBLE (same family, e.g. int32 and
    int64, or numeric widening, e.g. int64 and float64) or INCOMPATIBLE."""
    if left.copy(nullable=True) == right.copy(nullable=True):
        return SAME_TYPE
    a, b = family(left), family(right)
    if a == b or frozenset((a, b)) in COMPATIBLE_FAMILIES:
        return COMPATIBLE
    return INCOMPATIBLE


@dataclass(frozen=True)
class Sides:
    left: ir.Table
    right: ir.Table


def apply_filter(t: ir.Table, text: str | None, role: str) -> ir.Table:
    """`t` with the spec's filter, an Ibis predicate (spec.filter): no SQL text reaches the engine."""
    if not text:
        return t
    try:
        return t.filter(filter_predicate(t, text))
    except InputError as exc:
        raise InputError(f"{role}: {exc}") from exc


def _filtered(t: ir.Table, text: str | None, role: str, problems: list[str]) -> ir.Table:
    try:
        return apply_filter(t, text, role)
    except InputError as exc:
        problems.append(str(exc))
        return t


def _column_problems(spec: Spec, sides: Sides) -> list[str]:
    problems = []
    tables = {"left": sides.left, "right": sides.right}
    wanted = [("key", k) for k in spec.keys] + [("metric", m.column) for m in spec.metrics]
    wanted += [("column", c) for c in spec.columns]
    if spec.group_by:
        wanted.append(("group_by column", spec.group_by))
    for what, name in wanted:
        absent = [role for role, t in tables.items() if name not in t.columns]
        if absent:
            problems.append(f"{what} '{name}' is not a column of {' and '.join(absent)}")
            continue
        a, b = sides.left.schema()[name], sides.right.schema()[name]
        clash = compatibility(a, b) == INCOMPATIBLE
        if what in ("key", "group_by column") and (clash or "floating" in (family(a), family(b))):
            problems.append(f"{what} '{name}' is {a} on left and {b} on right: type clash")
        elif what == "metric" and not (family(a) in NUMERIC and family(b) in NUMERIC):
            problems.append(f"metric '{name}' is {a} on left and {b} on right: metrics must be numeric")
        elif what == "column" and clash and spec.kind in (COLUMN_AGGREGATES, ROW_HASH):
            problems.append(f"column '{name}' is {a} on left and {b} on right: type clash")
    rule = spec.finality
    if rule and rule.column and rule.column in sides.left.columns:
        kind = family(sides.left.schema()[rule.column])
        if kind not in ("date", "timestamp"):
            problems.append(f"finality.column '{rule.column}' is {kind}: it must be a date or a timestamp")
    return problems


def open_sides(engine: Engine, spec: Spec) -> Sides:
    """Both sides, filtered; InputError naming every missing column, type clash and filter
    problem at once."""
    problems: list[str] = []
    left = _filtered(engine.table(spec.left, "left"), spec.filter, "left", problems)
    right = _filtered(engine.table(spec.right, "right"), spec.filter, "right", problems)
    sides = Sides(left, right)
    problems += _column_problems(spec, sides)
    if problems:
        have = f"left columns: {', '.join(left.columns)}; right columns: {', '.join(right.columns)}"
        raise InputError(f"{spec.origin}: {'; '.join(problems)} ({have})")
    return sides


def default_columns(spec: Spec, sides: Sides) -> tuple[str, ...]:
    """The columns a kind compares when the spec names none: those on both sides, keys aside."""
    if spec.columns:
        return spec.columns
    skip = set(spec.keys) | ({spec.group_by} if spec.group_by else set())
    shared = [c for c in sides.left.columns if c in sides.right.columns and c not in skip]
    if spec.kind == METRIC_DIFF:
        return ()
    return tuple(shared)
