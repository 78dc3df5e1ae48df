"""`kappactl validate`: a thin command; the work is in runner.run_validation.

Exit codes: 0 PASS, 1 FAIL, 2 INCONCLUSIVE, 3 bad input or configuration.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from migration.policy import load_policy
from migration.validator.handlers import ReportFiles, StdoutSummary, default_handlers
from migration.validator.inputs import build_inputs
from migration.validator.runner import build_plan, run_validation
from pipelines.cli_common import with_config
from pipelines.config import Config
from pipelines.errors import ConfigError

# Flags that still apply with --spec (the rest name arms, which a spec declares itself).
_SPEC_FLAGS = ("warehouse", "memory_limit", "threads", "since", "until")


def _spec_flags(arms: dict[str, str | None]) -> dict[str, str | None]:
    return {k: arms.get(k) for k in _SPEC_FLAGS}


@click.command(name="validate")
@click.option(
    "--spec",
    "specs",
    multiple=True,
    help="A validation spec YAML, or a folder of them; repeatable. Replaces the arm flags.",
)
@click.option("--left", help="Left warehouse table or view.  [default: legacy_serving]")
@click.option("--right", help="Right warehouse table or view.  [default: kappa_stream]")
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
    if specs:
        from migration.validator.spec_commands import run_spec_files

        given = sorted(k for k, v in {**arms, "dataset": dataset}.items() if v and k not in _SPEC_FLAGS)
        if given:
            flags = ", ".join("--" + k.replace("_", "-") for k in given)
            raise ConfigError(f"--spec replaces the arm flags: drop {flags} (a spec names its own sides)")
        raise SystemExit(run_spec_files(config, list(specs), policy, dry_run=dry_run, as_json=as_json,
                                        record=not no_record, report_dir=report_dir, **_spec_flags(arms)))  # fmt: skip
    inputs = build_inputs(
        config, record=not no_record, report_dir=report_dir, bigquery_dataset=dataset, **arms
    )
    if dry_run:
        plan = build_plan(inputs)
        try:
            for name, sql in plan.sql(policy.top_n_unexplained).items():
                click.echo(f"-- {name}\n{sql};\n")
        finally:
            plan.backend.close()
        return
    if inputs.report_dir is None:
        inputs = inputs.with_report_dir(Path(config.paths.state_dir) / "reports" / inputs.run_id)
    handlers = [h for h in default_handlers(inputs) if not isinstance(h, ReportFiles)]
    assert inputs.report_dir is not None
    handlers = [ReportFiles(inputs.report_dir), *handlers, StdoutSummary(as_json)]
    report = run_validation(inputs, policy, handlers)
    raise SystemExit(report.exit_code)
