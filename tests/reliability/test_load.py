"""Issue 9, load: the serving API under a bounded loopback load, and the bridge plus the
kappa stream under a 10x burst. Errors and lost events are asserted; speed is only
recorded (benchmarks measure it, tests never time it)."""

from __future__ import annotations

import asyncio
import random
import re
import time
from datetime import UTC, datetime

import httpx
import pytest

from bench.archive_fixture import DEMO_TIME
from bench.bench_serving import BASE_MS, build_warehouse
from kappa.stream import stream_progress
from pipelines.events import now_ms
from pipelines.stack.private import free_port
from tests.reliability.support import (
    Procs,
    counts,
    diff,
    generator_args,
    generator_spec,
    record_summary,
    wait_until,
)

REQUESTS, CONCURRENCY, TWEETS, WINDOWS = 2_000, 20, 300, 30
BURST = [(100, 10), (1_000, 5), (100, 10)]  # (events/s, seconds): steady, 10x burst, steady


@pytest.mark.timeout(240)
def test_serving_api_answers_2000_concurrent_requests_without_an_error(tmp_path, request):
    build_warehouse(tmp_path / "warehouse", TWEETS, WINDOWS)
    port = free_port()
    procs = Procs(tmp_path / "logs")
    summary: dict = {}
    try:
        procs.start("serve", "serve", "--port", str(port), "--warehouse", str(tmp_path / "warehouse"),
                    "--state", str(tmp_path / "cutover"), "--refresh", "1s", "--log-level", "warning")  # fmt: skip
        base = f"http://127.0.0.1:{port}"
        wait_until(lambda: _healthy(base), 60, "the serving API")
        summary = asyncio.run(_load(base))
        with httpx.Client(base_url=base, trust_env=False, timeout=10) as client:
            metrics = client.get("/metrics").text
        summary["metrics_requests_total"] = _metric_sum(metrics, "requests_total")
        summary["serve_still_running"] = procs.started["serve"].poll() is None
    finally:
        procs.stop_all()
        record_summary(request, tmp_path, "serving_load", summary)
    assert summary["errors"] == 0, summary
    assert summary["ok"] == REQUESTS and summary["serve_still_running"], summary


def _healthy(base: str) -> bool:
    try:
        return httpx.get(f"{base}/healthz", trust_env=False, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


async def _load(base: str) -> dict:
    rng = random.Random(9)
    gate = asyncio.Semaphore(CONCURRENCY)
    latencies: list[float] = []
    errors: list[str] = []
    ok = [0]

    async def one(client: httpx.AsyncClient, i: int) -> None:
        tweet = rng.randrange(1, TWEETS + 1)
        first = BASE_MS + rng.randrange(WINDOWS) * DEMO_TIME.window_ms
        params = {"event_type": rng.choice(["impression", "like"])} if i % 3 else {}
        if i % 2:
            end = datetime.fromtimestamp((first + 5 * DEMO_TIME.window_ms) / 1000, tz=UTC).isoformat()
            params |= {"start": str(first), "end": end}
        async with gate:
            began = time.perf_counter()
            try:
                response = await client.get(f"/v1/tweets/{tweet}/counts", params=params)
            except httpx.HTTPError as exc:
                errors.append(f"{type(exc).__name__}: {exc}")
                return
            latencies.append(time.perf_counter() - began)
            if response.status_code != 200 or "windows" not in response.json():
                errors.append(f"{response.status_code}: {response.text[:200]}")
            else:
                ok[0] += 1

    limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30, trust_env=False) as client:
        started = time.perf_counter()
        await asyncio.gather(*(one(client, i) for i in range(REQUESTS)))
        wall = time.perf_counter() - started
    latencies.sort()
    return {
        "requests": REQUESTS,
        "concurrency": CONCURRENCY,
        "ok": ok[0],
        "errors": len(errors),
        "error_samples": errors[:5],
        "requests_per_s": round(REQUESTS / wall, 1),
        "latency_p50_ms": round(1000 * latencies[len(latencies) // 2], 2) if latencies else None,
        "latency_p99_ms": round(1000 * latencies[int(len(latencies) * 0.99)], 2) if latencies else None,
    }


def _metric_sum(text: str, name: str) -> float:
    return sum(float(m.group(1)) for m in re.finditer(rf"^\S*{name}\S* ([0-9.e+]+)$", text, re.M))


@pytest.mark.stack
@pytest.mark.slow
@pytest.mark.timeout(420)
def test_bridge_and_stream_catch_up_after_a_10x_burst_and_lose_nothing(stack_config, tmp_path, request):
    config, path = stack_config
    procs = Procs(tmp_path / "logs")
    summary: dict = {"profile_events_per_s_and_seconds": BURST}
    try:
        procs.start("bridge", "bridge", "--config", str(path))
        procs.start("kappa", "kappa", "run", "--config", str(path), "--exit-when-idle", "20",
                    "--max-runtime", "300")  # fmt: skip
        sent, burst_end = 0, 0.0
        for i, (rate, seconds) in enumerate(BURST):
            spec = generator_spec(seed=50 + i, rate=rate, start_ms=now_ms(), max_lateness_s=20.0)
            procs.start(f"generate{i}", *generator_args(spec, rate * seconds), "--config", str(path))
            assert procs.wait(f"generate{i}", 120) == 0, procs.log(f"generate{i}")[-2000:]
            sent += rate * seconds
            burst_end = time.monotonic() if i == 1 else burst_end
        generated_end = time.monotonic()
        wait_until(lambda: _kappa_read(procs) >= sent, 180, "the stream to read every record")
        caught_up = time.monotonic()
        procs.stop("bridge")
        # SIGTERM: the stream writes a pane for every event it read, then exits 0.
        assert procs.stop("kappa") == 0, procs.log("kappa")[-3000:]
        summary |= {
            "records_sent": sent,
            "stream_read_everything_s_after_burst_end": round(caught_up - burst_end, 1),
            "stream_read_everything_s_after_last_record": round(caught_up - generated_end, 1),
            "kappa_stream": procs.last_json("kappa"),
            "kappa_vs_truth": diff(
                counts(config, "kappa_stream_current"), counts(config, "truth"), config.time.window_ms
            ),  # fmt: skip
            "allowed_lateness_s": config.time.kappa_allowed_lateness,
        }
    finally:
        procs.stop_all()
        record_summary(request, tmp_path, "burst_10x", summary)
    assert summary["kappa_vs_truth"]["keys_wrong"] == 0, summary
    assert summary["kappa_stream"]["too_late"] == 0, summary


def _kappa_read(procs: Procs) -> int:
    """The stream's `read` counter from its latest progress line (logged every 5 s)."""
    return stream_progress(procs.log("kappa")).get("read", 0)
