"""The runner: inputs + policy -> a `Report`, executing only aggregate queries.

`run_validation(inputs, policy)` is the Python API the demo and the cutover controller
call in-process; `kappactl validate` is a thin wrapper around it. `build_plan` gives the
Ibis expressions without running them (for `--dry-run` and the BigQuery SQL test).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Iterable, Protocol

import ibis
import ibis.expr.types as ir

from migration.policy import Policy, arm_name
from migration.validator import builder
from migration.validator.backends import open_backend
from migration.validator.builder import Arm
from migration.validator.inputs import ArmSpec, ValidationInputs
from migration.validator.report import Report, by_event_type, by_window, decide, iso, rates, rollup
from pipelines.errors import InputError, KappaError

if TYPE_CHECKING:
    from migration.validator.spec_report import SpecReport


class Handler(Protocol):
    def handle(self, report: Report | SpecReport) -> None: ...


@dataclass
class Plan:
    """Every expression of one validation, bound to its backend."""

    backend: Any
    left: Arm
    right: Arm
    reference: Arm | None
    archive_stats: ir.Table | None

    def diffs(self) -> ir.Table:
        return builder.key_diffs(self.left, self.right, self.archive_stats)

    def expressions(self, diffs: ir.Table | None = None, top_n: int = 20) -> dict[str, ir.Table]:
        d = self.diffs() if diffs is None else diffs
        return {
            "key_diffs": d,
            "group_summary": builder.group_summary(self.left, self.right, d),
            "error_stats": builder.error_stats(d, self.backend.exact_quantiles),
            "error_histogram": builder.error_histogram(d),
            "top_unexplained": builder.top_unexplained(d, top_n, self.reference),
        }

    def sql(self, top_n: int = 20) -> dict[str, str]:
        return {
            name: str(ibis.to_sql(e, dialect=self.backend.name))
            for name, e in self.expressions(None, top_n).items()
        }


def _arm(backend: Any, spec: ArmSpec, inputs: ValidationInputs) -> Arm:
    raw = backend.arm(spec)
    table = builder.normalize(
        raw.table, spec, inputs.time.window_ms, inputs.since_ms, inputs.until_ms, raw.latest_pane
    )
    return Arm(spec, table, raw.finality)


def build_plan(inputs: ValidationInputs, backend: Any | None = None) -> Plan:
    backend = backend or open_backend(inputs)
    left, right = _arm(backend, inputs.left, inputs), _arm(backend, inputs.right, inputs)
    reference = _arm(backend, inputs.reference, inputs) if inputs.reference else None
    stats = None
    if inputs.archive:
        events = backend.archive_events(inputs.archive, inputs.since_ms)
        stats = builder.archive_key_stats(events, inputs.time.window_ms, inputs.time.period_ms)
    return Plan(backend, left, right, reference, stats)


def _rows(expr: ir.Table, what: str) -> list[dict[str, Any]]:
    try:
        engine = expr._find_backend()
        if engine.name == "bigquery":
            # The compiled SQL through the jobs API: results here are a few summary rows, and
            # bqemulator cannot serve Ibis's Storage-API read of query results.
            return [dict(row.items()) for row in engine.client.query(engine.compile(expr)).result()]
        return expr.to_pyarrow().to_pylist()
    except KappaError:
        raise
    except Exception as exc:  # the engine's own errors: unreadable file, bad cast, ...
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise InputError(f"{what}: the query failed: {first}") from exc


def _has_rows(table: ir.Table, what: str) -> bool:
    first = table.limit(1)
    rows = _rows(first.aggregate(n=first.count()), what)
    return bool(rows and rows[0]["n"])


def _check_not_empty(arm: Arm, inputs: ValidationInputs) -> None:
    if not _has_rows(arm.table, f"{arm.spec.role} arm"):
        where = ""
        if inputs.since_ms is not None or inputs.until_ms is not None:
            where = f" with window_start in [{inputs.describe()['since']}, {inputs.describe()['until']})"
        raise InputError(f"{arm.spec.role} arm {arm.spec.label} has no rows{where}: nothing to compare")


def _cache(backend: Any, expr: ir.Table, what: str) -> ir.Table:
    try:
        return backend.cache(expr)
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise InputError(f"{what}: the query failed: {first}") from exc


def compare_arms(backend: Any, a: Arm, b: Arm) -> dict[str, Any]:
    """Keys and rates of one arm against another (no archive): reference and noise baseline."""
    diffs = _cache(backend, builder.key_diffs(a, b), f"{a.spec.label} vs {b.spec.label}")
    groups = _rows(builder.group_summary(a, b, diffs), f"{a.spec.label} vs {b.spec.label}")
    keys, weighted = rollup(groups, "keys"), rollup(groups, "weight")
    return {
        "left": a.spec.label,
        "right": b.spec.label,
        "keys": keys,
        "weighted": weighted,
        "rates": rates(keys, weighted),
    }


def _noise_baseline(plan: Plan, inputs: ValidationInputs) -> dict[str, Any] | None:
    """kappa stream vs backfill: how far two runs of the same code differ on this data."""
    backend = plan.backend
    if not all(backend.has_table(t) for t in ("kappa_stream_current", "kappa_backfill_current")):
        return None
    stream = _arm(backend, ArmSpec("left", table="kappa_stream"), inputs)
    backfill = _arm(backend, ArmSpec("right", table="kappa_backfill"), inputs)
    if not all(_has_rows(arm.table, "noise baseline") for arm in (stream, backfill)):
        return None
    return compare_arms(backend, stream, backfill)


def _errors(plan: Plan, diffs: ir.Table) -> dict[str, Any]:
    stats = _rows(builder.error_stats(diffs, plan.backend.exact_quantiles), "error percentiles")[0]
    hist = _rows(builder.error_histogram(diffs), "error histogram")

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


def run_validation(
    inputs: ValidationInputs, policy: Policy, handlers: Iterable[Handler] | None = None
) -> Report:
    """Validate right against left; hand the report to `handlers` (default: per inputs)."""
    from migration.validator.handlers import default_handlers, previous_streak

    started = datetime.now(UTC)
    plan = build_plan(inputs)
    try:
        for arm in (plan.left, plan.right, plan.reference):
            if arm is not None:
                _check_not_empty(arm, inputs)
        diffs = _cache(plan.backend, plan.diffs(), "comparing the arms")
        groups = _rows(builder.group_summary(plan.left, plan.right, diffs), "group summary")
        errors = _errors(plan, diffs)
        top = _jsonable(
            _rows(builder.top_unexplained(diffs, policy.top_n_unexplained, plan.reference), "top keys")
        )
        reference = None
        if plan.reference is not None:
            reference = {
                "left_vs_reference": compare_arms(plan.backend, plan.left, plan.reference),
                "right_vs_reference": compare_arms(plan.backend, plan.right, plan.reference),
            }
        noise = None
        if (
            arm_name(inputs.right.label) == "kappa_stream"
            and inputs.reference
            and arm_name(inputs.reference.label) == "kappa_backfill"
        ):
            noise = reference["right_vs_reference"] if reference else None
        elif getattr(plan.backend, "has_warehouse", False):
            noise = _noise_baseline(plan, inputs)
    finally:
        plan.backend.close()
    keys, weighted = rollup(groups, "keys"), rollup(groups, "weight")
    verdict, reasons = decide(keys, weighted, policy)
    report = Report(
        run_id=inputs.run_id,
        verdict=verdict,
        reasons=reasons,
        keys=keys,
        weighted=weighted,
        rates=rates(keys, weighted),
        by_event_type=by_event_type(groups),
        by_window=by_window(groups),
        errors=errors,
        top_unexplained=top,
        finality={"left": plan.left.finality.describe(), "right": plan.right.finality.describe()},
        policy=asdict(policy),
        inputs=inputs.describe(),
        started_at=iso(started) or "",
        finished_at=iso(datetime.now(UTC)) or "",
        reference=reference,
        noise_baseline=noise,
        report_dir=str(inputs.report_dir) if inputs.report_dir else None,
        spec=inputs.spec,
    )
    report.consecutive_passes = {
        "count": previous_streak(inputs, report),
        "required": policy.consecutive_passes,
    }
    for handler in default_handlers(inputs) if handlers is None else handlers:
        handler.handle(report)
    return report
