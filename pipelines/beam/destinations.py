"""Where a Beam arm writes its rows and dead letters: the local warehouse, or BigQuery.

One abstraction for the legacy batch, the Kappa stream and the Kappa backfill:

- `WarehouseDestination(root, writer, buffering_s, batch_size)`: Parquet segments under a
  local warehouse root (`WriteToWarehouse`; `buffering_s` set for a streaming job, None
  for bounded runs), read through the DuckDB views;
- `BigQueryDestination("PROJECT:DATASET", dead_letter_table)`: the tables Terraform
  creates, by streaming inserts (`WriteToBigQueryTable`); dead letters go to
  `dead_letter_table` (DATASET.TABLE, or PROJECT:DATASET.TABLE), `migration.dead_letter`
  unless told otherwise.

`Sink(destination, table)` is where one run writes: built once from the run's options and
passed down. `WriteOutputs(destination, table)` writes a job's two outputs, `{"rows": ..., "dead_letters":
...}`, as one step: the last step of the Kappa pipeline.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import apache_beam as beam

from pipelines.beam.sinks import (
    BIGQUERY_AGGREGATE_SCHEMA,
    BIGQUERY_DEAD_LETTER_SCHEMA,
    WriteToBigQueryTable,
    WriteToWarehouse,
)
from pipelines.errors import ConfigError

DEAD_LETTER_TABLE = "dead_letter"


@dataclass(frozen=True)
class WarehouseDestination:
    """A local warehouse root; `buffering_s` None writes per bundle (bounded runs).

    The root is made absolute where it is built: the steps of a job on a portable runner run
    in worker processes with another working folder (the Kappa cluster's SDK worker pool
    runs in its state folder), where a relative root would name another warehouse."""

    root: str
    writer: str = "beam"
    buffering_s: float | None = None
    batch_size: int = 50_000

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", os.path.abspath(self.root))

    def rows_sink(self, table: str) -> beam.PTransform:
        return WriteToWarehouse(self.root, table, self.batch_size, self.buffering_s, writer=self.writer)

    def dead_letter_sink(self) -> beam.PTransform:
        return self.rows_sink(DEAD_LETTER_TABLE)


@dataclass(frozen=True)
class BigQueryDestination:
    """`dataset` as PROJECT:DATASET; dead letters to `dead_letter_table` ([PROJECT:]DATASET.TABLE)."""

    dataset: str
    dead_letter_table: str = "migration.dead_letter"

    def __post_init__(self) -> None:
        project, _, name = self.dataset.partition(":")
        if not project or not name or "." in name:
            raise ConfigError(f"BigQuery dataset {self.dataset!r}: use PROJECT:DATASET, e.g. my-proj:legacy")
        if self.dead_letter_table.rpartition(":")[2].count(".") != 1:
            raise ConfigError(
                f"BigQuery dead-letter table {self.dead_letter_table!r}: use DATASET.TABLE,"
                " e.g. migration.dead_letter"
            )

    @classmethod
    def of_table(cls, table: str, dead_letter_table: str | None = None) -> tuple[BigQueryDestination, str]:
        """`PROJECT:DATASET.TABLE` -> (its destination, TABLE); dead letters default to
        DATASET.dead_letter, beside the table."""
        dataset, dot, name = table.rpartition(".")
        if not dot or ":" not in dataset or not name:
            raise ConfigError(f"BigQuery table {table!r}: use PROJECT:DATASET.TABLE")
        default = f"{dataset.partition(':')[2]}.{DEAD_LETTER_TABLE}"
        return cls(dataset, dead_letter_table or default), name

    @property
    def project(self) -> str:
        return self.dataset.partition(":")[0]

    def table(self, name: str) -> str:
        return f"{self.dataset}.{name}"

    @property
    def dead_letter_table_spec(self) -> str:
        """The dead-letter table as PROJECT:DATASET.TABLE."""
        if ":" in self.dead_letter_table:
            return self.dead_letter_table
        return f"{self.project}:{self.dead_letter_table}"

    def rows_sink(self, table: str) -> beam.PTransform:
        return WriteToBigQueryTable(self.table(table), BIGQUERY_AGGREGATE_SCHEMA)

    def dead_letter_sink(self) -> beam.PTransform:
        return WriteToBigQueryTable(self.dead_letter_table_spec, BIGQUERY_DEAD_LETTER_SCHEMA)


Destination = WarehouseDestination | BigQueryDestination


@dataclass(frozen=True)
class Sink:
    """Where a run writes: the destination of its rows and dead letters, and the aggregate
    table its rows go to there. Built once, where a run's options are read (the CLI)."""

    destination: Destination
    table: str

    @classmethod
    def choose(
        cls,
        local: WarehouseDestination,
        local_table: str,
        bigquery_table: str | None = None,
        bigquery_dead_letter_table: str | None = None,
    ) -> Sink:
        """BigQuery's `bigquery_table` (PROJECT:DATASET.TABLE) if given, else `local_table`
        of the local warehouse."""
        if bigquery_table:
            return cls(*BigQueryDestination.of_table(bigquery_table, bigquery_dead_letter_table))
        return cls(local, local_table)

    @property
    def buffering_s(self) -> float:
        """How long rows wait before they are written (0: as each bundle ends)."""
        if isinstance(self.destination, WarehouseDestination):
            return float(self.destination.buffering_s or 0.0)
        return 0.0


class WriteOutputs(beam.PTransform):
    """{"rows": aggregate rows, "dead_letters": dead-letter rows} -> `destination`."""

    def __init__(self, destination: Destination, table: str):
        super().__init__()
        self.destination, self.table = destination, table

    def expand(self, outputs: dict[str, Any]) -> dict[str, Any]:
        return {
            "rows": outputs["rows"] | "Rows" >> self.destination.rows_sink(self.table),
            "dead_letters": outputs["dead_letters"] | "DeadLetters" >> self.destination.dead_letter_sink(),
        }
