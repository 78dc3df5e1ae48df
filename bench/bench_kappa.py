"""Kappa benchmarks: backfill throughput vs a plain DuckDB query, and live freshness.

- `kappa_backfill_events_per_s`: `kappa.backfill` (FnApiRunner, batch) over the
  shared synthetic archive (>= 1M events, 2% duplicates, 1% late, 0.1% bad lines, half the
  parts gzip), run in a subprocess; its counters are checked against the archive's
  manifest. Time is the pipeline's own wall time (construction, run, write), not the
  interpreter start; peak memory is the subprocess's peak RSS (its workers included).
  Measured with 1 worker, 2 in-memory worker threads (the default on 2 cores) and 2
  worker processes; the figure is the fastest, all are in extra.
- `baseline_events_per_s`: the same counts by one DuckDB query over the archive JSONL
  (read_json of every part, valid rows only, dedup by event_id, group by window, tweet,
  type), in a subprocess, same timing and memory rules.
- `kappa_e2e_freshness_p50_s` / `_p99_s`: a live `kappactl kappa run` on a private stack
  fed at ~300 events/s; a poller sees each Parquet segment as it lands, and freshness is
  (first time a window's ON_TIME/LATE row is readable) - window_end.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from bench.archive_fixture import DEMO_TIME, build_archive
from bench.figures import Figure
from pipelines.stack.component import ROOT
from pipelines.stack.processes import KAPPACTL

ROUNDS = 3  # interleaved rounds; each variant and the baseline keep their best time
# FnApiRunner modes measured: name -> (workers, as processes).
VARIANTS = {
    "1_worker_in_process": (1, False),
    "2_workers_threads": (2, False),
    "2_workers_processes": (2, True),
}

_BACKFILL = """
import json, resource, sys, time
from kappa.backfill import BackfillJob, backfill_sink, run_backfill
from pipelines.config import load_config
archive, warehouse, workers, processes = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4] == "1"
job = BackfillJob(load_config("config/demo.yaml"), archive, backfill_sink(warehouse), workers=workers,
                  processes=processes)
start = time.perf_counter()
result = run_backfill(job)
seconds = time.perf_counter() - start
rss = max(resource.getrusage(r).ru_maxrss for r in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)) / 1024
print(json.dumps({"seconds": seconds, "peak_rss_mib": rss, "counters": result.counters}))
"""

_DUCKDB = """
import json, resource, sys, time, duckdb
root, window_ms = sys.argv[1], int(sys.argv[2])
types = "('impression','like','retweet','reply','quote','click','profile_click','video_view','bookmark')"
start = time.perf_counter()
con = duckdb.connect()
con.execute("SET enable_progress_bar = false")  # it prints to stdout when a query runs long
rows = con.execute(f'''
    WITH raw AS (
        SELECT * FROM read_json(['{root}/**/*.jsonl', '{root}/**/*.jsonl.gz'], format='newline_delimited',
            ignore_errors=true, columns={{event_id:'VARCHAR', event_time:'BIGINT', event_type:'VARCHAR',
            tweet_id:'BIGINT', user_id:'BIGINT', author_id:'BIGINT', client:'VARCHAR'}})
    ), valid AS (
        SELECT * FROM raw WHERE event_id IS NOT NULL AND event_time > 0 AND tweet_id > 0 AND user_id > 0
          AND author_id > 0 AND event_type IN {types} AND client IN ('web','ios','android')
    ), unique_events AS (
        SELECT any_value(event_time) AS event_time, any_value(tweet_id) AS tweet_id,
               any_value(event_type) AS event_type
        FROM valid GROUP BY event_id
    )
    SELECT event_time // {window_ms} * {window_ms} AS window_start, tweet_id, event_type, count(*) AS n
    FROM unique_events GROUP BY ALL
''').fetchall()
seconds = time.perf_counter() - start
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
total = sum(r[3] for r in rows)
print(json.dumps({"seconds": seconds, "peak_rss_mib": rss, "keys": len(rows), "events": total}))
"""


def _measure(code: str, *args: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", code, *args], cwd=ROOT, capture_output=True, text=True, timeout=900
    )
    if done.returncode != 0:
        raise RuntimeError(f"benchmark subprocess failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _check_counters(c: dict, manifest: Any) -> None:
    expected = (manifest.lines, manifest.unique_events, manifest.duplicates, manifest.bad)
    got = (c["read"], c["counted"], c["duplicates_removed"], c["dead_lettered"])
    if got != expected:
        raise AssertionError(f"kappa backfill counters {got} differ from the manifest {expected}")


def bench_backfill(workdir: Path, quick: bool) -> list[Figure]:
    events = 100_000 if quick else 1_000_000
    manifest = build_archive(workdir / "archives", events, periods=2 if quick else 10)
    # Rounds interleave the backfill variants and the DuckDB baseline, each keeping its best
    # time, so a burst of load on the shared machine does not decide the ratio.
    runs: dict[str, dict] = {}
    duck: dict = {}
    for _ in range(1 if quick else ROUNDS):
        for mode, (workers, processes) in VARIANTS.items():
            warehouse = workdir / f"kappa-backfill-{mode}"
            shutil.rmtree(warehouse, ignore_errors=True)
            got = _measure(_BACKFILL, manifest.root, str(warehouse), str(workers), str(int(processes)))
            _check_counters(got["counters"], manifest)
            if mode not in runs or got["seconds"] < runs[mode]["seconds"]:
                runs[mode] = got
        done = _measure(_DUCKDB, manifest.root, str(DEMO_TIME.window_ms))
        if done["events"] != manifest.unique_events:
            raise AssertionError(
                f"DuckDB baseline counted {done['events']}, manifest says {manifest.unique_events}"
            )
        if not duck or done["seconds"] < duck["seconds"]:
            duck = done
    best = min(runs, key=lambda w: runs[w]["seconds"])
    return [
        Figure(
            "kappa_backfill_events_per_s",
            manifest.lines / runs[best]["seconds"],
            "events/s",
            manifest.lines,
            f"the stream's pipeline on bounded input (Arrow per part file, event_id-bucket shuffle), "
            f"FnApiRunner {best} "
            f"(fastest of {', '.join(VARIANTS)}; best of {ROUNDS} rounds interleaved with the baseline); "
            f"{runs[best]['seconds']:.2f}s pipeline wall time; "
            "counters match the manifest",
            {
                "peak_rss_mib": runs[best]["peak_rss_mib"],
                "seconds": runs[best]["seconds"],
                **{f"events_per_s_{m}": manifest.lines / r["seconds"] for m, r in runs.items()},
                **{f"peak_rss_mib_{m}": r["peak_rss_mib"] for m, r in runs.items()},
            },
        ),
        Figure(
            "baseline_events_per_s",
            manifest.lines / duck["seconds"],
            "events/s",
            manifest.lines,
            f"one DuckDB query: read_json over the archive, valid rows, dedup by event_id, count per "
            f"window/tweet/type; {duck['seconds']:.2f}s (best of {ROUNDS}); same unique-event total as the manifest",
            {"peak_rss_mib": duck["peak_rss_mib"], "seconds": duck["seconds"]},
        ),
    ]


def bench_freshness(workdir: Path, quick: bool) -> list[Figure]:
    from kappa.stream import FLUSH_S
    from pipelines import pubsub_io
    from pipelines.stack.private import PrivateStack

    seconds = 20 if quick else 40
    stack_dir = workdir / "kappa-freshness-stack"
    shutil.rmtree(stack_dir, ignore_errors=True)  # segments of an earlier run would count as late windows
    with PrivateStack(stack_dir) as stack:
        config = stack.config
        pubsub_io.ensure_topic_and_subscriptions(config)
        job = subprocess.Popen(
            [
                *KAPPACTL,
                "kappa",
                "run",
                "--config",
                str(stack.config_path),
                "--exit-when-idle",
                "8",
                "--max-runtime",
                str(seconds + 90),
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        seen: dict[int, float] = {}
        stop = threading.Event()
        poller = threading.Thread(
            target=_poll, args=(Path(config.paths.warehouse_root), seen, stop, time.time()), daemon=True
        )
        poller.start()
        time.sleep(6)
        sent = _publish(config, seconds, rate=300)
        out, _ = job.communicate(timeout=seconds + 150)
        stop.set()
        poller.join()
    lags = sorted(seen.values())
    if not lags:
        raise AssertionError("no ON_TIME/LATE pane reached the warehouse")
    flush_s = FLUSH_S  # the job runs with the default
    p50, p99 = lags[len(lags) // 2], lags[min(len(lags) - 1, int(len(lags) * 0.99))]
    note = (
        f"live kappactl kappa run on BundleBasedDirectRunner + Pub/Sub emulator, {sent} events at "
        f"~300 events/s for {seconds}s, {len(lags)} windows of 10s; segment flush every {flush_s:g}s "
        "(the default); "
        f"run summary {out.strip().splitlines()[-1] if out.strip() else '-'}"
    )
    return [
        Figure("kappa_e2e_freshness_p50_s", p50, "s", sent, note),
        Figure("kappa_e2e_freshness_p99_s", p99, "s", sent, note),
    ]


def _poll(warehouse: Path, seen: dict[int, float], stop: threading.Event, since_s: float) -> None:
    """Record, per window ending after `since_s`, when its first ON_TIME/LATE row became
    readable, minus window_end."""
    import pyarrow.parquet as pq

    read: set[Path] = set()
    while not stop.is_set():
        now = time.time()
        for segment in sorted((warehouse / "kappa_stream").glob("part-*.parquet")):
            if segment in read:
                continue
            read.add(segment)
            table = pq.read_table(segment, columns=["window_end", "pane"]).to_pylist()
            for row in table:
                end_ms = int(row["window_end"].timestamp() * 1000)
                if row["pane"] == "EARLY" or end_ms < since_s * 1000:
                    continue
                seen.setdefault(end_ms, now - end_ms / 1000)
        time.sleep(0.25)


def _publish(config, seconds: float, rate: int) -> int:
    import random
    import uuid

    from pipelines import pubsub_io
    from pipelines.events import CLIENTS, Interaction

    rng = random.Random(11)
    client = pubsub_io.publisher(config)
    futures, sent, start = [], 0, time.monotonic()
    while time.monotonic() - start < seconds:
        now = int(time.time() * 1000)
        for _ in range(rate // 10):
            e = Interaction(
                event_id=str(uuid.UUID(int=rng.getrandbits(128))),
                event_time=now - rng.randrange(500),
                event_type=rng.choice(["like", "reply", "impression"]),
                tweet_id=rng.randrange(1, 50),
                user_id=rng.randrange(1, 10**6),
                author_id=7,
                client=rng.choice(CLIENTS),
            )
            futures.append(client.publish(config.pubsub.topic_path, e.to_json(), **e.attributes()))
            sent += 1
        time.sleep(0.1)
    for future in futures:
        future.result(timeout=30)
    return sent


def run(workdir: Path, quick: bool = False) -> list[Figure]:
    workdir.mkdir(parents=True, exist_ok=True)
    return [*bench_backfill(workdir, quick), *bench_freshness(workdir, quick)]
