"""The local warehouse: append-only Parquet segments per table, read through DuckDB views.

Writers never open a DuckDB database: each write is one Parquet segment file, written
under a hidden temporary name, fsynced and renamed, so readers never see half a file
and several processes may write at once. Readers open an in-memory DuckDB connection
(`Warehouse.connect`) whose views glob the segments:

- `<table>` for every table directory (raw rows, every pane);
- `<table>_current` for aggregate tables: per key the row with the highest pane_index;
- `truth`: exact counts of unique valid events from the generator's ledger;
- the derived views of the `views` the caller passes (e.g. the legacy arm's
  `legacy_serving`, `lambda_legacy.merge.LEGACY_VIEWS`), created after the base views in
  the order given. Nothing registers views behind the caller's back: the caller at the top
  (the validator, the serving API, a command) says which views its connection has.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable, Sequence

import pyarrow as pa
import pyarrow.parquet as pq

from pipelines.errors import InputError
from pipelines.events import BadRecord
from pipelines.rows import (
    AGGREGATE_SCHEMA,
    AGGREGATE_TABLES,
    BATCH_RUNS_SCHEMA,
    DEAD_LETTER_SCHEMA,
    SPEED_LATE_SCHEMA,
    TRUTH_LEDGER_SCHEMA,
    VALIDATION_RUNS_SCHEMA,
    table_from_rows,
)

if TYPE_CHECKING:
    import duckdb

KNOWN_SCHEMAS: dict[str, pa.Schema] = {
    **{name: AGGREGATE_SCHEMA for name in AGGREGATE_TABLES},
    "dead_letter": DEAD_LETTER_SCHEMA,
    "truth_ledger": TRUTH_LEDGER_SCHEMA,
    "validation_runs": VALIDATION_RUNS_SCHEMA,
    "batch_runs": BATCH_RUNS_SCHEMA,
    "speed_late": SPEED_LATE_SCHEMA,
}

# A derived view: window_ms -> its `CREATE OR REPLACE VIEW ...` statement.
ViewProvider = Callable[[int], str]


def write_segment(directory: Path, table: pa.Table, writer: str = "w") -> Path | None:
    """Write `table` as one new Parquet segment in `directory`, atomically. None if empty."""
    if table.num_rows == 0:
        return None
    directory.mkdir(parents=True, exist_ok=True)
    name = f"part-{writer}-{uuid.uuid4().hex}.parquet"
    tmp = directory / f".{name}.tmp"
    with open(tmp, "wb") as handle:
        pq.write_table(table, handle, compression="zstd")
        handle.flush()
        os.fsync(handle.fileno())
    final = directory / name
    os.replace(tmp, final)
    return final


class Warehouse:
    """A folder of tables, each a folder of Parquet segments."""

    def __init__(self, root: str | os.PathLike[str]):
        self.root = Path(root)

    def table_dir(self, table: str) -> Path:
        return self.root / table

    def segments(self, table: str) -> list[Path]:
        directory = self.table_dir(table)
        return sorted(directory.rglob("part-*.parquet")) if directory.exists() else []

    def tables(self) -> list[str]:
        if not self.root.exists():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and not p.name.startswith("."))

    def append(self, table: str, data: pa.Table | list[dict], writer: str = "w") -> Path | None:
        """Append rows (an Arrow table, or dict rows of the table's known schema)."""
        if not isinstance(data, pa.Table):
            schema = KNOWN_SCHEMAS.get(table)
            if schema is None:
                raise InputError(f"table '{table}' has no known schema: pass an Arrow table")
            data = table_from_rows(data, schema)
        return write_segment(self.table_dir(table), data, writer)

    def append_dead_letters(self, records: Iterable[BadRecord], writer: str = "w") -> Path | None:
        rows = [
            {"payload": r.payload, "error": r.error, "pipeline": r.pipeline, "failed_at": r.failed_at_ms}
            for r in records
        ]
        return self.append("dead_letter", rows, writer)

    def connect(
        self, window_ms: int | None = None, views: Sequence[ViewProvider] = ()
    ) -> duckdb.DuckDBPyConnection:
        """An in-memory DuckDB connection with a view per table (see the module doc); with
        `window_ms`, also `truth` and the derived `views`, in order."""
        import duckdb

        if views and not window_ms:
            raise ValueError("derived views need window_ms: connect(window_ms, views=...)")
        con = duckdb.connect()
        con.execute("SET TimeZone = 'UTC'")
        names = set(self.tables()) | set(KNOWN_SCHEMAS)
        for name in sorted(names):
            self._create_base_view(con, name)
        for name in AGGREGATE_TABLES:
            con.execute(
                f"CREATE VIEW {name}_current AS SELECT * FROM {name} "
                "QUALIFY row_number() OVER (PARTITION BY window_start, tweet_id, event_type "
                "ORDER BY pane_index DESC, emitted_at DESC) = 1"
            )
        if window_ms:
            con.execute(truth_view_sql(window_ms))
            for view in views:
                con.execute(view(window_ms))
        return con

    def _create_base_view(self, con: duckdb.DuckDBPyConnection, name: str) -> None:
        if self.segments(name):
            pattern = str(self.table_dir(name) / "**" / "part-*.parquet").replace("'", "''")
            con.execute(
                f"CREATE VIEW {name} AS SELECT * FROM read_parquet('{pattern}', union_by_name = true)"
            )
        elif name in KNOWN_SCHEMAS:
            con.register(f"__empty_{name}", KNOWN_SCHEMAS[name].empty_table())
            con.execute(f"CREATE VIEW {name} AS SELECT * FROM __empty_{name}")


def truth_view_sql(window_ms: int) -> str:
    """Exact counts of unique valid events per window, from the generator's ledger."""
    return f"""
        CREATE OR REPLACE VIEW truth AS
        WITH unique_events AS (
            SELECT DISTINCT event_id, event_time, event_type, tweet_id FROM truth_ledger
        ), windowed AS (
            SELECT make_timestamp((epoch_ms(event_time) // {window_ms} * {window_ms}) * 1000)::TIMESTAMPTZ
                       AS window_start,
                   tweet_id, event_type
            FROM unique_events
        )
        SELECT window_start,
               window_start + INTERVAL '{window_ms} milliseconds' AS window_end,
               tweet_id, event_type, count(*)::BIGINT AS count,
               'truth' AS pipeline, now() AS emitted_at, 'FINAL' AS pane, 0::BIGINT AS pane_index
        FROM windowed
        GROUP BY ALL
    """
