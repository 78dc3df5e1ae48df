"""The bridge ("event processors"): Kafka -> Pub/Sub, at least once.

Each record is published in its one-line form (`pipelines.events.one_line`: a CR or LF
becomes a space) with attributes `event_id` and `event_time` (what Dataflow's id_label and
timestamp_attribute read). One line because the Cloud Storage subscription writes each
message's data verbatim, newline-terminated, and the archive's readers take a line for a
record: a pretty-printed event would be counted by the stream and dead-lettered in pieces
by the backfill and the legacy batch. A record that does not parse is forwarded (in the
same form) with attributes taken from its Kafka metadata, so the Kappa job dead-letters
it: nothing is dropped here. Offsets are committed only after Pub/Sub acknowledged
every publish of the batch; a crash re-sends the unacknowledged tail (duplicates,
exactly as in production).
"""

from __future__ import annotations

import json
import time
from concurrent import futures

import click

from pipelines.cli_common import exit_when_idle_option, with_config
from pipelines.config import Config
from pipelines.errors import StackError
from pipelines.events import BadEvent, one_line, parse_event
from pipelines.source.consumer_loop import run_consumer_loop

FLUSH_RECORDS = 5000
FLUSH_SECONDS = 0.5


def attributes_for(payload: bytes | None, topic: str, partition: int, offset: int, timestamp_ms: int) -> dict:
    """Pub/Sub attributes of a Kafka record: from the event, or from Kafka metadata if it is bad."""
    try:
        event = parse_event(payload or b"", received_at_ms=timestamp_ms)
    except BadEvent:
        return {
            "event_id": f"kafka:{topic}:{partition}:{offset}",
            "event_time": str(timestamp_ms),
            "malformed": "1",
        }
    return event.attributes()


def message_for(
    payload: bytes | None, topic: str, partition: int, offset: int, timestamp_ms: int
) -> tuple[bytes, dict]:
    """The Pub/Sub message (data, attributes) the bridge publishes for a Kafka record."""
    data = one_line(payload or b"")
    return data, attributes_for(data, topic, partition, offset, timestamp_ms)


class PubSubOutput:
    def __init__(self, config: Config):
        from pipelines.pubsub_io import publisher

        self.client = publisher(config)
        self.topic = config.pubsub.topic_path
        self.pending: list[futures.Future] = []
        self.last_flush = time.monotonic()

    def add(self, msg) -> None:
        _, timestamp_ms = msg.timestamp()
        data, attrs = message_for(msg.value(), msg.topic(), msg.partition(), msg.offset(), timestamp_ms)
        self.pending.append(self.client.publish(self.topic, data, **attrs))

    def due(self) -> bool:
        return len(self.pending) >= FLUSH_RECORDS or (
            bool(self.pending) and time.monotonic() - self.last_flush >= FLUSH_SECONDS
        )

    def flush(self) -> int:
        done, not_done = futures.wait(self.pending, timeout=120)
        failed = [f.exception() for f in done if f.exception() is not None]
        if not_done or failed:
            raise StackError(
                f"bridge: Pub/Sub did not acknowledge {len(not_done) + len(failed)} publishes: "
                f"{failed[:1] or 'timeout'}; offsets not committed, records will be re-sent"
            )
        count = len(self.pending)
        self.pending = []
        self.last_flush = time.monotonic()
        return count


def run_bridge(config: Config, exit_when_idle: float | None = None, group_id: str = "bridge") -> int:
    from pipelines.kafka_io import consumer
    from pipelines.pubsub_io import ensure_topic_and_subscriptions

    ensure_topic_and_subscriptions(config)
    stats = run_consumer_loop(consumer(config, group_id), PubSubOutput(config), "bridge", exit_when_idle)
    return stats.flushed


@click.command()
@exit_when_idle_option
@click.option("--group-id", default="bridge", show_default=True, help="Kafka consumer group.")
@with_config
def bridge(config: Config, exit_when_idle: float | None, group_id: str) -> None:
    """Forward Kafka topic `interactions` to the Pub/Sub topic, at least once."""
    forwarded = run_bridge(config, exit_when_idle, group_id)
    click.echo(json.dumps({"forwarded": forwarded}))
