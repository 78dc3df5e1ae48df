"""The speed job's pure stages and driver control, without a Flink cluster."""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from argparse import Namespace
from pathlib import Path

import pytest

from lambda_legacy.speed import logic
from lambda_legacy.speed.launcher import ROOT, SpeedOptions, job_command
from lambda_legacy.speed.source_probe import ASSIGNED, FETCHES, reading
from lambda_legacy.speed.supervisor import ProgressFile, latest_restore_point, read_progress, stop_reason
from pipelines.config import load_config
from pipelines.events import BadRecord, Interaction
from pipelines.warehouse import Warehouse

T = 1_767_571_200_000


def test_parse_record_keeps_what_windows_need_and_rejects_bad_payloads():
    e = Interaction(str(uuid.uuid4()), T + 5, "like", 3, 4, 5, "ios")
    assert logic.parse_record(e.to_json().decode(), T) == logic.SpeedEvent(3, "like", T + 5, e.event_id)
    bad = logic.parse_record("{nope", T)
    assert isinstance(bad, BadRecord) and bad.pipeline == "legacy_speed" and bad.error.startswith("not JSON")
    # a Kafka record without a timestamp (-1) is judged against the clock
    assert isinstance(logic.parse_record(e.to_json(), -1), logic.SpeedEvent)


def test_rows_are_written_as_one_segment_per_flush_with_the_table_schema(tmp_path):
    rows = [
        logic.aggregate_row(T, T + 10_000, 3, "like", 2),
        logic.aggregate_row(T, T + 10_000, 4, "like", 1),
    ]
    assert logic.write_rows(str(tmp_path), "legacy_speed", rows, "speed0") == 2
    late = logic.late_row(logic.SpeedEvent(3, "like", T + 12_345, "id-1"), 10_000, dropped_at_ms=T + 99)
    assert logic.write_rows(str(tmp_path), "speed_late", [late], "speed0") == 1
    assert logic.write_rows(str(tmp_path), "dead_letter", [], "speed0") == 0
    wh = Warehouse(tmp_path)
    assert [len(wh.segments(t)) for t in ("legacy_speed", "speed_late", "dead_letter")] == [1, 1, 0]
    con = wh.connect(10_000)
    assert con.execute("SELECT sum(count), min(pane), min(pipeline) FROM legacy_speed").fetchone() == (
        3,
        "ON_TIME",
        "legacy_speed",
    )
    assert con.execute("SELECT epoch_ms(window_start), event_id FROM speed_late").fetchone() == (
        T + 10_000,
        "id-1",
    )


def test_flush_is_due_when_the_buffer_is_old_or_large():
    assert not logic.flush_due(0, None, 10_000, 3000, 100)
    assert not logic.flush_due(5, 9_000, 10_000, 3000, 100)
    assert logic.flush_due(5, 7_000, 10_000, 3000, 100)
    assert logic.flush_due(100, 9_999, 10_000, 3000, 100)


def test_progress_files_sum_over_workers(tmp_path):
    a, b = ProgressFile(tmp_path / "parse-0.json"), ProgressFile(tmp_path / "sink-0.json")
    a.seen(3, bad=1)
    a.seen(2)  # throttled: not yet on disk
    a.flush()
    b.buffered("legacy_speed", 4)
    b.buffered("legacy_speed", 0, written=4)
    total = read_progress(tmp_path)
    assert (total["records"], total["bad"], total["buffered"], total["written"]) == (
        5,
        1,
        0,
        {"legacy_speed": 4},
    )


def test_stop_reasons():
    args = Namespace(max_runtime=10.0, exit_when_idle=3.0)
    progress = {"last_record_at": 100.0, "buffered": 0}
    assert stop_reason(args, progress, 99.0, 101.0, [], reading_since=99.5) is None
    assert stop_reason(args, progress, 99.0, 104.0, [], reading_since=99.5) == "idle for 3s"
    assert stop_reason(args, {**progress, "buffered": 2}, 99.0, 104.0, [], 99.5) is None  # rows to flush
    assert stop_reason(args, progress, 90.0, 100.5, []) == "max runtime 10s reached"
    assert stop_reason(args, progress, 99.0, 99.5, ["SIGTERM"]) == "SIGTERM"


def test_idleness_counts_from_the_first_poll_not_from_submission():
    """Start-up (mini-cluster, task deployment, Python workers, split assignment) took longer
    than the idle window on a busy machine: the job stopped as idle before its first poll."""
    args = Namespace(max_runtime=0.0, exit_when_idle=8.0)
    nothing_read = {"last_record_at": 0.0, "buffered": 0}
    assert stop_reason(args, nothing_read, 0.0, 60.0, [], reading_since=None) is None  # still starting
    assert stop_reason(args, nothing_read, 0.0, 60.0, [], reading_since=55.0) is None
    assert stop_reason(args, nothing_read, 0.0, 63.0, [], reading_since=55.0) == "idle for 8s"
    assert stop_reason(args, {**nothing_read, "last_record_at": 58.0}, 0.0, 63.0, [], 55.0) is None


def test_the_source_reads_once_every_partition_is_assigned_and_polled():
    def subtask(assigned: float, fetches: float) -> dict[str, float]:
        return {ASSIGNED: assigned, FETCHES: fetches}

    assert not reading([], 3)
    assert not reading([subtask(0, 0)] * 3, 3)  # readers up, no split assigned yet
    assert not reading([subtask(1, 1), subtask(1, 0), subtask(1, 4)], 3)  # one has not fetched
    assert not reading([subtask(1, 2), subtask(1, 3), subtask(0, 0)], 3)  # one partition unassigned
    assert reading([subtask(1, 2), subtask(1, 3), subtask(1, 1)], 3)
    assert reading([subtask(2, 5), subtask(1, 1)], 3)
    assert reading([subtask(2, 5), subtask(1, 1), subtask(0, 0)], 3)  # more readers than partitions
    assert reading([subtask(1, 1)], 0)  # partitions unknown: one assigned and polled


def test_latest_restore_point_is_the_newest_checkpoint_or_savepoint(tmp_path):
    assert latest_restore_point(tmp_path) is None
    old = tmp_path / "checkpoints" / "job1" / "chk-3"
    new = tmp_path / "savepoints" / "savepoint-abc"
    for d in (old, new):
        d.mkdir(parents=True)
        (d / "_metadata").write_text("x")
    os.utime(old / "_metadata", (time.time() - 60, time.time() - 60))
    assert latest_restore_point(tmp_path) == new.as_uri()


def test_job_command_maps_the_config():
    config = load_config(ROOT / "config" / "demo.yaml")
    cmd = job_command(config, SpeedOptions(bounded=True, warehouse="/tmp/wh", state_dir="/tmp/st"))
    assert cmd[1:3] == ["-m", "lambda_legacy.speed.job"]
    assert "--window-ms=10000" in cmd and "--out-of-orderness-ms=2000" in cmd and "--parallelism=3" in cmd
    assert "--partitions=3" in cmd
    assert "--idleness-ms=5000" in cmd and "--bounded" in cmd and "--fresh" not in cmd


@pytest.mark.flink
def test_pure_stages_import_and_run_in_the_flink_venv(tmp_path):
    """The same functions, in the interpreter the Flink workers use (pyarrow 16)."""
    code = (
        "import json, sys; from lambda_legacy.speed import logic, job;"
        "rows=[logic.aggregate_row(1767571200000, 1767571210000, 1, 'like', 2)];"
        f"n=logic.write_rows({str(tmp_path)!r}, 'legacy_speed', rows, 'w');"
        "a=job.parse_args(['--bootstrap=x:1','--topic=t','--warehouse=w','--state-dir=s','--connector-jar=j',"
        "'--window-ms=10','--out-of-orderness-ms=1']);"
        "print(json.dumps([n, a.parallelism]))"
    )
    out = subprocess.run(
        [str(ROOT / ".venv-flink" / "bin" / "python"), "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout.strip().splitlines()[-1]) == [1, 1]
    con = Warehouse(Path(tmp_path)).connect(10_000)
    assert con.execute("SELECT count FROM legacy_speed").fetchall() == [(2,)]
