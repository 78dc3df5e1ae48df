"""Issue 3 on the real stack: generator -> Kafka -> bridge -> Pub/Sub, Kafka -> archiver,
nothing lost, also across kill -9 of the bridge and of the archiver."""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import time
from collections import Counter

import pytest

from pipelines.archive import arrival_spans, list_parts, read_lines
from pipelines.events import now_ms
from pipelines.kafka_io import produce
from pipelines.pubsub_io import create_subscription, pull_all, subscriber
from pipelines.source.generator import EventGenerator, GeneratorSpec
from pipelines.stack.processes import KAPPACTL
from tests.reliability.support import generated, generator_args, generator_spec, wait_until

pytestmark = pytest.mark.stack
KINDS = ("event", "late", "duplicate", "malformed")


def records(n: int, seed: int = 1):
    spec = GeneratorSpec(
        seed=seed, rate=5000, malformed_rate=0.02, dup_rate=0.02, late_rate=0.02, start_ms=now_ms()
    )
    return list(EventGenerator(spec).records(n))


def archived_lines(config) -> Counter:
    return Counter(
        line
        for part in list_parts(config.paths.archive_root, spans=arrival_spans(config))
        for line in read_lines(part.path)
    )


def covers(observed: Counter, expected: Counter) -> bool:
    return all(observed[k] >= v for k, v in expected.items())


def test_generated_events_reach_pubsub_and_the_archive_exactly(stack_config):
    """Every record the generator sends (a deterministic spec: the test knows each one)
    reaches Pub/Sub once and the archive once, byte for byte; each malformed record among
    them is forwarded unchanged, marked `malformed=1`, and archived raw."""
    config, path = stack_config
    spec = generator_spec(seed=7, rate=1000, start_ms=now_ms(), malformed_rate=0.03, dup_rate=0.02)
    sent = generated(spec, 3000)
    check = create_subscription(config, config.pubsub.subscriptions[0] + "-check")
    out = subprocess.run(
        [*KAPPACTL, *generator_args(spec, len(sent)), "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    # The generator's ledger is checked against the records the spec makes, not against itself.
    ledger = json.loads(out.stdout)
    assert {kind: ledger[kind] for kind in KINDS} == {k: sum(r.kind == k for r in sent) for k in KINDS}
    for cmd in (["bridge"], ["archive"]):
        done = subprocess.run(
            [*KAPPACTL, *cmd, "--exit-when-idle", "3", "--config", str(path)],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr
    expected = Counter(r.payload for r in sent)
    messages = pull_all(config, check)
    assert Counter(m.data for m in messages) == expected
    for m in messages:
        assert set(m.attributes) >= {"event_id", "event_time"} and int(m.attributes["event_time"]) > 0
    malformed = Counter(r.payload for r in sent if r.kind == "malformed")
    assert sum(malformed.values()) >= 30, "the spec must send malformed records"
    assert Counter(m.data for m in messages if m.attributes.get("malformed") == "1") == malformed
    assert archived_lines(config) == expected  # malformed ones included, raw


def _collect(config, subscription: str, sink: Counter, stop: threading.Event) -> None:
    client = subscriber(config)
    while not stop.is_set():
        response = client.pull(request={"subscription": subscription, "max_messages": 1000}, timeout=10)
        if response.received_messages:
            sink.update(m.message.data for m in response.received_messages)
            client.acknowledge(
                request={
                    "subscription": subscription,
                    "ack_ids": [m.ack_id for m in response.received_messages],
                }
            )


@pytest.mark.parametrize("component", ["bridge", "archive"])
def test_kill_9_mid_stream_then_restart_loses_nothing(stack_config, component):
    config, path = stack_config
    sent = records(40_000, seed=11)

    def produce_steadily() -> None:  # the stream keeps flowing while the component dies
        for i in range(0, len(sent), 2000):
            chunk = sent[i : i + 2000]
            produce(config, [r.payload for r in chunk], [r.key for r in chunk])
            time.sleep(0.25)

    producer = threading.Thread(target=produce_steadily, daemon=True)
    producer.start()
    expected = Counter(r.payload for r in sent)
    seen: Counter = Counter()
    stop = threading.Event()
    check = create_subscription(config, config.pubsub.subscriptions[0] + "-check")
    puller = threading.Thread(target=_collect, args=(config, check, seen, stop), daemon=True)
    puller.start()

    def progress() -> int:
        return sum(seen.values()) if component == "bridge" else sum(archived_lines(config).values())

    first = subprocess.Popen([*KAPPACTL, component, "--config", str(path)], stderr=subprocess.DEVNULL)
    wait_until(lambda: progress() >= 2000, 300, f"the first {component} to move 2,000 records", 0.05)
    first.send_signal(signal.SIGKILL)
    first.wait(30)
    at_kill = progress()
    assert 0 < at_kill < len(sent), "the kill must land mid-stream"
    producer.join(300)
    assert not producer.is_alive(), "the producer did not finish in 300 s"
    again = subprocess.run(
        [*KAPPACTL, component, "--exit-when-idle", "3", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert again.returncode == 0, again.stderr
    if component == "bridge":
        # The puller sees what the bridge published and committed a moment later.
        wait_until(lambda: covers(seen, expected), 120, "the check subscription to receive every record")
        stop.set()
        puller.join(20)
        observed = seen
    else:
        stop.set()
        observed = archived_lines(config)
    assert covers(observed, expected), "an event was lost across kill -9"
    assert sum(observed.values()) >= len(sent)  # duplicates allowed, losses not
