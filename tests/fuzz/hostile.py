"""Hostile Kafka record values: every kind of bad record the drills and the parser tests
send, and valid events at the 64 KiB boundary.

`hostile_payloads` are all rejected by `parse_event` (the drills assert each is
dead-lettered by every arm); `boundary_events` are valid, padded with JSON whitespace to
just under and exactly MAX_PAYLOAD_BYTES (every arm counts them).
"""

from __future__ import annotations

import json
import uuid

from pipelines.events import MAX_PAYLOAD_BYTES, Interaction

UNDER_LIMIT = MAX_PAYLOAD_BYTES - 1


def good_event(at_ms: int, i: int) -> Interaction:
    return Interaction(
        str(uuid.uuid4()), at_ms + i, ("like", "retweet")[i % 2], 900 + i % 5, 7 + i, 11, "ios"
    )


def padded(raw: bytes, size: int) -> bytes:
    """A JSON object `size` bytes long: `raw` with spaces after its opening brace."""
    assert raw.startswith(b"{") and len(raw) <= size
    return b"{" + b" " * (size - len(raw)) + raw[1:]


def boundary_events(events: list[Interaction]) -> list[bytes]:
    """Two valid events: one of MAX_PAYLOAD_BYTES - 1 bytes, one of exactly MAX_PAYLOAD_BYTES."""
    return [padded(events[0].to_json(), UNDER_LIMIT), padded(events[1].to_json(), MAX_PAYLOAD_BYTES)]


def hostile_payloads(at_ms: int) -> dict[str, bytes | None]:
    """kind -> a bad Kafka record value (None: a tombstone). Every one is rejected by parse_event."""
    base = json.loads(good_event(at_ms, 0).to_json())
    canonical = good_event(at_ms, 3).to_json()

    def with_(**changes: object) -> bytes:
        return json.dumps({**base, **changes}).encode()

    def with_raw(name: str, text: bytes) -> bytes:
        """The base event with the JSON text of one field's value replaced by `text`."""
        return json.dumps({**base, name: "@@"}).encode().replace(b'"@@"', text)

    hex_id = uuid.uuid4().hex
    pad = json.dumps({**base, "pad": ""})
    many_keys = b"{" + b",".join(b'"k%d":0' % i for i in range(6000)) + b',"k0":1}'  # 6,001 keys, one twice
    return {
        "truncated_json": good_event(at_ms, 1).to_json()[:37],
        "wrong_type": with_(tweet_id=str(base["tweet_id"])),
        "bool_as_int": with_(event_time=True),
        "float_id": with_(user_id=1.5),
        "over_64_kib": pad.replace('"pad": ""', '"pad": "' + "x" * 70_000 + '"').encode(),
        "near_1_mb": pad.replace('"pad": ""', '"pad": "' + "y" * 1_000_000 + '"').encode(),
        "unknown_event_type": with_(event_type="superlike"),
        "unknown_client": with_(client="fax"),
        "negative_id": with_(author_id=-3),
        "zero_id": with_(tweet_id=0),
        "int64_overflow": with_(tweet_id=2**63),
        "far_future": with_(event_time=at_ms + 3 * 86_400_000),
        "far_past": with_(event_time=946_684_800_000),  # 2000-01-01, before the first tweet
        "invalid_utf8": b'{"event_id": "\xff\xfe\xfd", "event_type": "like"}',
        "duplicate_keys": good_event(at_ms, 2).to_json().replace(b'"client"', b'"client":"web","client"'),
        "nan": with_(event_time=float("nan")),
        "infinity": with_(tweet_id=float("inf")),
        "nested_junk": with_(extra={"nested": [1, {"junk": [None, {"deeper": True}]}]}),
        "missing_field": json.dumps({k: v for k, v in base.items() if k != "event_id"}).encode(),
        "not_a_uuid": with_(event_id="'; DROP TABLE dead_letter; --"),
        "control_chars": b'{"event_id": "\x00\x01", "event_type": "like"}',
        "json_array": b"[1, 2, 3]",
        "json_string": b'"like"',
        "not_json": b"<xml>not json</xml>",
        "whitespace_only": b"   \t ",
        "empty_message": b"",
        "kafka_tombstone": None,
        # Issue 27: inputs that raised out of the parser, and their neighbours.
        "deep_nesting_30_kb": b"[" * 30_000,  # RecursionError in json's scanner
        "deep_nesting_at_64_kib": b"[" * MAX_PAYLOAD_BYTES,
        "deep_nesting_in_a_field": with_raw("tweet_id", b"[" * 40 + b"1" + b"]" * 40),
        "deep_objects_just_under_64_kib": (b'{"a":' * (UNDER_LIMIT // 5)).ljust(UNDER_LIMIT, b" "),
        "over_limit_integer": with_raw("tweet_id", b"1" * 4301),  # ValueError: Exceeds the limit
        "integer_at_the_digit_limit": with_raw("tweet_id", b"9" * 4300),
        "negative_over_limit_integer": with_raw("user_id", b"-" + b"7" * 5000),
        "huge_float": with_raw("tweet_id", b"1e400"),
        "huge_exponent": with_raw("author_id", b"1E999999999"),
        "integer_as_exponent": with_raw("tweet_id", b"42e0"),
        "negative_zero": with_raw("tweet_id", b"-0"),
        "negative_infinity": with_raw("event_time", b"-Infinity"),
        "lone_surrogate_escape": with_raw("event_id", b'"\\ud800"'),
        "surrogate_pair_escape": with_raw("event_type", b'"\\ud83d\\ude00"'),
        "lone_surrogate_in_a_key": canonical.replace(b'"client"', b'"\\udfff":1,"client"'),
        "lone_surrogate_utf8": with_raw("event_id", b'"\xed\xa0\x80"'),  # CESU-8, not UTF-8
        "overlong_utf8": with_raw("client", b'"\xc0\xaf"'),
        "utf8_bom": b"\xef\xbb\xbf" + canonical,
        "utf16_bom": b"\xff\xfe" + canonical.decode().encode("utf-16-le"),
        "nul_byte_between_tokens": canonical.replace(b",", b",\x00", 1),
        "nul_escape_in_a_key": canonical.replace(b'"client"', b'"client\\u0000"'),
        "nul_escape_in_a_value": canonical.replace(b'"event_type":"', b'"event_type":"\\u0000'),
        "uuid_with_whitespace": with_(event_id=" " + uuid.uuid4().hex[1:]),  # int() took it
        "uuid_with_0x": with_(event_id="0x" + uuid.uuid4().hex[2:]),
        "uuid_with_underscore": with_(event_id=hex_id[:16] + "_" + hex_id[16:31]),
        "uuid_arabic_digits": with_(event_id="\u0661" * 32),
        # A raw CR in a string: invalid JSON; in its one-line form a space, which int() took.
        "cr_inside_a_string": with_raw("event_id", b'"\r' + hex_id[1:].encode() + b'"'),
        "two_events_in_one_record": canonical + b"\n" + good_event(at_ms, 4).to_json(),
        "trailing_garbage": canonical + b"x",
        "many_keys_one_duplicate": many_keys,
        "long_key": canonical.replace(b'"client"', b'"' + b"k" * 60_000 + b'":1,"client"'),
        "long_event_type": with_(event_type="like" * 15_000),
        "just_over_64_kib": padded(good_event(at_ms, 5).to_json(), MAX_PAYLOAD_BYTES + 1),
        "empty_object": b"{}",
        "json_null": b"null",
        "only_a_number": b"12345678901234567890",
    }
