"""Issue 9, bad input: malformed and hostile records through EVERY arm on the real stack.

One Kafka topic carries good events, one duplicate and more than twenty kinds of bad
record (a 1 MB one and a Kafka tombstone among them); the bridge forwards it to Pub/Sub,
where a hostile publisher adds valid payloads with missing, unparseable or lying
attributes. Then every arm reads it: the kappa stream (Pub/Sub), the legacy speed layer
(Kafka, PyFlink), the legacy batch layer and the kappa backfill (the archive). Each arm
must dead-letter every bad record under its own pipeline name with a reason, count the
good ones exactly, conserve its input, and keep running.
"""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest

from pipelines import pubsub_io
from pipelines.events import Interaction, now_ms
from pipelines.kafka_io import produce
from tests.reliability.support import Procs, archived_lines, counts, record_summary

pytestmark = [pytest.mark.stack, pytest.mark.slow, pytest.mark.flink, pytest.mark.timeout(1200)]


def good_event(at_ms: int, i: int) -> Interaction:
    return Interaction(
        str(uuid.uuid4()), at_ms + i, ("like", "retweet")[i % 2], 900 + i % 5, 7 + i, 11, "ios"
    )


def hostile_payloads(at_ms: int) -> dict[str, bytes | None]:
    """kind -> a bad Kafka record value (None: a tombstone). Every one is rejected by parse_event."""
    base = json.loads(good_event(at_ms, 0).to_json())

    def with_(**changes: object) -> bytes:
        return json.dumps({**base, **changes}).encode()

    padded = json.dumps({**base, "pad": ""})
    return {
        "truncated_json": good_event(at_ms, 1).to_json()[:37],
        "wrong_type": with_(tweet_id=str(base["tweet_id"])),
        "bool_as_int": with_(event_time=True),
        "float_id": with_(user_id=1.5),
        "over_64_kib": padded.replace('"pad": ""', '"pad": "' + "x" * 70_000 + '"').encode(),
        "near_1_mb": padded.replace('"pad": ""', '"pad": "' + "y" * 1_000_000 + '"').encode(),
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
    }


def hostile_publishes(at_ms: int) -> dict[str, tuple[bytes, dict[str, str]]]:
    """kind -> (payload, attributes) published straight to Pub/Sub, bypassing the bridge.

    The payloads are valid events nobody else sent: any of them counted is a wrong count."""

    def valid(i: int) -> Interaction:
        return good_event(at_ms, 100 + i)

    def attrs(e: Interaction, **changes: str) -> dict[str, str]:
        return {k: v for k, v in {**e.attributes(), **changes}.items() if v is not None}

    e = [valid(i) for i in range(10)]
    return {
        "no_attributes": (e[0].to_json(), {"source": "hostile"}),
        "event_time_not_a_number": (e[1].to_json(), attrs(e[1], event_time="not-a-number")),
        "event_time_empty": (e[2].to_json(), attrs(e[2], event_time="")),
        "event_time_overflow": (e[3].to_json(), attrs(e[3], event_time="9" * 30)),
        "event_time_negative": (e[4].to_json(), attrs(e[4], event_time="-5")),
        "event_time_rfc3339": (e[5].to_json(), attrs(e[5], event_time="2026-01-05T00:00:00Z")),
        "event_time_lies": (e[6].to_json(), attrs(e[6], event_time=str(at_ms - 3_600_000))),
        "event_id_lies": (e[7].to_json(), attrs(e[7], event_id=str(uuid.uuid4()))),
        "event_time_huge_value": (e[8].to_json(), attrs(e[8], event_time="1" * 1000)),
        "bad_payload_good_looking_attributes": (b"not json", attrs(e[9])),
    }


def dead_letters(config, pipeline: str) -> list[tuple[bytes, str]]:
    from pipelines.warehouse import Warehouse

    con = Warehouse(config.paths.warehouse_root).connect()
    return [
        (bytes(p), e)
        for p, e in con.execute(
            "SELECT payload, error FROM dead_letter WHERE pipeline = ?", [pipeline]
        ).fetchall()
    ]


def test_every_arm_dead_letters_hostile_input_and_counts_the_rest(stack_config, tmp_path, request):
    config, path = stack_config
    period_ms = config.time.period_ms
    if not 5_000 <= now_ms() % period_ms <= period_ms * 2 // 3:  # arrive in the events' own period
        time.sleep((period_ms - now_ms() % period_ms) / 1000 + 5)
    at = now_ms() - 2_000
    good = [good_event(at, i) for i in range(20)]
    bad = hostile_payloads(at)
    direct = hostile_publishes(at)
    # good[0] pretty-printed over several lines: still a valid event (the archive keeps it one line)
    values = [json.dumps(json.loads(good[0].to_json()), indent=2).encode()] + [e.to_json() for e in good[1:]]
    values += [good[3].to_json()] + list(bad.values())  # one duplicate
    produce(config, values, [str(900 + i % 5).encode() for i in range(len(values))])
    unique_truth = Counter(
        (e.event_time - e.event_time % config.time.window_ms, e.tweet_id, e.event_type) for e in good
    )
    with_duplicate = unique_truth + Counter(
        {
            (
                good[3].event_time - good[3].event_time % config.time.window_ms,
                good[3].tweet_id,
                good[3].event_type,
            ): 1
        }
    )
    n_bad, n_in = len(bad), len(values)
    procs = Procs(tmp_path / "logs")
    summary: dict = {"bad_kinds_kafka": sorted(bad), "bad_kinds_pubsub_direct": sorted(direct)}
    try:
        procs.start(
            "kappa", "kappa", "run", "--config", str(path), "--exit-when-idle", "10", "--max-runtime", "150"
        )
        check = pubsub_io.create_subscription(config, config.pubsub.subscriptions[0] + "-check")
        procs.start("bridge", "bridge", "--config", str(path), "--exit-when-idle", "3")
        procs.start("archive", "archive", "--config", str(path), "--exit-when-idle", "3")
        client = pubsub_io.publisher(config)
        futures = [client.publish(config.pubsub.topic_path, d, **a) for d, a in direct.values()]
        for future in futures:
            future.result(timeout=30)
        assert procs.wait("bridge", 300) == 0, procs.log("bridge")
        assert procs.wait("archive", 300) == 0, procs.log("archive")
        assert procs.last_json("bridge")["forwarded"] == n_in
        assert procs.last_json("archive")["archived"] == n_in
        # The bad records themselves, not only how many: archived raw, forwarded unchanged.
        bad_raw = Counter(v or b"" for v in bad.values())
        assert not bad_raw - archived_lines(config), "a bad record is missing from the archive, or altered"
        forwarded = Counter(m.data for m in pubsub_io.pull_all(config, check))
        assert not bad_raw - forwarded, "the bridge did not forward every bad record unchanged"

        # kappa stream: Pub/Sub (bridge-forwarded plus direct hostile publishes)
        assert procs.wait("kappa", 200) == 0, procs.log("kappa")[-4000:]
        stream = procs.last_json("kappa")
        summary["kappa_stream"] = stream
        assert "idle" in stream["stopped_because"], stream
        assert stream["read"] == n_in + len(direct)
        assert stream["dead_lettered"] == n_bad + len(direct)
        assert stream["duplicates_removed"] == 1
        assert stream["counted"] == sum(unique_truth.values()) and stream["too_late"] == 0
        assert counts(config, "kappa_stream_current") == dict(unique_truth)
        _check_dead_letters(
            config, "kappa_stream", [v or b"" for v in bad.values()] + [d for d, _ in direct.values()]
        )

        # legacy speed: Kafka through PyFlink, bounded run (no dedup: the duplicate counts)
        procs.start(
            "speed",
            "legacy",
            "speed",
            "--config",
            str(path),
            "--bounded",
            "--fresh",
            "--from-earliest",
            "--state-dir",
            str(tmp_path / "speed-state"),
            "--flush-ms",
            "500",
            "--checkpoint-ms",
            "1000",
        )
        assert procs.wait("speed", 400) == 0, procs.log("speed")[-4000:]
        speed = json.loads(
            next(
                line for line in procs.log("speed").splitlines() if line.startswith('{"legacy_speed_summary"')
            )
        )["legacy_speed_summary"]
        summary["legacy_speed"] = speed
        # Flink's Kafka source skips a tombstone (DeserializationSchema contract): the one
        # record the speed layer neither counts nor dead-letters (it used to crash-loop on it).
        assert speed["status"] == "FINISHED" and speed["records"] == n_in - 1 and speed["bad"] == n_bad - 1
        assert counts(config, "legacy_speed_current") == dict(with_duplicate)
        _check_dead_letters(config, "legacy_speed", [v for v in bad.values() if v is not None])

        # legacy batch and kappa backfill: the archive
        batch = _run_batch(procs, config, path)
        summary["legacy_batch"] = batch
        assert batch["lines_read"] == n_in
        assert batch["dead_lettered"] == n_bad and batch["duplicates_removed"] == 1
        assert batch["events_counted"] + batch["late_dropped"] == len(good)
        assert batch["late_dropped"] == 0  # unless the run straddled a period boundary
        assert counts(config, "legacy_batch") == dict(unique_truth)
        _check_dead_letters(config, "legacy_batch", [v or b"" for v in bad.values()])

        procs.start("backfill", "kappa", "backfill", "--config", str(path))
        assert procs.wait("backfill", 180) == 0, procs.log("backfill")[-4000:]
        backfill = procs.last_json("backfill")
        summary["kappa_backfill"] = backfill
        assert backfill["read"] == n_in and backfill["dead_lettered"] == n_bad
        assert backfill["duplicates_removed"] == 1
        assert counts(config, "kappa_backfill_current") == dict(unique_truth)
        _check_dead_letters(config, "kappa_backfill", [v or b"" for v in bad.values()])
        summary["dead_letter_reasons"] = _reasons(config)
    finally:
        procs.stop_all()
        record_summary(request, tmp_path, "hostile_input", summary)


def _run_batch(procs: Procs, config, path: Path) -> dict[str, int]:
    from pipelines.archive import arrival_spans, list_parts
    from pipelines.instants import utc_iso

    starts = sorted(
        {p.arrival_start_ms for p in list_parts(config.paths.archive_root, spans=arrival_spans(config))}
    )
    period_ms = config.time.period_ms
    total: Counter = Counter()
    periods = (starts[-1] - starts[0]) // period_ms + 1
    procs.start(
        "batch",
        "legacy",
        "batch",
        "--config",
        str(path),
        "--period-start",
        utc_iso(starts[0]),
        "--periods",
        str(periods),
    )
    assert procs.wait("batch", 400) == 0, procs.log("batch")[-4000:]
    for line in procs.log("batch").splitlines():
        if line.startswith('{"batch_run"'):
            run = json.loads(line)["batch_run"]
            total.update({k: v for k, v in run.items() if isinstance(v, int)})
    return dict(total)


def _check_dead_letters(config, pipeline: str, payloads: list[bytes]) -> None:
    """Every bad record dead-lettered once, as received, with a reason."""
    got = dead_letters(config, pipeline)
    assert len(got) == len(payloads), (pipeline, len(got), len(payloads))
    assert all(error for _, error in got), pipeline
    assert Counter(p for p, _ in got) == Counter(payloads), f"{pipeline}: dead letters not as received"


def _reasons(config) -> dict[str, dict[str, int]]:
    from pipelines.warehouse import Warehouse

    con = Warehouse(config.paths.warehouse_root).connect()
    rows = con.execute(
        "SELECT pipeline, regexp_replace(error, '[0-9]+', 'N', 'g'), count(*) FROM dead_letter GROUP BY ALL"
    ).fetchall()
    out: dict[str, dict[str, int]] = {}
    for pipeline, reason, n in rows:
        out.setdefault(pipeline, {})[reason[:80]] = n
    return out
