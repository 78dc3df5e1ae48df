"""The speed job's BigQuery sink: rows of the checkpointed sink buffer -> streaming inserts.

Rows go through Google's client library (`google-cloud-bigquery`, pinned in
requirements/flink.lock beside PyFlink): `Client.insert_rows_json` (BigQuery's
`tabledata.insertAll`) into the tables Terraform creates (the job needs no table-create right):

- `legacy_speed` -> `PROJECT:DATASET.legacy_speed` (Terraform's `legacy` dataset, read by
  the `legacy_serving` view beside `legacy_batch`);
- `dead_letter` -> the dead-letter table (`migration.dead_letter`);
- `speed_late` (diagnostics, no table in Terraform) stays in the local Parquet warehouse.

Endpoint and credentials: against an emulator (`--bigquery-endpoint http://host:port`,
e.g. bqemulator) the client sends no credentials (`AnonymousCredentials`) to that endpoint
(`client_options`). Against BigQuery itself it takes `google-auth`'s application default
credentials: on Dataproc the cluster's service account (which needs
`roles/bigquery.dataEditor` on the two datasets), elsewhere
`GOOGLE_APPLICATION_CREDENTIALS` or `gcloud auth application-default login`.

A write is at least once: the sink clears its Flink buffer only after every insert of a
flush succeeded; a refused connection, a timeout, or a 429/5xx answer is retried with
backoff (`RETRY`), and anything else, a row BigQuery refused included, fails the task:
Flink restores the last checkpoint and the buffered rows are written again. Aggregate rows
carry an insertId made from their content (`row_ids`: BigQuery's best-effort dedup drops a
re-sent row), and `legacy_speed_current` collapses a row written twice (the same key and
count).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import time
import warnings
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pipelines.errors import BigQueryWriteError, first_line

BATCH_ROWS = 500  # BigQuery recommends at most 500 rows per insertAll request
RETRY_TIMEOUT_S = 30.0  # then the task fails and Flink retries from the last checkpoint
INSERT_TIMEOUT_S = 60.0  # one request
_TIMESTAMPS = ("window_start", "window_end", "emitted_at", "failed_at")


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


def _google() -> Any:
    """The client library, imported when a target is used (the local sink never needs it)."""
    with warnings.catch_warnings():  # google.api_core's notice about Python 3.11's end of life
        warnings.simplefilter("ignore", FutureWarning)
        from google.cloud import bigquery

    return bigquery


def retry_policy(timeout_s: float = RETRY_TIMEOUT_S) -> Any:
    """What is retried: a refused or dropped connection, a timeout, 429 and 5xx answers."""
    import requests
    from google.api_core import exceptions as gexc
    from google.api_core.retry import Retry, if_exception_type
    from google.auth import exceptions as auth_exc

    transient = if_exception_type(
        gexc.TooManyRequests, gexc.InternalServerError, gexc.BadGateway, gexc.ServiceUnavailable,
        gexc.GatewayTimeout, ConnectionError, requests.ConnectionError, requests.Timeout,
        auth_exc.TransportError,
    )  # fmt: skip
    return Retry(predicate=transient, initial=0.5, maximum=8.0, multiplier=2.0, timeout=timeout_s)


@functools.lru_cache(maxsize=4)
def client_for(target: BigQueryTarget) -> Any:
    """One client per target and process: the emulator's without credentials, else ADC."""
    bigquery = _google()
    from google.auth import exceptions as auth_exc

    try:
        if target.endpoint:
            from google.api_core.client_options import ClientOptions
            from google.auth.credentials import AnonymousCredentials

            return bigquery.Client(project=target.project, credentials=AnonymousCredentials(),
                                   client_options=ClientOptions(api_endpoint=target.endpoint))  # fmt: skip
        return bigquery.Client(project=target.project)
    except auth_exc.DefaultCredentialsError as exc:
        raise BigQueryWriteError(
            f"no Google application default credentials ({first_line(exc)}): run on a GCP VM, "
            "set GOOGLE_APPLICATION_CREDENTIALS, or use an emulator (--bigquery-endpoint)"
        ) from exc


def _first_error(errors: list[dict[str, Any]]) -> str:
    first = errors[0]
    detail = "; ".join(str(e.get("message") or e.get("reason")) for e in first.get("errors") or [])
    return first_line(f"row {first.get('index')}: {detail or first}")


def insert_all(
    target: BigQueryTarget, dataset: str, table: str, rows: list[dict[str, Any]], retry: Any = None
) -> int:
    """Streaming-insert `rows` (sink rows) into DATASET.TABLE; transient failures are retried
    (`retry`, default `retry_policy()`), anything else raises BigQueryWriteError."""
    from google.api_core import exceptions as gexc
    from google.auth import exceptions as auth_exc

    client, where = client_for(target), f"{target.project}.{dataset}.{table}"
    retry = retry if retry is not None else retry_policy()
    for start in range(0, len(rows), BATCH_ROWS):
        batch = rows[start : start + BATCH_ROWS]
        try:
            errors = client.insert_rows_json(where, [json_row(r) for r in batch], row_ids=[insert_id(r) for r in batch],
                                             retry=retry, timeout=INSERT_TIMEOUT_S)  # fmt: skip
        except gexc.RetryError as exc:
            raise BigQueryWriteError(
                f"BigQuery {where}: still failing after retries ({first_line(exc.cause or exc)})"
            ) from exc
        except (gexc.GoogleAPIError, auth_exc.GoogleAuthError, OSError) as exc:
            raise BigQueryWriteError(f"BigQuery {where}: {first_line(exc)}") from exc
        if errors:
            raise BigQueryWriteError(
                f"BigQuery {where}: {len(errors)} row(s) refused, {_first_error(errors)}"
            )
    return len(rows)


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
