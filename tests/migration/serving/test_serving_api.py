"""The serving API over real HTTP: a uvicorn server on a free loopback port, httpx client,
a temporary Parquet warehouse and a real local cutover state file."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from migration.cutover import CutoverState, LocalStateStore, Stage, read_shadow_stats
from migration.serving import ServingSettings, canary_bucket, start_in_thread
from pipelines.warehouse import Warehouse

WINDOW_MS = 10_000
BASE_MS = 1_700_000_000_000  # long settled windows
TWEETS = range(1, 401)
WINDOWS = 3


def aggregate_rows(pipeline: str, tweets, count_of) -> list[dict]:
    rows = []
    for tweet_id in tweets:
        for w in range(WINDOWS):
            start = BASE_MS + w * WINDOW_MS
            rows.append({
                "window_start": start, "window_end": start + WINDOW_MS, "tweet_id": tweet_id,
                "event_type": "like", "count": count_of(tweet_id, w), "pipeline": pipeline,
                "emitted_at": start + WINDOW_MS + 5000, "pane": "ON_TIME", "pane_index": 0,
            })  # fmt: skip
    return rows


def set_state(store: LocalStateStore, stage: Stage, percent: int | None = None) -> CutoverState:
    state, generation = store.load()
    new = replace(
        state, stage=stage, canary_percent=percent, seq=state.seq + 1, since_ms=int(time.time() * 1000)
    )
    store.save(new, generation)
    return new


@pytest.fixture(scope="module")
def warehouse_template(tmp_path_factory) -> Path:
    """The test data, written once; each test serves its own copy (`env`)."""
    warehouse = Warehouse(tmp_path_factory.mktemp("serving") / "warehouse")
    # legacy is batch-served (its period has a FINISHED run); kappa agrees except on every
    # 10th tweet. Shadow reads compare only batch-served legacy values (Finality).
    batch = aggregate_rows("legacy_batch", TWEETS, lambda t, w: 1 + w)
    for row in batch:
        row["pane"], row["pane_index"] = "FINAL", 7
    warehouse.append("legacy_batch", batch)
    period = BASE_MS - BASE_MS % 60_000
    warehouse.append("batch_runs", [{
        "run_id": "r1", "period_start": period, "period_end": period + 60_000, "started_at": period + 61_000,
        "finished_at": period + 62_000, "lines_read": 0, "events_counted": 0, "duplicates_removed": 0,
        "late_dropped": 0, "dead_lettered": 0, "status": "FINISHED", "pane_index": 7,
    }])  # fmt: skip
    warehouse.append(
        "kappa_stream", aggregate_rows("kappa_stream", TWEETS, lambda t, w: 1 + w + (t % 10 == 0))
    )
    return Path(warehouse.root)


@pytest.fixture
def env(warehouse_template: Path, tmp_path: Path):
    """A server of its own per test (its own warehouse copy, cutover state, shadow stats and
    metrics): no test depends on what another did, nor on the order they run in."""
    warehouse = Warehouse(shutil.copytree(warehouse_template, tmp_path / "warehouse"))
    store = LocalStateStore(tmp_path / "cutover")
    settings = ServingSettings(warehouse.root, WINDOW_MS, 60_000, settle_ms=0, refresh_s=0.2)
    server = start_in_thread(settings, store)
    client = httpx.Client(base_url=server.url, timeout=10)
    yield server, client, store, warehouse
    client.close()
    server.stop()


def served_by(client: httpx.Client, tweet_id: int) -> str:
    response = client.get(f"/v1/tweets/{tweet_id}/counts")
    assert response.status_code == 200, response.text
    assert response.headers["x-served-by"] == response.json()["source"]
    return response.json()["source"]


def wait_for_state(client: httpx.Client, stage: Stage) -> None:
    deadline = time.monotonic() + 60
    while client.get("/healthz").json()["cutover"]["stage"] != stage.value:
        assert time.monotonic() < deadline, f"server never saw {stage}"
        time.sleep(0.05)


def test_shadow_serves_legacy_and_counts_shadow_mismatches(env):
    server, client, store, _ = env
    state = set_state(store, Stage.SHADOW)
    wait_for_state(client, Stage.SHADOW)
    body = client.get("/v1/tweets/10/counts").json()
    assert body["source"] == "legacy" and body["state"] == "SHADOW"
    assert [w["count"] for w in body["windows"]] == [1, 2, 3] and body["total"] == 6
    assert body["windows"][0] == {
        "window_start": "2023-11-14T22:13:20.000Z", "window_end": "2023-11-14T22:13:30.000Z",
        "event_type": "like", "count": 1,
    }  # fmt: skip
    for tweet_id in range(1, 100):
        assert served_by(client, tweet_id) == "legacy"
    server.service.shadow.drain()
    stats = server.service.shadow.stats
    assert (stats.seq, stats.reads, stats.keys_compared, stats.keys_mismatched) == (state.seq, 100, 300, 30)
    server.service.shadow.flush()
    on_disk = read_shadow_stats(store.directory)
    assert on_disk.keys_mismatched == 30 and on_disk.mismatch_rate == pytest.approx(0.1)
    metrics = client.get("/metrics").text
    assert 'kappa_serving_shadow_keys_mismatched_total{primary="legacy",shadow="kappa"} 30' in metrics
    assert 'kappa_serving_shadow_mismatched_reads_total{primary="legacy",shadow="kappa"} 10' in metrics


def test_canary_split_is_stable_and_close_to_p(env):
    _, client, store, _ = env
    set_state(store, Stage.CANARY, 30)
    wait_for_state(client, Stage.CANARY)
    ids = range(1, 1501)
    sources = {t: served_by(client, t) for t in ids}
    assert all((sources[t] == "kappa") == (canary_bucket(t) < 30) for t in ids)
    share = sum(s == "kappa" for s in sources.values()) / len(ids)
    assert 0.26 < share < 0.34, share
    assert all(served_by(client, t) == sources[t] for t in range(1, 200))  # same answer again
    kappa_tweet = next(t for t in TWEETS if t % 10 == 0 and sources[t] == "kappa")
    assert [w["count"] for w in client.get(f"/v1/tweets/{kappa_tweet}/counts").json()["windows"]] == [2, 3, 4]


def test_full_serves_kappa_and_decommissioned_stops_shadow_reads(env):
    server, client, store, _ = env
    set_state(store, Stage.FULL)
    wait_for_state(client, Stage.FULL)
    assert {served_by(client, t) for t in range(1, 50)} == {"kappa"}
    server.service.shadow.drain()
    assert server.service.shadow.stats.reads == 49
    set_state(store, Stage.DECOMMISSIONED)
    wait_for_state(client, Stage.DECOMMISSIONED)
    before = server.service.metrics.counter("shadow_reads_total", primary="kappa", shadow="legacy")
    assert {served_by(client, t) for t in range(1, 50)} == {"kappa"}
    server.service.shadow.drain()
    assert server.service.metrics.counter("shadow_reads_total", primary="kappa", shadow="legacy") == before


def test_filters_by_event_type_and_time(env):
    _, client, _, _ = env
    start, end = BASE_MS + WINDOW_MS, BASE_MS + 2 * WINDOW_MS
    body = client.get("/v1/tweets/7/counts", params={"start": start, "end": end}).json()
    assert [w["window_start"] for w in body["windows"]] == ["2023-11-14T22:13:30.000Z"]
    iso = client.get(
        "/v1/tweets/7/counts", params={"start": "2023-11-14T22:13:30Z", "end": "2023-11-14T22:13:40+00:00"}
    )
    assert iso.json()["windows"] == body["windows"]
    assert client.get("/v1/tweets/7/counts", params={"event_type": "retweet"}).json()["windows"] == []
    assert client.get("/v1/tweets/999999/counts").json()["windows"] == []


@pytest.mark.parametrize(
    ("path", "params", "words"),
    [
        ("/v1/tweets/abc/counts", {}, "tweet_id"),
        ("/v1/tweets/-4/counts", {}, "tweet_id"),
        ("/v1/tweets/0/counts", {}, "tweet_id"),
        ("/v1/tweets/99999999999999999999/counts", {}, "tweet_id"),
        ("/v1/tweets/1/counts", {"event_type": "poke"}, "event_type"),
        ("/v1/tweets/1/counts", {"start": "yesterday"}, "start"),
        ("/v1/tweets/1/counts", {"end": "2026-13-45T00:00:00Z"}, "end"),
        ("/v1/tweets/1/counts", {"start": "2000", "end": "1000"}, "after end"),
        ("/v1/tweets/1/counts", {"since": "1"}, "unknown query parameter"),
    ],
)
def test_bad_parameters_get_400_with_a_json_error(env, path, params, words):
    _, client, _, _ = env
    response = client.get(path, params=params)
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/json"
    assert words in response.json()["error"] and response.json()["type"] == "InputError"


def test_unknown_route_is_a_json_404_and_metrics_count_it(env):
    _, client, store, _ = env
    set_state(store, Stage.FULL)
    wait_for_state(client, Stage.FULL)
    assert served_by(client, 1) == "kappa"
    assert client.get("/v1/tweets/abc/counts").status_code == 400
    response = client.get("/v2/whatever")
    assert response.status_code == 404 and "error" in response.json()
    metrics = client.get("/metrics").text
    assert 'kappa_serving_requests_total{route="unmatched",status="404"}' in metrics
    assert 'kappa_serving_requests_total{route="/v1/tweets/{tweet_id}/counts",status="400"}' in metrics
    assert (
        'kappa_serving_request_duration_seconds_bucket{le="+Inf",route="/v1/tweets/{tweet_id}/counts"}'
        in metrics
    )
    assert 'kappa_serving_reads_total{source="kappa",stage="FULL"}' in metrics
    assert "# TYPE kappa_serving_request_duration_seconds histogram" in metrics


def test_new_segments_are_served_after_a_refresh(env):
    _, client, store, warehouse = env
    set_state(store, Stage.FULL)  # kappa serves every tweet
    wait_for_state(client, Stage.FULL)
    assert client.get("/v1/tweets/5000/counts").json()["windows"] == []
    warehouse.append("kappa_stream", aggregate_rows("kappa_stream", [5000], lambda t, w: 7))
    deadline = time.monotonic() + 60
    while not (windows := client.get("/v1/tweets/5000/counts").json()["windows"]):
        assert time.monotonic() < deadline, "new segment never served"
        time.sleep(0.1)
    assert [w["count"] for w in windows] == [7, 7, 7]
    health = client.get("/healthz").json()
    assert health["status"] == "ok" and health["snapshot"]["legacy_view"] == "legacy_serving"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_kappactl_serve_runs_on_loopback(tmp_path: Path):
    port = free_port()
    kappactl = Path(sys.executable).with_name("kappactl")
    cmd = [
        str(kappactl),
        "serve",
        "--port",
        str(port),
        "--warehouse",
        str(tmp_path / "wh"),
        "--log-level",
        "warning",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ})
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).json()
                break
            except httpx.TransportError:
                assert proc.poll() is None, proc.stderr.read().decode()
                assert time.monotonic() < deadline
                time.sleep(0.2)
        assert health["cutover"]["stage"] == "SHADOW" and health["snapshot"]["rows"] == {
            "legacy": 0,
            "kappa": 0,
        }
        response = httpx.get(f"http://127.0.0.1:{port}/v1/tweets/1/counts", timeout=5)
        assert response.status_code == 200 and json.loads(response.text)["windows"] == []
    finally:
        proc.terminate()
        proc.wait(timeout=30)


HOSTILE = [
    ("/v1/tweets/%C2%B2/counts", "tweet_id"),  # "²": str.isdigit() is true, int() fails
    ("/v1/tweets/%D9%A1%D9%A2/counts", "tweet_id"),  # Arabic-Indic "12": ASCII digits only
    ("/v1/tweets/%EF%BC%91/counts", "tweet_id"),  # a fullwidth "1"
    ("/v1/tweets/" + "1" * 4301 + "/counts", "tweet_id"),  # over int()'s 4,300-digit limit
    ("/v1/tweets/9223372036854775808/counts", "tweet_id"),  # 2**63
    ("/v1/tweets/1/counts?start=100000000000000000000", "start"),  # beyond int64 and datetime
    ("/v1/tweets/1/counts?start=" + "1" * 4301, "start"),
    ("/v1/tweets/1/counts?end=253402300800000", "end"),  # 10000-01-01: past datetime's range
    ("/v1/tweets/1/counts?start=-62135596800001", "start"),  # just before 0001-01-01
    ("/v1/tweets/1/counts?start=0001-01-01T00:00:00%2B01:00", "start"),  # before year 1 in UTC
    ("/v1/tweets/1/counts?start=%D9%A1%D9%A2", "start"),  # Arabic-Indic digits as epoch ms
    ("/v1/tweets/1/counts?start=1&start=2", "more than once"),  # which one? neither: 400
    ("/v1/tweets/1/counts?event_type=like&event_type=retweet", "more than once"),
    ("/v1/tweets/1/counts?" + "x" * 5000 + "=1", "unknown query parameter"),
]


def keep_alive_get(conn: http.client.HTTPConnection, path: str) -> tuple[int, dict, tuple]:
    """GET on an open keep-alive connection: (status, JSON body, the socket's local address)."""
    conn.request("GET", path)
    response = conn.getresponse()
    body = json.loads(response.read())
    assert conn.sock is not None and not response.will_close, f"{path[:80]}: the server closed the connection"
    return response.status, body, conn.sock.getsockname()


@pytest.mark.parametrize(("path", "words"), HOSTILE, ids=[p[:60] for p, _ in HOSTILE])
def test_hostile_values_get_400_and_keep_the_connection(env, path, words):
    server, _, _, _ = env
    host, port = server.url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        status, body, local = keep_alive_get(conn, path)
        assert (status, body["type"]) == (400, "InputError") and words in body["error"], body
        assert len(body["error"]) < 300  # the value is cut, not echoed whole
        status, body, again = keep_alive_get(conn, "/v1/tweets/12/counts")  # the same connection
        assert status == 200 and body["tweet_id"] == 12 and again == local
    finally:
        conn.close()


def test_the_ends_of_the_representable_range_are_served(env):
    _, client, _, _ = env
    body = client.get("/v1/tweets/7/counts", params={"start": -62135596800000, "end": 253402300799999}).json()
    assert (body["start"], body["end"]) == ("0001-01-01T00:00:00.000Z", "9999-12-31T23:59:59.999Z")
    assert body["total"] == 6
