"""The capacity plan's arithmetic, on figures whose answers are known by hand."""

from __future__ import annotations

import pytest

from bench import capacity
from bench.capacity import Assumptions, arm_totals, cores_needed, per_core, plan, render, workers

FIGURES = {
    "legacy_speed_events_per_s": 2_000.0,  # 2 cores -> 1,000 /s per core
    "legacy_batch_events_per_s": 20_000.0,  # 2 cores -> 10,000 /s per core
    "bridge_events_per_s": 10_000.0,  # 2 cores
    "kappa_stream_sustained_events_per_s": 5_000.0,  # 2 cores
    "kappa_stream_flink_sustained_events_per_s": 8_000.0,  # 2 cores
    "kappa_backfill_events_per_s": 600_000.0,  # 2 cores
    "validator_25m_keys_seconds": 5.0,  # 5M keys/s on 2 cores
}
STAGE = {s.figure: s for s in capacity.STAGES}


def test_per_core_divides_by_the_cores_measured_on():
    assert per_core(STAGE["legacy_speed_events_per_s"], FIGURES) == 1_000
    assert per_core(STAGE["validator_25m_keys_seconds"], FIGURES) == 2_500_000  # 25M / 5 s / 2
    assert per_core(STAGE["legacy_speed_events_per_s"], {}) is None


def test_streaming_stage_is_sized_for_the_peak_with_headroom():
    a = Assumptions(headroom=0.5, peak_to_average=2.0, duplicate_fraction=0.0)
    # 86.4 M/day = 1,000 /s average, 2,000 /s peak, at half of 1,000 /s per core -> 4 cores
    assert cores_needed(STAGE["legacy_speed_events_per_s"], 1_000, 86_400_000, a) == pytest.approx(4)
    assert workers(4, a) == 1 and workers(4.01, a) == 2 and workers(0.001, a) == 1


def test_batch_stage_is_average_cores_and_duplicates_count():
    a = Assumptions(duplicate_fraction=0.25)
    # 86.4 M/day + 25% = 1,250 /s of work at 10,000 /s per core -> 0.125 cores over the day
    assert cores_needed(STAGE["legacy_batch_events_per_s"], 10_000, 86_400_000, a) == pytest.approx(0.125)


def test_plan_totals_and_the_markdown():
    a = Assumptions(headroom=0.0, peak_to_average=1.0, duplicate_fraction=0.0, cores_per_worker=4)
    lines, missing = plan(FIGURES, a)
    assert not missing and len(lines) == len(capacity.STAGES) * len(capacity.VOLUMES)
    at_400b = {line.stage.figure: line for line in lines if line.volume == 400_000_000_000}
    speed = at_400b["legacy_speed_events_per_s"]  # 4.63 M/s at 1,000 /s per core
    assert speed.cores == pytest.approx(400e9 / 86_400 / 1_000)
    assert speed.workers == 1158  # ceil(4,629.6 / 4)
    assert speed.core_hours_per_day == speed.workers * 4 * 24
    text = render(FIGURES, a)
    assert "| 400 B |" in text and "## Lambda vs Kappa per day" in text and "headroom" in text


def test_a_missing_figure_is_said_not_guessed():
    figures = dict(FIGURES)
    del figures["kappa_stream_sustained_events_per_s"]
    lines, missing = plan(figures)
    assert [s.figure for s in missing] == ["kappa_stream_sustained_events_per_s"]
    assert "not measured in this run" in render(figures)


def test_an_arm_with_a_missing_stage_gets_no_ratio():
    figures = dict(FIGURES)
    del figures["bridge_events_per_s"]
    text = render(figures)
    row = next(line for line in text.splitlines() if line.startswith("| 400 B |") and "incomplete" in line)
    assert "| n/a |" in row


def test_the_kappa_arm_is_the_flink_runner_on_kafka_and_the_directrunner_is_a_comparison():
    """The deployed Kappa arm counts the Flink stream and the backfill, not the bridge; the
    DirectRunner comparison counts the bridge, its stream and the same backfill."""
    lines, _ = plan(FIGURES)
    at_400b = {line.stage.figure: line.core_hours_per_day for line in lines if line.volume == 400_000_000_000}
    totals = arm_totals(lines)
    backfill = at_400b["kappa_backfill_events_per_s"]
    assert (
        totals[(400_000_000_000, "kappa")] == at_400b["kappa_stream_flink_sustained_events_per_s"] + backfill
    )
    assert totals[(400_000_000_000, "kappa_direct")] == (
        at_400b["bridge_events_per_s"] + at_400b["kappa_stream_sustained_events_per_s"] + backfill
    )
    row = next(line for line in render(FIGURES).splitlines() if line.startswith("| 400 B |") and "USD" not in line
               and line.count("|") == 10)  # fmt: skip
    lam = totals[(400_000_000_000, "lambda")]
    assert f"| {totals[(400_000_000_000, 'kappa')] / lam:.2f} |" in row
