"""The validator's BigQuery lookups on bqemulator: a table is absent only when BigQuery says
"not found"; a refused lookup (here a 403 injected by a forwarding proxy in front of the
emulator, as a revoked grant or a quota answers) is an error, never "no batch_runs table".
A spec's filter runs on BigQuery as the Ibis predicate compiled for BigQuery."""

from __future__ import annotations

import http.client
import json
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Iterator
from urllib.parse import urlsplit

import pytest

from migration.validator import build_inputs
from migration.validator.backends import BigQueryBackend, is_not_found
from migration.validator.spec import parse_spec
from migration.validator.spec_sources import SpecEngine, open_sides
from pipelines.bigquery_io import insert_rows
from pipelines.config import load_config
from pipelines.errors import InputError
from pipelines.stack.local import ROOT

pytestmark = pytest.mark.cloud
CONFIG = load_config(ROOT / "config" / "demo.yaml")
DENIED = {
    "error": {
        "code": 403,
        "message": "Access Denied: Table batch_runs: Permission bigquery.tables.get denied",
        "errors": [{"reason": "accessDenied", "message": "Access Denied"}],
        "status": "PERMISSION_DENIED",
    }
}


@pytest.fixture
def dataset(cloud, bq) -> str:
    """A fresh dataset with `pairs` (k, m, region): keys 1..4, eu for the even ones."""
    from google.cloud import bigquery

    name = f"v_{uuid.uuid4().hex[:10]}"
    bq.create_dataset(f"{cloud.project}.{name}")
    schema = [bigquery.SchemaField(c, t) for c, t in (("k", "INT64"), ("m", "INT64"), ("region", "STRING"))]
    table = f"{cloud.project}.{name}.pairs"
    bq.create_table(bigquery.Table(table, schema=schema))
    insert_rows(
        bq, table, [{"k": k, "m": 10 * k, "region": "eu" if k % 2 == 0 else "us"} for k in range(1, 5)]
    )
    return name


@pytest.fixture
def denying_proxy(cloud) -> Iterator[str]:
    """host:port of a proxy forwarding to the emulator, except lookups of table batch_runs,
    which it answers 403 accessDenied as BigQuery does."""
    upstream = urlsplit(f"http://{cloud.environment['BIGQUERY_EMULATOR_HOST'].split('://')[-1]}")

    class Forward(BaseHTTPRequestHandler):
        def _handle(self) -> None:
            if "/tables/batch_runs" in self.path:
                body = json.dumps(DENIED).encode()
                self.send_response(403)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return
            length = int(self.headers.get("Content-Length") or 0)
            payload = self.rfile.read(length) if length else None
            conn = http.client.HTTPConnection(str(upstream.hostname), upstream.port, timeout=60)
            headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
            conn.request(self.command, self.path, body=payload, headers=headers)
            answer = conn.getresponse()
            data = answer.read()
            self.send_response(answer.status)
            for key, value in answer.getheaders():
                if key.lower() not in ("transfer-encoding", "connection", "content-length"):
                    self.send_header(key, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            conn.close()

        do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _handle

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Forward)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def backend(cloud, dataset: str) -> BigQueryBackend:
    inputs = build_inputs(CONFIG, left="pairs", right="other_pairs", bigquery_project=cloud.project,
                          bigquery_dataset=dataset, record=False)  # fmt: skip
    return BigQueryBackend(inputs)


def test_absent_only_when_bigquery_says_not_found(cloud, dataset: str) -> None:
    found = backend(cloud, dataset)
    assert found.has_table("pairs") is True
    assert found.has_table("batch_runs") is False
    assert found.has_table(f"v_{uuid.uuid4().hex[:10]}.pairs") is False  # no such dataset: not found too


def test_a_refused_lookup_is_an_error_not_an_absent_table(
    cloud, dataset: str, denying_proxy: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BIGQUERY_EMULATOR_HOST", denying_proxy)
    through_proxy = backend(cloud, dataset)
    assert through_proxy.has_table("pairs") is True  # the proxy forwards everything else
    with pytest.raises(InputError) as caught:
        through_proxy.has_table("batch_runs")
    assert f"BigQuery table {dataset}.batch_runs: cannot tell whether it exists" in str(caught.value)
    assert "Access Denied" in str(caught.value)
    assert not is_not_found(caught.value.__cause__)  # type: ignore[arg-type]
    with pytest.raises(InputError, match="cannot tell whether it exists"):  # the arm's finality needs it
        through_proxy.arm(through_proxy.inputs.left)


def test_a_spec_filter_runs_on_bigquery(cloud, dataset: str) -> None:
    table = f"{cloud.project}.{dataset}.pairs"
    spec = parse_spec({"name": "pairs", "left": {"bigquery": table}, "right": {"bigquery": table}, "keys": ["k"],
                       "metrics": ["m"], "filter": "region = 'eu' AND k BETWEEN 2 AND 4 OR m IN (10)"})  # fmt: skip
    engine = SpecEngine(spec, None)
    assert engine.name == "bigquery" and engine.emulated
    sides = open_sides(engine, spec)
    for side in (sides.left, sides.right):
        # Through the jobs API, as the runner reads BigQuery (bqemulator has no Storage API read).
        sql = engine.con.compile(side.select("k"))
        assert "region" in sql and "BETWEEN" not in sql  # the predicate, compiled for BigQuery
        assert sorted(row["k"] for row in engine.con.client.query(sql).result()) == [1, 2, 4]
