"""Shadow-read comparison: settled windows only, counts compared with the policy's tolerance."""

import pytest

from migration.policy import ConfigError, build_policy, load_policy
from migration.serving.shadow import compare


def rows(*items):
    return [(ws, ws + 10_000, "", "", event_type, count) for ws, event_type, count in items]


def test_settled_keys_compared_with_relative_tolerance():
    legacy = rows((0, "impression", 250), (10_000, "like", 3), (20_000, "like", 1), (90_000, "like", 5))
    kappa = rows((0, "impression", 253), (10_000, "like", 4), (30_000, "like", 2), (90_000, "like", 9))
    # settled before 50 s: windows 0, 10 s, 20 s, 30 s; the 90 s window is pending
    assert compare(legacy, kappa, 50_000) == (4, 4, 1)  # exact: every settled key differs
    # 2%: 250 vs 253 is within (3 <= 5.06); 3 vs 4, and keys missing on one side, are not
    assert compare(legacy, kappa, 50_000, tolerance=0.02) == (4, 3, 1)


def test_policy_default_and_bounds():
    assert load_policy().shadow_relative_tolerance == 0.02
    with pytest.raises(ConfigError, match="shadow_relative_tolerance"):
        build_policy({"shadow_relative_tolerance": 2})


def test_windows_of_periods_without_a_finished_batch_run_are_pending():
    from migration.serving.shadow import Finality

    legacy = rows((0, "like", 5), (60_000, "like", 7))  # period 0 batch-served, period 60 s speed-served
    kappa = rows((0, "like", 6), (60_000, "like", 6))
    finality = Finality(settled_before_ms=10**9, finished_periods=frozenset({0}), period_ms=60_000)
    assert compare(legacy, kappa, finality) == (1, 1, 1)
    assert compare(legacy, kappa, Finality(10**9)) == (2, 2, 0)  # without batch knowledge
