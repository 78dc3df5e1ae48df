"""Issue 9, fault injection: kill -9 of the Pub/Sub emulator mid-stream, then `up` again.

The emulator keeps nothing on disk: `up` recreates the topic and the subscriptions, and
every message it held is gone. What is lost is exactly what the old emulator held and
nobody had pulled yet: messages the bridge published (and so committed in Kafka) that the
kappa stream had not read. The drill measures how many keys and windows the stream then
gets wrong against the truth ledger, and shows that `kappa backfill` over the archive
(which never went through Pub/Sub) gives counts equal to the truth.

The processes are supervised as systemd would: one that exits is started again. The
Pub/Sub clients of the bridge and of the stream's reader retry UNAVAILABLE until the new
emulator answers. The bridge exits 4 if a publish is refused for good (NOT_FOUND in the
moment before `up` recreated the topic) or stalls past its 120 s flush timeout; its offsets
stay uncommitted, so the restarted bridge re-sends the batch. Asserted for the bridge: it
only ever exits 4, the supervisor's loop ends because the bridge has committed every
record (never at its deadline: that fails the drill), the archiver never exits, and the
archive holds every record. A stream whose reader gives up exits 5
(tests/reliability/test_stream_failure.py).
"""

from __future__ import annotations

import time
from collections import Counter

import pytest

from kappa.stream import stream_progress
from pipelines.events import now_ms
from pipelines.kafka_io import group_lag
from pipelines.stack.private import PrivateStack
from tests.reliability.support import (
    Procs,
    archived_lines,
    counts,
    diff,
    generated,
    generator_args,
    generator_spec,
    kill9_component,
    record_summary,
    topic_records,
    wait_until,
)

pytestmark = [pytest.mark.stack, pytest.mark.slow, pytest.mark.timeout(1200)]
RATE, SECONDS = 200, 45
HELD_S = 5  # the kill waits until the stream's backlog is at most this much traffic
# Idle for longer than the outage lasts for the stream: the bridge re-sends 20-25 s after the kill
# (a stream stopped as idle meanwhile and restarted by the supervisor replaces, without
# --replay-from, the windows it shares with its first run: more lost than the emulator held).
KAPPA = ("kappa", "run", "--exit-when-idle", "60", "--max-runtime", "400")


def test_emulator_kill_9_loses_what_it_held_and_the_backfill_recovers_it(tmp_path, request, monkeypatch):
    summary: dict = {}
    with PrivateStack(tmp_path / "stack") as stack:
        monkeypatch.setenv("PUBSUB_EMULATOR_HOST", stack.config.pubsub.emulator_host)
        procs = Procs(tmp_path / "logs")
        try:
            summary = drill(stack, procs)
        finally:
            procs.stop_all()
            record_summary(request, tmp_path, "pubsub_emulator_kill_9", summary)
    assert summary["archive_missing_records"] == 0, summary
    assert set(summary["supervisor_exit_codes"].get("bridge", [])) <= {4}, summary
    assert "archive" not in summary["supervisor_exit_codes"], summary
    assert summary["bridge_uncommitted_at_end"] == 0, summary
    assert summary["backfill_vs_truth"]["keys_wrong"] == 0, summary
    assert summary["kappa_stream_vs_truth"]["events_extra"] == 0, summary  # dedup held
    # What the old emulator held unpulled at the kill, at most: lost to the stream, never more.
    assert summary["kappa_stream_vs_truth"]["events_missing"] <= summary["backlog_at_kill"], summary


def drill(stack: PrivateStack, procs: Procs) -> dict:
    config, path = stack.config, str(stack.config_path)
    spec = generator_spec(seed=31, rate=RATE, start_ms=now_ms(), max_lateness_s=20.0)
    count = RATE * SECONDS
    expected = Counter(r.payload for r in generated(spec, count))
    for name in ("bridge", "archive"):
        procs.start(name, name, "--config", path)
    procs.start("kappa", *KAPPA, "--config", path)
    procs.start("generate", *generator_args(spec, count), "--config", path)
    wait_until(
        lambda: stream_progress(procs.log("kappa")).get("read", 0) >= 5 * RATE,
        180,
        "the stream to read 5 s of traffic",
    )
    # Kill once the stream keeps up (its start-up backlog read), as in steady operation.
    wait_until(lambda: _backlog(config, procs) <= HELD_S * RATE, 120, "the stream to keep up")
    backlog_at_kill = _backlog(config, procs)
    killed_at = time.monotonic()
    kill9_component(stack.stack.pubsub)
    time.sleep(3)
    stack.stack.up()  # a new, empty emulator: topic and subscriptions created again
    restarted_s = time.monotonic() - killed_at
    exits, first_exit = _supervise(procs, stack, killed_at)
    generator_code = procs.wait("generate", 30)
    wait_until(lambda: not expected - archived_lines(config), 120, "the archive to catch up")
    wait_until(lambda: group_lag(config, "archiver") == 0, 120, "the archiver to commit every record")
    bridge_lag = group_lag(config, "bridge")
    procs.stop("bridge")
    procs.stop("archive")
    assert procs.wait("kappa", 200) == 0, procs.log("kappa")[-3000:]
    stream = counts(config, "kappa_stream_current")
    truth = counts(config, "truth")

    procs.start("backfill", "kappa", "backfill", "--config", path)
    assert procs.wait("backfill", 180) == 0, procs.log("backfill")[-3000:]
    archived = archived_lines(config)
    return {
        "records_sent": count,
        "generator_exit_code": generator_code,
        "outage_s_until_emulator_healthy": round(restarted_s, 1),
        "backlog_at_kill": backlog_at_kill,
        "supervisor_restarts": {name: len(codes) for name, codes in exits.items()},
        "supervisor_exit_codes": exits,
        "bridge_uncommitted_at_end": bridge_lag,
        "kappa_first_exit": first_exit,
        "kappa_stream_last_run": procs.last_json("kappa"),
        "kappa_stream_vs_truth": diff(stream, truth, config.time.window_ms),
        "archive_missing_records": sum((expected - archived).values()),
        "kappa_backfill": procs.last_json("backfill"),
        "backfill_vs_truth": diff(counts(config, "kappa_backfill_current"), truth, config.time.window_ms),
    }


def _backlog(config, procs: Procs) -> int:
    """What the emulator can hold unpulled, at most: every record in Kafka (so at most every
    one the bridge published) minus what the stream's newest progress line says it read."""
    return topic_records(config) - stream_progress(procs.log("kappa")).get("read", 0)


def _supervise(procs: Procs, stack: PrivateStack, killed_at: float) -> tuple[dict[str, list[int]], dict]:
    """Restart whatever exits, as a process supervisor would, until the generator is done and
    the bridge has committed every record (a publish stalled by the kill can hold it for up
    to its 120 s flush timeout, after which it exits 4). Each arm's exit codes, and how the
    stream first stopped. Fails if the bridge has not caught up by the deadline."""
    path = str(stack.config_path)
    exits: dict[str, list[int]] = {}
    first_exit: dict = {}
    deadline = time.monotonic() + 480

    def busy() -> bool:
        return procs.started["generate"].poll() is None or group_lag(stack.config, "bridge") > 0

    while busy():
        assert time.monotonic() < deadline, (
            f"the bridge had not committed every record 480 s after the kill "
            f"(uncommitted: {group_lag(stack.config, 'bridge')}; exits so far: {exits})\n"
            f"{procs.log('bridge')[-2000:]}"
        )
        for name, args in (("bridge", ("bridge",)), ("archive", ("archive",)), ("kappa", KAPPA)):
            code = procs.started[name].poll()
            if code is None:
                continue
            if name == "kappa" and not first_exit:
                first_exit = {"code": code, "s_after_kill": round(time.monotonic() - killed_at, 1)}
            exits.setdefault(name, []).append(code)
            procs.start(name, *args, "--config", path)
        time.sleep(0.5)
    return exits, first_exit
