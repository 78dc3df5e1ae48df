"""Pub/Sub through google-cloud-pubsub, against the emulator locally (PUBSUB_EMULATOR_HOST)."""

from __future__ import annotations

import contextlib
import os
from contextlib import AbstractContextManager
from datetime import datetime, timedelta

from pipelines.config import Config
from pipelines.errors import StackError, map_exceptions

# The subscriptions that replay (kappa) keep acked messages so a Seek can redeliver them.
RETENTION = timedelta(days=7)


def use_emulator(config: Config) -> None:
    """Point every Pub/Sub client of this process at the configured emulator."""
    os.environ["PUBSUB_EMULATOR_HOST"] = config.pubsub.emulator_host


def publisher(config: Config, max_messages: int = 1000, max_latency: float = 0.05):
    from google.cloud import pubsub_v1

    use_emulator(config)
    settings = pubsub_v1.types.BatchSettings(
        max_messages=max_messages, max_bytes=9_000_000, max_latency=max_latency
    )
    return pubsub_v1.PublisherClient(batch_settings=settings)


def subscriber(config: Config):
    from google.cloud import pubsub_v1

    use_emulator(config)
    return pubsub_v1.SubscriberClient()


def emulator_healthy(config: Config) -> bool:
    try:
        client = publisher(config)
        list(client.list_topics(request={"project": f"projects/{config.pubsub.project}"}, timeout=2))
    except Exception:  # any client error means "not answering yet"
        return False
    return True


def _pubsub_errors(what: str) -> AbstractContextManager[None]:
    """Pub/Sub's errors inside the block as a one-line StackError: the emulator (or Pub/Sub)
    refused or did not answer."""
    from google.api_core import exceptions

    return map_exceptions({exceptions.GoogleAPIError: lambda why: StackError(f"{what}: {why}")})


def ensure_topic_and_subscriptions(config: Config, extra: tuple[str, ...] = ()) -> None:
    """Create the events topic and the pipelines' subscriptions, idempotently."""
    from google.api_core import exceptions

    topic = config.pubsub.topic_path
    with (
        _pubsub_errors(f"cannot create Pub/Sub topic {topic}"),
        contextlib.suppress(exceptions.AlreadyExists),
    ):
        publisher(config).create_topic(request={"name": topic}, timeout=10)
    for name in (*config.pubsub.subscriptions, *extra):
        create_subscription(config, name)


def create_subscription(config: Config, name: str, ack_deadline_s: int = 60) -> str:
    from google.api_core import exceptions
    from google.protobuf import duration_pb2

    path = config.pubsub.subscription_path(name)
    request = {
        "name": path,
        "topic": config.pubsub.topic_path,
        "ack_deadline_seconds": ack_deadline_s,
        "retain_acked_messages": True,
        "message_retention_duration": duration_pb2.Duration(seconds=int(RETENTION.total_seconds())),
    }
    with (
        _pubsub_errors(f"cannot create Pub/Sub subscription {path}"),
        contextlib.suppress(exceptions.AlreadyExists),
    ):
        subscriber(config).create_subscription(request=request, timeout=10)
    return path


def seek(config: Config, subscription: str, when: datetime) -> None:
    """Seek a subscription to a time: messages published since are delivered again."""
    from google.protobuf import timestamp_pb2

    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(when)
    with _pubsub_errors(f"cannot seek {subscription}"):
        subscriber(config).seek(request={"subscription": subscription, "time": stamp}, timeout=30)


def pull_all(config: Config, subscription: str, idle_s: float = 3.0, batch: int = 1000) -> list:
    """Pull and ack until the subscription stays empty for `idle_s`; returns the messages."""
    import time

    client = subscriber(config)
    messages: list = []
    idle_since = time.monotonic()
    while time.monotonic() - idle_since < idle_s:
        response = client.pull(request={"subscription": subscription, "max_messages": batch}, timeout=30)
        if not response.received_messages:
            continue
        idle_since = time.monotonic()
        messages.extend(m.message for m in response.received_messages)
        client.acknowledge(
            request={"subscription": subscription, "ack_ids": [m.ack_id for m in response.received_messages]}
        )
    return messages
