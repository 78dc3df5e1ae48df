"""Sinks for aggregate and dead-letter rows: the local Parquet warehouse and BigQuery.

`WriteToWarehouse(root, table, batch_size, buffering_s)` takes dict rows of a table with
a known schema (`pipelines.warehouse.KNOWN_SCHEMAS`; timestamps in epoch ms) and writes
them as Parquet segments with `Warehouse.append`:

- `buffering_s` set (streaming): rows are moved to the global window, each bundle's cut
  into pickled chunks of up to `CHUNK_ROWS`, spread over `shards` keys and batched with
  GroupIntoBatches(chunks, buffering_s), so a table gets a segment of up to `batch_size`
  rows every few seconds per shard, not one per element or bundle. A chunk is one state
  element to Beam's state cache, which measures each at every commit of a bundle: with a
  row each, batching was the costliest step of the stream on Flink;
- `buffering_s=None` (bounded runs): rows are batched per bundle (up to batch_size); an
  element that is an Arrow table (the bounded composites' rows) is one segment as it is.

With buffering the output PCollection holds the number of rows of each segment written;
per-bundle writing outputs nothing (a bundle's rows may span windows). A buffered sink
counts the rows it takes in (`rows_buffered_<table>`) beside those it wrote
(`rows_written_<table>`): while the first is ahead, rows are in its buffer (`rows_in_flight`).
"""

from __future__ import annotations

import pickle
import random
from typing import Any, Iterable, Iterator

import apache_beam as beam
import pyarrow as pa
from apache_beam.transforms import window
from apache_beam.utils.windowed_value import WindowedValue

from pipelines.beam.arrow_events import row_dicts
from pipelines.beam.metrics import KappaCounter

BIGQUERY_AGGREGATE_SCHEMA = (
    "window_start:TIMESTAMP,window_end:TIMESTAMP,tweet_id:INTEGER,event_type:STRING,count:INTEGER,"
    "pipeline:STRING,emitted_at:TIMESTAMP,pane:STRING,pane_index:INTEGER"
)
BIGQUERY_DEAD_LETTER_SCHEMA = "payload:BYTES,error:STRING,pipeline:STRING,failed_at:TIMESTAMP"
_TIMESTAMP_COLUMNS = ("window_start", "window_end", "emitted_at", "failed_at")
CHUNK_ROWS = 500  # rows of a bundle per buffered element of a streaming sink


def _append(root: str, table: str, writer: str, rows: list[dict] | pa.Table) -> int:
    from pipelines.warehouse import Warehouse

    if len(rows):
        Warehouse(root).append(table, rows, writer=writer)
    return len(rows)


def rows_in_flight(counters: dict[str, int], tables: tuple[str, ...]) -> int:
    """Rows the buffered sinks of `tables` have taken in and not yet written."""
    return sum(
        max(0, counters.get(f"rows_buffered_{t}", 0) - counters.get(f"rows_written_{t}", 0)) for t in tables
    )


class _ChunkPerBundleFn(beam.DoFn):
    """A bundle's rows -> (random shard, pickled chunk of up to `chunk_rows` rows) in the
    global window, each at the oldest timestamp of its rows; counts them into the buffer."""

    def __init__(self, table: str, shards: int, chunk_rows: int):
        self.shards, self.chunk_rows = shards, chunk_rows
        self.buffered = KappaCounter(f"rows_buffered_{table}")
        self._chunks: list[tuple[list[dict], Any]] = []

    def start_bundle(self) -> None:
        self._chunks = []

    def process(self, row: dict, timestamp: Any = beam.DoFn.TimestampParam) -> None:
        if not self._chunks or len(self._chunks[-1][0]) >= self.chunk_rows:
            self._chunks.append(([], timestamp))
        rows, oldest = self._chunks[-1]
        rows.append(row)
        if timestamp < oldest:
            self._chunks[-1] = (rows, timestamp)

    def finish_bundle(self) -> Iterator[WindowedValue]:
        for rows, oldest in self._chunks:
            self.buffered.inc(len(rows))
            chunk = (random.randrange(self.shards), pickle.dumps(rows, pickle.HIGHEST_PROTOCOL))
            yield WindowedValue(chunk, oldest, (window.GlobalWindow(),))
        self._chunks = []


class _WriteBatchFn(beam.DoFn):
    """Writes each incoming (shard, rows) batch as one segment."""

    def __init__(self, root: str, table: str, writer: str):
        self.root, self.table, self.writer = root, table, writer
        self.rows = KappaCounter(f"rows_written_{table}")
        self.segments = KappaCounter(f"segments_written_{table}")

    def process(self, element: tuple[int, Iterable[bytes]]) -> Iterator[int]:
        rows = [row for chunk in element[1] for row in pickle.loads(chunk)]
        written = _append(self.root, self.table, self.writer, rows)
        self.rows.inc(written)
        self.segments.inc()
        yield written


class _WritePerBundleFn(beam.DoFn):
    """Buffers rows of a bundle and writes them as segments of up to batch_size rows."""

    def __init__(self, root: str, table: str, writer: str, batch_size: int):
        self.root, self.table, self.writer, self.batch_size = root, table, writer, batch_size
        self.rows_written = KappaCounter(f"rows_written_{table}")
        self.buffer: list[dict] = []

    def start_bundle(self) -> None:
        self.buffer = []

    def process(self, row: dict | pa.Table) -> None:
        if isinstance(row, pa.Table):
            self.rows_written.inc(_append(self.root, self.table, self.writer, row))
            return
        self.buffer.append(row)
        if len(self.buffer) >= self.batch_size:
            self._flush()

    def finish_bundle(self) -> None:
        if self.buffer:
            self._flush()

    def _flush(self) -> int:
        rows, self.buffer = self.buffer, []
        written = _append(self.root, self.table, self.writer, rows)
        self.rows_written.inc(written)
        return written


class WriteToWarehouse(beam.PTransform):
    """Dict rows -> Parquet segments of `<root>/<table>/` (see the module doc)."""

    def __init__(
        self,
        root: str,
        table: str,
        batch_size: int = 10_000,
        buffering_s: float | None = 5.0,
        shards: int = 1,
        writer: str = "kappa",
    ):
        super().__init__(f"WriteToWarehouse[{table}]")
        self.root = str(root)
        self.table = table
        self.batch_size = batch_size
        self.buffering_s = buffering_s
        self.shards = shards
        self.writer = writer

    def expand(self, pcoll: beam.PCollection) -> beam.PCollection:
        if self.buffering_s is None:
            return pcoll | "WritePerBundle" >> beam.ParDo(
                _WritePerBundleFn(self.root, self.table, self.writer, self.batch_size)
            )
        chunk_rows = min(CHUNK_ROWS, self.batch_size)
        return (
            pcoll
            | "GlobalWindow" >> beam.WindowInto(window.GlobalWindows())
            | "ChunkPerBundle" >> beam.ParDo(_ChunkPerBundleFn(self.table, self.shards, chunk_rows))
            | "Batch"
            >> beam.GroupIntoBatches(
                max(1, self.batch_size // chunk_rows), max_buffering_duration_secs=self.buffering_s
            )
            | "WriteSegment" >> beam.ParDo(_WriteBatchFn(self.root, self.table, self.writer))
        )


def bigquery_rows(element: dict | pa.Table) -> list[dict]:
    """A row dict, or an AGGREGATE_SCHEMA table of rows, as BigQuery JSON rows."""
    return [bigquery_row(row) for row in (row_dicts(element) if isinstance(element, pa.Table) else [element])]


def bigquery_row(row: dict) -> dict:
    """A warehouse row dict (epoch-ms timestamps) as a BigQuery JSON row.

    Timestamps go as ISO 8601 text: BigQuery reads a JSON number as epoch seconds, bqemulator
    as microseconds; the text means the same instant to both.
    """
    import base64

    from pipelines.instants import utc_iso

    out = dict(row)
    for name in _TIMESTAMP_COLUMNS:
        if name in out and out[name] is not None:
            out[name] = utc_iso(int(out[name]))
    if isinstance(out.get("payload"), bytes):
        out["payload"] = base64.b64encode(out["payload"]).decode()
    return out


class WriteToBigQueryTable(beam.PTransform):
    """Dict rows (or Arrow tables of rows) -> a BigQuery table by streaming inserts (the cloud sink).

    The table must exist (Terraform creates every table, so the jobs need no table-create
    right); `schema` documents the row shape. Rows go through google-cloud-bigquery's
    `insert_rows_json` in batches, each row with an insertId derived from its content, so a
    retried bundle's rows are deduplicated by BigQuery's best-effort insertId dedup. The same
    client honours BIGQUERY_EMULATOR_HOST, so the emulator run executes this very code.
    """

    def __init__(self, table: str, schema: str, batch_size: int = 500):
        super().__init__(f"WriteToBigQuery[{table}]")
        self.table = table
        self.schema = schema
        self.batch_size = batch_size

    def expand(self, pcoll: beam.PCollection) -> Any:
        return (
            pcoll
            | "ToBigQueryRow" >> beam.FlatMap(bigquery_rows)
            | "Insert" >> beam.ParDo(_StreamingInsertFn(self.table, self.batch_size))
        )


def split_table(table: str) -> tuple[str, str]:
    """`PROJECT:DATASET.TABLE` or `PROJECT.DATASET.TABLE` -> (project, "PROJECT.DATASET.TABLE")."""
    project, sep, rest = table.partition(":")
    if not sep:
        project, _, rest = table.partition(".")
    if not project or rest.count(".") != 1:
        raise ValueError(f"BigQuery table {table!r}: use PROJECT:DATASET.TABLE")
    return project, f"{project}.{rest}"


class _StreamingInsertFn(beam.DoFn):
    def __init__(self, table: str, batch_size: int):
        self.project, self.table_id = split_table(table)
        self.batch_size = batch_size
        self.inserted = KappaCounter(f"bigquery_rows_inserted_{self.table_id.rsplit('.', 1)[1]}")

    def setup(self) -> None:
        from pipelines.bigquery_io import bigquery_client

        self.client = bigquery_client(self.project)

    def start_bundle(self) -> None:
        self.rows: list[dict] = []

    def process(self, row: dict) -> None:
        self.rows.append(row)
        if len(self.rows) >= self.batch_size:
            self._flush()

    def finish_bundle(self) -> None:
        self._flush()

    def _flush(self) -> None:
        import hashlib
        import json

        from pipelines.bigquery_io import insert_rows

        if not self.rows:
            return
        ids = [hashlib.sha256(json.dumps(r, sort_keys=True).encode()).hexdigest() for r in self.rows]
        insert_rows(self.client, self.table_id, self.rows, ids)  # raises: Beam retries the bundle
        self.inserted.inc(len(self.rows))
        self.rows = []
