"""The validator on warehouse tables: legacy_serving (the legacy engineer's real view)
against kappa_stream's current panes, with finality from batch_runs and the watermark."""

from __future__ import annotations

from pathlib import Path

import pytest

from migration.policy import build_policy
from migration.validator import PASS, build_inputs, run_validation
from pipelines.config import load_config
from pipelines.errors import InputError
from pipelines.warehouse import Warehouse
from tests.validator.arms import PERIOD_MS, T0, WINDOW_MS, agg_row

CONFIG = load_config(Path(__file__).parents[2] / "config" / "demo.yaml")
LATENESS_MS = CONFIG.time.kappa_allowed_lateness_ms
TWEETS = range(1, 21)
POLICY = build_policy(
    {"min_final_keys": 100, "max_unexplained_key_rate": 0.01, "max_unexplained_count_rate": 0.05}
)


def truth(window: int, tweet: int) -> int:
    return 1 + (tweet + window) % 4


def build_warehouse(root: Path) -> Warehouse:
    """Period 0 (windows 0-5) batch-served and final; period 1 (6-11) speed-served, pending.

    One key differs in each period: (window 2, tweet 1) is final, (window 8, tweet 1) pending.
    """
    wh = Warehouse(root)
    batch, speed, kappa = [], [], []
    for w in range(12):
        for t in TWEETS:
            value = truth(w, t)
            if w < 6:
                batch.append(
                    agg_row(w, t, "like", value + (w == 2 and t == 1), pipeline="legacy_batch", pane_index=1)
                )
                speed.append(agg_row(w, t, "like", value + 9, pipeline="legacy_speed"))  # never served
            else:
                speed.append(agg_row(w, t, "like", value + (w == 8 and t == 1), pipeline="legacy_speed"))
            end = T0 + (w + 1) * WINDOW_MS
            kappa.append(agg_row(w, t, "like", value - 1, pane="EARLY", pane_index=0, emitted_at=end - 1000))
            kappa.append(agg_row(w, t, "like", value, pane="ON_TIME", pane_index=1, emitted_at=end + 500))
    # The stream's newest ON_TIME pane (window 17, another tweet) shows its watermark passed
    # T0 + 180 s: period 0's windows + lateness only.
    watermark_window = (PERIOD_MS + LATENESS_MS) // WINDOW_MS - 1
    kappa.append(agg_row(watermark_window, 999, "like", 1, pane="ON_TIME", pane_index=1))
    wh.append("legacy_batch", batch, writer="batch")
    wh.append("legacy_speed", speed, writer="speed")
    wh.append("kappa_stream", kappa[: len(kappa) // 2], writer="kappa-a")
    wh.append("kappa_stream", kappa[len(kappa) // 2 :], writer="kappa-b")
    run = {"run_id": "r0", "period_start": T0, "period_end": T0 + PERIOD_MS, "started_at": T0 + 75_000,
           "finished_at": T0 + 80_000, "lines_read": 1, "events_counted": 1, "duplicates_removed": 0,
           "late_dropped": 0, "dead_lettered": 0, "status": "FINISHED", "pane_index": 1}  # fmt: skip
    running = {**run, "run_id": "r1", "period_start": T0 + PERIOD_MS, "period_end": T0 + 2 * PERIOD_MS,
               "finished_at": None, "status": "RUNNING", "pane_index": 2}  # fmt: skip
    wh.append("batch_runs", [run, running], writer="batch")
    return wh


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("wh")
    build_warehouse(root)
    return root


def test_default_arms_with_pending_windows(warehouse: Path, tmp_path: Path) -> None:
    report = run_validation(build_inputs(CONFIG, warehouse=str(warehouse), record=False), POLICY)
    assert report.inputs["left"] == "legacy_serving" and report.inputs["right"] == "kappa_stream"
    keys = report.keys
    assert keys["total"] == 241
    assert keys["pending"] == 121  # periods 1 and 2: no finished batch run, kappa watermark short
    assert (keys["same"], keys["different"], keys["unexplained"]) == (119, 1, 1)
    assert keys["missing_in_left"] == keys["missing_in_right"] == 0  # EARLY panes were superseded
    assert [w["final"] for w in report.by_window] == [True] * 6 + [False] * 7
    assert "batch period" in report.finality["left"] and "ON_TIME or LATE" in report.finality["right"]
    assert report.verdict == PASS
    (top,) = report.top_unexplained
    assert (top["tweet_id"], top["left_count"], top["right_count"]) == (1, truth(2, 1) + 1, truth(2, 1))


def test_once_periods_close_the_pending_keys_are_compared(tmp_path: Path) -> None:
    wh = build_warehouse(tmp_path / "wh")
    later = T0 + 2 * PERIOD_MS + LATENESS_MS
    watermark = agg_row(
        (later - T0) // WINDOW_MS - 1, 998, "like", 1, pane="ON_TIME", pane_index=5
    )  # passed `later`
    wh.append(
        "kappa_stream",
        [agg_row(11, 999, "click", 1, pane="ON_TIME", pane_index=5), watermark],
        writer="kappa-c",
    )
    wh.append("legacy_speed", [agg_row(11, 999, "click", 1)], writer="speed")
    run = {"run_id": "r2", "period_start": T0 + PERIOD_MS, "period_end": T0 + 2 * PERIOD_MS,
           "started_at": later, "finished_at": later, "lines_read": 1, "events_counted": 1,
           "duplicates_removed": 0, "late_dropped": 0, "dead_lettered": 0, "status": "FINISHED",
           "pane_index": 2}  # fmt: skip
    wh.append("batch_runs", [run], writer="batch")
    report = run_validation(build_inputs(CONFIG, warehouse=str(tmp_path / "wh"), record=False), POLICY)
    # Period 1 is now batch-served, but the batch never wrote its rows: kappa's are missing in legacy.
    assert report.keys["pending"] == 2  # the two watermark keys, in periods 2 and 3
    assert report.keys["missing_in_left"] == 121


def test_noise_baseline_and_reference(warehouse: Path, tmp_path: Path) -> None:
    wh = Warehouse(tmp_path / "wh")
    build_warehouse(tmp_path / "wh")
    backfill = [
        agg_row(w, t, "like", truth(w, t), pipeline="kappa_backfill") for w in range(12) for t in TWEETS
    ]
    backfill[0]["count"] += 1
    wh.append("kappa_backfill", backfill, writer="backfill")
    report = run_validation(
        build_inputs(CONFIG, warehouse=str(tmp_path / "wh"), reference="kappa_backfill", record=False), POLICY
    )
    noise = report.noise_baseline
    assert noise is not None and noise["left"] == "kappa_stream" and noise["right"] == "kappa_backfill"
    assert noise["keys"]["pending"] == 121 and noise["keys"]["different"] == 1  # 120 + the watermark key
    assert report.reference is not None and report.reference["left_vs_reference"]["keys"]["different"] == 2


def test_unknown_or_empty_table_is_an_input_error(warehouse: Path, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="table 'no_such_table' is not in the warehouse"):
        run_validation(build_inputs(CONFIG, warehouse=str(warehouse), left="no_such_table"), POLICY)
    with pytest.raises(InputError, match="right arm kappa_backfill has no rows"):
        run_validation(build_inputs(CONFIG, warehouse=str(warehouse), right="kappa_backfill"), POLICY)
