"""Run one validation spec: open its engine once, run its kind, judge it, hand the report on.

Every run comes through `run_spec`: a spec file, a folder of them, or the interaction-count
flags of `kappactl validate` (which build the shipped spec, `spec.flags`). The Python API
the demo and the cutover controller call in-process is `run_validation(build_inputs(...))`.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime
from types import ModuleType
from typing import Any, Iterable, Protocol

from migration.policy import Policy, build_policy
from migration.validator.engines import open_engine
from migration.validator.kinds import KindRun, interaction_counts, metric_diff, tables
from migration.validator.options import RunOptions
from migration.validator.report.handlers import default_handlers, streak
from migration.validator.report.model import Report, iso
from migration.validator.spec.flags import ValidationInputs
from migration.validator.spec.model import (
    COLUMN_AGGREGATES,
    INTERACTION_COUNTS,
    METRIC_DIFF,
    ROW_HASH,
    SCHEMA,
    Spec,
)
from pipelines.config import Config

# Each kind's module: run(KindRun) -> Outcome and sql(KindRun) -> {name: SQL}.
KINDS: dict[str, ModuleType] = {
    INTERACTION_COUNTS: interaction_counts,
    METRIC_DIFF: metric_diff,
    ROW_HASH: metric_diff,
    SCHEMA: tables,
    COLUMN_AGGREGATES: tables,
}


class Handler(Protocol):
    def handle(self, report: Report) -> None: ...


def kind_of(spec: Spec) -> str:
    """The kind a spec runs as: its streaming options make it an interaction-count comparison."""
    return INTERACTION_COUNTS if spec.streaming else spec.kind


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


def dry_run_sql(spec: Spec, config: Config, policy: Policy, options: RunOptions) -> dict[str, str]:
    """The SQL the spec would run, by step, without running it."""
    engine = open_engine(spec, options, config.time)
    try:
        ctx = KindRun(spec, engine, options, config.time, spec_policy(policy, spec))
        return dict(KINDS[kind_of(spec)].sql(ctx))
    finally:
        engine.close()


def run_spec(spec: Spec, config: Config, policy: Policy, options: RunOptions,
             handlers: Iterable[Handler] | None = None) -> Report:  # fmt: skip
    """Run one spec; `handlers` default to report files (with a report dir) and the record."""
    overrides = policy_overrides(policy, spec)
    policy = spec_policy(policy, spec)
    kind = kind_of(spec)
    started = datetime.now(UTC)
    engine = open_engine(spec, options, config.time)
    try:
        outcome = KINDS[kind].run(KindRun(spec, engine, options, config.time, policy))
    finally:
        engine.close()
    report = Report(run_id=options.run_id, kind=kind, verdict=outcome.verdict, reasons=outcome.reasons,
                    keys=outcome.keys, sections=outcome.sections, policy=asdict(policy), inputs=outcome.inputs,
                    started_at=iso(started) or "", finished_at=iso(datetime.now(UTC)) or "", spec=spec.name,
                    report_dir=str(options.report_dir) if options.report_dir else None,
                    policy_overrides=overrides)  # fmt: skip
    # The streak as the cutover gate counts it: a run with a filter or policy overrides
    # neither counts nor breaks it; BigQuery runs are recorded in BigQuery, not read here.
    root = options.warehouse_root if engine.name == "duckdb" and not options.bigquery_project else None
    restricted = bool(report.inputs.get("filter") or overrides)
    count = streak(root, report.inputs["left"], report.inputs["right"], report.verdict, restricted)
    report.consecutive_passes = {"count": count, "required": policy.consecutive_passes}
    for handler in default_handlers(options) if handlers is None else handlers:
        handler.handle(report)
    return report


def run_validation(
    inputs: ValidationInputs, policy: Policy, handlers: Iterable[Handler] | None = None
) -> Report:
    """Run what the flags built (`build_inputs`): the shipped spec with their sides."""
    return run_spec(inputs.spec, inputs.config, policy, inputs.options, handlers)


def build_plan(inputs: ValidationInputs) -> interaction_counts.Plan:
    """The interaction-count expressions of `inputs`, bound to an open engine (close it)."""
    engine = open_engine(inputs.spec, inputs.options, inputs.config.time)
    return interaction_counts.build_plan(inputs.spec, engine, inputs.config.time, inputs.options)
