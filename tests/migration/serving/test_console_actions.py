"""The console's actions over real HTTP (uvicorn on a free loopback port, a real local state
folder): only this server's own console page may move the cutover, and what it records is
bounded and says who ran the server. Every refused request leaves state.json and audit.jsonl
byte for byte as they were."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest

from migration.cutover import LocalStateStore, Stage
from migration.cutover.controller import default_actor
from migration.serving import ServingSettings, start_in_thread
from migration.serving.action_guard import MAX_BODY_BYTES, MAX_REASON_CHARS, TOKEN_HEADER
from pipelines.warehouse import Warehouse
from tests.migration.serving.actions import console_headers, metric, page_token
from tests.migration.serving.test_serving_api import aggregate_rows, set_state

ROLLBACK = "/v1/migration/rollback"
GOOD = {"reason": "kappa disagrees on the newest window", "confirm": True}


class Served:
    def __init__(self, root: Path, allow_actions: bool = True):
        self.warehouse = Warehouse(root / "warehouse")
        for arm in ("legacy_speed", "kappa_stream"):
            self.warehouse.append(arm, aggregate_rows(arm, range(1, 21), lambda t, w: 1 + w))
        self.store = LocalStateStore(root / "cutover")
        set_state(self.store, Stage.CANARY, 10)  # a rollback accepted by mistake would change it
        settings = ServingSettings(self.warehouse.root, 10_000, 60_000, settle_ms=0, refresh_s=0.2,
                                   allow_actions=allow_actions)  # fmt: skip
        self.server = start_in_thread(settings, self.store)
        self.http = httpx.Client(base_url=self.server.url, timeout=30)
        self.host = self.server.url.removeprefix("http://")

    def files(self) -> tuple[bytes, bytes]:
        audit = self.store.audit_path.read_bytes() if self.store.audit_path.exists() else b""
        return self.store.state_path.read_bytes(), audit

    def post(self, body: Any = None, content: bytes | None = None, **headers: str) -> httpx.Response:
        raw = content if content is not None else json.dumps(body or GOOD).encode()
        return self.http.post(
            ROLLBACK, content=raw, headers={k.replace("_", "-"): v for k, v in headers.items()}
        )

    def close(self) -> None:
        self.http.close()
        self.server.stop()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    env = Served(tmp_path)
    yield env
    env.close()


@pytest.fixture(scope="module")
def refusing(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """One server for the tests of refused requests: each checks it changed nothing."""
    env = Served(tmp_path_factory.mktemp("refusing"))
    yield env
    env.close()


def own(env: Served) -> dict[str, str]:
    return {k.replace("-", "_"): v for k, v in console_headers(env.http).items()}


def refused(
    env: Served, response: httpx.Response, status: int, words: str, before: tuple[bytes, bytes]
) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    assert words in response.json()["error"], response.json()
    assert env.files() == before, "a refused action changed the cutover state or its audit log"


def test_the_reported_cross_site_rollback_is_refused_and_changes_nothing(served: Served) -> None:
    """The request of the report: text/plain body, another site's Origin and Host."""
    before = served.files()
    response = served.post(content=json.dumps(GOOD).encode(), content_type="text/plain",
                           Origin="http://evil.example", Host="evil.example")  # fmt: skip
    refused(served, response, 403, "Host", before)
    assert served.http.get("/healthz").json()["cutover"]["stage"] == "CANARY"


@pytest.mark.parametrize(
    ("headers", "status", "words"),
    [
        # another site's page posting to us (its Origin), with and without a JSON type
        ({"Origin": "http://evil.example"}, 403, "Origin"),
        ({"Origin": "http://127.0.0.1:1"}, 403, "Origin"),  # another port is another origin
        ({"Origin": "null"}, 403, "Origin"),  # sandboxed frames and file:// pages
        # DNS rebinding: a hostile name resolved to 127.0.0.1 sends its own name as Host and Origin
        ({"Host": "evil.example:{port}", "Origin": "http://evil.example:{port}"}, 403, "Host"),
        ({"Host": "127.0.0.1.evil.example", "Origin": "http://127.0.0.1.evil.example"}, 403, "Host"),
        # a POST without Origin is refused unless the browser says it is same-origin
        ({"Origin": None}, 403, "Origin"),
        ({"Sec-Fetch-Site": "cross-site"}, 403, "Sec-Fetch-Site"),
        ({"Sec-Fetch-Site": "same-site"}, 403, "Sec-Fetch-Site"),
        # bodies another site can send without a preflight
        ({"Content-Type": "text/plain"}, 415, "application/json"),
        ({"Content-Type": "application/x-www-form-urlencoded"}, 415, "application/json"),
        ({"Content-Type": "multipart/form-data; boundary=x"}, 415, "application/json"),
        ({"Content-Type": None}, 415, "application/json"),
        ({"Content-Type": "application/json; charset=latin-1"}, 415, "application/json"),
        # the page's token
        ({TOKEN_HEADER: None}, 403, TOKEN_HEADER),
        ({TOKEN_HEADER: "x" * 43}, 403, TOKEN_HEADER),
        ({TOKEN_HEADER: "é".encode("latin-1")}, 403, TOKEN_HEADER),
    ],
)
def test_an_action_not_from_the_console_page_is_refused(
    refusing: Served, headers: dict, status: int, words: str
):
    port = refusing.host.rsplit(":", 1)[1]
    sent = {k.replace("_", "-"): v for k, v in own(refusing).items()}
    for name, value in headers.items():
        sent.pop(name, None)
        if value is not None:
            sent[name] = value.replace("{port}", port) if isinstance(value, str) else value
    before = refusing.files()
    response = refusing.http.post(ROLLBACK, content=json.dumps(GOOD).encode(), headers=sent)
    refused(refusing, response, status, words, before)


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({**GOOD, "reason": "x" * (MAX_REASON_CHARS + 1)}, f"at most {MAX_REASON_CHARS}"),
        ({**GOOD, "reason": "first line\nforged: second line"}, "control character (U+000A)"),
        ({**GOOD, "reason": "ok\x00"}, "control character (U+0000)"),
        ({**GOOD, "reason": "looks fine \u202eenilno"}, "control character (U+202E)"),
        ({**GOOD, "reason": "  "}, "reason is required"),
        ({**GOOD, "actor": "mallory"}, "unknown field(s) 'actor'"),
        ({"reason": "x"}, "not confirmed"),
        ({**GOOD, "confirm": "true"}, "not confirmed"),
        ([GOOD], "one JSON object"),
        ({**GOOD, "percent": True}, "percent"),
        ({**GOOD, "to": "x" * 100}, "stage name"),
    ],
)
def test_a_bad_body_from_the_page_gets_400_and_changes_nothing(
    refusing: Served, body: Any, words: str
) -> None:
    before = refusing.files()
    refused(refusing, refusing.post(body, **own(refusing)), 400, words, before)


@pytest.mark.parametrize(
    "raw",
    [
        b"[" * 4000,
        b'{"reason": "a", "reason": "b", "confirm": true}',
        b"\xff\xfe{}",
        b"",
        b'{"reason": "\\ud800", "confirm": true}',
    ],
)
def test_malformed_json_gets_400(refusing: Served, raw: bytes) -> None:
    before = refusing.files()
    response = refusing.post(content=raw, **own(refusing))
    assert response.status_code == 400, response.text
    assert refusing.files() == before


def test_a_body_over_the_limit_gets_413_declared_or_streamed(refusing: Served) -> None:
    before = refusing.files()
    huge = json.dumps({**GOOD, "reason": "x" * 2_000_000}).encode()  # the report's 2 MB reason
    refused(refusing, refusing.post(content=huge, **own(refusing)), 413, f"at most {MAX_BODY_BYTES}", before)

    def chunks() -> Iterator[bytes]:  # no Content-Length: the server counts what arrives
        yield b'{"confirm": true, "reason": "'
        for _ in range(64):
            yield b"y" * 1024
        yield b'"}'

    headers = {k.replace("_", "-"): v for k, v in own(refusing).items()}
    streamed = refusing.http.post(ROLLBACK, content=chunks(), headers=headers)
    refused(refusing, streamed, 413, f"over {MAX_BODY_BYTES}", before)


def test_the_pages_own_request_is_applied_and_audited_as_the_server_user(served: Served) -> None:
    response = served.post(GOOD, **own(served))
    assert response.status_code == 200, response.text
    assert response.json()["state"]["stage"] == "SHADOW"
    entry = served.store.history()[-1]
    assert (entry.action, entry.reason, entry.actor) == (
        "rollback",
        GOOD["reason"],
        f"{default_actor()} (console)",
    )
    # a browser's same-origin request without Origin (Sec-Fetch-Site says so) is accepted too
    set_state(served.store, Stage.CANARY, 10)
    headers = own(served)
    del headers["Origin"]
    assert served.post(GOOD, Sec_Fetch_Site="same-origin", **headers).status_code == 200
    # and the page opened as http://localhost:<port> (the server is bound to loopback)
    set_state(served.store, Stage.CANARY, 10)
    port = served.host.rsplit(":", 1)[1]
    local = {**own(served), "Origin": f"http://localhost:{port}", "Host": f"localhost:{port}"}
    assert served.post(GOOD, **local).status_code == 200


def test_the_page_carries_the_token_only_for_its_own_host(served: Served) -> None:
    token = page_token(served.http)
    assert len(token) >= 40
    rebound = served.http.get("/console", headers={"Host": "evil.example"})
    assert rebound.status_code == 200 and token not in rebound.text
    assert 'content="">' in rebound.text
    page = served.http.get("/console")
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert page.headers["x-frame-options"] == "DENY"
    # another server has another token: one server's page cannot act on another
    other = Served(served.store.directory.parent / "other")
    try:
        assert page_token(other.http) != token
        before = other.files()
        headers = {**own(other), "X_Console_Token": token}
        refused(other, other.post(GOOD, **headers), 403, TOKEN_HEADER, before)
    finally:
        other.close()


def test_without_allow_actions_the_page_has_no_token_and_actions_get_403(tmp_path: Path) -> None:
    env = Served(tmp_path, allow_actions=False)
    try:
        assert page_token(env.http) == ""
        before = env.files()
        headers = {"Origin": env.server.url, "Content-Type": "application/json", TOKEN_HEADER: ""}
        response = env.http.post(ROLLBACK, json=GOOD, headers=headers)
        refused(env, response, 403, "--allow-actions", before)
    finally:
        env.close()


class BlockingSource:
    """The console's real source, counting its reads; armed, a read waits until released."""

    def __init__(self, inner: Any):
        self.inner = inner
        self.reads = 0
        self.armed = False
        self.entered, self.release = threading.Event(), threading.Event()

    def validation_runs(self) -> Any:
        self.reads += 1
        if self.armed:
            self.entered.set()
            assert self.release.wait(60), "the test never released the read"
        return self.inner.validation_runs()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_reads_are_answered_while_an_unknown_report_id_waits_for_a_slow_status_read(served: Served) -> None:
    console = served.server.service.console
    assert served.http.get("/v1/migration/status").status_code == 200  # the evidence exists
    console.source = source = BlockingSource(console.source)
    source.armed = True
    answers: list[int] = []
    report = threading.Thread(
        target=lambda: answers.append(served.http.get("/v1/migration/reports/x1/report.html").status_code)
    )
    report.start()
    try:
        assert source.entered.wait(30), "the unknown id never caused a re-read"
        # the re-read is under way (blocked): the event loop still answers reads
        with httpx.Client(base_url=served.server.url, timeout=10) as other:
            counts = other.get("/v1/tweets/3/counts")
            health = other.get("/healthz")
        assert counts.status_code == 200 and counts.json()["total"] == 6
        assert health.status_code == 200
        assert not source.release.is_set() and report.is_alive()
    finally:
        source.release.set()
        report.join(60)
    assert answers == [404]


def test_many_unknown_report_ids_cause_at_most_one_status_read(served: Served) -> None:
    service = served.server.service
    service.refresher.stop()  # only requests read the status in this test
    service.refresher.join(30)
    console = service.console
    assert served.http.get("/v1/migration/status").status_code == 200
    console.source = source = BlockingSource(console.source)
    console.report_refresh_s = 3600.0  # one forced re-read for the whole test, however slow the machine
    statuses: list[int] = []

    def ask(n: int) -> None:
        with httpx.Client(base_url=served.server.url, timeout=30) as http:
            statuses.extend(
                http.get(f"/v1/migration/reports/x{n}-{i}/report.html").status_code for i in range(5)
            )

    threads = [threading.Thread(target=ask, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert statuses == [404] * 40
    assert source.reads == 1  # the first unknown id re-read the runs; the 39 others did not
    metrics = served.http.get("/metrics").text
    assert metric(metrics, 'kappa_serving_console_status_reads_total{trigger="report"}') == 1
