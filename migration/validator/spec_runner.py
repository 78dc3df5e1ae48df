"""Run validation specs: one spec -> one report; several -> one summary, worst verdict.

A metric-diff spec that asks for the streaming rules (`finality: {rules: arms}`,
`explain: {archive: ...}` or a `reference`) is an interaction-count comparison: it becomes
the same `ValidationInputs` as `kappactl validate`'s flags and runs through
`run_validation` (per-arm finality, archive explanations, reference and noise baseline).
Every other spec runs the generic kinds (`kind_diff`, `kind_tables`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Iterable

from migration.policy import Policy, build_policy
from migration.validator import kind_diff, kind_tables
from migration.validator.classes import DIFFERENT, MISSING_IN_LEFT, MISSING_IN_RIGHT, SAME
from migration.validator.inputs import ValidationInputs, build_inputs, new_run_id
from migration.validator.report import Report, iso
from migration.validator.runner import Handler, run_validation
from migration.validator.spec import COLUMN_AGGREGATES, SCHEMA, Source, Spec
from migration.validator.spec_report import SpecReport, decide_spec
from migration.validator.spec_sources import Sides, SpecEngine, open_sides
from pipelines.config import Config
from pipelines.errors import ConfigError, InputError, KappaError

MAX_AGGREGATE_ITEMS = 200  # aggregate items kept in the report when all agree


@dataclass(frozen=True)
class RunOptions:
    warehouse_root: Path | None = None
    report_dir: Path | None = None
    record: bool = True
    memory_limit: str | None = None
    threads: int | None = None
    since: str | None = None  # interaction-count specs only
    until: str | None = None
    window_ms: int | None = None  # the config's window size, for the warehouse's legacy views


def spec_policy(policy: Policy, spec: Spec) -> Policy:
    """The policy file's values, overridden by the spec's own `policy:` keys."""
    if not spec.policy:
        return policy
    base = {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(policy).items()}
    return build_policy({**base, **spec.policy}, f"{spec.origin}: policy")


def policy_overrides(policy: Policy, spec: Spec) -> dict[str, Any]:
    """The spec's `policy:` keys whose values differ from the policy file's: what its run is
    judged by differently (recorded, so the cutover gate can leave the run out)."""
    if not spec.policy:
        return {}
    effective = spec_policy(policy, spec)
    changed = {k: getattr(effective, k) for k in spec.policy if getattr(effective, k) != getattr(policy, k)}
    return {k: list(v) if isinstance(v, tuple) else v for k, v in changed.items()}


class _WithOverrides:
    """Hands the report on after writing the spec's policy overrides into it (the runner
    calls the handlers itself, before returning)."""

    def __init__(self, overrides: dict[str, Any], handlers: Iterable[Handler], inputs: ValidationInputs):
        self.overrides, self.handlers = overrides, list(handlers)
        self.root = inputs.warehouse_root if inputs.backend == "duckdb" else None  # as previous_streak

    def handle(self, report: Any) -> None:
        from migration.validator.handlers import streak

        report.policy_overrides = dict(self.overrides)
        if self.overrides and report.consecutive_passes:  # the streak as the gate counts it
            count = streak(self.root, report.inputs["left"], report.inputs["right"], report.verdict, True)
            report.consecutive_passes = {**report.consecutive_passes, "count": count}
        for handler in self.handlers:
            handler.handle(report)


def _arm_args(role: str, source: Source) -> dict[str, str]:
    if source.kind == "table":
        return {role: source.value}
    if source.kind == "path":
        return {f"{role}_path": source.value}
    raise ConfigError(
        f"{role}: an interaction-count spec reads warehouse tables or Parquet files, not {source.kind}"
    )


def inputs_from_spec(spec: Spec, config: Config, options: RunOptions) -> ValidationInputs:
    """The interaction-count spec as the inputs `kappactl validate`'s flags build."""
    args: dict[str, Any] = {**_arm_args("left", spec.left), **_arm_args("right", spec.right)}
    if spec.reference is not None:
        args.update(_arm_args("reference", spec.reference))
    return build_inputs(config, archive=spec.archive, since=options.since, until=options.until,
                        warehouse=options.warehouse_root, report_dir=options.report_dir, record=options.record,
                        memory_limit=options.memory_limit, threads=options.threads, **args)  # fmt: skip


def _fetch(expr: Any, what: str) -> list[dict[str, Any]]:
    try:
        return expr.to_pyarrow().to_pylist()
    except KappaError:
        raise
    except Exception as exc:  # the engine's own errors: bad cast, unreadable file, ...
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise InputError(f"{what}: the query failed: {first}") from exc


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


def _run_diff(spec: Spec, sides: Sides, engine: SpecEngine) -> dict[str, Any]:
    plan = kind_diff.prepare(spec, sides)
    d = engine.cache(kind_diff.diffs(plan))
    scan_expr, per_expr = kind_diff.counts(plan, d)
    keys = _class_counts(_fetch(scan_expr, "counting keys")[0], _fetch(per_expr, "counting classes")[0])
    stats = _fetch(kind_diff.metric_stats(plan, d, engine.exact_quantiles), "metric statistics")[0]
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
    top = []
    for row in _fetch(kind_diff.top_keys(plan, d, spec.top_n), "top keys"):
        out = {k: iso(row[k]) if isinstance(row[k], datetime) else row[k] for k in plan.keys}
        out["comparison"] = row["comparison"]
        for i, m in enumerate(plan.metrics):
            out[f"left_{m.column}"], out[f"right_{m.column}"] = row[f"l_{i}"], row[f"r_{i}"]
            if plan.numeric:
                out[f"rel_{m.column}"] = row[f"rel_{i}"]
        top.append({k: str(v) if hasattr(v, "isoformat") else v for k, v in out.items()})
    return {"keys": keys, "metrics": metrics, "top_differing": top, "schema": [], "aggregates": []}


def _table_counts(statuses: list[str], compatible: str | None = None) -> dict[str, int]:
    keys = {"total": len(statuses), "same": statuses.count(SAME), "compatible": 0, "pending": 0,
            "different": statuses.count(DIFFERENT), "missing_in_left": statuses.count(MISSING_IN_LEFT),
            "missing_in_right": statuses.count(MISSING_IN_RIGHT)}  # fmt: skip
    if compatible:
        keys["compatible"] = statuses.count(compatible)
        keys["same"] += keys["compatible"]
    keys["unexplained"] = keys["different"] + keys["missing_in_left"] + keys["missing_in_right"]
    return keys


def _run_kind(spec: Spec, engine: SpecEngine) -> dict[str, Any]:
    sides = open_sides(engine, spec)
    if spec.kind == SCHEMA:
        rows = kind_tables.compare_schema(spec, sides)
        keys = _table_counts([r["status"] for r in rows], kind_tables.COMPATIBLE_TYPE)
        return {"keys": keys, "metrics": [], "top_differing": [], "schema": rows, "aggregates": []}
    if spec.kind == COLUMN_AGGREGATES:
        items = kind_tables.compare_aggregates(spec, sides, _fetch)
        keys = _table_counts([r["status"] for r in items])
        shown = [r for r in items if r["status"] != SAME] or items[:MAX_AGGREGATE_ITEMS]
        return {"keys": keys, "metrics": [], "top_differing": [], "schema": [], "aggregates": shown}
    return _run_diff(spec, sides, engine)


def run_generic(spec: Spec, policy: Policy, options: RunOptions, handlers: Iterable[Handler],
                overrides: dict[str, Any] | None = None) -> SpecReport:  # fmt: skip
    started = datetime.now(UTC)
    engine = SpecEngine(
        spec, options.warehouse_root, options.memory_limit, options.threads, options.window_ms
    )
    try:
        result = _run_kind(spec, engine)
    finally:
        engine.close()
    verdict, reasons = decide_spec(spec.kind, result["keys"], policy)
    report = SpecReport(run_id=new_run_id(), spec=spec.name, kind=spec.kind, verdict=verdict, reasons=reasons,
                        policy=asdict(policy), inputs={**spec.describe(), "engine": engine.name},
                        started_at=iso(started) or "", finished_at=iso(datetime.now(UTC)) or "",
                        report_dir=str(options.report_dir) if options.report_dir else None,
                        policy_overrides=dict(overrides or {}), **result)  # fmt: skip
    from migration.validator.handlers import streak

    root = options.warehouse_root if options.record else None
    restricted = bool(report.inputs.get("filter") or report.policy_overrides)
    count = streak(root, report.inputs["left"], report.inputs["right"], report.verdict, restricted)
    report.consecutive_passes = {"count": count, "required": policy.consecutive_passes}
    for handler in handlers:
        handler.handle(report)
    return report


def run_spec(spec: Spec, config: Config, policy: Policy, options: RunOptions,
             handlers: Iterable[Handler] | None = None) -> Report | SpecReport:  # fmt: skip
    """Run one spec; `handlers` default to report files (if a report dir) and the record."""
    from migration.validator.handlers import ReportFiles, WarehouseRecord, default_handlers

    overrides = policy_overrides(policy, spec)
    policy = spec_policy(policy, spec)
    if spec.streaming:
        inputs = replace(inputs_from_spec(spec, config, options), spec=spec.name)
        chosen = default_handlers(inputs) if handlers is None else handlers
        return run_validation(inputs, policy, [_WithOverrides(overrides, chosen, inputs)])
    if handlers is None:
        handlers = []
        if options.report_dir:
            handlers.append(ReportFiles(options.report_dir))
        if options.record and options.warehouse_root:
            handlers.append(WarehouseRecord(options.warehouse_root))
    return run_generic(spec, policy, options, handlers, overrides)
