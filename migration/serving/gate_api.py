"""The cutover gate for progressive-delivery tools: Argo Rollouts' `web` metric provider and
Flagger's webhooks read what `kappactl cutover check` decides. Read-only and on by default.

    GET /v1/migration/gate                    the gate document (GATE_SCHEMA), 200 whatever
                                              the verdict; 503 while the evidence is unreadable
    GET|POST /v1/migration/gate/promote       200 when the next transition would be allowed
    GET|POST /v1/migration/gate/rollback      200 when the evidence says roll back
    GET|POST /v1/migration/gate/check         200 unless the evidence says roll back

`verdict` is PASS when the controller's `evaluate` says `advance_ready` (the gate's PASS
streak is long enough), FAIL when it says `rollback` (a FAIL run during CANARY/FULL, or too
many shadow mismatches), INCONCLUSIVE otherwise (waiting for evidence). An Argo Rollouts
AnalysisTemplate reads `{$.verdict}` with `successCondition: result == "PASS"` and
`failureCondition: result == "FAIL"` (neither: Inconclusive); see deploy/argo/.

Flagger POSTs its webhook payload (name, namespace, phase, checksum, metadata) and treats
200-202 as success, anything else as not yet (confirm-* hooks) or a failed check
(rollout hooks); a `rollback` hook's success rolls the canary back. So a hook answers 200
for yes and 409 for no, never 5xx (Flagger's client retries those), and 503 only when the
gate cannot be read, which every hook type takes as "not now". See deploy/flagger/ (its
hooks are called by Flagger's own client in tests/flagger/).

The figures come from the cutover package's own functions (`evaluate`, `gate_for`,
`counted`, `cited_runs`, `in_window`) over the runs the console's actions use, never a
rule of this module; a report is reused for `max_age_s`, so polling cannot multiply reads.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterator

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from migration.cutover.controller import evaluate, gate_for
from migration.cutover.gate import MIN_SHADOW_KEYS, cited_runs, counted, in_window
from migration.cutover.model import now_ms
from migration.serving.action_guard import read_body
from migration.serving.console import Console
from pipelines.errors import InputError, KappaError, StackError, first_line, map_exceptions
from pipelines.instants import utc_iso

log = logging.getLogger(__name__)
GATE_SCHEMA = "kappa-migration/gate/v1"
VERDICTS = ("PASS", "FAIL", "INCONCLUSIVE")
VERDICT_OF = {"advance_ready": "PASS", "rollback": "FAIL", "hold": "INCONCLUSIVE"}
HOOKS = ("promote", "rollback", "check")
MAX_HOOK_BODY_BYTES = 16_384  # Flagger's payload: four fields and the webhook's metadata
MAX_AGE_S = 1.0
MAX_RUNS_SHOWN = 50
PREFIX = "kappa_serving_migration_gate_"


class GateUnreadable(StackError):
    """The gate's evidence (state, audit log, validation runs) cannot be read right now."""


@dataclass(frozen=True)
class GateReport:
    """One reading of the gate; `document` is what GET /v1/migration/gate answers."""

    verdict: str
    document: dict[str, Any]
    runs: Counter[str] = field(default_factory=Counter)

    @property
    def advance_allowed(self) -> bool:
        return self.verdict == "PASS"

    @property
    def rollback(self) -> bool:
        return self.verdict == "FAIL"


def hook_answer(hook: str, verdict: str) -> bool:
    """Whether a webhook of this kind gets its 200 for the gate's verdict."""
    if hook == "promote":
        return verdict == "PASS"
    if hook == "rollback":
        return verdict == "FAIL"
    return verdict != "FAIL"  # check: a rollout/pre-rollout hook fails only on evidence of harm


def parse_payload(raw: bytes) -> dict[str, str]:
    """The caller's Flagger payload (name, namespace, phase), or {} without a body."""
    if not raw.strip():
        return {}
    not_json = "the webhook body must be a JSON object (Flagger's payload)"
    with map_exceptions({(ValueError, RecursionError): lambda why: InputError(f"{not_json}: {why}")}):
        body = json.loads(raw.decode("utf-8"))
    if not isinstance(body, dict):
        raise InputError("the webhook body must be a JSON object (Flagger's payload)")
    return {k: str(body[k])[:253] for k in ("name", "namespace", "phase") if isinstance(body.get(k), str)}


class GateApi:
    """The gate routes and gauges over a console's source, store, policy and shadow stats."""

    def __init__(self, console: Console, max_age_s: float = MAX_AGE_S):
        self.console = console
        self.max_age_s = max_age_s
        self._lock = threading.Lock()
        self._report: GateReport | None = None
        self._read_at = -float("inf")

    # -- reading ---------------------------------------------------------------------------
    def report(self) -> GateReport:
        """The gate now (blocking: call it off the event loop); GateUnreadable if it cannot be read."""
        with self._lock:  # one reading at a time; callers arriving meanwhile share it
            if self._report is None or time.monotonic() - self._read_at >= self.max_age_s:
                try:
                    self._report = self._read()
                except KappaError as exc:
                    raise GateUnreadable(f"the cutover gate cannot be read: {exc}") from exc
                self._read_at = time.monotonic()
            return self._report

    def _read(self) -> GateReport:
        console, policy, store = self.console, self.console.policy, self.console.store
        runs = console.source.gate_runs(policy.gate_arms)
        state, _ = store.load()
        shadow = console.shadow_stats(state.seq)
        decision = evaluate(store, policy, runs, shadow)
        state = decision.state  # evaluate read the state again: its reading is the one judged
        gate = gate_for(store, state, policy, runs)
        now, cited = now_ms(), cited_runs(store.history())
        weighed = [r for r in counted(runs, policy.gate_counts_restricted_runs)
                   if in_window(r, state.since_ms, now) and r.run_id not in cited]  # fmt: skip
        tally = Counter(r.verdict for r in weighed)
        verdict = VERDICT_OF.get(decision.action, "INCONCLUSIVE")
        current = shadow is not None and shadow.seq == state.seq
        document = {
            "schema": GATE_SCHEMA,
            "verdict": verdict,
            "advance_allowed": decision.action == "advance_ready",
            "rollback": decision.action == "rollback",
            "decision": decision.action,
            "reason": decision.reason,
            "automatic_rollback": decision.automatic,
            "state": {"label": state.label, "stage": state.stage.value, "canary_percent": state.canary_percent,
                      "seq": state.seq, "since": utc_iso(state.since_ms) if state.since_ms else None},
            "consecutive_passes": len(gate.passes),
            "passes_needed": gate.needed,
            "evidence": list(decision.evidence),
            "verdicts": {v: tally.get(v, 0) for v in VERDICTS},
            "runs": [{"run_id": r.run_id, "verdict": r.verdict, "finished_at": utc_iso(r.finished_at_ms)}
                     for r in weighed[-MAX_RUNS_SHOWN:]],
            "unexplained_keys": self._unexplained(weighed[-1].run_id) if weighed else None,
            "shadow_mismatch_rate": shadow.mismatch_rate if shadow and current else None,
            "shadow_keys_compared": shadow.keys_compared if shadow and current else 0,
            "shadow_max_mismatch_rate": policy.max_shadow_mismatch_rate,
            "shadow_min_keys": MIN_SHADOW_KEYS,
            "notes": list(decision.notes),
            "generated_at": utc_iso(now),
        }  # fmt: skip
        return GateReport(verdict, document, tally)

    def _unexplained(self, run_id: str) -> int | None:
        """Unexplained keys of a run, from the console's evidence (None: not read yet)."""
        try:
            runs = self.console.evidence().runs
        except KappaError:
            return None
        found = next((r for r in reversed(runs) if r.run_id == run_id), None)
        return None if found is None else int(found.keys.get("unexplained", 0))

    # -- HTTP ------------------------------------------------------------------------------
    async def gate(self, request: Request) -> Response:
        report = await run_in_threadpool(self.report)
        return JSONResponse(report.document, headers={"Cache-Control": "no-store"})

    async def hook(self, request: Request) -> Response:
        hook = request.path_params["hook"]
        if hook not in HOOKS:
            shown = repr(hook[:40])
            return JSONResponse({"error": f"no gate hook {shown}: use one of {', '.join(HOOKS)}",
                                 "type": "NotFound"}, 404)  # fmt: skip
        payload = (
            parse_payload(await read_body(request, MAX_HOOK_BODY_BYTES)) if request.method == "POST" else {}
        )
        report = await run_in_threadpool(self.report)
        go = hook_answer(hook, report.verdict)
        canary = "/".join(payload[k] for k in ("namespace", "name") if k in payload) or None
        log.info("gate hook %s for %s (%s): %s -> %s", hook, canary or "?", payload.get("phase", "-"),
                 report.verdict, 200 if go else 409)  # fmt: skip
        body = {"hook": hook, "go": go, "verdict": report.verdict, "reason": report.document["reason"],
                "canary": canary, "phase": payload.get("phase")}  # fmt: skip
        return JSONResponse(body, status_code=200 if go else 409, headers={"Cache-Control": "no-store"})

    def routes(self) -> list[Route]:
        return [
            Route("/v1/migration/gate", self.gate, methods=["GET"]),
            Route("/v1/migration/gate/{hook}", self.hook, methods=["GET", "POST"]),
        ]

    def collector(self) -> Collector:
        return GateCollector(self)


class GateCollector(Collector):
    """The gate's figures as gauges on /metrics (prefix kappa_serving_migration_gate_)."""

    def __init__(self, api: GateApi):
        self.api = api

    def collect(self) -> Iterator[Metric]:
        try:
            report: GateReport | None = self.api.report()
        except Exception as exc:  # a scrape must not fail with the gate: gate_up says so instead
            log.warning("gate gauges not exported: %s", first_line(exc))
            report = None
        yield GaugeMetricFamily(PREFIX + "up", "1 when the cutover gate's evidence could be read.",
                                value=float(report is not None))  # fmt: skip
        if report is None:
            return
        doc = report.document
        verdict = GaugeMetricFamily(PREFIX + "verdict", "1 for the gate's verdict.", labels=["verdict"])
        runs = GaugeMetricFamily(PREFIX + "runs", "Runs the gate weighs since the last transition, by verdict.",
                                 labels=["verdict"])  # fmt: skip
        for v in VERDICTS:
            verdict.add_metric([v], float(report.verdict == v))
            runs.add_metric([v], float(report.runs.get(v, 0)))
        yield verdict
        yield runs
        yield GaugeMetricFamily(PREFIX + "advance_allowed", "1 when the next transition would be allowed.",
                                value=float(report.advance_allowed))  # fmt: skip
        yield GaugeMetricFamily(PREFIX + "rollback", "1 when the evidence says roll back.",
                                value=float(report.rollback))  # fmt: skip
        yield GaugeMetricFamily(PREFIX + "consecutive_passes", "The PASS streak the gate counts.",
                                value=float(doc["consecutive_passes"]))  # fmt: skip
        yield GaugeMetricFamily(PREFIX + "passes_needed", "The PASS streak the policy needs.",
                                value=float(doc["passes_needed"]))  # fmt: skip
        if doc["unexplained_keys"] is not None:
            yield GaugeMetricFamily(PREFIX + "unexplained_keys", "Unexplained keys of the newest run weighed.",
                                    value=float(doc["unexplained_keys"]))  # fmt: skip
