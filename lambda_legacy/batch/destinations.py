"""Where a batch run writes: the local warehouse, or the BigQuery tables Terraform creates.

The sinks are the shared `pipelines.beam.destinations`; a destination gives the two sinks
of the pipeline (aggregate rows, dead letters) and the `batch_runs` ledger the launcher keeps around each run:

- a local warehouse root (a path): Parquet segments of `legacy_batch`, `dead_letter` and
  `batch_runs`, read through the DuckDB views;
- `BigQueryDestination("PROJECT:legacy")`: `legacy.legacy_batch` and `legacy.batch_runs`
  (terraform/modules/bigquery, whose `legacy_serving` view reads both) and
  `migration.dead_letter`, by streaming inserts.
"""

from __future__ import annotations

import functools
from typing import Any, Protocol

import apache_beam as beam

from pipelines.beam.destinations import BigQueryDestination, WarehouseDestination
from pipelines.instants import utc_iso
from pipelines.warehouse import Warehouse

AGGREGATE_TABLE = "legacy_batch"
LEDGER_TABLE = "batch_runs"
_LEDGER_TIMES = ("period_start", "period_end", "started_at", "finished_at")


class Ledger(Protocol):
    def append(self, row: dict[str, Any]) -> None: ...

    def finished_periods(self) -> set[int]: ...


Destination = str | BigQueryDestination  # a str is a local warehouse root


def sinks(destination: Destination) -> tuple[beam.PTransform, beam.PTransform]:
    """(aggregate rows sink, dead-letter rows sink) for a run's pipeline."""
    shared = (
        destination
        if isinstance(destination, BigQueryDestination)
        else WarehouseDestination(destination, writer="batch", batch_size=10_000)
    )
    return shared.rows_sink(AGGREGATE_TABLE), shared.dead_letter_sink()


def ledger(destination: Destination) -> Ledger:
    if isinstance(destination, BigQueryDestination):
        return BigQueryLedger(destination)
    return WarehouseLedger(destination)


class WarehouseLedger:
    def __init__(self, root: str):
        self.warehouse = Warehouse(root)

    def append(self, row: dict[str, Any]) -> None:
        self.warehouse.append(LEDGER_TABLE, [row], writer="batch")

    def finished_periods(self) -> set[int]:
        """Period starts (epoch ms) that have at least one FINISHED run."""
        if not self.warehouse.segments(LEDGER_TABLE):
            return set()
        rows = (
            self.warehouse.connect()
            .execute("SELECT DISTINCT epoch_ms(period_start) FROM batch_runs WHERE status = 'FINISHED'")
            .fetchall()
        )
        return {int(r[0]) for r in rows}


def bigquery_ledger_row(row: dict[str, Any]) -> dict[str, Any]:
    """A ledger row (epoch-ms times) as a JSON row of terraform's batch_runs schema."""
    return {k: (utc_iso(v) if k in _LEDGER_TIMES and v is not None else v) for k, v in row.items()}


class BigQueryLedger:
    def __init__(self, destination: BigQueryDestination):
        self.destination = destination
        self.table_id = destination.table(LEDGER_TABLE).replace(":", ".")

    @functools.cached_property
    def _client(self) -> Any:
        """One client for the RUNNING, FINISHED/FAILED rows and the lookups of a run
        (anonymous against the emulator named by BIGQUERY_EMULATOR_HOST)."""
        from pipelines.bigquery_io import bigquery_client

        return bigquery_client(self.destination.project)

    def append(self, row: dict[str, Any]) -> None:
        from pipelines.bigquery_io import insert_rows

        insert_rows(self._client, self.table_id, [bigquery_ledger_row(row)])

    def finished_periods(self) -> set[int]:
        from pipelines.bigquery_io import query_rows

        sql = (
            f"SELECT DISTINCT UNIX_MILLIS(period_start) AS p FROM `{self.table_id}` WHERE status = 'FINISHED'"
        )
        return {int(row["p"]) for row in query_rows(self._client, sql, f"BigQuery {self.table_id}")}


__all__ = ["BigQueryDestination", "Destination", "ledger", "sinks"]
