"""The validator on Parquet arms with known differences of every class, on DuckDB."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from migration.policy import build_policy
from migration.validator import FAIL, PASS, build_inputs, run_validation
from migration.validator.archive_source import archive_events_sql, archive_files
from pipelines.archive import arrival_spans, list_parts, read_lines
from pipelines.config import load_config
from pipelines.events import BadEvent, parse_event
from tests.validator.arms import (
    EXPECTED_KEYS,
    SPECIAL,
    arm_rows,
    build_archive,
    expected_weighted,
    write_arm,
)

CONFIG = load_config(Path(__file__).parents[2] / "config" / "demo.yaml")
LENIENT = build_policy(
    {"min_final_keys": 10, "max_unexplained_key_rate": 0.01, "max_unexplained_count_rate": 0.01}
)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("arms")
    write_arm(root / "left" / "part-0.parquet", arm_rows("left"))
    write_arm(root / "right.parquet", arm_rows("right"))
    build_archive(root / "archive")
    return root


def inputs(data: Path, tmp_path: Path, **kw):
    args = {
        "left_path": str(data / "left" / "*.parquet"),
        "right_path": str(data / "right.parquet"),
        "warehouse": str(tmp_path / "warehouse"),
        "report_dir": str(tmp_path / "report"),
    }
    return build_inputs(CONFIG, **{**args, **kw})


def test_every_class_is_counted_and_explained(data: Path, tmp_path: Path) -> None:
    report = run_validation(inputs(data, tmp_path, archive=str(data / "archive")), LENIENT)
    saved = json.loads((tmp_path / "report" / "report.json").read_text())
    for key in ("run_id", "verdict", "keys", "weighted", "by_event_type", "by_window", "policy", "inputs",
                "started_at", "finished_at"):  # fmt: skip
        assert key in saved, key
    assert saved["keys"] == EXPECTED_KEYS
    assert saved["weighted"] == expected_weighted()
    assert saved["verdict"] == PASS == report.verdict
    # Per event type: each special key has its own type.
    types = saved["by_event_type"]
    assert types["like"]["keys"]["explained_late"] == 1 and types["quote"]["keys"]["explained_late"] == 1
    assert types["retweet"]["keys"]["explained_duplicates"] == 1
    assert types["impression"]["keys"] == {**dict.fromkeys(EXPECTED_KEYS, 0), "total": 300, "same": 300}
    assert [w["keys_total"] for w in saved["by_window"]] == [101] * 6
    # Errors over the three final DIFFERENT keys: |3-5|, |6-4|, |7-9|.
    assert saved["errors"]["keys"] == 3 and saved["errors"]["abs"]["max"] == 2
    assert saved["errors"]["rel"]["max"] == pytest.approx(0.4)
    top = {(u["tweet_id"], u["comparison"]) for u in saved["top_unexplained"]}
    assert top == {(9003, "DIFFERENT"), (9005, "MISSING_IN_RIGHT"), (9006, "MISSING_IN_LEFT")}
    html = (tmp_path / "report" / "report.html").read_text()
    assert html.count("<svg") == 2 and "http" not in html.split("<svg")[0]
    assert "| unexplained | 3 |" in (tmp_path / "report" / "report.md").read_text()


def test_strict_policy_fails_and_runs_are_recorded(data: Path, tmp_path: Path) -> None:
    strict = build_policy({"min_final_keys": 10})  # 0.1% unexplained allowed; 0.5% seen
    first = run_validation(inputs(data, tmp_path, archive=str(data / "archive")), strict)
    assert first.verdict == FAIL and first.exit_code == 1
    assert any("unexplained_key_rate" in r for r in first.reasons)
    second = run_validation(inputs(data, tmp_path, archive=str(data / "archive")), LENIENT)
    third = run_validation(inputs(data, tmp_path, archive=str(data / "archive")), LENIENT)
    assert (second.consecutive_passes["count"], third.consecutive_passes["count"]) == (1, 2)
    from migration.cutover.gate import read_validation_runs
    from pipelines.warehouse import Warehouse

    runs = read_validation_runs(Warehouse(tmp_path / "warehouse"))
    assert [r.verdict for r in runs] == [FAIL, PASS, PASS]
    assert [r.run_id for r in runs] == [first.run_id, second.run_id, third.run_id]


def test_without_archive_every_difference_is_unexplained(data: Path, tmp_path: Path) -> None:
    report = run_validation(inputs(data, tmp_path, record=False), LENIENT)
    assert report.keys["unexplained"] == len(SPECIAL)
    assert report.keys["explained_late"] == report.keys["explained_duplicates"] == 0
    assert report.verdict == FAIL


def test_identical_arms_pass_and_reference_agrees(data: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy.parquet"
    copy.write_bytes((data / "right.parquet").read_bytes())
    report = run_validation(
        inputs(data, tmp_path, left_path=str(copy), reference_path=str(data / "right.parquet")),
        build_policy({"min_final_keys": 100}),
    )
    assert report.verdict == PASS
    assert report.keys["same"] == report.keys["total"] == 605
    assert report.errors["keys"] == 0 and report.top_unexplained == []
    assert report.reference is not None
    assert report.reference["right_vs_reference"]["keys"]["same"] == 605


def test_too_few_final_keys_is_inconclusive(data: Path, tmp_path: Path) -> None:
    report = run_validation(inputs(data, tmp_path, since="2026-01-05T00:00:50Z"), LENIENT)
    assert report.keys["total"] == 101
    report = run_validation(inputs(data, tmp_path), build_policy({"min_final_keys": 10_000}))
    assert report.verdict == "INCONCLUSIVE" and report.exit_code == 2


def test_archive_view_keeps_exactly_what_parse_event_accepts(data: Path) -> None:
    import duckdb

    root = str(data / "archive")
    con = duckdb.connect()
    con.execute(archive_events_sql(archive_files(root, None, CONFIG.time.period_ms)))
    got = Counter(
        con.execute(
            "SELECT event_id, arrival_start_ms, arrival_end_ms, event_time_ms FROM archive_events"
        ).fetchall()
    )
    expected: Counter = Counter()
    for part in list_parts(root, spans=arrival_spans(CONFIG)):
        for line in read_lines(part.path):
            try:
                event = parse_event(line, part.arrival_start_ms)
            except BadEvent:
                continue
            expected[(event.event_id, part.arrival_start_ms, part.arrival_end_ms, event.event_time)] += 1
    assert got == expected
    assert sum(got.values()) == 3 + 2 + 6 + 2  # late, dups (4 unique + 2 copies), late_missing_left


def test_file_arm_with_several_panes_keeps_the_highest(data: Path, tmp_path: Path) -> None:
    rows = arm_rows("right")
    early = [{**r, "count": r["count"] + 100, "pane": "EARLY", "pane_index": 0} for r in rows]
    final = [{**r, "pane": "ON_TIME", "pane_index": 1} for r in rows]
    write_arm(tmp_path / "panes.parquet", final[:300] + early + final[300:])
    copy = tmp_path / "copy.parquet"
    copy.write_bytes((data / "right.parquet").read_bytes())
    report = run_validation(
        inputs(data, tmp_path, left_path=str(copy), right_path=str(tmp_path / "panes.parquet"), record=False),
        LENIENT,
    )
    assert report.keys["same"] == report.keys["total"] == 605
