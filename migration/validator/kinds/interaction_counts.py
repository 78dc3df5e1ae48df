"""The interaction-count comparison (DESIGN.md section 4): two arms of aggregate rows
compared key by key, each judged final by its own streaming rule, differences explained by
the archive, with an optional reference and the stream-vs-backfill noise baseline.

`kappactl validate`'s flags build the shipped spec config/validations/interaction_counts.yaml
(`spec.flags`), so the flags and that spec run exactly this. `build_plan` gives the Ibis
expressions without running them (for `--dry-run` and the BigQuery SQL test).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Iterable

import ibis
import ibis.expr.types as ir

from migration.policy import arm_name
from migration.validator.engines import Engine
from migration.validator.kinds import KindRun, Outcome
from migration.validator.kinds import counts_sql as sql_of
from migration.validator.kinds.counts_sql import Arm
from migration.validator.kinds.counts_summary import by_event_type, by_window, decide, rates, rollup
from migration.validator.options import RunOptions
from migration.validator.report.model import iso
from migration.validator.spec.model import ArmSpec, Spec
from pipelines.config import TimeConfig
from pipelines.errors import InputError
from pipelines.instants import utc_iso


@dataclass
class Plan:
    """Every expression of one comparison, bound to its engine."""

    engine: Engine
    left: Arm
    right: Arm
    reference: Arm | None
    archive_stats: ir.Table | None

    def diffs(self) -> ir.Table:
        return sql_of.key_diffs(self.left, self.right, self.archive_stats)

    def expressions(self, top_n: int, diffs: ir.Table | None = None) -> dict[str, ir.Table]:
        d = self.diffs() if diffs is None else diffs
        return {
            "key_diffs": d,
            "group_summary": sql_of.group_summary(self.left, self.right, d),
            "error_stats": sql_of.error_stats(d, self.engine.exact_quantiles),
            "error_histogram": sql_of.error_histogram(d),
            "top_unexplained": sql_of.top_unexplained(d, top_n, self.reference),
        }

    def sql(self, top_n: int) -> dict[str, str]:
        return {
            name: str(ibis.to_sql(e, dialect=self.engine.name)) for name, e in self.expressions(top_n).items()
        }


def arms(spec: Spec) -> tuple[ArmSpec, ArmSpec, ArmSpec | None]:
    reference = ArmSpec.of("reference", spec.reference) if spec.reference else None
    return ArmSpec.of("left", spec.left), ArmSpec.of("right", spec.right), reference


def _arm(engine: Engine, arm: ArmSpec, time: TimeConfig, options: RunOptions) -> Arm:
    raw = engine.arm(arm)
    table = sql_of.normalize(
        raw.table, arm, time.window_ms, options.since_ms, options.until_ms, raw.latest_pane
    )
    return Arm(arm, table, raw.finality)


def build_plan(spec: Spec, engine: Engine, time: TimeConfig, options: RunOptions) -> Plan:
    left, right, reference = (_arm(engine, a, time, options) if a else None for a in arms(spec))
    assert left is not None and right is not None
    stats = None
    if spec.archive:
        events = engine.archive_events(spec.archive, options.since_ms)
        stats = sql_of.archive_key_stats(events, time.window_ms, time.period_ms)
    return Plan(engine, left, right, reference, stats)


def describe(spec: Spec, engine: Engine, time: TimeConfig, options: RunOptions) -> dict[str, Any]:
    """What was compared, as report.json `inputs`."""
    left, right, reference = arms(spec)
    return {
        "left": left.label,
        "right": right.label,
        "reference": reference.label if reference else None,
        "archive": spec.archive,
        "since": iso_ms(options.since_ms),
        "until": iso_ms(options.until_ms),
        "backend": engine.name,
        "warehouse": str(options.warehouse_root) if options.warehouse_root else None,
        "window_ms": time.window_ms,
        "period_ms": time.period_ms,
        "kappa_allowed_lateness_ms": time.kappa_allowed_lateness_ms,
        "speed_out_of_orderness_ms": time.speed_out_of_orderness_ms,
    }


def iso_ms(ms: int | None) -> str | None:
    return None if ms is None else utc_iso(ms, timespec="auto")


def _has_rows(engine: Engine, table: ir.Table, what: str) -> bool:
    first = table.limit(1)
    rows = engine.rows(first.aggregate(n=first.count()), what)
    return bool(rows and rows[0]["n"])


def _check_not_empty(engine: Engine, arm: Arm, options: RunOptions) -> None:
    if not _has_rows(engine, arm.table, f"{arm.spec.role} arm"):
        where = ""
        if options.since_ms is not None or options.until_ms is not None:
            where = f" with window_start in [{iso_ms(options.since_ms)}, {iso_ms(options.until_ms)})"
        raise InputError(f"{arm.spec.role} arm {arm.spec.label} has no rows{where}: nothing to compare")


def compare_arms(engine: Engine, a: Arm, b: Arm) -> dict[str, Any]:
    """Keys and rates of one arm against another (no archive): reference and noise baseline."""
    what = f"{a.spec.label} vs {b.spec.label}"
    diffs = engine.cache(sql_of.key_diffs(a, b), what)
    groups = engine.rows(sql_of.group_summary(a, b, diffs), what)
    keys, weighted = rollup(groups, "keys"), rollup(groups, "weight")
    return {"left": a.spec.label, "right": b.spec.label, "keys": keys, "weighted": weighted,
            "rates": rates(keys, weighted)}  # fmt: skip


def _noise_baseline(ctx: KindRun) -> dict[str, Any] | None:
    """kappa stream vs backfill: how far two runs of the same code differ on this data."""
    engine = ctx.engine
    if not all(engine.has_table(t) for t in ("kappa_stream_current", "kappa_backfill_current")):
        return None
    stream = _arm(engine, ArmSpec("left", table="kappa_stream"), ctx.time, ctx.options)
    backfill = _arm(engine, ArmSpec("right", table="kappa_backfill"), ctx.time, ctx.options)
    if not all(_has_rows(engine, arm.table, "noise baseline") for arm in (stream, backfill)):
        return None
    return compare_arms(engine, stream, backfill)


def _errors(engine: Engine, diffs: ir.Table) -> dict[str, Any]:
    stats = engine.rows(sql_of.error_stats(diffs, engine.exact_quantiles), "error percentiles")[0]
    hist = engine.rows(sql_of.error_histogram(diffs), "error histogram")

    def pct(values: list[float] | None, top: float | None) -> dict[str, float | None]:
        # NULL when no final key differs (error_stats): every percentile is then unknown
        p50, p90, p99 = values if values else (None, None, None)
        return {"p50": p50, "p90": p90, "p99": p99, "max": top}

    return {
        "keys": stats["keys"],
        "abs": pct(stats["abs_q"], stats["abs_max"]),
        "rel": pct(stats["rel_q"], stats["rel_max"]),
        "histogram": [
            {"abs_from": 2 ** h["bucket"], "abs_to": 2 ** (h["bucket"] + 1), "keys": h["keys"]} for h in hist
        ],
    }


def _jsonable(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: iso(v) if isinstance(v, datetime) else v for k, v in row.items()} for row in rows]


def _reference_and_noise(ctx: KindRun, plan: Plan) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    reference = None
    if plan.reference is not None:
        reference = {
            "left_vs_reference": compare_arms(ctx.engine, plan.left, plan.reference),
            "right_vs_reference": compare_arms(ctx.engine, plan.right, plan.reference),
        }
    if (
        arm_name(plan.right.spec.label) == "kappa_stream"
        and plan.reference is not None
        and arm_name(plan.reference.spec.label) == "kappa_backfill"
    ):
        return reference, reference["right_vs_reference"] if reference else None
    return reference, _noise_baseline(ctx) if ctx.engine.has_warehouse else None


def run(ctx: KindRun) -> Outcome:
    """Validate right against left, executing only aggregate queries."""
    engine = ctx.engine
    plan = build_plan(ctx.spec, engine, ctx.time, ctx.options)
    for arm in (plan.left, plan.right, plan.reference):
        if arm is not None:
            _check_not_empty(engine, arm, ctx.options)
    diffs = engine.cache(plan.diffs(), "comparing the arms")
    groups = engine.rows(sql_of.group_summary(plan.left, plan.right, diffs), "group summary")
    errors = _errors(engine, diffs)
    top = _jsonable(engine.rows(sql_of.top_unexplained(diffs, ctx.top_n, plan.reference), "top keys"))
    reference, noise = _reference_and_noise(ctx, plan)
    keys, weighted = rollup(groups, "keys"), rollup(groups, "weight")
    verdict, reasons = decide(keys, weighted, ctx.policy)
    sections = {
        "weighted": weighted,
        "rates": rates(keys, weighted),
        "by_event_type": by_event_type(groups),
        "by_window": by_window(groups),
        "errors": errors,
        "top_unexplained": top,
        "finality": {"left": plan.left.finality.describe(), "right": plan.right.finality.describe()},
        "reference": reference,
        "noise_baseline": noise,
    }
    return Outcome(keys, verdict, reasons, sections, describe(ctx.spec, engine, ctx.time, ctx.options))


def sql(ctx: KindRun) -> dict[str, str]:
    return build_plan(ctx.spec, ctx.engine, ctx.time, ctx.options).sql(ctx.top_n)
