"""Issue 27: no record, however crafted, makes a parser raise, and every arm's entry point
gives it the same verdict and reason (tests/fuzz/entry_points.py says which they are).
Issue 28: the three readers of the rule table (`parse_event`, the backfill's Arrow fast path,
the validator's SQL over archive lines) find the same events in the same lines.

Before the fix, 30,000 '[' raised RecursionError and a 4,301-digit integer ValueError out
of every entry point (the bridge then restarted into the same record forever), a str with a
lone surrogate UnicodeEncodeError; a pretty-printed event was one event to the stream and
fragments to the archive readers of the Cloud Storage subscription's objects.
"""

from __future__ import annotations

import json
import random
import sys
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pytest

from lambda_legacy.speed.logic import SpeedEvent, parse_record
from migration.validator.archive_source import archive_events_sql, archive_files, valid_events_sql
from pipelines.archive import ArchiveWriter, partition_of, read_lines, read_part
from pipelines.beam.arrow_events import LineBatch, lines_of_blob, parse_batch
from pipelines.events import (
    MAX_DEPTH,
    BadEvent,
    BadRecord,
    Interaction,
    one_line,
    parse_event,
    parse_or_reject,
)
from pipelines.gcs_archive import object_body
from pipelines.source.bridge import attributes_for, message_for
from tests.fuzz import corpus
from tests.fuzz.entry_points import check_agreement, verdict
from tests.fuzz.hostile import boundary_events, good_event, hostile_payloads

AT = 1_767_571_200_000  # 2026-01-05T00:00:00Z
RECEIVED = AT + 60_000
HOSTILE = hostile_payloads(AT)


@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_every_hostile_kind_is_one_bad_event_with_one_short_reason_everywhere(kind: str) -> None:
    raw = HOSTILE[kind] or b""
    check_agreement([raw], RECEIVED)
    result, reason = verdict(raw, RECEIVED)
    assert result == "bad"
    assert isinstance(reason, str) and 0 < len(reason) <= 160, reason  # a reason, not the payload
    reason.encode("utf-8")  # a dead-letter row's string column takes it (no lone surrogate)


def test_the_hostile_corpus_covers_the_issue_27_kinds() -> None:
    assert len(HOSTILE) >= 40
    reasons = {kind: verdict(HOSTILE[kind] or b"", RECEIVED)[1] for kind in HOSTILE}
    assert reasons["deep_nesting_30_kb"] == f"JSON nested deeper than {MAX_DEPTH} levels"
    assert reasons["deep_nesting_at_64_kib"] == f"JSON nested deeper than {MAX_DEPTH} levels"
    assert reasons["over_limit_integer"] == f"an integer of more than {sys.get_int_max_str_digits()} digits"
    assert reasons["lone_surrogate_utf8"].startswith("invalid UTF-8")
    assert reasons["utf8_bom"].startswith("not JSON: Unexpected UTF-8 BOM")
    assert reasons["just_over_64_kib"] == "message of 65537 bytes exceeds 65536"
    for kind in ("uuid_with_whitespace", "uuid_with_0x", "uuid_with_underscore", "uuid_arabic_digits"):
        assert reasons[kind].startswith("event_id is not a UUID"), kind  # uuid.UUID took each


def test_events_just_under_and_at_64_kib_are_valid_everywhere() -> None:
    events = [good_event(AT, i) for i in range(2)]
    raws = boundary_events(events)
    assert [len(r) for r in raws] == [65535, 65536]
    check_agreement(raws, RECEIVED)
    assert [parse_event(r, RECEIVED) for r in raws] == events


def test_the_crashing_inputs_of_the_issue_are_dead_lettered_by_every_entry_point() -> None:
    for raw in (b"[" * 30_000, b'{"tweet_id":' + b"1" * 4301 + b"}"):
        bad = parse_or_reject(raw, "kappa_stream", RECEIVED)
        assert isinstance(bad, BadRecord) and bad.payload == raw
        assert attributes_for(raw, "interactions", 0, 5, RECEIVED)["malformed"] == "1"
        assert isinstance(parse_record(raw, RECEIVED), BadRecord)
        events, rejected = parse_batch(LineBatch(pa.array([raw], pa.binary()), RECEIVED, 0), "kappa_backfill")
        assert events.events.num_rows == 0 and [r.error for r in rejected] == [bad.error]


@pytest.mark.parametrize("text", ["\ud800", '{"event_id": "\udfff"}', "\udcff\ud83d"])
def test_a_str_payload_with_lone_surrogates_is_a_bad_event(text: str) -> None:
    with pytest.raises(BadEvent, match="invalid UTF-8"):
        parse_event(text, RECEIVED)
    bad = parse_or_reject(text, "legacy_speed", RECEIVED)
    assert isinstance(bad, BadRecord) and bad.error.startswith("invalid UTF-8")
    assert isinstance(parse_record(text, RECEIVED), BadRecord)


def _at_depth(frames: int, fn, *args):
    """fn(*args) called `frames` Python frames deeper than here."""
    return fn(*args) if frames == 0 else _at_depth(frames - 1, fn, *args)


@pytest.mark.parametrize("depth", [MAX_DEPTH, MAX_DEPTH + 1, 200, 900])
def test_the_verdict_on_nesting_does_not_depend_on_the_callers_stack(depth: int) -> None:
    """Workers call the parser from stacks of different depths (Beam, Flink, the bridge): a
    nesting json's scanner could follow at the top of a stack but not deep inside one got two
    verdicts. Now anything deeper than MAX_DEPTH is refused before json.loads."""
    raw = b"[" * depth + b"]" * depth
    top = verdict(raw, RECEIVED)
    deep = _at_depth(sys.getrecursionlimit() - 150, verdict, raw, RECEIVED)
    assert top == deep
    if depth > MAX_DEPTH:
        assert top == ("bad", f"JSON nested deeper than {MAX_DEPTH} levels")
    else:
        assert top == ("bad", "not a JSON object but list")


def _pretty(event: Interaction, newline: bytes) -> bytes:
    return json.dumps(json.loads(event.to_json()), indent=2).encode().replace(b"\n", newline)


@pytest.mark.parametrize("newline", [b"\n", b"\r\n", b"\r"], ids=["LF", "CRLF", "CR"])
def test_a_pretty_printed_event_is_one_event_in_every_arm(tmp_path: Path, newline: bytes) -> None:
    """The stream reads what the bridge publishes; the Cloud Storage subscription writes that
    verbatim, one message a line, for the backfill and the legacy batch; the archiver writes
    the local archive; the speed job reads Kafka. Each finds exactly the one event."""
    event = good_event(AT, 1)
    raw = _pretty(event, newline)
    assert parse_event(raw, RECEIVED) == event  # whitespace between tokens: a valid event

    data, attributes = message_for(raw, "interactions", 0, 9, RECEIVED)
    assert attributes == event.attributes()  # not malformed
    assert parse_event(data, RECEIVED) == event  # the kappa stream

    subscription_object = tmp_path / "interactions" / "2026-01-05" / "00" / "01_00Z_a1.jsonl"
    subscription_object.parent.mkdir(parents=True)
    subscription_object.write_bytes(object_body([data, good_event(AT, 2).to_json()]))
    local = ArchiveWriter(tmp_path / "archive", "a", 60).write(partition_of(RECEIVED, 60), [raw])

    for part in (str(subscription_object), str(local)):
        lines = list(read_lines(part))  # the legacy batch's reader
        assert [parse_or_reject(line, "legacy_batch", RECEIVED) for line in lines][:1] == [event], part
        batch, rejected = parse_batch(
            LineBatch(lines_of_blob(read_part(part)), RECEIVED, 0), "kappa_backfill"
        )
        assert rejected == [] and batch.events.num_rows == len(lines), part  # the backfill

    assert len(list(read_lines(str(subscription_object)))) == 2
    speed = parse_record(raw, RECEIVED)
    assert speed == SpeedEvent(event.tweet_id, event.event_type, event.event_time, event.event_id)


def test_a_record_with_a_raw_cr_in_a_string_gets_one_reason_in_every_arm() -> None:
    """Raw, it is invalid JSON; in its one-line form the CR is a space, and ' ' + 31 hex
    digits was a UUID to uuid.UUID (int() takes whitespace): the archive arms counted an
    event the speed job dead-lettered. Every arm now judges the one-line form."""
    raw = HOSTILE["cr_inside_a_string"]
    assert raw is not None
    check_agreement([raw], RECEIVED)
    speed = parse_record(raw, RECEIVED)
    assert isinstance(speed, BadRecord) and speed.error.startswith("event_id is not a UUID")


# --- the validator's SQL over archive lines: the third reader of the rule table ----------


def _sql_corpus(seed: int, n: int) -> list[bytes]:
    """One-line records: the hostile kinds, the 64 KiB boundary, spellings DuckDB's JSON reader
    takes and Python's refuses, and the fuzz corpus's valid, mutated and structured lines."""
    rng = random.Random(seed)
    good = good_event(AT, 3).to_json().decode()
    lenient = [
        good[:-1] + ",}",  # a trailing comma
        good[:-1] + "/* comment */}",
        good.replace('"client":"ios"', "'client':'ios'"),
        good.replace('"tweet_id":903', '"tweet_id":0x387'),
        good.replace('"tweet_id":903', '"tweet_id":+903'),
        good[:-1] + ',"x":NaN}',
        "\f" + good,  # a form feed is not JSON whitespace
        good.replace('"client"', '"\\u0063lient"'),  # escapes Python decodes: valid
        good.replace('"ios"', '"\\u0069os"'),
        " \t" + good + " ",
    ]
    raws = [raw or b"" for raw in HOSTILE.values()] + boundary_events([good_event(AT, i) for i in range(2)])
    raws += [line.encode() for line in lenient]
    makers = (corpus.valid_line, corpus.mutated, corpus.structured)
    raws += [rng.choice(makers)(rng, RECEIVED) for _ in range(n)]
    raws += [corpus.arbitrary_bytes(rng) for _ in range(n // 10)]
    return [one_line(raw) for raw in raws]


def _python_events(lines: list[bytes], received_at_ms: int) -> list[tuple | None]:
    out: list[tuple | None] = []
    for line in lines:
        try:
            e = parse_event(line, received_at_ms)
            out.append((e.event_id, e.event_time, e.event_type, e.tweet_id))
        except BadEvent:
            out.append(None)
    return out


@pytest.mark.parametrize("seed", [1, 2])
def test_parse_event_the_fast_path_and_the_validators_sql_agree_on_every_line(seed: int) -> None:
    import duckdb

    lines = _sql_corpus(seed, 3000)
    check_agreement(lines, RECEIVED)  # parse_event, parse_batch (the fast path) and the others
    want = _python_events(lines, RECEIVED)
    # A line that is not UTF-8 never reaches the SQL (the reader skips it): the test below.
    readable = [(i, line.decode()) for i, line in enumerate(lines) if _utf8(line) and b"\x00" not in line]
    table = pa.table(
        {
            "line_no": [i for i, _ in readable],
            "line": [text for _, text in readable],
            "arrival_start_ms": [RECEIVED] * len(readable),
        }
    )
    con = duckdb.connect()
    con.register("lines", table)
    rows = con.execute(valid_events_sql("lines", carried=("line_no",))).fetchall()
    got: dict[int, tuple] = {row[-1]: tuple(row[:4]) for row in rows}
    disagree = [(lines[i][:120], want[i], got.get(i)) for i, _ in readable if got.get(i) != want[i]]
    assert not disagree, disagree[:5]
    assert not any(want[i] for i in range(len(lines)) if i not in dict(readable))
    assert sum(w is not None for w in want) > 500 and sum(w is None for w in want) > 500


def _utf8(line: bytes) -> bool:
    try:
        line.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


@pytest.mark.parametrize("compress", [False, True], ids=["plain", "gzip"])
def test_the_archive_view_holds_exactly_the_events_parse_event_finds_in_the_parts(
    tmp_path: Path, compress: bool
) -> None:
    """Through DuckDB's reader: parts as the archiver writes them, one opening with a BOM, one
    holding lines that are not UTF-8, the rest the corpus."""
    import duckdb

    lines = _sql_corpus(3, 1500)
    writer = ArchiveWriter(tmp_path / "archive", "a", 60, compress=compress)
    partition = partition_of(RECEIVED, 60)
    bom = b"\xef\xbb\xbf" + good_event(AT, 9).to_json()
    for chunk in ([bom, *lines[:5]], [b"\xff" + lines[-1], *lines[5:50]], lines[50:]):
        writer.write(partition, chunk)
    parts = archive_files(str(tmp_path / "archive"), None, 60_000)
    assert len(parts) == 3
    want: Counter = Counter()
    for part in parts:
        events = _python_events(list(read_lines(part.path)), part.arrival_start_ms)
        want.update(e for e in events if e is not None)
    con = duckdb.connect()
    con.execute(archive_events_sql(parts))
    got = Counter(
        tuple(row)
        for row in con.execute(
            "SELECT event_id, event_time_ms, event_type, tweet_id FROM archive_events"
        ).fetchall()
    )
    assert got == want, (list((got - want).items())[:3], list((want - got).items())[:3])
    assert sum(want.values()) > 300
