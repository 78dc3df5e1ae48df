"""`kappactl validate --spec FILE|DIR [--spec ...]`: every spec is checked before any runs
(one ConfigError naming every problem, exit 3); each gets its own report; several give
one summary table and the worst verdict as exit code."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
import ibis

from migration.policy import Policy
from migration.validator import kind_diff
from migration.validator.handlers import ReportFiles, StdoutSummary, WarehouseRecord
from migration.validator.inputs import new_run_id
from migration.validator.runner import build_plan
from migration.validator.spec import COLUMN_AGGREGATES, SCHEMA, Spec, load_specs
from migration.validator.spec_report import summary_table, worst_exit_code
from migration.validator.spec_runner import RunOptions, inputs_from_spec, run_spec, spec_policy
from migration.validator.spec_sources import SpecEngine, open_sides
from pipelines.cli_common import echo_err
from pipelines.config import Config
from pipelines.errors import KappaError


def _dry_run(spec: Spec, config: Config, policy: Policy, options: RunOptions) -> None:
    """The SQL each spec would run, as `--dry-run` prints it for the flags."""
    click.echo(f"-- spec {spec.name} ({spec.kind})")
    if spec.streaming:
        plan = build_plan(inputs_from_spec(spec, config, options))
        try:
            for name, sql in plan.sql(spec_policy(policy, spec).top_n_unexplained).items():
                click.echo(f"-- {name}\n{sql};\n")
        finally:
            plan.backend.close()
        return
    if spec.kind in (SCHEMA, COLUMN_AGGREGATES):
        click.echo("-- reads the schemas (and, for aggregates, one grouped aggregate per side)\n")
        return
    engine = SpecEngine(
        spec, options.warehouse_root, options.memory_limit, options.threads, options.window_ms
    )
    try:
        diff_plan = kind_diff.prepare(spec, open_sides(engine, spec))
        d = kind_diff.diffs(diff_plan)
        for name, expr in (("diffs", d), ("top_keys", kind_diff.top_keys(diff_plan, d, spec.top_n))):
            click.echo(f"-- {name}\n{ibis.to_sql(expr, dialect=engine.name)};\n")
    finally:
        engine.close()


def run_spec_files(config: Config, paths: list[str], policy: Policy, *, dry_run: bool, as_json: bool,
                   record: bool, report_dir: str | None, warehouse: str | None = None,
                   memory_limit: str | None = None, threads: Any = None, since: str | None = None,
                   until: str | None = None) -> int:  # fmt: skip
    """Run the specs; the exit code of the worst verdict."""
    specs = load_specs(paths)
    for spec in specs:
        spec_policy(policy, spec)  # a bad `policy:` block fails before anything runs
    root = Path(warehouse) if warehouse else Path(config.paths.warehouse_root)
    base = Path(report_dir) if report_dir else Path(config.paths.state_dir) / "reports" / new_run_id()
    options = RunOptions(warehouse_root=root, record=record, memory_limit=memory_limit,
                         threads=threads, since=since, until=until, window_ms=config.time.window_ms)  # fmt: skip
    if dry_run:
        for spec in specs:
            _dry_run(spec, config, policy, options)
        return 0
    if len(specs) == 1:  # one spec: its error is the command's error (one line, its exit code)
        report = _run_one(specs[0], base, config, policy, options, root, as_json=as_json)
        if as_json:
            click.echo(json.dumps(report.as_dict(), indent=2, default=str))
        return worst_exit_code([report])
    reports, failed = [], []
    for spec in specs:  # a spec whose data cannot be read must not stop the others
        try:
            reports.append(_run_one(spec, base / spec.name, config, policy, options, root, as_json=as_json))
        except KappaError as exc:
            failed.append((spec.name, exc))
            echo_err(f"kappactl: error: spec {spec.name}: {exc}")
    if as_json:
        body = [r.as_dict() for r in reports] + [
            {"spec": name, "error": str(exc), "exit_code": exc.exit_code} for name, exc in failed
        ]
        click.echo(json.dumps(body, indent=2, default=str))
    else:
        click.echo(summary_table(reports, [(name, exc.exit_code) for name, exc in failed]))
    codes = [exc.exit_code for _, exc in failed] + ([worst_exit_code(reports)] if reports else [])
    return max(codes)


def _run_one(spec: Spec, folder: Path, config: Config, policy: Policy, options: RunOptions, root: Path,
             *, as_json: bool) -> Any:  # fmt: skip
    handlers: list[Any] = [ReportFiles(folder)]
    if options.record:
        handlers.append(WarehouseRecord(root))
    if not as_json:
        handlers.append(StdoutSummary(False))
    return run_spec(spec, config, policy, RunOptions(**{**vars(options), "report_dir": folder}), handlers)
