"""Gate evidence: a run counts toward a transition only if it started after the previous one
and finished no later than now (give or take CLOCK_SKEW_MS), and each PASS run toward one
transition at most. Rows go through the warehouse's validation_runs table and the gate
reads them back, as `kappactl cutover advance` does."""

from __future__ import annotations

import pytest

from migration.cutover import LocalStateStore, Stage, advance, evaluate, read_validation_runs
from migration.cutover.gate import CLOCK_SKEW_MS
from migration.cutover.model import now_ms
from migration.policy import build_policy
from pipelines.errors import ConflictError
from pipelines.warehouse import Warehouse

POLICY = build_policy({"consecutive_passes": 3})
HOUR_MS = 3_600_000


class Runs:
    def __init__(self, root):
        self.warehouse = Warehouse(root / "warehouse")
        self.store = LocalStateStore(root / "cutover")

    def add(self, run_id: str, started_ms: int, finished_ms: int, verdict: str = "PASS") -> None:
        row = {
            "run_id": run_id, "started_at": started_ms, "finished_at": finished_ms, "verdict": verdict,
            "left_arm": "legacy_serving", "right_arm": "kappa_stream", "reference_arm": None,
            "keys_total": 5000, "keys_final": 4000, "keys_unexplained": 0, "unexplained_rate": 0.0,
            "report_path": None,
        }  # fmt: skip
        self.warehouse.append("validation_runs", [row], writer="validator")

    def advance(self, **kw):
        runs = read_validation_runs(self.warehouse, POLICY.gate_arms)
        return advance(self.store, POLICY, runs, reason="gate open", actor="alice", **kw)


@pytest.fixture
def runs(tmp_path) -> Runs:
    return Runs(tmp_path)


def test_runs_dated_an_hour_ahead_open_no_gate(runs):
    ahead = now_ms() + HOUR_MS  # a validator host whose clock runs an hour fast
    for i in range(3):
        runs.add(f"r{i}", ahead + i, ahead + 100 + i)
    with pytest.raises(ConflictError, match=r"has 0; 3 run\(s\) finish after now \(\+5 s clock skew\)"):
        runs.advance()
    assert runs.store.load()[1] == 0 and runs.store.history() == []


def test_a_pass_run_opens_one_gate_at_most(runs):
    """Runs within the skew bound count, once: the transition they opened cites them, and the
    next gate excludes them even though they (by their clocks) started after it."""
    soon = now_ms() + CLOCK_SKEW_MS // 2
    for i in range(3):
        runs.add(f"r{i}", soon + i, soon + 10 + i)
    assert runs.advance().stage is Stage.CANARY
    with pytest.raises(ConflictError, match=r"has 0.*3 PASS run\(s\) already cited by an earlier transition"):
        runs.advance(to=Stage.FULL)
    assert [e.evidence for e in runs.store.history()] == [("r0", "r1", "r2")]
    decision = evaluate(runs.store, POLICY, read_validation_runs(runs.warehouse, POLICY.gate_arms), None)
    assert decision.action == "hold" and decision.evidence == ()


def test_a_run_that_started_before_the_transition_does_not_count(runs):
    free = build_policy({"consecutive_passes": 0})
    state = advance(runs.store, free, [], reason="go", actor="alice")
    for i in range(3):  # started before the canary began, finished after it
        runs.add(f"old{i}", state.since_ms - 1000 + i, state.since_ms + 1 + i)
    with pytest.raises(ConflictError, match="has 0; no validation run started and finished since then"):
        runs.advance(to=Stage.FULL)
    for i in range(3):
        runs.add(f"new{i}", state.since_ms + 10 + i, state.since_ms + 20 + i)
    full = runs.advance(to=Stage.FULL)
    assert full.stage is Stage.FULL and full.last_transition.evidence == ("new0", "new1", "new2")


def test_a_run_that_finished_before_it_started_does_not_count(runs):
    t = now_ms() - 10_000
    for i in range(3):
        runs.add(f"r{i}", t + 100 + i, t + i)
    with pytest.raises(ConflictError, match="has 0"):
        runs.advance()
