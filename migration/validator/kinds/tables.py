"""Table-level kinds: schema (columns and types) and column aggregates.

Schema reads metadata only. Column aggregates run one grouped aggregate per side in the
engine (count, sum, min, max and null count per column, per value of `group_by` if
given); only those aggregates come back to Python, where the two sides are compared.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import ibis.expr.types as ir

from migration.validator.classes import DIFFERENT, MISSING_IN_LEFT, MISSING_IN_RIGHT, SAME
from migration.validator.kinds import KindRun, Outcome, decide_by_keys, generic_inputs
from migration.validator.kinds.sides import (
    INCOMPATIBLE,
    NUMERIC,
    Sides,
    compatibility,
    default_columns,
    family,
    open_sides,
)
from migration.validator.report.model import KEY_CLASSES
from migration.validator.spec.model import SCHEMA, Spec, Tolerance

COMPATIBLE_TYPE = "COMPATIBLE"
# Sums of floating columns depend on the summation order: at least this relative tolerance.
FLOAT_SUM_RELATIVE = 1e-9
MAX_AGGREGATE_ITEMS = 200  # aggregate items kept in the report when all agree
_ORDERED = ("integer", "decimal", "floating", "string", "date", "timestamp", "time", "boolean")


def compare_schema(spec: Spec, sides: Sides) -> list[dict[str, Any]]:
    """One row per column: its type on each side and SAME, COMPATIBLE, INCOMPATIBLE or
    MISSING_IN_LEFT / MISSING_IN_RIGHT."""
    left, right = sides.left.schema(), sides.right.schema()
    names = list(spec.columns) or [*left.names, *(n for n in right.names if n not in left)]
    rows = []
    for name in names:
        lt, rt = left.get(name), right.get(name)
        if lt is None or rt is None:
            status = MISSING_IN_LEFT if lt is None else MISSING_IN_RIGHT
        else:
            status = {"SAME": SAME, "COMPATIBLE": COMPATIBLE_TYPE, INCOMPATIBLE: DIFFERENT}[
                compatibility(lt, rt)
            ]
        rows.append({"column": name, "left_type": str(lt) if lt else None,
                     "right_type": str(rt) if rt else None, "status": status})  # fmt: skip
    return rows


def _functions(t: ir.Table, column: str, wanted: tuple[str, ...]) -> dict[str, ir.Scalar]:
    c = t[column]
    kind = family(t.schema()[column])
    out: dict[str, ir.Scalar] = {}
    for fn in wanted:
        if fn == "count":
            out[f"{column}:count"] = c.count()
        elif fn == "null_count":
            out[f"{column}:null_count"] = t.count(where=c.isnull())
        elif fn == "sum" and kind in NUMERIC:
            out[f"{column}:sum"] = c.sum().cast("float64") if kind == "floating" else c.sum()
        elif fn in ("min", "max") and kind in _ORDERED:
            out[f"{column}:{fn}"] = c.min() if fn == "min" else c.max()
    return out


def aggregate_expr(t: ir.Table, columns: tuple[str, ...], functions: tuple[str, ...],
                   group_by: str | None) -> ir.Table:  # fmt: skip
    values: dict[str, ir.Scalar] = {"*:rows": t.count()}
    for column in columns:
        values.update(_functions(t, column, functions))
    if group_by:
        return t.group_by(group=t[group_by]).aggregate(**values)
    return t.aggregate(**values)


def _same(a: Any, b: Any, tolerance: Tolerance, floating_sum: bool) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        relative = max(tolerance.relative, FLOAT_SUM_RELATIVE if floating_sum else 0.0)
        if math.isnan(float(a)) or math.isnan(float(b)):
            return math.isnan(float(a)) and math.isnan(float(b))
        return abs(a - b) <= max(tolerance.absolute, relative * max(abs(a), abs(b)))
    return a == b


def compare_aggregates(spec: Spec, sides: Sides, fetch: Callable[[ir.Table, str], list[dict[str, Any]]]
                       ) -> list[dict[str, Any]]:  # fmt: skip
    """One item per (group, column, aggregate): its value on each side and SAME or
    DIFFERENT; a group on one side only is one MISSING_IN_LEFT / MISSING_IN_RIGHT item."""
    columns = default_columns(spec, sides)
    per_side = {}
    for role, t in (("left", sides.left), ("right", sides.right)):
        rows = fetch(aggregate_expr(t, columns, spec.aggregates, spec.group_by), f"{role} aggregates")
        per_side[role] = {row.pop("group", None): row for row in rows}
    floating = {c for c in columns if family(sides.left.schema()[c]) == "floating"}
    items = []
    left, right = per_side["left"], per_side["right"]
    for group in sorted(set(left) | set(right), key=repr):
        if group not in left or group not in right:
            status = MISSING_IN_LEFT if group not in left else MISSING_IN_RIGHT
            items.append({"group": group, "column": "*", "aggregate": "rows", "left": None, "right": None,
                          "status": status})  # fmt: skip
            continue
        for name in left[group]:
            column, fn = name.split(":")
            a, b = left[group][name], right[group].get(name)
            same = _same(a, b, spec.tolerance, fn == "sum" and column in floating)
            items.append({"group": group, "column": column, "aggregate": fn, "left": a, "right": b,
                          "status": SAME if same else DIFFERENT})  # fmt: skip
    return items


def _table_counts(statuses: list[str], compatible: str | None = None) -> dict[str, int]:
    keys = dict.fromkeys(KEY_CLASSES, 0)
    keys["total"] = len(statuses)
    for name, status in (("same", SAME), ("different", DIFFERENT), ("missing_in_left", MISSING_IN_LEFT),
                         ("missing_in_right", MISSING_IN_RIGHT), ("compatible", compatible)):  # fmt: skip
        keys[name] = statuses.count(status) if status else 0
    keys["same"] += keys["compatible"]
    keys["unexplained"] = keys["different"] + keys["missing_in_left"] + keys["missing_in_right"]
    return keys


def run(ctx: KindRun) -> Outcome:
    spec, engine = ctx.spec, ctx.engine
    sides = open_sides(engine, spec)
    sections: dict[str, Any] = {"metrics": [], "top_differing": [], "schema": [], "aggregates": []}
    if spec.kind == SCHEMA:
        rows = compare_schema(spec, sides)
        keys = _table_counts([r["status"] for r in rows], COMPATIBLE_TYPE)
        sections["schema"] = rows
    else:
        items = compare_aggregates(spec, sides, engine.rows)
        keys = _table_counts([r["status"] for r in items])
        sections["aggregates"] = [r for r in items if r["status"] != SAME] or items[:MAX_AGGREGATE_ITEMS]
    verdict, reasons = decide_by_keys(spec.kind, keys, ctx.policy)
    return Outcome(keys, verdict, reasons, sections, generic_inputs(ctx))


def sql(ctx: KindRun) -> dict[str, str]:
    return {"reads the schemas (and, for aggregates, one grouped aggregate per side)": ""}
