"""A shadow read made before the current transition (late off the pool) must not wipe the
stats of the current one: with 150 mismatched keys at seq 5, one late seq-4 read leaves them
standing, and the automatic rollback they call for still fires."""

from __future__ import annotations

from migration.cutover import LocalStateStore, Stage, advance, check, rollback
from migration.cutover.gate import MIN_SHADOW_KEYS
from migration.policy import build_policy
from migration.serving.metrics import Metrics
from migration.serving.shadow import Finality, ShadowRecorder

SETTLED = Finality(settled_before_ms=10**12)


def rows(keys: int, count: int) -> list[tuple[int, int, str, str, str, int]]:
    return [(k * 10_000, k * 10_000 + 10_000, "", "", "like", count) for k in range(keys)]


def read_once(recorder: ShadowRecorder, seq: int, keys: int, kappa_count: int) -> None:
    legacy, kappa = rows(keys, 5), rows(keys, kappa_count)
    assert recorder.submit(seq, "legacy", "kappa", legacy, lambda: kappa, SETTLED)
    recorder.drain()


def test_a_late_read_of_an_older_transition_keeps_the_current_stats(tmp_path):
    free = build_policy({"consecutive_passes": 0, "max_shadow_mismatch_rate": 0.05})
    store = LocalStateStore(tmp_path)
    for _ in range(2):  # SHADOW -> CANARY -> FULL, then a rollback and a new canary: seq 4, then 5
        advance(store, free, [], reason="go", actor="a")
    rollback(store, "again", "a")
    advance(store, free, [], reason="go", actor="a")
    state, _ = store.load()
    assert (state.stage, state.seq) == (Stage.CANARY, 4)
    advance(store, free, [], reason="ramp", actor="a", to=Stage.CANARY, percent=50)
    assert store.load()[0].seq == 5

    metrics = Metrics()
    recorder = ShadowRecorder(metrics, settle_ms=0, stats_dir=tmp_path, workers=1)
    try:
        read_once(recorder, 5, 150, 9)  # every key differs: 150 mismatched of 150
        read_once(recorder, 4, 1, 5)  # a read made before the ramp, finishing late
    finally:
        recorder.close()
    stats = recorder.stats
    assert (stats.seq, stats.keys_compared, stats.keys_mismatched) == (5, 150, 150)
    assert stats.keys_compared >= MIN_SHADOW_KEYS
    assert metrics.counter("shadow_stale_reads_total", primary="legacy", shadow="kappa") == 1
    decision, applied = check(store, free, [], stats)
    assert decision.action == "rollback" and "150 of 150 keys" in decision.reason
    assert applied is not None and applied.stage is Stage.SHADOW


def test_a_read_of_a_newer_transition_starts_fresh_stats(tmp_path):
    recorder = ShadowRecorder(Metrics(), settle_ms=0, stats_dir=None, workers=1)
    try:
        read_once(recorder, 1, 120, 9)
        read_once(recorder, 2, 3, 5)
    finally:
        recorder.close()
    assert (recorder.stats.seq, recorder.stats.keys_compared, recorder.stats.keys_mismatched) == (2, 3, 0)
