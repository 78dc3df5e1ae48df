"""The legacy batch's cloud destination: the BigQuery tables Terraform creates.

BigQuery itself cannot run here; these tests hold the code to Terraform's schemas and check
that the pipeline is wired to BigQuery sinks, not to the local warehouse.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import apache_beam as beam
import pytest
from apache_beam.pipeline import PipelineVisitor

from lambda_legacy.batch.destinations import BigQueryDestination, bigquery_ledger_row
from lambda_legacy.batch.pipeline import BatchRun, build
from lambda_legacy.batch.runs import _ledger_row
from migration.cli import main
from pipelines.archive import ArchivePart
from pipelines.beam import WriteToBigQueryTable, WriteToWarehouse
from pipelines.errors import ConfigError

SCHEMAS = Path(__file__).resolve().parents[2] / "terraform" / "modules" / "bigquery" / "schemas"
P0 = 1_767_571_200_000
RUN = BatchRun(P0, P0 + 60_000, 10_000, P0 + 75_000, (ArchivePart("part.jsonl", P0, P0 + 60_000),))


@pytest.mark.parametrize("status", ["RUNNING", "FINISHED", "FAILED"])
def test_ledger_rows_fit_terraforms_batch_runs_schema(status):
    schema = {c["name"]: c for c in json.loads((SCHEMAS / "batch_runs.json").read_text())}
    counters = {
        "lines_read": 5,
        "events_counted": 3,
        "duplicates_removed": 1,
        "late_dropped": 0,
        "dead_lettered": 1,
    }
    row = bigquery_ledger_row(_ledger_row(RUN, "run-1", status, counters if status == "FINISHED" else None))
    assert set(row) == set(schema)
    assert all(row[name] is not None for name, c in schema.items() if c["mode"] == "REQUIRED")
    assert row["period_start"] == "2026-01-05T00:00:00.000Z" and row["pane_index"] == RUN.pane_index
    for name, column in schema.items():
        if column["type"] == "TIMESTAMP" and row[name] is not None:
            datetime.fromisoformat(row[name].replace("Z", "+00:00"))
        if column["type"] == "INT64" and row[name] is not None:
            assert isinstance(row[name], int), name


def test_the_pipeline_writes_to_bigquery_not_to_the_warehouse():
    p = beam.Pipeline(runner="FnApiRunner")
    build(p, RUN, BigQueryDestination("my-proj:legacy"))
    sinks = {node.full_label: node.transform for node in _nodes(p) if "Write" in node.full_label}
    tables = {label: t.table for label, t in sinks.items() if isinstance(t, WriteToBigQueryTable)}
    assert tables == {
        "WriteAggregates": "my-proj:legacy.legacy_batch",
        "WriteDeadLetters": "my-proj:migration.dead_letter",
    }
    assert not any(isinstance(t, WriteToWarehouse) for t in sinks.values())


def _nodes(p: beam.Pipeline) -> list:
    nodes = []

    class Collect(PipelineVisitor):
        def enter_composite_transform(self, node):
            nodes.append(node)

        def visit_transform(self, node):
            nodes.append(node)

    p.visit(Collect())
    return nodes


@pytest.mark.parametrize(
    "dataset, dead_letter, words",
    [
        ("legacy", "migration.dead_letter", "use PROJECT:DATASET"),
        ("p:legacy.batch", "migration.dead_letter", "use PROJECT:DATASET"),
        ("p:legacy", "dead_letter", "use DATASET.TABLE"),
    ],
)
def test_bad_bigquery_names_are_refused(dataset, dead_letter, words):
    with pytest.raises(ConfigError, match=words):
        BigQueryDestination(dataset, dead_letter)


def test_cli_refuses_two_destinations_and_bad_names(tmp_path, capsys):
    (tmp_path / "archive").mkdir()
    base = [
        "legacy",
        "batch",
        "--archive",
        str(tmp_path / "archive"),
        "--period-start",
        "2026-01-05T00:00:00Z",
    ]
    for extra, words in (
        (["--bigquery-dataset", "p:legacy", "--warehouse", str(tmp_path)], "exclusive"),
        (["--bigquery-dataset", "legacy"], "use PROJECT:DATASET"),
    ):
        with pytest.raises(SystemExit) as info:
            main([*base, *extra])
        assert info.value.code == 3
        assert words in capsys.readouterr().err
