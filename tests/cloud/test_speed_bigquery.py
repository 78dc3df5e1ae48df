"""The legacy speed job (PyFlink, mini-cluster) with `--bigquery-dataset`: its checkpointed
sink streams the same rows the local Parquet sink writes into bqemulator's
`legacy.legacy_speed` (dead letters into `migration.dead_letter`), and BigQuery's
`legacy_serving` view serves them for a period without a finished batch run."""

from __future__ import annotations

import random
import subprocess
import uuid
from pathlib import Path

import pytest

from lambda_legacy.speed.launcher import ROOT
from pipelines.bigquery_io import query_rows
from pipelines.events import Interaction
from pipelines.kafka_io import produce
from pipelines.warehouse import Warehouse

pytestmark = [pytest.mark.cloud, pytest.mark.stack, pytest.mark.flink, pytest.mark.timeout(600)]
T = 1_767_571_200_000 + 14 * 86_400_000  # two weeks after the other cloud tests' periods


def _bounded_run(config_path: Path, state: Path, *extra: str) -> None:
    cmd = [str(ROOT / ".venv" / "bin" / "kappactl"), "legacy", "speed", "--config", str(config_path),
           "--state-dir", str(state), "--fresh", "--bounded", "--from-earliest",
           "--max-runtime", "400", *extra]  # fmt: skip
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=500)
    assert done.returncode == 0, done.stderr[-3000:]


def test_speed_rows_in_bigquery_equal_the_parquet_sinks(cloud, bq, stack_config, tmp_path: Path):
    config, config_path = stack_config
    tweet = random.randrange(10**9, 2 * 10**9)  # this test's own keys in the shared tables
    events = [
        Interaction(str(uuid.uuid4()), T + offset, kind, tweet + k, 7, 9, "android")
        for offset, kind, k in ((1_000, "like", 0), (2_000, "like", 0), (3_000, "reply", 0),
                                (12_000, "like", 0), (15_000, "like", 1))
    ]  # fmt: skip
    bad = f"not json {tweet}".encode()
    produce(config, [e.to_json() for e in events] + [bad], [b"k"] * 6)
    _bounded_run(config_path, tmp_path / "local")  # the Parquet sink, as before
    _bounded_run(config_path, tmp_path / "cloud", "--bigquery-dataset", f"{cloud.project}:legacy")
    sql = "SELECT epoch_ms(window_start), tweet_id, event_type, count, pane FROM legacy_speed"
    local = set(Warehouse(config.paths.warehouse_root).connect().execute(sql).fetchall())
    assert len(local) == 4 and sum(r[3] for r in local) == 5

    def rows(table: str) -> set[tuple]:
        found = query_rows(
            bq,
            f"SELECT UNIX_MILLIS(window_start) AS w, tweet_id, event_type, count, pane FROM `{table}` "
            f"WHERE tweet_id IN ({tweet}, {tweet + 1})",
            table,
        )
        return {(r["w"], r["tweet_id"], r["event_type"], r["count"], r["pane"]) for r in found}

    assert rows(f"{cloud.project}.legacy.legacy_speed") == local
    assert rows(f"{cloud.project}.legacy.legacy_serving") == local  # no batch run: speed serves
    dead = query_rows(
        bq,
        f"SELECT payload FROM `{cloud.project}.migration.dead_letter` WHERE pipeline = 'legacy_speed'",
        "dead letters",
    )
    assert bad in {bytes(r["payload"]) for r in dead}


def test_a_wrong_bigquery_dataset_is_a_one_line_error(cloud, stack_config, tmp_path: Path):
    _, config_path = stack_config
    cmd = [str(ROOT / ".venv" / "bin" / "kappactl"), "legacy", "speed", "--config", str(config_path),
           "--state-dir", str(tmp_path / "s"), "--bigquery-dataset", "no-colon"]  # fmt: skip
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 3
    assert "PROJECT:DATASET" in done.stderr and len(done.stderr.strip().splitlines()) == 1
