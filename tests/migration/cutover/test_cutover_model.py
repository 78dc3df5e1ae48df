"""The state machine's legal and illegal moves, and the PASS-streak gate."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from migration.cutover.gate import ValidationRun, check_gate
from migration.cutover.model import CutoverState, Stage, Transition, apply_move, check_advance, check_rollback
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


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        ("canary_percent", "50", "'canary_percent' must be an integer from 1 to 99 in CANARY, got '50'"),
        ("canary_percent", 250, "'canary_percent' must be an integer from 1 to 99 in CANARY, got 250"),
        ("canary_percent", None, "'canary_percent' is missing"),
        ("stage", "BOGUS", "'stage' must be one of SHADOW, CANARY, FULL, DECOMMISSIONED"),
        ("since_ms", -1, "'since_ms' must be epoch milliseconds"),
        ("seq", 1.5, "'seq' must be an integer >= 0"),
    ],
)
def test_a_state_record_names_its_bad_field(field, value, words):
    raw = {**CANARY.as_json(), field: value}
    if value is None:
        del raw[field]
    with pytest.raises(InputError, match=words):
        CutoverState.from_json(raw)
    with pytest.raises(InputError, match="'canary_percent' must be null in FULL"):
        CutoverState.from_json({**FULL.as_json(), "canary_percent": 10})


def test_an_audit_entry_names_its_bad_field():
    entry = apply_move(CANARY, "rollback", Stage.SHADOW, None, "r", ("x",), "me").last_transition
    good = entry.as_json()
    for field, value, words in [
        ("action", "jump", "'action' must be advance or rollback"),
        ("evidence", "x", "'evidence' must be a list of run ids"),
        ("from_percent", 0, "'from_percent' must be an integer from 1 to 99"),
        ("seq", 0, "'seq' must be an integer >= 1"),
        ("automatic", "yes", "'automatic' must be true or false"),
    ]:
        with pytest.raises(InputError, match=words):
            Transition.from_json({**good, field: value})
    assert Transition.from_json(good) == entry


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
STATE_KEYS = ("stage", "canary_percent", "since_ms", "seq", "last_transition")
ENTRY_KEYS = tuple(Transition.__dataclass_fields__)


def records(keys: tuple[str, ...], values: st.SearchStrategy) -> st.SearchStrategy:
    near = st.sampled_from(
        ["SHADOW", "CANARY", "FULL", "advance", "rollback", 0, 1, 10, 99, 100, -1, True, []]
    )
    return st.dictionaries(st.sampled_from(keys), near | values, max_size=len(keys))


@pytest.mark.fuzz
@given(raw=JSON | records(STATE_KEYS, JSON) | records(ENTRY_KEYS, JSON))
def test_any_json_is_a_valid_record_or_an_input_error(raw):
    """Whatever a state.json or an audit line holds, reading it raises InputError at worst."""
    for read in (CutoverState.from_json, Transition.from_json):
        try:
            record = read(raw)
        except InputError:
            continue
        assert read(record.as_json()) == record  # what reads is a record that round-trips
