"""Concurrent writers of a cutover state store, local or on GCS (`open_store(location)`),
shared by the local store's tests and the Cloud Storage emulator's."""

from __future__ import annotations

from migration.cutover.model import CutoverState, Stage, apply_move
from migration.cutover.store import open_store
from pipelines.errors import ConflictError


def moved(state: CutoverState, actor: str) -> CutoverState:
    """A legal move from `state` (SHADOW <-> CANARY), for churning the store."""
    if state.stage is Stage.SHADOW:
        return apply_move(state, "advance", Stage.CANARY, 10, "test", (), actor)
    return apply_move(state, "rollback", Stage.SHADOW, None, "test", (), actor)


def race_once(location: str, name: str, barrier, results) -> None:
    """Read, wait until every racer has read the same generation, then try to write."""
    store = open_store(location)
    state, generation = store.load()
    barrier.wait()
    try:
        store.save(moved(state, name), generation)
        results.put((name, "won"))
    except ConflictError:
        results.put((name, "lost"))


def churn(location: str, name: str, moves: int) -> None:
    """Make `moves` transitions, reloading and retrying after every lost write."""
    store = open_store(location)
    done = 0
    while done < moves:
        state, generation = store.load()
        try:
            store.save(moved(state, name), generation)
            done += 1
        except ConflictError:
            continue
