"""Composite Beam transforms shared by the Kappa stream, the Kappa backfill and the legacy batch.

One definition per step, two strategies: each composite looks at its input's boundedness
(as Beam's WriteToBigQuery does) and runs per element with state, timers and triggers on
unbounded input (the stream), or over Arrow batches with one GroupByKey per shuffle on
bounded input (the backfill; `pipelines.beam.bounded`, `pipelines.beam.arrow_events`).
Every DoFn counts with `KappaCounter`: a Beam metric in namespace `kappa` plus a
process-local total, `local_counts()`, which is what a local streaming run can read while
it runs. Contract (inputs -> outputs):

- `ParseInteractions(pipeline, window_ms=None, allowed_lateness_ms=None)`: raw payloads
  (`bytes`, a Pub/Sub message, `(payload, received_at_ms)`, or a `LineBatch` of a part
  file) -> `result.events` (`Interaction` with element timestamp = event_time, or an
  `EventBatch`) and `result.dead_letter` (`BadRecord`). Same verdict as `parse_event`;
  a Pub/Sub message whose attributes disagree with its payload is dead-lettered; on
  unbounded input an event later than allowed lateness is dropped (`too_late`).
- `SelectEventTimes(start_ms, end_ms)`: events with event_time in [start, end).
- `DedupByEventId(horizon_ms)`: first per event_id (a copy is a re-send: same id, same
  event_time) within `horizon_ms` of event time (state + an event-time timer per expiry
  second and bucket; deterministic on replay); bounded: over the whole run.
- `WindowInteractions(window_ms, allowed_lateness_ms, early_firing_ms)`: FixedWindows,
  AfterWatermark(early=AfterProcessingTime(whole seconds, >= 1), late=AfterCount(1)),
  ACCUMULATING; bounded: a `window_start` column, one final pane per window.
- `CountPerKey(shards=None)`: ((tweet_id, event_type), count) per window pane; on unbounded
  input it counts per bundle and shard of keys first and emits a key only when its count
  changed (and in every ON_TIME pane): see `pipelines.beam.counting`.
- `ToPaneRows(pipeline, run_epoch_ms=None)`: -> aggregate row dicts (DESIGN 2.3; epoch
  ms; pane EARLY/ON_TIME/LATE; pane_index = run_epoch_ms * 1_000_000 + pane index), or
  on bounded input AGGREGATE_SCHEMA Arrow tables with pane FINAL.
- `dead_letter_row(BadRecord)` -> `dead_letter` row dict.
- `WriteToWarehouse(root, table, batch_size=10_000, buffering_s=5.0, shards=1, writer="kappa")`:
  rows -> Parquet segments via `Warehouse.append` (GroupIntoBatches with buffering
  when `buffering_s` is set; per-bundle batches when it is None, for bounded runs).
- `WriteToBigQueryTable(table, schema)` with `BIGQUERY_AGGREGATE_SCHEMA` /
  `BIGQUERY_DEAD_LETTER_SCHEMA`: the same rows to BigQuery (cloud).
- `pipelines.beam.destinations`: `WarehouseDestination` / `BigQueryDestination` and
  `WriteOutputs`, the one sink abstraction of every Beam arm.
"""

from pipelines.beam.counting import STREAM_SHARDS, CountPerKey
from pipelines.beam.sinks import (
    BIGQUERY_AGGREGATE_SCHEMA,
    BIGQUERY_DEAD_LETTER_SCHEMA,
    WriteToBigQueryTable,
    WriteToWarehouse,
    bigquery_row,
)
from pipelines.beam.transforms import (
    DEAD_LETTER_TAG,
    EVENTS_TAG,
    METRICS_NAMESPACE,
    PANE_INDEX_SCALE,
    DedupByEventId,
    KappaCounter,
    ParseInteractions,
    SelectEventTimes,
    ToPaneRows,
    WindowInteractions,
    dead_letter_row,
    local_counts,
    payload_and_arrival,
    reset_local_counts,
)

__all__ = [
    "BIGQUERY_AGGREGATE_SCHEMA",
    "BIGQUERY_DEAD_LETTER_SCHEMA",
    "DEAD_LETTER_TAG",
    "EVENTS_TAG",
    "STREAM_SHARDS",
    "METRICS_NAMESPACE",
    "PANE_INDEX_SCALE",
    "CountPerKey",
    "DedupByEventId",
    "KappaCounter",
    "ParseInteractions",
    "SelectEventTimes",
    "ToPaneRows",
    "WindowInteractions",
    "WriteToBigQueryTable",
    "WriteToWarehouse",
    "bigquery_row",
    "dead_letter_row",
    "local_counts",
    "reset_local_counts",
    "payload_and_arrival",
]
