"""Every parser entry point on the same inputs, and the check that they agree.

A Kafka record reaches the arms by four roads: the bridge (`message_for`: its one-line
form, with attributes from `parse_event`, `malformed=1` when it is bad), the kappa stream
(`parse_event` / `parse_or_reject` on what the bridge published), the archive readers
(`parse_batch`, the Arrow fast path, over lines of the archive, given as lines and as a
part file's bytes) and the legacy speed job (`parse_record` on the raw record). They must
never raise, and must give one verdict: the same event (fields), or the same reason.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import astuple
from typing import Any

import pyarrow as pa

from lambda_legacy.speed.logic import SpeedEvent, parse_record
from pipelines.beam.arrow_events import LineBatch, lines_of_blob, parse_batch
from pipelines.beam.event_lines import event_key
from pipelines.events import BadEvent, BadRecord, Interaction, one_line, parse_event, parse_or_reject
from pipelines.source.bridge import message_for

TOPIC = "interactions"
ENTRY_POINTS = ("parse_event", "parse_or_reject", "parse_batch", "parse_batch_blob", "bridge", "parse_record")


def verdict(raw: bytes, received_at_ms: int) -> tuple[str, Any]:
    """("good", the event's fields) or ("bad", the reason), by `parse_event`."""
    try:
        return "good", astuple(parse_event(raw, received_at_ms))
    except BadEvent as exc:
        return "bad", str(exc)


def _shown(raw: bytes | str) -> str:
    return repr(raw[:200]) + (f"... ({len(raw)} long)" if len(raw) > 200 else "")


def check_agreement(raws: list[bytes], received_at_ms: int, checked: Counter | None = None) -> Counter:
    """Assert that every entry point gives `parse_event`'s verdict on each Kafka record value
    in `raws` (and that a record and its one-line form get the same verdict); returns the
    inputs checked per entry point (added to `checked` if given)."""
    checked = Counter() if checked is None else checked
    lines = [one_line(raw) for raw in raws]  # what the stream and the archive readers get
    verdicts = [verdict(line, received_at_ms) for line in lines]
    for raw, line, (kind, value) in zip(raws, lines, verdicts, strict=True):
        if raw != line:
            raw_kind, raw_value = verdict(raw, received_at_ms)
            assert raw_kind == kind and (kind == "bad" or raw_value == value), (
                f"one_line changed {_shown(raw)}"
            )
        _check_record(raw, line, kind, value, received_at_ms)
    checked.update(dict.fromkeys(("parse_event", "parse_or_reject", "bridge", "parse_record"), len(raws)))
    _check_batch(lines, verdicts, received_at_ms, as_blob=False)
    _check_batch(lines, verdicts, received_at_ms, as_blob=True)
    checked.update({"parse_batch": len(raws), "parse_batch_blob": len(raws)})
    return checked


def _check_record(raw: bytes, line: bytes, kind: str, value: object, received_at_ms: int) -> None:
    result = parse_or_reject(line, "kappa_stream", received_at_ms)
    if kind == "good":
        assert isinstance(result, Interaction) and astuple(result) == value, _shown(raw)
    else:
        assert isinstance(result, BadRecord) and result.error == value and result.payload == line, _shown(raw)
    data, attributes = message_for(raw, TOPIC, 0, 17, received_at_ms)
    assert data == line, _shown(raw)
    if kind == "good":
        event = Interaction(*value)
        assert attributes == event.attributes(), _shown(raw)
    else:
        assert attributes == {
            "event_id": f"kafka:{TOPIC}:0:17",
            "event_time": str(received_at_ms),
            "malformed": "1",
        }
    speed = parse_record(raw, received_at_ms)
    if kind == "good":
        e = Interaction(*value)
        assert speed == SpeedEvent(e.tweet_id, e.event_type, e.event_time, e.event_id), _shown(raw)
    else:
        assert isinstance(speed, BadRecord) and speed.error == value and speed.payload == line, _shown(raw)


def _check_batch(lines: list[bytes], verdicts: list, received_at_ms: int, as_blob: bool) -> None:
    """`parse_batch` over the lines (as an array of lines, or as the part file they make):
    the good events in line order with their fields, the bad lines in order with their reasons."""
    if as_blob:
        blob = b"".join(line + b"\n" for line in lines)
        array = lines_of_blob(blob)
    else:
        array = pa.array(lines, pa.binary())
    events, rejected = parse_batch(LineBatch(array, received_at_ms, 0), "kappa_backfill")
    table = events.events
    got_good = list(zip(*(table[c].to_pylist() for c in table.column_names), strict=True))
    want_good = [(event_key(v[0]), v[1], v[2], v[3]) for kind, v in verdicts if kind == "good"]
    want_bad = [(line, v) for line, (kind, v) in zip(lines, verdicts, strict=True) if kind == "bad"]
    got_bad = [(r.payload, r.error) for r in rejected]
    if got_good != want_good or got_bad != want_bad:
        wrong = [item for item in got_bad if item not in want_bad] + [
            item for item in want_bad if item not in got_bad
        ]
        raise AssertionError(
            f"parse_batch (blob={as_blob}) disagrees: {[(_shown(p), e) for p, e in wrong[:3]]}"
        )
