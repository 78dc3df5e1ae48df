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

from pipelines.archive import list_parts, read_lines
from pipelines.children import KAPPACTL
from pipelines.events import now_ms
from pipelines.generator import EventGenerator, GeneratorSpec
from pipelines.kafka_io import produce
from pipelines.pubsub_io import create_subscription, pull_all, subscriber

pytestmark = pytest.mark.stack


def records(n: int, seed: int = 1):
    spec = GeneratorSpec(
        seed=seed, rate=5000, malformed_rate=0.02, dup_rate=0.02, late_rate=0.02, start_ms=now_ms()
    )
    return list(EventGenerator(spec).records(n))


def archived_lines(config) -> Counter:
    return Counter(line for part in list_parts(config.paths.archive_root) for line in read_lines(part.path))


def covers(observed: Counter, expected: Counter) -> bool:
    return all(observed[k] >= v for k, v in expected.items())


def test_generated_events_reach_pubsub_and_the_archive_exactly(stack_config):
    config, path = stack_config
    check = create_subscription(config, config.pubsub.subscriptions[0] + "-check")
    out = subprocess.run(
        [*KAPPACTL, "generate", "--events", "3000", "--rate", "1000", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    for cmd in (["bridge"], ["archive"]):
        done = subprocess.run(
            [*KAPPACTL, *cmd, "--exit-when-idle", "3", "--config", str(path)],
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert done.returncode == 0, done.stderr
    messages = pull_all(config, check)
    assert len(messages) == summary["records"] == 3000
    by_kind = {m.data for m in messages if m.attributes.get("malformed") == "1"}
    assert len(by_kind) > 0  # malformed records forwarded unchanged, with Kafka-metadata attributes
    for m in messages:
        assert set(m.attributes) >= {"event_id", "event_time"} and int(m.attributes["event_time"]) > 0
    archived = archived_lines(config)
    assert archived == Counter(m.data for m in messages)
    ledger = json.loads(out.stdout)
    assert ledger["event"] + ledger["late"] + ledger["duplicate"] + ledger["malformed"] == 3000


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
    deadline = time.monotonic() + 120
    while progress() < 2000 and time.monotonic() < deadline:
        time.sleep(0.05)
    first.send_signal(signal.SIGKILL)
    first.wait(30)
    at_kill = progress()
    assert 0 < at_kill < len(sent), "the kill must land mid-stream"
    producer.join(120)
    again = subprocess.run(
        [*KAPPACTL, component, "--exit-when-idle", "3", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert again.returncode == 0, again.stderr
    if component == "bridge":
        time.sleep(3)
        stop.set()
        puller.join(20)
        observed = seen
    else:
        stop.set()
        observed = archived_lines(config)
    assert covers(observed, expected), "an event was lost across kill -9"
    assert sum(observed.values()) >= len(sent)  # duplicates allowed, losses not
