"""`kappactl up|status|down --config <gcp-emulated>`: pstest, fake-gcs-server and bqemulator
(plus Kafka) on loopback, and BigQuery's datasets, tables and views created from the very
files Terraform uses; a test fails if the two drift apart."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from pipelines.bigquery_io import (
    AGGREGATE_TABLES,
    BOOKKEEPING_TABLES,
    DATASETS,
    TERRAFORM_BIGQUERY,
    view_specs,
)
from pipelines.config import GcpConfig
from pipelines.stack.cloud import BQ_PYTHON, FAKE_GCS_BINARY
from pipelines.stack.local import ROOT
from pipelines.stack.private import free_port, private_config, write_config

pytestmark = pytest.mark.cloud
KAPPACTL = Path(sys.executable).parent / "kappactl"
MAIN_TF = (TERRAFORM_BIGQUERY / "main.tf").read_text(encoding="utf-8")


def test_the_tables_and_views_created_locally_are_the_ones_terraform_declares():
    tf_sets = dict(re.findall(r"(\w+)_aggregate_tables\s*=.*?toset\(\[([^\]]*)\]\)", MAIN_TF))
    declared = {(d, t.strip(' "')) for d, names in tf_sets.items() for t in names.split(",")}
    assert declared == set(AGGREGATE_TABLES)
    tf_tables = set(
        re.findall(
            r'table_id\s*=\s*"(\w+)"\s*\n[^}]*?schema\s*=\s*file\("\$\{path\.module\}/schemas/(\w+\.json)"',
            MAIN_TF,
        )
    )
    assert tf_tables == {(t, f) for _, t, f in BOOKKEEPING_TABLES}
    assert set(re.findall(r'^\s+(kappa|migration|serving)\s*=\s*"', MAIN_TF, re.M)) | {"legacy"} == set(
        DATASETS
    )
    views = {(d, v) for d, v, _ in view_specs("p", 60)}
    assert {(d, f"{t}_current") for d, t in AGGREGATE_TABLES} <= views
    assert {("legacy", "legacy_serving"), ("serving", "interaction_counts")} <= views
    assert (
        'table_id            = "interaction_counts"' in MAIN_TF
        and 'table_id            = "legacy_serving"' in MAIN_TF
    )


def _require_emulators() -> None:
    for path in (FAKE_GCS_BINARY, BQ_PYTHON):
        if not path.exists():
            message = f"{path} not installed: run `make setup`"
            if os.environ.get("CI", "").lower() == "true":
                pytest.fail(message)
            pytest.skip(message)


def test_up_status_down_start_every_emulator_and_create_terraforms_tables(tmp_path: Path):
    _require_emulators()
    config = private_config(tmp_path)
    gcp = GcpConfig(
        storage_emulator_host=f"127.0.0.1:{free_port()}",
        bigquery_emulator_host=f"127.0.0.1:{free_port()}",
        bigquery_grpc_port=free_port(),
        archive_aligned_to_period=True,  # as config/gcp-emulated.yaml: the demo profile's 15 s batch_delay
    )
    config = replace(config, gcp=gcp, pubsub=replace(config.pubsub, subscriptions=("kappa", "archive")))
    path = write_config(config, tmp_path / "gcp.yaml")
    env = {k: v for k, v in os.environ.items() if not k.endswith("_EMULATOR_HOST")}

    def kappactl(*args: str) -> subprocess.CompletedProcess[str]:
        cmd = [str(KAPPACTL), *args, "--config", str(path)]
        return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)

    try:
        up = kappactl("up")
        assert up.returncode == 0, up.stderr
        status = kappactl("status", "--json")
        components = {c["name"]: c for c in json.loads(status.stdout)}
        assert set(components) == {"kafka", "pubsub", "gcs", "bigquery"}
        assert all(c["healthy"] and c["managed"] for c in components.values()), components
        from pipelines.bigquery_io import bigquery_client, schema_fields

        client = bigquery_client(gcp.project, f"http://{gcp.bigquery_emulator_host}")
        for dataset, table, schema_file in [
            *[(d, t, "aggregate.json") for d, t in AGGREGATE_TABLES],
            *BOOKKEEPING_TABLES,
        ]:
            got = client.get_table(f"{gcp.project}.{dataset}.{table}").schema
            assert [(f.name, f.field_type, f.mode) for f in got] == [
                (f.name, f.field_type, f.mode) for f in schema_fields(schema_file)
            ], table
        for dataset, view, _ in view_specs(gcp.project, 60):  # bqemulator returns no view_query: query it
            [row] = client.query(f"SELECT COUNT(*) AS n FROM `{gcp.project}.{dataset}.{view}`").result()
            assert row["n"] == 0, view
        assert kappactl("up").returncode == 0  # idempotent: tables and buckets already there
    finally:
        down = kappactl("down")
    assert down.returncode == 0, down.stderr
    after = {c["name"]: c for c in json.loads(kappactl("status", "--json").stdout)}
    assert not any(c["healthy"] for c in after.values())
