"""`--exit-when-idle` of the bridge and the archiver counts from the moment the consumer
reads (partitions assigned and a fetch answered), never from start-up. The loop used to
start the clock at the assignment, while the first fetch was still on its way (committed
offsets looked up, then the fetch: seconds on a busy machine), so an idle window shorter
than that gap stopped the arm with records waiting in Kafka. A consumer whose fetches the
broker holds for 2 s (`fetch.min.bytes` above what the topic holds) makes the gap certain:
the old loop stopped with 0 records here, the new one reads them all."""

from __future__ import annotations

import pytest

from pipelines.archive import arrival_spans, list_parts, read_lines
from pipelines.kafka_io import consumer, group_lag, produce
from pipelines.source.archiver import ArchiveOutput, run_archiver
from pipelines.source.bridge import PubSubOutput, run_bridge
from pipelines.source.consumer_loop import run_consumer_loop

pytestmark = pytest.mark.stack
RECORDS = 500
IDLE_S = 0.05
SLOW_FETCH = {"fetch.min.bytes": 50_000_000, "fetch.wait.max.ms": 2000}


@pytest.fixture
def loaded(stack_config):
    config, _ = stack_config
    assert produce(config, [b'{"not": "an event %d"}' % i for i in range(RECORDS)]) == RECORDS
    return config


def test_archiver_idle_window_starts_after_the_first_fetch(loaded):
    slow = consumer(loaded, "idle-archiver", **SLOW_FETCH)
    stats = run_consumer_loop(slow, ArchiveOutput(loaded), "archive", exit_when_idle=IDLE_S)
    assert stats.flushed == RECORDS
    archived = [
        line
        for part in list_parts(loaded.paths.archive_root, spans=arrival_spans(loaded))
        for line in read_lines(part.path)
    ]
    assert len(archived) == RECORDS
    assert group_lag(loaded, "idle-archiver") == 0


def test_bridge_idle_window_starts_after_the_first_fetch(loaded):
    from pipelines.pubsub_io import ensure_topic_and_subscriptions

    ensure_topic_and_subscriptions(loaded)
    slow = consumer(loaded, "idle-bridge", **SLOW_FETCH)
    stats = run_consumer_loop(slow, PubSubOutput(loaded), "bridge", exit_when_idle=IDLE_S)
    assert stats.flushed == RECORDS
    assert group_lag(loaded, "idle-bridge") == 0


def test_the_commands_read_everything_with_a_tiny_idle_window(loaded):
    assert run_archiver(loaded, exit_when_idle=IDLE_S, group_id="idle-archive-cmd") == RECORDS
    assert run_bridge(loaded, exit_when_idle=IDLE_S, group_id="idle-bridge-cmd") == RECORDS


def test_an_empty_topic_still_stops_once_polled(stack_config):
    config, _ = stack_config
    assert run_archiver(config, exit_when_idle=IDLE_S, group_id="idle-empty") == 0
