"""The arms' BigQuery sink on bqemulator: the legacy batch and the kappa backfill, reading the
cloud archive from fake-gcs-server, stream their rows into Terraform's pre-created tables,
equal to the local warehouse's rows on the same events; BigQuery's legacy_serving view serves
the batch rows once the ledger (also in BigQuery) has a FINISHED run."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from kappa.backfill import BackfillJob, backfill_sink, run_backfill
from lambda_legacy.batch.destinations import BigQueryDestination
from lambda_legacy.batch.runs import run_period
from pipelines.archive import ArchiveWriter, partition_of
from pipelines.bigquery_io import query_rows
from pipelines.config import load_config
from pipelines.errors import InputError
from pipelines.gcs_archive import write_object
from pipelines.stack.local import ROOT
from pipelines.warehouse import Warehouse
from tests.cloud.test_archive_gcs import ALIGNED, PERIOD_MS, WINDOW_MS, arrivals

pytestmark = pytest.mark.cloud
P0 = 1_767_571_200_000 + 7 * 86_400_000  # a week after the other tests' periods: its own rows


def _shifted() -> list[tuple[int, list[bytes]]]:
    import json

    out = []
    for started, bodies in arrivals():
        moved = []
        for body in bodies:
            try:
                event = json.loads(body)
                event["event_time"] += 7 * 86_400_000
                moved.append(json.dumps(event).encode())
            except ValueError:
                moved.append(body)
        out.append((started + 7 * 86_400_000, moved))
    return out


@pytest.fixture
def archives(bucket, tmp_path: Path) -> tuple[str, str]:
    root = f"gs://{bucket.name}/interactions/"
    local = ArchiveWriter(tmp_path / "archive", "a", 60)
    for started, bodies in _shifted():
        write_object(root, bodies, started)
        local.write(partition_of(started, 60), bodies)
    return root, str(tmp_path / "archive")


def _local_rows(warehouse: Path, table: str) -> set[tuple]:
    sql = f"SELECT epoch_ms(window_start), tweet_id, event_type, count, pane FROM {table}"
    return set(Warehouse(warehouse).connect().execute(sql).fetchall())


def _bq_rows(bq, table: str, since_ms: int) -> set[tuple]:
    sql = (
        f"SELECT UNIX_MILLIS(window_start) AS w, tweet_id, event_type, count, pane FROM `{table}` "
        f"WHERE window_start >= TIMESTAMP_MILLIS({since_ms}) "
        f"AND window_start < TIMESTAMP_MILLIS({since_ms + 86_400_000})"
    )
    return {
        (r["w"], r["tweet_id"], r["event_type"], r["count"], r["pane"]) for r in query_rows(bq, sql, table)
    }


def test_legacy_batch_rows_in_bigquery_equal_the_warehouses(cloud, bq, archives, tmp_path: Path):
    root, local = archives
    destination = BigQueryDestination(f"{cloud.project}:legacy")
    for i in (0, 1):
        start = P0 + i * PERIOD_MS
        cloud_run = run_period(root, destination, start, PERIOD_MS, WINDOW_MS, [], ALIGNED)
        local_run = run_period(local, str(tmp_path / "wh"), start, PERIOD_MS, WINDOW_MS, [], ALIGNED)
        assert cloud_run.counters == local_run.counters
    project = cloud.project
    assert _bq_rows(bq, f"{project}.legacy.legacy_batch", P0) == _local_rows(tmp_path / "wh", "legacy_batch")
    served = _bq_rows(bq, f"{project}.legacy.legacy_serving", P0)
    assert served == _local_rows(tmp_path / "wh", "legacy_batch")
    ledger = query_rows(
        bq,
        f"SELECT status FROM `{project}.legacy.batch_runs` WHERE period_start = TIMESTAMP_MILLIS({P0})",
        "l",
    )
    assert sorted(r["status"] for r in ledger) == ["FINISHED", "RUNNING"]
    dead = query_rows(
        bq,
        f"SELECT COUNT(*) AS n FROM `{project}.migration.dead_letter` WHERE pipeline = 'legacy_batch'",
        "d",
    )
    assert dead[0]["n"] >= 2  # "{broken" and the empty line of period 0


def test_kappa_backfill_rows_in_bigquery_equal_the_warehouses(cloud, bq, archives, tmp_path: Path):
    root, local = archives
    config = load_config(ROOT / "config" / "demo.yaml")
    table = f"{cloud.project}:kappa.kappa_backfill"
    dead_letters = "migration.dead_letter"
    sink = backfill_sink(str(tmp_path / "unused"), table, f"{cloud.project}:{dead_letters}")
    cloud_job = BackfillJob(config, root, sink, workers=1)
    assert run_backfill(cloud_job).parts == 4
    run_backfill(BackfillJob(config, local, backfill_sink(str(tmp_path / "wh")), workers=1))
    assert _bq_rows(bq, f"{cloud.project}.kappa.kappa_backfill", P0) == _local_rows(
        tmp_path / "wh", "kappa_backfill"
    )


def test_a_table_terraform_did_not_create_fails_the_run_in_one_line(cloud, archives):
    root, _ = archives
    destination = BigQueryDestination(f"{cloud.project}:no_such_{uuid.uuid4().hex[:6]}")
    with pytest.raises(InputError, match="not found") as info:
        run_period(root, destination, P0, PERIOD_MS, WINDOW_MS, [], ALIGNED)
    assert "no_such" in str(info.value) and "\n" not in str(info.value)
