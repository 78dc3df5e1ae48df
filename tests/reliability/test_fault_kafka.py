"""Issue 9, fault injection: kill -9 of the Kafka broker while the generator, the bridge,
the archiver and the kappa stream run, then a restart on the same data dir.

The broker runs on a private stack (never the shared session one). The generator keeps
producing through the outage (librdkafka queues and retries; it flushes every 5,000
records). Afterwards the kappa stream's final counts must equal the truth ledger exactly
and the archive must hold every record the generator sent. Kill -9 of the bridge and of
the archiver alone: tests/stack/test_foundation_flow.py::test_kill_9_mid_stream_then_restart_loses_nothing;
of the kappa stream: tests/kappa/test_stream_stack.py::test_crash_and_replay_still_equal_truth.
"""

from __future__ import annotations

import time
from collections import Counter

import pytest

from pipelines.events import now_ms
from pipelines.kafka_io import group_lag
from pipelines.stack.private import PrivateStack
from tests.reliability.support import (
    Procs,
    archived_lines,
    committed_records,
    counts,
    diff,
    generated,
    generator_args,
    generator_spec,
    kill9_component,
    record_summary,
    wait_until,
)

pytestmark = [pytest.mark.stack, pytest.mark.slow, pytest.mark.timeout(1500)]
RATE, SECONDS = 200, 40


def test_kafka_broker_kill_9_loses_nothing(tmp_path, request, monkeypatch):
    summary: dict = {}
    with PrivateStack(tmp_path / "stack") as stack:
        monkeypatch.setenv("PUBSUB_EMULATOR_HOST", stack.config.pubsub.emulator_host)
        config, path = stack.config, str(stack.config_path)
        procs = Procs(tmp_path / "logs")
        try:
            summary = drill(stack, procs, config, path)
        finally:
            procs.stop_all()
            record_summary(request, tmp_path, "kafka_broker_kill_9", summary)
    assert summary["kappa_vs_truth"]["keys_wrong"] == 0, summary
    assert summary["archive_missing_records"] == 0, summary
    assert summary["bridge_archiver_survived_outage"] == {"bridge": True, "archive": True}, summary
    assert summary["bridge_archiver_exit_codes_on_sigterm"] == {"bridge": 0, "archive": 0}, summary


def drill(stack: PrivateStack, procs: Procs, config, path: str) -> dict:
    spec = generator_spec(seed=21, rate=RATE, start_ms=now_ms(), max_lateness_s=20.0)
    count = RATE * SECONDS
    expected = Counter(r.payload for r in generated(spec, count))
    for name in ("bridge", "archive"):
        procs.start(name, name, "--config", path)
    # The stream runs through the outage (it only idles: its input is Pub/Sub) and is
    # stopped with SIGTERM once its counts reach the truth; it must then exit 0.
    procs.start("kappa", "kappa", "run", "--config", path, "--max-runtime", "900")
    procs.start("generate", *generator_args(spec, count), "--config", path)
    # Mid-stream: the kill lands once the bridge and the archiver are both moving records.
    wait_until(lambda: sum(archived_lines(config).values()) >= 3 * RATE
               and committed_records(config, "bridge") >= 3 * RATE,
               300, "the archiver and the bridge to move records")  # fmt: skip

    killed_at = time.monotonic()
    kill9_component(stack.stack.kafka)
    time.sleep(5)
    stack.stack.up()  # same data dir: the log and the consumer offsets survive
    restarted_s = time.monotonic() - killed_at
    wait_until(lambda: procs.started["generate"].poll() is not None, 150, "the generator to finish")
    survivors = {name: procs.started[name].poll() is None for name in ("bridge", "archive")}
    generator_code = procs.wait("generate", 30)
    wait_until(lambda: not expected - archived_lines(config), 120, "the archive to catch up")
    wait_until(lambda: group_lag(config, "bridge") == 0, 120, "the bridge to commit every record")
    stopped = {name: procs.stop(name) for name in ("bridge", "archive")}  # SIGTERM: flush, commit
    truth = counts(config, "truth")
    wait_until(
        lambda: counts(config, "kappa_stream_current") == truth, 300, "the kappa stream to count the truth"
    )
    assert procs.stop("kappa") == 0, procs.log("kappa")[-3000:]

    archived = archived_lines(config)
    return {
        "records_sent": count,
        "generator_exit_code": generator_code,
        "outage_s_until_broker_healthy": round(restarted_s, 1),
        "bridge_archiver_survived_outage": survivors,
        "bridge_archiver_exit_codes_on_sigterm": stopped,
        "archive_lines": sum(archived.values()),
        "archive_missing_records": sum((expected - archived).values()),
        "archive_duplicate_lines": sum((archived - expected).values()),
        "kappa_stream": procs.last_json("kappa"),
        "kappa_vs_truth": diff(
            counts(config, "kappa_stream_current"), counts(config, "truth"), config.time.window_ms
        ),
    }
