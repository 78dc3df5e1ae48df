"""The serving API in the cloud profile: its snapshot is read from BigQuery's served views on
bqemulator (the views Terraform creates) and its cutover state from a GCS object on
fake-gcs-server; routing, shadow reads and refreshes behave as over the warehouse."""

from __future__ import annotations

import time
import uuid
from dataclasses import replace

import httpx
import pytest

from lambda_legacy.batch.destinations import bigquery_ledger_row
from migration.cutover import Stage
from migration.cutover.store import open_store
from migration.serving import ServingSettings, start_in_thread
from pipelines.beam import bigquery_row
from pipelines.bigquery_io import bigquery_client, ensure_warehouse, insert_rows
from tests.migration.serving.test_serving_api import BASE_MS, TWEETS, WINDOW_MS, aggregate_rows

pytestmark = pytest.mark.cloud


@pytest.fixture
def served(cloud, bucket):
    project = f"serving-{uuid.uuid4().hex[:8]}"
    client = bigquery_client(project, cloud.environment["BIGQUERY_EMULATOR_HOST"])
    ensure_warehouse(client, project, 60)
    batch = aggregate_rows("legacy_batch", TWEETS, lambda t, w: 1 + w)
    for row in batch:
        row["pane"], row["pane_index"] = "FINAL", 7
    period = BASE_MS - BASE_MS % 60_000
    run = {"run_id": "r1", "period_start": period, "period_end": period + 60_000, "started_at": period + 61_000,
           "finished_at": period + 62_000, "status": "FINISHED", "pane_index": 7}  # fmt: skip
    kappa = aggregate_rows("kappa_stream", TWEETS, lambda t, w: 1 + w + (t % 10 == 0))
    insert_rows(client, f"{project}.legacy.batch_runs", [bigquery_ledger_row(run)])
    for table, rows in (("legacy.legacy_batch", batch), ("kappa.kappa_stream", kappa)):
        insert_rows(client, f"{project}.{table}", [bigquery_row(r) for r in rows])
    store = open_store(f"gs://{bucket.name}/cutover")
    settings = ServingSettings(
        ".unused", WINDOW_MS, 60_000, settle_ms=0, refresh_s=0.2, bigquery_project=project
    )
    server = start_in_thread(settings, store)
    http = httpx.Client(base_url=server.url, timeout=10)
    yield server, http, store, client, project
    http.close()
    server.stop()


def _move(store, stage: Stage) -> None:
    state, generation = store.load()
    store.save(replace(state, stage=stage, seq=state.seq + 1, since_ms=int(time.time() * 1000)), generation)


def _wait(http: httpx.Client, check, what: str) -> None:
    deadline = time.monotonic() + 30
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


def test_serving_reads_bigquery_and_routes_by_the_gcs_state(served):
    server, http, store, client, project = served
    body = http.get("/v1/tweets/10/counts").json()
    assert server.service.data.last_error is None
    assert body["source"] == "legacy" and [w["count"] for w in body["windows"]] == [1, 2, 3]
    for tweet_id in range(1, 21):
        http.get(f"/v1/tweets/{tweet_id}/counts")
    server.service.shadow.drain()
    assert (server.service.shadow.stats.keys_compared, server.service.shadow.stats.keys_mismatched) == (
        63,
        9,
    )  # tweet 10 twice
    _move(store, Stage.FULL)
    _wait(http, lambda: http.get("/healthz").json()["cutover"]["stage"] == "FULL", "never saw FULL")
    assert http.get("/v1/tweets/10/counts").json()["total"] == 2 + 3 + 4  # kappa's values
    extra = aggregate_rows("kappa_stream", [9999], lambda t, w: 5)
    insert_rows(client, f"{project}.kappa.kappa_stream", [bigquery_row(r) for r in extra])
    _wait(http, lambda: http.get("/v1/tweets/9999/counts").json()["total"] == 15, "new rows never served")
