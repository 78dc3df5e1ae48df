"""The Kappa stream on Beam's Flink runner, reading Kafka: how fast it can be fed and keep up.

`kappa_stream_flink_sustained_events_per_s` is the highest paced rate at which a live
`kappactl kappa run --runner flink --source kafka` on the Kappa cluster (`up
--kappa-cluster`: a JobManager, two TaskManagers, the job server and the SDK worker pool,
all on this machine's two cores) kept up for `SECONDS`: its backlog (produced - read, from
its progress log) did not grow by more than a second's worth over the second half of the
run, and the p99 freshness of its windows (first ON_TIME/LATE row readable - window_end)
stayed <= 5 s. Rates go up by `GROWTH` from `START` until one fails (down by halves if
the start fails), so the figure is a measurement, not a lower bound: the next rate up
failed. `..._beside_speed_...` is the same with the legacy speed job (PyFlink) reading the
same topic beside it; `legacy_speed_events_per_s` of the same `make bench` run sits next to
it in latest.md. The feed (confluent-kafka, in this process) runs on the same two cores.
One Kafka broker and one Kappa cluster serve every trial; each trial has a topic, a
consumer group and a warehouse of its own.
"""

from __future__ import annotations

import random
import shutil
import threading
import time
from dataclasses import replace
from pathlib import Path

from bench.bench_kappa_stream import SECONDS, Trial, _start, _wait_for, measure, stop_all, sustained_figure
from bench.figures import Figure
from kappa.flink import FlinkJob
from kappa.stream import JOB_NAME_PREFIX
from lambda_legacy.speed.supervisor import read_progress
from pipelines.config import Config, KappaFlinkConfig
from pipelines.stack.kappa_cluster import KappaCluster
from pipelines.stack.private import PrivateStack, free_port, isolated_config, write_config

START = 4000
GROWTH = 1.5
MAX_TRIALS = 6


class _KafkaFeed(threading.Thread):
    """Produces `rate` events/s to the trial's topic for `seconds`, round the partitions."""

    def __init__(self, config: Config, rate: int, seconds: float):
        super().__init__(daemon=True)
        self.config, self.rate, self.seconds = config, rate, seconds
        self.sent = 0

    def run(self) -> None:
        from pipelines.kafka_io import producer

        rng, kafka = random.Random(self.rate), producer(self.config)
        partitions, start = self.config.kafka.partitions, time.monotonic()
        while (elapsed := time.monotonic() - start) < self.seconds:
            now = int(time.time() * 1000)
            for _ in range(max(0, int(elapsed * self.rate) - self.sent)):
                kafka.produce(self.config.kafka.topic, _payload(rng, now), partition=self.sent % partitions)
                self.sent += 1
            kafka.poll(0)
            time.sleep(0.02)
        kafka.flush(60)


def _payload(rng: random.Random, now_ms: int) -> bytes:
    """A valid event: its id, time, type, tweet and user all drawn from one random number."""
    bits = rng.getrandbits(128)
    kind = ("like", "reply", "impression", "click")[bits & 3]
    return (
        f'{{"event_id": "{bits:032x}", "event_time": {now_ms - (bits >> 2) % 500}, "event_type": "{kind}", '
        f'"tweet_id": {1 + (bits >> 11) % 1999}, "user_id": {1 + (bits >> 22) % 10**6}, "author_id": 7, '
        f'"client": "web"}}'
    ).encode()


def _trial(base: Config, workdir: Path, rate: int, beside_speed: bool) -> Trial:
    name = f"flink-{rate}-{int(beside_speed)}"
    shutil.rmtree(workdir / name, ignore_errors=True)
    config, config_path = isolated_config(base, workdir / name, name)
    logs = workdir / name / "logs"
    logs.mkdir(parents=True)
    common = ["--config", str(config_path)]
    procs = []
    try:
        if beside_speed:
            procs.append(_start(["legacy", "speed", *common, "--fresh"], logs / "speed.log"))
            progress = Path(config.paths.state_dir) / "legacy_speed" / "progress"
            _wait_for(lambda: bool(read_progress(progress)["source_reading_since"]), 400, logs / "speed.log")
        stream_log = logs / "stream.log"
        submitted_ms = int(time.time() * 1000)
        procs.append(_start(["kappa", "run", "--runner", "flink", *common, "--max-runtime", str(SECONDS + 400)],
                            stream_log))  # fmt: skip
        flink = FlinkJob(config, JOB_NAME_PREFIX, started_after_ms=submitted_ms)
        # Deployed, checkpointing (its tasks run) and with a watermark (40-50 s after submission,
        # over an empty topic) before the feed starts: start-up is not measured.
        _wait_for(lambda: (flink.checkpoints().get("completed") or 0) > 0, 400, stream_log)
        _wait_for(lambda: flink.watermark_age_s() is not None, 400, stream_log)
        feed = _KafkaFeed(config, rate, SECONDS)
        # then the last windows' on-time panes (window 10 s, watermark 2 s behind the clock)
        backlog_mid, backlog_end, p99 = measure(
            feed, stream_log, Path(config.paths.warehouse_root), settle_s=8
        )
    finally:
        stop_all(procs)
    return Trial(rate, feed.sent, backlog_mid, backlog_end, p99)


def _sustained(config: Config, workdir: Path, beside_speed: bool, max_trials: int) -> tuple[int, list[Trial]]:
    """Highest kept-up rate, going up by GROWTH from START (down by halves if START fails)."""
    trials: list[Trial] = []
    rate, best = START, 0
    for _ in range(max_trials):
        trial = _trial(config, workdir, rate, beside_speed)
        trials.append(trial)
        if trial.kept_up:
            best = rate
            rate = int(rate * GROWTH)
        elif best:
            break
        else:
            rate //= 2
    return best, trials


def run(workdir: Path, quick: bool = False) -> list[Figure]:
    workdir.mkdir(parents=True, exist_ok=True)
    figures = []
    with PrivateStack(workdir / "stack") as stack:
        kappa_flink = KappaFlinkConfig(rest_port=free_port(), rpc_port=free_port(), job_port=free_port(),
                                       worker_pool_port=free_port())  # fmt: skip
        config = replace(stack.config, kappa_flink=kappa_flink)
        write_config(config, workdir / "stack" / "config.yaml")
        cluster = KappaCluster.of(config)
        cluster.up(timeout_s=400)
        try:
            for name, beside in (("kappa_stream_flink_sustained_events_per_s", False),
                                 ("kappa_stream_flink_sustained_beside_speed_events_per_s", True)):  # fmt: skip
                best, trials = _sustained(config, workdir, beside, max_trials=1 if quick else MAX_TRIALS)
                where = f"Flink runner, Kafka source, {config.kafka.partitions} partitions: "
                figures.append(sustained_figure(name, best, trials, beside, where))
        finally:
            cluster.down()
    return figures
