"""The archiver: Kafka -> raw archive files partitioned by arrival time (DESIGN.md 2.2).

Arrival time is this process's clock when it consumes a record. Lines are buffered per
partition and written as closed parts (temporary name, fsync, rename); offsets are
committed only after that, so a crash re-archives the uncommitted tail (duplicates the
readers dedup) and never loses a record. Bad records are archived like any other.
"""

from __future__ import annotations

import json
import time
import uuid
from collections import defaultdict

import click

from pipelines.archive import ArchiveWriter, partition_of
from pipelines.cli_common import exit_when_idle_option, with_config
from pipelines.config import Config
from pipelines.events import now_ms
from pipelines.source.consumer_loop import run_consumer_loop

FLUSH_RECORDS = 50_000
FLUSH_SECONDS = 2.0


class ArchiveOutput:
    def __init__(self, config: Config, compress: bool = False):
        self.period_s = config.time.batch_period_s
        self.writer = ArchiveWriter(
            config.paths.archive_root, f"a{uuid.uuid4().hex[:8]}", self.period_s, compress
        )
        self.buffers: dict[str, list[bytes]] = defaultdict(list)
        self.buffered = 0
        self.last_flush = time.monotonic()

    def add(self, msg) -> None:
        self.buffers[partition_of(now_ms(), self.period_s)].append(msg.value() or b"")
        self.buffered += 1

    def due(self) -> bool:
        return self.buffered >= FLUSH_RECORDS or (
            self.buffered > 0 and time.monotonic() - self.last_flush >= FLUSH_SECONDS
        )

    def flush(self) -> int:
        for partition, lines in self.buffers.items():
            self.writer.write(partition, lines)
        count, self.buffered = self.buffered, 0
        self.buffers.clear()
        self.last_flush = time.monotonic()
        return count


def run_archiver(
    config: Config, exit_when_idle: float | None = None, compress: bool = False, group_id: str = "archiver"
) -> int:
    from pipelines.kafka_io import consumer

    stats = run_consumer_loop(
        consumer(config, group_id), ArchiveOutput(config, compress), "archive", exit_when_idle
    )
    return stats.flushed


@click.command()
@exit_when_idle_option
@click.option("--gzip", "compress", is_flag=True, help="Write .jsonl.gz parts.")
@click.option("--group-id", default="archiver", show_default=True, help="Kafka consumer group.")
@with_config
def archive(config: Config, exit_when_idle: float | None, compress: bool, group_id: str) -> None:
    """Archive Kafka topic `interactions` to <archive_root>/dt=/hr=/[mi=/] parts by arrival time."""
    archived = run_archiver(config, exit_when_idle, compress, group_id)
    click.echo(json.dumps({"archived": archived}))
