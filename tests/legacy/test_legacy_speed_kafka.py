"""The speed job against the real Kafka broker (`kappactl legacy speed`), on a PyFlink mini-cluster
and, with `--flink-master`, on a standalone Flink cluster of two TaskManagers."""

from __future__ import annotations

import json
import signal
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from lambda_legacy.speed.launcher import ROOT
from pipelines.events import Interaction
from pipelines.kafka_io import produce
from pipelines.warehouse import Warehouse

pytestmark = [pytest.mark.stack, pytest.mark.flink, pytest.mark.timeout(900)]
T = 1_767_571_200_000  # a window boundary (2026-01-05T00:00:00Z)


def event(offset_s: float, tweet_id: int = 1) -> Interaction:
    return Interaction(str(uuid.uuid4()), T + int(offset_s * 1000), "like", tweet_id, 7, 9, "android")


def wait_for(query: str, warehouse: Path, proc: subprocess.Popen, timeout: float = 300.0) -> list[tuple]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the speed job exited early"
        rows = Warehouse(warehouse).connect(10_000).execute(query).fetchall()
        if rows:
            return rows
        time.sleep(1.0)
    raise AssertionError(f"nothing for {query!r} within {timeout:.0f}s")


@pytest.mark.parametrize(
    "where", ["mini-cluster", pytest.param("flink-cluster", marks=pytest.mark.timeout(600))]
)
def test_speed_counts_duplicates_drops_late_events_and_commits_while_running(
    stack_config, tmp_path, where, request
):
    config, config_path = stack_config
    master = (
        ["--flink-master", request.getfixturevalue("flink_cluster").master]
        if where == "flink-cluster"
        else []
    )
    warehouse = Path(config.paths.warehouse_root)
    first = event(1)
    on_time = [first, first, *(event(s) for s in (2, 3, 4, 5))]  # a duplicate: both copies count
    key = [b"42"]  # one partition: the others are idle, which with_idleness must not stall
    produce(config, [e.to_json() for e in on_time] + [b"not json", event(25, tweet_id=2).to_json()], key * 8)
    log = (tmp_path / "speed.log").open("wb")
    proc = subprocess.Popen(
        [
            str(ROOT / ".venv" / "bin" / "kappactl"),
            "legacy",
            "speed",
            "--config",
            str(config_path),
            "--state-dir",
            str(tmp_path / "state"),
            "--fresh",
            "--flush-ms",
            "1000",
            "--checkpoint-ms",
            "2000",
            "--max-runtime",
            "600",
            *master,
        ],
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        rows = wait_for("SELECT count FROM legacy_speed WHERE tweet_id = 1", warehouse, proc)
        assert rows == [(6,)]  # committed and readable while the job runs; no dedup
        late = event(3)  # window [T, T+10s) fired when the watermark passed T+23s
        produce(config, [late.to_json()], key)
        rows = wait_for(
            f"SELECT tweet_id FROM speed_late WHERE event_id = '{late.event_id}'", warehouse, proc
        )
        assert rows == [(1,)]
        dead = wait_for("SELECT payload, pipeline FROM dead_letter", warehouse, proc)
        assert dead == [(b"not json", "legacy_speed")]
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=120)
        log.close()
    output = (tmp_path / "speed.log").read_text()
    assert code == 0, output[-3000:]
    summary = next(
        json.loads(line)["legacy_speed_summary"]
        for line in output.splitlines()
        if line.startswith('{"legacy_speed_summary"')
    )
    assert summary["records"] == 9 and summary["bad"] == 1
    con = Warehouse(warehouse).connect(10_000)
    assert con.execute("SELECT sum(count) FROM legacy_speed WHERE tweet_id = 1").fetchone()[0] == 6
    assert list((tmp_path / "state" / "savepoints").glob("savepoint-*/_metadata")), "stopped with a savepoint"
