"""Routing without a server: the stable canary hash and the route per state."""

from __future__ import annotations

import subprocess
import sys

import pytest

from migration.cutover import CutoverState, Stage
from migration.serving import canary_bucket, route


def test_canary_bucket_is_the_same_in_another_process():
    code = "from migration.serving import canary_bucket; print([canary_bucket(t) for t in (1, 42, 10**15)])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == str([canary_bucket(t) for t in (1, 42, 10**15)])


@pytest.mark.parametrize("percent", [1, 10, 50, 90])
def test_canary_share_is_close_to_p(percent):
    ids = range(1_000_000, 1_020_000)
    share = sum(canary_bucket(t) < percent for t in ids) / len(ids)
    assert abs(share - percent / 100) < 0.01


def test_route_per_state():
    assert route(CutoverState(Stage.SHADOW), 7) == ("legacy", "kappa")
    assert route(CutoverState(Stage.FULL), 7) == ("kappa", "legacy")
    assert route(CutoverState(Stage.DECOMMISSIONED), 7) == ("kappa", None)
    inside = next(t for t in range(1, 1000) if canary_bucket(t) < 10)
    outside = next(t for t in range(1, 1000) if canary_bucket(t) >= 10)
    canary = CutoverState(Stage.CANARY, 10)
    assert route(canary, inside) == ("kappa", "legacy")
    assert route(canary, outside) == ("legacy", "kappa")
