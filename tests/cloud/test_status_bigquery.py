"""The migration status and console in the cloud profile: the real `kappactl serve` on a
config with a `gcp` section reads the cutover state and audit log from the GCS state store
(fake-gcs-server), and the validation runs, arm tables and dead letters from BigQuery
(bqemulator, Terraform's tables). `GET /v1/migration/status` must say what
`kappactl cutover status --json` and `cutover history --json` say for the same config, and
hold exactly the rows inserted; a new run and a rollback show up without a restart, and an
advance from the console (--allow-actions) counts BigQuery's runs, as the CLI's gate does."""

from __future__ import annotations

import json
import subprocess
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest

from migration.cutover.controller import advance, default_actor, rollback
from migration.cutover.gate import read_bigquery_validation_runs
from migration.cutover.store import open_store
from migration.policy import load_policy
from pipelines.beam import bigquery_row
from pipelines.bigquery_io import bigquery_client, ensure_warehouse, insert_rows
from pipelines.events import now_ms
from pipelines.instants import utc_iso
from pipelines.stack.component import ROOT
from pipelines.stack.private import free_port, write_config
from pipelines.stack.processes import KAPPACTL
from tests.migration.serving.actions import console_headers
from tests.migration.serving.browser import poll
from tests.migration.serving.test_serving_api import aggregate_rows

pytestmark = pytest.mark.cloud
GATE = ("legacy_serving", "kappa_stream")
TOP = [{"window_start": "2026-01-05T00:00:00Z", "tweet_id": 7, "event_type": "like",
        "left_count": 3, "right_count": 5}]  # fmt: skip


def run_row(run_id: str, finished_ms: int, verdict: str, arms: tuple[str, str] = GATE, **extra: Any) -> dict:
    return {
        "run_id": run_id, "started_at": utc_iso(finished_ms - 1000), "finished_at": utc_iso(finished_ms),
        "verdict": verdict, "left_arm": arms[0], "right_arm": arms[1], "keys_total": 2000,
        "keys_same": 1990, "keys_explained": 6, "keys_unexplained": 0 if verdict == "PASS" else 4,
        "keys_pending": 0, "unexplained_rate": 0.0 if verdict == "PASS" else 0.002, **extra,
    }  # fmt: skip


def report_of(run_id: str, unexplained: int) -> str:
    return json.dumps({"run_id": run_id, "keys": {"unexplained": unexplained}, "top_unexplained": TOP})


class Cloud:
    """One test's BigQuery project, GCS state and config file, as `kappactl` sees them."""

    def __init__(self, cloud, bucket, tmp_path: Path):
        self.project = f"status-{uuid.uuid4().hex[:8]}"
        self.client = bigquery_client(self.project, cloud.environment["BIGQUERY_EMULATOR_HOST"])
        ensure_warehouse(self.client, self.project, 60)
        self.state = f"gs://{bucket.name}/cutover"
        self.store = open_store(self.state)
        gcp = replace(cloud.config.gcp, project=self.project, cutover_state=self.state)
        self.config = write_config(replace(cloud.config, gcp=gcp), tmp_path / "gcp.yaml")
        self.env = cloud.environment

    def insert(self, table: str, rows: list[dict]) -> None:
        insert_rows(self.client, f"{self.project}.{table}", rows)

    def kappactl(self, *args: str) -> str:
        cmd = [*KAPPACTL, *args, "--config", str(self.config)]
        done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        return done.stdout


@pytest.fixture
def served(cloud, bucket, tmp_path: Path) -> Iterator[tuple[Cloud, httpx.Client]]:
    """The filled project, a CANARY state advanced on its runs, and `kappactl serve` on it."""
    env = Cloud(cloud, bucket, tmp_path)
    fill(env, now_ms(), tmp_path / "reports")
    runs = read_bigquery_validation_runs(env.project, GATE)
    advance(env.store, load_policy(), runs, "three passes", "tester")
    port = free_port()
    cmd = [*KAPPACTL, "serve", "--config", str(env.config), "--port", str(port), "--refresh", "0.3s",
           "--allow-actions"]  # fmt: skip
    with open(tmp_path / "serve.log", "wb") as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        http = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)

        def up() -> bool:
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()
            try:
                return http.get("/healthz").status_code == 200
            except httpx.TransportError:
                return False

        try:
            poll(up, 90, "kappactl serve to answer /healthz")
            yield env, http
        finally:
            http.close()
            proc.terminate()
            proc.wait(30)


def fill(env: Cloud, t: int, reports: Path) -> None:
    """Three PASS runs of the gate arms (one with a report.html here, one with a report
    nowhere to be read, the newest with its report.json), a FAIL of other arms, arm rows in
    two tables, and dead letters: two in the last hour, one older."""
    (reports / "p2").mkdir(parents=True)
    (reports / "p2" / "report.html").write_text("<!doctype html><title>p2</title>")
    env.insert("migration.validation_runs", [
        run_row("p1", t - 300_000, "PASS", report_path="/nonexistent/p1/report.json"),
        run_row("p2", t - 200_000, "PASS", report_path=str(reports / "p2" / "report.json")),
        run_row("p3", t - 100_000, "PASS", report=report_of("p3", 0)),
        run_row("o1", t - 50_000, "FAIL", ("kappa_backfill", "kappa_stream"), report=report_of("o1", 4)),
    ])  # fmt: skip
    env.insert(
        "kappa.kappa_stream",
        [bigquery_row(r) for r in aggregate_rows("kappa_stream", range(1, 6), lambda t, w: 1)],
    )
    env.insert(
        "legacy.legacy_batch",
        [bigquery_row(r) for r in aggregate_rows("legacy_batch", range(1, 3), lambda t, w: 1)],
    )
    letters = [("kappa_stream", "unknown event_type 'zap'", t - 60_000),
               ("kappa_stream", "unknown event_type 'zip'", t - 30_000),
               ("legacy_speed", "not JSON: {", t - 7_200_000)]  # fmt: skip
    env.insert("migration.dead_letter", [
        {"pipeline": p, "error": e, "failed_at": utc_iso(at)} for p, e, at in letters
    ])  # fmt: skip


def cli_view(env: Cloud) -> tuple[dict, list[dict]]:
    status = json.loads(env.kappactl("cutover", "status", "--json"))
    history = [json.loads(line) for line in env.kappactl("cutover", "history", "--json").splitlines() if line]
    return status, history


def assert_same_as_cli(doc: dict, status: dict, history: list[dict]) -> None:
    cutover = doc["cutover"]
    assert {k: cutover[k] for k in status["state"]} == status["state"]
    assert (cutover["generation"], cutover["store"]) == (status["generation"], status["store"])
    assert cutover["gate"] == status["gate"]
    assert doc["history"] == history


def check_first_reading(env: Cloud, http: httpx.Client) -> None:
    doc = http.get("/v1/migration/status").json()
    status, history = cli_view(env)
    assert status["state"]["stage"] == "CANARY" and status["store"] == env.state
    assert [h["to_stage"] for h in history] == ["CANARY"] and history[0]["evidence"] == ["p1", "p2", "p3"]
    assert_same_as_cli(doc, status, history)
    assert doc["read_error"] is None
    runs = doc["validation"]["runs"]
    assert [(r["run_id"], r["verdict"], r["counts_for_gate"]) for r in runs] == [
        ("p1", "PASS", True), ("p2", "PASS", True), ("p3", "PASS", True), ("o1", "FAIL", False)
    ]  # fmt: skip
    assert runs[3]["keys"] == {"same": 1990, "explained": 6, "unexplained": 4, "pending": 0}
    assert [r["report_html"] for r in runs] == [None, "/v1/migration/reports/p2/report.html", None, None]
    assert http.get(runs[1]["report_html"]).text.startswith("<!doctype html><title>p2")
    report = doc["latest_report"]
    assert (report["run_id"], report["unexplained"], report["top_unexplained"]) == ("o1", 4, TOP)
    assert report["report_html"] is None  # the report.json is BigQuery's, no report.html here
    arms = {a["arm"]: a for a in doc["arms"]}
    assert list(arms) == ["legacy_batch", "legacy_speed", "kappa_stream", "kappa_backfill"]
    assert {a: arms[a]["rows"] for a in arms} == {
        "legacy_batch": 6, "legacy_speed": 0, "kappa_stream": 15, "kappa_backfill": 0
    }  # fmt: skip
    newest = max(r["window_end"] for r in aggregate_rows("kappa_stream", [1], lambda t, w: 1))
    assert arms["kappa_stream"]["newest_window_end"] == utc_iso(newest)
    assert arms["kappa_backfill"]["lag_seconds"] is None
    assert doc["dead_letters"]["by_reason"] == [
        {"pipeline": "kappa_stream", "reason": "unknown event_type", "count": 2}
    ]
    assert http.get("/console").status_code == 200


def check_a_rollback_shows(env: Cloud, http: httpx.Client) -> None:
    """A FAIL of the gate arms and a rollback: the status follows without a restart."""
    env.insert("migration.validation_runs", [run_row("f1", now_ms(), "FAIL", report=report_of("f1", 4))])
    rollback(env.store, "f1 failed", "tester")

    def changed() -> dict | None:
        doc = http.get("/v1/migration/status").json()
        return doc if doc["cutover"]["stage"] == "SHADOW" and doc["validation"]["total_runs"] == 5 else None

    doc = poll(changed, 60, "the status to show the FAIL run and the rollback")
    status, history = cli_view(env)
    assert [h["to_stage"] for h in history] == ["CANARY", "SHADOW"]
    assert_same_as_cli(doc, status, history)
    assert doc["latest_report"]["run_id"] == "f1"


def check_a_console_advance(env: Cloud, http: httpx.Client) -> None:
    """An advance from the page counts BigQuery's runs, as `kappactl cutover advance` does."""
    body = {"reason": "three passes after f1", "confirm": True}
    page = console_headers(http)  # what the console page sends: its origin and token
    assert http.post("/v1/migration/advance", json=body, headers=page).status_code == 409  # no PASS since
    at = now_ms()
    env.insert("migration.validation_runs", [run_row(f"q{i}", at + i, "PASS") for i in range(3)])
    moved = http.post("/v1/migration/advance", json=body, headers=page)
    assert moved.status_code == 200, moved.text
    status, history = cli_view(env)
    assert status["state"]["stage"] == "CANARY"
    actor = f"{default_actor()} (console)"  # the user running kappactl serve
    assert (history[-1]["actor"], history[-1]["evidence"]) == (actor, ["q0", "q1", "q2"])
    assert http.get("/v1/migration/status").json()["history"] == history


def test_status_reads_bigquery_and_the_gcs_state_as_the_cli_does(served):
    env, http = served
    check_first_reading(env, http)
    check_a_rollback_shows(env, http)
    check_a_console_advance(env, http)


def test_dropped_legacy_tables_read_as_empty_arms_and_a_missing_dataset_is_one_line(cloud, bucket, tmp_path):
    from migration.serving.status import gather
    from migration.serving.status_cloud import BigQueryMigrationSource
    from pipelines.errors import InputError

    env = Cloud(cloud, bucket, tmp_path)
    for table in ("legacy_batch", "legacy_speed"):  # Terraform's legacy_enabled = false
        env.client.delete_table(f"{env.project}.legacy.{table}")
    env.insert(
        "kappa.kappa_stream", [bigquery_row(r) for r in aggregate_rows("kappa_stream", [1], lambda t, w: 1)]
    )
    env.insert("migration.validation_runs", [run_row("p1", now_ms(), "PASS", report="not json")])
    source = BigQueryMigrationSource(env.project, env.store, env.client)
    evidence = gather(source, now_ms())
    assert [(a.arm, a.rows) for a in evidence.arms] == [
        ("legacy_batch", 0), ("legacy_speed", 0), ("kappa_stream", 3), ("kappa_backfill", 0)
    ]  # fmt: skip
    assert [r.run_id for r in evidence.runs] == ["p1"] and evidence.report is None
    with pytest.raises(InputError, match="not found") as info:
        BigQueryMigrationSource(f"nothing-{uuid.uuid4().hex[:6]}", env.store, env.client).validation_runs()
    assert "\n" not in str(info.value)
