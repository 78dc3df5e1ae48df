"""The operators' tools in deploy/: the Prometheus rules pass `promtool check rules` and their
unit tests (`promtool test rules`), and every metric the rules and the Grafana dashboard
query is one the serving API really exports on /metrics."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from migration.cutover import LocalStateStore
from migration.serving import ServingSettings, start_in_thread
from pipelines.events import BadRecord
from pipelines.warehouse import Warehouse

REPO = Path(__file__).resolve().parents[3]
RULES = REPO / "deploy" / "prometheus" / "migration-rules.yml"
RULE_TESTS = REPO / "deploy" / "prometheus" / "migration-rules.test.yml"
DASHBOARD = REPO / "deploy" / "grafana" / "kappa-migration.json"
METRIC = re.compile(r"\bkappa_serving_[a-z_]+\b")


def promtool() -> str:
    found = shutil.which("promtool")
    if found:
        return found
    message = "promtool is missing: apt-get install -y prometheus (Debian's package ships it; .ci/run does)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=RULES.parent, capture_output=True, text=True, timeout=120)


def test_promtool_checks_the_rules() -> None:
    result = run(promtool(), "check", "rules", RULES.name)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 4 rules found" in result.stdout


def test_promtool_unit_tests_the_rules() -> None:
    result = run(promtool(), "test", "rules", RULE_TESTS.name)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def queried_metrics() -> set[str]:
    names = set(METRIC.findall(RULES.read_text()))
    dashboard = json.loads(DASHBOARD.read_text())
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            names |= set(METRIC.findall(target["expr"]))
    return names


def test_rules_and_dashboard_query_only_metrics_the_api_exports(tmp_path: Path) -> None:
    now = int(time.time() * 1000)
    warehouse = Warehouse(tmp_path / "warehouse")
    window = now - now % 10_000 - 60_000
    for arm in ("legacy_batch", "kappa_stream"):
        warehouse.append(arm, [{
            "window_start": window, "window_end": window + 10_000, "tweet_id": 7, "event_type": "like",
            "count": 3, "pipeline": arm, "emitted_at": now, "pane": "FINAL", "pane_index": 0,
        }])  # fmt: skip
    warehouse.append("validation_runs", [{
        "run_id": "v1", "started_at": now - 2000, "finished_at": now - 1000, "verdict": "FAIL",
        "left_arm": "legacy_serving", "right_arm": "kappa_stream", "reference_arm": None, "keys_total": 10,
        "keys_final": 10, "keys_unexplained": 2, "unexplained_rate": 0.2, "report_path": None,
    }])  # fmt: skip
    warehouse.append_dead_letters([BadRecord(b"{", "not JSON: x", "kappa_stream", now - 1000)])
    settings = ServingSettings(warehouse.root, 10_000, 60_000, settle_ms=0, refresh_s=0.2)
    server = start_in_thread(settings, LocalStateStore(tmp_path / "cutover"))
    try:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            assert client.get("/v1/tweets/7/counts").status_code == 200  # a read and a shadow read
            server.service.shadow.drain()
            assert client.get("/v1/migration/status").json()["validation"]["runs"][0]["verdict"] == "FAIL"
            exported = client.get("/metrics").text
    finally:
        server.stop()
    names = {line.split("{")[0].split(" ")[0] for line in exported.splitlines() if not line.startswith("#")}
    missing = queried_metrics() - names
    assert not missing, f"queried but not exported: {sorted(missing)}"
    assert 'kappa_serving_migration_validation_last_verdict{verdict="FAIL"} 1' in exported
    assert (
        'kappa_serving_migration_dead_letters_last_hour{pipeline="kappa_stream",reason="not JSON"} 1'
        in exported
    )
    lag = re.search(r'kappa_serving_migration_arm_lag_seconds\{arm="kappa_stream"\} ([0-9.e+]+)', exported)
    assert lag and 50 <= float(lag.group(1)) <= 600  # the window ended about 50 s ago
