"""Result handlers: what happens to a finished `Report`. They are interchangeable, each
with one `handle(report)` method: stdout, report files, the warehouse's
`validation_runs` table, and BigQuery's `migration.validation_runs`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
import pyarrow as pa

from migration.policy import arm_name
from migration.validator.classes import explained
from migration.validator.options import RunOptions
from migration.validator.report.model import FAIL, INTERACTION_COUNTS, PASS, Report
from migration.validator.report.render import render_html, render_markdown, summary_line
from pipelines.errors import ConfigError
from pipelines.instants import parse_optional_instant, utc_iso
from pipelines.rows import TS, VALIDATION_RUNS_SCHEMA, table_from_rows
from pipelines.warehouse import Warehouse

# Columns the validator writes beyond the shared VALIDATION_RUNS_SCHEMA (additive: the
# warehouse views read segments by name, so older segments simply lack them).
VALIDATION_RUNS_EXTRA = [
    ("keys_same", pa.int64()),
    ("keys_pending", pa.int64()),
    ("keys_explained", pa.int64()),
    ("unexplained_count_rate", pa.float64()),
    ("window_from", TS),
    ("window_to", TS),
    ("policy", pa.string()),
    ("spec", pa.string()),  # the validation spec's name (null: `kappactl validate` flags)
    # A spec run narrowed by a filter or judged by its own policy keys (JSON): the cutover
    # gate leaves such runs out unless the policy's gate_counts_restricted_runs is on.
    ("spec_filter", pa.string()),
    ("policy_overrides", pa.string()),
]
VALIDATION_RUNS_ROW_SCHEMA = pa.schema([*VALIDATION_RUNS_SCHEMA, *VALIDATION_RUNS_EXTRA])


class StdoutSummary:
    def __init__(self, as_json: bool = False):
        self.as_json = as_json

    def handle(self, report: Report) -> None:
        if self.as_json:
            click.echo(report.to_json())
            return
        click.echo(summary_line(report))
        for reason in report.reasons:
            click.echo(f"  {reason}")
        if report.report_dir:
            click.echo(f"  report: {Path(report.report_dir) / 'report.html'}")


class ReportFiles:
    """report.json, report.md and report.html (plots inline) in one folder."""

    def __init__(self, directory: Path):
        self.directory = Path(directory)

    def handle(self, report: Report) -> None:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            report.report_dir = str(self.directory)
            (self.directory / "report.json").write_text(report.to_json() + "\n", encoding="utf-8")
            (self.directory / "report.md").write_text(render_markdown(report), encoding="utf-8")
            (self.directory / "report.html").write_text(render_html(report), encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"--report-dir {self.directory}: cannot write the report ({exc})") from exc


def _ms(iso_text: str | None) -> int | None:
    return parse_optional_instant(iso_text, "report time")


def run_row(report: Report) -> dict[str, Any]:
    """The report as one validation_runs row (timestamps in epoch ms); a spec report's
    sides' labels stand for the arms, and it has no reference, explanations or windows.
    Arms are recorded by name (`arm_name`: `kappa.kappa_stream` is `kappa_stream`), as the
    policy's `gate_arms` names them; report.json keeps the labels as given."""
    k = report.keys
    final = k["total"] - k["pending"]
    row = {
        "run_id": report.run_id,
        "started_at": _ms(report.started_at),
        "finished_at": _ms(report.finished_at),
        "verdict": report.verdict,
        "left_arm": arm_name(report.inputs["left"]),
        "right_arm": arm_name(report.inputs["right"]),
        "reference_arm": None,
        "keys_total": k["total"],
        "keys_final": final,
        "keys_unexplained": k["unexplained"],
        "unexplained_rate": k["unexplained"] / final if final else None,
        "report_path": str(Path(report.report_dir) / "report.json") if report.report_dir else None,
        "keys_same": k["same"],
        "keys_pending": k["pending"],
        "keys_explained": 0,
        "unexplained_count_rate": None,
        "window_from": None,
        "window_to": None,
        "policy": json.dumps(report.policy, sort_keys=True),
        "spec": report.spec,
        "spec_filter": _filter_text(report.inputs.get("filter")),
        "policy_overrides": json.dumps(report.policy_overrides, sort_keys=True)
        if report.policy_overrides
        else None,
    }
    if report.kind == INTERACTION_COUNTS:
        windows = report.by_window
        row |= {
            "reference_arm": arm_name(reference) if (reference := report.inputs["reference"]) else None,
            "unexplained_rate": report.rates["unexplained_key_rate"],
            "keys_explained": explained(k),
            "unexplained_count_rate": report.rates["unexplained_count_rate"],
            "window_from": _ms(windows[0]["window_start"]) if windows else None,
            "window_to": _ms(windows[-1]["window_start"]) if windows else None,
        }
    return row


def _filter_text(value: Any) -> str | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)


class WarehouseRecord:
    """Appends one row per run to the local warehouse's `validation_runs`."""

    def __init__(self, root: Path):
        self.warehouse = Warehouse(root)

    def handle(self, report: Report) -> None:
        table = table_from_rows([run_row(report)], VALIDATION_RUNS_ROW_SCHEMA)
        self.warehouse.append("validation_runs", table, writer="validator")


class BigQueryRecord:
    """Inserts one row into BigQuery's `migration.validation_runs`: the same columns as the
    warehouse table (terraform's schema JSON holds them; the cutover gate reads them), plus
    the whole report as JSON."""

    def __init__(self, project: str, table_id: str = "migration.validation_runs"):
        self.project, self.table_id = project, table_id

    def handle(self, report: Report) -> None:
        from pipelines.bigquery_io import bigquery_client, insert_rows

        insert_rows(
            bigquery_client(self.project), f"{self.project}.{self.table_id}", [bigquery_run_row(report)]
        )


def bigquery_run_row(report: Report) -> dict[str, Any]:
    """`run_row` as a BigQuery JSON row: timestamps as ISO 8601, the report as a JSON string."""
    row = run_row(report)
    timestamps = {f.name for f in VALIDATION_RUNS_ROW_SCHEMA if pa.types.is_timestamp(f.type)}
    body = {k: (utc_iso(v) if k in timestamps and v is not None else v) for k, v in row.items()}
    body["report"] = report.to_json()
    return body


def streak(root: Path | None, left: str, right: str, verdict_now: str, restricted_now: bool = False) -> int:
    """PASS runs in a row of `left` vs `right` (by arm name) in the warehouse at `root`,
    plus this one, as the cutover gate counts them: a spec run with a filter or policy
    overrides (this one too, if `restricted_now`) neither counts nor breaks the streak."""
    from migration.cutover.gate import read_validation_runs

    verdicts: list[str] = []
    if root and Warehouse(root).segments("validation_runs"):
        verdicts = [
            r.verdict for r in read_validation_runs(Warehouse(root), (left, right)) if not r.restricted
        ]
    count = 0
    for verdict in [*verdicts, *([] if restricted_now else [verdict_now])]:
        if verdict == PASS:
            count += 1
        elif verdict == FAIL:
            count = 0
    return count


def default_handlers(options: RunOptions) -> list[Any]:
    """Report files (with a report dir) and the run's record: BigQuery's table for a run on
    a BigQuery dataset, else the local warehouse's."""
    handlers: list[Any] = []
    if options.report_dir:
        handlers.append(ReportFiles(options.report_dir))
    if options.record and options.bigquery_project:
        handlers.append(BigQueryRecord(options.bigquery_project))
    elif options.record and options.warehouse_root:
        handlers.append(WarehouseRecord(options.warehouse_root))
    return handlers
