"""The cutover state in a GCS object on fake-gcs-server: the object's generation is the
compare-and-swap token (`if_generation_match`), audit entries are create-only objects, and
concurrent processes and threads lose no update (the same races as the local store's tests)."""

from __future__ import annotations

import multiprocessing
import threading
import uuid

import pytest

from migration.cutover.model import CutoverState, Stage
from migration.cutover.store import GcsStateStore, open_store
from pipelines.errors import ConflictError
from tests.migration.cutover.writers import churn, moved, race_once

pytestmark = pytest.mark.cloud


@pytest.fixture
def location(bucket) -> str:
    return f"gs://{bucket.name}/migration/cutover-{uuid.uuid4().hex[:6]}"


def test_gcs_store_compare_and_swap_and_audit_objects(location, bucket):
    store = open_store(location)
    assert isinstance(store, GcsStateStore) and store.describe() == location
    state, generation = store.load()
    assert (state.stage, generation) == (Stage.SHADOW, 0)
    first = moved(state, "a")
    generation = store.save(first, 0)
    assert store.load() == (first, generation) and generation > 0
    with pytest.raises(ConflictError, match="expected generation 0"):
        store.save(moved(state, "b"), 0)
    with pytest.raises(ConflictError, match=f"expected generation {generation - 1}"):
        store.save(moved(first, "b"), generation - 1)
    store.save(moved(first, "c"), generation)
    assert [(e.seq, e.actor) for e in store.history()] == [(1, "a"), (2, "c")]
    prefix = location.removeprefix(f"gs://{bucket.name}/")
    assert sorted(b.name for b in bucket.list_blobs(prefix=prefix)) == [
        f"{prefix}/audit/00000001.json",
        f"{prefix}/audit/00000002.json",
        f"{prefix}/state.json",
    ]


def test_four_processes_reading_the_same_generation_exactly_one_wins(location):
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(4), ctx.Queue()
    procs = [ctx.Process(target=race_once, args=(location, f"p{i}", barrier, results)) for i in range(4)]
    for proc in procs:
        proc.start()
    outcomes = sorted(results.get(timeout=120) for _ in procs)
    for proc in procs:
        proc.join(timeout=60)
    winners = [name for name, outcome in outcomes if outcome == "won"]
    assert len(winners) == 1, outcomes
    store = open_store(location)
    state, _ = store.load()
    assert state.seq == 1 and state.last_transition.actor == winners[0]
    assert [e.actor for e in store.history()] == winners


def test_concurrent_processes_lose_no_update(location):
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=churn, args=(location, f"p{i}", 8)) for i in range(3)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout=180)
        assert proc.exitcode == 0
    store = open_store(location)
    state, _ = store.load()
    entries = store.history()
    assert state.seq == 24
    assert [e.seq for e in entries] == list(range(1, 25))  # no gap, no duplicate
    assert sorted({e.actor for e in entries}) == ["p0", "p1", "p2"]


def test_concurrent_threads_lose_no_update(location):
    errors: list[BaseException] = []

    def run(name: str) -> None:
        try:
            churn(location, name, 6)
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(f"t{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    store = open_store(location)
    assert store.load()[0].seq == 24
    assert [e.seq for e in store.history()] == list(range(1, 25))


def test_a_missing_bucket_or_an_unreachable_emulator_is_one_line(cloud, monkeypatch):
    from pipelines.errors import InputError, StackError
    from pipelines.stack.private import free_port

    with pytest.raises(InputError, match="not found") as missing:
        open_store(f"gs://no-bucket-{uuid.uuid4().hex[:6]}/cutover").load()
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", f"http://127.0.0.1:{free_port()}")
    with pytest.raises(StackError, match="does not answer") as down:
        open_store("gs://any/cutover").save(CutoverState(), 0)
    assert "\n" not in str(missing.value) + str(down.value)


def audit_objects(bucket, location: str) -> list[str]:
    prefix = location.removeprefix(f"gs://{bucket.name}/")
    return sorted(b.name.rsplit("/", 1)[-1] for b in bucket.list_blobs(prefix=f"{prefix}/audit/"))


def test_an_entry_a_dead_writer_left_out_is_written_by_the_next_save(location, bucket):
    """A writer died between its state upload and its audit upload; the next writer's save
    writes the missing entry before its own, so the log has no gap (read straight from the
    bucket: `history()` would repair the current entry by itself)."""
    import json

    store = open_store(location)
    first = moved(CutoverState(), "a")
    generation = store.save(first, 0)
    second = moved(first, "dead writer")
    blob = bucket.blob(f"{location.removeprefix(f'gs://{bucket.name}/')}/state.json")
    blob.upload_from_string(json.dumps({"state": second.as_json()}), if_generation_match=generation)
    store.save(moved(second, "c"), blob.generation)
    assert audit_objects(bucket, location) == ["00000001.json", "00000002.json", "00000003.json"]
    assert [(e.seq, e.actor) for e in store.history()] == [(1, "a"), (2, "dead writer"), (3, "c")]


def test_a_lost_state_object_is_an_error_and_rollback_rebuilds_it(location, bucket):
    from migration.cutover import rollback
    from pipelines.errors import InputError

    store = open_store(location)
    state, generation = store.load()
    for actor in ("a", "b", "c"):  # CANARY at transition 3
        state = moved(state, actor)
        generation = store.save(state, generation)
    bucket.blob(f"{location.removeprefix(f'gs://{bucket.name}/')}/state.json").delete()
    with pytest.raises(InputError, match="missing but the audit log records transitions"):
        store.load()
    with pytest.raises(ConflictError):
        store.save(moved(CutoverState(), "naive"), 0)  # seq 1 again: it would go unaudited
    back = rollback(store, "state object lost", "ops")
    assert (back.stage, back.seq) == (Stage.SHADOW, 4)
    assert [e.seq for e in store.history()] == [1, 2, 3, 4]
    assert store.load()[0] == back


def test_a_damaged_state_object_is_kept_aside_and_rollback_rebuilds_it(location, bucket):
    from migration.cutover import rollback
    from pipelines.errors import InputError

    store = open_store(location)
    generation = store.save(moved(CutoverState(), "a"), 0)  # CANARY at transition 1
    prefix = location.removeprefix(f"gs://{bucket.name}/")
    torn = bucket.blob(f"{prefix}/state.json")
    torn.upload_from_string(b'{"state": {"stage": "CANA', if_generation_match=generation)
    with pytest.raises(InputError, match="state.json is not JSON") as info:
        store.load()
    assert "transition 1, SHADOW -> CANARY(10%)" in str(info.value) and "\n" not in str(info.value)
    back = rollback(store, "state object damaged", "ops")
    assert (back.stage, back.seq) == (Stage.SHADOW, 2) and store.load()[0] == back
    kept = list(bucket.list_blobs(prefix=f"{prefix}/state.json.damaged-"))
    assert [b.download_as_bytes() for b in kept] == [b'{"state": {"stage": "CANA']
    assert [e.seq for e in store.history()] == [1, 2]
