"""How one validation run goes, beside what it compares (the spec): built once by the CLI
(or a caller) and read where each setting is used, so none is copied on the way down.

The engine reads `warehouse_root`, `memory_limit`, `threads` and the BigQuery location;
the interaction-count kind reads the window range; the handlers read where results go.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path


def new_run_id() -> str:
    return datetime.now(UTC).strftime("val-%Y%m%dT%H%M%SZ-") + uuid.uuid4().hex[:8]


@dataclass(frozen=True)
class RunOptions:
    warehouse_root: Path | None = None  # the local warehouse that table sides read
    report_dir: Path | None = None  # report.json/.md/.html go here (None: no report files)
    record: bool = True  # append the run to the validation_runs table
    memory_limit: str | None = None  # DuckDB `SET memory_limit`, e.g. "3GB"
    threads: int | None = None  # DuckDB `SET threads`
    since_ms: int | None = None  # interaction counts: first window_start compared
    until_ms: int | None = None  # interaction counts: windows starting before this
    # Table sides read from this BigQuery project and dataset instead of the local warehouse.
    bigquery_project: str | None = None
    bigquery_dataset: str | None = None
    run_id: str = field(default_factory=new_run_id)

    @property
    def backend(self) -> str:
        return "bigquery" if self.bigquery_project else "duckdb"
