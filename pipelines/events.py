"""The interaction event (DESIGN.md 2.1): its one definition and its validating parser.

`parse_event` returns an `Interaction` or raises `BadEvent` with a reason;
`parse_or_reject` turns that into a `BadRecord` for a dead-letter output. Every arm
(legacy batch, legacy speed, kappa stream and backfill, validator) uses these.

Validation is deterministic for a given payload and arrival time: "too far in the
future" is judged against when the record arrived (Pub/Sub publish time, Kafka
timestamp, archive partition), not against the clock of whoever replays it.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import asdict, dataclass
from typing import Any

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
FIELDS = ("event_id", "event_time", "event_type", "tweet_id", "user_id", "author_id", "client")
ID_FIELDS = ("tweet_id", "user_id", "author_id")

MAX_PAYLOAD_BYTES = 64 * 1024
MAX_FUTURE_MS = 24 * 3600 * 1000
# Twitter's first tweet (2006-03-21): anything earlier is a broken clock, not a late event.
MIN_EVENT_TIME_MS = 1_142_899_200_000
MAX_INT64 = 2**63 - 1

_EVENT_TYPE_SET = frozenset(EVENT_TYPES)
_CLIENT_SET = frozenset(CLIENTS)


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


def _reject_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [key for key, _ in pairs]
    if len(keys) != len(set(keys)):
        dup = next(key for key in keys if keys.count(key) > 1)
        raise BadEvent(f"duplicate key '{dup}' in JSON object")
    return dict(pairs)


def _reject_constant(name: str) -> Any:
    raise BadEvent(f"non-finite number {name} is not allowed")


def _decode(payload: bytes | str) -> dict[str, Any]:
    if isinstance(payload, str):
        payload = payload.encode("utf-8", "surrogateescape")
    if not payload or not payload.strip():
        raise BadEvent("empty message")
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise BadEvent(f"message of {len(payload)} bytes exceeds {MAX_PAYLOAD_BYTES}")
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadEvent(f"invalid UTF-8 at byte {exc.start}") from None
    try:
        obj = json.loads(text, object_pairs_hook=_reject_duplicate_keys, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise BadEvent(f"not JSON: {exc.msg} at char {exc.pos}") from None
    if not isinstance(obj, dict):
        raise BadEvent(f"not a JSON object but {type(obj).__name__}")
    return obj


def _check_fields(obj: dict[str, Any]) -> None:
    missing = [name for name in FIELDS if name not in obj]
    if missing:
        raise BadEvent(f"missing field '{missing[0]}'")
    extra = sorted(set(obj) - set(FIELDS))
    if extra:
        raise BadEvent(f"unexpected field '{extra[0]}'")
    for name in ("event_time", *ID_FIELDS):
        value = obj[name]
        if isinstance(value, bool) or not isinstance(value, int):
            raise BadEvent(f"field '{name}' must be an integer, got {type(value).__name__}")
        if not 0 < value <= MAX_INT64:
            raise BadEvent(f"field '{name}' must be a positive int64, got {value}")
    for name in ("event_id", "event_type", "client"):
        if not isinstance(obj[name], str):
            raise BadEvent(f"field '{name}' must be a string, got {type(obj[name]).__name__}")


def _check_values(obj: dict[str, Any], received_at_ms: int) -> None:
    try:
        uuid.UUID(obj["event_id"])
    except ValueError:
        raise BadEvent(f"event_id is not a UUID: {obj['event_id'][:64]!r}") from None
    if obj["event_type"] not in _EVENT_TYPE_SET:
        raise BadEvent(f"unknown event_type {obj['event_type'][:64]!r}")
    if obj["client"] not in _CLIENT_SET:
        raise BadEvent(f"unknown client {obj['client'][:64]!r}")
    if obj["event_time"] > received_at_ms + MAX_FUTURE_MS:
        raise BadEvent("event_time is more than 1 day in the future")
    if obj["event_time"] < MIN_EVENT_TIME_MS:
        raise BadEvent("event_time is before 2006-03-21, the first tweet")


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
        raw = payload if isinstance(payload, bytes) else payload.encode("utf-8", "surrogateescape")
        return BadRecord(raw, str(exc), pipeline, now_ms())


def now_ms() -> int:
    return int(time.time() * 1000)
