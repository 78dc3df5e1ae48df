"""Advance gated by the validation_runs table, automatic rollback, audit log, and the CLI."""

from __future__ import annotations

import json
import time

import pytest

from migration.cli import main as kappactl
from migration.cutover import (
    LocalStateStore,
    ShadowStats,
    Stage,
    advance,
    check,
    evaluate,
    read_validation_runs,
    rollback,
    write_shadow_stats,
)
from migration.policy import build_policy
from pipelines.errors import ConfigError, ConflictError
from pipelines.warehouse import Warehouse

POLICY = build_policy({"consecutive_passes": 2, "canary_percent": 20, "max_shadow_mismatch_rate": 0.05})


class Env:
    def __init__(self, root):
        self.warehouse = Warehouse(root / "warehouse")
        self.store = LocalStateStore(root / "cutover")
        self.clock = 0

    def run(self, run_id: str, verdict: str, right_arm: str = "kappa_stream") -> None:
        time.sleep(0.003)  # a run starts strictly after the transition made just before it
        self.clock = max(self.clock + 2, int(time.time() * 1000))
        row = {
            "run_id": run_id, "started_at": self.clock - 1, "finished_at": self.clock, "verdict": verdict,
            "left_arm": "legacy_serving", "right_arm": right_arm, "reference_arm": None,
            "keys_total": 5000, "keys_final": 4000, "keys_unexplained": 0, "unexplained_rate": 0.0,
            "report_path": f"/reports/{run_id}/report.json",
        }  # fmt: skip
        self.warehouse.append("validation_runs", [row], writer="validator")

    def runs(self):
        return read_validation_runs(self.warehouse, POLICY.gate_arms)

    def advance(self, **kw):
        return advance(self.store, POLICY, self.runs(), reason="gate open", actor="alice@test", **kw)


@pytest.fixture
def env(tmp_path):
    return Env(tmp_path)


def test_advance_is_refused_without_enough_passes_and_says_what_is_missing(env):
    env.run("r1", "PASS")
    env.run("r2", "FAIL")
    env.run("r3", "PASS")
    with pytest.raises(ConflictError) as info:
        env.advance()
    message = str(info.value)
    assert (
        "cannot advance SHADOW -> CANARY: needs 2 consecutive PASS runs so far; has 1: run r3 (PASS"
        in message
    )
    assert "run r2 was FAIL" in message
    assert env.store.load()[1] == 0


def test_full_walk_with_audit_log_and_evidence(env):
    env.run("r1", "PASS")
    env.run("r2", "PASS")
    state = env.advance()
    assert (state.stage, state.canary_percent) == (Stage.CANARY, 20)  # policy canary_percent
    with pytest.raises(ConflictError, match="has 0"):  # the old runs no longer count
        env.advance(to=Stage.FULL)
    env.run("r3", "PASS")
    env.run("r4", "INCONCLUSIVE")
    env.run("r5", "PASS")
    assert env.advance(to=Stage.CANARY, percent=50).canary_percent == 50
    env.run("r6", "PASS")
    env.run("r7", "PASS")
    assert env.advance().stage is Stage.FULL
    env.run("r8", "PASS")
    env.run("r9", "PASS")
    assert env.advance().stage is Stage.DECOMMISSIONED
    with pytest.raises(ConflictError, match="cannot roll back from DECOMMISSIONED"):
        rollback(env.store, "too late", "bob")
    entries = env.store.history()
    assert [e.label for e in entries] == [
        "SHADOW -> CANARY(20%)",
        "CANARY(20%) -> CANARY(50%)",
        "CANARY(50%) -> FULL",
        "FULL -> DECOMMISSIONED",
    ]
    assert [e.evidence for e in entries] == [("r1", "r2"), ("r3", "r5"), ("r6", "r7"), ("r8", "r9")]
    assert all(e.actor == "alice@test" and e.reason == "gate open" and not e.automatic for e in entries)
    assert all(e.at_ms > prev.at_ms for prev, e in zip(entries, entries[1:], strict=False))


def test_a_fail_during_canary_rolls_back_automatically(env):
    env.run("r1", "PASS")
    env.run("r2", "PASS")
    env.advance()
    decision, applied = check(env.store, POLICY, env.runs(), None)
    assert (decision.action, applied) == ("hold", None)
    env.run("r3", "FAIL")
    decision, applied = check(env.store, POLICY, env.runs(), None)
    assert decision.action == "rollback" and decision.evidence == ("r3",)
    assert applied is not None and applied.stage is Stage.SHADOW
    entry = env.store.history()[-1]
    assert entry.automatic and entry.evidence == ("r3",) and entry.label == "CANARY(20%) -> SHADOW"
    assert "automatic rollback: validation run r3 (FAIL" in entry.reason
    # Back in SHADOW a FAIL only resets the streak.
    assert check(env.store, POLICY, env.runs(), None)[0].action == "hold"


def test_only_runs_of_the_gate_arms_count(env):
    """A check of the legacy against truth (another pair) neither opens the gate nor rolls back."""
    env.run("t1", "PASS", right_arm="truth")
    env.run("t2", "PASS", right_arm="truth")
    with pytest.raises(ConflictError, match="has 0"):
        env.advance()
    assert len(read_validation_runs(env.warehouse)) == 2  # recorded all the same
    env.run("r1", "PASS")
    env.run("r2", "PASS")
    assert env.advance().stage is Stage.CANARY
    env.run("t3", "FAIL", right_arm="truth")
    assert check(env.store, POLICY, env.runs(), None)[0].action == "hold"
    env.run("r3", "FAIL")
    assert check(env.store, POLICY, env.runs(), None)[0].action == "rollback"


def test_without_auto_rollback_the_decision_is_reported_not_applied(env):
    manual = build_policy({"consecutive_passes": 0, "auto_rollback": False})
    advance(env.store, manual, [], reason="go", actor="a")
    env.run("r1", "FAIL")
    decision, applied = check(env.store, manual, env.runs(), None)
    assert decision.action == "rollback" and not decision.automatic and applied is None
    assert env.store.load()[0].stage is Stage.CANARY


def test_shadow_mismatches_roll_back_full(env):
    free = build_policy({"consecutive_passes": 0, "max_shadow_mismatch_rate": 0.05})
    advance(env.store, free, [], reason="go", actor="a")
    state = advance(env.store, free, [], reason="go", actor="a")
    assert state.stage is Stage.FULL
    few = ShadowStats(seq=state.seq, reads=10, keys_compared=50, keys_mismatched=50)
    assert evaluate(env.store, free, [], few).action == "advance_ready"  # too few keys to judge
    stale = ShadowStats(seq=state.seq - 1, reads=999, keys_compared=1000, keys_mismatched=900)
    assert evaluate(env.store, free, [], stale).action == "advance_ready"
    ok = ShadowStats(seq=state.seq, reads=300, keys_compared=1000, keys_mismatched=50)
    assert evaluate(env.store, free, [], ok).action == "advance_ready"
    bad = ShadowStats(seq=state.seq, reads=300, keys_compared=1000, keys_mismatched=51)
    decision, applied = check(env.store, free, [], bad)
    assert decision.action == "rollback" and "5.10%" in decision.reason
    assert applied.stage is Stage.SHADOW


def test_a_decision_is_not_applied_to_a_state_that_moved_meanwhile(env):
    free = build_policy({"consecutive_passes": 0})
    advance(env.store, free, [], reason="go", actor="a")
    env.run("r1", "FAIL")
    decision = evaluate(env.store, free, env.runs(), None)
    rollback(env.store, "someone was faster", "bob")
    from migration.cutover import apply

    with pytest.raises(ConflictError, match="re-run the check"):
        apply(env.store, decision)


def cli(env: Env, *args: str) -> int:
    argv = ["cutover", *args, "--warehouse", str(env.warehouse.root)]
    try:
        kappactl(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def test_cli_status_advance_rollback_history_check(env, capsys, tmp_path):
    policy = tmp_path / "policy.yaml"
    policy.write_text("consecutive_passes: 1\ncanary_percent: 5\n")
    pol = ["--policy", str(policy)]
    assert cli(env, "advance", "--reason", "try", *pol) == 6
    assert "needs 1 consecutive PASS runs so far; has 0" in capsys.readouterr().err
    env.run("r1", "PASS")
    assert cli(env, "advance", "--reason", "r1 passed", "--actor", "ops@ci", *pol) == 0
    out = capsys.readouterr().out
    assert "SHADOW -> CANARY(5%)" in out and "evidence: r1" in out
    assert cli(env, "status", "--json", *pol) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["state"]["stage"] == "CANARY" and status["generation"] == 1
    env.run("r2", "PASS")
    assert cli(env, "advance", "--to", "full", "--reason", "r2 passed", *pol) == 0
    assert 'serving_source = "kappa"' in capsys.readouterr().out
    write_shadow_stats(
        env.store.directory, ShadowStats(seq=2, reads=500, keys_compared=400, keys_mismatched=0)
    )
    assert cli(env, "check", *pol) == 0
    assert "FULL: hold" in capsys.readouterr().out
    env.run("r3", "FAIL")
    assert cli(env, "check", *pol) == 1
    assert "FULL -> SHADOW" in capsys.readouterr().out
    assert cli(env, "rollback", "--reason", "again", *pol) == 6
    assert "nothing to roll back" in capsys.readouterr().err
    assert cli(env, "advance", "--to", "bogus", "--reason", "x", *pol) == 3
    assert cli(env, "history", "--json", *pol) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(e["from_stage"], e["to_stage"], e["automatic"]) for e in lines] == [
        ("SHADOW", "CANARY", False),
        ("CANARY", "FULL", False),
        ("FULL", "SHADOW", True),
    ]
    assert lines[0]["actor"] == "ops@ci" and lines[0]["at"].endswith("Z")
    assert cli(env, "history", *pol) == 0
    assert "[automatic]" in capsys.readouterr().out


def test_cli_decommissioned_tells_which_terraform_variable_to_set(env, capsys):
    for _ in range(3):
        assert cli(env, "advance", "--reason", "ok", "--policy", "/dev/null") == 6
    capsys.readouterr()
    free = build_policy({"consecutive_passes": 0})
    advance(env.store, free, [], reason="go", actor="a")
    advance(env.store, free, [], reason="go", actor="a")
    env.run("a", "PASS")
    env.run("b", "PASS")
    env.run("c", "PASS")
    assert cli(env, "advance", "--reason", "done") == 0
    assert "legacy_enabled = false" in capsys.readouterr().out


def test_gate_arms_default_and_bad_values():
    from migration.policy import load_policy

    assert load_policy().gate_arms == ("legacy_serving", "kappa_stream")
    assert build_policy({"gate_arms": ["legacy_serving", "kappa_backfill"]}).gate_arms[1] == "kappa_backfill"
    for bad in (["kappa_stream"], ["a", "a"], "legacy_serving,kappa_stream", ["a", 3]):
        with pytest.raises(ConfigError, match="gate_arms: must be two different arm names"):
            build_policy({"gate_arms": bad})
