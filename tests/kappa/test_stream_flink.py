"""The Kappa stream on Beam's Flink runner: a Flink 1.19 cluster on loopback, Kafka read directly.

The session's Kafka (`local_stack`) carries a known set of events: good ones, duplicates,
late ones (within allowed lateness), too-late ones and malformed payloads, published while
the job deploys. The Kappa cluster (`kappactl up --kappa-cluster`: JobManager, two
TaskManagers and Beam's job server) runs `kappactl kappa run --runner flink --source kafka`
with checkpointing on; the job's summary comes from Beam metrics as Flink reports them.
Truth is what was published.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import threading
import time
from dataclasses import replace
from pathlib import Path

import psutil
import pytest

from pipelines import kafka_io
from pipelines.config import Config
from pipelines.events import Interaction
from pipelines.stack.kappa_cluster import KappaCluster
from pipelines.stack.private import write_config
from pipelines.stack.processes import KAPPACTL
from pipelines.warehouse import Warehouse
from tests.beam.sample import event
from tests.kappa.conftest import cancel_jobs_since

pytestmark = [pytest.mark.stack, pytest.mark.kappa_cluster, pytest.mark.flink, pytest.mark.timeout(900)]
ROOT = Path(__file__).resolve().parents[2]
# Shorter than the job takes to start reading: the records produced while it deploys are a
# backlog older than the allowed lateness when read, which a watermark that ran ahead of the
# read (Beam 2.73's ReadFromKafka on a busy machine) drops as late.
LATENESS = "20s"
LATE_MS, TOO_LATE_MS = 12_000, 150_000


class Producer(threading.Thread):
    """Produces ~170 records/s to the test's topic for `seconds` (None: until `finish()`),
    and remembers the truth."""

    def __init__(self, config: Config, seconds: float | None, seed: int = 11):
        super().__init__(daemon=True)
        self.config, self.seconds, self.rng = config, seconds, random.Random(seed)
        self.finished = threading.Event()
        self.truth: dict[tuple, int] = {}
        self.sent = self.duplicates = self.too_late = self.malformed = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self._produce()
        except BaseException as exc:  # surfaced by the test, not lost in a thread
            self.error = exc

    def _produce(self) -> None:
        producer = kafka_io.producer(self.config)
        start = time.monotonic()
        resend: list[Interaction] = []
        while not self.finished.is_set() and (
            self.seconds is None or time.monotonic() - start < self.seconds
        ):
            now = int(time.time() * 1000)
            batch = [self._event(now - self.rng.randrange(1000)) for _ in range(13)]
            batch += [self._event(now - LATE_MS)]
            for e in batch:
                key = (e.event_time - e.event_time % self.config.time.window_ms, e.tweet_id, e.event_type)
                self.truth[key] = self.truth.get(key, 0) + 1
            payloads = [e.to_json() for e in [*batch, *resend]]
            self.duplicates += len(resend)
            resend = self.rng.sample(batch, 2)
            payloads.append(event(now - TOO_LATE_MS, tweet_id=99, seed=self.rng.randrange(10**9)).to_json())
            self.too_late += 1
            if self.rng.random() < 0.3:
                payloads.append(b'{"event_id": "broken')
                self.malformed += 1
            for payload in payloads:
                self._send(producer, payload)
            producer.poll(0)
            time.sleep(0.1)
        # Nothing more: the last windows close once every partition is caught up (a quiet
        # partition's watermark follows the wall clock), not on a record after their end.
        assert producer.flush(30) == 0, "Kafka did not acknowledge every record"

    def finish(self) -> None:
        """Stop producing (after the batch in hand); `join()` then waits for the acknowledgements."""
        self.finished.set()

    def _send(self, producer, payload: bytes) -> None:
        """Round the partitions, so that each one has records (and a watermark) from the start."""
        producer.produce(
            self.config.kafka.topic, value=payload, partition=self.sent % self.config.kafka.partitions
        )
        self.sent += 1

    def _event(self, at_ms: int):
        return event(at_ms, tweet_id=self.rng.randrange(1, 8), event_type=self.rng.choice(["like", "reply"]),
                     seed=self.rng.randrange(10**9))  # fmt: skip


def current_counts(config: Config) -> dict[tuple, int]:
    con = Warehouse(config.paths.warehouse_root).connect(config.time.window_ms)
    rows = con.execute(
        "SELECT epoch_ms(window_start), tweet_id, event_type, count FROM kappa_stream_current"
    ).fetchall()
    return {(r[0], r[1], r[2]): r[3] for r in rows}


def on_time_everywhere(config: Config, truth: dict[tuple, int]) -> bool:
    """Each window of the truth has an ON_TIME pane in the warehouse."""
    if not Warehouse(config.paths.warehouse_root).segments("kappa_stream"):
        return False
    con = Warehouse(config.paths.warehouse_root).connect(config.time.window_ms)
    final = con.execute("SELECT DISTINCT epoch_ms(window_start) FROM kappa_stream WHERE pane = 'ON_TIME'")
    return {key[0] for key in truth} <= {row[0] for row in final.fetchall()}


def test_the_stream_on_flink_over_kafka_equals_truth(kappa_cluster, stack_config, tmp_path: Path) -> None:
    config, _ = stack_config
    config = replace(config, kappa_flink=kappa_cluster)
    config_path = write_config(config, tmp_path / "flink.yaml")
    log = tmp_path / "kappa-run.log"
    command = [*KAPPACTL, "kappa", "run", "--runner", "flink", "--config", str(config_path),
               "--set", f"time.kappa_allowed_lateness={LATENESS}", "--set", f"time.dedup_horizon={LATENESS}",
               "--max-runtime", "600"]  # fmt: skip
    started, submitted_ms = time.monotonic(), int(time.time() * 1000)
    with open(log, "wb") as out:
        job = subprocess.Popen(command, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                               env={**os.environ, "PYTHONUNBUFFERED": "1"})  # fmt: skip
    try:
        # Produced while the job deploys: a new consumer group reads the topic from its start.
        producer = Producer(config, seconds=15)
        producer.start()
        producer.join()
        assert producer.error is None, producer.error
        # Every window's on-time pane is written (the watermark passed them all), then SIGTERM:
        # the job stops once idle (what it read is counted and written).
        while not on_time_everywhere(config, producer.truth):
            assert job.poll() is None, log.read_text(errors="replace")[-3000:]
            assert time.monotonic() - started < 540, "not every window got its on-time pane"
            time.sleep(2)
        final_after = time.monotonic() - started
        job.send_signal(signal.SIGTERM)
        job.wait(timeout=120)
    finally:
        if job.poll() is None:
            job.kill()
            cancel_jobs_since(config, submitted_ms)
    output = log.read_text(errors="replace")
    assert job.returncode == 0, output[-3000:]
    summary = json.loads(output.strip().splitlines()[-1])
    print(f"every window final {final_after:.1f}s after the command, whole run "
          f"{time.monotonic() - started:.1f}s; summary {summary}")  # fmt: skip

    counts = current_counts(config)
    con = Warehouse(config.paths.warehouse_root).connect(config.time.window_ms)
    panes = dict(con.execute("SELECT pane, count(*) FROM kappa_stream GROUP BY 1").fetchall())
    freshness = con.execute(
        "SELECT pane, count(*), median(epoch_ms(emitted_at) - epoch_ms(window_end)) / 1000.0 "
        "FROM kappa_stream GROUP BY 1"
    ).fetchall()
    print("panes (pane, rows, median seconds after the window's end)", freshness)
    assert counts == producer.truth
    assert summary["read"] == producer.sent
    assert summary["dead_lettered"] == producer.malformed
    assert summary["too_late"] == producer.too_late
    assert summary["duplicates_removed"] == producer.duplicates
    assert summary["counted"] == sum(counts.values())
    assert summary["rows_written"] == sum(panes.values())
    assert summary["dead_letters_written"] == producer.malformed
    dead = con.execute("SELECT payload, error FROM dead_letter").fetchall()
    assert len(dead) == producer.malformed
    assert all(payload == b'{"event_id": "broken' and error for payload, error in dead)
    # Final panes for every window (waited on above); the early ones depend on how fast the
    # watermark passes a window's end, the late ones on a late event arriving after that.
    assert panes.get("ON_TIME", 0) >= len({key[0] for key in producer.truth})


def test_kafka_stream_pubsub_stream_and_backfill_have_the_same_steps(
    kappa_cluster, stack_config, tmp_path
) -> None:
    """`kappactl kappa graph`: the Kafka source (expanded by the cluster's expansion service)
    joins ReadFromPubSub and ReadArchive in front of the same steps."""
    config, _ = stack_config
    config_path = write_config(replace(config, kappa_flink=kappa_cluster), tmp_path / "flink.yaml")

    def graph(*args: str) -> list[str]:
        done = subprocess.run([*KAPPACTL, "kappa", "graph", "--config", str(config_path), *args],
                              capture_output=True, text=True, timeout=180, cwd=ROOT)  # fmt: skip
        assert done.returncode == 0, done.stderr[-2000:]
        return done.stdout.splitlines()

    kafka, pubsub = graph("--mode", "stream", "--source", "kafka"), graph("--mode", "stream")
    backfill = graph("--mode", "backfill")
    assert [kafka[0], pubsub[0], backfill[0]] == ["ReadFromKafka", "ReadFromPubSub", "ReadArchive"]
    assert kafka[1:] == pubsub[1:] == backfill[1:]
    assert kafka[-1] == "Write" and "Dedup" in kafka


def test_up_is_idempotent_and_status_shows_every_kappa_component(
    kappa_cluster, local_stack, tmp_path
) -> None:
    """`kappactl up --kappa-cluster` on a running cluster starts nothing new; `status` lists the
    JobManager, both TaskManagers, the supervisor, the job server and the SDK worker pool, healthy."""
    config_path = write_config(replace(local_stack.config, kappa_flink=kappa_cluster), tmp_path / "c.yaml")
    before = {
        s.name: s.pid
        for s in KappaCluster.of(replace(local_stack.config, kappa_flink=kappa_cluster)).status()
    }
    up = subprocess.run([*KAPPACTL, "up", "--kappa-cluster", "--config", str(config_path)],
                        capture_output=True, text=True, timeout=300, cwd=ROOT)  # fmt: skip
    assert up.returncode == 0, up.stderr[-2000:]
    status = subprocess.run([*KAPPACTL, "status", "--json", "--config", str(config_path)],
                            capture_output=True, text=True, timeout=120, cwd=ROOT)  # fmt: skip
    assert status.returncode == 0, status.stdout + status.stderr[-2000:]
    found = {s["name"]: s for s in json.loads(status.stdout)}
    kappa = ["kappa-flink-jobmanager", "kappa-flink-taskmanager-1", "kappa-flink-taskmanager-2",
             "kappa-flink-supervisor", "kappa-jobserver", "kappa-sdk-pool"]  # fmt: skip
    assert all(found[name]["healthy"] for name in kappa), found
    assert {name: found[name]["pid"] for name in kappa} == {name: before[name] for name in kappa}


def listening_beyond_loopback(pids: list[int]) -> list[str]:
    """Every listening TCP socket of these processes (and their children) not on a loopback address."""
    processes = [psutil.Process(pid) for pid in pids]
    processes += [child for process in list(processes) for child in process.children(recursive=True)]
    wide = []
    for process in processes:
        for conn in process.net_connections(kind="tcp"):
            host = conn.laddr.ip.removeprefix("::ffff:")
            if conn.status == psutil.CONN_LISTEN and host not in ("127.0.0.1", "::1"):
                wide.append(
                    f"{process.pid} {' '.join(process.cmdline()[-3:])}: {conn.laddr.ip}:{conn.laddr.port}"
                )
    return wide


def test_every_kappa_process_listens_on_loopback_only(kappa_cluster, local_stack) -> None:
    """The JobManager, the TaskManagers, Beam's job server (run through the loopback launcher
    of tools/kappa-flink) and the SDK worker pool with its harnesses listen on 127.0.0.1 only,
    after a job has run on them."""
    cluster = KappaCluster.of(replace(local_stack.config, kappa_flink=kappa_cluster))
    pids = [*cluster.jobmanager_pids(), *cluster.taskmanager_pids(), *(s.pid() for s in cluster.services())]
    assert None not in pids and len(pids) == 1 + kappa_cluster.taskmanagers + len(cluster.services()), pids
    assert listening_beyond_loopback([pid for pid in pids if pid]) == []
