"""The validator records its runs in BigQuery's migration.validation_runs (created from
terraform's schema JSON on bqemulator) under the column names the cutover gate reads, and in
the cloud profile `kappactl cutover` reads them there and keeps its state in a GCS object."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from dataclasses import replace
from pathlib import Path

import pyarrow as pa
import pytest

from migration.cutover.gate import read_bigquery_validation_runs, read_validation_runs
from migration.policy import build_policy, load_policy
from migration.validator import build_inputs, run_validation
from migration.validator.handlers import VALIDATION_RUNS_ROW_SCHEMA, BigQueryRecord, WarehouseRecord
from pipelines.bigquery_io import insert_rows, schema_columns, schema_fields
from pipelines.config import load_config
from pipelines.errors import InputError
from pipelines.stack.local import ROOT
from pipelines.stack.private import write_config
from pipelines.warehouse import Warehouse
from tests.validator.arms import arm_rows, write_arm

pytestmark = pytest.mark.cloud
KAPPACTL = Path(sys.executable).parent / "kappactl"
POLICY = build_policy({"min_final_keys": 10})


def test_terraforms_validation_runs_schema_is_the_warehouse_row_plus_the_report():
    assert schema_columns("validation_runs.json") == [*VALIDATION_RUNS_ROW_SCHEMA.names, "report"]
    types = {f.name: f.field_type for f in schema_fields("validation_runs.json")}
    for field in VALIDATION_RUNS_ROW_SCHEMA:
        expected = "TIMESTAMP" if pa.types.is_timestamp(field.type) else None
        expected = expected or {"string": "STRING", "int64": "INT64", "double": "FLOAT64"}[str(field.type)]
        assert types[field.name] == expected, field.name


@pytest.fixture
def dataset(cloud, bq) -> str:
    """A copy of migration.validation_runs in a dataset of this test (Terraform's schema)."""
    from google.cloud import bigquery

    name = f"t_{uuid.uuid4().hex[:10]}"
    bq.create_dataset(f"{cloud.project}.{name}")
    bq.create_table(
        bigquery.Table(f"{cloud.project}.{name}.validation_runs", schema_fields("validation_runs.json"))
    )
    return name


def _validate(tmp_path: Path, same: bool, handlers: list) -> tuple[str, str, str]:
    """(verdict, left label, right label) of one validator run over two Parquet arms."""
    config = load_config(ROOT / "config" / "demo.yaml")
    tmp_path.mkdir(parents=True)
    write_arm(tmp_path / "left.parquet", arm_rows("right" if same else "left"))
    write_arm(tmp_path / "right.parquet", arm_rows("right"))
    inputs = build_inputs(
        config, left_path=str(tmp_path / "left.parquet"), right_path=str(tmp_path / "right.parquet"),
        warehouse=str(tmp_path / "wh"), record=False,
    )  # fmt: skip
    report = run_validation(inputs, POLICY, handlers)
    return report.verdict, report.inputs["left"], report.inputs["right"]


def test_bigquery_and_warehouse_records_give_the_gate_the_same_runs(cloud, bq, dataset, tmp_path: Path):
    table = f"{dataset}.validation_runs"
    handlers = [BigQueryRecord(cloud.project, table), WarehouseRecord(tmp_path / "wh")]
    runs = [_validate(tmp_path / str(i), same, handlers) for i, same in enumerate((True, False, True))]
    assert [verdict for verdict, _, _ in runs] == ["PASS", "FAIL", "PASS"]
    local = read_validation_runs(Warehouse(tmp_path / "wh"))
    in_bigquery = read_bigquery_validation_runs(cloud.project, None, table)
    assert [(r.run_id, r.verdict, r.finished_at_ms) for r in in_bigquery] == [
        (r.run_id, r.verdict, r.finished_at_ms) for r in local
    ]
    _, left, right = runs[2]
    assert [r.run_id for r in read_bigquery_validation_runs(cloud.project, (left, right), table)] == [
        r.run_id for r in read_validation_runs(Warehouse(tmp_path / "wh"), (left, right))
    ]
    assert read_bigquery_validation_runs(cloud.project, ("legacy_serving", "kappa_stream"), table) == []
    row = next(
        iter(bq.query(f"SELECT * FROM `{cloud.project}.{table}` ORDER BY finished_at LIMIT 1").result())
    )
    assert (row["left_arm"], row["right_arm"]) == (runs[0][1], runs[0][2])
    assert json.loads(row["report"])["run_id"] == row["run_id"] == local[0].run_id


def test_runs_of_dataset_qualified_arms_count_for_the_default_gate_arms(cloud, bq, dataset, tmp_path: Path):
    """On BigQuery the kappa arm is `kappa.kappa_stream` (another dataset than the legacy's):
    the validator records it by arm name, and the gate (BigQuery and warehouse alike) matches
    arm names, so rows recorded with the dataset still count for config/policy.yaml's pair."""
    gate = load_policy(ROOT / "config" / "policy.yaml").gate_arms
    assert gate == ("legacy_serving", "kappa_stream")
    table = f"{dataset}.validation_runs"
    config = load_config(ROOT / "config" / "demo.yaml")
    tmp_path.mkdir(parents=True, exist_ok=True)
    for side in ("left", "right"):
        write_arm(tmp_path / f"{side}.parquet", arm_rows("right"))
    inputs = build_inputs(config, left_path=str(tmp_path / "left.parquet"),
                          right_path=str(tmp_path / "right.parquet"), record=False)  # fmt: skip
    report = run_validation(inputs, POLICY, [])
    assert report.verdict == "PASS"
    qualified = {"left": "legacy.legacy_serving", "right": f"bigquery:{cloud.project}.kappa.kappa_stream"}
    recorded = replace(report, inputs={**report.inputs, **qualified})
    for handler in (BigQueryRecord(cloud.project, table), WarehouseRecord(tmp_path / "wh")):
        handler.handle(recorded)
    row = next(iter(bq.query(f"SELECT left_arm, right_arm FROM `{cloud.project}.{table}`").result()))
    assert (row["left_arm"], row["right_arm"]) == gate
    older = _run(f"older-{report.run_id}", 2_000_000_000_000, ("legacy.legacy_serving", "kappa.kappa_stream"))
    backfill = _run(
        f"bf-{report.run_id}", 2_000_000_000_001, ("legacy.legacy_serving", "kappa.kappa_backfill")
    )
    insert_rows(bq, f"{cloud.project}.{table}", [older, backfill])
    counted = [r.run_id for r in read_bigquery_validation_runs(cloud.project, gate, table)]
    assert counted == [report.run_id, older["run_id"]]
    assert [r.run_id for r in read_validation_runs(Warehouse(tmp_path / "wh"), gate)] == [report.run_id]
    assert read_validation_runs(Warehouse(tmp_path / "wh"), ("legacy_serving", "kappa_backfill")) == []


def _run(run_id: str, finished_ms: int, arms: tuple[str, str], verdict: str = "PASS") -> dict:
    from pipelines.instants import utc_iso

    return {
        "run_id": run_id, "started_at": utc_iso(finished_ms - 1000), "finished_at": utc_iso(finished_ms),
        "verdict": verdict, "left_arm": arms[0], "right_arm": arms[1], "keys_total": 2000,
    }  # fmt: skip


def kappactl(config_path: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [str(KAPPACTL), *args, "--config", str(config_path)]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120, env=env)


def test_the_cloud_gate_reads_bigquery_runs_and_moves_the_gcs_state(cloud, bq, tmp_path: Path):
    import os

    from pipelines.events import now_ms

    config_path = write_config(cloud.config, tmp_path / "gcp.yaml")
    env = {**os.environ, **cloud.environment}
    state = f"gs://{cloud.config.gcp.state_bucket}/gate-{uuid.uuid4().hex[:8]}"
    table, gate, other = (
        f"{cloud.project}.migration.validation_runs",
        ("legacy_serving", "kappa_stream"),
        ("a", "b"),
    )
    t = now_ms()
    insert_rows(bq, table, [_run(f"g{i}-{t}", t + i, gate) for i in range(2)])
    insert_rows(bq, table, [_run(f"o{i}-{t}", t + 10 + i, other) for i in range(3)])  # other arms: no count
    before = kappactl(config_path, env, "cutover", "status", "--json", "--state", state)
    assert before.returncode == 0, before.stderr
    status = json.loads(before.stdout)
    assert not status["gate"]["ok"] and "has 2" in status["gate"]["message"]
    assert status["store"] == state
    refused = kappactl(config_path, env, "cutover", "advance", "--reason", "r", "--state", state)
    assert refused.returncode != 0 and len(refused.stderr.strip().splitlines()) == 1
    insert_rows(bq, table, [_run(f"g2-{t}", t + 20, gate)])
    moved = kappactl(config_path, env, "cutover", "advance", "--reason", "3 passes", "--state", state)
    assert moved.returncode == 0, moved.stderr
    after = json.loads(kappactl(config_path, env, "cutover", "status", "--json", "--state", state).stdout)
    assert after["state"]["stage"] == "CANARY" and after["generation"] > 0


def test_a_missing_dataset_is_one_line(cloud):
    with pytest.raises(InputError, match="not found") as info:
        read_bigquery_validation_runs(cloud.project, None, "no_such_dataset.validation_runs")
    assert "\n" not in str(info.value)


def test_the_bigquery_gate_counts_runs_in_their_window_once_and_no_restricted_run(cloud, bq, dataset, bucket):
    """The same evidence rules as on the warehouse, on BigQuery's rows: runs an hour ahead of
    now (clock skew) and spec runs with policy overrides or a filter do not count; the three
    runs that open the gate open no other."""
    from migration.cutover import GcsStateStore, Stage, advance
    from migration.cutover.model import now_ms
    from pipelines.errors import ConflictError

    table = f"{dataset}.validation_runs"
    gate = ("legacy_serving", "kappa_stream")
    policy = build_policy({"consecutive_passes": 3})
    store = GcsStateStore(bucket, "gate")

    def go(to=None):
        runs = read_bigquery_validation_runs(cloud.project, gate, table)
        return advance(store, policy, runs, reason="gate", actor="ops", to=to)

    t = now_ms()
    insert_rows(
        bq, f"{cloud.project}.{table}", [_run(f"ahead{i}", t + 3_600_000 + i, gate) for i in range(3)]
    )
    with pytest.raises(ConflictError, match=r"3 run\(s\) finish after now"):
        go()
    restricted = [
        {**_run(f"loose{i}", t + i, gate), "policy_overrides": '{"max_unexplained_key_rate": 0.5}'}
        for i in range(2)
    ] + [{**_run("filtered", t + 2, gate), "spec_filter": "tweet_id = 2"}]
    insert_rows(bq, f"{cloud.project}.{table}", restricted)
    with pytest.raises(ConflictError, match="has 0"):
        go()
    insert_rows(bq, f"{cloud.project}.{table}", [_run(f"good{i}", t + 10 + i, gate) for i in range(3)])
    state = go()
    assert state.stage is Stage.CANARY and state.last_transition.evidence == ("good0", "good1", "good2")
    with pytest.raises(ConflictError, match="has 0"):
        go(Stage.FULL)
