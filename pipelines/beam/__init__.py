"""Composite Beam transforms shared by the Kappa stream, the Kappa backfill and the legacy batch.

Contract (inputs -> outputs; every DoFn counts with `KappaCounter`: a Beam metric in
namespace `kappa` plus a process-local total, `local_counts()`, which is what a local
streaming run can read while it runs):

- `ParseInteractions(pipeline)`: raw payloads (`bytes`, a Pub/Sub message with `.data`
  and `.publish_time`, or `(payload, received_at_ms)`) -> `result.events`
  (`pipelines.events.Interaction`, element timestamp = event_time) and
  `result.dead_letter` (`pipelines.events.BadRecord`). Same validation as `parse_event`.
- `DedupByEventId(horizon_s)`: Interaction -> Interaction, first per event_id within
  `horizon_s` of event time (state + an event-time timer; deterministic on replay).
- `WindowInteractions(window_s, allowed_lateness_s, early_firing_s, bounded=False)`:
  FixedWindows, AfterWatermark(early=AfterProcessingTime(whole seconds, >= 1),
  late=AfterCount(1)), ACCUMULATING; `bounded=True` in backfills: default trigger,
  one pane per window (FnApiRunner's batch GroupByKey has no processing-time clock).
- `CountPerKey(shards=8)`: Interaction -> ((tweet_id, event_type), count) per window pane;
  on unbounded input it counts per bundle and shard of keys first and emits a key only
  when its count changed (and in every ON_TIME pane): see `pipelines.beam.counting`.
- `ToPaneRows(pipeline, run_epoch_ms=None, final=False)`: -> aggregate row dicts (DESIGN
  2.3; timestamps as epoch ms; pane EARLY/ON_TIME/LATE, or FINAL when `final`;
  pane_index = run_epoch_ms * 1_000_000 + pane index, monotonic across restarts).
- `dead_letter_row(BadRecord)` -> `dead_letter` row dict.
- `WriteToWarehouse(root, table, batch_size=10_000, buffering_s=5.0, shards=1, writer="kappa")`:
  row dicts -> Parquet segments via `Warehouse.append` (GroupIntoBatches with buffering
  when `buffering_s` is set; per-bundle batches when it is None, for bounded runs).
- `WriteToBigQueryTable(table, schema)` with `BIGQUERY_AGGREGATE_SCHEMA` /
  `BIGQUERY_DEAD_LETTER_SCHEMA`: the same rows to BigQuery (cloud).
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
