"""The Kafka source's pure parts: which broker errors it asks again instead of failing the read, and when a
job whose source handed out no partition is stuck."""

from __future__ import annotations

import pytest
from apache_beam.utils.timestamp import MIN_TIMESTAMP, Timestamp
from confluent_kafka import KafkaError, KafkaException

from kappa.kafka_source import Frontier, _transient


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


class _Job:
    """What `SourceWatch` reads of a Flink job: records its source sent on, and restarts."""

    def __init__(self) -> None:
        self.sent: int | None = None
        self.restart_count = 0

    def source_sent(self) -> int | None:
        return self.sent

    def restarts(self) -> dict[str, int]:
        return {"restarts": self.restart_count}


def test_a_source_that_hands_out_nothing_once_its_tasks_run_is_stuck_after_the_bound(monkeypatch) -> None:
    from kappa import flink

    clock = [1000.0]
    monkeypatch.setattr(flink.time, "monotonic", lambda: clock[0])
    job = _Job()
    watch = flink.SourceWatch(job)  # type: ignore[arg-type]
    clock[0] += 10 * flink.SOURCE_STUCK_S
    assert not watch.stuck()  # its tasks are not all running yet: no clock started
    job.sent = 0
    assert not watch.stuck()
    clock[0] += flink.SOURCE_STUCK_S - 1
    assert not watch.stuck()
    clock[0] += 1
    assert watch.stuck()


def test_a_source_that_handed_out_its_partitions_or_was_restored_is_never_stuck(monkeypatch) -> None:
    from kappa import flink

    clock = [1000.0]
    monkeypatch.setattr(flink.time, "monotonic", lambda: clock[0])
    for handed_out, restarts in ((3, 0), (0, 1)):  # a restored source does not send its partitions again
        job = _Job()
        job.sent, job.restart_count = handed_out, restarts
        watch = flink.SourceWatch(job)  # type: ignore[arg-type]
        assert not watch.stuck()
        job.sent, job.restart_count = 0, 0
        clock[0] += 10 * flink.SOURCE_STUCK_S
        assert not watch.stuck()


def test_a_partitions_watermark_is_nothing_read_until_every_partition_has_been_read_then_its_own() -> None:
    frontier = Frontier((0, 1, 2))
    assert frontier.advance(0, Timestamp(100)) == MIN_TIMESTAMP  # 1 and 2 not read yet
    assert frontier.advance(1, Timestamp(80)) == MIN_TIMESTAMP
    assert frontier.advance(2, Timestamp(120)) == Timestamp(120)
    assert frontier.held(0) == Timestamp(100)
    assert frontier.advance(1, Timestamp(90)) == Timestamp(90)
    assert frontier.advance(1, Timestamp(70)) == Timestamp(90)  # a partition never goes back by itself


def test_a_partition_read_again_from_a_checkpoint_forgets_what_every_partition_had_read() -> None:
    frontier = Frontier((0, 1))
    frontier.advance(0, Timestamp(100))
    frontier.advance(1, Timestamp(100))
    frontier.restart(0, Timestamp(40))  # a restored job: partition 1 is read again from its checkpoint too
    assert frontier.advance(0, Timestamp(50)) == MIN_TIMESTAMP
    assert frontier.advance(1, Timestamp(45)) == Timestamp(45)
    assert frontier.held(0) == Timestamp(50)


class _EmptyConsumer:
    """A consumer of a partition that holds nothing yet: its high-water mark is where it starts."""

    def __init__(self, high: int):
        self.high = high

    def consume(self, n: int, timeout: float) -> list:
        return []

    def get_watermark_offsets(self, tp, timeout: float, cached: bool) -> tuple[int, int]:
        return 0, self.high


def test_an_empty_partition_asks_the_broker_where_to_start_once_and_resumes_there(monkeypatch) -> None:
    from apache_beam.io.restriction_trackers import OffsetRange, OffsetRestrictionTracker
    from apache_beam.io.watermark_estimators import ManualWatermarkEstimator
    from apache_beam.runners.sdf_utils import ThreadsafeRestrictionTracker

    from kappa import kafka_source

    fn = kafka_source._ReadPartitionFn({"bootstrap.servers": "b", "group.id": "g"}, "t", (0,))
    asked = []
    monkeypatch.setattr(fn, "_start_offset", lambda partition: asked.append(partition) or 7)
    monkeypatch.setattr(
        fn, "_reader", lambda p, offset: (kafka_source._Reader(_EmptyConsumer(7), offset), False)
    )
    tracker = ThreadsafeRestrictionTracker(
        OffsetRestrictionTracker(OffsetRange(kafka_source.UNRESOLVED, kafka_source.END))
    )
    records = list(fn.process(0, finalizer=None, tracker=tracker, watermark=ManualWatermarkEstimator(None)))
    remainder, _ = tracker.deferred_status()
    assert records == [] and asked == [0]
    assert remainder.start == 7  # the next call reads from there, without asking again
