"""The validator on the BigQuery backend (bqemulator) gives the same class counts as on
DuckDB over the same rows as Parquet: the same Ibis expressions, their compiled SQL run
through the BigQuery client."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from pipelines.bigquery_io import insert_rows, schema_fields
from pipelines.instants import utc_iso
from pipelines.stack.local import ROOT
from tests.validator.arms import arm_rows, write_arm

pytestmark = pytest.mark.cloud
KAPPACTL = Path(sys.executable).parent / "kappactl"


def _json_row(row: dict) -> dict:
    times = ("window_start", "window_end", "emitted_at")
    return {k: (utc_iso(v) if k in times else v) for k, v in row.items()}


def _validate(tmp_path: Path, env: dict[str, str], *args: str) -> dict:
    (tmp_path / "policy.yaml").write_text("min_final_keys: 10\n")
    cmd = [str(KAPPACTL), "validate", "--config", str(ROOT / "config" / "demo.yaml"), "--json", "--no-record",
           "--policy", str(tmp_path / "policy.yaml"), *args]  # fmt: skip
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode in (0, 1), done.stderr
    return json.loads(done.stdout)


def _load_arms(cloud, bq, tmp_path: Path, sides: dict[str, str]) -> str:
    """A fresh dataset holding each arm (`arm_<name>`, the rows of `arm_rows(side)`), and
    the same rows as `<name>.parquet` in tmp_path; the dataset's name."""
    from google.cloud import bigquery

    dataset = f"v_{uuid.uuid4().hex[:10]}"
    bq.create_dataset(f"{cloud.project}.{dataset}")
    for name, side in sides.items():
        rows = arm_rows(side)
        write_arm(tmp_path / f"{name}.parquet", rows)
        table = f"{cloud.project}.{dataset}.arm_{name}"
        bq.create_table(bigquery.Table(table, schema=schema_fields("aggregate.json")))
        insert_rows(bq, table, [_json_row(r) for r in rows])
    return dataset


def _on_both(cloud, tmp_path: Path, dataset: str) -> tuple[dict, dict]:
    """The reports of left vs right on DuckDB (Parquet) and on BigQuery (the same rows)."""
    env = {**os.environ, **cloud.environment}
    on_duckdb = _validate(tmp_path, env, "--left-path", str(tmp_path / "left.parquet"),
                          "--right-path", str(tmp_path / "right.parquet"))  # fmt: skip
    on_bigquery = _validate(tmp_path, env, "--bigquery-project", cloud.project,
                            "--dataset", dataset, "--left", "arm_left", "--right", "arm_right")  # fmt: skip
    return on_duckdb, on_bigquery


def test_class_counts_on_bigquery_equal_duckdbs(cloud, bq, tmp_path: Path):
    dataset = _load_arms(cloud, bq, tmp_path, {"left": "left", "right": "right"})
    on_duckdb, on_bigquery = _on_both(cloud, tmp_path, dataset)
    assert on_duckdb["keys"]["total"] == 606 and on_duckdb["keys"]["same"] == 600  # every class present
    assert on_bigquery["keys"] == on_duckdb["keys"]
    assert on_bigquery["verdict"] == on_duckdb["verdict"]


def test_identical_arms_pass_on_bigquery(cloud, bq, tmp_path: Path):
    """No final key differs: the error percentiles are NULL (BigQuery returns no array of
    NULLs), and the run is a PASS with the same class counts as on DuckDB."""
    dataset = _load_arms(cloud, bq, tmp_path, {"left": "right", "right": "right"})
    on_duckdb, on_bigquery = _on_both(cloud, tmp_path, dataset)
    assert on_duckdb["keys"]["total"] == on_duckdb["keys"]["same"] == 605
    assert on_bigquery["verdict"] == on_duckdb["verdict"] == "PASS"
    assert on_bigquery["keys"] == on_duckdb["keys"]
    none = {"p50": None, "p90": None, "p99": None, "max": None}
    assert on_bigquery["errors"]["keys"] == 0
    assert on_bigquery["errors"]["abs"] == on_bigquery["errors"]["rel"] == none
