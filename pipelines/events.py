"""The interaction event (DESIGN.md 2.1): its one definition and its validating parser.

`parse_event` returns an `Interaction` or raises `BadEvent` with a reason;
`parse_or_reject` turns that into a `BadRecord` for a dead-letter output. Every arm
(legacy batch, legacy speed, kappa stream and backfill, validator) uses these. The rules
are the table of `pipelines.event_rules`, which the backfill's Arrow fast path and the
validator's SQL over archive lines are built from too.

Validation is deterministic for a given payload and arrival time: "too far in the
future" is judged against when the record arrived (Pub/Sub publish time, Kafka
timestamp, archive partition), not against the clock of whoever replays it.
"""

from __future__ import annotations

import json
import re
import sys
import time
from dataclasses import asdict, dataclass
from typing import Any, Iterable

from pipelines.event_rules import CLIENTS as CLIENTS
from pipelines.event_rules import (
    ENUMS,
    FIELDS,
    INT_FIELDS,
    MAX_DEPTH,
    MAX_FUTURE_MS,
    MAX_INT64,
    MAX_PAYLOAD_BYTES,
    MIN_EVENT_TIME_MS,
    STRING_FIELDS,
    TIME_FIELD,
    UUID_FIELDS,
)
from pipelines.event_rules import EVENT_TYPES as EVENT_TYPES
from pipelines.event_rules import ID_FIELDS as ID_FIELDS

SHOWN_CHARS = 64  # of a value quoted in a reason

_ENUM_SETS = tuple((name, frozenset(values)) for name, values in ENUMS.items())


class BadEvent(ValueError):
    """A payload that is not a valid interaction event; the message is the reason."""


@dataclass(frozen=True, slots=True)
class Interaction:
    event_id: str
    event_time: int
    event_type: str
    tweet_id: int
    user_id: int
    author_id: int
    client: str

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), separators=(",", ":")).encode()

    def attributes(self) -> dict[str, str]:
        """Pub/Sub attributes: what Dataflow's id_label and timestamp_attribute read."""
        return {"event_id": self.event_id, "event_time": str(self.event_time)}


@dataclass(frozen=True, slots=True)
class BadRecord:
    """A dead-letter row: the raw payload, why it was rejected, by whom and when."""

    payload: bytes
    error: str
    pipeline: str
    failed_at_ms: int


def one_line(raw: bytes) -> bytes:
    """A raw Kafka record as every arm reads it: CR and LF become spaces.

    A record travels as one line through every newline-delimited store (the local archive,
    the Cloud Storage subscription's objects), so the bridge publishes, the archiver writes
    and the speed job parses this form, and every arm judges the same bytes. Between tokens
    a CR or LF is JSON whitespace; inside a string it never makes a valid event (every
    string field is a UUID of hex digits or an enumerated value), so the verdict of
    `parse_event` on a record and on its one-line form is the same.
    """
    return raw.replace(b"\r", b" ").replace(b"\n", b" ")


def shown(value: object) -> str:
    """A value from a payload, quoted in a reason: printable (repr: escapes, lone surrogates
    included) and at most SHOWN_CHARS characters, plus how long it was."""
    text = repr(value)
    if len(text) <= SHOWN_CHARS:
        return text
    return f"{text[:SHOWN_CHARS]}... ({len(text)} characters)"


def _reject_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise BadEvent(f"duplicate key {shown(_first_duplicate(key for key, _ in pairs))} in JSON object")
    return obj


def _first_duplicate(keys: Iterable[str]) -> str:
    """The first key seen twice (in linear time: 8,000 keys in 64 KiB, each compared once)."""
    seen: set[str] = set()
    for key in keys:
        if key in seen:
            return key
        seen.add(key)
    raise AssertionError("no duplicate key")


def _reject_constant(name: str) -> Any:
    raise BadEvent(f"non-finite number {name} is not allowed")


def raw_bytes(payload: bytes | str) -> bytes:
    """The bytes of a payload; a str is encoded back as it was decoded (surrogateescape),
    and one holding other lone surrogates keeps them as (invalid) UTF-8 bytes."""
    if isinstance(payload, bytes):
        return payload
    try:
        return payload.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return payload.encode("utf-8", "surrogatepass")


_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


def _nests_too_deep(payload: bytes) -> bool:
    """Whether the brackets outside strings nest deeper than MAX_DEPTH: two counts when there
    are few, else one pass in C over the text and one in Python over its brackets (a crafted
    64 KiB message: ~3 ms). The depth found is never below the depth json's scanner reaches."""
    if payload.count(b"[") + payload.count(b"{") <= MAX_DEPTH:
        return False
    # Without its escaped backslashes and quotes, a string is what lies between two quotes.
    unescaped = payload.replace(b"\\\\", b"").replace(b'\\"', b"")
    outside = b"".join(unescaped.split(b'"')[::2])
    depth = 0
    for byte in outside.translate(None, _NOT_BRACKETS):
        depth += 1 if byte in b"[{" else -1
        if depth > MAX_DEPTH:
            return True
    return False


def _decode(payload: bytes | str) -> dict[str, Any]:
    payload = raw_bytes(payload)
    if not payload or not payload.strip():
        raise BadEvent("empty message")
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise BadEvent(f"message of {len(payload)} bytes exceeds {MAX_PAYLOAD_BYTES}")
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadEvent(f"invalid UTF-8 at byte {exc.start}") from None
    if _nests_too_deep(payload):
        raise BadEvent(f"JSON nested deeper than {MAX_DEPTH} levels")
    try:
        obj = json.loads(text, object_pairs_hook=_reject_duplicate_keys, parse_constant=_reject_constant)
    except BadEvent:
        raise
    except json.JSONDecodeError as exc:
        raise BadEvent(f"not JSON: {exc.msg} at char {exc.pos}") from None
    except ValueError:  # int() refuses a literal longer than the interpreter's digit limit
        raise BadEvent(f"an integer of more than {sys.get_int_max_str_digits()} digits") from None
    except RecursionError:  # not reached below MAX_DEPTH; kept so that no input raises anything else
        raise BadEvent(f"JSON nested deeper than {MAX_DEPTH} levels") from None
    if not isinstance(obj, dict):
        raise BadEvent(f"not a JSON object but {type(obj).__name__}")
    return obj


def _check_fields(obj: dict[str, Any]) -> None:
    missing = [name for name in FIELDS if name not in obj]
    if missing:
        raise BadEvent(f"missing field '{missing[0]}'")
    extra = sorted(set(obj) - set(FIELDS))
    if extra:
        raise BadEvent(f"unexpected field {shown(extra[0])}")
    for name in INT_FIELDS:
        value = obj[name]
        if isinstance(value, bool) or not isinstance(value, int):
            raise BadEvent(f"field '{name}' must be an integer, got {type(value).__name__}")
        if not 0 < value <= MAX_INT64:
            raise BadEvent(f"field '{name}' must be a positive int64, got {_shown_int(value)}")
    for name in STRING_FIELDS:
        if not isinstance(obj[name], str):
            raise BadEvent(f"field '{name}' must be a string, got {type(obj[name]).__name__}")


def _shown_int(value: int) -> str:
    text = str(value)
    return text if len(text) <= 24 else f"{text[:20]}... ({len(text)} digits)"


_UUID_HEX = re.compile(r"[0-9A-Fa-f]{32}")


def is_uuid(text: str) -> bool:
    """A UUID in a form `uuid.UUID` reads ('urn:'/'uuid:' and braces and hyphens removed,
    then 32 hex digits), but of ASCII hex digits only: `uuid.UUID` hands the rest to int(),
    which also takes whitespace, '_', a sign, a 0x prefix and non-ASCII digits."""
    hex_digits = text.replace("urn:", "").replace("uuid:", "").strip("{}").replace("-", "")
    return _UUID_HEX.fullmatch(hex_digits) is not None


def _check_values(obj: dict[str, Any], received_at_ms: int) -> None:
    for name in UUID_FIELDS:
        if not is_uuid(obj[name]):
            raise BadEvent(f"{name} is not a UUID: {obj[name][:SHOWN_CHARS]!r}")
    for name, allowed in _ENUM_SETS:
        if obj[name] not in allowed:
            raise BadEvent(f"unknown {name} {obj[name][:SHOWN_CHARS]!r}")
    if obj[TIME_FIELD] > received_at_ms + MAX_FUTURE_MS:
        raise BadEvent(f"{TIME_FIELD} is more than 1 day in the future")
    if obj[TIME_FIELD] < MIN_EVENT_TIME_MS:
        raise BadEvent(f"{TIME_FIELD} is before 2006-03-21, the first tweet")


def parse_event(payload: bytes | str, received_at_ms: int | None = None) -> Interaction:
    """The validated event in `payload`, or `BadEvent` with the reason it is not one."""
    obj = _decode(payload)
    _check_fields(obj)
    _check_values(obj, received_at_ms if received_at_ms is not None else now_ms())
    return Interaction(**{name: obj[name] for name in FIELDS})


def parse_or_reject(
    payload: bytes | str, pipeline: str, received_at_ms: int | None = None
) -> Interaction | BadRecord:
    """`parse_event`, with a rejected payload turned into a dead-letter record."""
    try:
        return parse_event(payload, received_at_ms)
    except BadEvent as exc:
        return BadRecord(raw_bytes(payload), str(exc), pipeline, now_ms())


def now_ms() -> int:
    return int(time.time() * 1000)
