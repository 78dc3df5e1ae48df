"""The stand-in with `gcp.archive_aligned_to_period` (config/gcp-emulated.yaml): besides the
subscription's `max_duration` and `max_bytes`, a new object at each batch-period boundary,
so no object holds arrivals of two periods and each period's objects carry its lines; the
readers then cut an object's arrival interval at its period's end."""

from __future__ import annotations

import pytest

from pipelines.archive import ArrivalSpans, list_parts, read_lines
from pipelines.gcs_archive import SubscriptionObjectWriter

pytestmark = pytest.mark.cloud
P0 = 1_767_571_200_000  # a period boundary (2026-01-05T00:00:00Z)
PERIOD_MS = 60_000


def test_aligned_objects_never_span_a_period_boundary(bucket):
    root = f"gs://{bucket.name}/interactions/"
    writer = SubscriptionObjectWriter(root, max_duration_s=60, period_ms=PERIOD_MS)
    assert writer.add(b"a", P0 + 35_000) == []
    assert not writer.due(P0 + 59_999) and writer.due(P0 + 60_000)  # the boundary, not 60 s
    [first] = writer.add(b"b", P0 + 60_500)  # arrived in the next period: a new object
    assert writer.add(b"c", P0 + 90_000) == []
    second = writer.flush()
    assert [list(read_lines(u)) for u in (first, second)] == [[b"a"], [b"b", b"c"]]
    aligned = ArrivalSpans(PERIOD_MS, 60_000, aligned=True)
    parts = list_parts(root, P0 + PERIOD_MS, P0 + 2 * PERIOD_MS, spans=aligned)  # the second period's
    assert [p.path for p in parts] == [second]
    assert [p.arrival_end_ms for p in list_parts(root, spans=aligned)] == [P0 + PERIOD_MS, P0 + 120_000]


def test_without_alignment_an_object_spans_the_boundary_as_the_subscription_may(bucket):
    writer = SubscriptionObjectWriter(f"gs://{bucket.name}/interactions/", max_duration_s=60)
    assert writer.add(b"a", P0 + 35_000) == [] and writer.add(b"b", P0 + 60_500) == []
    only = writer.flush()
    assert list(read_lines(only)) == [b"a", b"b"]
    # ... and the readers take its arrivals as [0:35, 1:36): read by both periods' batches.
    unaligned = ArrivalSpans(PERIOD_MS, 60_000)
    second = list_parts(
        f"gs://{bucket.name}/interactions/", P0 + PERIOD_MS, P0 + 2 * PERIOD_MS, spans=unaligned
    )
    assert [(p.path, p.arrival_end_ms) for p in second] == [(only, P0 + 96_000)]
