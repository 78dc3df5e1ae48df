"""Crash recovery of the Kappa stream on Flink without an operator: kill -9 mid-stream.

While `kappactl kappa run --runner flink --source kafka` reads a live topic, a TaskManager
running its tasks is killed with SIGKILL, and once the job runs again, the SDK harness
process running its Python steps. Flink restores the job from its newest checkpoint each
time (the supervisor restarts the TaskManager, the worker pool starts a new harness) and
the final windows equal truth exactly, with no `--replay-from`: the read resumes at the
checkpoint's offsets, and a pane written twice (once before the kill, once after the
restore) is the same accumulating count, so `kappa_stream_current` counts nothing twice.
What is not asserted: the summary's counters (Flink's task metrics restart from zero with
the restored tasks, and the records after the checkpoint are read again).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from dataclasses import replace
from pathlib import Path

import psutil
import pytest

from kappa.flink import FlinkJob
from kappa.stream import JOB_NAME_PREFIX, stream_progress
from pipelines.stack.kappa_cluster import KappaCluster
from pipelines.stack.private import write_config
from pipelines.stack.processes import KAPPACTL
from pipelines.warehouse import Warehouse
from tests.kappa.conftest import cancel_jobs_since
from tests.kappa.test_stream_flink import LATENESS, Producer, current_counts, on_time_everywhere

pytestmark = [pytest.mark.stack, pytest.mark.kappa_cluster, pytest.mark.flink, pytest.mark.timeout(900)]
ROOT = Path(__file__).resolve().parents[2]


def wait_for(what: str, predicate, job: subprocess.Popen, log: Path, timeout_s: float = 300) -> float:
    """Seconds until `predicate()` holds; fails with the job's log if it exits or time runs out."""
    started = time.monotonic()
    while not predicate():
        assert job.poll() is None, f"the job exited while waiting for {what}: {log.read_text()[-3000:]}"
        assert time.monotonic() - started < timeout_s, (
            f"no {what} in {timeout_s:g}s: {log.read_text()[-3000:]}"
        )
        time.sleep(0.5)
    return time.monotonic() - started


def progress(log: Path) -> dict:
    return stream_progress(log.read_text(errors="replace"))


def job_taskmanagers(flink: FlinkJob) -> set[str]:
    """The resource ids of the TaskManagers running the job's tasks."""
    found = set()
    for vertex in flink._get(f"/jobs/{flink.job_id}").get("vertices", []):
        for tm in flink._get(f"/jobs/{flink.job_id}/vertices/{vertex['id']}/taskmanagers").get(
            "taskmanagers", []
        ):
            found.add(tm.get("taskmanager-id", ""))
    return {tm for tm in found if tm}


def taskmanager_pid(resource_id: str) -> int:
    """The pid of the TaskManager JVM started with this resource id."""
    wanted = f"taskmanager.resource-id={resource_id}"
    found = [p.pid for p in psutil.process_iter(["cmdline"]) if wanted in (p.info["cmdline"] or [])]
    assert len(found) == 1, f"{len(found)} TaskManagers named {resource_id}"
    return found[0]


def test_a_killed_taskmanager_and_a_killed_sdk_harness_are_recovered_from_checkpoints(
    kappa_cluster, stack_config, tmp_path: Path
) -> None:
    config, _ = stack_config
    config = replace(config, kappa_flink=kappa_cluster)
    config_path = write_config(config, tmp_path / "flink.yaml")
    cluster = KappaCluster.of(config)
    log = tmp_path / "kappa-run.log"
    command = [*KAPPACTL, "kappa", "run", "--runner", "flink", "--config", str(config_path),
               "--set", f"time.kappa_allowed_lateness={LATENESS}", "--set", f"time.dedup_horizon={LATENESS}",
               "--max-runtime", "800"]  # fmt: skip
    submitted_ms = int(time.time() * 1000)
    with open(log, "wb") as out:
        job = subprocess.Popen(command, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                               env={**os.environ, "PYTHONUNBUFFERED": "1"})  # fmt: skip
    # Until both restores are seen: records keep arriving whenever the job reads again.
    producer = Producer(config, seconds=None, seed=23)
    flink = FlinkJob(config, JOB_NAME_PREFIX, started_after_ms=submitted_ms)  # this run's job
    try:
        producer.start()
        # Reading, with a checkpoint taken since: the kill lands mid-stream, past a checkpoint.
        wait_for("records read", lambda: progress(log).get("read", 0) > 0, job, log, timeout_s=400)
        done = progress(log).get("checkpoints", {}).get("completed", 0)
        wait_for("a checkpoint after the first records",
                 lambda: progress(log).get("checkpoints", {}).get("completed", 0) > done + 1, job, log)  # fmt: skip

        victims = job_taskmanagers(flink)
        assert victims, "the job's TaskManagers are not visible in Flink's REST API"
        os.kill(taskmanager_pid(sorted(victims)[0]), signal.SIGKILL)
        killed_at = time.monotonic()
        wait_for(
            "a restart after the TaskManager kill", lambda: flink.restarts().get("restarts", 0) >= 1, job, log
        )
        # The restored attempt's counters start again from 0, and the job is RUNNING while its
        # tasks still wait for a slot: reading again is a harness of the pool and records read.
        read_before = progress(log).get("read", 0)

        def reading() -> bool:
            read = progress(log).get("read", 0)
            return (
                flink.state() == "RUNNING"
                and bool(cluster.sdk_pool.worker_pids())
                and 0 < read != read_before
            )

        wait_for("records read after the restore", reading, job, log)
        tm_restore_s = time.monotonic() - killed_at

        harnesses = cluster.sdk_pool.worker_pids()
        assert harnesses, "the worker pool runs no SDK harness for the job"
        done = progress(log).get("checkpoints", {}).get("completed", 0)
        wait_for("a checkpoint before the harness kill",
                 lambda: progress(log).get("checkpoints", {}).get("completed", 0) > done, job, log)  # fmt: skip
        killed = 0
        for pid in harnesses:
            with contextlib.suppress(ProcessLookupError):  # a harness may end on its own meanwhile
                os.kill(pid, signal.SIGKILL)
                killed += 1
        assert killed, f"every SDK harness of {harnesses} had ended before the kill"
        killed_at = time.monotonic()
        wait_for(
            "a restart after the SDK harness kill", lambda: flink.restarts().get("restarts", 0) >= 2, job, log
        )
        wait_for("a new SDK harness", lambda: set(cluster.sdk_pool.worker_pids()) - set(harnesses), job, log)
        harness_restore_s = time.monotonic() - killed_at

        producer.finish()
        producer.join()
        assert producer.error is None, producer.error
        wait_for("every window's on-time pane", lambda: on_time_everywhere(config, producer.truth), job, log,
                 timeout_s=400)  # fmt: skip
        job.send_signal(signal.SIGTERM)
        job.wait(timeout=120)
    finally:
        producer.finish()  # also when a wait above failed
        if job.poll() is None:
            job.kill()
            cancel_jobs_since(config, submitted_ms)
    output = log.read_text(errors="replace")
    assert job.returncode == 0, output[-3000:]
    summary = json.loads(output.strip().splitlines()[-1])
    print(f"restored from the TaskManager kill in {tm_restore_s:.1f}s (reading again), from the SDK "
          f"harness kill in {harness_restore_s:.1f}s (new harness); summary {summary}")  # fmt: skip

    assert current_counts(config) == producer.truth
    con = Warehouse(config.paths.warehouse_root).connect(config.time.window_ms)
    dead = {row[0] for row in con.execute("SELECT DISTINCT payload FROM dead_letter").fetchall()}
    assert dead == ({b'{"event_id": "broken'} if producer.malformed else set())
    # The TaskManager came back (the supervisor) for the tests after this one.
    cluster.wait_taskmanagers(kappa_cluster.taskmanagers, timeout_s=180)
