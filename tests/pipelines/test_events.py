import json

import pytest

from pipelines.events import BadEvent, BadRecord, Interaction, parse_event, parse_or_reject

NOW = 1_764_000_000_000
GOOD_ID = "0b0e5f2c-5a38-4a6e-9d0f-7d1b2b8f9a10"
GOOD = {
    "event_id": GOOD_ID,
    "event_time": NOW - 5000,
    "event_type": "like",
    "tweet_id": 42,
    "user_id": 7,
    "author_id": 9,
    "client": "ios",
}


def payload(**changes):
    obj = {**GOOD, **changes}
    return json.dumps({k: v for k, v in obj.items() if v is not ...}).encode()


def test_valid_event_round_trips():
    event = parse_event(payload(), received_at_ms=NOW)
    assert event == Interaction(**GOOD)
    assert parse_event(event.to_json(), received_at_ms=NOW) == event
    assert event.attributes() == {"event_id": GOOD["event_id"], "event_time": str(GOOD["event_time"])}


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"", "empty message"),
        (b"   ", "empty message"),
        (b'{"event_id": "x"', "not JSON"),
        (b"[1, 2]", "not a JSON object"),
        (b'{"a": 1, "a": 2}', "duplicate key 'a'"),
        (b'{"a": NaN}', "non-finite number NaN"),
        (b'{"a": Infinity}', "non-finite number Infinity"),
        (b'{"event_id": "\xff"}', "invalid UTF-8"),
        (b"x" * (64 * 1024 + 1), "exceeds 65536"),
        (payload(client=...), "missing field 'client'"),
        (payload(extra={"nested": [1]}), "unexpected field 'extra'"),
        (payload(tweet_id="42"), "'tweet_id' must be an integer"),
        (payload(tweet_id=True), "'tweet_id' must be an integer"),
        (payload(tweet_id=4.5), "'tweet_id' must be an integer"),
        (payload(user_id=-1), "'user_id' must be a positive int64"),
        (payload(author_id=0), "'author_id' must be a positive int64"),
        (payload(tweet_id=2**63), "'tweet_id' must be a positive int64"),
        (payload(event_type="superlike"), "unknown event_type"),
        (payload(client="fax"), "unknown client"),
        (payload(event_id="not-a-uuid"), "not a UUID"),
        (payload(event_id=5), "'event_id' must be a string"),
        (payload(event_time=NOW + 2 * 86_400_000), "more than 1 day in the future"),
        (payload(event_time=1000), "before 2006-03-21"),
        (b"[" * 30_000, "JSON nested deeper than 32 levels"),
        (b'{"a":' * 33 + b"1" + b"}" * 33, "JSON nested deeper than 32 levels"),
        (b'["' + b"[" * 100 + b'"]', "not a JSON object"),  # brackets inside a string do not nest
        (
            payload(tweet_id=...).replace(b"}", b', "tweet_id": ' + b"1" * 4301 + b"}"),
            "an integer of more than 4300 digits",
        ),
        (
            payload(tweet_id=10**300),
            r"'tweet_id' must be a positive int64, got 10000000000000000000\.\.\. \(301 digits\)",
        ),
        ("\ud800", "invalid UTF-8 at byte 0"),
        (b'{"event_id": "\xed\xa0\x80"}', "invalid UTF-8 at byte 14"),
        (b"\xef\xbb\xbf" + payload(), "Unexpected UTF-8 BOM"),
        (
            payload(tweet_id=...).replace(b"}", b', "tweet_id": 1e400}'),
            "'tweet_id' must be an integer, got float",
        ),
        (
            payload(tweet_id=...).replace(b"}", b', "tweet_id": -0}'),
            "'tweet_id' must be a positive int64, got 0",
        ),
        (payload(event_id="\ud800"), r"event_id is not a UUID: '\\ud800'"),
        (payload(event_id=" " + "a" * 31), "not a UUID"),
        (payload(event_id="0x" + "a" * 30), "not a UUID"),
        (payload(event_id="a" * 16 + "_" + "a" * 15), "not a UUID"),
        (payload(event_id="\u0661" * 32), "not a UUID"),
        (
            payload(extra=...).replace(b"}", b', "' + b"k" * 1000 + b'": 1}'),
            r"unexpected field 'kkkk.*\.\.\. \(1002 characters\)$",
        ),
    ],
)
def test_bad_events_are_rejected_with_their_reason(raw, reason):
    pattern = reason if "\\" in reason or reason.endswith("$") else reason.replace("(", r"\(")
    with pytest.raises(BadEvent, match=pattern):
        parse_event(raw, received_at_ms=NOW)


@pytest.mark.parametrize(
    "event_id",
    [GOOD_ID.upper(), "{" + GOOD_ID + "}", "urn:uuid:" + GOOD_ID, GOOD_ID.replace("-", "")],
)
def test_the_uuid_spellings_uuid_module_reads_stay_valid(event_id):
    assert parse_event(payload(event_id=event_id), received_at_ms=NOW).event_id == event_id


def test_future_check_is_relative_to_arrival_not_to_the_replay_clock():
    raw = payload(event_time=NOW + 3600_000)
    assert parse_event(raw, received_at_ms=NOW).event_time == NOW + 3600_000
    with pytest.raises(BadEvent):
        parse_event(payload(event_time=NOW + 2 * 86_400_000), received_at_ms=NOW)


def test_parse_or_reject_keeps_the_raw_payload():
    bad = parse_or_reject(b"\x00garbage", "kappa_stream", received_at_ms=NOW)
    assert isinstance(bad, BadRecord)
    assert bad.payload == b"\x00garbage" and bad.pipeline == "kappa_stream" and "not JSON" in bad.error
    assert isinstance(parse_or_reject(payload(), "x", received_at_ms=NOW), Interaction)
