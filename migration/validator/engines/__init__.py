"""Where the expressions run: one engine per run, DuckDB or BigQuery, set up once.

`open_engine` picks it from the spec's sides and the run options: BigQuery when the sides
are BigQuery tables or the options name a BigQuery dataset (`--bigquery-project`), else an
in-memory DuckDB over the local warehouse's views and over files. Every kind reads its
sides, caches its one expensive step and fetches its few result rows through the `Engine`
protocol, so a session setting (memory limit, threads, time zone) is applied in one place.
"""

from __future__ import annotations

from migration.validator.engines.base import Engine, RawArm
from migration.validator.options import RunOptions
from migration.validator.spec.model import Spec
from pipelines.config import TimeConfig
from pipelines.errors import ConfigError

__all__ = ["Engine", "RawArm", "open_engine"]


def open_engine(spec: Spec, options: RunOptions, time: TimeConfig | None) -> Engine:
    """The one engine of a run: both sides (and a reference) must live in it."""
    sources = [s for s in (spec.left, spec.right, spec.reference) if s is not None]
    kinds = {s.kind for s in sources}
    if "bigquery" in kinds and kinds != {"bigquery"}:
        raise ConfigError(f"{spec.origin}: a bigquery side needs the other side in BigQuery too")
    if kinds == {"bigquery"} or options.bigquery_project:
        from migration.validator.engines.bigquery import BigQueryEngine

        project = options.bigquery_project or spec.left.value.split(".")[0]
        return BigQueryEngine(project, options.bigquery_dataset, time)
    from migration.validator.engines.duckdb import DuckDBEngine

    return DuckDBEngine(options, time, uses_warehouse="table" in kinds)
