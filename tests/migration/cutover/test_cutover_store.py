"""State stores: compare-and-swap, the audit log, and real concurrent writers."""

from __future__ import annotations

import json
import multiprocessing
import threading
from pathlib import Path

import pytest

from migration.cutover.model import CutoverState
from migration.cutover.store import LocalStateStore
from pipelines.errors import ConflictError
from tests.migration.cutover.writers import churn, moved, race_once


def test_local_store_starts_in_shadow_and_round_trips(tmp_path):
    store = LocalStateStore(tmp_path / "cutover")
    state, generation = store.load()
    assert (state, generation) == (CutoverState(), 0)
    assert store.history() == []
    new = moved(state, "a")
    assert store.save(new, 0) == 1
    assert store.load() == (new, 1)
    assert [e.seq for e in store.history()] == [1]
    raw = json.loads((tmp_path / "cutover" / "state.json").read_text())
    assert raw["generation"] == 1 and raw["state"]["stage"] == "CANARY"


def test_local_store_refuses_a_stale_generation(tmp_path):
    store = LocalStateStore(tmp_path)
    state, generation = store.load()
    store.save(moved(state, "first"), generation)
    with pytest.raises(ConflictError, match="expected generation 0, now 1"):
        store.save(moved(state, "second"), generation)
    assert [e.actor for e in store.history()] == ["first"]


def test_local_store_repairs_an_audit_entry_a_crashed_writer_left_out(tmp_path):
    store = LocalStateStore(tmp_path)
    first = moved(CutoverState(), "a")
    store.save(first, 0)
    (tmp_path / "audit.jsonl").write_text("")  # as if the writer died after the state replace
    store.save(moved(first, "b"), 1)
    assert [(e.seq, e.actor) for e in store.history()] == [(1, "a"), (2, "b")]


def test_concurrent_processes_reading_the_same_generation_exactly_one_wins(tmp_path):
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(4), ctx.Queue()
    procs = [ctx.Process(target=race_once, args=(str(tmp_path), f"p{i}", barrier, results)) for i in range(4)]
    for proc in procs:
        proc.start()
    outcomes = sorted(results.get(timeout=60) for _ in procs)
    for proc in procs:
        proc.join(timeout=60)
    winners = [name for name, outcome in outcomes if outcome == "won"]
    assert len(winners) == 1, outcomes
    store = LocalStateStore(tmp_path)
    state, generation = store.load()
    assert generation == 1 and state.last_transition.actor == winners[0]
    assert [e.actor for e in store.history()] == winners


def test_concurrent_processes_lose_no_update(tmp_path):
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=churn, args=(str(tmp_path), f"p{i}", 15)) for i in range(3)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout=120)
        assert proc.exitcode == 0
    store = LocalStateStore(tmp_path)
    state, generation = store.load()
    entries = store.history()
    assert generation == state.seq == 45
    assert [e.seq for e in entries] == list(range(1, 46))  # no gap, no duplicate
    assert sorted({e.actor for e in entries}) == ["p0", "p1", "p2"]
    assert all(e.at_ms > prev.at_ms for prev, e in zip(entries, entries[1:], strict=False))


def test_concurrent_threads_lose_no_update(tmp_path):
    threads = [threading.Thread(target=churn, args=(str(tmp_path), f"t{i}", 10)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert LocalStateStore(tmp_path).load()[1] == 40
    assert [e.seq for e in LocalStateStore(tmp_path).history()] == list(range(1, 41))


# The GCS store's compare-and-swap and the same concurrent writers run against the Cloud
# Storage emulator (fake-gcs-server): tests/cloud/test_gcs_state.py.


def test_local_store_default_location_is_beside_the_warehouse(tmp_path: Path):
    from migration.cutover.store import default_state_location

    assert default_state_location(tmp_path / "warehouse") == str(tmp_path / "cutover")
