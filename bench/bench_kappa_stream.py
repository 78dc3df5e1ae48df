"""The Kappa stream's sustained rate: how fast it can be fed for a minute and keep up.

`kappa_stream_sustained_events_per_s` is the highest paced rate at which a live
`kappactl kappa run` (BundleBasedDirectRunner + Pub/Sub emulator) kept up for `SECONDS`:
its backlog (published - read, from its progress log) did not grow over the second half
of the run, and the p99 freshness of its windows (first ON_TIME/LATE row readable -
window_end) stayed <= 5 s. Rates are tried upward from a start rate in `STEP` increments
until one fails (downward in `STEP_DOWN` ones if the start rate fails). `..._beside_speed` is
the same with the legacy speed job (PyFlink) reading the same events from Kafka beside it,
on the same two cores, its feed started once that job's source reads (its start-up, a JVM
and a Flink job submission, is not the steady state measured); `legacy_speed_events_per_s`
of the same `make bench` run sits next to it in latest.md.
"""

from __future__ import annotations

import random
import shutil
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from bench.bench_kappa import _poll
from bench.figures import Figure
from kappa.stream import stream_progress
from lambda_legacy.speed.supervisor import read_progress
from pipelines.config import Config
from pipelines.stack.component import ROOT
from pipelines.stack.processes import KAPPACTL

SECONDS = 60
FRESHNESS_P99_S = 5.0
STEP = 300
STEP_DOWN = 100


@dataclass
class Trial:
    rate: int
    sent: int
    backlog_mid: int
    backlog_end: int
    freshness_p99_s: float | None

    @property
    def kept_up(self) -> bool:
        grew = self.backlog_end - self.backlog_mid > self.rate  # more than a second's worth
        fresh = self.freshness_p99_s is not None and self.freshness_p99_s <= FRESHNESS_P99_S
        return fresh and not grew


def _event(rng: random.Random, now_ms: int):
    from pipelines.events import CLIENTS, Interaction

    return Interaction(
        event_id=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        event_time=now_ms - rng.randrange(500),
        event_type=rng.choice(["like", "reply", "impression", "click"]),
        tweet_id=rng.randrange(1, 2000),
        user_id=rng.randrange(1, 10**6),
        author_id=7,
        client=rng.choice(CLIENTS),
    )


class _Feed(threading.Thread):
    """Publishes `rate` events/s to Pub/Sub (and Kafka, when the speed job reads it)."""

    def __init__(self, config: Config, rate: int, seconds: float, kafka: bool):
        super().__init__(daemon=True)
        self.config, self.rate, self.seconds, self.kafka = config, rate, seconds, kafka
        self.sent = 0

    def run(self) -> None:
        from pipelines import pubsub_io
        from pipelines.kafka_io import producer

        rng, client = random.Random(self.rate), pubsub_io.publisher(self.config)
        kafka = producer(self.config) if self.kafka else None
        futures, start = [], time.monotonic()
        while (elapsed := time.monotonic() - start) < self.seconds:
            due = int(elapsed * self.rate) - self.sent
            now = int(time.time() * 1000)
            for _ in range(max(0, due)):
                e = _event(rng, now)
                futures.append(client.publish(self.config.pubsub.topic_path, e.to_json(), **e.attributes()))
                if kafka is not None:
                    kafka.produce(self.config.kafka.topic, e.to_json(), str(e.tweet_id).encode())
                self.sent += 1
            if kafka is not None:
                kafka.poll(0)
            time.sleep(0.05)
        for future in futures:
            future.result(timeout=60)
        if kafka is not None:
            kafka.flush(30)


def _read_so_far(log: Path) -> int:
    """The `read` count of the stream's newest progress line."""
    return stream_progress(log.read_text(errors="replace")).get("read", 0)


class Feeding(Protocol):
    """A feed thread: `sent` counts what it has sent so far."""

    sent: int

    def start(self) -> None: ...

    def join(self, timeout: float | None = None) -> None: ...


def measure(
    feed: Feeding, stream_log: Path, warehouse: Path, settle_s: float = 0
) -> tuple[int, int, float | None]:
    """Run `feed` for its SECONDS and measure the stream: its
    backlog at half time and once the feed stopped (from its progress log), and the p99
    freshness of the windows that ended meanwhile (waiting `settle_s` more for the last)."""
    seen: dict[int, float] = {}
    stop = threading.Event()
    poller = threading.Thread(target=_poll, args=(warehouse, seen, stop, time.time()), daemon=True)
    poller.start()
    feed.start()
    time.sleep(SECONDS / 2)
    backlog_mid = feed.sent - _read_so_far(stream_log)
    feed.join()
    time.sleep(6)  # a progress line later: where the reader is once the feed stopped
    backlog_end = feed.sent - _read_so_far(stream_log)
    time.sleep(settle_s)
    stop.set()
    poller.join()
    lags = sorted(seen.values())
    return backlog_mid, backlog_end, lags[min(len(lags) - 1, int(len(lags) * 0.99))] if lags else None


def stop_all(procs: list[subprocess.Popen], timeout_s: float = 90) -> None:
    for proc in procs:
        proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()


def _trial(workdir: Path, rate: int, beside_speed: bool) -> Trial:
    from pipelines import pubsub_io
    from pipelines.kafka_io import ensure_topic
    from pipelines.stack.private import PrivateStack

    stack_dir = workdir / f"kappa-sustained-{rate}-{int(beside_speed)}"
    shutil.rmtree(stack_dir, ignore_errors=True)
    with PrivateStack(stack_dir) as stack:
        config = stack.config
        pubsub_io.ensure_topic_and_subscriptions(config)
        ensure_topic(config)
        logs = stack_dir / "logs"
        logs.mkdir()
        common = ["--config", str(stack.config_path)]
        procs = []
        try:
            if beside_speed:
                procs.append(_start(["legacy", "speed", *common, "--fresh"], logs / "speed.log"))
            stream_log = logs / "stream.log"
            procs.append(_start(["kappa", "run", *common, "--max-runtime", str(SECONDS + 120)], stream_log))
            _wait_for(lambda: bool(stream_progress(stream_log.read_text(errors="replace"))), 120, stream_log)
            if beside_speed:
                progress = Path(config.paths.state_dir) / "legacy_speed" / "progress"
                _wait_for(
                    lambda: bool(read_progress(progress)["source_reading_since"]), 400, logs / "speed.log"
                )
            feed = _Feed(config, rate, SECONDS, kafka=beside_speed)
            backlog_mid, backlog_end, p99 = measure(feed, stream_log, Path(config.paths.warehouse_root))
        finally:
            stop_all(procs)
    return Trial(rate, feed.sent, backlog_mid, backlog_end, p99)


def _start(args: list[str], log: Path) -> subprocess.Popen:
    with open(log, "ab") as out:
        return subprocess.Popen([*KAPPACTL, *args], cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)


def _wait_for(predicate, timeout: float, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{log.stem} did not start: {log.read_text(errors='replace')[-2000:]}")
        time.sleep(0.5)


def _sustained(workdir: Path, start: int, beside_speed: bool, max_trials: int) -> tuple[int, list[Trial]]:
    """Highest kept-up rate, trying upward from `start` (downward if `start` fails)."""
    trials: list[Trial] = []
    rate, step = start, STEP
    best = 0
    for _ in range(max_trials):
        trial = _trial(workdir, rate, beside_speed)
        trials.append(trial)
        if trial.kept_up:
            best = max(best, rate)
            if step < 0:
                break
            rate += step
        else:
            if best:
                break
            step = -STEP_DOWN
            rate = max(STEP_DOWN, rate + step)
    return best, trials


def sustained_figure(
    name: str, best: int, trials: list[Trial], beside_speed: bool, where: str = ""
) -> Figure:
    note = (
        f"{where}highest paced rate kept up for {SECONDS}s (backlog not growing, p99 freshness <= "
        f"{FRESHNESS_P99_S:g}s){' with the legacy speed job beside it' if beside_speed else ''}; trials: "
        + "; ".join(
            f"{t.rate}/s backlog {t.backlog_mid}->{t.backlog_end} p99 "
            f"{'-' if t.freshness_p99_s is None else f'{t.freshness_p99_s:.1f}s'}"
            for t in trials
        )
    )
    return Figure(name, best, "events/s", sum(t.sent for t in trials), note)


def run(workdir: Path, quick: bool = False) -> list[Figure]:
    workdir.mkdir(parents=True, exist_ok=True)
    figures = []
    for name, start, beside in (
        ("kappa_stream_sustained_events_per_s", 1000, False),
        ("kappa_stream_sustained_beside_speed_events_per_s", 400, True),
    ):
        best, trials = _sustained(workdir, start, beside, max_trials=1 if quick else 3)
        figures.append(sustained_figure(name, best, trials, beside))
    return figures
