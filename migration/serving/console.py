"""The migration console: `GET /console` (one HTML page, no CDN), `GET /v1/migration/status`
(its JSON), the latest reports, and the two actions.

The page fetches the status every few seconds and redraws itself. The status is read from a
`MigrationSource` on the serving API's refresher thread whenever the warehouse or the
cutover state changed (or every `max_age_s`), never on the request path once it exists.
The source is the local warehouse unless one is given: the serving API passes a
`BigQueryMigrationSource` in the cloud profile (see `migration.serving.status_cloud`).

`POST /v1/migration/advance` and `/v1/migration/rollback` exist only when the server was
started with `--allow-actions` (otherwise 403): they take a JSON body with a `reason` and
`"confirm": true` (the page asks first) and call the cutover controller, its gate and its
audit log exactly as `kappactl cutover advance|rollback` does. They are accepted only from
this server's own console page (same origin, JSON, the page's token: see action_guard.py),
and the actor recorded is the OS user running the server, never a value of the request.

Blocking reads (DuckDB, BigQuery, files) never run on the event loop: a request that needs
one runs it on the thread pool, and a report id the evidence does not know forces a re-read
at most once per `report_refresh_s`, so unknown ids cannot queue reads behind each other.
"""

from __future__ import annotations

import logging
import threading
import time
from importlib import resources
from pathlib import Path
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from migration.cutover.controller import advance, default_actor, rollback
from migration.cutover.gate import ShadowStats
from migration.cutover.store import StateStore
from migration.policy import Policy, same_arms
from migration.serving.action_guard import (
    ActionBody,
    check_media_type,
    check_same_origin,
    check_token,
    host_is_own,
    new_token,
    parse_action,
    read_body,
)
from migration.serving.metrics import Metrics
from migration.serving.shadow import ShadowRecorder
from migration.serving.status import (
    Evidence,
    LocalMigrationSource,
    MigrationSource,
    build_status,
    gather,
)
from pipelines.errors import KappaError, StackError, first_line
from pipelines.warehouse import Warehouse

log = logging.getLogger(__name__)
ASSETS = {"console.js": "application/javascript", "console.css": "text/css"}
VERDICTS = ("PASS", "FAIL", "INCONCLUSIVE")
REPORT_REFRESH_S = 5.0  # an unknown report id forces a re-read at most this often
MAX_RUN_ID_CHARS = 200
TOKEN_PLACEHOLDER = "{{console_token}}"
# The page loads only its own files and cannot be framed (a framed page's buttons can be
# clicked by the framing site).
PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}
# The gauges deploy/prometheus/ alerts on and deploy/grafana/ draws (prefix kappa_serving_).
GAUGES = {
    "migration_validation_last_verdict": "1 for the verdict of the newest validation run of the gate arms.",
    "migration_validation_last_finished_timestamp_seconds": "When that run finished (Unix seconds).",
    "migration_validation_last_unexplained_keys": "Unexplained keys of that run.",
    "migration_arm_rows": "Rows in the arm's warehouse table (every pane).",
    "migration_arm_newest_window_end_timestamp_seconds": "End of the newest window the arm wrote (Unix s).",
    "migration_arm_lag_seconds": "Wall clock minus the end of the newest window the arm wrote.",
    "migration_dead_letters_last_hour": "Dead-lettered records of the last hour by pipeline and reason.",
    "migration_shadow_mismatch_rate": "Shadow-read keys mismatched / compared since the last transition.",
    "migration_shadow_keys_compared": "Shadow-read keys compared since the last transition.",
    "migration_cutover_transitions": "Transitions in the cutover audit log (the state's seq).",
}


class ActionsDisabled(KappaError):
    """A console action on a server started without --allow-actions."""

    http_status = 403


def _asset(name: str) -> str:
    return resources.files("migration.serving").joinpath("console", name).read_text(encoding="utf-8")


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class Console:
    def __init__(
        self,
        warehouse: Warehouse,
        store: StateStore,
        policy: Policy,
        shadow: ShadowRecorder,
        metrics: Metrics,
        allow_actions: bool = False,
        max_age_s: float = 15.0,
        source: MigrationSource | None = None,
    ):
        self.warehouse, self.store, self.policy = warehouse, store, policy
        self.source: MigrationSource = source or LocalMigrationSource(warehouse, store)
        self.shadow, self.metrics = shadow, metrics
        self.allow_actions = allow_actions
        self.max_age_s = max_age_s
        self._lock = threading.Lock()
        self._evidence: Evidence | None = None
        self._token: object = None
        self._read_at = 0.0
        self._read_seconds = 0.0
        self.last_error: str | None = None
        self.token = new_token()  # the console page carries it; actions must send it back
        self.actor = f"{default_actor()} (console)"  # who runs the server, never the client's say
        self.report_refresh_s = REPORT_REFRESH_S
        self._forced_at = -float("inf")
        self._forced_lock = threading.Lock()
        self._first_lock = threading.Lock()
        for name, text in GAUGES.items():
            metrics.describe(name, "gauge", text)
        metrics.describe(
            "console_status_reads_total", "counter", "Reads of the migration evidence, by trigger."
        )

    # -- reading ---------------------------------------------------------------------------
    def refresh(self, force: bool = False, trigger: str = "tick") -> None:
        """Re-read the sources if they changed or the last read is older than max_age_s."""
        since = time.monotonic() - self._read_at
        if not force and self._evidence is not None and since < 5 * self._read_seconds:
            return  # at most a fifth of a core on re-reads, as for the serving snapshot
        token = self.source.fingerprint()
        if not force and self._evidence is not None and token == self._token and since < self.max_age_s:
            return
        started = time.monotonic()
        with self._lock:
            self.metrics.inc("console_status_reads_total", trigger=trigger)
            try:
                evidence = gather(self.source, _now_ms())
            except Exception as exc:  # e.g. DuckDB on a segment being replaced: retried next tick
                self.last_error = f"{type(exc).__name__}: {first_line(exc)}"
                log.warning("console status not refreshed: %s", self.last_error)
                return
            self._evidence, self._token, self._read_at = evidence, token, time.monotonic()
            self._read_seconds = self._read_at - started
            self.last_error = None

    def _may_force(self) -> bool:
        """True at most once per report_refresh_s (for every caller together)."""
        with self._forced_lock:
            now = time.monotonic()
            if now - self._forced_at < self.report_refresh_s:
                return False
            self._forced_at = now
            return True

    def evidence(self) -> Evidence:
        """The evidence read last (blocking: call it off the event loop)."""
        if self._evidence is None:
            with self._first_lock:  # one first read; requests arriving meanwhile wait for it
                if self._evidence is None and (self.last_error is None or self._may_force()):
                    self.refresh(force=True, trigger="first")
        if self._evidence is None:
            raise StackError(f"the migration status cannot be read yet: {self.last_error or 'retrying'}")
        return self._evidence

    def shadow_stats(self, seq: int) -> ShadowStats | None:
        live = self.shadow.stats
        if live.seq == seq and live.reads:
            return live
        return self.source.shadow_file() or (live if live.seq >= 0 else None)

    def status_document(self) -> dict[str, Any]:
        ev = self.evidence()
        doc = build_status(ev, self.policy, _now_ms(), self.shadow_stats(ev.state.seq))
        doc["actions_allowed"] = self.allow_actions
        doc["read_error"] = self.last_error
        return doc

    # -- HTTP ------------------------------------------------------------------------------
    async def status(self, request: Request) -> Response:
        doc = await run_in_threadpool(self.status_document)
        return JSONResponse(doc, headers={"Cache-Control": "no-store"})

    async def page(self, request: Request) -> Response:
        # The token only for the server's own Host: a page fetched through another name (DNS
        # rebinding) gets none, and its actions are refused anyway.
        token = self.token if self.allow_actions and host_is_own(request) else ""
        return HTMLResponse(_asset("console.html").replace(TOKEN_PLACEHOLDER, token), headers=PAGE_HEADERS)

    async def asset(self, request: Request) -> Response:
        name = request.path_params["name"]
        if name not in ASSETS:
            return JSONResponse({"error": f"no console asset {name[:80]!r}", "type": "NotFound"}, 404)
        return Response(_asset(name), media_type=ASSETS[name], headers={"X-Content-Type-Options": "nosniff"})

    async def report_html(self, request: Request) -> Response:
        """The full report of a recorded run (only paths `validation_runs` holds are served)."""
        run_id = request.path_params["run_id"]
        path = await run_in_threadpool(self._report_path, run_id)
        if path is None:
            shown = repr(run_id[:80])
            return JSONResponse({"error": f"no report.html for run {shown}", "type": "NotFound"}, 404)
        return FileResponse(path, media_type="text/html")

    def _report_path(self, run_id: str) -> Path | None:
        def find() -> Path | None:
            run = next((r for r in self.evidence().runs if r.run_id == run_id), None)
            return run.report_html if run else None

        path = find()
        if path is None and len(run_id) <= MAX_RUN_ID_CHARS and self._may_force():
            self.refresh(force=True, trigger="report")  # a run recorded since the last read
            path = find()
        return path if path is not None and path.is_file() else None

    async def _action_body(self, request: Request) -> ActionBody:
        if not self.allow_actions:
            raise ActionsDisabled(
                "actions are disabled: start the server with `kappactl serve --allow-actions`"
            )
        check_same_origin(request)
        check_media_type(request.headers)
        check_token(request.headers, self.token)
        return parse_action(await read_body(request))

    async def advance(self, request: Request) -> Response:
        body = await self._action_body(request)

        def act() -> dict[str, Any]:
            runs = self.source.gate_runs(self.policy.gate_arms)
            new = advance(self.store, self.policy, runs, body.reason, self.actor, body.to, body.percent)
            return self._after_move(new.as_json(), request)

        return JSONResponse(await run_in_threadpool(act))

    async def rollback(self, request: Request) -> Response:
        body = await self._action_body(request)

        def act() -> dict[str, Any]:
            new = rollback(self.store, body.reason, self.actor)
            return self._after_move(new.as_json(), request)

        return JSONResponse(await run_in_threadpool(act))

    def _after_move(self, state: dict[str, Any], request: Request) -> dict[str, Any]:
        client = request.client.host if request.client else "?"
        log.warning("console action from %s: %s", client, state["last_transition"])
        self.refresh(force=True, trigger="action")
        return {"state": state}

    def routes(self) -> list[Route]:
        return [
            Route("/console", self.page, methods=["GET"]),
            Route("/console/{name}", self.asset, methods=["GET"]),
            Route("/v1/migration/status", self.status, methods=["GET"]),
            Route("/v1/migration/reports/{run_id}/report.html", self.report_html, methods=["GET"]),
            Route("/v1/migration/advance", self.advance, methods=["POST"]),
            Route("/v1/migration/rollback", self.rollback, methods=["POST"]),
        ]

    # -- metrics ---------------------------------------------------------------------------
    def export_metrics(self) -> None:
        """The gauges the alert rules and the Grafana dashboard read (see deploy/)."""
        ev, now = self._evidence, _now_ms()
        if ev is None:
            return
        gate = [r for r in ev.runs if same_arms(r.left_arm, r.right_arm, self.policy.gate_arms)]
        if gate:
            for verdict in VERDICTS:
                self.metrics.set("migration_validation_last_verdict", float(gate[-1].verdict == verdict),
                                 verdict=verdict)  # fmt: skip
            self.metrics.set(
                "migration_validation_last_finished_timestamp_seconds", gate[-1].finished_at_ms / 1000
            )
            self.metrics.set(
                "migration_validation_last_unexplained_keys", float(gate[-1].keys["unexplained"])
            )
        for arm in ev.arms:
            self.metrics.set("migration_arm_rows", float(arm.rows), arm=arm.arm)
            if arm.newest_window_end_ms is not None:
                self.metrics.set("migration_arm_newest_window_end_timestamp_seconds",
                                 arm.newest_window_end_ms / 1000, arm=arm.arm)  # fmt: skip
                self.metrics.set("migration_arm_lag_seconds", max(0.0, (now - arm.newest_window_end_ms) / 1000),
                                 arm=arm.arm)  # fmt: skip
        self.metrics.clear("migration_dead_letters_last_hour")
        for pipeline, reason, count in ev.dead_letters:
            self.metrics.set(
                "migration_dead_letters_last_hour", float(count), pipeline=pipeline, reason=reason
            )
        stats = self.shadow_stats(ev.state.seq)
        current = stats is not None and stats.seq == ev.state.seq
        self.metrics.set("migration_shadow_mismatch_rate", stats.mismatch_rate if stats and current else 0.0)
        self.metrics.set(
            "migration_shadow_keys_compared", float(stats.keys_compared if stats and current else 0)
        )
        self.metrics.set("migration_cutover_transitions", float(ev.state.seq))
