"""Subscription objects that span a period boundary (the real subscription's batching, no
alignment), read by the one arrival rule (pipelines/archive.py, `ArrivalSpans`): an object
holds the arrivals of [its time, its time + 1 s + max_duration) (its name is to the second).
The legacy batch of a period reads every object overlapping it, so no event is lost that
some object overlapping its period holds; the validator explains what the batch counted by
the same rule (0 unexplained).

Arrival is known per object only, so the Cloud Storage batch may also count an event that
arrived up to max_duration after its period, in an object started within it: the local
layout, partitioned by true arrival, drops it as late. Both are asserted exactly."""

from __future__ import annotations

import random
import uuid
from collections import Counter, defaultdict
from datetime import UTC, datetime
from pathlib import Path

import ibis
import pyarrow as pa
import pytest

from lambda_legacy.batch.runs import run_period
from migration.demo_cloud import _archive_rows
from migration.validator import builder
from migration.validator.finality import AlwaysFinal
from migration.validator.inputs import ArmSpec
from pipelines.archive import ArchiveWriter, ArrivalSpans, list_parts, partition_of, read_lines
from pipelines.events import Interaction, parse_event
from pipelines.gcs_archive import SubscriptionObjectWriter
from pipelines.warehouse import Warehouse

pytestmark = pytest.mark.cloud

P0 = 1_767_571_200_000 + 14 * 86_400_000  # 2026-01-19T00:00:00Z, a period boundary
PERIOD_MS, WINDOW_MS, MAX_DURATION_MS = 60_000, 10_000, 60_000
PERIODS = 4
SPANS = ArrivalSpans(PERIOD_MS, MAX_DURATION_MS)  # unaligned, as the real subscription

Key = tuple[int, int, str]  # (window_start ms, tweet_id, event_type)


def _arrivals() -> list[tuple[int, Interaction]]:
    """(true arrival ms, event), by arrival: events up to 55 s late, some re-sent up to 40 s
    later, the first arriving 35 s into period 0 so every object straddles a boundary."""
    rng = random.Random(16)
    out = []
    for i in range(400):
        arrival = P0 + 35_000 + i * 500
        delay = rng.choice((0, 200, 1_000, 5_000, 15_000, 30_000, 45_000, 55_000))
        tweet, kind = rng.randint(1, 5), rng.choice(("like", "retweet"))
        event = Interaction(str(uuid.uuid4()), arrival - delay, kind, tweet, 7, 9, "web")
        out.append((arrival, event))
        if i % 9 == 0:
            out.append((arrival + rng.randint(1_000, 40_000), event))  # a re-sent copy
    in_periods = [(a, e) for a, e in out if e.event_time < P0 + PERIODS * PERIOD_MS]
    return sorted(in_periods, key=lambda pair: pair[0])


def _write_both(root: str, local: Path, arrivals: list[tuple[int, Interaction]]) -> None:
    """The lines as the subscription batches them (60 s, no alignment) and, locally, in the
    dt=/hr=/mi= partition of their true arrival."""
    writer = SubscriptionObjectWriter(root, max_duration_s=MAX_DURATION_MS / 1000)
    partitions: dict[str, list[bytes]] = defaultdict(list)
    for at_ms, event in arrivals:
        writer.add(event.to_json(), at_ms)
        partitions[partition_of(at_ms, PERIOD_MS / 1000)].append(event.to_json())
    writer.add(b"{broken", arrivals[-1][0])
    writer.flush()
    archive = ArchiveWriter(local, "a", PERIOD_MS / 1000)
    for partition, lines in partitions.items():
        archive.write(partition, lines)


def _expected(copies: list[tuple[int, int, Interaction]]) -> Counter:
    """Per key, the events a period's batch counts when it reads the copies (start, end,
    event) whose arrival interval overlaps the period: one count per event."""
    counted: dict[str, Interaction] = {}
    for start, end, event in copies:
        period = _period(event.event_time)
        if start < period + PERIOD_MS and end > period:
            counted[event.event_id] = event
    return Counter(_key(e) for e in counted.values())


def _period(ms: int) -> int:
    return ms - ms % PERIOD_MS


def _key(event: Interaction) -> Key:
    return (event.event_time - event.event_time % WINDOW_MS, event.tweet_id, event.event_type)


def _batch(archive: str, warehouse: Path) -> Counter:
    for i in range(PERIODS):
        run_period(archive, str(warehouse), P0 + i * PERIOD_MS, PERIOD_MS, WINDOW_MS, [], SPANS)
    sql = "SELECT epoch_ms(window_start), tweet_id, event_type, count FROM legacy_batch"
    return Counter({(w, t, k): c for w, t, k, c in Warehouse(warehouse).connect().execute(sql).fetchall()})


def _object_copies(root: str) -> list[tuple[int, int, Interaction]]:
    copies = []
    for part in list_parts(root, spans=SPANS):
        for line in read_lines(part.path):
            if line != b"{broken":
                copies.append((part.arrival_start_ms, part.arrival_end_ms, parse_event(line)))
    return copies


@pytest.fixture(scope="module")
def spanning(cloud, tmp_path_factory: pytest.TempPathFactory) -> dict:
    from pipelines.gcs_io import storage_client

    bucket = storage_client(emulator=cloud.environment["STORAGE_EMULATOR_HOST"]).create_bucket(
        f"test-{uuid.uuid4().hex[:12]}"
    )
    tmp = tmp_path_factory.mktemp("spanning")
    root, arrivals = f"gs://{bucket.name}/interactions/", _arrivals()
    _write_both(root, tmp / "archive", arrivals)
    return {
        "root": root,
        "arrivals": arrivals,
        "gcs": _batch(root, tmp / "wh-gcs"),
        "local": _batch(str(tmp / "archive"), tmp / "wh-local"),
    }


def test_objects_span_boundaries_and_each_is_read_by_every_period_it_overlaps(spanning):
    parts = list_parts(spanning["root"], spans=SPANS)
    assert all(p.arrival_end_ms == p.arrival_start_ms + 1_000 + MAX_DURATION_MS for p in parts)
    straddling = [p for p in parts if p.arrival_start_ms // PERIOD_MS != (p.arrival_end_ms - 1) // PERIOD_MS]
    assert len(straddling) >= PERIODS - 1
    second = list_parts(spanning["root"], P0 + PERIOD_MS, P0 + 2 * PERIOD_MS, spans=SPANS)
    assert any(p.arrival_start_ms < P0 + PERIOD_MS for p in second)  # started in period 0


def test_the_cloud_batch_counts_what_the_rule_promises_and_loses_nothing_local_counts(spanning):
    copies = _object_copies(spanning["root"])
    gcs, local = spanning["gcs"], spanning["local"]
    assert gcs == _expected(copies)  # every event with a copy in an object overlapping its period
    by_arrival = [(_period(a), _period(a) + PERIOD_MS, e) for a, e in spanning["arrivals"]]
    assert local == _expected(by_arrival)  # the local layout: true arrival in the period
    assert not local - gcs  # no key counts less in the cloud: nothing the local batch counts is lost
    assert sum((gcs - local).values()) > 0  # late by under max_duration, in an object of their period
    # What the selection by object start (before the rule) lost: copies in an object started in
    # the period before their own, now read by their own period's run.
    assert any(_period(start) < _period(e.event_time) < end for start, end, e in copies)


def test_the_validator_explains_the_cloud_batch_by_the_same_rule(spanning):
    con = ibis.duckdb.connect()
    rows = [row for part in list_parts(spanning["root"], spans=SPANS) for row in _archive_rows(part)]
    events = con.create_table("archive_events", pa.Table.from_pylist(rows))
    truth = Counter(_key(e) for e in {e.event_id: e for _, e in spanning["arrivals"]}.values())
    left, right = _arm(con, "left", spanning["gcs"]), _arm(con, "right", truth)
    stats = builder.archive_key_stats(events, WINDOW_MS, PERIOD_MS)
    statuses = Counter(builder.key_diffs(left, right, stats).status.to_pyarrow().to_pylist())
    lost = truth - spanning["gcs"]
    assert lost and statuses == {"EXPLAINED_LATE": len(lost)}  # 0 unexplained


def _arm(con, role: str, counts: Counter) -> builder.Arm:
    rows = [
        {"window_start": datetime.fromtimestamp(w / 1000, tz=UTC), "tweet_id": t, "event_type": k, "count": c}
        for (w, t, k), c in counts.items()
    ]
    raw = con.create_table(f"arm_{role}", pa.Table.from_pylist(rows))
    spec = ArmSpec(role, path=f"{role}.parquet")
    return builder.Arm(spec, builder.normalize(raw, spec, WINDOW_MS), AlwaysFinal("test rows"))
