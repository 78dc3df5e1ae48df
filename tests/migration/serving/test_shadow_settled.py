"""Shadow reads compare only windows settled in both arms, by the snapshot's time and by the
kappa stream's own watermark: a stream running behind is not compared on windows it has not
finished (they would count as mismatches and roll a canary back)."""

from migration.serving.data import Snapshot

SETTLE_MS = 120_000


def snapshot(built_ms: int, kappa_watermark_ms: int | None) -> Snapshot:
    return Snapshot({}, built_ms, 0.1, {}, kappa_watermark_ms=kappa_watermark_ms)


def test_a_stream_keeping_up_is_settled_by_the_snapshots_time() -> None:
    assert snapshot(1_000_000, 1_000_500).settled_before_ms(SETTLE_MS) == 1_000_000 - SETTLE_MS


def test_a_stream_running_behind_is_settled_only_up_to_its_watermark() -> None:
    assert snapshot(1_000_000, 700_000).settled_before_ms(SETTLE_MS) == 700_000 - SETTLE_MS


def test_nothing_is_settled_before_the_stream_closed_a_window() -> None:
    assert snapshot(1_000_000, None).settled_before_ms(SETTLE_MS) == 0
