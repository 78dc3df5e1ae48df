"""The legacy batch layer on crafted archives, through the real Beam FnApiRunner."""

from __future__ import annotations

import json
import threading
import time
import uuid
from pathlib import Path

import pytest

from lambda_legacy.batch.runs import follow, run_period
from lambda_legacy.merge import connect_with_legacy_views
from migration.cli import main
from pipelines.archive import ArchiveWriter, partition_of
from pipelines.events import Interaction
from pipelines.warehouse import Warehouse

P0 = 1_767_571_200_000  # 2026-01-05T00:00:00Z, a period boundary
PERIOD_MS, WINDOW_MS = 60_000, 10_000


def event(offset_ms: int, tweet_id: int = 1, event_type: str = "like") -> Interaction:
    return Interaction(str(uuid.uuid4()), P0 + offset_ms, event_type, tweet_id, 7, 9, "web")


def write_archive(root: Path) -> dict[str, Interaction]:
    """Period 0 (arrived 00:00-00:01) and period 1 (00:01-00:02), plain and gzip parts."""
    e = {
        "dup": event(1_000),
        "plain": event(2_000, tweet_id=2),
        "gz": event(15_000, event_type="retweet"),
        "late": event(59_000, tweet_id=3),  # happened in period 0, archived in period 1
        "p1": event(61_000),
    }
    plain = ArchiveWriter(root, "a", 60)
    gz = ArchiveWriter(root, "b", 60, compress=True)
    plain.write(
        partition_of(P0, 60), [e["dup"].to_json(), e["plain"].to_json(), b"{broken", e["dup"].to_json()]
    )
    gz.write(partition_of(P0 + 30_000, 60), [e["gz"].to_json(), e["dup"].to_json()])
    plain.write(partition_of(P0 + PERIOD_MS, 60), [e["late"].to_json(), e["p1"].to_json()])
    return e


@pytest.fixture(scope="module")
def batched(tmp_path_factory: pytest.TempPathFactory):
    base = tmp_path_factory.mktemp("legacy_batch")
    events = write_archive(base / "archive")
    warehouse = base / "warehouse"
    reports = [
        run_period(str(base / "archive"), str(warehouse), P0 + i * PERIOD_MS, PERIOD_MS, WINDOW_MS, [])
        for i in (0, 1)
    ]
    return base, warehouse, events, reports


def served(warehouse: Path) -> set[tuple]:
    con = connect_with_legacy_views(warehouse, WINDOW_MS)
    rows = con.execute(
        "SELECT epoch_ms(window_start), tweet_id, event_type, count FROM legacy_batch_served"
    ).fetchall()
    return set(rows)


def test_duplicates_count_once_and_plain_and_gzip_parts_are_both_read(batched):
    _, warehouse, _, _ = batched
    assert served(warehouse) == {
        (P0, 1, "like", 1),  # three copies of one event_id, in a plain and a gzip part
        (P0, 2, "like", 1),
        (P0 + 10_000, 1, "retweet", 1),  # from the gzip part
        (P0 + 60_000, 1, "like", 1),  # period 1's own event
    }


def test_event_arriving_one_period_late_is_dropped_and_counted_as_late(batched):
    _, warehouse, events, reports = batched
    assert (P0 + 50_000, 3, "like", 1) not in served(warehouse)
    assert reports[1].counters["late_dropped"] == 1
    assert reports[0].counters["late_dropped"] == 0


def test_bad_line_is_dead_lettered_with_its_reason(batched):
    _, warehouse, _, _ = batched
    con = connect_with_legacy_views(warehouse, WINDOW_MS)
    rows = con.execute("SELECT payload, error, pipeline FROM dead_letter").fetchall()
    assert rows == [(b"{broken", rows[0][1], "legacy_batch")]
    assert rows[0][1].startswith("not JSON")


def test_every_line_read_is_accounted_for_and_recorded_in_batch_runs(batched):
    _, warehouse, _, reports = batched
    assert reports[0].counters == {
        "lines_read": 6,
        "events_counted": 3,
        "duplicates_removed": 2,
        "late_dropped": 0,
        "dead_lettered": 1,
    }
    assert all(r.balanced for r in reports)
    con = connect_with_legacy_views(warehouse, WINDOW_MS)
    rows = con.execute(
        "SELECT status, lines_read, events_counted, duplicates_removed, late_dropped, dead_lettered, "
        "epoch_ms(period_start), epoch_ms(period_end) FROM batch_runs "
        "WHERE status = 'FINISHED' ORDER BY period_start"
    ).fetchall()
    assert rows == [
        ("FINISHED", 6, 3, 2, 0, 1, P0, P0 + PERIOD_MS),
        ("FINISHED", 2, 1, 0, 1, 0, P0 + PERIOD_MS, P0 + 2 * PERIOD_MS),
    ]


def test_rerunning_a_period_leaves_the_same_rows_as_one_run(batched, tmp_path):
    base, warehouse, _, _ = batched
    before = served(warehouse)
    run_period(str(base / "archive"), str(warehouse), P0, PERIOD_MS, WINDOW_MS, [])
    assert served(warehouse) == before
    con = connect_with_legacy_views(warehouse, WINDOW_MS)
    assert (
        con.execute(
            "SELECT count(*) FROM legacy_batch WHERE window_start < TIMESTAMPTZ '2026-01-05 00:01:00+00'"
        ).fetchone()[0]
        == 6
    )
    assert con.execute("SELECT sum(count) FROM legacy_serving").fetchone()[0] == 4


def test_cli_follow_runs_ended_periods_then_stops(tmp_path, capsys):
    write_archive(tmp_path / "archive")
    code = _kappactl(
        [
            "legacy",
            "batch",
            "--archive",
            str(tmp_path / "archive"),
            "--warehouse",
            str(tmp_path / "wh"),
            "--follow",
            "--max-periods",
            "2",
            "--set",
            "time.batch_delay=1s",
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    runs = [json.loads(line)["batch_run"] for line in out.splitlines() if line.startswith('{"batch_run"')]
    assert [r["events_counted"] for r in runs] == [3, 1]
    # a second --follow skips the periods that already have a finished run; the next
    # period has no parts: not a FINISHED run of 0 lines, a FAILED one saying why
    code = _kappactl(
        [
            "legacy",
            "batch",
            "--archive",
            str(tmp_path / "archive"),
            "--warehouse",
            str(tmp_path / "wh"),
            "--follow",
            "--until",
            "2026-01-05T00:03:00Z",
            "--set",
            "time.batch_delay=1s",
        ]
    )
    captured = capsys.readouterr()
    assert code == 3 and not [line for line in captured.out.splitlines() if line.startswith("{")]
    assert "no archive parts" in captured.err and len(captured.err.strip().splitlines()) == 1
    ledger = (
        Warehouse(tmp_path / "wh")
        .connect()
        .execute("SELECT status, reason FROM batch_runs WHERE period_start = '2026-01-05 00:02:00+00'")
        .fetchall()
    )
    assert [status for status, _ in ledger] == ["FAILED"] and "no archive parts" in ledger[0][1]


def test_cli_follow_waits_for_an_archive_that_does_not_exist_yet(tmp_path, capsys):
    # The demo starts --follow before the archiver has written anything.
    missing = tmp_path / "archive-not-yet"
    args = ["legacy", "batch", "--archive", str(missing), "--warehouse", str(tmp_path / "wh"), "--follow"]
    assert _kappactl([*args, "--until", "2000-01-01T00:00:00Z"]) == 0
    assert (
        _kappactl(["legacy", "batch", "--archive", str(missing), "--period-start", "2026-01-05T00:00:00Z"])
        == 3
    )


@pytest.mark.parametrize(
    "args, message",
    [
        (["--period-start", "2026-01-05T00:00:30Z"], "not at a batch period boundary"),
        (["--period-start", "yesterday"], "not an ISO 8601 time"),
        ([], "give one of --period-start ISO8601, --latest or --follow"),
        (["--latest", "--period-start", "2026-01-05T00:00:00Z"], "give one of --period-start"),
        (["--latest", "--follow"], "--latest and --follow are exclusive"),
        (["--latest", "--periods", "2"], "--periods goes with --period-start"),
    ],
)
def test_cli_rejects_bad_input_with_exit_3(tmp_path, capsys, args, message):
    (tmp_path / "archive").mkdir()
    assert (
        _kappactl(
            ["legacy", "batch", "--archive", str(tmp_path / "archive"), "--warehouse", str(tmp_path), *args]
        )
        == 3
    )
    assert message in capsys.readouterr().err


def test_latest_runs_the_last_period_that_ended_a_batch_delay_ago(tmp_path, capsys):
    """What a scheduler calls: demo config, 60 s periods, 15 s delay. A due period without
    archive parts is a FAILED run saying why (exit 3), never a FINISHED run of 0 lines."""
    (tmp_path / "archive").mkdir()

    def due_period() -> int:
        ended_by = int(time.time() * 1000) - 15_000
        return ended_by - ended_by % PERIOD_MS - PERIOD_MS

    args = ["legacy", "batch", "--archive", str(tmp_path / "archive"), "--warehouse", str(tmp_path / "wh")]
    assert _kappactl([*args, "--latest"]) == 3
    assert "no archive parts" in capsys.readouterr().err
    before = due_period()
    writer = ArchiveWriter(tmp_path / "archive", "a", 60)
    for start in (before, before + PERIOD_MS):  # the minute may turn during the run
        writer.write(
            partition_of(start, 60), [Interaction(str(uuid.uuid4()), start, "like", 1, 7, 9, "web").to_json()]
        )
    assert _kappactl([*args, "--latest"]) == 0
    con = connect_with_legacy_views(tmp_path / "wh", WINDOW_MS)
    rows = con.execute(
        "SELECT epoch_ms(period_start), status, reason FROM batch_runs ORDER BY started_at, finished_at NULLS FIRST"
    ).fetchall()
    assert [r[1] for r in rows] == ["FAILED", "RUNNING", "FINISHED"] and "no archive parts" in rows[0][2]
    assert rows[-1][0] in {before, due_period()}


def test_cli_missing_archive_says_how_to_fix(tmp_path, capsys):
    assert (
        _kappactl(
            ["legacy", "batch", "--archive", str(tmp_path / "nope"), "--period-start", "2026-01-05T00:00:00Z"]
        )
        == 3
    )
    assert "kappactl archive" in capsys.readouterr().err


def _kappactl(argv: list[str]) -> int:
    try:
        main(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def test_follow_started_before_any_part_starts_at_the_first_parts_period(tmp_path):
    # The demo starts --follow before the archiver's first part, and its traffic may begin
    # only in the next period: the follow must start where the first part is, not at the
    # period it was started in (which then never gets a part, and the follow waited forever).
    archive, warehouse = tmp_path / "archive", tmp_path / "wh"
    polled, reports = threading.Event(), []

    def stop_requested() -> bool:
        polled.set()
        return False

    args = (
        str(archive),
        str(warehouse),
        PERIOD_MS,
        0,
        WINDOW_MS,
        [],
        None,
        1,
        None,
        reports.append,
        stop_requested,
    )
    worker = threading.Thread(target=follow, args=args, daemon=True)
    worker.start()
    assert polled.wait(60), "the follow never polled"
    write_archive(archive)
    worker.join(120)
    assert not worker.is_alive() and [r.period_start_ms for r in reports] == [P0]
