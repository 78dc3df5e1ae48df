"""The Kafka source's pure parts: which broker errors it asks again instead of failing the read."""

from __future__ import annotations

import pytest
from confluent_kafka import KafkaError, KafkaException

from kappa.kafka_source import _transient


@pytest.mark.parametrize(
    "code",
    [
        KafkaError.NOT_COORDINATOR,  # a fresh broker's group coordinator, not flagged retriable
        KafkaError.COORDINATOR_NOT_AVAILABLE,
        KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
        KafkaError._WAIT_COORD,
        KafkaError._TIMED_OUT,
    ],
)
def test_a_coordinator_not_ready_yet_is_asked_again(code: int) -> None:
    assert _transient(KafkaException(KafkaError(code)))


def test_an_error_the_client_flags_retriable_is_asked_again() -> None:
    assert _transient(KafkaException(KafkaError(KafkaError.UNKNOWN_TOPIC_OR_PART, retriable=True)))


def test_any_other_error_fails_the_read() -> None:
    assert not _transient(KafkaException(KafkaError(KafkaError.TOPIC_AUTHORIZATION_FAILED)))
    assert not _transient(KafkaException("no KafkaError inside"))
