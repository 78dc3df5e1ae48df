"""The legacy speed job on a standalone Flink cluster (1 JobManager, 2 TaskManagers of 4 slots,
from the PyFlink package), at parallelism 1, 2 and 4, beside the mini-cluster on the same input.

- `legacy_speed_cluster_p{1,2,4}_events_per_s`: `legacy speed --flink-master --bounded --fresh`
  over the same events pre-loaded into a 4-partition Kafka topic on a private stack; events
  per second of job wall time (submission included);
- `legacy_speed_mini_p4_events_per_s`: the same job and input in a mini-cluster (the default);
- the ratios p2/p1 and p4/p1 (bench/commands.py) say how it scales on this machine's 2 cores.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
from dataclasses import replace
from pathlib import Path

from bench.bench_legacy import _speed_events
from bench.figures import Figure
from lambda_legacy.speed.launcher import ROOT, SpeedOptions, job_command
from pipelines.kafka_io import produce
from pipelines.stack.flink_cluster import ClusterSettings, FlinkCluster
from pipelines.stack.local import LocalStack
from pipelines.stack.private import private_config

PARTITIONS = 4


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _run_job(config, workdir: Path, parallelism: int, master: str | None, events: int) -> tuple[float, dict]:
    state = workdir / f"job-{master is not None}-{parallelism}"
    shutil.rmtree(state, ignore_errors=True)
    opts = SpeedOptions(bounded=True, fresh=True, starting_offsets="earliest", state_dir=str(state),
                        parallelism=parallelism, group_id=f"bench-{parallelism}-{master is not None}",
                        flink_master=master)  # fmt: skip
    start = time.perf_counter()
    proc = subprocess.run(job_command(config, opts), cwd=ROOT, capture_output=True, text=True, timeout=1200)
    seconds = time.perf_counter() - start
    summary = next(
        (json.loads(line)["legacy_speed_summary"] for line in proc.stdout.splitlines()
         if line.startswith('{"legacy_speed_summary"')), None,
    )  # fmt: skip
    if summary is None or summary["records"] != events or summary["status"] != "FINISHED":
        raise AssertionError(
            f"legacy speed (p={parallelism}, {master or 'mini'}): {summary}\n{proc.stderr[-2000:]}"
        )
    return seconds, summary


def run(workdir: Path, quick: bool = False) -> list[Figure]:
    events = 20_000 if quick else 200_000
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    config = private_config(workdir / "stack")
    config = replace(config, kafka=replace(config.kafka, partitions=PARTITIONS))
    stack = LocalStack(config, external_pubsub=False)
    cluster = FlinkCluster(
        workdir / "cluster", ClusterSettings(rest_port=_free_port(), rpc_port=_free_port())
    )
    figures: list[Figure] = []
    try:
        stack.up()
        payloads, keys = _speed_events(events)
        produce(config, payloads, keys)
        started = time.perf_counter()
        cluster.up(timeout_s=600)
        cluster_up_s = time.perf_counter() - started
        for parallelism in (1, 2, 4):
            seconds, summary = _run_job(config, workdir, parallelism, cluster.master, events)
            figures.append(Figure(
                f"legacy_speed_cluster_p{parallelism}_events_per_s", events / seconds, "events/s", events,
                f"standalone cluster (2 TaskManagers x 4 slots, 2 shared cores), parallelism {parallelism}, "
                f"{PARTITIONS}-partition topic, bounded run of {events} pre-loaded events; wall {seconds:.1f}s "
                f"incl. submission; job {summary['seconds']:.1f}s; cluster start-up {cluster_up_s:.0f}s (not "
                "included)", {"seconds": seconds, "job_seconds": summary["seconds"], "cluster_up_s": cluster_up_s},
            ))  # fmt: skip
    finally:
        cluster.down()
    try:
        seconds, summary = _run_job(config, workdir, PARTITIONS, None, events)
        figures.append(Figure(
            "legacy_speed_mini_p4_events_per_s", events / seconds, "events/s", events,
            f"the same job and input in a mini-cluster (the default), parallelism {PARTITIONS}; wall "
            f"{seconds:.1f}s incl. start-up; job {summary['seconds']:.1f}s", {"seconds": seconds},
        ))  # fmt: skip
    finally:
        stack.down()
    return figures


if __name__ == "__main__":
    import sys

    for figure in run(
        Path(sys.argv[1] if len(sys.argv) > 1 else ".local/bench/legacy_cluster"), "--quick" in sys.argv
    ):
        print(json.dumps(figure.as_json()))
