"""The serving API (the TSAR-style query service), as a Starlette ASGI app.

    GET /v1/tweets/{tweet_id}/counts?event_type=&start=&end=   counts per window + source
    GET /healthz                                               state, snapshot, shadow stats
    GET /metrics                                               Prometheus text (prometheus_client)
    GET /v1/migration/gate[/promote|rollback|check]            the cutover gate (gate_api.py)
    GET /console, GET /v1/migration/status                     the migration console (console.py)
    POST /v1/migration/advance|rollback                        only with --allow-actions

Reads are routed by the cutover state (see routing.py); the other arm is shadow-read after
the response (see shadow.py). While the state cannot be read, reads are routed by the last
good one and /healthz answers 503 with the reason. `start`/`end` are epoch milliseconds or
ISO-8601 times (UTC if no offset); a window is returned when start <= window_start < end.
Parameters are checked where they enter: a tweet_id or epoch ms in other than ASCII digits,
a value outside int64 or 0001-01-01..9999-12-31 UTC, or a repeated parameter gets a 400.
"""

from __future__ import annotations

import contextlib
import logging
import re
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, AsyncIterator

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from migration.cutover.store import LocalStateStore, StateStore
from migration.policy import Policy, load_policy
from migration.serving.console import Console
from migration.serving.data import Refresher, ServingData, Snapshot
from migration.serving.gate_api import GateApi
from migration.serving.metrics import (
    CONTENT_TYPE,
    KappaFigureSource,
    KappaFlinkFigures,
    KappaJobCollector,
    Metrics,
)
from migration.serving.routing import StateWatcher, route
from migration.serving.shadow import Finality, ShadowRecorder
from migration.serving.status import MigrationSource
from pipelines.config import Config
from pipelines.errors import ConfigError, InputError, KappaError, StackError
from pipelines.events import EVENT_TYPES
from pipelines.instants import parse_instant, utc_iso
from pipelines.warehouse import Warehouse

log = logging.getLogger(__name__)
COUNTS_ROUTE = "/v1/tweets/{tweet_id}/counts"
QUERY_PARAMS = {"event_type", "start", "end"}
# Settled: past the later of kappa allowed lateness and the batch period plus delay, plus this.
SETTLE_MARGIN_MS = 30_000


@dataclass(frozen=True)
class ServingSettings:
    warehouse_root: Path
    window_ms: int
    period_ms: int
    settle_ms: int  # a window is compared in shadow reads only this long after it ends
    refresh_s: float = 2.0
    shadow_tolerance: float = 0.0  # policy shadow_relative_tolerance
    policy: Policy | None = None  # the cutover gate of console actions (default: config/policy.yaml)
    allow_actions: bool = False  # POST /v1/migration/advance|rollback (else 403)
    bigquery_project: str | None = None  # the cloud profile: read BigQuery's served views instead
    kappa_figures: KappaFigureSource | None = None  # the Kappa stream job's summary on /metrics

    @classmethod
    def from_config(
        cls, config: Config, warehouse_root: Path | None = None, refresh_s: float = 2.0
    ) -> ServingSettings:
        t = config.time
        # kappa is final after allowed lateness; legacy after its batch period ran (+ a margin).
        settle_ms = max(t.kappa_allowed_lateness_ms, t.batch_settled_ms) + SETTLE_MARGIN_MS
        root = Path(warehouse_root or config.paths.warehouse_root)
        return cls(
            root, t.window_ms, t.period_ms, settle_ms, refresh_s, kappa_figures=KappaFlinkFigures(config)
        )


TWEET_ID = re.compile(r"[0-9]{1,19}")  # ASCII only: str.isdigit() also takes "²" and "١٢"
EPOCH_MS = re.compile(r"-?[0-9]{1,19}")
# The instants a datetime can hold, so every one can be written back: 0001-01-01 to 9999-12-31 UTC.
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MS = timedelta(milliseconds=1)
MIN_MS = (datetime.min.replace(tzinfo=UTC) - EPOCH) // MS
MAX_MS = (datetime.max.replace(tzinfo=UTC) - EPOCH) // MS


def _shown(text: str, limit: int = 40) -> str:
    """A parameter for an error message: its repr, cut to `limit` characters."""
    shown = repr(text)
    return shown if len(shown) <= limit else shown[:limit] + "...'"


def parse_time(name: str, text: str | None) -> int | None:
    """A query-string instant; a '+' of an offset arrives decoded as a space."""
    if text is None or text == "":
        return None
    bad = InputError(
        f"{name}: not epoch ms or an ISO 8601 time from 0001-01-01 to 9999-12-31 UTC: {_shown(text)}"
    )
    if not text.isascii():
        raise bad
    if EPOCH_MS.fullmatch(text.strip()):
        ms = int(text)
    else:
        if "T" in text:
            text = text.replace(" ", "+", 1)
        try:
            ms = parse_instant(text, name)
        except (ConfigError, ValueError, OverflowError) as exc:
            raise bad from exc
    if not MIN_MS <= ms <= MAX_MS:
        raise bad
    return ms


def parse_tweet_id(text: str) -> int:
    if not TWEET_ID.fullmatch(text) or not 0 < int(text) < 2**63:
        raise InputError(f"tweet_id: must be a positive 64-bit integer in ASCII digits, got {_shown(text)}")
    return int(text)


def parse_query(request: Request) -> tuple[int, str | None, int | None, int | None]:
    names = Counter(name for name, _ in request.query_params.multi_items())
    unknown = sorted(set(names) - QUERY_PARAMS)
    if unknown:
        raise InputError(
            f"unknown query parameter(s) {', '.join(map(_shown, unknown[:5]))}: "
            f"use {', '.join(sorted(QUERY_PARAMS))}"
        )
    repeated = sorted(name for name, n in names.items() if n > 1)
    if repeated:
        raise InputError(f"query parameter(s) given more than once: {', '.join(repeated)}")
    tweet_id = parse_tweet_id(request.path_params["tweet_id"])
    event_type = request.query_params.get("event_type") or None
    if event_type is not None and event_type not in EVENT_TYPES:
        raise InputError(f"event_type: unknown {_shown(event_type)}; use one of {', '.join(EVENT_TYPES)}")
    start = parse_time("start", request.query_params.get("start"))
    end = parse_time("end", request.query_params.get("end"))
    if start is not None and end is not None and start > end:
        raise InputError(f"start ({start}) is after end ({end})")
    return tweet_id, event_type, start, end


def _iso(ms: int | None) -> str | None:
    return None if ms is None else utc_iso(ms)


class ServingService:
    """Everything a request needs; the Starlette app is a thin shell around it."""

    def __init__(self, settings: ServingSettings, store: StateStore):
        self.settings = settings
        self.metrics = Metrics()
        source: MigrationSource | None = None  # the console's: the local warehouse by default
        if settings.bigquery_project:
            from migration.serving.bigquery_data import BigQueryServingData
            from migration.serving.status_cloud import BigQueryMigrationSource

            data = BigQueryServingData(settings.bigquery_project, settings.window_ms, settings.period_ms)
            source = BigQueryMigrationSource(settings.bigquery_project, store, data.client)
            self.data: ServingData = data
        else:
            self.data = ServingData(
                Warehouse(settings.warehouse_root), settings.window_ms, settings.period_ms
            )
        self.watcher = StateWatcher(store)
        self.metrics.describe("cutover_state_unreadable", "gauge",
                              "1 while the cutover state cannot be read (reads use the last good one).")  # fmt: skip
        stats_dir = store.directory if isinstance(store, LocalStateStore) else None
        self.shadow = ShadowRecorder(
            self.metrics, settings.settle_ms, stats_dir, tolerance=settings.shadow_tolerance
        )
        self.console = Console(self.data.warehouse, store, settings.policy or load_policy(), self.shadow,
                               self.metrics, settings.allow_actions, source=source)  # fmt: skip
        self.gate = GateApi(self.console)  # GET /v1/migration/gate and Flagger's hooks, read-only
        self.metrics.register(self.gate.collector())
        if settings.kappa_figures is not None:
            self.metrics.register(KappaJobCollector(settings.kappa_figures))
        self.refresher = Refresher(settings.refresh_s, self.refresh, self.shadow.flush, self.console.refresh)

    def refresh(self) -> None:
        if self.data.refresh_if_changed() and self.data.snapshot:
            snap = self.data.snapshot
            self.metrics.set("snapshot_build_seconds", snap.build_seconds)
            for arm, rows in snap.rows.items():
                self.metrics.set("snapshot_rows", rows, arm=arm)
        if self.data.last_error:
            self.metrics.inc("snapshot_errors_total")

    def start(self) -> None:
        self.data.refresh_if_changed()
        self.refresher.start()

    def stop(self) -> None:
        self.refresher.stop()
        self.shadow.close()

    async def counts(self, request: Request) -> Response:
        tweet_id, event_type, start, end = parse_query(request)
        snapshot = self.data.snapshot
        if snapshot is None:
            raise StackError(f"no data snapshot yet: {self.data.last_error or 'still loading'}")
        state = self.watcher.current()
        chosen = route(state, tweet_id)
        raw = snapshot.arms[chosen.primary].rows(tweet_id)
        rows = self.data.with_iso(raw)
        self.metrics.inc("reads_total", source=chosen.primary, stage=state.stage.value)
        if chosen.shadow:
            shadow = snapshot.arms[chosen.shadow]
            # Judged at the snapshot's time and the stream's watermark: a stale snapshot or a
            # stream running behind must not compare windows that were still open, or legacy
            # values still served by the speed layer, back then. Raw rows: no ISO times to format.
            finality = Finality(snapshot.settled_before_ms(self.settings.settle_ms),
                                snapshot.finished_periods, self.settings.period_ms)  # fmt: skip
            self.shadow.submit(state.seq, chosen.primary, chosen.shadow, raw,
                               lambda: shadow.rows(tweet_id), finality)  # fmt: skip
        matching = [
            r
            for r in rows
            if (event_type is None or r[4] == event_type)
            and (start is None or r[0] >= start)
            and (end is None or r[0] < end)
        ]
        windows = [
            {"window_start": r[2], "window_end": r[3], "event_type": r[4], "count": r[5]} for r in matching
        ]
        body = {
            "tweet_id": tweet_id,
            "source": chosen.primary,
            "state": state.stage.value,
            "canary_percent": state.canary_percent,
            "event_type": event_type,
            "start": _iso(start),
            "end": _iso(end),
            "windows": windows,
            "total": sum(r[5] for r in matching),
            "data_as_of": _iso(snapshot.built_ms),
        }
        return JSONResponse(body, headers={"X-Served-By": chosen.primary})

    async def health(self, request: Request) -> Response:
        """200 when reads are served from a data snapshot and a readable cutover state; 503 with
        the reason otherwise (reads may still be served from the last good state meanwhile)."""
        state = self.watcher.last_good()
        snap: Snapshot | None = self.data.snapshot
        status = "ok" if snap else "loading"
        if self.watcher.error:
            status = "cutover_state_unreadable"
        cutover = state and {"state": state.label, "stage": state.stage.value, "seq": state.seq}
        body: dict[str, Any] = {
            "status": status,
            "cutover": cutover,
            "cutover_error": self.watcher.error,
            "shadow": self.shadow.stats.as_json() if state and self.shadow.stats.seq == state.seq else None,
            "snapshot_error": self.data.last_error,
        }
        if snap:
            body["snapshot"] = {"built": _iso(snap.built_ms), "build_seconds": round(snap.build_seconds, 3),
                                "rows": snap.rows, "legacy_view": snap.legacy_view,
                                "new_rows": snap.new_rows, "runs": snap.runs}  # fmt: skip
        return JSONResponse(body, status_code=200 if status == "ok" else 503)

    async def render_metrics(self, request: Request) -> Response:
        state = self.watcher.last_good()
        self.metrics.set("cutover_state_unreadable", float(self.watcher.error is not None))
        if state is not None:
            for stage in ("SHADOW", "CANARY", "FULL", "DECOMMISSIONED"):
                self.metrics.set("cutover_stage", 1.0 if state.stage.value == stage else 0.0, stage=stage)
            self.metrics.set("canary_percent", float(state.canary_percent or 0))
        snap = self.data.snapshot
        if snap:
            self.metrics.set("snapshot_age_seconds", max(0.0, time.time() - snap.built_ms / 1000))
        self.console.export_metrics()
        # Off the event loop: the gate's gauges may read its evidence (at most once a second).
        return Response(await run_in_threadpool(self.metrics.render), media_type=CONTENT_TYPE)


class MetricsMiddleware:
    """Counts every request by route template and status, and times it."""

    def __init__(self, app: ASGIApp, metrics: Metrics):
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = {"code": 500}

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route_obj = scope.get("route")
            path = getattr(route_obj, "path", None) or "unmatched"
            self.metrics.observe(time.perf_counter() - started, route=path)
            self.metrics.inc("requests_total", route=path, status=str(status["code"]))


async def _kappa_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, KappaError)
    return JSONResponse({"error": str(exc), "type": type(exc).__name__}, status_code=exc.http_status)


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s", request.url.path, exc_info=exc)
    return JSONResponse(
        {"error": "internal error: see the server log", "type": "InternalError"}, status_code=500
    )


async def _http_error(request: Request, exc: Exception) -> Response:
    """Starlette's own 404 and 405 (and any HTTPException) as the JSON errors of the rest."""
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        path = _shown(request.url.path, 80)
        return JSONResponse(
            {"error": f"no route {path}: try {COUNTS_ROUTE} or /console", "type": "NotFound"}, 404
        )
    return JSONResponse(
        {"error": exc.detail, "type": "HTTPError"}, exc.status_code, headers=dict(exc.headers or {})
    )


def create_app(settings: ServingSettings, store: StateStore) -> Starlette:
    """The ASGI app; `app.state.service` is the ServingService (metrics, shadow stats)."""
    service = ServingService(settings, store)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        service.start()
        try:
            yield
        finally:
            service.stop()

    app = Starlette(
        routes=[
            Route(COUNTS_ROUTE, service.counts, methods=["GET"]),
            Route("/healthz", service.health, methods=["GET"]),
            Route("/metrics", service.render_metrics, methods=["GET"]),
            *service.console.routes(),
            *service.gate.routes(),
        ],
        exception_handlers={KappaError: _kappa_error, HTTPException: _http_error, Exception: _unexpected},
        lifespan=lifespan,
    )
    app.add_middleware(MetricsMiddleware, metrics=service.metrics)
    app.state.service = service
    return app
