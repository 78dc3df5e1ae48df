"""The Kappa stream's Kafka source on a portable runner: one splittable DoFn per partition.

`ReadKafkaPartitions` reads the events topic with confluent-kafka inside the Python SDK
worker, so records go from the broker straight into the fused Parse step:

- **Restriction**: a partition's offsets `[next, ∞)`. The runner checkpoints it (Flink keeps
  it in its checkpoints), so a restored job resumes at the offset after the last record its
  checkpoint covers, with the state that checkpoint holds: records read after it are read
  again and counted once. A new job asks the broker where to start on its first read: the
  consumer group's committed offset, or the partition's first for a new group.
- **Timestamps**: each record's CreateTime (the producer's send time), the arrival time the
  too-late rule is judged against, as Pub/Sub's publish time is; event time comes from the
  payload (`ParseInteractions`).
- **Watermark** (`PartitionWatermark`), per partition: the newest CreateTime read there,
  and once the partition is caught up (its high-water mark read from the broker at that
  moment, not estimated) `now - IDLE_LAG_S`. A backlog delays results and never drops them;
  a quiet partition does not hold the windows open. Until every partition of the topic has
  been read once, each reports nothing read (`Frontier`): the runner holds the read's
  watermark at the lowest of the partitions' deferred remainders, and a partition not read
  yet has none. At the start of a job over a backlog, Beam 2.62's Flink runner passed the
  records of partitions not read yet by more than the allowed lateness: their windows had
  closed and they were lost (apache/beam#19637, fixed after it). Once all have been read,
  each reports its own, so the windows wait for the partition read longest ago, not for
  what the others had read before it. The frontier is kept in the worker process, which
  reads every partition at the job's parallelism of 1 (a partition read in another process
  would hold the windows open: late, never lost). Beam 2.73's `ReadFromKafka` judged
  "caught up" from an end-offset estimate that reads as "no backlog" until its first
  background fetch ends: on a busy machine it moved the watermark to the wall clock while
  two of three partitions were still unread, and their events were dropped as late.
- **Group offsets**: committed after each checkpoint (a bundle finalizer), for the group's
  lag; where a job resumes is its checkpoint, never the group.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, Iterator

import apache_beam as beam
from apache_beam.io.restriction_trackers import OffsetRange, OffsetRestrictionTracker
from apache_beam.io.watermark_estimators import ManualWatermarkEstimator
from apache_beam.transforms.core import RestrictionProvider, WatermarkEstimatorProvider
from apache_beam.transforms.window import TimestampedValue
from apache_beam.utils.timestamp import MIN_TIMESTAMP, Duration, Timestamp

from pipelines.beam import KappaCounter
from pipelines.config import Config
from pipelines.errors import PipelineError, first_line
from pipelines.events import one_line

log = logging.getLogger(__name__)
END = 2**63 - 1  # an unbounded partition's restriction ends here
UNRESOLVED = -1  # a restriction's start before its first read: asked of the broker then
IDLE_LAG_S = 2.0  # a caught-up partition's watermark trails the wall clock by this much
READ_FOR_S = 0.25  # one process call reads for about this long, then defers to the runner
BATCH = 2000  # records per consume call
POLL_S = 0.2  # the consume call's timeout
# Every partition is read again after this long, caught up or not. On Beam's Flink runner a
# partition resumed at once while behind keeps the read's bundle always open, and its
# watermark then goes on only at checkpoints (`--finish_bundle_before_checkpointing`):
# p99 freshness 11.0 s at 3,000 events/s, where this delay gave 6.7 s (one trial each).
# The runner counts the delay in whole seconds.
RESUME_S = 1.0


def _transient(exc: Exception) -> bool:
    """A broker error worth asking again: retriable, or a group coordinator not ready yet
    (which confluent-kafka does not flag retriable: a new broker answers NOT_COORDINATOR for
    its first seconds)."""
    from confluent_kafka import KafkaError

    error = exc.args[0] if exc.args else None
    if not isinstance(error, KafkaError):
        return False
    not_ready = (KafkaError.NOT_COORDINATOR, KafkaError.COORDINATOR_NOT_AVAILABLE,
                 KafkaError.COORDINATOR_LOAD_IN_PROGRESS, KafkaError._WAIT_COORD, KafkaError._TIMED_OUT)  # fmt: skip
    return error.retriable() or error.code() in not_ready


def _consumer_settings(config: Config, group_id: str) -> dict[str, object]:
    return {
        "bootstrap.servers": config.kafka.bootstrap,
        "group.id": group_id,
        "enable.auto.commit": False,  # committed after a checkpoint, for the lag only
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "fetch.wait.max.ms": 100,
        "log_level": 3,
    }


def partitions_of(config: Config) -> list[int]:
    """The events topic's partitions, from the broker (at construction time)."""
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": config.kafka.bootstrap, "socket.timeout.ms": 5000})
    try:
        topic = admin.list_topics(config.kafka.topic, timeout=15).topics.get(config.kafka.topic)
    except Exception as exc:  # the client's own errors, translated where they enter
        raise PipelineError(f"cannot list Kafka topic '{config.kafka.topic}': {exc}") from exc
    if topic is None or topic.error is not None or not topic.partitions:
        raise PipelineError(
            f"Kafka topic '{config.kafka.topic}' has no partitions on {config.kafka.bootstrap}"
        )
    return sorted(topic.partitions)


class PartitionWatermark(WatermarkEstimatorProvider):
    """A manual watermark per partition, starting at the minimum (nothing read yet)."""

    def initial_estimator_state(self, partition: int, restriction: OffsetRange) -> Timestamp:
        return MIN_TIMESTAMP

    def create_watermark_estimator(self, state: Timestamp) -> ManualWatermarkEstimator:
        return ManualWatermarkEstimator(state)


def _advance(estimator: ManualWatermarkEstimator, to: Timestamp) -> None:
    current = estimator.current_watermark()
    if current is None or to > current:
        estimator.set_watermark(to)


class Frontier:
    """How far each partition of a topic has been read (its own watermark); a partition's
    watermark counts as nothing read while any partition of the topic has not been read."""

    def __init__(self, partitions: tuple[int, ...]):
        self.partitions = partitions
        self._read: dict[int, Timestamp] = {}
        self._lock = threading.Lock()

    def advance(self, partition: int, to: Timestamp) -> Timestamp:
        """Partition `partition` has been read up to `to`; the watermark it reports now."""
        with self._lock:
            if to > self._read.get(partition, MIN_TIMESTAMP):
                self._read[partition] = to
        return self.held(partition)

    def held(self, partition: int) -> Timestamp:
        """The partition's own watermark once every partition has been read, else the minimum."""
        with self._lock:
            if any(p not in self._read for p in self.partitions):
                return MIN_TIMESTAMP
            return self._read[partition]

    def restart(self, partition: int, at: Timestamp | None) -> None:
        """Partition `partition` is read from a new position whose watermark is `at` (a new
        or restored job): what any partition read before counts no more until it reads again,
        as a restored job reads every partition again from its checkpoint."""
        with self._lock:
            self._read = {partition: at if at is not None else MIN_TIMESTAMP}


@dataclass
class _Reader:
    """A partition's consumer in this worker process, and the offset it reads next (None:
    to be positioned again)."""

    consumer: Any
    next: int | None = None


# Shared by every instance of the read DoFn in the process, and open until it exits. A bundle
# whose finalizer waits for the next checkpoint keeps its DoFn instance until then, so the
# SDK harness runs the next bundles on other instances: with a consumer per instance, a
# partition moved between consumers about once a second, each move a new position and
# the records it had fetched dropped.
_READERS: dict[tuple[str, str, str, int], _Reader] = {}
_FRONTIERS: dict[tuple[str, str, str], Frontier] = {}  # by (broker, group, topic), as the readers
_READERS_LOCK = threading.Lock()


class _ReadPartitionFn(beam.DoFn, RestrictionProvider):
    """partition -> (payload, CreateTime ms), timestamped with the CreateTime.

    Its own restriction provider: a partition's `[committed or first offset, END)`, never
    split up front.
    """

    def __init__(self, settings: dict[str, object], topic: str, partitions: tuple[int, ...]):
        self.settings, self.topic, self.partitions = settings, topic, partitions
        self.read = KappaCounter("read")

    def _frontier(self) -> Frontier:
        """This worker process's frontier of the topic's partitions."""
        key = (str(self.settings["bootstrap.servers"]), str(self.settings["group.id"]), self.topic)
        with _READERS_LOCK:
            return _FRONTIERS.setdefault(key, Frontier(self.partitions))

    def initial_restriction(self, partition: int) -> OffsetRange:
        # Where to start is asked of the broker by the first `process` call, not here: this
        # runs beside the job's one impulse, and a broker error here (a fresh broker answers
        # NOT_COORDINATOR for a while) failed the impulse's bundle after the impulse had been
        # checkpointed as sent: the restored job had no partitions to read, and read nothing.
        return OffsetRange(UNRESOLVED, END)

    def _start_offset(self, partition: int) -> int | None:
        """The group's committed offset, or the partition's first; None while the broker
        cannot say (a retriable error: asked again on the next call)."""
        from confluent_kafka import Consumer, KafkaException, TopicPartition

        consumer = Consumer(self.settings)
        try:
            tp = TopicPartition(self.topic, partition)
            committed = consumer.committed([tp], timeout=10)[0].offset
            start = committed if committed >= 0 else consumer.get_watermark_offsets(tp, timeout=10)[0]
        except KafkaException as exc:
            if _transient(exc):
                log.warning(
                    "Kafka %s partition %d: start offset not known yet (%s)",
                    self.topic,
                    partition,
                    first_line(exc),
                )
                return None
            raise PipelineError(f"Kafka {self.topic} partition {partition}: {first_line(exc)}") from exc
        finally:
            consumer.close()
        log.info("Kafka %s partition %d: read from offset %d (%s)", self.topic, partition, start,
                 "the group's committed offset" if committed >= 0 else "its first")  # fmt: skip
        return start

    def create_tracker(self, restriction: OffsetRange) -> OffsetRestrictionTracker:
        return OffsetRestrictionTracker(restriction)

    def split(self, partition: int, restriction: OffsetRange) -> Iterator[OffsetRange]:
        yield restriction

    def restriction_size(self, partition: int, restriction: OffsetRange) -> float:
        return 1.0

    def _reader(self, partition: int, offset: int) -> tuple[_Reader, bool]:
        """This worker process's reader of the partition, positioned at `offset`, and whether
        it had to be positioned there (new, restored or moved)."""
        from confluent_kafka import Consumer, TopicPartition

        key = (str(self.settings["bootstrap.servers"]), str(self.settings["group.id"]), self.topic, partition)
        with _READERS_LOCK:
            reader = _READERS.get(key)
            if reader is None:
                reader = _READERS[key] = _Reader(Consumer(self.settings))
        moved = reader.next != offset
        if moved:  # start where it says
            reader.consumer.assign([TopicPartition(self.topic, partition, offset)])
            reader.next = offset
            log.info("Kafka %s partition %d: consumer assigned at offset %d", self.topic, partition, offset)
        return reader, moved

    def _high_water_mark(self, consumer: Any, partition: int, default_above: int) -> int:
        """The partition's high-water mark as the broker says it now; above `default_above`
        (not caught up) while the broker cannot say, so the watermark waits."""
        from confluent_kafka import KafkaException, TopicPartition

        try:
            return consumer.get_watermark_offsets(
                TopicPartition(self.topic, partition), timeout=10, cached=False
            )[1]
        except KafkaException as exc:
            log.warning(
                "Kafka %s partition %d: high-water mark unknown (%s)", self.topic, partition, first_line(exc)
            )
            return default_above + 1

    @beam.DoFn.unbounded_per_element()
    def process(
        self,
        partition: int,
        # Beam passes the placeholders by position and these two by name: placeholders first.
        finalizer=beam.DoFn.BundleFinalizerParam,
        tracker=beam.DoFn.RestrictionParam(),  # noqa: B008 (Beam's parameter markers)
        watermark=beam.DoFn.WatermarkEstimatorParam(PartitionWatermark()),  # noqa: B008
    ) -> Iterator[Any]:
        from confluent_kafka import TIMESTAMP_NOT_AVAILABLE, KafkaError, TopicPartition

        start = tracker.current_restriction().start
        if start == UNRESOLVED:  # nothing read yet: where the group (or the partition) starts
            found = self._start_offset(partition)
            if found is None:
                tracker.defer_remainder(Duration.of(1))
                return
            # The offset before it claimed, so the remainder starts there even if nothing
            # is read now: asked once, not at each call of an empty partition.
            tracker.try_claim(found - 1)
            start = found
        (reader, moved), frontier = self._reader(partition, start), self._frontier()
        if moved:
            frontier.restart(partition, watermark.current_watermark())
        consumer, next_offset = reader.consumer, start
        deadline, drained = time.monotonic() + READ_FOR_S, False
        while time.monotonic() < deadline:
            records = consumer.consume(BATCH, POLL_S)
            if not records:
                drained = True
                break
            newest = None
            for record in records:
                error = record.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF or error.retriable():
                        continue
                    raise PipelineError(f"Kafka partition {partition}: {error.str()}")
                if not tracker.try_claim(record.offset()):
                    reader.next = None
                    return
                next_offset = reader.next = record.offset() + 1
                kind, created_ms = record.timestamp()
                if kind == TIMESTAMP_NOT_AVAILABLE:
                    created_ms = int(time.time() * 1000)
                newest = created_ms if newest is None else max(newest, created_ms)
                self.read.inc()
                # The one-line form every other arm reads (the bridge publishes it, the archive
                # holds it): the same bytes get the same verdict and the same dead letter.
                yield TimestampedValue((one_line(record.value() or b""), created_ms), created_ms / 1000)
            if newest is not None:
                _advance(watermark, frontier.advance(partition, Timestamp.of(newest / 1000)))
        if drained and next_offset >= self._high_water_mark(consumer, partition, next_offset):
            caught_up = Timestamp.of(time.time() - IDLE_LAG_S)  # says the broker
            _advance(watermark, frontier.advance(partition, caught_up))
        else:  # the last partition read for the first time may have come since
            _advance(watermark, frontier.held(partition))
        if next_offset > start:
            committed = TopicPartition(self.topic, partition, next_offset)
            finalizer.register(lambda: consumer.commit(offsets=[committed], asynchronous=True))
        tracker.defer_remainder(Duration.of(RESUME_S))


class ReadKafkaPartitions(beam.PTransform):
    """The events topic as (one-line payload, CreateTime ms), one restriction per partition."""

    def __init__(self, config: Config, group_id: str):
        super().__init__()
        self.config, self.group_id = config, group_id

    def expand(self, pbegin: beam.pvalue.PBegin) -> beam.PCollection:
        partitions = partitions_of(self.config)
        settings, topic = _consumer_settings(self.config, self.group_id), self.config.kafka.topic
        return (
            pbegin
            | "Partitions" >> beam.Impulse()
            | "EachPartition" >> beam.FlatMap(lambda _, ps=tuple(partitions): ps)
            | "Read" >> beam.ParDo(_ReadPartitionFn(settings, topic, tuple(partitions)))
        )
