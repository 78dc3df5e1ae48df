"""The archive as a table of valid events, for explaining differences (DuckDB side).

The archive's raw lines are read by DuckDB itself (`read_csv` with one VARCHAR column,
gzip handled, `filename = true` to join each line to its part's arrival interval, which
`pipelines.archive.list_parts` gives) and validated in SQL built from the rule table of
`pipelines.event_rules`, the one `pipelines.events.parse_event` and the backfill's fast path
apply, so no archive line passes through Python and the verdicts are the same
(tests/pipelines/test_parsers_agree.py):

- the line is at most MAX_PAYLOAD_BYTES and matches `FLAT_OBJECT`, the JSON grammar of an
  object of string and integer members, so what DuckDB's JSON reader takes beyond JSON
  (trailing commas, comments, NaN, nesting) is refused as Python refuses it; a line that is
  not UTF-8 is skipped by the reader, as is the first line of a part that opens with a
  UTF-8 BOM (neither is ever a valid event). The reader also ends a line at a CR: the
  archive's writers write each record's one-line form (`pipelines.events.one_line`: CR and
  LF become spaces), so a part's only CR is that of a CRLF line end (JSON whitespace);
- the object has exactly the table's fields (a duplicated key counts twice, so it fails),
  each of its kind: INT64 a JSON integer in 1..2^63-1, UUID a string of 32 ASCII hex digits
  once 'urn:'/'uuid:' prefixes, braces and hyphens are removed, ENUM one of its values;
- `event_time` is not before MIN_EVENT_TIME_MS and at most MAX_FUTURE_MS after the arrival
  partition's arrival start (the archive's `received_at`).

The view `archive_events(event_id, event_time_ms, event_type, tweet_id, arrival_start_ms,
arrival_end_ms)` is what the Ibis explanation reads, [arrival_start_ms, arrival_end_ms) the
interval of the part holding the line (`pipelines.archive.ArrivalSpans`); on BigQuery the
same columns come from a table or view over the Cloud Storage archive (`--archive
dataset.table`).
"""

from __future__ import annotations

import gzip
from pathlib import Path

from pipelines.archive import ArchivePart, ArrivalSpans, list_parts
from pipelines.errors import ConfigError
from pipelines.event_rules import (
    ENUM,
    FIELDS,
    FLAT_OBJECT,
    INT64,
    MAX_FUTURE_MS,
    MAX_PAYLOAD_BYTES,
    MIN_EVENT_TIME_MS,
    RULES,
    TIME_FIELD,
    UUID,
)

ARCHIVE_VIEW = "archive_events"
BOM = b"\xef\xbb\xbf"
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
    arrivals = ", ".join(
        f"({_sql_list([part.path])}, {part.arrival_start_ms}, {part.arrival_end_ms})" for part in parts
    )
    # DuckDB's reader drops a UTF-8 BOM that opens a file; such a first line is never a valid
    # event (`parse_event`: "Unexpected UTF-8 BOM"), so it is skipped instead.
    with_bom = {part.path for part in parts if _starts_with_bom(part.path)}
    plain = [part.path for part in parts if part.path not in with_bom]
    reads = [_read_lines(plain, skip=0)] if plain else []
    reads += [_read_lines(sorted(with_bom), skip=1)] if with_bom else []
    return f"""
CREATE OR REPLACE VIEW {ARCHIVE_VIEW} AS
WITH raw AS (
    SELECT line, filename FROM ({" UNION ALL ".join(reads)}) WHERE line IS NOT NULL
), arrivals(filename, arrival_start_ms, arrival_end_ms) AS (
    VALUES {arrivals}
), lines AS (
    SELECT line, arrival_start_ms, arrival_end_ms FROM raw JOIN arrivals USING (filename)
)
{valid_events_sql("lines", carried=("arrival_start_ms", "arrival_end_ms"))}
"""


def _read_lines(files: list[str], skip: int) -> str:
    """The lines of `files` (gzip or plain) as (line, filename) rows, skipping `skip` at the top."""
    return f"""SELECT line, filename
    FROM read_csv([{_sql_list(files)}], columns = {{'line': 'VARCHAR'}}, header = false,
                  delim = chr(1) || chr(2) || chr(3), quote = '', escape = '', auto_detect = false,
                  filename = true, ignore_errors = true, strict_mode = false, max_line_size = 4194304,
                  skip = {skip})"""


def _starts_with_bom(path: str) -> bool:
    with gzip.open(path) if path.endswith(".gz") else open(path, "rb") as handle:
        return handle.read(len(BOM)) == BOM


def valid_events_sql(lines: str, carried: tuple[str, ...]) -> str:
    """SELECT the valid events of the relation `lines` (a VARCHAR column `line`, the arrival
    start of each in `arrival_start_ms`), as event_id, event_time_ms, event_type, tweet_id
    and the columns `carried` over from `lines`."""
    kept = ", ".join(carried)
    return f"""SELECT j->>'$.event_id' AS event_id,
       try_cast(j->>'$.{TIME_FIELD}' AS BIGINT) AS event_time_ms,
       j->>'$.event_type' AS event_type,
       try_cast(j->>'$.tweet_id' AS BIGINT) AS tweet_id{", " + kept if kept else ""}
FROM (
    SELECT try_cast(line AS JSON) AS j, *
    FROM {lines}
    WHERE octet_length(encode(line)) <= {MAX_PAYLOAD_BYTES}
      AND regexp_full_match(line, {_sql_list([FLAT_OBJECT])})
)
WHERE json_type(j) = 'OBJECT' AND len(json_keys(j)) = {len(FIELDS)}
  AND {" AND ".join(_field_predicates())}
"""


def _field_predicates() -> list[str]:
    """The table's rules as predicates over the JSON object `j` of a line."""
    out = []
    for rule in RULES:
        path = f"'$.{rule.name}'"
        if rule.kind == INT64:
            out.append(f"json_type(j, {path}) IN ('BIGINT', 'UBIGINT')")
            out.append(f"coalesce(try_cast(j->>{path} AS BIGINT), 0) > 0")  # above 2^63-1: NULL
        else:
            out.append(f"json_type(j, {path}) = 'VARCHAR'")
        if rule.kind == ENUM:
            out.append(f"j->>{path} IN ({_sql_list(rule.values)})")
        if rule.kind == UUID:  # as `pipelines.events.is_uuid` reads one
            bare = f"replace(trim(replace(replace(j->>{path}, 'urn:', ''), 'uuid:', ''), '{{}}'), '-', '')"
            out.append(f"regexp_full_match({bare}, '[0-9A-Fa-f]{{32}}')")
    time = f"try_cast(j->>'$.{TIME_FIELD}' AS BIGINT)"
    out.append(f"{time} >= {MIN_EVENT_TIME_MS}")
    out.append(f"{time} <= arrival_start_ms + {MAX_FUTURE_MS}")
    return out
