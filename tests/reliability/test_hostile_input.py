"""Issues 9 and 27, bad input: malformed and hostile records through EVERY arm on the real stack.

One Kafka topic carries good events (pretty-printed over LF and CRLF lines, and padded to
64 KiB - 1 and exactly 64 KiB among them), one duplicate and the kinds of bad record of
tests/fuzz/hostile.py (more than sixty: a 1 MB one, a Kafka tombstone, deep nesting,
over-limit integers, lone surrogates, BOMs, NUL bytes, one byte over 64 KiB...); the bridge
forwards it to Pub/Sub, where a hostile publisher adds valid payloads with missing,
unparseable or lying attributes. Then every arm reads it: the kappa stream (Pub/Sub), the
legacy speed layer (Kafka, PyFlink), the legacy batch layer and the kappa backfill (the
archive). The bridge must forward every record in its one-line form, each bad one (and no
other) marked `malformed=1`; each arm must dead-letter every bad record under its own
pipeline name, in that form, with the same reason as every other arm, count the good ones
exactly, conserve its input, and keep running.
"""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest

from pipelines import pubsub_io
from pipelines.events import Interaction, now_ms, one_line
from pipelines.kafka_io import produce
from tests.fuzz.hostile import boundary_events, good_event, hostile_payloads
from tests.reliability.support import Procs, archived_lines, counts, record_summary

__all__ = ["dead_letters", "hostile_payloads"]  # the demo's hostile drill sends the same records

pytestmark = [pytest.mark.stack, pytest.mark.slow, pytest.mark.flink, pytest.mark.timeout(1200)]


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
    assert len(bad) >= 40
    # good[0] and good[1] pretty-printed over LF and CRLF lines: still valid events (every arm
    # reads them as one line); good[2] and good[3] padded to 64 KiB - 1 and exactly 64 KiB.
    pretty = [json.dumps(json.loads(e.to_json()), indent=2).encode() for e in good[:2]]
    values = [pretty[0], pretty[1].replace(b"\n", b"\r\n"), *boundary_events(good[2:4])]
    values += [e.to_json() for e in good[4:]] + [good[5].to_json()] + list(bad.values())  # one duplicate
    good_values = values[: len(good)]
    produce(config, values, [str(900 + i % 5).encode() for i in range(len(values))])
    unique_truth = Counter(
        (e.event_time - e.event_time % config.time.window_ms, e.tweet_id, e.event_type) for e in good
    )
    with_duplicate = unique_truth + Counter(
        {
            (
                good[5].event_time - good[5].event_time % config.time.window_ms,
                good[5].tweet_id,
                good[5].event_type,
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
        # The bad records themselves, not only how many: archived and forwarded as every arm
        # reads them (one line: a CR or LF is a space), the bad ones, and only they, malformed.
        bad_lines = Counter(one_line(v or b"") for v in bad.values())
        assert not bad_lines - archived_lines(config), "a bad record is missing from the archive, or altered"
        summary["bridge"] = _check_forwarded(
            config, pubsub_io.pull_all(config, check), bad_lines, good, good_values
        )

        # kappa stream: Pub/Sub (bridge-forwarded plus direct hostile publishes)
        assert procs.wait("kappa", 200) == 0, procs.log("kappa")[-4000:]
        stream = procs.last_json("kappa")
        summary["kappa_stream"] = stream
        assert "idle" in stream["stopped_because"], stream
        assert stream["read"] == n_in + len(direct)
        assert stream["dead_lettered"] == n_bad + len(direct)
        assert stream["duplicates_removed"] == 1
        assert stream["counted"] == sum(unique_truth.values()) and stream["too_late"] == 0
        assert stream["read"] == (
            stream["dead_lettered"] + stream["too_late"] + stream["duplicates_removed"] + stream["counted"]
        )
        assert counts(config, "kappa_stream_current") == dict(unique_truth)
        bad_payloads = [one_line(v or b"") for v in bad.values()]
        _check_dead_letters(config, "kappa_stream", bad_payloads + [d for d, _ in direct.values()])

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
        _check_dead_letters(config, "legacy_speed", [one_line(v) for v in bad.values() if v is not None])

        # legacy batch and kappa backfill: the archive
        batch = _run_batch(procs, config, path)
        summary["legacy_batch"] = batch
        assert batch["lines_read"] == n_in
        assert batch["dead_lettered"] == n_bad and batch["duplicates_removed"] == 1
        assert batch["events_counted"] + batch["late_dropped"] == len(good)
        assert batch["late_dropped"] == 0  # unless the run straddled a period boundary
        assert batch["lines_read"] == (
            batch["events_counted"]
            + batch["duplicates_removed"]
            + batch["late_dropped"]
            + batch["dead_lettered"]
        )
        assert counts(config, "legacy_batch") == dict(unique_truth)
        _check_dead_letters(config, "legacy_batch", bad_payloads)

        procs.start("backfill", "kappa", "backfill", "--config", str(path))
        assert procs.wait("backfill", 180) == 0, procs.log("backfill")[-4000:]
        backfill = procs.last_json("backfill")
        summary["kappa_backfill"] = backfill
        assert backfill["read"] == n_in and backfill["dead_lettered"] == n_bad
        assert backfill["duplicates_removed"] == 1
        assert counts(config, "kappa_backfill_current") == dict(unique_truth)
        _check_dead_letters(config, "kappa_backfill", bad_payloads)
        _check_one_reason_per_record(config, {d for d, _ in direct.values()})
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


def _check_forwarded(
    config, messages: list, bad_lines: Counter, good: list[Interaction], good_values: list[bytes]
) -> dict[str, int]:
    """What the README's Guarantees table says of the bridge: every record forwarded (in its
    one-line form), each bad one marked `malformed=1` with its Kafka coordinates as event_id
    and the Kafka timestamp as event_time, each good one with its own event_id and event_time."""
    topic = config.kafka.topic
    malformed = [m for m in messages if m.attributes.get("malformed") == "1"]
    assert Counter(m.data for m in malformed) == bad_lines, "malformed=1 on exactly the bad records"
    ids = [m.attributes["event_id"] for m in malformed]
    assert all(i.startswith(f"kafka:{topic}:") for i in ids) and len(set(ids)) == len(ids), ids[:5]
    assert all(m.attributes["event_time"].isdigit() for m in malformed)
    lines = set(map(one_line, good_values))
    forwarded_good = {m.data: dict(m.attributes) for m in messages if m.data in lines}
    for event, value in zip(good, good_values, strict=True):
        assert b"\n" not in one_line(value) and forwarded_good.get(one_line(value)) == event.attributes(), (
            event
        )
    return {"malformed": len(malformed), "pulled": len(messages)}


def _check_one_reason_per_record(config, direct_payloads: set[bytes]) -> None:
    """Every arm dead-lettered each bad Kafka record with the same reason (the speed layer
    skips the tombstone, and the stream also rejects the direct publishes, by attributes)."""
    rows = {
        p: Counter(dead_letters(config, p))
        for p in ("kappa_stream", "legacy_speed", "legacy_batch", "kappa_backfill")
    }
    stream = Counter({row: n for row, n in rows["kappa_stream"].items() if row[0] not in direct_payloads})
    assert rows["legacy_batch"] == rows["kappa_backfill"] == stream
    assert rows["legacy_speed"] + Counter({(b"", "empty message"): 1}) == stream


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
