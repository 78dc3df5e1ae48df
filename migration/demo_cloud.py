"""The demo's cloud wiring (`kappactl demo --config config/gcp-emulated.yaml`): every arm
runs its cloud adapter against the emulators, exactly as on Google Cloud.

- Pub/Sub (pstest): the run's own project, topic and subscriptions; `archive-gcs` writes
  the Cloud Storage subscription's object layout under the run's own prefix (fake-gcs-server);
- BigQuery (bqemulator): the run's own project holding Terraform's datasets, tables and
  views (pipelines/bigquery_io.ensure_warehouse); the legacy batch (reading gs://), the
  legacy speed job, the kappa stream and the backfill stream their rows into it; the
  validator runs there and records `migration.validation_runs`; the serving API reads it;
- the cutover state is a GCS object under the run's prefix, moved through the gate.

What the demo adds around the cloud code:

- `migration.archive_events` in the run's BigQuery project: the valid events of the Cloud
  Storage archive with their arrival period, which the validator reads to explain
  differences (on Google Cloud a BigLake/external table over the bucket; bqemulator has no
  external tables, so the demo loads the new archive objects before each validation);
- the judge: after the run, the arms' BigQuery tables are copied into a Parquet warehouse
  beside the generator's truth ledger, and the archive objects into the local layout, and
  the three comparisons with truth run there on DuckDB as in the local demo (the truth
  ledger is the generator's local Parquet).

The migration pair's kappa arm lives in another dataset (`kappa.kappa_stream`); the
validator records it by arm name (`kappa_stream`), so config/policy.yaml's `gate_arms`
holds here as in the local demo.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from migration.demo_support import speed_state_args
from pipelines.archive import ArchivePart
from pipelines.config import Config, GcpConfig
from pipelines.stack.private import isolated_config, write_config

JUDGE_TABLES = {"legacy_batch": "legacy.legacy_batch", "legacy_speed": "legacy.legacy_speed",
                "batch_runs": "legacy.batch_runs", "kappa_stream": "kappa.kappa_stream",
                "kappa_backfill": "kappa.kappa_backfill"}  # fmt: skip
ARCHIVE_EVENTS = "migration.archive_events"
ARCHIVE_EVENTS_SCHEMA = (
    ("event_id", "STRING"),
    ("event_time_ms", "INT64"),
    ("event_type", "STRING"),
    ("tweet_id", "INT64"),
    ("arrival_start_ms", "INT64"),
    ("arrival_end_ms", "INT64"),
)
INSERT_BATCH = 5000


def run_gcp(config: Config, name: str) -> GcpConfig:
    """The cloud profile of one run: its own BigQuery project and GCS prefixes."""
    assert config.gcp is not None
    gcp = config.gcp
    return replace(
        gcp,
        project=f"kappa-{name}"[:30].rstrip("-"),
        archive_root=f"gs://{gcp.archive_bucket}/{name}/interactions/",
        cutover_state=f"gs://{gcp.state_bucket}/{name}/cutover",
    )


@dataclass
class CloudWiring:
    config: Config
    config_path: Path
    migration_pair: tuple[str, str] = ("legacy_serving", "kappa.kappa_stream")
    slow_validations: int = 4  # bqemulator takes minutes per validation on 2 busy cores
    kafka_readers: tuple[str, ...] = ("bridge", "speed")  # the archive comes from Pub/Sub here
    loaded_objects: set[str] = field(default_factory=set)

    @classmethod
    def create(cls, config: Config, run_dir: Path, run: str) -> CloudWiring:
        from pipelines.bigquery_io import bigquery_client, ensure_warehouse
        from pipelines.gcs_archive import ACK_DEADLINE_S, SUBSCRIPTION
        from pipelines.pubsub_io import create_subscription

        name = f"demo-{run.lower()}"
        gcp = run_gcp(config, name)
        base = replace(config, pubsub=replace(config.pubsub, project=gcp.project), gcp=gcp)
        isolated, _ = isolated_config(base, run_dir, name)
        run_config = replace(isolated, paths=replace(isolated.paths, archive_root=gcp.archive_root), gcp=gcp)
        config_path = write_config(run_config, run_dir / "config.yaml")
        client = bigquery_client(gcp.project)
        ensure_warehouse(client, gcp.project, int(config.time.batch_period), gcp.serving_source)
        _create_demo_tables(client, gcp.project)
        _view_schemas(client, gcp.project, int(config.time.batch_period), gcp.serving_source)
        create_subscription(run_config, SUBSCRIPTION, ACK_DEADLINE_S)  # before traffic: misses nothing
        return cls(run_config, config_path)

    @property
    def gcp(self) -> GcpConfig:
        assert self.config.gcp is not None
        return self.config.gcp

    @property
    def project(self) -> str:
        return self.gcp.project

    def arms(self) -> list[tuple[str, list[str]]]:
        p, speed_state = self.project, speed_state_args(self.config_path)
        return [
            ("archiver", ["archive-gcs"]),  # max_duration and alignment: the profile's gcp section
            ("bridge", ["bridge"]),
            ("legacy-speed", ["legacy", "speed", *speed_state, "--bigquery-dataset", f"{p}:legacy"]),
            ("legacy-batch", ["legacy", "batch", "--follow", "--bigquery-dataset", f"{p}:legacy"]),
            ("kappa-stream", ["kappa", "run", "--bigquery-table", f"{p}:kappa.kappa_stream",
                              "--bigquery-dead-letter-table", f"{p}:migration.dead_letter"]),
        ]  # fmt: skip

    def _client(self) -> Any:
        from pipelines.bigquery_io import bigquery_client

        return bigquery_client(self.project)

    def row_counts(self) -> dict[str, int]:
        from migration.demo_support import count_of
        from pipelines.bigquery_io import query_rows
        from pipelines.warehouse import Warehouse

        tables = {"legacy_speed": "legacy.legacy_speed", "legacy_batch": "legacy.legacy_batch",
                  "kappa_stream": "kappa.kappa_stream", "kappa_backfill": "kappa.kappa_backfill",
                  "dead_letter": "migration.dead_letter"}  # fmt: skip
        select = ", ".join(f"(SELECT COUNT(*) FROM `{self.project}.{t}`) AS {k}" for k, t in tables.items())
        counts = {
            k: int(v) for k, v in query_rows(self._client(), f"SELECT {select}", "row counts")[0].items()
        }
        con = Warehouse(self.config.paths.warehouse_root).connect()
        try:
            truth = count_of(con, "SELECT count(*) FROM truth_ledger")
        finally:
            con.close()
        return {**counts, "truth_ledger": truth}

    def finished_batch_runs(self) -> int:
        from pipelines.bigquery_io import query_rows

        sql = f"SELECT COUNT(*) AS n FROM `{self.project}.legacy.batch_runs` WHERE status = 'FINISHED'"
        return int(query_rows(self._client(), sql, "batch_runs")[0]["n"])

    def validation_args(self) -> list[str]:
        return ["--bigquery-project", self.project, "--dataset", "legacy", "--archive", ARCHIVE_EVENTS]

    def truth_pair(self, arm: str) -> tuple[str, str]:
        return arm, "truth"

    def truth_args(self) -> list[str]:
        judge = self.config_path.parent / "judge"
        return ["--warehouse", str(judge / "warehouse"), "--archive", str(judge / "archive")]

    def before_validation(self) -> None:
        """Load the archive objects written since the last run into `migration.archive_events`."""
        from pipelines.archive import arrival_spans, list_parts

        parts = list_parts(self.gcp.archive_root, spans=arrival_spans(self.config))
        new = [part for part in parts if part.path not in self.loaded_objects]
        rows = [row for part in new for row in _archive_rows(part)]
        _insert(self._client(), f"{self.project}.{ARCHIVE_EVENTS}", rows)
        self.loaded_objects.update(part.path for part in new)

    def before_truth(self) -> None:
        """The judge's copies: the arms' BigQuery tables and the generator's truth ledger as
        a Parquet warehouse, the archive objects in the local layout (by arrival period)."""
        import pyarrow.parquet as pq

        from pipelines.archive import ArchiveWriter, arrival_spans, list_parts, partition_of, read_lines
        from pipelines.bigquery_io import query_rows
        from pipelines.warehouse import Warehouse

        judge = self.config_path.parent / "judge"
        warehouse = Warehouse(judge / "warehouse")
        for name, table in JUDGE_TABLES.items():
            rows = query_rows(self._client(), f"SELECT * FROM `{self.project}.{table}`", table)
            if rows:
                warehouse.append(name, [_epoch_ms(row) for row in rows], writer="judge")
        for segment in Warehouse(self.config.paths.warehouse_root).segments("truth_ledger"):
            warehouse.append("truth_ledger", pq.read_table(segment), writer="judge")
        archive = ArchiveWriter(judge / "archive", "gcs", self.config.time.batch_period)
        for part in list_parts(self.gcp.archive_root, spans=arrival_spans(self.config)):
            archive.write(partition_of(part.arrival_start_ms, self.config.time.batch_period),
                          list(read_lines(part.path)))  # fmt: skip

    def backfill_args(self) -> list[str]:
        p = self.project
        return ["--bigquery-table", f"{p}:kappa.kappa_backfill",
                "--bigquery-dead-letter-table", f"{p}:migration.dead_letter"]  # fmt: skip

    def cutover_args(self) -> list[str]:
        return []

    def backends(self) -> dict[str, dict[str, str]]:
        p = self.project

        def bq(table: str) -> dict[str, str]:
            return {"backend": "bigquery", "location": f"{p}.{table}"}

        return {
            "legacy_speed": bq("legacy.legacy_speed"),
            "legacy_batch": bq("legacy.legacy_batch"),
            "batch_runs": bq("legacy.batch_runs"),
            "legacy_serving": bq("legacy.legacy_serving"),
            "kappa_stream": bq("kappa.kappa_stream"),
            "kappa_backfill": bq("kappa.kappa_backfill"),
            "dead_letter": bq("migration.dead_letter"),
            "validation_runs": bq("migration.validation_runs"),
            "serving": bq("serving.interaction_counts"),
            "archive": {"backend": "gcs", "location": self.gcp.archive_root},
            "cutover_state": {"backend": "gcs", "location": self.gcp.cutover_state},
            "truth_ledger": {"backend": "parquet", "location": str(self.config.paths.warehouse_root)},
        }


def _view_schemas(client: Any, project: str, batch_period_s: int, serving_source: str) -> None:
    """Give each view the aggregate columns its query selects. BigQuery derives a view's
    schema from its query; bqemulator 1.4 leaves it empty, and Ibis (the validator) reads a
    table's columns from that schema (an emulator gap, worked around here only)."""
    from pipelines.bigquery_io import schema_fields, view_specs

    for dataset, view, _ in view_specs(project, batch_period_s, serving_source):
        table = client.get_table(f"{project}.{dataset}.{view}")
        if not table.schema:
            table.schema = schema_fields("aggregate.json")
            client.update_table(table, ["schema"])


def _epoch_ms(row: dict[str, Any]) -> dict[str, Any]:
    from datetime import datetime

    return {k: int(v.timestamp() * 1000) if isinstance(v, datetime) else v for k, v in row.items()}


def _create_demo_tables(client: Any, project: str) -> None:
    from google.cloud import bigquery

    schema = [bigquery.SchemaField(n, t) for n, t in ARCHIVE_EVENTS_SCHEMA]
    client.create_table(bigquery.Table(f"{project}.{ARCHIVE_EVENTS}", schema=schema), exists_ok=True)


def _archive_rows(part: ArchivePart) -> list[dict[str, Any]]:
    """The valid events of one archive object (the rules every arm applies), each with the
    object's arrival interval (pipelines/archive.py, `ArrivalSpans`)."""
    from pipelines.archive import read_lines
    from pipelines.events import Interaction, parse_or_reject

    rows = []
    for line in read_lines(part.path):
        event = parse_or_reject(line, "archive", part.arrival_start_ms)
        if isinstance(event, Interaction):
            rows.append({"event_id": event.event_id, "event_time_ms": event.event_time,
                         "event_type": event.event_type, "tweet_id": event.tweet_id,
                         "arrival_start_ms": part.arrival_start_ms,
                         "arrival_end_ms": part.arrival_end_ms})  # fmt: skip
    return rows


def _insert(client: Any, table_id: str, rows: list[dict[str, Any]]) -> None:
    from pipelines.bigquery_io import insert_rows

    for start in range(0, len(rows), INSERT_BATCH):
        insert_rows(client, table_id, rows[start : start + INSERT_BATCH])
