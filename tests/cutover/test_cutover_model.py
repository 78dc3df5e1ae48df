"""The state machine's legal and illegal moves, and the PASS-streak gate."""

from __future__ import annotations

import pytest

from migration.cutover.gate import ValidationRun, check_gate
from migration.cutover.model import CutoverState, Stage, apply_move, check_advance, check_rollback
from pipelines.errors import ConflictError, InputError

SHADOW = CutoverState()
CANARY = CutoverState(Stage.CANARY, 10, since_ms=1000, seq=1)
FULL = CutoverState(Stage.FULL, None, since_ms=2000, seq=2)
DECOM = CutoverState(Stage.DECOMMISSIONED, None, since_ms=3000, seq=3)


@pytest.mark.parametrize(
    ("state", "target", "percent", "expected"),
    [
        (SHADOW, None, None, (Stage.CANARY, None)),
        (SHADOW, Stage.CANARY, 25, (Stage.CANARY, 25)),
        (CANARY, None, None, (Stage.FULL, None)),
        (CANARY, Stage.CANARY, 50, (Stage.CANARY, 50)),
        (CANARY, Stage.FULL, None, (Stage.FULL, None)),
        (FULL, None, None, (Stage.DECOMMISSIONED, None)),
        (FULL, Stage.DECOMMISSIONED, None, (Stage.DECOMMISSIONED, None)),
    ],
)
def test_legal_advances(state, target, percent, expected):
    assert check_advance(state, target, percent) == expected


@pytest.mark.parametrize(
    ("state", "target", "percent", "words"),
    [
        (SHADOW, Stage.FULL, None, "stages are not skipped"),
        (SHADOW, Stage.DECOMMISSIONED, None, "stages are not skipped"),
        (SHADOW, Stage.SHADOW, None, "next state is CANARY"),
        (CANARY, Stage.SHADOW, None, "use rollback"),
        (CANARY, Stage.CANARY, 10, "higher --percent"),
        (CANARY, Stage.CANARY, 5, "higher --percent"),
        (CANARY, Stage.CANARY, None, "higher --percent"),
        (CANARY, Stage.DECOMMISSIONED, None, "stages are not skipped"),
        (FULL, Stage.CANARY, 50, "next state is DECOMMISSIONED"),
        (FULL, Stage.SHADOW, None, "use rollback"),
        (DECOM, None, None, "nothing to advance"),
        (DECOM, Stage.FULL, None, "nothing to advance"),
    ],
)
def test_illegal_advances(state, target, percent, words):
    with pytest.raises(ConflictError, match=words):
        check_advance(state, target, percent)


@pytest.mark.parametrize("percent", [0, 100, -5])
def test_canary_percent_out_of_range(percent):
    with pytest.raises(InputError, match="1 to 99"):
        check_advance(SHADOW, Stage.CANARY, percent)


def test_rollback_only_from_canary_and_full():
    check_rollback(CANARY)
    check_rollback(FULL)
    with pytest.raises(ConflictError, match="nothing to roll back"):
        check_rollback(SHADOW)
    with pytest.raises(ConflictError, match="legacy_enabled = true"):
        check_rollback(DECOM)


def test_apply_move_records_the_transition():
    new = apply_move(CANARY, "rollback", Stage.SHADOW, None, " FAIL ", ("r1",), "me@host", True, at_ms=500)
    assert (new.stage, new.canary_percent, new.seq) == (Stage.SHADOW, None, 2)
    assert new.since_ms == 1001  # never earlier than the previous transition
    entry = new.last_transition
    assert entry.label == "CANARY(10%) -> SHADOW"
    assert (entry.reason, entry.evidence, entry.actor, entry.automatic) == ("FAIL", ("r1",), "me@host", True)
    assert CutoverState.from_json(new.as_json()) == new
    with pytest.raises(InputError, match="--reason"):
        apply_move(CANARY, "rollback", Stage.SHADOW, None, "  ", (), "me")


def runs(*spec: tuple[str, int, str]) -> list[ValidationRun]:
    return [ValidationRun(run_id, at, verdict, at - 50) for run_id, at, verdict in spec]


def test_gate_counts_passes_after_the_last_transition_and_the_last_fail():
    history = runs(
        ("old1", 500, "PASS"), ("old2", 600, "PASS"), ("old3", 700, "PASS"),  # before the transition
        ("a", 1100, "PASS"), ("b", 1200, "FAIL"), ("c", 1300, "PASS"), ("d", 1400, "INCONCLUSIVE"),
    )  # fmt: skip
    gate = check_gate(CANARY, 3, history)
    assert not gate.ok
    assert [r.run_id for r in gate.passes] == ["c"]
    assert "needs 3 consecutive PASS runs since 1970-01-01T00:00:01.000Z" in gate.message
    assert "has 1: run c (PASS" in gate.message
    assert "run b was FAIL" in gate.message
    more = history + runs(("e", 1500, "PASS"), ("f", 1600, "PASS"))
    gate = check_gate(CANARY, 3, more)
    assert gate.ok and gate.evidence == ("c", "e", "f")


def test_gate_with_no_runs_says_what_to_do():
    gate = check_gate(SHADOW, 2, [])
    assert not gate.ok and "run `kappactl validate`" in gate.message
    assert check_gate(SHADOW, 0, []).ok


def test_gate_accepts_warehouse_style_dict_rows():
    from datetime import UTC, datetime

    rows = [{"run_id": "x", "started_at": datetime(2026, 1, 1, tzinfo=UTC),
             "finished_at": datetime(2026, 1, 1, 0, 1, tzinfo=UTC), "verdict": "pass"}]  # fmt: skip
    assert check_gate(SHADOW, 1, rows).evidence == ("x",)
