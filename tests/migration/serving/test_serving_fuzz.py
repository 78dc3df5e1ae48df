"""Fuzzing the serving API: whatever the path, query string, method, headers or body, the
answer is a 2xx or a 4xx, never a 5xx, and the server stays up.

The bulk goes through Starlette's TestClient against the real app object (its lifespan
starts the real snapshot and refresher over a real warehouse and state folder); a shorter run
goes to a live uvicorn server on 127.0.0.1 over one keep-alive connection, which must stay
open from the first request to the last. Bounded and derandomized under the "ci" profile;
`make fuzz` runs them at length with random seeds.
"""

from __future__ import annotations

import http.client
import json
import string
import warnings
from typing import Callable, Iterator
from urllib.parse import quote

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from migration.cutover import LocalStateStore, Stage
from migration.serving import ServingSettings, create_app, start_in_thread
from migration.serving.action_guard import TOKEN_HEADER
from pipelines.warehouse import Warehouse
from tests.migration.serving.test_serving_api import aggregate_rows, set_state

with warnings.catch_warnings():  # Starlette suggests httpx2; httpx is what the project has
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

pytestmark = pytest.mark.fuzz
# The live server's run: a fifth of the profile's examples (40 under "ci"), 2,000 at most.
LIVE = settings(max_examples=max(20, min(settings.default.max_examples // 5, 2_000)))

EDGE_VALUES = [
    "", " ", "0", "-0", "1", "-1", "9223372036854775807", "9223372036854775808", "-9223372036854775809",
    "100000000000000000000", "1" * 4301, "-62135596800000", "-62135596800001", "253402300799999",
    "253402300800000", "\u00b2", "\u0661\u0662", "\uff11", "1e3", "0x10", "1_000", "NaN", "inf",
    "2026-01-05T10:00:00Z", "2026-01-05T10:00:00+01:00", "2026-01-05T10:00:00 01:00", "0001-01-01T00:00:00+01:00",
    "9999-12-31T23:59:59-01:00", "2026-13-45T00:00:00Z", "T", "like", "retweet", "\x00", "%", "\ud800",
]  # fmt: skip
ROUTES = [
    "/v1/tweets/{}/counts", "/healthz", "/metrics", "/console", "/console/{}", "/v1/migration/status",
    "/v1/migration/reports/{}/report.html", "/v1/migration/advance", "/v1/migration/rollback", "/{}", "/{}/{}",
]  # fmt: skip
METHODS = ["GET", "GET", "GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"]
PARAMS = ["start", "end", "event_type", "tweet_id", "since", "", "start[]"]
# The targets of the report, run first in every profile (each gave a 500 and a dropped connection).
REPORTED = [
    "/v1/tweets/%C2%B2/counts", "/v1/tweets/" + "1" * 4301 + "/counts", "/v1/tweets/%D9%A1%D9%A2/counts",
    "/v1/tweets/1/counts?start=100000000000000000000", "/v1/tweets/1/counts?start=" + "1" * 4301,
]  # fmt: skip


def reported(test: Callable[..., None]) -> Callable[..., None]:
    for target in REPORTED:
        test = example(method="GET", target=target)(test)
    return test


def encoded(text: str) -> str:
    return quote(text.encode("utf-8", "surrogatepass"), safe="")


raw_escape = st.integers(0, 255).map(lambda b: f"%{b:02X}")  # also bytes that are not UTF-8
value = st.one_of(
    st.sampled_from(EDGE_VALUES),
    st.integers(-(10**25), 10**25).map(str),
    st.text(max_size=40),
    st.text(string.digits + "-+:TZ. ", max_size=30),
)
segment = st.one_of(
    value.map(encoded),
    st.lists(raw_escape, min_size=1, max_size=4).map("".join),
    st.sampled_from(["..", ".", "console.js", "console.css", "x1"]),
)
query = st.lists(
    st.tuples(st.one_of(st.sampled_from(PARAMS), st.text(max_size=10)).map(encoded), value.map(encoded)),
    max_size=4,
).map(lambda pairs: "&".join(f"{k}={v}" for k, v in pairs))


@st.composite
def targets(draw: st.DrawFn) -> str:
    """A request target: a known route with fuzzed parts, or anything, plus a query string."""
    route = draw(st.sampled_from(ROUTES))
    path = route.format(*(draw(segment) for _ in range(route.count("{}"))))
    q = draw(query)
    return path + ("?" + q if q else "")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> tuple[ServingSettings, LocalStateStore]:
    root = tmp_path_factory.mktemp("fuzz")
    warehouse = Warehouse(root / "warehouse")
    for arm in ("legacy_speed", "kappa_stream"):
        warehouse.append(arm, aggregate_rows(arm, range(1, 51), lambda t, w: 1 + w))
    store = LocalStateStore(root / "cutover")
    set_state(store, Stage.CANARY, 20)
    settings_ = ServingSettings(
        warehouse.root, 10_000, 60_000, settle_ms=0, refresh_s=0.2, allow_actions=True
    )
    return settings_, store


@pytest.fixture(scope="module")
def client(served) -> Iterator[TestClient]:
    # raise_server_exceptions: an exception the app did not turn into a 4xx fails the example
    with TestClient(create_app(*served), raise_server_exceptions=True) as test_client:
        yield test_client


def page_token(client: TestClient) -> str:
    page = client.get("/console").text
    return page.split('name="console-token" content="', 1)[1].split('"', 1)[0]


@given(method=st.sampled_from(METHODS), target=targets())
@reported
def test_any_path_and_query_gets_a_2xx_or_4xx(client: TestClient, method: str, target: str) -> None:
    response = client.request(method, target)
    assert response.status_code < 500, (method, target, response.text[:300])
    if response.status_code >= 400 and method != "HEAD":
        assert "error" in response.json()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
action_bodies = st.one_of(
    st.binary(max_size=200),
    st.fixed_dictionaries(
        {},
        optional={
            "reason": st.one_of(st.text(max_size=600), json_values),
            "confirm": st.sampled_from([True, 1, "true"]),
            "to": st.one_of(st.sampled_from(["CANARY", "FULL", "SHADOW", "canary"]), json_values),
            "percent": st.one_of(st.integers(-5, 200), json_values),
            "actor": st.text(max_size=5),
        },
    ).map(lambda body: json.dumps(body).encode()),  # fmt: skip
    json_values.map(lambda v: json.dumps(v).encode()),
)


@given(
    action=st.sampled_from(["advance", "rollback"]),
    method=st.sampled_from(["POST", "POST", "POST", "GET", "PUT"]),
    origin=st.sampled_from(["http://testserver", "http://testserver", "http://evil.example", "null", None]),
    host=st.sampled_from(["testserver", "testserver", "evil.example", "testserver:80", "127.0.0.1"]),
    content_type=st.sampled_from(
        ["application/json", "application/json", "text/plain", "application/json; charset=utf-16", None]
    ),
    own_token=st.booleans(),
    fetch_site=st.sampled_from([None, None, "same-origin", "cross-site", "none"]),
    body=action_bodies,
)  # fmt: skip
def test_any_action_request_gets_a_2xx_or_4xx(
    client: TestClient, action, method, origin, host, content_type, own_token, fetch_site, body
) -> None:
    headers = {"Host": host, TOKEN_HEADER: page_token(client) if own_token else "x"}
    for name, header in (("Origin", origin), ("Content-Type", content_type), ("Sec-Fetch-Site", fetch_site)):
        if header is not None:
            headers[name] = header
    response = client.request(method, f"/v1/migration/{action}", content=body, headers=headers)
    assert response.status_code < 500, (action, headers, body[:200], response.text[:300])
    assert "error" in response.json() or response.status_code == 200


@pytest.fixture(scope="module")
def live(served) -> Iterator[http.client.HTTPConnection]:
    server = start_in_thread(*served)
    host, port = server.url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    conn.connect()
    yield conn
    conn.close()
    server.stop()


@LIVE
@given(method=st.sampled_from(["GET", "GET", "HEAD", "OPTIONS", "DELETE"]), target=targets())
@reported
def test_a_live_server_answers_on_one_keep_alive_connection(
    live: http.client.HTTPConnection, method: str, target: str
) -> None:
    assert live.sock is not None
    local = live.sock.getsockname()
    live.request(method, target)
    response = live.getresponse()
    response.read()
    assert response.status < 500, (method, target)
    assert not response.will_close and live.sock is not None, (
        f"the server closed the connection after {target!r}"
    )
    assert live.sock.getsockname() == local  # the same connection, not a new one
    live.request("GET", "/healthz")
    health = live.getresponse()
    assert health.status == 200 and json.loads(health.read())["status"] == "ok"


def test_what_the_fuzzing_got_accepted_is_audited_as_the_server_user(served, client: TestClient) -> None:
    """Run after the fuzz targets: any action they got accepted is in the audit log with the
    server's actor and a one-line, bounded reason, whatever the bodies said."""
    _, store = served
    history = store.history()
    assert all(entry.actor.endswith(" (console)") for entry in history), [e.actor for e in history]
    assert all(entry.reason.isprintable() and len(entry.reason) <= 500 for entry in history)
