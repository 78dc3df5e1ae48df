"""The archive in the layout of Terraform's Cloud Storage subscription, on fake-gcs-server:
listed and selected by arrival interval, read by the legacy batch and the kappa backfill
exactly as the local dt=/hr= layout is when no object spans a period boundary (objects that
do: test_archive_spanning.py); a period without objects is never a FINISHED run of 0 lines."""

from __future__ import annotations

import os
import threading
import time
import uuid
from pathlib import Path

import pytest

from kappa.backfill import BackfillJob, backfill_sink, run_backfill
from lambda_legacy.batch.runs import follow, run_period
from pipelines.archive import ArchiveWriter, ArrivalSpans, arrival_spans, list_parts, partition_of, read_lines
from pipelines.config import build_config, dump_config, load_config
from pipelines.errors import InputError
from pipelines.events import Interaction
from pipelines.gcs_archive import SubscriptionObjectWriter, write_object
from pipelines.stack.local import ROOT
from pipelines.warehouse import Warehouse

pytestmark = pytest.mark.cloud

P0 = 1_767_571_200_000  # 2026-01-05T00:00:00Z
PERIOD_MS, WINDOW_MS = 60_000, 10_000
# The objects of `arrivals` never span a period boundary, as the aligned stand-in writes them
# (config/gcp-emulated.yaml): each object's arrivals end with its period.
ALIGNED = ArrivalSpans(PERIOD_MS, 60_000, aligned=True)
UNALIGNED = ArrivalSpans(PERIOD_MS, 60_000)


def event(offset_ms: int, tweet_id: int = 1, event_type: str = "like") -> Interaction:
    return Interaction(str(uuid.uuid4()), P0 + offset_ms, event_type, tweet_id, 7, 9, "web")


def arrivals() -> list[tuple[int, list[bytes]]]:
    """(object start ms, bodies): two objects in period 0, one in period 1, one in period 3."""
    dup, late = event(1_000), event(59_000, tweet_id=3)
    return [
        (P0 + 5_000, [dup.to_json(), event(2_000, tweet_id=2).to_json(), b"{broken", dup.to_json()]),
        (P0 + 35_000, [event(15_000, event_type="retweet").to_json(), dup.to_json(), b""]),
        (P0 + 61_000, [late.to_json(), event(61_000).to_json()]),
        (P0 + 3 * PERIOD_MS + 1_000, [event(3 * PERIOD_MS + 500).to_json()]),
    ]


@pytest.fixture
def archives(bucket, tmp_path: Path) -> tuple[str, str]:
    """The same arrivals as subscription objects in Cloud Storage and as a local archive."""
    root = f"gs://{bucket.name}/interactions/"
    local = ArchiveWriter(tmp_path / "archive", "a", 60)
    for started, bodies in arrivals():
        write_object(root, bodies, started)
        local.write(partition_of(started, 60), bodies)
    return root, str(tmp_path / "archive")


def test_objects_are_named_like_the_subscription_and_selected_by_arrival_period(archives, bucket):
    root, _ = archives
    names = sorted(b.name for b in bucket.list_blobs())
    assert names[0].startswith("interactions/2026-01-05/00/00_05Z_") and names[0].endswith(".jsonl")
    bucket.blob("interactions/README.txt").upload_from_string(b"not a part")  # ignored
    parts = list_parts(root, spans=ALIGNED)
    assert [p.arrival_start_ms for p in parts] == [P0 + 5_000, P0 + 35_000, P0 + 61_000, P0 + 181_000]
    assert [p.arrival_end_ms for p in parts] == [P0 + 60_000, P0 + 60_000, P0 + 120_000, P0 + 240_000]
    first = list_parts(root, P0, P0 + PERIOD_MS, spans=ALIGNED)
    assert [p.arrival_start_ms for p in first] == [P0 + 5_000, P0 + 35_000]
    assert list_parts(root, P0 + 2 * PERIOD_MS, P0 + 3 * PERIOD_MS, spans=ALIGNED) == []
    # Unaligned, an object holds max_duration (+1 s, its name's resolution) of arrivals: the
    # objects started at 0:05 and 0:35 reach into period 1, the one at 1:01 into period 2.
    second = list_parts(root, P0 + PERIOD_MS, P0 + 2 * PERIOD_MS, spans=UNALIGNED)
    assert [p.arrival_start_ms for p in second] == [P0 + 5_000, P0 + 35_000, P0 + 61_000]
    assert [p.arrival_end_ms for p in second] == [P0 + 66_000, P0 + 96_000, P0 + 122_000]
    assert list(read_lines(parts[1].path))[-1] == b""  # an empty message stays a line


def _rows(warehouse: Path, table: str) -> set[tuple]:
    con = Warehouse(warehouse).connect()
    return set(
        con.execute(f"SELECT epoch_ms(window_start), tweet_id, event_type, count FROM {table}").fetchall()
    )


def test_legacy_batch_counts_the_cloud_archive_like_the_local_one(archives, tmp_path: Path):
    root, local = archives
    for archive, warehouse in ((root, tmp_path / "wh-gcs"), (local, tmp_path / "wh-local")):
        reports = [
            run_period(archive, str(warehouse), P0 + i * PERIOD_MS, PERIOD_MS, WINDOW_MS, [], ALIGNED)
            for i in (0, 1)
        ]
        assert [r.counters["lines_read"] for r in reports] == [7, 2]
    assert _rows(tmp_path / "wh-gcs", "legacy_batch") == _rows(tmp_path / "wh-local", "legacy_batch")
    assert (P0, 1, "like", 1) in _rows(tmp_path / "wh-gcs", "legacy_batch")


def test_a_period_without_objects_fails_loudly_and_the_ledger_says_why(archives, tmp_path: Path):
    root, _ = archives
    with pytest.raises(InputError, match="no archive parts under gs://.* arrived in 2026-01-05T00:02:00Z"):
        run_period(root, str(tmp_path / "wh"), P0 + 2 * PERIOD_MS, PERIOD_MS, WINDOW_MS, [], ALIGNED)
    ledger = Warehouse(tmp_path / "wh").connect().execute("SELECT status, reason, lines_read FROM batch_runs")
    [(status, reason, lines)] = ledger.fetchall()
    assert status == "FAILED" and "no archive parts" in reason and lines is None


def test_follow_waits_for_the_first_object_of_a_period_then_runs_it(bucket, tmp_path: Path):
    root, warehouse = f"gs://{bucket.name}/interactions/", tmp_path / "wh"
    reports: list = []
    done = threading.Event()

    def run() -> None:
        follow(root, str(warehouse), PERIOD_MS, 0, WINDOW_MS, [], P0, 1, None, reports.append, done.is_set,
               ALIGNED)  # fmt: skip

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    deadline = time.monotonic() + 60
    while not Warehouse(warehouse).segments("batch_runs") and time.monotonic() < deadline:
        time.sleep(0.1)
    [(status, reason)] = (
        Warehouse(warehouse).connect().execute("SELECT status, reason FROM batch_runs").fetchall()
    )
    assert status == "WAITING" and "waits" in reason and not reports
    write_object(root, [event(3_000).to_json()], P0 + 4_000)
    worker.join(60)
    done.set()
    assert not worker.is_alive() and [r.counters["events_counted"] for r in reports] == [1]


def test_kappa_backfill_reads_the_cloud_archive_like_the_local_one(archives, tmp_path: Path):
    root, local = archives
    config = load_config(ROOT / "config" / "demo.yaml")
    for archive, warehouse in ((root, tmp_path / "wh-gcs"), (local, tmp_path / "wh-local")):
        result = run_backfill(BackfillJob(config, archive, backfill_sink(str(warehouse)), workers=1))
        assert result.parts == 4 and result.counters["dead_lettered"] == 2
    assert _rows(tmp_path / "wh-gcs", "kappa_backfill") == _rows(tmp_path / "wh-local", "kappa_backfill")


def test_the_stand_in_starts_a_new_object_after_max_duration_or_max_bytes(bucket):
    writer = SubscriptionObjectWriter(f"gs://{bucket.name}/interactions/", max_duration_s=60, max_bytes=40)
    assert writer.add(b"a" * 10, P0) == [] and writer.add(b"b" * 10, P0 + 59_000) == []
    [first] = writer.add(b"c" * 10, P0 + 60_000)  # max_duration reached
    [second] = writer.add(b"d" * 30, P0 + 61_000)  # 11 + 31 bytes > 40
    third = writer.flush()
    assert first.endswith(".jsonl") and "/2026-01-05/00/00_00Z_" in first
    assert [list(read_lines(u)) for u in (first, second, third)] == [
        [b"a" * 10, b"b" * 10],
        [b"c" * 10],
        [b"d" * 30],
    ]


def test_an_unreachable_emulator_is_one_line_and_no_bucket_is_input_error(cloud, monkeypatch):
    from pipelines.errors import StackError
    from pipelines.stack.private import free_port

    with pytest.raises(InputError, match="not found"):
        list_parts("gs://no-such-bucket-here/interactions/", spans=ALIGNED)
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", f"http://127.0.0.1:{free_port()}")
    with pytest.raises(StackError, match="does not answer") as info:
        list_parts("gs://any/interactions/", spans=ALIGNED)
    assert "\n" not in str(info.value)


def test_config_round_trip_keeps_the_cloud_section():
    config = load_config(ROOT / "config" / "gcp-emulated.yaml")
    assert build_config(dump_config(config)).gcp == config.gcp


def test_the_stand_in_turns_the_archive_subscription_into_objects_the_readers_list(
    cloud, bucket, tmp_path: Path
):
    from dataclasses import replace

    from pipelines.pubsub_io import ensure_topic_and_subscriptions, publisher
    from pipelines.stack.local import PubSubEmulator
    from pipelines.stack.private import free_port

    config = replace(
        cloud.config,
        pubsub=replace(cloud.config.pubsub, emulator_host=f"127.0.0.1:{free_port()}"),
        gcp=replace(cloud.config.gcp, archive_root=f"gs://{bucket.name}/interactions/"),
    )
    pubsub = PubSubEmulator(config, tmp_path)
    saved = os.environ.get("PUBSUB_EMULATOR_HOST")
    try:
        pubsub.start()
        from pipelines.gcs_archive import SUBSCRIPTION, run_stand_in
        from pipelines.pubsub_io import create_subscription

        ensure_topic_and_subscriptions(config)
        create_subscription(config, SUBSCRIPTION, 300)  # exists before publishing, as in the cloud
        bodies = [event(i).to_json() for i in range(50)] + [b"{broken", b""]
        client = publisher(config)
        for future in [client.publish(config.pubsub.topic_path, body) for body in bodies]:
            future.result(timeout=30)
        assert run_stand_in(config, exit_when_idle=2) == len(bodies)
    finally:
        pubsub.stop()
        if saved is None:
            os.environ.pop("PUBSUB_EMULATOR_HOST", None)
        else:
            os.environ["PUBSUB_EMULATOR_HOST"] = saved
    parts = list_parts(config.gcp.archive_root, spans=arrival_spans(config))
    # One object, or two when the messages straddle a period boundary (the profile aligns).
    assert 1 <= len(parts) <= 2 and all("/interactions/" in p.path for p in parts)
    assert sorted(line for p in parts for line in read_lines(p.path)) == sorted(bodies)
