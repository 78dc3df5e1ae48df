"""The Kappa streaming job on the real stack: Pub/Sub emulator, BundleBasedDirectRunner, warehouse.

Events are published live at a few hundred per second with duplicates, late events (within
allowed lateness), events beyond allowed lateness and malformed payloads; the job runs as
`kappactl kappa run` in a subprocess. Truth is computed from what was published.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from pipelines import pubsub_io
from pipelines.config import Config
from pipelines.stack.processes import KAPPACTL
from pipelines.warehouse import Warehouse
from tests.beam.sample import event

pytestmark = [pytest.mark.stack, pytest.mark.slow, pytest.mark.timeout(240)]
ROOT = Path(__file__).resolve().parents[2]
LATENESS = "60s"
LATE_MS, TOO_LATE_MS = 12_000, 150_000


class Publisher(threading.Thread):
    """Publishes ~300 events/s for `seconds`, and remembers what the stream should count."""

    def __init__(
        self, config: Config, seconds: float, seed: int = 5, late_ms: int = LATE_MS, too_late: bool = True
    ):
        super().__init__(daemon=True)
        self.config, self.seconds, self.rng = config, seconds, random.Random(seed)
        self.late_ms, self.with_too_late = late_ms, too_late
        self.truth: dict[tuple, int] = {}
        self.sent = self.duplicates = self.too_late = self.malformed = 0
        self.started_at: datetime | None = None

    def run(self) -> None:
        client = pubsub_io.publisher(self.config)
        topic = self.config.pubsub.topic_path
        futures, resend = [], []
        self.started_at = datetime.now(UTC)
        start = time.monotonic()
        while time.monotonic() - start < self.seconds:
            now = int(time.time() * 1000)
            batch = [self._event(now - self.rng.randrange(1000)) for _ in range(27)]
            batch += [self._event(now - self.late_ms) for _ in range(2)]
            for e in batch:
                self._count(e)
            too_late = [event(now - TOO_LATE_MS, tweet_id=99, seed=self.rng.randrange(10**9))]
            too_late = too_late if self.with_too_late else []
            self.too_late += len(too_late)
            payloads = [(e.to_json(), e.attributes()) for e in [*batch, *too_late, *resend]]
            self.duplicates += len(resend)
            resend = self.rng.sample(batch, 3)
            if self.rng.random() < 0.2:
                payloads.append((b'{"event_id": "broken', {}))
                self.malformed += 1
            for data, attributes in payloads:
                futures.append(client.publish(topic, data, **attributes))
            self.sent += len(payloads)
            time.sleep(0.1)
        for future in futures:
            future.result(timeout=30)

    def _event(self, at_ms: int):
        return event(
            at_ms,
            tweet_id=self.rng.randrange(1, 12),
            event_type=self.rng.choice(["like", "reply"]),
            seed=self.rng.randrange(10**9),
        )

    def _count(self, e) -> None:
        key = (e.event_time - e.event_time % 10_000, e.tweet_id, e.event_type)
        self.truth[key] = self.truth.get(key, 0) + 1


def start_job(config_path: Path, *extra: str, lateness: str = LATENESS) -> subprocess.Popen:
    command = [
        *KAPPACTL,
        "kappa",
        "run",
        "--config",
        str(config_path),
        "--set",
        f"time.kappa_allowed_lateness={lateness}",
        "--set",
        f"time.dedup_horizon={LATENESS}",
        "--exit-when-idle",
        "8",
        "--max-runtime",
        "150",
        *extra,
    ]
    return subprocess.Popen(
        command,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def finish(job: subprocess.Popen) -> dict:
    out, err = job.communicate(timeout=180)
    assert job.returncode == 0, err[-3000:]
    return json.loads(out.strip().splitlines()[-1])


def current_counts(config: Config) -> dict[tuple, int]:
    con = Warehouse(config.paths.warehouse_root).connect(config.time.window_ms)
    rows = con.execute(
        "SELECT epoch_ms(window_start), tweet_id, event_type, count FROM kappa_stream_current"
    ).fetchall()
    return {(r[0], r[1], r[2]): r[3] for r in rows}


def test_stream_counts_equal_truth_and_are_conserved(stack_config) -> None:
    config, config_path = stack_config
    job = start_job(config_path)
    time.sleep(6)  # let the pipeline start; messages published before wait in the subscription
    publisher = Publisher(config, seconds=15)
    publisher.start()
    publisher.join()
    summary = finish(job)

    counts = current_counts(config)
    _explain(counts, publisher, summary, config)
    assert counts == publisher.truth
    assert summary["read"] == publisher.sent
    assert summary["dead_lettered"] == publisher.malformed
    assert summary["duplicates_removed"] == publisher.duplicates
    assert summary["too_late"] == publisher.too_late
    assert summary["counted"] == sum(counts.values())
    con = Warehouse(config.paths.warehouse_root).connect(config.time.window_ms)
    panes = dict(con.execute("SELECT pane, count(*) FROM kappa_stream GROUP BY 1").fetchall())
    assert panes.get("LATE", 0) > 0 and panes.get("EARLY", 0) + panes.get("ON_TIME", 0) > 0
    segments = len(Warehouse(config.paths.warehouse_root).segments("kappa_stream"))
    assert segments < 40  # batched: a segment every couple of seconds, not one per pane
    assert con.execute("SELECT count(*) FROM dead_letter").fetchone()[0] == publisher.malformed


def test_crash_and_replay_still_equal_truth(stack_config) -> None:
    config, config_path = stack_config
    first = start_job(config_path)
    time.sleep(6)
    publisher = Publisher(config, seconds=20, seed=6)
    publisher.start()
    time.sleep(10)
    first.send_signal(signal.SIGKILL)  # crash: in-flight (already acked) messages are lost
    first.communicate(timeout=30)
    assert publisher.started_at is not None
    replay_from = publisher.started_at.replace(microsecond=0).isoformat()
    second = start_job(config_path, "--replay-from", replay_from)
    publisher.join()
    summary = finish(second)
    assert current_counts(config) == publisher.truth
    assert summary["read"] >= publisher.sent  # everything since replay_from came again


def test_a_stream_stalled_past_allowed_lateness_catches_up_with_exactly_the_truth(stack_config) -> None:
    """A backlog delays, never drops: the job is frozen (SIGSTOP) for 25 s, more than its
    10 s allowed lateness plus a window, while traffic goes on; once thawed it reads the
    backlog oldest first, its watermark follows what it reads, and nothing is too late."""
    config, config_path = stack_config
    job = start_job(config_path, lateness="10s")
    publisher = Publisher(config, seconds=35, seed=7, late_ms=4_000, too_late=False)
    publisher.start()
    warehouse = Warehouse(config.paths.warehouse_root)
    deadline = time.monotonic() + 120
    while not warehouse.segments("kappa_stream"):  # the stream is up and writing
        assert job.poll() is None and time.monotonic() < deadline, "the stream wrote nothing"
        time.sleep(0.5)
    job.send_signal(signal.SIGSTOP)
    stalled_at = time.monotonic()
    try:
        while time.monotonic() - stalled_at < 25:  # the scenario: a 25 s stall
            time.sleep(1)
    finally:
        job.send_signal(signal.SIGCONT)
    publisher.join()
    summary = finish(job)
    counts = current_counts(config)
    _explain(counts, publisher, summary, config)
    assert summary["too_late"] == 0
    assert summary["read"] == publisher.sent
    assert counts == publisher.truth


def _explain(counts: dict, publisher: Publisher, summary: dict, config: Config) -> None:
    """Print what differs (shown by pytest only when the test fails)."""
    by_window: dict[int, list[int]] = {}
    for key in set(counts) | set(publisher.truth):
        pair = by_window.setdefault(key[0], [0, 0])
        pair[0] += counts.get(key, 0)
        pair[1] += publisher.truth.get(key, 0)
    print(
        "summary",
        summary,
        "sent",
        publisher.sent,
        "dups",
        publisher.duplicates,
        "too late",
        publisher.too_late,
    )
    print("stream total", sum(counts.values()), "truth total", sum(publisher.truth.values()))
    for window_start, (got, want) in sorted(by_window.items()):
        print(window_start, got, want)
    con = Warehouse(config.paths.warehouse_root).connect(config.time.window_ms)
    print(
        con.execute(
            "SELECT epoch_ms(window_start), pane, count(*), sum(count), max(epoch_ms(emitted_at)) "
            "FROM kappa_stream "
            "GROUP BY ALL ORDER BY 1, 2"
        ).fetchall()
    )
