"""The loop the bridge and the archiver share: consume from Kafka, make the output
durable, and only then commit the offsets (at-least-once). SIGTERM/SIGINT stop it
cleanly after the current batch; `exit_when_idle` stops it after a quiet spell, counted
from the moment its partitions are assigned and polled, never from start-up."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Protocol

from confluent_kafka import KafkaException

from pipelines.cli_common import echo_err
from pipelines.errors import StackError
from pipelines.stop_signals import StopSignals

PROGRESS_EVERY_S = 5.0
# A broker outage makes commits fail for a while; the outputs are already durable, so the
# loop keeps going and commits later (an uncommitted tail is re-sent after a restart:
# duplicates, never losses). Only a commit failing for this long stops it.
COMMIT_GIVE_UP_S = 300.0
MAX_KEPT_ERRORS = 100


class Output(Protocol):
    def add(self, msg: object) -> None: ...  # take one consumed record
    def flush(self) -> int: ...  # make everything added durable; returns records flushed
    def due(self) -> bool: ...  # should we flush now?


@dataclass
class LoopStats:
    consumed: int = 0
    flushed: int = 0
    errors: list[str] = field(default_factory=list)


class _Committer:
    """Synchronous commits that survive a broker outage (see COMMIT_GIVE_UP_S)."""

    def __init__(self, consumer, name: str):
        self.consumer, self.name = consumer, name
        self.failing_since: float | None = None

    def commit(self) -> None:
        try:
            self.consumer.commit(asynchronous=False)
        except KafkaException as exc:
            now = time.monotonic()
            self.failing_since = self.failing_since or now
            if now - self.failing_since >= COMMIT_GIVE_UP_S:
                raise StackError(
                    f"{self.name}: Kafka offset commits failing for {now - self.failing_since:.0f}s: {exc}"
                ) from exc
            echo_err(f"{self.name}: offset commit failed ({exc}); output is durable, will commit later")
            return
        self.failing_since = None


def caught_up(consumer) -> bool:
    """The consumer reads and has nothing fetched left to read: partitions are assigned, each
    has had a fetch answered, and each position has reached that partition's high watermark.
    Between the assignment and the first fetch (committed offsets looked up, then a fetch:
    seconds on a busy machine) an empty `consume()` says nothing about the topic; librdkafka
    caches a partition's high watermark from each fetch response, so a known one means
    "polled", and a position below it means records are still on their way."""
    assigned = consumer.assignment()
    if not assigned:
        return False
    try:
        unread = []
        for tp in consumer.position(assigned):
            _, high = consumer.get_watermark_offsets(tp, cached=True)
            if high < 0 or 0 <= tp.offset < high:
                return False
            if tp.offset < 0 and high > 0:
                unread.append(tp)  # nothing consumed yet from a partition that holds records
        return not unread or _nothing_after_start(consumer, unread)
    except KafkaException:
        return False


def _nothing_after_start(consumer, partitions: list) -> bool:
    """Partitions this consumer has read nothing from: does its start (the committed offset,
    else the earliest) already sit at the end?"""
    for tp in consumer.committed(partitions, timeout=5):
        low, high = consumer.get_watermark_offsets(tp, timeout=5)
        if (tp.offset if tp.offset >= 0 else low) < high:
            return False
    return True


def run_consumer_loop(
    consumer,
    output: Output,
    name: str,
    exit_when_idle: float | None = None,
    on_progress: Callable[[LoopStats], None] | None = None,
) -> LoopStats:
    stats = LoopStats()
    committer = _Committer(consumer, name)
    idle_since = time.monotonic()
    last_progress = time.monotonic()
    with StopSignals() as stop:
        try:
            while not stop:
                batch = consumer.consume(num_messages=5000, timeout=0.5)
                for msg in batch:
                    if msg.error():
                        stats.errors = [*stats.errors[-MAX_KEPT_ERRORS + 1 :], str(msg.error())]
                        continue
                    output.add(msg)
                    stats.consumed += 1
                if output.due() or (not batch and stats.consumed > stats.flushed):
                    stats.flushed += output.flush()
                    committer.commit()
                if batch or not caught_up(consumer):
                    idle_since = time.monotonic()  # idle counts only once it has read what it fetched
                if time.monotonic() - last_progress >= PROGRESS_EVERY_S:
                    last_progress = time.monotonic()
                    echo_err(f"{name}: {stats.flushed} records forwarded and committed")
                    if on_progress:
                        on_progress(stats)
                if exit_when_idle is not None and time.monotonic() - idle_since >= exit_when_idle:
                    break
            if stats.consumed > stats.flushed:
                stats.flushed += output.flush()
                committer.commit()
        except KafkaException as exc:  # its __module__ is "cimpl", not "confluent_kafka"
            raise StackError(f"{name}: Kafka error: {exc}") from exc
        finally:
            consumer.close()
    echo_err(f"{name}: stopped after {stats.flushed} records")
    return stats
