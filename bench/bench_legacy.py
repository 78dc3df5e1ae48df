"""Legacy arms: batch layer over a generated archive, speed layer from Kafka.

- `legacy_batch_events_per_s`: `run_period` (Beam FnApiRunner, in this process) over every
  period of the cached 1M-event archive of `bench.archive_fixture`; lines read per second,
  checked against the archive's manifest (conservation and expected counts).
- `legacy_speed_events_per_s`: the PyFlink job (`--bounded --fresh`, parallelism =
  partitions) over events pre-loaded into Kafka on a private stack; events per second of
  job wall time (mini-cluster start-up included, reported separately), peak memory of the
  job's whole process tree (driver, JVM, Python workers) sampled from /proc.
"""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import threading
import time
import uuid
from pathlib import Path

from bench.archive_fixture import DEMO_TIME, build_archive
from bench.figures import Figure, peak_rss_mib
from lambda_legacy.batch.runs import run_period
from lambda_legacy.speed.launcher import ROOT, SpeedOptions, job_command
from pipelines.events import EVENT_TYPES, Interaction
from pipelines.kafka_io import produce
from pipelines.stack.private import PrivateStack


def bench_batch(workdir: Path, quick: bool) -> Figure:
    events = 100_000 if quick else 1_000_000
    manifest = build_archive(workdir / "archives", events, periods=2 if quick else 10)
    warehouse = workdir / "batch-warehouse"
    shutil.rmtree(warehouse, ignore_errors=True)
    totals = {
        "lines_read": 0,
        "events_counted": 0,
        "duplicates_removed": 0,
        "late_dropped": 0,
        "dead_lettered": 0,
    }
    start = time.perf_counter()
    for i in range(manifest.periods + 1):
        report = run_period(
            manifest.root,
            str(warehouse),
            manifest.start_ms + i * manifest.period_ms,
            manifest.period_ms,
            DEMO_TIME.window_ms,
            [],
        )
        for name in totals:
            totals[name] += report.counters[name]
    seconds = time.perf_counter() - start
    expected = {
        "lines_read": manifest.lines,
        "events_counted": manifest.unique_events - manifest.late,
        "duplicates_removed": manifest.duplicates,
        "late_dropped": manifest.late,
        "dead_lettered": manifest.bad,
    }
    if totals != expected:
        raise AssertionError(f"legacy batch counters {totals} differ from the archive's manifest {expected}")
    return Figure(
        "legacy_batch_events_per_s",
        totals["lines_read"] / seconds,
        "events/s",
        totals["lines_read"],
        f"Beam FnApiRunner, {manifest.periods + 1} period runs over {manifest.lines} archive lines "
        f"(2% duplicates, 1% late, 0.1% bad; counters match the manifest); {seconds:.1f}s",
        {"peak_rss_mib": peak_rss_mib(), "seconds": seconds},
    )


def _speed_events(count: int, seed: int = 7) -> tuple[list[bytes], list[bytes]]:
    """Events in event-time order, ~1,000 per second of event time, a few out of order."""
    rng = random.Random(seed)
    base = 1_767_571_200_000
    payloads, keys = [], []
    for i in range(count):
        tweet = 1 + int(rng.paretovariate(1.1) * 7) % 2000
        jitter = rng.randrange(-500, 500)
        e = Interaction(
            str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            base + i + jitter,
            EVENT_TYPES[rng.randrange(3)],
            tweet,
            rng.randrange(1, 10**6),
            1 + tweet % 97,
            "web",
        )
        payloads.append(e.to_json())
        keys.append(str(tweet).encode())
    return payloads, keys


def _tree_rss_mib(pid: int) -> float:
    """Resident memory of `pid` and all its descendants, in MiB (Linux /proc)."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            p = int(stat.parent.name)
            children.setdefault(int(fields[1]), []).append(p)
            rss[p] = int(fields[21]) * 4096
        except (OSError, ValueError, IndexError):
            continue
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        total += rss.get(p, 0)
        todo.extend(children.get(p, []))
    return total / 2**20


def bench_speed(workdir: Path, quick: bool) -> Figure:
    events = 20_000 if quick else 200_000
    shutil.rmtree(workdir / "speed", ignore_errors=True)
    with PrivateStack(workdir / "speed") as stack:
        payloads, keys = _speed_events(events)
        produce(stack.config, payloads, keys)
        cmd = job_command(
            stack.config,
            SpeedOptions(
                bounded=True,
                fresh=True,
                starting_offsets="earliest",
                state_dir=str(workdir / "speed" / "job-state"),
            ),
        )
        peak = [0.0]
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        sampler = threading.Thread(target=_sample, args=(proc, peak), daemon=True)
        sampler.start()
        out, _ = proc.communicate(timeout=900)
        seconds = time.perf_counter() - start
        sampler.join(timeout=5)
    summary = next(
        json.loads(line)["legacy_speed_summary"]
        for line in out.splitlines()
        if line.startswith('{"legacy_speed_summary"')
    )
    if summary["records"] != events or summary["status"] != "FINISHED":
        raise AssertionError(f"legacy speed read {summary['records']} of {events} events: {summary}")
    late = summary["written"].get("speed_late", 0)
    return Figure(
        "legacy_speed_events_per_s",
        events / seconds,
        "events/s",
        events,
        f"PyFlink 2.3 mini-cluster, Kafka source (3 partitions, parallelism 3), bounded run of "
        f"{events} pre-loaded events; wall {seconds:.1f}s incl. start-up; job {summary['seconds']:.1f}s; "
        f"{late} dropped as late",
        {
            "peak_rss_mib": peak[0],
            "seconds": seconds,
            "job_seconds": summary["seconds"],
            "late_dropped": late,
        },
    )


def _sample(proc: subprocess.Popen, peak: list[float]) -> None:
    while proc.poll() is None:
        peak[0] = max(peak[0], _tree_rss_mib(proc.pid))
        time.sleep(0.5)


def run(workdir: Path, quick: bool = False) -> list[Figure]:
    workdir.mkdir(parents=True, exist_ok=True)
    return [bench_batch(workdir, quick), bench_speed(workdir, quick)]


if __name__ == "__main__":
    import sys

    for figure in run(
        Path(sys.argv[1] if len(sys.argv) > 1 else ".local/bench/legacy"), "--quick" in sys.argv
    ):
        print(json.dumps(figure.as_json()))
