"""State stores: compare-and-swap, the audit log, and real concurrent writers."""

from __future__ import annotations

import json
import multiprocessing
import threading
from pathlib import Path

import pytest
from google.api_core.exceptions import PreconditionFailed

from migration.cutover.model import CutoverState, Stage, apply_move
from migration.cutover.store import GcsStateStore, LocalStateStore
from pipelines.errors import ConflictError


def moved(state: CutoverState, actor: str) -> CutoverState:
    """A legal move from `state` (SHADOW <-> CANARY), for churning the store."""
    if state.stage is Stage.SHADOW:
        return apply_move(state, "advance", Stage.CANARY, 10, "test", (), actor)
    return apply_move(state, "rollback", Stage.SHADOW, None, "test", (), actor)


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


def _race_once(directory: str, name: str, barrier, results) -> None:
    store = LocalStateStore(directory)
    state, generation = store.load()
    barrier.wait()  # everyone has read generation 0 before anyone writes
    try:
        store.save(moved(state, name), generation)
        results.put((name, "won"))
    except ConflictError:
        results.put((name, "lost"))


def _churn(directory: str, name: str, moves: int) -> None:
    store = LocalStateStore(directory)
    done = 0
    while done < moves:
        state, generation = store.load()
        try:
            store.save(moved(state, name), generation)
            done += 1
        except ConflictError:
            continue


def test_concurrent_processes_reading_the_same_generation_exactly_one_wins(tmp_path):
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(4), ctx.Queue()
    procs = [
        ctx.Process(target=_race_once, args=(str(tmp_path), f"p{i}", barrier, results)) for i in range(4)
    ]
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
    procs = [ctx.Process(target=_churn, args=(str(tmp_path), f"p{i}", 15)) for i in range(3)]
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
    threads = [threading.Thread(target=_churn, args=(str(tmp_path), f"t{i}", 10)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert LocalStateStore(tmp_path).load()[1] == 40
    assert [e.seq for e in LocalStateStore(tmp_path).history()] == list(range(1, 41))


# --- GCS: an in-memory fake of the few Bucket/Blob calls the store makes -------------------


class FakeBlob:
    def __init__(self, bucket: FakeBucket, name: str):
        self.bucket, self.name, self.generation = bucket, name, None

    def download_as_bytes(self, if_generation_match: int | None = None) -> bytes:
        data, generation = self.bucket.objects[self.name]
        if if_generation_match is not None and if_generation_match != generation:
            raise PreconditionFailed("generation changed")
        return data

    def upload_from_string(self, data: bytes, content_type: str = "", if_generation_match: int | None = None):
        with self.bucket.lock:
            current = self.bucket.objects.get(self.name, (b"", 0))[1]
            if if_generation_match is not None and if_generation_match != current:
                raise PreconditionFailed(f"{self.name}: generation {current}, expected {if_generation_match}")
            self.bucket.clock += 1
            self.bucket.objects[self.name] = (bytes(data), self.bucket.clock)
            self.generation = self.bucket.clock


class FakeBucket:
    name = "fake-bucket"

    def __init__(self):
        self.objects: dict[str, tuple[bytes, int]] = {}
        self.clock = 1000  # GCS generations are large, increasing and not consecutive
        self.lock = threading.Lock()

    def blob(self, name: str) -> FakeBlob:
        return FakeBlob(self, name)

    def get_blob(self, name: str) -> FakeBlob | None:
        if name not in self.objects:
            return None
        blob = FakeBlob(self, name)
        blob.generation = self.objects[name][1]
        return blob

    def list_blobs(self, prefix: str = "") -> list[FakeBlob]:
        return [b for n in sorted(self.objects) if n.startswith(prefix) and (b := self.get_blob(n))]


def test_gcs_store_compare_and_swap_and_audit_objects():
    bucket = FakeBucket()
    store = GcsStateStore(bucket, "migration/cutover")
    state, generation = store.load()
    assert (state.stage, generation) == (Stage.SHADOW, 0)
    first = moved(state, "a")
    generation = store.save(first, 0)
    assert store.load() == (first, generation) and generation > 1000
    with pytest.raises(ConflictError, match="expected generation 0"):
        store.save(moved(state, "b"), 0)
    second = moved(first, "c")
    store.save(second, generation)
    assert [(e.seq, e.actor) for e in store.history()] == [(1, "a"), (2, "c")]
    assert sorted(bucket.objects) == [
        "migration/cutover/audit/00000001.json",
        "migration/cutover/audit/00000002.json",
        "migration/cutover/state.json",
    ]


def test_gcs_store_threads_lose_no_update():
    store = GcsStateStore(FakeBucket())

    def churn(name: str) -> None:
        done = 0
        while done < 10:
            state, generation = store.load()
            try:
                store.save(moved(state, name), generation)
                done += 1
            except ConflictError:
                continue

    threads = [threading.Thread(target=churn, args=(f"t{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert store.load()[0].seq == 40
    assert [e.seq for e in store.history()] == list(range(1, 41))


def test_local_store_default_location_is_beside_the_warehouse(tmp_path: Path):
    from migration.cutover.store import default_state_location

    assert default_state_location(tmp_path / "warehouse") == str(tmp_path / "cutover")
