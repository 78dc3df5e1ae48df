"""The speed job's BigQuery sink (`insert_all`, through Google's client) against bqemulator,
behind a recording proxy: content insertIds for aggregate rows and none for dead letters, no
credentials sent to an emulator, transient refusals (429, 500, 503) retried with the same
request, BigQuery's partial insertErrors answer and a missing table failing the flush at once
with one line (the Flink task fails and replays its checkpoint: at least once), a dead
endpoint given up after the retry deadline, and application default credentials wanted
without an emulator. bqemulator never answers with insertErrors (it stores unknown fields and
nulls, and answers a value it cannot store with a 500): the proxy gives BigQuery's answer. The
whole job's BigQuery path is test_speed_bigquery.py."""

from __future__ import annotations

import base64
import http.server
import json
import random
import threading
import urllib.error
import urllib.request
from pathlib import Path
from typing import Iterator

import pytest

from lambda_legacy.speed.bigquery_sink import (
    BigQueryTarget,
    BigQueryWriteError,
    insert_all,
    insert_id,
    retry_policy,
)
from lambda_legacy.speed.logic import aggregate_row, dead_letter_row
from pipelines.bigquery_io import query_rows
from pipelines.events import BadRecord
from pipelines.stack.private import free_port

pytestmark = [pytest.mark.cloud]
T = 1_767_571_200_000 + 14 * 86_400_000  # the speed job test's period (its own tweet ids)


# -- the sink through Google's client, against bqemulator (behind a recording proxy) --------


def is_insert(path: str) -> bool:
    return path.split("?", 1)[0].endswith("/insertAll")


class Proxy:
    """An HTTP proxy in front of bqemulator that records each request and answers the first
    `fail` insertAll requests itself: `fail_status` with `fail_body` or a JSON error."""

    def __init__(self, upstream: str, fail: int = 0, fail_status: int = 503):
        self.upstream, self.fail, self.fail_status = upstream, fail, fail_status
        self.fail_body: bytes | None = None  # else a JSON error of fail_status
        self.requests: list[tuple[str, str, dict[str, str], bytes]] = []
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self._forward()

            def do_POST(self) -> None:
                self._forward()

            def _forward(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                proxy.requests.append((self.command, self.path, dict(self.headers), body))
                if is_insert(self.path) and proxy.fail > 0:
                    proxy.fail -= 1
                    error = b'{"error": {"code": %d, "message": "try later"}}' % proxy.fail_status
                    return self._answer(proxy.fail_status, proxy.fail_body or error)
                request = urllib.request.Request(proxy.upstream + self.path, data=body or None, method=self.command,
                                                 headers={"Content-Type": "application/json"})  # fmt: skip
                try:
                    with urllib.request.urlopen(request, timeout=60) as answer:
                        self._answer(answer.status, answer.read())
                except urllib.error.HTTPError as exc:
                    self._answer(exc.code, exc.read())

            def _answer(self, status: int, data: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def inserts(self) -> list[dict]:
        return [json.loads(body) for _, path, _, body in self.requests if is_insert(path)]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def emulator(cloud) -> str:
    host = cloud.environment["BIGQUERY_EMULATOR_HOST"]
    return host if "://" in host else f"http://{host}"


@pytest.fixture
def proxy(cloud) -> Iterator[Proxy]:
    p = Proxy(emulator(cloud))
    yield p
    p.close()


def speed_rows(tweet: int, n: int = 3) -> list[dict]:
    return [{**aggregate_row(T + i * 10_000, T + (i + 1) * 10_000, tweet, "like", i + 1), "emitted_at": T + 99_000}
            for i in range(n)]  # fmt: skip


def stored(bq, project: str, tweet: int) -> list[tuple]:
    sql = (f"SELECT UNIX_MILLIS(window_start) AS w, count FROM `{project}.legacy.legacy_speed` "
           f"WHERE tweet_id = {tweet} ORDER BY w")  # fmt: skip
    return [(r["w"], r["count"]) for r in query_rows(bq, sql, "legacy_speed")]


def test_the_sink_writes_through_the_client_with_content_insert_ids(cloud, bq, proxy: Proxy):
    target = BigQueryTarget.parse(f"{cloud.project}:legacy", "migration.dead_letter", proxy.url)
    tweet = random.randrange(10**9, 2 * 10**9)
    rows = speed_rows(tweet)
    assert insert_all(target, "legacy", "legacy_speed", rows) == 3
    bad = dead_letter_row(BadRecord(f"not json {tweet}".encode(), "not JSON: x", "legacy_speed", T))
    assert insert_all(target, "migration", "dead_letter", [bad, bad]) == 2
    assert stored(bq, cloud.project, tweet) == [(T + i * 10_000, i + 1) for i in range(3)]
    speed, dead = proxy.inserts()
    assert [r["insertId"] for r in speed["rows"]] == [insert_id(r) for r in rows]  # the content ids
    assert speed["rows"][0]["json"]["window_start"] == "2026-01-19T00:00:00.000Z"
    assert [r.get("insertId") for r in dead["rows"]] == [None, None]  # two bad records are two records
    assert base64.b64decode(dead["rows"][0]["json"]["payload"]) == f"not json {tweet}".encode()
    assert all("authorization" not in {k.lower() for k in h} for _, _, h, _ in proxy.requests)  # anonymous


@pytest.mark.parametrize("status", [429, 500, 503])
def test_a_transient_refusal_is_retried_and_the_rows_land_once(cloud, bq, status: int):
    proxy = Proxy(emulator(cloud), fail=2, fail_status=status)
    try:
        target = BigQueryTarget.parse(f"{cloud.project}:legacy", "migration.dead_letter", proxy.url)
        tweet = random.randrange(10**9, 2 * 10**9)
        assert insert_all(target, "legacy", "legacy_speed", speed_rows(tweet, 2)) == 2
        inserts = proxy.inserts()
        assert len(inserts) == 3 and inserts[0] == inserts[2]  # the same request, the same insertIds
        assert stored(bq, cloud.project, tweet) == [(T, 1), (T + 10_000, 2)]
    finally:
        proxy.close()


# BigQuery's documented answer to a request with an invalid row (tabledata.insertAll): 200,
# the bad row's errors, and "stopped" for the rows it did not insert because of it. bqemulator
# never answers so (it takes unknown fields and nulls, and answers a bad value with a 500),
# so the proxy gives it.
PARTIAL = {"kind": "bigquery#tableDataInsertAllResponse", "insertErrors": [
    {"index": 1, "errors": [{"reason": "invalid", "location": "count", "message": "Cannot convert value to integer."}]},
    {"index": 0, "errors": [{"reason": "stopped", "location": "", "message": ""}]},
]}  # fmt: skip


def test_rows_bigquery_refuses_fail_the_flush_without_a_retry(cloud, proxy: Proxy):
    proxy.fail, proxy.fail_status, proxy.fail_body = 1, 200, json.dumps(PARTIAL).encode()
    target = BigQueryTarget.parse(f"{cloud.project}:legacy", "migration.dead_letter", proxy.url)
    with pytest.raises(
        BigQueryWriteError, match=r"legacy_speed: 2 row\(s\) refused, row 1: Cannot convert"
    ) as err:
        insert_all(target, "legacy", "legacy_speed", speed_rows(random.randrange(10**9, 2 * 10**9), 2))
    assert "\n" not in str(err.value)
    assert len(proxy.inserts()) == 1  # not retried: the task fails and Flink replays the checkpoint


def test_a_value_the_emulator_cannot_store_is_retried_then_fails(cloud, proxy: Proxy):
    target = BigQueryTarget.parse(f"{cloud.project}:legacy", "migration.dead_letter", proxy.url)
    rows = speed_rows(random.randrange(10**9, 2 * 10**9), 2)
    rows[1]["count"] = "many"  # bqemulator: 500 internalError, which BigQuery's client retries
    with pytest.raises(BigQueryWriteError, match="still failing after retries .*500"):
        insert_all(target, "legacy", "legacy_speed", rows, retry=retry_policy(timeout_s=1.5))
    assert len(proxy.inserts()) >= 2


def test_a_missing_table_or_a_dead_endpoint_is_a_one_line_write_error(cloud, proxy: Proxy):
    target = BigQueryTarget.parse(f"{cloud.project}:legacy", "migration.dead_letter", proxy.url)
    with pytest.raises(BigQueryWriteError, match="no_such_table") as err:
        insert_all(target, "legacy", "no_such_table", speed_rows(1, 1))
    assert "\n" not in str(err.value) and len(proxy.inserts()) == 1
    dead = BigQueryTarget.parse(
        f"{cloud.project}:legacy", "migration.dead_letter", f"127.0.0.1:{free_port()}"
    )
    with pytest.raises(BigQueryWriteError, match="still failing after retries") as err:
        insert_all(dead, "legacy", "legacy_speed", speed_rows(1, 1), retry=retry_policy(timeout_s=1.5))
    assert "\n" not in str(err.value)


def test_without_an_emulator_the_client_wants_application_default_credentials(monkeypatch, tmp_path: Path):
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "no-such-key.json"))
    target = BigQueryTarget.parse("some-project:legacy", "migration.dead_letter")
    with pytest.raises(BigQueryWriteError, match="application default credentials") as err:
        insert_all(target, "legacy", "legacy_speed", speed_rows(1, 1))
    assert "\n" not in str(err.value)
