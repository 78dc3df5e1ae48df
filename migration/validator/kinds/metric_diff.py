"""Keyed metric diff (and row hash): Ibis expressions that run where the data lives.

One full outer join of the two sides on the keys; the keys that are not SAME (a metric
outside its tolerance, or a side lacking the key) are kept and cached in the engine
(`diffs`). Class counts come from one scan of the left side plus an aggregate of the
cached diffs: every final left key is SAME, DIFFERENT or MISSING_IN_RIGHT, so SAME = final
left keys - final left keys in the diffs. Only those aggregates, the per-metric
statistics and the top-N keys come back to Python.

A metric is the same on both sides when both are null, or when
|l - r| <= max(absolute, relative x max(|l|, |r|)) (exact: equal). Row hash is the same
diff with one exact metric: a 64-bit hash of the chosen columns as text.

Finality (`finality: {column, lateness}`): a key is final when its column is at or
before min over both sides of max(column), minus lateness; otherwise it is PENDING and
left out of the verdict.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import ibis
import ibis.expr.types as ir

from migration.validator.classes import DIFFERENT, MISSING_IN_LEFT, MISSING_IN_RIGHT
from migration.validator.kinds import KindRun, Outcome, decide_by_keys, generic_inputs
from migration.validator.kinds.counts_sql import quantiles_or_null
from migration.validator.kinds.sides import Sides, compatibility, default_columns, open_sides
from migration.validator.report.model import iso
from migration.validator.spec.model import ROW_HASH, FinalityRule, Metric, Spec

HASH_METRIC = "row_hash"
_NULL_TEXT = "\x00"  # stands for NULL in the hashed text, so NULL and '' differ


@dataclass(frozen=True)
class DiffPlan:
    """Both sides as (keys, l__/r__ metrics, presence marker), ready to join."""

    left: ir.Table
    right: ir.Table
    keys: tuple[str, ...]
    metrics: tuple[Metric, ...]
    numeric: bool  # per-metric difference statistics make sense (not for a row hash)
    finality: FinalityRule | None


def _row_hash(t: ir.Table, columns: tuple[str, ...]) -> ir.IntegerValue:
    parts = [t[c].cast("string").fill_null(_NULL_TEXT) for c in columns]
    return ibis.literal("\x1f").join(parts).hash()


def prepare(spec: Spec, sides: Sides) -> DiffPlan:
    """The sides reduced to what the diff reads; right keys cast to the left's types."""
    if spec.kind == ROW_HASH:
        columns = default_columns(spec, sides)
        metrics: tuple[Metric, ...] = (Metric(HASH_METRIC),)
        values = {"left": {HASH_METRIC: _row_hash(sides.left, columns)},
                  "right": {HASH_METRIC: _row_hash(sides.right, columns)}}  # fmt: skip
    else:
        metrics = spec.metrics
        values = {role: {m.column: t[m.column] for m in metrics}
                  for role, t in (("left", sides.left), ("right", sides.right))}  # fmt: skip
    lschema = sides.left.schema()
    keyed = {}
    for role, t in (("left", sides.left), ("right", sides.right)):
        prefix = role[0]
        keys = {}
        for k in spec.keys:
            key = t[k]
            if role == "right" and compatibility(lschema[k], t.schema()[k]) != "SAME":
                key = key.cast(lschema[k])
            keys[k] = key
        cols = {f"{prefix}__{name}": value for name, value in values[role].items()}
        keyed[role] = t.select(**keys, **cols, **{f"{prefix}__present": ibis.literal(True)})
    return DiffPlan(keyed["left"], keyed["right"], spec.keys, metrics, spec.kind != ROW_HASH, spec.finality)


def _threshold(plan: DiffPlan) -> ir.Scalar | None:
    rule = plan.finality
    if rule is None or rule.column is None:
        return None
    c = rule.column
    newest = ibis.least(plan.left[c].max().as_scalar(), plan.right[c].max().as_scalar())
    if plan.left.schema()[c].is_date():
        return (newest - ibis.interval(days=rule.lateness_ms // 86_400_000)).cast("date")
    return newest - ibis.interval(milliseconds=rule.lateness_ms)


def final_expr(plan: DiffPlan, value: ir.Value) -> ir.BooleanValue:
    threshold = _threshold(plan)
    if threshold is None:
        return ibis.literal(True)
    return (value <= threshold).coalesce(False)


def _differs(lv: ir.Value, rv: ir.Value, metric: Metric) -> ir.BooleanValue:
    one_null = lv.isnull() != rv.isnull()
    if metric.tolerance.exact:
        return ~lv.identical_to(rv)
    t = metric.tolerance
    allowed = ibis.greatest(ibis.literal(t.absolute), t.relative * ibis.greatest(lv.abs(), rv.abs()))
    return one_null | ((lv - rv).abs() > allowed).coalesce(False)


def diffs(plan: DiffPlan) -> ir.Table:
    """Every key that is not SAME: keys, l/r per metric, which metrics differ, the
    comparison and whether the key is final."""
    j = plan.left.join(plan.right, list(plan.keys), how="outer")
    keys = {k: j[k].coalesce(j[f"{k}_right"]) for k in plan.keys}
    cols: dict[str, ir.Value] = {}
    any_differs: ir.BooleanValue = j.l__present.isnull() | j.r__present.isnull()
    for i, m in enumerate(plan.metrics):
        lv, rv = j[f"l__{m.column}"], j[f"r__{m.column}"]
        differs = _differs(lv, rv, m)
        any_differs = any_differs | differs
        cols[f"l_{i}"], cols[f"r_{i}"], cols[f"d_{i}"] = lv, rv, differs
    j = j.filter(any_differs)
    d = j.select(**keys, l_present=j.l__present, r_present=j.r__present,
                 **{name: value.name(name) for name, value in cols.items()}).view()  # fmt: skip
    comparison = ibis.cases(
        (d.l_present.isnull(), MISSING_IN_LEFT), (d.r_present.isnull(), MISSING_IN_RIGHT), else_=DIFFERENT
    )
    extra: dict[str, ir.Value] = {"comparison": comparison}
    if plan.finality and plan.finality.column:
        extra["final"] = final_expr(plan, d[plan.finality.column])
    else:
        extra["final"] = ibis.literal(True)
    if plan.numeric:
        for i in range(len(plan.metrics)):
            lv, rv = d[f"l_{i}"], d[f"r_{i}"]
            abs_diff = (lv - rv).abs()
            larger = ibis.greatest(lv.abs(), rv.abs()).cast("float64").nullif(0)
            extra[f"abs_{i}"] = abs_diff
            extra[f"rel_{i}"] = abs_diff.cast("float64") / larger
    return d.mutate(**extra)


def counts(plan: DiffPlan, d: ir.Table) -> tuple[ir.Table, ir.Table]:
    """(left scan: keys and pending keys; diffs: final and pending keys per comparison)."""
    left = plan.left
    column = plan.finality.column if plan.finality else None
    pending = left.count(where=~final_expr(plan, left[column])) if column else ibis.literal(0)
    scan = left.aggregate(left_keys=left.count(), left_pending=pending,
                          right_keys=plan.right.count().as_scalar())  # fmt: skip
    per_class = {}
    for name in (DIFFERENT, MISSING_IN_LEFT, MISSING_IN_RIGHT):
        per_class[f"final_{name}"] = d.count(where=d.final & (d.comparison == name))
        per_class[f"pending_{name}"] = d.count(where=~d.final & (d.comparison == name))
    return scan, d.aggregate(**per_class)


def metric_stats(plan: DiffPlan, d: ir.Table, exact: bool) -> ir.Table:
    """Per metric, over final keys present on both sides: how many differ, the sum and
    max of |l - r|, and percentiles of |l - r| / max(|l|, |r|) over the differing ones."""
    both = d.final & (d.comparison == DIFFERENT)
    out = {}
    for i in range(len(plan.metrics)):
        where = both & d[f"d_{i}"]
        out[f"differing_{i}"] = d.count(where=where)
        if not plan.numeric:
            continue
        rel = d[f"rel_{i}"]
        q = quantiles_or_null(rel, out[f"differing_{i}"] > 0, exact, where)
        out[f"abs_sum_{i}"] = d[f"abs_{i}"].sum(where=where).cast("float64")
        out[f"abs_max_{i}"] = d[f"abs_{i}"].max(where=where).cast("float64")
        out[f"rel_q_{i}"] = q
        out[f"rel_max_{i}"] = rel.max(where=where)
    return d.aggregate(**out)


def top_keys(plan: DiffPlan, d: ir.Table, n: int) -> ir.Table:
    """The N final differing keys: missing keys first, then by the largest relative error."""
    f = d.filter(d.final)
    missing = (f.comparison != DIFFERENT).cast("int8")
    if plan.numeric:
        rels = [f[f"rel_{i}"].coalesce(0.0) for i in range(len(plan.metrics))]
        score = rels[0] if len(rels) == 1 else ibis.greatest(*rels)
    else:
        score = ibis.literal(0.0)
    f = f.mutate(missing_first=missing, score=score)
    ordered = f.order_by([ibis.desc("missing_first"), ibis.desc("score"), *plan.keys]).limit(n)
    cols = [*plan.keys, "comparison"]
    for i in range(len(plan.metrics)):
        cols += [f"l_{i}", f"r_{i}"] + ([f"abs_{i}", f"rel_{i}"] if plan.numeric else [])
    return ordered.select(*cols)


def _class_counts(scan: dict[str, int], per: dict[str, int]) -> dict[str, int]:
    final_left = scan["left_keys"] - scan["left_pending"]
    keys = {
        "total": scan["left_keys"] + per[f"final_{MISSING_IN_LEFT}"] + per[f"pending_{MISSING_IN_LEFT}"],
        "same": final_left - per[f"final_{DIFFERENT}"] - per[f"final_{MISSING_IN_RIGHT}"],
        "compatible": 0,
        "different": per[f"final_{DIFFERENT}"],
        "missing_in_left": per[f"final_{MISSING_IN_LEFT}"],
        "missing_in_right": per[f"final_{MISSING_IN_RIGHT}"],
        "pending": scan["left_pending"] + per[f"pending_{MISSING_IN_LEFT}"],
    }
    keys["unexplained"] = keys["different"] + keys["missing_in_left"] + keys["missing_in_right"]
    return keys


def _metric_rows(plan: DiffPlan, stats: dict[str, Any]) -> list[dict[str, Any]]:
    metrics = []
    for i, m in enumerate(plan.metrics):
        t = m.tolerance
        shown = "exact" if t.exact else f"absolute {t.absolute}, relative {t.relative}"
        row: dict[str, Any] = {
            "metric": m.column,
            "tolerance": shown,
            "differing_keys": stats[f"differing_{i}"],
        }
        if plan.numeric:
            q = stats[f"rel_q_{i}"] or [None, None, None]
            row.update(abs_sum=stats[f"abs_sum_{i}"] or 0.0, abs_max=stats[f"abs_max_{i}"],
                       rel={"p50": q[0], "p90": q[1], "p99": q[2], "max": stats[f"rel_max_{i}"]})  # fmt: skip
        metrics.append(row)
    return metrics


def _top_row(plan: DiffPlan, row: dict[str, Any]) -> dict[str, Any]:
    out = {k: iso(row[k]) if isinstance(row[k], datetime) else row[k] for k in plan.keys}
    out["comparison"] = row["comparison"]
    for i, m in enumerate(plan.metrics):
        out[f"left_{m.column}"], out[f"right_{m.column}"] = row[f"l_{i}"], row[f"r_{i}"]
        if plan.numeric:
            out[f"rel_{m.column}"] = row[f"rel_{i}"]
    return {k: str(v) if hasattr(v, "isoformat") else v for k, v in out.items()}


def run(ctx: KindRun) -> Outcome:
    engine = ctx.engine
    plan = prepare(ctx.spec, open_sides(engine, ctx.spec))
    d = engine.cache(diffs(plan), "comparing the sides")
    scan_expr, per_expr = counts(plan, d)
    keys = _class_counts(
        engine.rows(scan_expr, "counting keys")[0], engine.rows(per_expr, "counting classes")[0]
    )
    stats = engine.rows(metric_stats(plan, d, engine.exact_quantiles), "metric statistics")[0]
    top = [_top_row(plan, row) for row in engine.rows(top_keys(plan, d, ctx.top_n), "top keys")]
    verdict, reasons = decide_by_keys(ctx.spec.kind, keys, ctx.policy)
    sections = {"metrics": _metric_rows(plan, stats), "top_differing": top, "schema": [], "aggregates": []}
    return Outcome(keys, verdict, reasons, sections, generic_inputs(ctx))


def sql(ctx: KindRun) -> dict[str, str]:
    plan = prepare(ctx.spec, open_sides(ctx.engine, ctx.spec))
    d = diffs(plan)
    exprs = {"diffs": d, "top_keys": top_keys(plan, d, ctx.top_n)}
    return {name: str(ibis.to_sql(e, dialect=ctx.engine.name)) for name, e in exprs.items()}
