"""The archive as a table of valid events, for explaining differences (DuckDB side).

The archive's raw lines are read by DuckDB itself (`read_csv` with one VARCHAR column,
gzip handled, `filename = true` to join each line to its part's arrival interval, which
`pipelines.archive.list_parts` gives) and validated in SQL with the
rules of `pipelines.events.parse_event`, so no archive line passes through Python:

- a JSON object of exactly the seven fields (a duplicated key counts twice, so it fails);
- `event_time`, `tweet_id`, `user_id`, `author_id`: JSON integers in 1..2^63-1;
- `event_id`, `event_type`, `client`: JSON strings; `event_type` and `client` known;
- `event_id` 32 ASCII hex digits once 'urn:'/'uuid:' prefixes, braces and hyphens are
  removed (as `pipelines.events.parse_event` reads one);
- `event_time` not before 2006-03-21 and at most one day after the arrival partition's
  arrival start (the archive's `received_at`), the payload at most 64 KiB.

Known approximations, all on lines no generator or producer writes: lines that are not
UTF-8 are skipped by the reader (they are invalid anyway); DuckDB's JSON reader may accept
a few non-standard spellings (e.g. trailing commas) Python rejects, and does not apply
`parse_event`'s nesting and integer-length limits.

The view `archive_events(event_id, event_time_ms, event_type, tweet_id, arrival_start_ms,
arrival_end_ms)` is what the Ibis explanation reads, [arrival_start_ms, arrival_end_ms) the
interval of the part holding the line (`pipelines.archive.ArrivalSpans`); on BigQuery the
same columns come from a table or view over the Cloud Storage archive (`--archive
dataset.table`).
"""

from __future__ import annotations

from pathlib import Path

from pipelines.archive import ArchivePart, ArrivalSpans, list_parts
from pipelines.errors import ConfigError
from pipelines.events import CLIENTS, EVENT_TYPES, FIELDS, MAX_FUTURE_MS, MAX_PAYLOAD_BYTES, MIN_EVENT_TIME_MS

ARCHIVE_VIEW = "archive_events"
ARCHIVE_COLUMNS = (
    "event_id",
    "event_time_ms",
    "event_type",
    "tweet_id",
    "arrival_start_ms",
    "arrival_end_ms",
)


def _sql_list(values: tuple[str, ...] | list[str]) -> str:
    return ", ".join("'" + v.replace("'", "''") + "'" for v in values)


def archive_files(root: str, since_ms: int | None, period_ms: int) -> list[ArchivePart]:
    """Parts that may hold events of windows from `since_ms` on (all if None)."""
    if root.startswith("gs://"):
        raise ConfigError(
            f"--archive {root}: DuckDB reads a local archive; on BigQuery pass a table of events"
        )
    if not Path(root).is_dir():
        raise ConfigError(f"--archive {root}: no such folder (the archive root, holding dt=YYYY-MM-DD/...)")
    # An event may arrive up to a day before its event_time (clock skew) and any time after.
    start = None if since_ms is None else since_ms - MAX_FUTURE_MS
    return list_parts(root, start, None, spans=ArrivalSpans(period_ms))


def archive_events_sql(parts: list[ArchivePart]) -> str:
    """CREATE VIEW archive_events: the valid events in `parts`, with their arrival interval."""
    if not parts:
        return (
            f"CREATE OR REPLACE VIEW {ARCHIVE_VIEW} AS SELECT NULL::VARCHAR AS event_id, "
            "NULL::BIGINT AS event_time_ms, NULL::VARCHAR AS event_type, NULL::BIGINT AS tweet_id, "
            "NULL::BIGINT AS arrival_start_ms, NULL::BIGINT AS arrival_end_ms WHERE false"
        )
    files = [part.path for part in parts]
    arrivals = ", ".join(
        f"({_sql_list([part.path])}, {part.arrival_start_ms}, {part.arrival_end_ms})" for part in parts
    )
    ints = ("event_time", "tweet_id", "user_id", "author_id")
    strings = ("event_id", "event_type", "client")
    typed_ints = " AND ".join(f"json_type(j, '$.{f}') IN ('BIGINT', 'UBIGINT')" for f in ints)
    typed_strings = " AND ".join(f"json_type(j, '$.{f}') = 'VARCHAR'" for f in strings)
    positive = " AND ".join(f"coalesce(try_cast(j->>'$.{f}' AS BIGINT), 0) > 0" for f in ints)
    return f"""
CREATE OR REPLACE VIEW {ARCHIVE_VIEW} AS
WITH raw AS (
    SELECT line, filename
    FROM read_csv([{_sql_list(files)}], columns = {{'line': 'VARCHAR'}}, header = false,
                  delim = chr(1) || chr(2) || chr(3), quote = '', escape = '', auto_detect = false,
                  filename = true, ignore_errors = true, strict_mode = false, max_line_size = 4194304)
    WHERE line IS NOT NULL
), arrivals(filename, arrival_start_ms, arrival_end_ms) AS (
    VALUES {arrivals}
), parsed AS (
    SELECT try_cast(line AS JSON) AS j, octet_length(encode(line)) AS nbytes,
           arrival_start_ms, arrival_end_ms
    FROM raw JOIN arrivals USING (filename)
), checked AS (
    SELECT j, arrival_start_ms, arrival_end_ms
    FROM parsed
    WHERE nbytes <= {MAX_PAYLOAD_BYTES}
      AND json_type(j) = 'OBJECT' AND len(json_keys(j)) = {len(FIELDS)}
      AND {typed_ints} AND {typed_strings} AND {positive}
)
SELECT j->>'$.event_id' AS event_id,
       try_cast(j->>'$.event_time' AS BIGINT) AS event_time_ms,
       j->>'$.event_type' AS event_type,
       try_cast(j->>'$.tweet_id' AS BIGINT) AS tweet_id,
       arrival_start_ms, arrival_end_ms
FROM checked
WHERE j->>'$.event_type' IN ({_sql_list(EVENT_TYPES)})
  AND j->>'$.client' IN ({_sql_list(CLIENTS)})
  AND regexp_matches(replace(trim(replace(replace(j->>'$.event_id', 'urn:', ''), 'uuid:', ''), '{{}}'),
                             '-', ''), '^[0-9A-Fa-f]{{32}}$')
  AND try_cast(j->>'$.event_time' AS BIGINT) >= {MIN_EVENT_TIME_MS}
  AND try_cast(j->>'$.event_time' AS BIGINT) <= arrival_start_ms + {MAX_FUTURE_MS}
"""
