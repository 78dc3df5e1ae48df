"""The legacy speed job on a standalone Flink cluster (1 JobManager, 2 TaskManagers, from the
PyFlink package), and a TaskManager fault drill: kill -9 of one TaskManager mid-stream.

What is asserted: the cluster comes up healthy with two TaskManagers; the job runs across both;
after the kill the JobManager restarts the job from its last completed checkpoint on the
remaining TaskManager's slots, the job reads on to the end of the topic, and what it counts
is within the bounds the README states against what a speed layer without a crash counts
(every valid copy, duplicates included, minus the events it listed as late).
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections import Counter
from pathlib import Path

import pytest

from lambda_legacy.speed.supervisor import read_progress
from pipelines.events import now_ms
from pipelines.kafka_io import group_lag
from pipelines.stack.flink_cluster import FlinkCluster
from tests.reliability.support import (
    Procs,
    counts,
    diff,
    generated,
    generator_args,
    generator_spec,
    record_summary,
    scalar,
    speed_expected,
    wait_until,
)
from tests.reliability.test_fault_legacy_speed import _late, _newest_checkpoint

pytestmark = [pytest.mark.stack, pytest.mark.slow, pytest.mark.flink, pytest.mark.timeout(900)]
RATE, SECONDS = 200, 30
CHECKPOINT_S, FLUSH_S = 2, 1
# README (Guarantees): a TaskManager kill -9 on the cluster loses, and counts twice, at most
# what the job read between the barrier of the checkpoint it restores (its trigger) and the
# kill, plus a checkpoint interval and a flush of traffic, per key summed, against the
# no-crash speed layer: the speed layer's own flaw, as in the mini-cluster drill
# (tests/reliability/test_fault_legacy_speed.py). With the job caught up a checkpoint completes
# well within its interval and that is about three intervals and a flush (1,400 events);
# while it reads its start-up backlog, or on a loaded machine, a barrier can take 14 s and
# more to pass, and the bound grows with it.
SLACK = RATE * (CHECKPOINT_S + FLUSH_S)


@pytest.fixture
def cluster(flink_cluster):
    return flink_cluster


def _job(flink: FlinkCluster) -> dict:
    jobs = [j for j in flink.rest("/jobs/overview")["jobs"] if j["name"] == "legacy-speed"]
    return max(jobs, key=lambda j: j["start-time"]) if jobs else {}


def _restored_checkpoint(flink: FlinkCluster, job_id: str) -> int | None:
    restored = (flink.rest(f"/jobs/{job_id}/checkpoints").get("latest") or {}).get("restored")
    return None if not restored else int(restored["id"])


def test_cluster_is_healthy_with_two_taskmanagers_and_a_supervisor(cluster):
    statuses = cluster.status()
    assert [s.name for s in statuses] == [
        "flink-jobmanager", "flink-taskmanager-1", "flink-taskmanager-2", "flink-supervisor"
    ]  # fmt: skip
    assert all(s.healthy for s in statuses), statuses
    assert len(cluster.taskmanager_pids()) == 2


def test_taskmanager_kill_9_restarts_from_checkpoint(cluster, stack_config, tmp_path, request):
    config, path = stack_config
    procs, state, summary = Procs(tmp_path / "logs"), tmp_path / "speed-state", {}
    try:
        summary = drill(procs, cluster, config, str(path), state)
    finally:
        procs.stop_all()
        record_summary(request, tmp_path, "legacy_speed_taskmanager_kill_9", summary)
        cluster.wait_taskmanagers(2, 300)  # the supervisor's replacement: the cluster as the fixture made it
    assert summary["job_spread_over_taskmanagers"] == 2, summary
    assert summary["taskmanagers_after"] == 2 and summary["supervisor_restarts"] >= 1, summary
    assert summary["restored_checkpoint"] is not None, summary
    bound = summary["read_since_restored_barrier"] + SLACK
    assert summary["lost"] <= bound, summary
    assert summary["extra"] <= bound, summary


def drill(procs: Procs, flink: FlinkCluster, config, path: str, state: Path) -> dict:
    count = RATE * SECONDS
    timing = ("--checkpoint-ms", str(CHECKPOINT_S * 1000), "--flush-ms", str(FLUSH_S * 1000))
    procs.start("speed", "legacy", "speed", "--config", path, "--state-dir", str(state), "--fresh", "--drain",
                *timing, "--flink-master", flink.master)  # fmt: skip
    # Traffic starts once the job's source reads, so the job is caught up when it is killed.
    wait_until(lambda: read_progress(state / "progress")["source_reading_since"], 300, "the source to read")
    spec = generator_spec(seed=43, rate=RATE, start_ms=now_ms(), max_lateness_s=20.0)
    records = generated(spec, count)
    procs.start("generate", *generator_args(spec, count), "--config", path)
    reads = _ReadSamples(state / "progress")
    wait_until(lambda: reads.sample() >= 1500, 300, "the job to be busy")
    job_id = _job(flink)["jid"]
    spread = _taskmanagers_of(flink, job_id)
    taken = _newest_checkpoint(state)
    wait_until(
        lambda: reads.sample() and _newest_checkpoint(state) > taken, 60, "one more checkpoint while busy"
    )
    victim = flink.taskmanager_pids()[0]
    orphans = _descendants(victim)  # its Python workers outlive a kill -9: stopped below
    read_at_kill = reads.sample()
    os.kill(victim, signal.SIGKILL)
    killed = time.monotonic()
    wait_until(lambda: _restored_checkpoint(flink, job_id) is not None, 120, "a restore from a checkpoint")
    restored = _restored_checkpoint(flink, job_id)
    barrier_s = _trigger_s(flink, job_id, restored)
    wait_until(lambda: _job(flink).get("state") == "RUNNING", 120, "the job to run again")
    restarted_s = round(time.monotonic() - killed, 1)
    wait_until(lambda: len(flink.taskmanager_pids()) == 2, 120, "the supervisor to start a TaskManager again")
    assert procs.wait("generate", 180) == 0, procs.log("generate")[-2000:]
    wait_until(lambda: group_lag(config, "legacy-speed") == 0, 360,
               f"the job to commit every offset (progress {read_progress(state / 'progress')})")  # fmt: skip
    taken = _newest_checkpoint(state)
    wait_until(lambda: _newest_checkpoint(state) > taken, 60, "a checkpoint after the last record")
    procs.started["speed"].send_signal(signal.SIGTERM)  # stop with a savepoint, draining open windows
    assert procs.wait("speed", 180) in (0, -signal.SIGTERM), procs.log("speed")[-3000:]
    for pid in orphans:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    window_ms = config.time.window_ms
    no_crash = Counter(speed_expected(records, window_ms, spec.start_ms + 60_000))
    no_crash.subtract(_late(config))
    got = counts(config, "legacy_speed_current")
    want = {k: v for k, v in no_crash.items() if v}
    return {
        "records_sent": count,
        "job_spread_over_taskmanagers": spread,
        "restored_checkpoint": restored,
        "restored_barrier_s_before_kill": round(reads.times[-1] - barrier_s, 1),
        "read_at_kill": read_at_kill,
        "read_since_restored_barrier": read_at_kill - reads.before(barrier_s),
        "restart_s_after_kill": restarted_s,
        "taskmanagers_after": len(flink.taskmanager_pids()),
        "supervisor_restarts": flink.supervisor_restarts().get("taskmanager", 0),
        "lost": sum(max(0, v - got.get(k, 0)) for k, v in want.items()),
        "extra": sum(max(0, v - want.get(k, 0)) for k, v in got.items()),
        "speed_vs_no_crash_speed": diff(got, want, window_ms),
        "speed_rows_written_twice": scalar(
            config, "SELECT count(*) - count(DISTINCT (window_start, tweet_id, event_type)) FROM legacy_speed"
        ),
    }


class _ReadSamples:
    """The job's read count over wall-clock time, sampled by the drill's waits."""

    def __init__(self, progress: Path):
        self.progress, self.times, self.records = progress, [time.time()], [0]

    def sample(self) -> int:
        self.times.append(time.time())
        self.records.append(read_progress(self.progress)["records"])
        return self.records[-1]

    def before(self, at_s: float) -> int:
        """A lower bound of what was read by `at_s`: the last sample taken before it."""
        return max((r for t, r in zip(self.times, self.records, strict=True) if t <= at_s), default=0)


def _trigger_s(flink: FlinkCluster, job_id: str, checkpoint: int | None) -> float:
    """When the checkpoint's barrier was injected (its trigger time), in epoch seconds."""
    history = flink.rest(f"/jobs/{job_id}/checkpoints").get("history", [])
    triggered = [int(c["trigger_timestamp"]) for c in history if c["id"] == checkpoint]
    assert triggered, f"checkpoint {checkpoint} is not in the JobManager's history: {history}"
    return triggered[0] / 1000


def _descendants(pid: int) -> list[int]:
    """Every process below `pid` (Linux /proc)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            children.setdefault(int(stat.read_text().rsplit(")", 1)[1].split()[1]), []).append(
                int(stat.parent.name)
            )
    found, todo = [], list(children.get(pid, []))
    while todo:
        found.append(todo.pop())
        todo.extend(children.get(found[-1], []))
    return found


def _taskmanagers_of(flink: FlinkCluster, job_id: str) -> int:
    """How many TaskManagers run subtasks of the job."""
    hosts = set()
    for vertex in flink.rest(f"/jobs/{job_id}")["vertices"]:
        detail = flink.rest(f"/jobs/{job_id}/vertices/{vertex['id']}/taskmanagers")
        hosts |= {tm["taskmanager-id"] for tm in detail.get("taskmanagers", [])}
    return len(hosts)
