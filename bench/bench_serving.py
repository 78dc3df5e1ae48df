"""Serving API latency under a bounded open-loop load on loopback.

A warehouse of 10k tweets x 60 windows x 2 event types (legacy speed rows, kappa rows with
an EARLY and an ON_TIME pane each: 3.6M rows), and the same at 100k tweets (36M rows); the
API in its own process (`kappactl serve`) in SHADOW state, so every request also makes a
shadow read of the other arm. An asyncio client (http_load.py) sends requests on a fixed
schedule over 64 keep-alive connections (open loop: latency is measured from the scheduled
send time, so a stalled server cannot hide its queueing). Each size is measured without,
then during, snapshot refreshes (a writer process appends a kappa segment every second).
The base warehouses are built once and cached; each run gets hard links to them.
"""

from __future__ import annotations

import asyncio
import os
import random
import select
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pyarrow as pa

from bench.archive_fixture import DEMO_TIME
from bench.figures import Figure
from bench.http_load import has_windows, open_loop
from pipelines.rows import AGGREGATE_SCHEMA
from pipelines.stack.component import ROOT
from pipelines.stack.processes import KAPPACTL
from pipelines.warehouse import Warehouse

WINDOW_US = DEMO_TIME.window_us  # the served config is config/demo.yaml too
BASE_MS = 1_700_000_000_000
EVENT_TYPES = ("impression", "like")


def _segment(pipeline: str, tweets: int, window: int, pane: int, rng: np.random.Generator) -> pa.Table:
    """One window's rows for every tweet and event type, built in Arrow/NumPy (no Python lists:
    the writer thread shares the load client's interpreter)."""
    n = tweets * len(EVENT_TYPES)
    start_us = BASE_MS * 1000 + window * WINDOW_US
    ts = pa.timestamp("us", tz="UTC")
    zeros = pa.array(np.zeros(n, np.int32))
    return pa.table(
        {
            "window_start": pa.array(np.full(n, start_us)).cast(ts),
            "window_end": pa.array(np.full(n, start_us + WINDOW_US)).cast(ts),
            "tweet_id": pa.array(np.repeat(np.arange(1, tweets + 1), len(EVENT_TYPES)), pa.int64()),
            "event_type": pa.array(EVENT_TYPES).take(pa.array(np.tile(np.arange(len(EVENT_TYPES)), tweets))),
            "count": pa.array(rng.integers(1, 500, n), pa.int64()),
            "pipeline": pa.array([pipeline]).take(zeros),
            "emitted_at": pa.array(np.full(n, start_us + WINDOW_US + (pane + 1) * 1_000_000)).cast(
                ts
            ),  # +1 s a pane
            "pane": pa.array(["EARLY" if pane == 0 else "ON_TIME"]).take(zeros),
            "pane_index": pa.array(np.full(n, pane), pa.int64()),
        },
        schema=AGGREGATE_SCHEMA,
    )


def build_warehouse(root: Path, tweets: int, windows: int) -> int:
    """One segment per window and pane, as streaming writers leave them; returns the row count."""
    warehouse, rng, rows = Warehouse(root), np.random.default_rng(7), 0
    for window in range(windows):
        for table, panes in (("legacy_speed", 1), ("kappa_stream", 2)):
            for pane in range(panes):
                segment = _segment(table, tweets, window, pane, rng)
                warehouse.append(table, segment, writer="bench")
                rows += segment.num_rows
    return rows


def cached_warehouse(workdir: Path, tweets: int, windows: int) -> tuple[Path, int]:
    """A fresh warehouse of hard links to a cached base build (the writer only adds files)."""
    base = workdir / f"base-{tweets}x{windows}"
    done = base / "rows.txt"
    if not done.exists():
        shutil.rmtree(base, ignore_errors=True)
        rows = build_warehouse(base / "warehouse", tweets, windows)
        done.write_text(str(rows))
    run = workdir / f"run-{tweets}x{windows}"
    shutil.rmtree(run, ignore_errors=True)
    shutil.copytree(base / "warehouse", run, copy_function=os.link)
    return run, int(done.read_text())


def write_segments(root: Path, tweets: int, window: int) -> None:
    """Append one new kappa window segment per second until a line (or EOF) arrives on stdin;
    print `segment` after each. The writer process of `_SegmentWriter`."""
    warehouse, rng = Warehouse(root), np.random.default_rng(3)
    print("ready", flush=True)
    while not select.select([sys.stdin], [], [], 1.0)[0]:
        warehouse.append("kappa_stream", _segment("kappa_stream", tweets, window, 0, rng), writer="w2")
        window += 1
        print("segment", flush=True)


class _SegmentWriter:
    """A process appending a kappa segment every second, as the streaming job does.

    Its own process, like the job it stands for: as a thread of the load client it shared the
    client's interpreter, and building and writing each segment delayed the client's sends,
    which the benchmark then reported as server latency.
    """

    def __init__(self, root: Path, tweets: int, first_window: int):
        self.args = [sys.executable, "-m", "bench.bench_serving", "--write-segments",
                     str(root.resolve()), str(tweets), str(first_window)]  # fmt: skip
        self.segments = 0

    def __enter__(self) -> _SegmentWriter:
        self.proc = subprocess.Popen(
            self.args, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        if self.proc.stdout is None or self.proc.stdout.readline().strip() != "ready":
            self.proc.kill()
            raise RuntimeError(f"the segment writer did not start (exit {self.proc.wait()})")
        return self

    def __exit__(self, *exc: object) -> None:
        out, _ = self.proc.communicate("stop\n", timeout=120)
        self.segments = out.count("segment")
        if self.proc.returncode != 0:
            raise RuntimeError(f"the segment writer failed (exit {self.proc.returncode})")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_healthy(url: str, proc: subprocess.Popen, timeout_s: float = 120) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"kappactl serve exited: {proc.stderr.read().decode() if proc.stderr else ''}")
        try:
            response = httpx.get(f"{url}/healthz", timeout=2)
            if response.status_code == 200:
                return response.json()
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError("kappactl serve did not become healthy")


def _load(url: str, rate: float, seconds: float, tweets: int) -> tuple[list[float], int, float]:
    """Open-loop load: request i is due at start + i / rate. Returns latencies (ms), errors, wall."""
    rng = random.Random(11)
    paths = [f"/v1/tweets/{rng.randint(1, tweets)}/counts" for _ in range(int(rate * seconds))]
    host, port = url.removeprefix("http://").rsplit(":", 1)
    result = asyncio.run(open_loop(host, int(port), paths, rate, has_windows, connections=64, timeout_s=10))
    return result.latencies_ms, result.errors, result.wall_s


def run(workdir: Path, quick: bool = False) -> list[Figure]:
    """The same load at 1x and 10x the rows (3.6M and 36M; quick: 0.72M and 7.2M), one run."""
    small, large = (2_000, 20_000) if quick else (10_000, 100_000)
    figures = _measure(workdir, small, 60, quick, suffix="")
    figures += _measure(workdir, large, 60, quick, suffix="_10x")
    return figures


def _measure(workdir: Path, tweets: int, windows: int, quick: bool, suffix: str) -> list[Figure]:
    rate, seconds = 200.0, (5.0 if quick else 15.0)
    root, rows = cached_warehouse(workdir, tweets, windows)
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = [*KAPPACTL, "serve", "--port", str(port), "--log-level", "warning",
           "--warehouse", str(root), "--config", "config/demo.yaml"]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env={**os.environ})
    try:
        started = time.perf_counter()
        health = _wait_healthy(url, proc, timeout_s=120 + rows / 50_000)
        first_load_s = time.perf_counter() - started
        _load(url, rate, 1.0, tweets)  # warm-up: connections, thread pool, caches
        latencies, errors, wall = _load(url, rate, seconds, tweets)
        metrics = httpx.get(f"{url}/metrics", timeout=5).text
        with _SegmentWriter(root, tweets, windows) as writer:
            during, during_errors, _ = _load(url, rate, seconds / 1.5, tweets)
        refreshed = httpx.get(f"{url}/healthz", timeout=5).json()["snapshot"]
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    lat = np.array(latencies)
    p50, p99, worst = (float(np.percentile(lat, q)) for q in (50, 99, 100))
    shadow_reads = _metric(metrics, 'kappa_serving_shadow_reads_total{primary="legacy",shadow="kappa"}')
    notes = (
        f"{len(lat)} GET /v1/tweets/{{id}}/counts at {rate:.0f} req/s for {seconds:.0f}s open loop "
        f"(achieved {len(lat) / wall:.0f} req/s), {errors} errors, SHADOW state (every read also "
        f"shadow-reads kappa: {shadow_reads:.0f} done), {tweets} tweets x {windows} windows x "
        f"{len(EVENT_TYPES)} types, {rows:,} warehouse rows; server in its own process, loopback; "
        f"machine load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (shared)"
    )
    new_rows = tweets * len(EVENT_TYPES)
    return [
        Figure(f"serving_p99{suffix}_ms", p99, "ms", len(lat), notes,
               {"p50_ms": p50, "max_ms": worst, "errors": float(errors), "req_per_s": len(lat) / wall,
                "rows": float(rows)}),
        Figure(f"serving_p99_during_refresh{suffix}_ms", float(np.percentile(during, 99)), "ms", len(during),
               f"{rows:,} rows; same load at {rate:.0f} req/s for {seconds / 1.5:.0f}s while a writer appends "
               f"a kappa segment of {new_rows:,} rows every second ({writer.segments} in all), so the server "
               f"keeps refreshing its snapshot incrementally; {during_errors} errors; last refresh read "
               f"{refreshed['new_rows']:,} new rows in {refreshed['build_seconds']}s ({refreshed['runs']} runs "
               f"held); machine load average {os.getloadavg()[0]:.1f}",
               {"p50_ms": float(np.percentile(during, 50)), "errors": float(during_errors), "rows": float(rows),
                "refresh_s": float(refreshed["build_seconds"]), "refresh_new_rows": float(refreshed["new_rows"])}),
        Figure(f"serving_snapshot_build{suffix}_s", health["snapshot"]["build_seconds"], "s", rows,
               f"first load of legacy_serving + kappa_stream_current into memory ({rows:,} rows; paid once at "
               f"start, {first_load_s:.1f}s from process start to healthy); later refreshes read only new "
               "segments", {"rows": float(rows), "start_to_healthy_s": first_load_s}),
    ]  # fmt: skip


def _metric(text: str, series: str) -> float:
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


if __name__ == "__main__":
    import json

    if sys.argv[1:2] == ["--write-segments"]:
        write_segments(Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
        sys.exit(0)
    for figure in run(
        Path(sys.argv[1] if len(sys.argv) > 1 else ".local/bench/serving"), "--quick" in sys.argv
    ):
        print(json.dumps(figure.as_json()))
