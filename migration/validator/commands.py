"""`kappactl validate`: a thin command. The interaction-count flags build the shipped spec
(`spec.flags`); `--spec FILE|DIR` names specs. Every spec is checked before any runs (one
ConfigError naming every problem, exit 3); each gets its own report; several give one
summary table and the worst verdict as exit code.

Exit codes: 0 PASS, 1 FAIL, 2 INCONCLUSIVE, 3 bad input or configuration.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import click

from migration.policy import Policy, load_policy
from migration.validator.options import RunOptions
from migration.validator.report.handlers import ReportFiles, StdoutSummary, default_handlers
from migration.validator.report.model import Report
from migration.validator.report.render import summary_table, worst_exit_code
from migration.validator.run import dry_run_sql, kind_of, run_spec, spec_policy
from migration.validator.spec.flags import build_inputs, run_options
from migration.validator.spec.model import Spec
from migration.validator.spec.parse import load_specs
from pipelines.cli_common import echo_err, with_config
from pipelines.config import Config
from pipelines.errors import ConfigError, KappaError

# Flags that still apply with --spec (the rest name arms, which a spec declares itself).
_SPEC_FLAGS = ("warehouse", "memory_limit", "threads", "since", "until")


@click.command(name="validate")
@click.option(
    "--spec",
    "specs",
    multiple=True,
    help="A validation spec YAML, or a folder of them; repeatable. Replaces the arm flags.",
)
@click.option("--left", help="Left warehouse table or view.  [default: the shipped spec's left]")
@click.option("--right", help="Right warehouse table or view.  [default: the shipped spec's right]")
@click.option("--left-path", help="Left arm as aggregate Parquet files (a path or glob) instead of a table.")
@click.option(
    "--right-path", help="Right arm as aggregate Parquet files (a path or glob) instead of a table."
)
@click.option("--reference", help="Optional reference arm, e.g. kappa_backfill or truth.")
@click.option("--reference-path", help="Optional reference arm as aggregate Parquet files.")
@click.option("--archive", help="Archive root (dt=.../hr=...) used to explain differences.")
@click.option("--since", help="First window_start compared (ISO 8601 UTC or epoch ms).")
@click.option("--until", help="Compare windows starting before this (ISO 8601 UTC or epoch ms).")
@click.option("--policy", "policy_path", help="Policy YAML.  [default: config/policy.yaml]")
@click.option("--warehouse", help="Warehouse root.  [default: paths.warehouse_root of the config]")
@click.option("--report-dir", help="Where report.json/.md/.html go.  [default: <state_dir>/reports/<run_id>]")
@click.option("--no-record", is_flag=True, help="Do not append the run to the validation_runs table.")
@click.option("--dry-run", is_flag=True, help="Print the SQL it would run and exit.")
@click.option("--json", "as_json", is_flag=True, help="Print report.json to stdout instead of a summary.")
@click.option("--bigquery-project", help="Run on BigQuery in this project instead of the local warehouse.")
@click.option("--dataset", help="BigQuery dataset of the arm tables (with --bigquery-project).")
@click.option("--memory-limit", help="DuckDB memory limit, e.g. 3GB.")
@click.option("--threads", type=int, help="DuckDB threads.")
@with_config
def validate(
    config: Config,
    policy_path: str | None,
    dry_run: bool,
    as_json: bool,
    no_record: bool,
    report_dir: str | None,
    dataset: str | None,
    specs: tuple[str, ...],
    **arms: Any,
) -> None:
    """Compare two arms key by key, explain the differences, and give a verdict; or run
    validation specs (`--spec`): the flags are a shorthand for the shipped spec
    config/validations/interaction_counts.yaml.

    Exit code 0 PASS, 1 FAIL, 2 INCONCLUSIVE, 3 bad input or configuration (several
    specs: the worst verdict).
    """
    policy = load_policy(policy_path)
    if not specs:
        inputs = build_inputs(config, record=not no_record, bigquery_dataset=dataset, **arms)
        raise SystemExit(run_specs(config, [inputs.spec], policy, inputs.options, report_dir,
                                   dry_run=dry_run, as_json=as_json, headers=False))  # fmt: skip
    given = sorted(k for k, v in {**arms, "dataset": dataset}.items() if v and k not in _SPEC_FLAGS)
    if given:
        flags = ", ".join("--" + k.replace("_", "-") for k in given)
        raise ConfigError(f"--spec replaces the arm flags: drop {flags} (a spec names its own sides)")
    loaded = load_specs(list(specs))
    for spec in loaded:
        spec_policy(policy, spec)  # a bad `policy:` block fails before anything runs
    errors: list[str] = []
    options = run_options(config, errors, record=not no_record, **{k: arms.get(k) for k in _SPEC_FLAGS})
    if errors:
        raise ConfigError("; ".join(errors))
    raise SystemExit(run_specs(config, loaded, policy, options, report_dir, dry_run=dry_run, as_json=as_json))


def run_specs(config: Config, specs: list[Spec], policy: Policy, options: RunOptions, report_dir: str | None,
              *, dry_run: bool, as_json: bool, headers: bool = True) -> int:  # fmt: skip
    """Run the specs; the exit code of the worst verdict."""
    if dry_run:
        for spec in specs:
            if headers:
                click.echo(f"-- spec {spec.name} ({kind_of(spec)})")
            for name, sql in dry_run_sql(spec, config, policy, options).items():
                click.echo(f"-- {name}\n{sql};\n" if sql else f"-- {name}\n")
        return 0
    base = Path(report_dir) if report_dir else Path(config.paths.state_dir) / "reports" / options.run_id
    if len(specs) == 1:  # one spec: its error is the command's error (one line, its exit code)
        report = _run_one(specs[0], config, policy, replace(options, report_dir=base), StdoutSummary(as_json))
        return report.exit_code
    reports: list[Report] = []
    failed: list[tuple[str, KappaError]] = []
    for spec in specs:  # a spec whose data cannot be read must not stop the others
        one = replace(options, report_dir=base / spec.name, run_id=RunOptions().run_id)
        try:
            reports.append(_run_one(spec, config, policy, one, None if as_json else StdoutSummary(False)))
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


def _run_one(spec: Spec, config: Config, policy: Policy, options: RunOptions,
             stdout: StdoutSummary | None) -> Report:  # fmt: skip
    """Report files first (so the summary can point at them), then the record, then stdout."""
    assert options.report_dir is not None
    handlers: list[Any] = [ReportFiles(options.report_dir)]
    handlers += [h for h in default_handlers(options) if not isinstance(h, ReportFiles)]
    handlers += [stdout] if stdout else []
    return run_spec(spec, config, policy, options, handlers)
