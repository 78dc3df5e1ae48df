"""GET /v1/migration/gate and the gate's webhooks, on a serving API over a real warehouse and
cutover state: the document follows what the cutover controller decides, Flagger's payload
gets 200 for yes and 409 for no (Flagger's client takes 200-202 as success, anything else
as not yet or a failed check), and the gate's figures are gauges on /metrics."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from migration.cutover import advance
from migration.cutover.controller import evaluate
from migration.policy import load_policy
from migration.serving import ServingSettings, start_in_thread
from migration.serving.gate_api import GATE_SCHEMA, MAX_HOOK_BODY_BYTES
from tests.migration.serving.gate_evidence import Evidence

# The keys of the document: a tool's jsonPath must not break between releases.
DOCUMENT_KEYS = {
    "schema", "verdict", "advance_allowed", "rollback", "decision", "reason", "automatic_rollback",
    "state", "consecutive_passes", "passes_needed", "evidence", "verdicts", "runs", "unexplained_keys",
    "shadow_mismatch_rate", "shadow_keys_compared", "shadow_max_mismatch_rate", "shadow_min_keys",
    "notes", "generated_at",
}  # fmt: skip
# What Flagger POSTs (flaggerv1.CanaryWebhookPayload, pkg/controller/webhook.go CallWebhook).
FLAGGER_PAYLOAD = {"name": "kappa-stream", "namespace": "kappa-migration", "phase": "Promoting",
                   "checksum": "6d5f9b", "metadata": {"gate": "kappa"}}  # fmt: skip


class Gate:
    def __init__(self, root: Path):
        self.evidence = Evidence(root)
        policy = load_policy(self.evidence.policy_path)
        settings = ServingSettings(self.evidence.warehouse.root, 10_000, 60_000, settle_ms=0, refresh_s=0.2,
                                   policy=policy)  # fmt: skip
        self.policy = policy
        self.server = start_in_thread(settings, self.evidence.store)
        self.server.service.gate.max_age_s = 0.0  # each request reads the evidence afresh
        self.http = httpx.Client(base_url=self.server.url, timeout=30)

    def doc(self) -> dict[str, Any]:
        response = self.http.get("/v1/migration/gate")
        assert response.status_code == 200, response.text
        return response.json()

    def hooks(self) -> dict[str, int]:
        return {h: self.http.post(f"/v1/migration/gate/{h}", json=FLAGGER_PAYLOAD).status_code
                for h in ("promote", "rollback", "check")}  # fmt: skip

    def advance(self) -> None:
        advance(self.evidence.store, self.policy, self.evidence.gate_runs(), "the gate is open", "test")

    def close(self) -> None:
        self.http.close()
        self.server.stop()


@pytest.fixture
def gate(tmp_path: Path) -> Iterator[Gate]:
    g = Gate(tmp_path)
    yield g
    g.close()


def test_the_document_follows_the_controller_from_inconclusive_to_pass_to_fail(gate: Gate) -> None:
    doc = gate.doc()
    assert set(doc) == DOCUMENT_KEYS and doc["schema"] == GATE_SCHEMA
    assert (doc["verdict"], doc["decision"], doc["consecutive_passes"], doc["passes_needed"]) == (
        "INCONCLUSIVE", "hold", 0, 2)  # fmt: skip
    assert doc["state"] == {
        "label": "SHADOW",
        "stage": "SHADOW",
        "canary_percent": None,
        "seq": 0,
        "since": None,
    }

    first = gate.evidence.run("PASS")
    gate.evidence.run("INCONCLUSIVE")  # neither counts nor breaks the streak
    gate.evidence.run("PASS", arms=("legacy_batch", "kappa_stream"))  # not the gate arms
    doc = gate.doc()
    assert doc["verdict"] == "INCONCLUSIVE" and doc["consecutive_passes"] == 1
    assert doc["verdicts"] == {"PASS": 1, "FAIL": 0, "INCONCLUSIVE": 1}

    second = gate.evidence.run("PASS", unexplained=3)
    doc = gate.doc()
    assert (doc["verdict"], doc["advance_allowed"], doc["rollback"]) == ("PASS", True, False)
    assert doc["evidence"] == [first, second] and doc["consecutive_passes"] == 2
    assert [r["run_id"] for r in doc["runs"]] == [first, "run-2-inconclusive", second]
    decision = evaluate(gate.evidence.store, gate.policy, gate.evidence.gate_runs(), None)
    assert decision.action == "advance_ready" and doc["reason"] == decision.reason

    gate.advance()  # CANARY: the two runs were cited, nothing counts since the transition
    doc = gate.doc()
    assert (doc["verdict"], doc["state"]["label"], doc["consecutive_passes"]) == (
        "INCONCLUSIVE",
        "CANARY(10%)",
        0,
    )
    assert doc["verdicts"] == {"PASS": 0, "FAIL": 0, "INCONCLUSIVE": 0} and doc["runs"] == []

    failed = gate.evidence.run("FAIL", unexplained=40)
    doc = gate.doc()
    assert (doc["verdict"], doc["decision"], doc["rollback"], doc["advance_allowed"]) == (
        "FAIL", "rollback", True, False)  # fmt: skip
    assert doc["evidence"] == [failed] and failed in doc["reason"]
    gate.server.service.console.refresh(force=True)  # the unexplained keys come from the console's read
    assert gate.doc()["unexplained_keys"] == 40


def test_flagger_webhooks_get_200_for_yes_and_409_for_no(gate: Gate) -> None:
    assert gate.hooks() == {"promote": 409, "rollback": 409, "check": 200}  # waiting for evidence
    gate.evidence.run("PASS")
    gate.evidence.run("PASS")
    assert gate.hooks() == {"promote": 200, "rollback": 409, "check": 200}
    answer = gate.http.post("/v1/migration/gate/promote", json=FLAGGER_PAYLOAD).json()
    assert answer["go"] is True and answer["canary"] == "kappa-migration/kappa-stream"
    assert answer["phase"] == "Promoting" and answer["verdict"] == "PASS"
    gate.advance()
    gate.evidence.run("FAIL")
    assert gate.hooks() == {"promote": 409, "rollback": 200, "check": 409}
    # A GET (a person's curl) answers the same, and a hook takes no body at all.
    assert gate.http.get("/v1/migration/gate/rollback").status_code == 200
    assert gate.http.post("/v1/migration/gate/rollback").status_code == 200


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        (b"{not json", 400, "JSON object"),
        (b"[1, 2]", 400, "JSON object"),
        (b"\xff\xfe", 400, "JSON object"),
        (b"[" * 100_000, 413, "at most"),
        (b'{"name": "' + b"x" * MAX_HOOK_BODY_BYTES + b'"}', 413, "at most"),
    ],
)
def test_a_bad_webhook_body_is_a_clear_4xx(gate: Gate, body: bytes, status: int, words: str) -> None:
    response = gate.http.post("/v1/migration/gate/promote", content=body,
                              headers={"Content-Type": "application/json"})  # fmt: skip
    assert response.status_code == status and words in response.json()["error"]
    assert gate.doc()["verdict"] == "INCONCLUSIVE"  # the server goes on


def test_unknown_hooks_and_methods_are_refused(gate: Gate) -> None:
    assert gate.http.post("/v1/migration/gate/approve", json=FLAGGER_PAYLOAD).status_code == 404
    assert "promote" in gate.http.get("/v1/migration/gate/approve").json()["error"]
    assert gate.http.put("/v1/migration/gate/promote", json=FLAGGER_PAYLOAD).status_code == 405
    assert gate.http.post("/v1/migration/gate", json=FLAGGER_PAYLOAD).status_code == 405


def test_an_unreadable_gate_is_503_everywhere_and_metrics_still_scrape(gate: Gate) -> None:
    gate.evidence.run("PASS")
    gate.evidence.corrupt_runs()
    response = gate.http.get("/v1/migration/gate")
    assert response.status_code == 503 and "cannot be read" in response.json()["error"]
    assert gate.hooks() == {"promote": 503, "rollback": 503, "check": 503}  # no hook type's success
    scrape = gate.http.get("/metrics")
    assert scrape.status_code == 200
    families = {f.name: f for f in text_string_to_metric_families(scrape.text)}
    assert families["kappa_serving_migration_gate_up"].samples[0].value == 0.0
    assert "kappa_serving_migration_gate_verdict" not in families


def test_the_gate_gauges_say_what_the_document_says(gate: Gate) -> None:
    gate.evidence.run("PASS", unexplained=5)
    gate.evidence.run("INCONCLUSIVE")
    gate.server.service.console.refresh(force=True)
    doc = gate.doc()
    families = {f.name: f for f in text_string_to_metric_families(gate.http.get("/metrics").text)}

    def value(name: str, **labels: str) -> float:
        found = [
            s.value for s in families[f"kappa_serving_migration_gate_{name}"].samples if s.labels == labels
        ]
        assert len(found) == 1, (name, labels)
        return found[0]

    assert families["kappa_serving_migration_gate_verdict"].type == "gauge"
    assert value("up") == 1.0
    assert [value("verdict", verdict=v) for v in ("PASS", "FAIL", "INCONCLUSIVE")] == [0.0, 0.0, 1.0]
    assert value("consecutive_passes") == doc["consecutive_passes"] == 1
    assert value("passes_needed") == doc["passes_needed"] == 2
    assert value("advance_allowed") == 0.0 and value("rollback") == 0.0
    assert value("runs", verdict="INCONCLUSIVE") == doc["verdicts"]["INCONCLUSIVE"] == 1
    assert doc["unexplained_keys"] == 0  # the newest run weighed is the INCONCLUSIVE one
    assert value("unexplained_keys") == 0.0
