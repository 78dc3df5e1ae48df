"""The local store's damage cases: a torn last audit line (a writer died mid-append), a lost
or stale state.json, and a hand-edited one. None may block a rollback, reset the state to a
fresh SHADOW or leave a transition out of the audit log."""

from __future__ import annotations

import json
import shutil

import pytest

from migration.cli import main as kappactl
from migration.cutover import LocalStateStore, Stage, advance, rollback
from migration.cutover.model import CutoverState
from migration.policy import build_policy
from pipelines.errors import ConflictError, InputError
from tests.migration.cutover.writers import moved

FREE = build_policy({"consecutive_passes": 0})


def walk(store: LocalStateStore, moves: int) -> CutoverState:
    """SHADOW -> CANARY -> SHADOW -> ... `moves` transitions, through the controller."""
    state = store.load()[0]
    for _ in range(moves):
        if state.stage is Stage.SHADOW:
            state = advance(store, FREE, [], reason="go", actor="alice")
        else:
            state = rollback(store, "back", "alice")
    return state


def audit_lines(store: LocalStateStore) -> list[dict]:
    return [json.loads(line) for line in store.audit_path.read_text().splitlines()]


def cli(store: LocalStateStore, *args: str) -> int:
    try:
        kappactl(["cutover", *args, "--state", str(store.directory), "--policy", "/dev/null"])
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def test_a_torn_last_audit_line_is_skipped_and_rollback_works(tmp_path, caplog):
    store = LocalStateStore(tmp_path)
    walk(store, 3)  # CANARY at transition 3
    data = store.audit_path.read_bytes()
    torn = data[: data.rstrip(b"\n").rfind(b"\n") + 1 + 25]  # the last append cut 25 bytes in
    store.audit_path.write_bytes(torn)
    assert [e.seq for e in store.history()] == [1, 2, 3]  # 3 from state.json, which holds it
    assert "torn last line" in caplog.text
    state = rollback(store, "canary looks wrong", "ops")
    assert (state.stage, state.seq) == (Stage.SHADOW, 4)
    assert [e["seq"] for e in audit_lines(store)] == [1, 2, 3, 4]  # every line reads again
    assert store.torn_path.read_bytes() == torn[len(torn) - 25 :] + b"\n"  # the fragment is kept
    assert store.load()[0].stage is Stage.SHADOW


def test_a_torn_line_through_the_cli_still_rolls_back(tmp_path, capsys):
    store = LocalStateStore(tmp_path)
    walk(store, 1)
    with open(store.audit_path, "ab") as handle:
        handle.write(b'{"action": "adv')  # a second writer died mid-append
    assert cli(store, "rollback", "--reason", "torn log") == 0
    assert "CANARY(10%) -> SHADOW" in capsys.readouterr().out
    assert cli(store, "history", "--json") == 0
    assert [json.loads(line)["seq"] for line in capsys.readouterr().out.splitlines()] == [1, 2]


def test_a_lost_state_file_is_an_error_not_a_fresh_shadow(tmp_path, capsys):
    store = LocalStateStore(tmp_path)
    walk(store, 3)
    store.state_path.unlink()
    with pytest.raises(
        InputError, match="state.json is missing but the audit log records transitions"
    ) as info:
        store.load()
    assert "transition 3, SHADOW -> CANARY(10%)" in str(info.value)
    with pytest.raises(ConflictError, match="expected generation 0, now 3"):
        store.save(moved(CutoverState(), "naive"), 0)  # would have re-used seq 1, unaudited
    assert cli(store, "status") == 3
    assert "missing" in capsys.readouterr().err
    with pytest.raises(InputError, match="missing"):
        advance(store, FREE, [], reason="go", actor="alice")
    state = rollback(store, "state file lost", "ops")
    assert (state.stage, state.seq) == (Stage.SHADOW, 4)
    entries = store.history()
    assert [e.seq for e in entries] == [1, 2, 3, 4]
    assert "state rebuilt from the audit log" in entries[-1].reason
    assert store.load() == (state, 4)


def test_a_lost_state_file_in_shadow_is_rebuilt_by_a_rollback(tmp_path):
    store = LocalStateStore(tmp_path)
    walk(store, 2)
    store.state_path.unlink()
    with pytest.raises(ConflictError, match="already SHADOW by the audit log"):
        rollback(store, "rebuild", "ops")
    state, generation = store.load()
    assert (state.stage, state.seq, generation) == (Stage.SHADOW, 2, 3)
    assert [e.seq for e in store.history()] == [1, 2]
    assert advance(store, FREE, [], reason="go", actor="alice").seq == 3


def test_an_old_copy_of_the_state_file_is_behind_the_audit_log(tmp_path):
    store = LocalStateStore(tmp_path)
    walk(store, 1)
    shutil.copy(store.state_path, tmp_path / "backup.json")
    walk(store, 2)
    shutil.copy(tmp_path / "backup.json", store.state_path)  # restored from an old backup
    with pytest.raises(InputError, match="at transition 1, behind the audit log"):
        store.load()
    state = rollback(store, "restored", "ops")
    assert state.seq == 4 and [e.seq for e in store.history()] == [1, 2, 3, 4]


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        ("canary_percent", "50", "'canary_percent' must be an integer from 1 to 99"),
        ("canary_percent", 250, "'canary_percent' must be an integer from 1 to 99"),
        ("canary_percent", True, "'canary_percent' must be an integer from 1 to 99"),
        ("stage", "canary", "'stage' must be one of SHADOW, CANARY"),
        ("seq", "3", "'seq' must be an integer"),
    ],
)
def test_a_hand_edited_state_file_names_the_bad_field(tmp_path, capsys, field, value, words):
    store = LocalStateStore(tmp_path)
    walk(store, 1)
    raw = json.loads(store.state_path.read_text())
    raw["state"][field] = value
    raw.pop("digest", None)  # as an older state file, without a digest
    store.state_path.write_text(json.dumps(raw))
    with pytest.raises(InputError, match=words):
        store.load()
    assert cli(store, "status") == 3
    err = capsys.readouterr().err.strip()
    assert words in err and len(err.splitlines()) == 1
    assert rollback(store, "bad edit", "ops").stage is Stage.SHADOW


def test_a_valid_looking_edit_fails_the_digest(tmp_path):
    store = LocalStateStore(tmp_path)
    walk(store, 1)
    text = store.state_path.read_text()
    store.state_path.write_text(text.replace('"actor": "alice"', '"actor": "mallory"', 1))
    with pytest.raises(InputError, match="does not match its digest"):
        store.load()
    assert rollback(store, "edited", "ops").seq == 2
    assert list(tmp_path.glob("state.json.damaged-*"))  # the damaged file is kept
