"""The serving snapshot's incremental refresh: after every refresh both arms equal the DuckDB
views they stand for (`legacy_serving`, `kappa_stream_current`), and a refresh reads only the
segments that appeared since the previous one."""

from __future__ import annotations

import os
import random
import sys
import threading
import time

import httpx
import pytest

from lambda_legacy.merge import LEGACY_VIEWS
from migration.cutover import LocalStateStore, Stage
from migration.serving import ServingSettings, canary_bucket, start_in_thread
from migration.serving.data import BACKGROUND_NICE, Refresher, ServingData
from migration.serving.routing import KAPPA, LEGACY
from migration.serving.runs import MERGE_FACTOR
from pipelines.warehouse import Warehouse
from tests.migration.serving.test_serving_api import set_state

WINDOW_MS = 10_000
PERIOD_MS = 60_000
BASE_MS = 1_700_000_040_000 - 1_700_000_040_000 % PERIOD_MS
TWEETS = range(1, 41)
TYPES = ("like", "impression", "retweet")


def rows(pipeline: str, rng: random.Random, windows: range, pane: int, n: int, kind: str) -> list[dict]:
    out = []
    for _ in range(n):
        start = BASE_MS + rng.choice(windows) * WINDOW_MS
        out.append({
            "window_start": start, "window_end": start + WINDOW_MS, "tweet_id": rng.choice(TWEETS),
            "event_type": rng.choice(TYPES), "count": rng.randint(1, 99), "pipeline": pipeline,
            "emitted_at": start + WINDOW_MS + 1000 * pane + rng.randint(0, 999), "pane": kind,
            "pane_index": pane,
        })  # fmt: skip
    return out


def batch_run(period: int, status: str, pane: int) -> dict:
    start = BASE_MS + period * PERIOD_MS
    return {
        "run_id": f"r{period}-{pane}", "period_start": start, "period_end": start + PERIOD_MS,
        "started_at": start + PERIOD_MS, "finished_at": start + PERIOD_MS + 1, "lines_read": 0,
        "events_counted": 0, "duplicates_removed": 0, "late_dropped": 0, "dead_lettered": 0,
        "status": status, "pane_index": pane,
    }  # fmt: skip


def expected(warehouse: Warehouse, view: str) -> dict[int, list[tuple]]:
    con = warehouse.connect(WINDOW_MS, views=LEGACY_VIEWS)
    try:
        found = con.execute(
            f"SELECT tweet_id, epoch_ms(window_start), epoch_ms(window_end), event_type, count FROM {view}"
        ).fetchall()
    finally:
        con.close()
    by_tweet: dict[int, list[tuple]] = {}
    for tweet_id, *row in found:
        by_tweet.setdefault(tweet_id, []).append(tuple(row))
    return {tweet_id: sorted(values) for tweet_id, values in by_tweet.items()}


def served(data: ServingData, arm: str) -> dict[int, list[tuple]]:
    snapshot = data.snapshot
    assert snapshot is not None
    out = {}
    for tweet_id in TWEETS:
        found = [(ws, we, et, c) for ws, we, _, _, et, c in data.lookup(arm, tweet_id, snapshot)]
        if found:
            out[tweet_id] = found
    return out


def append_round(warehouse: Warehouse, rng: random.Random, step: int) -> int:
    """One round of writers: speed and kappa panes (EARLY, then higher panes), a batch run
    that starts (RUNNING rows) and, one round later, finishes; returns the rows appended."""
    windows = range(0, 6 * (step + 2))
    appended = 0
    for table, kind in (("legacy_speed", "ON_TIME"), ("kappa_stream", "EARLY"), ("kappa_stream", "LATE")):
        batch = rows(table, rng, windows, step, rng.randint(20, 120), kind)
        warehouse.append(table, batch, writer=f"t{step}")
        appended += len(batch)
    period = step // 2
    if step % 2 == 0:  # a run writes its rows and says RUNNING ...
        batch = rows("legacy_batch", rng, range(period * 6, period * 6 + 6), 10 + step, 60, "FINAL")
        warehouse.append("legacy_batch", batch)
        warehouse.append("batch_runs", [batch_run(period, "RUNNING", 10 + step)])
        appended += len(batch)
    else:  # ... and FINISHED one round later; period 0 also gets a re-run that never finishes
        warehouse.append("batch_runs", [batch_run(period, "FINISHED", 10 + step - 1)])
        if period == 0:
            batch = rows("legacy_batch", rng, range(0, 6), 90, 30, "FINAL")
            warehouse.append("legacy_batch", batch)
            appended += len(batch)
    return appended


def test_incremental_refresh_equals_the_views_after_every_round(tmp_path):
    warehouse, rng = Warehouse(tmp_path / "warehouse"), random.Random(5)
    data = ServingData(warehouse, WINDOW_MS, PERIOD_MS)
    for step in range(12):
        appended = append_round(warehouse, rng, step)
        data._build()  # what refresh_if_changed does once the duty-cycle wait is over
        snapshot = data.snapshot
        assert snapshot is not None
        assert snapshot.new_rows == appended  # only the segments of this round were read
        assert served(data, KAPPA) == expected(warehouse, "kappa_stream_current")
        assert served(data, LEGACY) == expected(warehouse, "legacy_serving")
    # runs merge geometrically: a handful per table, not one per refresh
    assert snapshot.runs <= 3 * (1 + MERGE_FACTOR)
    assert snapshot.finished_periods  # the shadow reads' finality sees the finished periods


def test_refresh_reloads_a_table_whose_segments_were_removed(tmp_path):
    warehouse, rng = Warehouse(tmp_path / "warehouse"), random.Random(8)
    data = ServingData(warehouse, WINDOW_MS, PERIOD_MS)
    append_round(warehouse, rng, 0)
    data._build()
    for segment in warehouse.segments("kappa_stream")[:1]:
        segment.unlink()
    data._build()
    assert served(data, KAPPA) == expected(warehouse, "kappa_stream_current")


@pytest.mark.parametrize("empty", [True, False])
def test_refresh_if_changed_builds_once_per_change(tmp_path, empty):
    warehouse = Warehouse(tmp_path / "warehouse")
    if not empty:
        append_round(warehouse, random.Random(1), 0)
    data = ServingData(warehouse, WINDOW_MS, PERIOD_MS)
    assert data.refresh_if_changed() and data.snapshot is not None
    assert not data.refresh_if_changed()  # nothing changed
    assert served(data, KAPPA) == ({} if empty else expected(warehouse, "kappa_stream_current"))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice values are Linux's")
def test_the_refresher_ticks_at_a_lower_cpu_priority_than_the_request_thread() -> None:
    """The refresher's ticks (snapshot refresh, console re-read) run BACKGROUND_NICE steps nicer
    than the thread that started it, so bursts of refresh work yield the CPU to requests."""
    seen: list[int] = []
    ticked = threading.Event()

    def tick() -> None:
        seen.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))
        ticked.set()

    requests_nice = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    refresher = Refresher(0.01, tick)
    refresher.start()
    try:
        assert ticked.wait(30), "the refresher never ticked"
    finally:
        refresher.stop()
        refresher.join(30)
    assert seen[0] == min(requests_nice + BACKGROUND_NICE, 19)  # 19 is the nicest there is
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == requests_nice  # only that thread


def test_stopping_the_refresher_waits_for_the_tick_under_way() -> None:
    """A server's stop returns only once its refresher is out of its tick: a daemon thread
    still inside DuckDB when the interpreter exits aborts the process."""
    in_tick, release = threading.Event(), threading.Event()

    def tick() -> None:
        in_tick.set()
        release.wait(60)

    refresher = Refresher(0.01, tick)
    refresher.start()
    assert in_tick.wait(30), "the refresher never ticked"
    stopper = threading.Thread(target=refresher.stop)
    stopper.start()
    stopper.join(1)
    assert stopper.is_alive(), "stop() returned while a tick was still running"
    release.set()
    stopper.join(30)
    assert not stopper.is_alive() and not refresher.is_alive()


def round_rows(pipeline: str, round_: int, tweets: range) -> list[dict]:
    """Round r writes window r of every tweet, count r + 1 (a read shows which rounds it saw)."""
    start = BASE_MS + round_ * WINDOW_MS
    return [{
        "window_start": start, "window_end": start + WINDOW_MS, "tweet_id": t, "event_type": "like",
        "count": round_ + 1, "pipeline": pipeline, "emitted_at": start + WINDOW_MS + 1000, "pane": "ON_TIME",
        "pane_index": 0,
    } for t in tweets]  # fmt: skip


def rounds_seen(body: dict) -> int:
    """How many rounds a read shows; AssertionError unless it is exactly rounds 0..k-1."""
    windows = body["windows"]
    counts = [w["count"] for w in windows]
    assert counts == list(range(1, len(windows) + 1)), f"not a whole number of rounds: {counts}"
    assert body["total"] == sum(counts)
    return len(windows)


def test_a_live_server_answers_every_read_consistently_while_segments_land_and_refresh(tmp_path):
    """Reads on three connections never stop while eight rounds of segments land in both arms
    and the server refreshes after each: every read is a 200 routed by the state, shows whole
    rounds of its arm only (rounds 0..k-1, never a torn one), never goes back to fewer rounds,
    and every round is seen by reads before the next one is written."""
    tweets, rounds, readers = range(1, 21), 8, 3
    warehouse = Warehouse(tmp_path / "warehouse")
    for table in ("legacy_speed", "kappa_stream"):
        warehouse.append(table, round_rows(table, 0, tweets))
    store = LocalStateStore(tmp_path / "cutover")
    set_state(store, Stage.CANARY, 50)  # both arms serve reads
    server = start_in_thread(ServingSettings(warehouse.root, WINDOW_MS, PERIOD_MS, 0, refresh_s=0.05), store)
    newest = [0]  # the newest round written to both arms
    seen = [[0] * len(tweets) for _ in range(readers)]  # per reader and tweet: rounds last seen
    failures: list[str] = []
    done = threading.Event()

    def read(n: int) -> None:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            while not done.is_set():
                for i, tweet in enumerate(tweets):
                    try:
                        response = http.get(f"/v1/tweets/{tweet}/counts")
                        assert response.status_code == 200, response.text
                        body = response.json()
                        assert body["source"] == ("kappa" if canary_bucket(tweet) < 50 else "legacy")
                        k = rounds_seen(body)
                        assert seen[n][i] <= k <= newest[0] + 1, f"tweet {tweet}: {seen[n][i]} -> {k} rounds"
                    except (AssertionError, httpx.HTTPError) as exc:
                        failures.append(f"reader {n}: {exc}")
                        done.set()
                        return
                    seen[n][i] = k

    threads = [threading.Thread(target=read, args=(n,)) for n in range(readers)]
    for thread in threads:
        thread.start()
    try:
        for r in range(1, rounds + 1):
            # every reader has seen the previous round on every tweet: now write the next one
            poll_until(lambda r=r: failures or all(min(s) >= r for s in seen), f"round {r - 1} read", r)
            assert not failures, failures
            newest[0] = r
            for table in ("legacy_speed", "kappa_stream"):
                warehouse.append(table, round_rows(table, r, tweets), writer=f"r{r}")
        poll_until(lambda: failures or all(min(s) > rounds for s in seen), "the last round read", rounds)
    finally:
        done.set()
        for thread in threads:
            thread.join(60)
        server.stop()
    assert not failures, failures
    snapshot = server.service.data.snapshot
    assert snapshot is not None and snapshot.rows == {"legacy": 20 * (rounds + 1), "kappa": 20 * (rounds + 1)}


def poll_until(check, what: str, round_: int, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what} (round {round_})"
        time.sleep(0.01)
