"""A cutover state file that cannot be read does not take the reads down: a real server on
a free loopback port and a real state folder whose state.json is torn, hand-edited and
fixed again. Reads keep being routed by the last good state, /healthz says 503 with the
reason while the file is bad, and everything recovers once it is fixed."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Callable

import httpx
import pytest

from migration.cutover import LocalStateStore, Stage
from migration.serving import ServingSettings, canary_bucket, start_in_thread
from pipelines.warehouse import Warehouse
from tests.migration.serving.actions import metric
from tests.migration.serving.test_serving_api import aggregate_rows, set_state

TWEETS = range(1, 101)
KAPPA_TWEET = next(t for t in TWEETS if canary_bucket(t) < 30)  # kappa serves it at CANARY(30%)


def state_bytes(folder: Path, stage: Stage, percent: int | None = None) -> bytes:
    """A good state.json, written by the real store."""
    store = LocalStateStore(folder)
    set_state(store, stage, percent)
    return store.state_path.read_bytes()


def hand_edited(good: bytes, **fields: Any) -> bytes:
    raw = json.loads(good)
    raw["state"].update(fields)
    return json.dumps(raw).encode()


def until(check: Callable[[], Any], what: str, timeout_s: float = 60) -> Any:
    deadline = time.monotonic() + timeout_s
    while not (value := check()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)
    return value


@pytest.fixture
def warehouse(tmp_path: Path) -> Warehouse:
    wh = Warehouse(tmp_path / "warehouse")
    for arm in ("legacy_speed", "kappa_stream"):
        wh.append(arm, aggregate_rows(arm, TWEETS, lambda t, w: 1 + w))
    return wh


def serve(warehouse: Warehouse, state: Path):
    settings = ServingSettings(warehouse.root, 10_000, 60_000, settle_ms=0, refresh_s=0.2)
    return start_in_thread(settings, LocalStateStore(state))


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param(lambda good: good[: len(good) // 2], id="torn"),
        pytest.param(lambda good: b"", id="empty"),
        pytest.param(lambda good: b"\xff\xfe" + good, id="not-utf8"),
        pytest.param(lambda good: b"[" * 30_000, id="deeply-nested"),
        pytest.param(lambda good: hand_edited(good, canary_percent="50"), id="percent-as-text"),
        pytest.param(lambda good: hand_edited(good, canary_percent=250), id="percent-over-100"),
        pytest.param(lambda good: hand_edited(good, stage="HALFWAY"), id="unknown-stage"),
    ],
)
def test_reads_keep_the_last_good_state_while_state_json_is_bad(warehouse, tmp_path, bad) -> None:
    state_dir = tmp_path / "cutover"
    good = state_bytes(state_dir, Stage.CANARY, 30)
    server = serve(warehouse, state_dir)
    try:
        with httpx.Client(base_url=server.url, timeout=10) as http:
            assert http.get(f"/v1/tweets/{KAPPA_TWEET}/counts").headers["x-served-by"] == "kappa"
            assert http.get("/healthz").status_code == 200
            (state_dir / "state.json").write_bytes(bad(good))

            health = until(
                lambda: (r := http.get("/healthz")).status_code == 503 and r, "a 503 from /healthz"
            )
            body = health.json()
            assert body["status"] == "cutover_state_unreadable" and "last good" in body["cutover_error"]
            assert body["cutover"] == {"state": "CANARY(30%)", "stage": "CANARY", "seq": 1}
            for tweet in TWEETS:  # every read answered, routed as before the file broke
                read = http.get(f"/v1/tweets/{tweet}/counts")
                assert read.status_code == 200, read.text
                assert read.json()["source"] == ("kappa" if canary_bucket(tweet) < 30 else "legacy")
                assert read.json()["state"] == "CANARY" and read.json()["total"] == 6
            assert metric(http.get("/metrics").text, "kappa_serving_cutover_state_unreadable") == 1

            # fixed (here: someone restores it as FULL): the reads follow, /healthz is 200 again
            (state_dir / "state.json").write_bytes(state_bytes(tmp_path / "scratch", Stage.FULL))
            until(lambda: http.get("/healthz").status_code == 200, "/healthz to recover")
            assert http.get("/v1/tweets/1/counts").json()["source"] == "kappa"
            assert http.get("/healthz").json()["cutover_error"] is None
            assert metric(http.get("/metrics").text, "kappa_serving_cutover_state_unreadable") == 0
    finally:
        server.stop()


def test_a_server_started_on_a_bad_state_answers_503_until_it_is_fixed(warehouse, tmp_path) -> None:
    """No good state was ever read: routing by a guess could serve the wrong arm."""
    state_dir = tmp_path / "cutover"
    good = state_bytes(state_dir, Stage.FULL)
    (state_dir / "state.json").write_bytes(good[:7])
    server = serve(warehouse, state_dir)
    try:
        with httpx.Client(base_url=server.url, timeout=10) as http:
            read = http.get("/v1/tweets/1/counts")
            assert read.status_code == 503 and "no cutover state" in read.json()["error"]
            health = http.get("/healthz")
            assert health.status_code == 503 and health.json()["cutover"] is None
            assert "state.json" in health.json()["cutover_error"]
            (state_dir / "state.json").write_bytes(good)
            until(lambda: http.get("/healthz").status_code == 200, "/healthz to recover")
            assert http.get("/v1/tweets/1/counts").headers["x-served-by"] == "kappa"
    finally:
        server.stop()
