"""The rules of a valid interaction event (DESIGN.md 2.1), declared once.

Three readers apply them, each in its own language, all built from this table:

- `pipelines.events.parse_event` (Python, one payload at a time: the stream, the legacy arms,
  and every line the fast path leaves), which also gives the reason a payload is refused;
- `pipelines.beam.event_lines` (the backfill's fast path): `canonical_line` is one RE2
  expression of the shape `Interaction.to_json()` writes, for which only the event_time
  range is left to check;
- `migration.validator.archive_source` (DuckDB SQL over the archive's lines): `FLAT_OBJECT`
  is the JSON grammar of an object of string and integer members, so DuckDB's more lenient
  reader (trailing commas, comments, nesting) never judges a line Python refuses, and the
  field rules below become its predicates.

A valid event is a JSON object of exactly the fields of `RULES`, each of its kind: `INT64` a
JSON integer in 1..2^63-1, `UUID` a string that is a UUID once 'urn:'/'uuid:' prefixes,
braces and hyphens are removed (32 ASCII hex digits), `ENUM` one of its values; the payload
is at most MAX_PAYLOAD_BYTES of UTF-8, and `event_time` is not before MIN_EVENT_TIME_MS nor
more than MAX_FUTURE_MS after the record arrived. tests/pipelines/test_parsers_agree.py checks
that the three readers agree.
"""

from __future__ import annotations

from dataclasses import dataclass

EVENT_TYPES = (
    "impression",
    "like",
    "retweet",
    "reply",
    "quote",
    "click",
    "profile_click",
    "video_view",
    "bookmark",
)
CLIENTS = ("web", "ios", "android")

MAX_PAYLOAD_BYTES = 64 * 1024
MAX_FUTURE_MS = 24 * 3600 * 1000
# Twitter's first tweet (2006-03-21): anything earlier is a broken clock, not a late event.
MIN_EVENT_TIME_MS = 1_142_899_200_000
MAX_INT64 = 2**63 - 1
# A valid event is one object of scalars. Deeper nesting is refused before json.loads, so
# the verdict never depends on the interpreter's recursion limit or the caller's stack depth
# (json's C scanner recurses once per level: 30,000 '[' raised RecursionError).
MAX_DEPTH = 32

INT64, UUID, ENUM = "int64", "uuid", "enum"


@dataclass(frozen=True)
class FieldRule:
    name: str
    kind: str  # INT64, UUID or ENUM
    values: tuple[str, ...] = ()  # an ENUM's values


TIME_FIELD = "event_time"  # the INT64 field whose range is judged against the arrival
RULES = (
    FieldRule("event_id", UUID),
    FieldRule(TIME_FIELD, INT64),
    FieldRule("event_type", ENUM, EVENT_TYPES),
    FieldRule("tweet_id", INT64),
    FieldRule("user_id", INT64),
    FieldRule("author_id", INT64),
    FieldRule("client", ENUM, CLIENTS),
)
FIELDS = tuple(rule.name for rule in RULES)  # in the order `Interaction.to_json()` writes them
INT_FIELDS = tuple(rule.name for rule in RULES if rule.kind == INT64)
STRING_FIELDS = tuple(rule.name for rule in RULES if rule.kind != INT64)
ID_FIELDS = tuple(name for name in INT_FIELDS if name != TIME_FIELD)
UUID_FIELDS = tuple(rule.name for rule in RULES if rule.kind == UUID)
ENUMS = {rule.name: rule.values for rule in RULES if rule.kind == ENUM}

# --- the canonical line: how `Interaction.to_json()` spells each kind --------------------

_HEX = "[0-9a-f]"  # lowercase, as `str(uuid)` writes it
UUID_PATTERN = "-".join(f"{_HEX}{{{n}}}" for n in (8, 4, 4, 4, 12))
# At most 18 digits, not starting with 0: always a positive int64 (longer ones are left to
# `parse_event`, which judges them exactly).
CANONICAL_INT = "[1-9][0-9]{0,17}"


def canonical_value(rule: FieldRule) -> str:
    """The RE2 expression of a field's value as `Interaction.to_json()` writes it (the quotes
    of a string outside the expression)."""
    if rule.kind == INT64:
        return CANONICAL_INT
    if rule.kind == UUID:
        return UUID_PATTERN
    return "|".join(rule.values)


def canonical_line(captured: tuple[str, ...]) -> str:
    """One RE2 expression matching exactly the canonical lines (fixed key order, no
    whitespace, lowercase dashed UUIDs, known enum values, ids of at most 18 digits, maybe a
    trailing newline), capturing the fields in `captured` as named groups."""
    members = []
    for rule in RULES:
        value = canonical_value(rule)
        if rule.name in captured:
            value = f"(?P<{rule.name}>{value})"
        elif rule.kind == ENUM:
            value = f"(?:{value})"
        members.append(f'"{rule.name}":' + (value if rule.kind == INT64 else f'"{value}"'))
    # A trailing newline is JSON whitespace: a part file's lines may keep theirs.
    return r"^\{" + ",".join(members) + r"\}\n?$"


# --- the JSON grammar of an object of string and integer members (RFC 8259) --------------

_WS = "[ \\t\\n\\r]*"  # JSON's whitespace, which is also Python json's
_STRING = r'"(?:[^"\\\x00-\x1f]|\\["\\/bfnrt]|\\u[0-9A-Fa-f]{4})*"'
_INTEGER = "-?(?:0|[1-9][0-9]*)"
_MEMBER = f"{_WS}{_STRING}{_WS}:{_WS}(?:{_STRING}|{_INTEGER}){_WS}"
# Every valid event matches it (its values are strings and integers); what DuckDB's JSON
# reader takes beyond JSON (trailing commas, comments, NaN, single quotes) does not.
FLAT_OBJECT = f"^{_WS}\\{{(?:{_MEMBER}(?:,{_MEMBER})*|{_WS})\\}}{_WS}$"
