"""Ibis expressions of one validation: they run where the data lives (DuckDB, BigQuery).

Only aggregates and the top-N keys ever come back to Python. The plan keeps the one
expensive step, the full outer join of the two arms, to a single pass:

- `key_diffs`: the keys whose counts differ or that one arm lacks (SAME keys are
  dropped right after the join), classified and, with an archive, explained;
- `group_summary`: per (window_start, event_type), the per-arm key counts and sums
  (cheap scans, no join) combined with `key_diffs` aggregated per group: since every key
  of the left arm is either SAME or in `key_diffs`, SAME = left keys - left keys in diffs;
- `error_stats`, `error_histogram`, `top_unexplained`: over `key_diffs` only.

Finality is a property of a window in an arm (see `finality.py`), so it is evaluated
on both the groups and the differing keys with the same rule.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import ibis
import ibis.expr.datatypes as dt
import ibis.expr.types as ir

from migration.validator.classes import (
    COMPARISONS,
    DIFFERENT,
    EXPLANATIONS,
    FINAL_STATUSES,
    MISSING_IN_LEFT,
    MISSING_IN_RIGHT,
    PENDING,
    UNEXPLAINED,
    KeyEvidence,
)
from migration.validator.finality import Finality
from migration.validator.spec.model import ArmSpec
from pipelines.errors import InputError

KEYS = ("window_start", "tweet_id", "event_type")
GROUP = ("window_start", "event_type")
QUANTILES = (0.5, 0.9, 0.99)
UTC_TS = dt.Timestamp(timezone="UTC", scale=6)

_REQUIRED = {
    "window_start": ("a timestamp", lambda t: t.is_timestamp()),
    "tweet_id": ("an integer", lambda t: t.is_integer()),
    "event_type": ("a string", lambda t: t.is_string()),
    "count": ("an integer", lambda t: t.is_integer()),
}


@dataclass(frozen=True)
class Arm:
    """An arm ready to compare: window_start, window_end, tweet_id, event_type, value."""

    spec: ArmSpec
    table: ir.Table
    finality: Finality


def check_columns(raw: ir.Table, spec: ArmSpec) -> None:
    """InputError naming every missing or mistyped column of an arm."""
    schema = raw.schema()
    problems = []
    for name, (wanted, ok) in _REQUIRED.items():
        if name not in schema:
            problems.append(f"no column '{name}'")
        elif not ok(schema[name]):
            problems.append(f"column '{name}' is {schema[name]}, expected {wanted}")
    if "window_end" in schema and not schema["window_end"].is_timestamp():
        problems.append(f"column 'window_end' is {schema['window_end']}, expected a timestamp")
    if problems:
        have = ", ".join(schema.names)
        raise InputError(f"{spec.role} arm {spec.label}: {'; '.join(problems)} (columns: {have})")


def _ts(value: ir.Value) -> ir.TimestampValue:
    return value if value.type() == UTC_TS else value.cast(UTC_TS)


def ts_literal(ms: int) -> ir.TimestampScalar:
    return ibis.literal(datetime.fromtimestamp(ms / 1000, tz=UTC), type=UTC_TS)


def normalize(
    raw: ir.Table,
    spec: ArmSpec,
    window_ms: int,
    since_ms: int | None = None,
    until_ms: int | None = None,
    latest_pane: bool = False,
) -> ir.Table:
    """The arm's rows as (window_start, window_end, tweet_id, event_type, value)."""
    check_columns(raw, spec)
    t = raw
    if latest_pane:  # several panes per key: keep the highest pane_index (the `_current` rule)
        ends = {"window_end": t.window_end.max()} if "window_end" in t.columns else {}
        t = t.group_by(list(KEYS)).aggregate(count=t["count"].argmax(t.pane_index), **ends)
    start = _ts(t.window_start)
    end = _ts(t.window_end) if "window_end" in t.columns else start + ibis.interval(milliseconds=window_ms)
    out = t.select(
        window_start=start,
        window_end=end,
        tweet_id=t.tweet_id.cast("int64"),
        event_type=t.event_type,
        value=t["count"].cast("int64"),
    )
    if since_ms is not None:
        out = out.filter(out.window_start >= ts_literal(since_ms))
    if until_ms is not None:
        out = out.filter(out.window_start < ts_literal(until_ms))
    return out


def archive_key_stats(events: ir.Table, window_ms: int, period_ms: int) -> ir.Table:
    """Per key, from the archive's valid events: unique events, those with a copy whose
    arrival interval overlaps their own batch period (what the legacy batch counts: it reads
    the parts overlapping its period, `pipelines.archive.list_parts`), and duplicate copies."""
    e = events
    period_start = e.event_time_ms - e.event_time_ms % period_ms
    overlaps = (e.arrival_start_ms < period_start + period_ms) & (e.arrival_end_ms > period_start)
    per_event = e.group_by(["event_id", "tweet_id", "event_type", "event_time_ms"]).aggregate(
        copies=e.count(),
        in_period=e.count(where=overlaps) > 0,
    )
    window = per_event.event_time_ms - per_event.event_time_ms % window_ms
    keyed = per_event.mutate(window_start=window.as_timestamp("ms").cast(UTC_TS))
    return keyed.group_by(list(KEYS)).aggregate(
        a_unique=keyed.count(),
        a_in_period=keyed.count(where=keyed.in_period),
        a_copies=keyed.copies.sum(),
    )


def key_diffs(left: Arm, right: Arm, archive_stats: ir.Table | None = None) -> ir.Table:
    """Every key that is not SAME, with comparison, finality and status."""
    lt = left.table.rename(lwe="window_end", lv="value")
    rt = right.table.rename(rwe="window_end", rv="value")
    j = lt.join(rt, list(KEYS), how="outer")
    j = j.filter(j.lv.isnull() | j.rv.isnull() | (j.lv != j.rv))
    d = j.select(
        window_start=j.window_start.coalesce(j.window_start_right),
        window_end=j.lwe.coalesce(j.rwe),
        tweet_id=j.tweet_id.coalesce(j.tweet_id_right),
        event_type=j.event_type.coalesce(j.event_type_right),
        left_count=j.lv,
        right_count=j.rv,
    ).view()
    lv, rv = d.left_count.coalesce(0), d.right_count.coalesce(0)
    d = d.mutate(
        comparison=ibis.cases(
            (d.left_count.isnull(), MISSING_IN_LEFT),
            (d.right_count.isnull(), MISSING_IN_RIGHT),
            else_=DIFFERENT,
        ),
        final=left.finality.expr(d.window_start, d.window_end)
        & right.finality.expr(d.window_start, d.window_end),
        abs_diff=(lv - rv).abs(),
        weight=ibis.greatest(lv, rv),
    )
    if archive_stats is None:
        status = ibis.ifelse(d.final, UNEXPLAINED, PENDING)
        return d.mutate(
            status=status,
            a_unique=ibis.null("int64"),
            a_in_period=ibis.null("int64"),
            a_copies=ibis.null("int64"),
        )
    a = archive_stats
    x = d.left_join(a, list(KEYS))
    x = x.select(*d.columns, a_unique=a.a_unique, a_in_period=a.a_in_period, a_copies=a.a_copies)
    evidence = KeyEvidence(
        left=x.left_count.coalesce(0),
        right=x.right_count.coalesce(0),
        unique=x.a_unique.coalesce(0),
        in_period=x.a_in_period.coalesce(0),
        copies=x.a_copies.coalesce(0),
    )
    explained = [(e.rule(evidence), e.status) for e in EXPLANATIONS]
    status = ibis.cases((~x.final, PENDING), *explained, else_=UNEXPLAINED)
    return x.mutate(status=status)


def _arm_groups(arm: Arm, prefix: str) -> ir.Table:
    t = arm.table
    return t.group_by(list(GROUP)).aggregate(
        **{f"{prefix}_end": t.window_end.max(), f"{prefix}_keys": t.count(), f"{prefix}_sum": t.value.sum()}
    )


def group_summary(left: Arm, right: Arm, diffs: ir.Table) -> ir.Table:
    """One row per (window_start, event_type): keys and counts by class."""
    g = _arm_groups(left, "l").join(_arm_groups(right, "r"), list(GROUP), how="outer")
    g = g.select(
        window_start=g.window_start.coalesce(g.window_start_right),
        event_type=g.event_type.coalesce(g.event_type_right),
        window_end=g.l_end.coalesce(g.r_end),
        left_keys=g.l_keys.coalesce(0),
        right_keys=g.r_keys.coalesce(0),
        left_sum=g.l_sum.coalesce(0),
        right_sum=g.r_sum.coalesce(0),
    ).view()  # a barrier: Ibis would otherwise fold the next join into this join chain
    d = diffs
    per_class = {}
    for name in COMPARISONS:
        per_class[f"k_{name}"] = d.count(where=d.comparison == name)
        per_class[f"w_{name}"] = d.weight.sum(where=d.comparison == name)
    for name in FINAL_STATUSES:
        per_class[f"k_{name}"] = d.count(where=d.status == name)
        per_class[f"w_{name}"] = d.weight.sum(where=d.status == name)
        per_class[f"a_{name}"] = d.abs_diff.sum(where=d.status == name)
    dg = d.group_by(list(GROUP)).aggregate(
        d_left_sum=d.left_count.sum(), d_weight=d.weight.sum(), **per_class
    )
    x = g.left_join(dg, list(GROUP))
    x = x.select(*g.columns, *[x[c].coalesce(0).name(c) for c in dg.columns if c not in GROUP])
    final = left.finality.expr(x.window_start, x.window_end) & right.finality.expr(
        x.window_start, x.window_end
    )
    same_keys = x.left_keys - x.k_DIFFERENT - x.k_MISSING_IN_RIGHT
    same_weight = x.left_sum - x.d_left_sum
    total_keys = x.left_keys + x.k_MISSING_IN_LEFT
    total_weight = same_weight + x.d_weight

    def when_final(value: ir.IntegerValue) -> ir.IntegerValue:
        return ibis.ifelse(final, value, 0)

    out = {
        "final": final,
        "keys_total": total_keys,
        "keys_same": when_final(same_keys),
        "keys_pending": ibis.ifelse(final, 0, total_keys),
        "weight_total": total_weight,
        "weight_same": when_final(same_weight),
        "weight_pending": ibis.ifelse(final, 0, total_weight),
    }
    for name in COMPARISONS:
        out[f"keys_{name.lower()}"] = when_final(x[f"k_{name}"])
        out[f"weight_{name.lower()}"] = when_final(x[f"w_{name}"])
    for name in FINAL_STATUSES:
        out[f"keys_{name.lower()}"] = x[f"k_{name}"]
        out[f"weight_{name.lower()}"] = x[f"w_{name}"]
        out[f"abs_diff_{name.lower()}"] = x[f"a_{name}"]
    return x.select(*g.columns, **out).order_by(["window_start", "event_type"])


def error_stats(diffs: ir.Table, exact: bool = True) -> ir.Table:
    """Percentiles of abs and relative differences over final DIFFERENT keys; NULL (not an
    array of NULLs, which BigQuery refuses to return) when no such key exists."""
    d = diffs.filter(diffs.final & (diffs.comparison == DIFFERENT))
    rel = d.abs_diff.cast("float64") / d.weight
    keys = d.count()

    def q(col: ir.NumericColumn) -> ir.ArrayScalar:
        return quantiles_or_null(col, keys > 0, exact)

    return d.aggregate(
        keys=keys, abs_q=q(d.abs_diff), abs_max=d.abs_diff.max(), rel_q=q(rel), rel_max=rel.max()
    )


def quantiles_or_null(
    col: ir.NumericColumn, any_row: ir.BooleanScalar, exact: bool, where: ir.BooleanValue | None = None
) -> ir.ArrayScalar:
    """The QUANTILES of `col` (exact or approximate) where `any_row`, else a NULL array."""
    values = (
        col.quantile(list(QUANTILES), where=where)
        if exact
        else col.approx_quantile(list(QUANTILES), where=where)
    )
    return ibis.ifelse(any_row, values, ibis.null(values.type()))


def error_histogram(diffs: ir.Table) -> ir.Table:
    """Final DIFFERENT keys per power-of-two bucket of the absolute difference."""
    d = diffs.filter(diffs.final & (diffs.comparison == DIFFERENT) & (diffs.abs_diff > 0))
    bucket = d.abs_diff.cast("float64").log2().floor().cast("int64")
    return d.group_by(bucket=bucket).aggregate(keys=d.count()).order_by("bucket")


def top_unexplained(diffs: ir.Table, n: int, reference: Arm | None = None) -> ir.Table:
    """The N unexplained keys with the largest absolute difference."""
    u = diffs.filter(diffs.status == UNEXPLAINED)
    u = u.order_by([u.abs_diff.desc(), u.window_start, u.tweet_id, u.event_type]).limit(n)
    cols = [
        *KEYS,
        "left_count",
        "right_count",
        "comparison",
        "abs_diff",
        "a_unique",
        "a_in_period",
        "a_copies",
    ]
    u = u.select(*cols)
    if reference is None:
        return u.mutate(reference_count=ibis.null("int64"))
    ref = reference.table.select(*KEYS, reference_count=reference.table.value)
    x = u.left_join(ref, list(KEYS))
    return x.select(*cols, "reference_count").order_by([ibis.desc("abs_diff"), *KEYS])
