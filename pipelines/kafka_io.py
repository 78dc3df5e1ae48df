"""Kafka through confluent-kafka: health, topic creation, producing, and consumer settings."""

from __future__ import annotations

from typing import Iterable

from pipelines.config import Config
from pipelines.errors import StackError, first_line, map_exceptions


def _admin(config: Config):
    from confluent_kafka.admin import AdminClient

    return AdminClient({"bootstrap.servers": config.kafka.bootstrap, "socket.timeout.ms": 3000})


def broker_healthy(config: Config, timeout: float = 2.0) -> bool:
    try:
        metadata = _admin(config).list_topics(timeout=timeout)
    except Exception:  # any client error means "not answering yet"
        return False
    return bool(metadata.brokers)


def ensure_topic(config: Config) -> None:
    """Create the events topic with its configured partitions, if it does not exist."""
    from confluent_kafka import KafkaError, KafkaException
    from confluent_kafka.admin import NewTopic

    admin = _admin(config)
    topic = config.kafka.topic
    with map_exceptions(
        {
            KafkaException: lambda why: StackError(f"cannot create Kafka topic '{topic}': {why}"),
            TimeoutError: lambda why: StackError(f"cannot create Kafka topic '{topic}': no answer ({why})"),
        }
    ):
        if topic in admin.list_topics(timeout=10).topics:
            return
        futures = admin.create_topics(
            [NewTopic(topic, num_partitions=config.kafka.partitions, replication_factor=1)]
        )
        try:
            futures[topic].result(timeout=30)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:  # created meanwhile: fine
                raise


def producer(config: Config, **overrides: object):
    from confluent_kafka import Producer

    settings: dict[str, object] = {
        "bootstrap.servers": config.kafka.bootstrap,
        "linger.ms": 20,
        "batch.num.messages": 10000,
        "compression.type": "lz4",
        "enable.idempotence": True,
        "message.max.bytes": 2_000_000,
        "log_level": 3,
    }
    settings.update(overrides)
    return Producer(settings)


def consumer(config: Config, group_id: str, **overrides: object):
    """A consumer with manual commits: callers commit only after their output is durable."""
    from confluent_kafka import Consumer

    settings: dict[str, object] = {
        "bootstrap.servers": config.kafka.bootstrap,
        "group.id": group_id,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "enable.partition.eof": False,
        "fetch.max.bytes": 52_428_800,
        "max.partition.fetch.bytes": 10_485_760,
        "session.timeout.ms": 10000,
        "heartbeat.interval.ms": 2000,
        "log_level": 3,
    }
    settings.update(overrides)
    consumer = Consumer(settings)
    consumer.subscribe([config.kafka.topic])
    return consumer


def produce(config: Config, payloads: Iterable[bytes], keys: Iterable[bytes | None] | None = None) -> int:
    """Send payloads to the events topic and wait until every one is acknowledged."""
    errors: list[str] = []

    def on_delivery(err: object, _msg: object) -> None:
        if err is not None:
            errors.append(str(err))

    out = producer(config)
    sent = 0
    key_iter = iter(keys) if keys is not None else None
    for payload in payloads:
        key = next(key_iter) if key_iter is not None else None
        while True:
            try:
                out.produce(config.kafka.topic, value=payload, key=key, on_delivery=on_delivery)
                break
            except BufferError:
                out.poll(0.1)
        sent += 1
        if sent % 10000 == 0:
            out.poll(0)
    remaining = out.flush(60)
    if remaining or errors:
        raise StackError(f"Kafka did not acknowledge {remaining or len(errors)} records: {errors[:1]}")
    return sent


def group_lag(config: Config, group_id: str, timeout: float = 10.0) -> int:
    """Records of the events topic that consumer group `group_id` has not committed yet
    (the whole partition where it has committed nothing)."""
    import time

    from confluent_kafka import OFFSET_INVALID, Consumer, KafkaError, KafkaException, TopicPartition

    # A group's coordinator is found (or its offsets loaded) on first use: ask again.
    pending = {
        KafkaError.NOT_COORDINATOR,
        KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
        KafkaError.COORDINATOR_NOT_AVAILABLE,
    }

    probe = Consumer({"bootstrap.servers": config.kafka.bootstrap, "group.id": group_id, "log_level": 3})
    try:
        topic = probe.list_topics(config.kafka.topic, timeout=timeout).topics[config.kafka.topic]
        partitions = [TopicPartition(config.kafka.topic, p) for p in topic.partitions]
        deadline = time.monotonic() + timeout
        while True:
            try:
                offsets = probe.committed(partitions, timeout=timeout)
                break
            except KafkaException as exc:
                if exc.args[0].code() not in pending or time.monotonic() > deadline:
                    raise StackError(
                        f"Kafka: committed offsets of group '{group_id}': {first_line(exc)}"
                    ) from exc
                time.sleep(0.2)
        lag = 0
        for committed in offsets:
            low, high = probe.get_watermark_offsets(committed, timeout=timeout)
            lag += high - (low if committed.offset == OFFSET_INVALID else committed.offset)
        return lag
    finally:
        probe.close()
