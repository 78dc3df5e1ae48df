"""The speed job's BigQuery sink: rows of the checkpointed sink buffer -> streaming inserts.

The speed job runs in `.venv-flink` (PyFlink pins its own Beam and protobuf; no Google
client library there), so this module speaks BigQuery's REST API with the standard library
only: `tabledata.insertAll` into the tables Terraform creates (the job needs no
table-create right):

- `legacy_speed` -> `PROJECT:DATASET.legacy_speed` (Terraform's `legacy` dataset, read by
  the `legacy_serving` view beside `legacy_batch`);
- `dead_letter` -> the dead-letter table (`migration.dead_letter`);
- `speed_late` (diagnostics, no table in Terraform) stays in the local Parquet warehouse.

Endpoint and credentials: against an emulator (`--bigquery-endpoint http://host:port`,
e.g. bqemulator) no credentials are sent. Against BigQuery itself the token comes from the
metadata server of the VM the job runs on (Dataproc: the cluster's service account, which
needs `roles/bigquery.dataEditor` on the two datasets); that path is written to the API's
documentation but has not run here.

A write is at least once: the sink clears its Flink buffer only after every insert of a
flush succeeded; a failed insert fails the task, Flink restores the last checkpoint and the
buffered rows are written again. Aggregate rows carry an insertId made from their content
(BigQuery's best-effort dedup drops a re-sent row), and `legacy_speed_current` collapses
a row written twice (the same key and count).
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

GOOGLE_API = "https://bigquery.googleapis.com"
METADATA_TOKEN_URL = (
    "http://metadata.google.internal/computeMetadata/v1/instance/service-accounts/default/token"
)
BATCH_ROWS = 500  # BigQuery recommends at most 500 rows per insertAll request
RETRIES = 4
_TIMESTAMPS = ("window_start", "window_end", "emitted_at", "failed_at")


class BigQueryWriteError(RuntimeError):
    """An insert BigQuery refused or that could not reach it (fails the Flink task)."""


@dataclass(frozen=True)
class BigQueryTarget:
    """Where the speed job's rows go: `dataset` as PROJECT:DATASET (Terraform's `legacy`),
    dead letters to `dead_letter_table` (DATASET.TABLE, same project)."""

    dataset: str
    dead_letter_table: str = "migration.dead_letter"
    endpoint: str = ""  # http://host:port of an emulator; "" = BigQuery itself

    @classmethod
    def parse(cls, dataset: str, dead_letter_table: str, endpoint: str = "") -> BigQueryTarget:
        project, _, name = dataset.partition(":")
        if not project or not name or "." in name:
            raise ValueError(f"--bigquery-dataset {dataset!r}: use PROJECT:DATASET, e.g. my-proj:legacy")
        if dead_letter_table.count(".") != 1:
            raise ValueError(f"--bigquery-dead-letter-table {dead_letter_table!r}: use DATASET.TABLE")
        if endpoint and "://" not in endpoint:
            endpoint = f"http://{endpoint}"
        return cls(dataset, dead_letter_table, endpoint.rstrip("/"))

    @property
    def project(self) -> str:
        return self.dataset.partition(":")[0]

    def table_of(self, table: str) -> tuple[str, str] | None:
        """(dataset, table) in BigQuery for one of the sink's tables; None: stays local."""
        if table == "legacy_speed":
            return self.dataset.partition(":")[2], "legacy_speed"
        if table == "dead_letter":
            dataset, _, name = self.dead_letter_table.partition(".")
            return dataset, name
        return None


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def json_row(row: dict[str, Any]) -> dict[str, Any]:
    """A sink row (epoch-ms times, bytes payload) as a BigQuery JSON row: times as ISO 8601
    text (a JSON number means seconds to BigQuery, microseconds to bqemulator), BYTES as base64."""
    out = dict(row)
    for name in _TIMESTAMPS:
        if isinstance(out.get(name), int):
            out[name] = _iso(out[name])
    if isinstance(out.get("payload"), bytes):
        out["payload"] = base64.b64encode(out["payload"]).decode()
    return out


def insert_id(row: dict[str, Any]) -> str | None:
    """The content id of an aggregate row (the same window, key and count: the same id)."""
    if "window_start" not in row:
        return None  # dead letters: two equal bad records are two records
    key = f"{row['window_start']}|{row['tweet_id']}|{row['event_type']}|{row['count']}|{row['pane']}"
    return hashlib.sha256(key.encode()).hexdigest()[:32]


class _Token:
    """An OAuth access token from the metadata server, renewed a minute before it expires."""

    def __init__(self) -> None:
        self.value, self.expires = "", 0.0

    def get(self) -> str:
        if time.monotonic() < self.expires - 60:
            return self.value
        request = urllib.request.Request(METADATA_TOKEN_URL, headers={"Metadata-Flavor": "Google"})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - fixed URL
                body = json.loads(response.read())
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise BigQueryWriteError(
                f"no access token from the metadata server ({exc}); run on a GCP VM or use an emulator"
            ) from exc
        self.value, self.expires = body["access_token"], time.monotonic() + float(body["expires_in"])
        return self.value


_TOKEN = _Token()


def _post(url: str, body: dict[str, Any], endpoint: str) -> dict[str, Any]:
    headers = {"Content-Type": "application/json"}
    if not endpoint:
        headers["Authorization"] = f"Bearer {_TOKEN.get()}"
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers, method="POST")
    with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310 - configured endpoint
        return json.loads(response.read() or b"{}")


def insert_all(target: BigQueryTarget, dataset: str, table: str, rows: list[dict[str, Any]]) -> int:
    """Streaming-insert `rows` (sink rows) into DATASET.TABLE; retries a refused connection or
    a 5xx/429 answer with backoff, raises BigQueryWriteError on anything else."""
    base = target.endpoint or GOOGLE_API
    url = f"{base}/bigquery/v2/projects/{target.project}/datasets/{dataset}/tables/{table}/insertAll"
    for start in range(0, len(rows), BATCH_ROWS):
        batch = rows[start : start + BATCH_ROWS]
        entries = []
        for row in batch:
            entry: dict[str, Any] = {"json": json_row(row)}
            row_id = insert_id(row)
            if row_id:
                entry["insertId"] = row_id
            entries.append(entry)
        answer = _post_with_retries(url, {"rows": entries}, target.endpoint, f"{dataset}.{table}")
        errors = answer.get("insertErrors") or []
        if errors:
            raise BigQueryWriteError(f"BigQuery {dataset}.{table}: insert refused: {str(errors[0])[:300]}")
    return len(rows)


def _post_with_retries(url: str, body: dict[str, Any], endpoint: str, what: str) -> dict[str, Any]:
    for attempt in range(RETRIES + 1):
        try:
            return _post(url, body, endpoint)
        except urllib.error.HTTPError as exc:
            if exc.code not in (429, 500, 502, 503, 504) or attempt == RETRIES:
                detail = exc.read()[:300].decode(errors="replace")
                raise BigQueryWriteError(f"BigQuery {what}: HTTP {exc.code}: {detail}") from exc
        except (urllib.error.URLError, OSError) as exc:
            if attempt == RETRIES:
                raise BigQueryWriteError(f"BigQuery {what} at {url}: does not answer ({exc})") from exc
        time.sleep(min(8.0, 0.5 * 2**attempt))
    raise AssertionError("unreachable")


def write_rows(
    target: BigQueryTarget | None, warehouse: str, table: str, rows: list[dict[str, Any]], writer: str
) -> int:
    """Write one flush of the sink: to BigQuery when `target` maps the table, else (and
    without a target) as a Parquet segment of the local warehouse. Returns rows written."""
    from lambda_legacy.speed import logic

    if not rows:
        return 0
    where = target.table_of(table) if target else None
    if target is None or where is None:
        return logic.write_rows(warehouse, table, rows, writer)
    if table == logic.AGGREGATE_TABLE:
        stamp = int(time.time() * 1000)
        rows = [{**row, "emitted_at": stamp} for row in rows]
    return insert_all(target, where[0], where[1], rows)
