"""`migration.demo.demo_passed`, the pass rule of `kappactl demo`: a summary passes only when
every arm is right (kappa stream exact, kappa backfill exact, legacy serving within its
unexplained budget) and the cutover moved past SHADOW. Each test below breaks one thing."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from migration.demo import demo_passed


def arm(final_keys: int = 2000, exact: int | None = None, unexplained: int = 0) -> dict[str, Any]:
    exact = final_keys - unexplained if exact is None else exact
    return {
        "final_keys": final_keys,
        "exact": exact,
        "explained": final_keys - exact - unexplained,
        "unexplained": unexplained,
        "all_exact": final_keys > 0 and exact == final_keys,
    }


def good_summary() -> dict[str, Any]:
    """What a correct demo run reports (shape of `run_demo`'s summary)."""
    return {
        "run": "20260101T000000",
        "kappa_stream_vs_truth": arm(),
        "kappa_backfill_vs_truth": arm(),
        # The legacy is never exact: its late and duplicate keys are explained, not wrong.
        "legacy_serving_vs_truth": arm(exact=1900, unexplained=0),
        "validation": {"verdict": "PASS", "runs": 4, "verdicts": ["PASS"] * 4},
        "cutover": {
            "final_state": "CANARY(10%)",
            "transitions": [{"from": "SHADOW", "to": "CANARY(10%)", "at_s": 120}],
        },
    }


def broken(**changes: Any) -> dict[str, Any]:
    summary = copy.deepcopy(good_summary())
    summary.update(changes)
    return summary


def test_a_run_where_every_arm_is_right_passes() -> None:
    assert demo_passed(good_summary())


def test_full_cutover_passes_too() -> None:
    summary = good_summary()
    summary["cutover"]["transitions"].append({"from": "CANARY(10%)", "to": "FULL", "at_s": 200})
    assert demo_passed(summary)


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param({"kappa_stream_vs_truth": arm(exact=1999, unexplained=1)}, id="stream-one-key-wrong"),
        pytest.param({"kappa_stream_vs_truth": arm(final_keys=0)}, id="stream-nothing-final"),
        pytest.param({"kappa_stream_vs_truth": {}}, id="stream-not-compared"),
        pytest.param(
            {"legacy_serving_vs_truth": arm(exact=1900, unexplained=3)}, id="legacy-unexplained-0.15pct"
        ),
        pytest.param({"legacy_serving_vs_truth": {}}, id="legacy-not-compared"),
        pytest.param(
            {"cutover": {"final_state": "SHADOW", "transitions": []}}, id="cutover-never-left-shadow"
        ),
    ],
)
def test_a_run_where_one_thing_is_wrong_fails(changes: dict[str, Any]) -> None:
    assert not demo_passed(broken(**changes))


def test_legacy_within_its_budget_passes() -> None:
    """0.1% of final keys unexplained is the legacy's budget: 2 of 2,000 keys is inside it."""
    assert demo_passed(broken(legacy_serving_vs_truth=arm(exact=1900, unexplained=2)))


def test_a_wrong_backfill_fails() -> None:
    assert not demo_passed(broken(kappa_backfill_vs_truth=arm(exact=1990, unexplained=10)))


def test_a_legacy_with_nothing_final_fails() -> None:
    assert not demo_passed(broken(legacy_serving_vs_truth=arm(final_keys=0)))


def test_a_cutover_rolled_back_to_shadow_fails() -> None:
    rolled_back = [
        {"from": "SHADOW", "to": "CANARY(10%)", "at_s": 100},
        {"from": "CANARY(10%)", "to": "SHADOW", "at_s": 160},
    ]
    assert not demo_passed(broken(cutover={"final_state": "SHADOW", "transitions": rolled_back}))


def test_the_demo_settles_on_a_caught_up_stream_and_waits_for_the_gate_unless_told_not_to():
    from migration.demo import DemoState, _Settle

    state = DemoState(started=0.0, verdicts=["FAIL", "PASS"])  # the gate has not had its passes
    state.elapsed = lambda: 500.0  # type: ignore[method-assign]
    caught_up, behind = {"watermark_age_s": 3.0}, {"watermark_age_s": 90.0}
    waiting = _Settle(at_least_s=100, at_most_s=1000, passes_needed=3)
    not_waiting = _Settle(at_least_s=100, at_most_s=1000, passes_needed=3, wait_for_gate=False)
    assert not waiting.done(state, caught_up)
    assert not_waiting.done(state, caught_up)
    assert not not_waiting.done(state, behind)  # a stream still behind is waited for
    state.elapsed = lambda: 50.0  # type: ignore[method-assign]
    assert not not_waiting.done(state, caught_up)  # never before the last period settled


def test_once_the_traffic_ends_the_demo_waits_for_its_last_period_not_the_worst_case():
    from migration.demo import SETTLE_MARGIN_S, _Settle, last_period_settled_ms
    from pipelines.config import load_config

    t = load_config("config/demo.yaml").time  # 60 s periods, 15 s batch delay
    minute = 1_764_000_000_000  # a period's start
    assert last_period_settled_ms(minute + 10_000, t) == minute + 75_000
    assert last_period_settled_ms(minute + 59_999, t) == minute + 75_000
    assert last_period_settled_ms(minute + 60_000, t) == minute + 135_000
    settle = _Settle(at_least_s=165, at_most_s=1000, passes_needed=3)
    settle.traffic_ended(64.0, minute + 50_000, t)  # 10 s before its period ends
    assert settle.at_least_s == 64.0 + 10 + 15 + SETTLE_MARGIN_S
    settle.traffic_ended(70.0, minute + 55_000, t)  # later calls change nothing
    assert settle.at_least_s == 64.0 + 10 + 15 + SETTLE_MARGIN_S


def test_the_demo_does_not_stop_before_a_validation_has_seen_the_settled_traffic():
    from migration.demo import SETTLE_MARGIN_S, DemoState, _Settle
    from pipelines.config import load_config

    t = load_config("config/demo.yaml").time  # 60 s periods, 15 s batch delay
    minute = 1_764_000_000_000
    state = DemoState(started=0.0)
    caught_up = {"watermark_age_s": 3.0}
    settle = _Settle(at_least_s=165, at_most_s=1000, passes_needed=3, wait_for_gate=False)
    settle.traffic_ended(34.0, minute + 30_000, t)  # settles at 34 + 30 + 15 = 79 s
    settled_s = 79.0
    state.elapsed = lambda: settled_s + SETTLE_MARGIN_S  # type: ignore[method-assign]
    state.last_validation_s = 60.0  # the only validation ran before the last period settled
    assert settle.needs_validation(state)
    assert not settle.done(state, caught_up)
    state.last_validation_s = settled_s + 20  # one that started after it
    assert not settle.needs_validation(state)
    assert settle.done(state, caught_up)
    state.last_validation_s = -1.0  # none at all: only the hard limit stops the demo
    state.elapsed = lambda: 1000.0  # type: ignore[method-assign]
    assert settle.done(state, caught_up)
