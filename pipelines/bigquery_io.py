"""BigQuery access shared by the arms' ledgers, the validator's result handler, the cutover
gate and the serving API: one client factory, and the tables and views Terraform creates,
built from the very same schema JSON and SQL files (terraform/modules/bigquery).

`BIGQUERY_EMULATOR_HOST` (e.g. `http://127.0.0.1:9050`, bqemulator's REST port) is honoured
by google-cloud-bigquery itself; this module swaps in anonymous credentials so no Google
login is looked for against the emulator.
"""

from __future__ import annotations

import contextlib
import json
import os
from contextlib import AbstractContextManager
from string import Template
from typing import Any, Iterable

from pipelines.emulator import google_errors, require_listening
from pipelines.errors import ConfigError, InputError, first_line
from pipelines.stack.component import ROOT

EMULATOR_ENV = "BIGQUERY_EMULATOR_HOST"
TERRAFORM_BIGQUERY = ROOT / "terraform" / "modules" / "bigquery"
LEGACY_SERVING_SQL = ROOT / "lambda_legacy" / "sql" / "legacy_serving.bigquery.sql"

# What terraform/modules/bigquery creates (legacy_enabled = true), as (dataset, table, schema file).
AGGREGATE_TABLES = (
    ("kappa", "kappa_stream"),
    ("kappa", "kappa_backfill"),
    ("legacy", "legacy_batch"),
    ("legacy", "legacy_speed"),
)
BOOKKEEPING_TABLES = (
    ("migration", "dead_letter", "dead_letter.json"),
    ("migration", "validation_runs", "validation_runs.json"),
    ("legacy", "batch_runs", "batch_runs.json"),
)
DATASETS = ("kappa", "legacy", "migration", "serving")


def bigquery_client(project: str, emulator: str | None = None) -> Any:
    """A google.cloud.bigquery Client for `project`; anonymous against an emulator
    (`emulator` as http://host:port, else $BIGQUERY_EMULATOR_HOST)."""
    try:
        from google.cloud import bigquery
    except ImportError as exc:  # pragma: no cover - installed with apache-beam[gcp]
        raise ConfigError("BigQuery needs google-cloud-bigquery: pip install google-cloud-bigquery") from exc
    endpoint = emulator or os.environ.get(EMULATOR_ENV)
    if endpoint:
        from google.api_core.client_options import ClientOptions
        from google.auth.credentials import AnonymousCredentials

        if "://" not in endpoint:
            endpoint = f"http://{endpoint}"
        require_listening(endpoint, "BigQuery")
        return bigquery.Client(
            project=project,
            credentials=AnonymousCredentials(),
            client_options=ClientOptions(api_endpoint=endpoint),
        )
    return bigquery.Client(project=project)


def bigquery_errors(what: str) -> AbstractContextManager[None]:
    """BigQuery's and connection errors inside the block as one line of ours about `what`,
    saying what to fix (pipelines/emulator.py: `google_errors`)."""
    host = os.environ.get(EMULATOR_ENV) or "bigquery.googleapis.com"
    return google_errors(what, "BigQuery", host, "create it with `kappactl up` or Terraform")


def query_rows(
    client: Any, sql: str, what: str, params: dict[str, str] | None = None
) -> list[dict[str, Any]]:
    """Rows of a query as dicts (read through the jobs API, never the Storage API);
    `params` are STRING query parameters (@name in the SQL)."""
    from google.cloud import bigquery

    config = bigquery.QueryJobConfig(
        query_parameters=[bigquery.ScalarQueryParameter(k, "STRING", v) for k, v in (params or {}).items()]
    )
    with bigquery_errors(what):
        return [dict(row.items()) for row in client.query(sql, job_config=config).result()]


def insert_rows(
    client: Any, table_id: str, rows: Iterable[dict[str, Any]], row_ids: list[str] | None = None
) -> None:
    """Streaming inserts into a pre-created table (the jobs need no table-create right)."""
    rows = list(rows)
    if not rows:
        return
    ids = {"row_ids": row_ids} if row_ids is not None else {}
    with bigquery_errors(f"BigQuery {table_id}"):
        errors = client.insert_rows_json(table_id, rows, **ids)
    if errors:
        raise InputError(f"BigQuery {table_id}: insert failed: {first_line(str(errors[0]))}")


def schema_fields(schema_file: str) -> list[Any]:
    """The SchemaFields of one of Terraform's schema JSON files."""
    from google.cloud import bigquery

    raw = json.loads((TERRAFORM_BIGQUERY / "schemas" / schema_file).read_text(encoding="utf-8"))
    return [bigquery.SchemaField.from_api_repr(column) for column in raw]


def schema_columns(schema_file: str) -> list[str]:
    raw = json.loads((TERRAFORM_BIGQUERY / "schemas" / schema_file).read_text(encoding="utf-8"))
    return [column["name"] for column in raw]


def table_specs() -> list[tuple[str, str, str]]:
    """(dataset, table, schema file) of every table Terraform creates."""
    return [(d, t, "aggregate.json") for d, t in AGGREGATE_TABLES] + list(BOOKKEEPING_TABLES)


def view_specs(
    project: str, batch_period_s: int, serving_source: str = "legacy"
) -> list[tuple[str, str, str]]:
    """(dataset, view, SQL) of every view Terraform creates, rendered from its SQL files."""
    current = (TERRAFORM_BIGQUERY / "sql" / "current_value.sql").read_text(encoding="utf-8")
    views = [
        (d, f"{t}_current", Template(current).substitute(project=project, dataset=d, table=t))
        for d, t in AGGREGATE_TABLES
    ]
    serving = Template(LEGACY_SERVING_SQL.read_text(encoding="utf-8")).substitute(
        project=project,
        dataset="legacy",
        batch_runs_table="batch_runs",
        batch_table="legacy_batch",
        speed_table="legacy_speed",
        batch_period_seconds=batch_period_s,
    )
    views.append(("legacy", "legacy_serving", serving))
    source = {
        "legacy": f"SELECT * FROM `{project}.legacy.legacy_serving`",
        "kappa": f"SELECT * FROM `{project}.kappa.kappa_stream_current`",
    }[serving_source]
    views.append(("serving", "interaction_counts", source))
    return views


def ensure_warehouse(client: Any, project: str, batch_period_s: int, serving_source: str = "legacy") -> None:
    """Create (if absent) the datasets, tables and views Terraform would create."""
    from google.api_core.exceptions import Conflict
    from google.cloud import bigquery

    with bigquery_errors(f"creating the BigQuery tables of {project}"):
        for dataset in DATASETS:
            client.create_dataset(bigquery.Dataset(f"{project}.{dataset}"), exists_ok=True)
        for dataset, table, schema_file in table_specs():
            client.create_table(
                bigquery.Table(f"{project}.{dataset}.{table}", schema=schema_fields(schema_file)),
                exists_ok=True,
            )
        for dataset, view, sql in view_specs(project, batch_period_s, serving_source):
            table = bigquery.Table(f"{project}.{dataset}.{view}")
            table.view_query = sql
            with contextlib.suppress(Conflict):
                client.create_table(table, exists_ok=True)
