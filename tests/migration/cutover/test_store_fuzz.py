"""The local cutover store survives a truncated or corrupted state.json or audit.jsonl: cut
at every byte offset, or one byte changed anywhere, a read gives the last good state or an
error of the project's hierarchy (never another exception), and a rollback always works
afterwards: the state is SHADOW, audited as the transition after the last good one."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from migration.cutover import LocalStateStore, Stage, advance, rollback
from migration.cutover.model import CutoverState
from migration.cutover.records import read_entry
from migration.policy import build_policy
from pipelines.errors import KappaError

FREE = build_policy({"consecutive_passes": 0})
FILES = ("state.json", "audit.jsonl")


@pytest.fixture(scope="module")
def scratch() -> Iterator[Path]:
    """Where the damaged copies live: in memory where there is a tmpfs, since the store
    fsyncs every write and a few thousand copies on disk would take a minute."""
    shm = Path("/dev/shm")
    with tempfile.TemporaryDirectory(dir=shm if shm.is_dir() else None) as directory:
        yield Path(directory)


@pytest.fixture(scope="module")
def good(scratch: Path) -> tuple[Path, CutoverState, int]:
    """A store at CANARY(10%) after three transitions (SHADOW -> CANARY -> SHADOW -> CANARY)."""
    store = LocalStateStore(scratch / "good")
    advance(store, FREE, [], reason="go", actor="alice")
    rollback(store, "back", "alice")
    state = advance(store, FREE, [], reason="go again", actor="alice")
    return store.directory, state, store.load()[1]


def damaged(good: tuple[Path, CutoverState, int], where: Path, name: str, data: bytes) -> LocalStateStore:
    """A copy of the good store with `name` replaced by `data`."""
    shutil.rmtree(where, ignore_errors=True)
    where.mkdir()
    for file in FILES:
        (where / file).write_bytes(data if file == name else (good[0] / file).read_bytes())
    return LocalStateStore(where)


def check_survives(store: LocalStateStore, state: CutoverState, generation: int) -> None:
    with contextlib.suppress(KappaError):  # a clear error, or else the last good state
        assert store.load() == (state, generation)  # (any other exception fails the test)
    back = rollback(store, "after damage", "ops")
    assert (back.stage, back.seq) == (Stage.SHADOW, state.seq + 1)
    assert store.load()[0] == back
    last_line = store.audit_path.read_bytes().splitlines()[-1]
    assert read_entry(last_line, "audit.jsonl") == back.last_transition  # the log ends with it ...
    try:
        seqs = [e.seq for e in store.history()]
    except KappaError:  # ... though a damaged line before it may remain (and is named)
        return
    assert seqs[-2:] == [state.seq, state.seq + 1] and seqs == sorted(set(seqs))


@pytest.mark.fuzz
@pytest.mark.parametrize("name", FILES)
def test_a_file_cut_at_every_byte_offset(good, scratch, name):
    data = (good[0] / name).read_bytes()
    assert len(data) > 300
    for offset in range(len(data)):
        store = damaged(good, scratch / "cut", name, data[:offset])
        check_survives(store, good[1], good[2])


@pytest.mark.fuzz
@settings(max_examples=min(settings().max_examples, 5_000))
@given(
    name=st.sampled_from(FILES),
    where=st.floats(min_value=0, max_value=1, exclude_max=True),
    value=st.integers(0, 255),
)
def test_a_byte_changed_anywhere(good, scratch, name, where, value):
    data = bytearray((good[0] / name).read_bytes())
    offset = int(where * len(data))
    data[offset] = value
    store = damaged(good, scratch / "changed", name, bytes(data))
    check_survives(store, good[1], good[2])
