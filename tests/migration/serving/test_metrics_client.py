"""/metrics as prometheus_client writes it: a live scrape parsed by prometheus_client's own
parser (types, label sets, histogram buckets), label values of any text round-tripping, and
every expression of the Grafana dashboard naming only series the server exports (each
expression also parses as PromQL: promtool checks it as a recording rule)."""

from __future__ import annotations

import json
import math
import re
import subprocess
from pathlib import Path
from typing import Iterator

import httpx
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from migration.policy import load_policy
from migration.serving import ServingSettings, start_in_thread
from migration.serving.metrics import CONTENT_TYPE, LATENCY_BUCKETS, Metrics
from pipelines.events import BadRecord
from tests.migration.serving.gate_evidence import Evidence, now_ms
from tests.migration.serving.test_operator_tools import DASHBOARD, promtool

PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless",
                "bool", "offset", "inf", "nan"}  # fmt: skip


@pytest.fixture(scope="module")
def scrape(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[httpx.Response, list]]:
    """One scrape of a server that served reads, a 400 and a 404, with a FAIL run and a dead letter."""
    evidence = Evidence(tmp_path_factory.mktemp("metrics"))
    evidence.run("FAIL", unexplained=4)
    evidence.warehouse.append_dead_letters([BadRecord(b"{", "not JSON: x", "kappa_stream", now_ms() - 1000)])
    settings = ServingSettings(evidence.warehouse.root, 10_000, 60_000, settle_ms=0, refresh_s=0.2,
                               policy=load_policy(evidence.policy_path))  # fmt: skip
    server = start_in_thread(settings, evidence.store)
    try:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            assert client.get("/v1/tweets/7/counts").status_code == 200
            assert client.get("/v1/tweets/x/counts").status_code == 400
            assert client.get("/nowhere").status_code == 404
            server.service.shadow.drain()
            assert client.get("/v1/migration/status").status_code == 200  # the console's first read
            response = client.get("/metrics")
    finally:
        server.stop()
    yield response, list(text_string_to_metric_families(response.text))


def families_by_name(families: list) -> dict:
    return {f.name: f for f in families}


def test_a_scrape_is_prometheus_text_that_its_own_parser_reads(scrape) -> None:
    response, families = scrape
    assert response.headers["content-type"] == CONTENT_TYPE == "text/plain; version=0.0.4; charset=utf-8"
    by_name = families_by_name(families)
    assert len(by_name) == len(families)  # each family once
    assert by_name["kappa_serving_requests"].type == "counter"
    requests = {
        (s.labels["route"], s.labels["status"]): s.value for s in by_name["kappa_serving_requests"].samples
    }
    assert requests[("/v1/tweets/{tweet_id}/counts", "200")] == 1
    assert requests[("/v1/tweets/{tweet_id}/counts", "400")] == 1 and requests[("unmatched", "404")] == 1
    assert all(s.name == "kappa_serving_requests_total" for s in by_name["kappa_serving_requests"].samples)
    stages = {s.labels["stage"]: s.value for s in by_name["kappa_serving_cutover_stage"].samples}
    assert stages == {"SHADOW": 1, "CANARY": 0, "FULL": 0, "DECOMMISSIONED": 0}
    assert by_name["kappa_serving_cutover_state_unreadable"].documentation.startswith(
        "1 while the cutover state"
    )
    verdicts = {
        s.labels["verdict"]: s.value
        for s in by_name["kappa_serving_migration_validation_last_verdict"].samples
    }
    assert verdicts == {"PASS": 0, "FAIL": 1, "INCONCLUSIVE": 0}
    assert by_name["kappa_serving_migration_gate_verdict"].type == "gauge"


def test_the_latency_histogram_has_cumulative_buckets_per_route(scrape) -> None:
    _, families = scrape
    histogram = families_by_name(families)["kappa_serving_request_duration_seconds"]
    assert histogram.type == "histogram"
    routes: dict[str, list[Sample]] = {}
    for sample in histogram.samples:
        routes.setdefault(sample.labels["route"], []).append(sample)
    assert {"/v1/tweets/{tweet_id}/counts", "unmatched", "/v1/migration/status"} <= set(routes)
    for route, samples in routes.items():
        buckets = [(float(s.labels["le"]), s.value) for s in samples if s.name.endswith("_bucket")]
        assert [b for b, _ in buckets] == [*LATENCY_BUCKETS, math.inf], route
        counts = [n for _, n in buckets]
        assert counts == sorted(counts), route  # cumulative
        (count,) = [s.value for s in samples if s.name.endswith("_count")]
        (total,) = [s.value for s in samples if s.name.endswith("_sum")]
        assert counts[-1] == count >= 1 and total > 0, route


label_text = st.text(st.characters(exclude_categories=["Cs"]), max_size=30)


@pytest.mark.fuzz
@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(label_text, st.floats(allow_nan=False, width=64)), min_size=1, max_size=5))
def test_any_label_value_and_number_round_trips(series: list[tuple[str, float]]) -> None:
    metrics = Metrics()
    for i, (value, number) in enumerate(series):
        metrics.set("probe", number, arm=value, n=str(i))
        metrics.inc("hits_total", abs(number), arm=value, n=str(i))
    parsed = families_by_name(list(text_string_to_metric_families(metrics.render())))
    gauge, counter = parsed["kappa_serving_probe"], parsed["kappa_serving_hits"]
    assert (gauge.type, counter.type) == ("gauge", "counter")
    assert {(s.labels["arm"], s.labels["n"]): s.value for s in gauge.samples} == {
        (v, str(i)): n for i, (v, n) in enumerate(series)
    }
    assert {s.labels["n"]: s.value for s in counter.samples} == {
        str(i): abs(n) for i, (_, n) in enumerate(series)
    }


def dashboard_expressions() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]


def series_named(expr: str) -> set[str]:
    """The series names an expression selects (not its functions, keywords or label names)."""
    text = re.sub(r'"(?:\\.|[^"\\])*"', "", expr)  # string literals
    text = re.sub(r"\{[^}]*\}|\[[^\]]*\]", " ", text)  # label matchers, ranges
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    names = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", text):
        following = text[match.end() :].lstrip()[:1]
        if following != "(" and match.group().lower() not in PROMQL_WORDS:
            names.add(match.group())
    return names


def test_the_expression_parser_finds_the_series() -> None:
    expr = 'histogram_quantile(0.99, sum by (le, route) (rate(x_bucket{a="b)"}[5m]))) / on () max(y) > bool 2'
    assert series_named(expr) == {"x_bucket", "y"}


def test_every_dashboard_expression_names_only_exported_series(scrape, tmp_path: Path) -> None:
    _, families = scrape
    exported = {s.name for f in families for s in f.samples}
    expressions = dashboard_expressions()
    assert len(expressions) >= 15
    for expr in expressions:
        named = series_named(expr)
        assert named, expr
        assert named <= exported, f"{expr}: not exported: {sorted(named - exported)}"
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:expr{i}", "expr": expr} for i, expr in enumerate(expressions)]}]}  # fmt: skip
    path = tmp_path / "dashboard-rules.yml"
    path.write_text(yaml.safe_dump(rules))
    checked = subprocess.run(
        [promtool(), "check", "rules", str(path)], capture_output=True, text=True, timeout=120
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(expressions)} rules found" in checked.stdout
