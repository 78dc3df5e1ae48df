"""`kappactl generate`: send synthetic events to Kafka (or a file) and record the truth ledger."""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path
from typing import IO, Any

import click

from pipelines.cli_common import echo_err, with_config
from pipelines.config import Config
from pipelines.errors import ConfigError
from pipelines.events import now_ms
from pipelines.instants import parse_instant
from pipelines.source.generator import EventGenerator, GeneratorSpec, Record
from pipelines.warehouse import Warehouse

FLUSH_EVERY = 5000  # records between producer flushes and ledger segments
PROGRESS_EVERY_S = 5.0


class Sink:
    """Where records go: Kafka (acknowledged on flush) or a JSONL file."""

    def __init__(self, config: Config, target: str):
        self.config = config
        self.file: IO[bytes] | None = None
        self.producer: Any = None
        if target.startswith("file:"):
            self.file = open(Path(target[5:]), "ab")  # noqa: SIM115 - closed in close()
        elif target == "kafka":
            from pipelines.kafka_io import ensure_topic, producer

            ensure_topic(config)
            self.producer = producer(config)
        else:
            raise ConfigError(f"--to {target!r}: use kafka or file:PATH")

    def send(self, record: Record) -> None:
        if self.file is not None:
            self.file.write(record.payload.replace(b"\n", b" ") + b"\n")
            return
        while True:
            try:
                self.producer.produce(self.config.kafka.topic, value=record.payload, key=record.key)
                return
            except BufferError:
                self.producer.poll(0.05)

    def flush(self) -> None:
        if self.file is not None:
            self.file.flush()
        elif self.producer.flush(60):
            from pipelines.errors import StackError

            raise StackError("Kafka did not acknowledge every record within 60s")

    def close(self) -> None:
        self.flush()
        if self.file is not None:
            self.file.close()


def run_generator(
    config: Config, spec: GeneratorSpec, count: int | None, pace: bool, target: str, ledger: bool = True
) -> Counter:
    """Send `count` records; flush the sink before each truth-ledger segment it writes."""
    sink = Sink(config, target)
    warehouse = Warehouse(config.paths.warehouse_root)
    kinds: Counter = Counter()
    ledger_rows: list[dict] = []
    started = time.monotonic()
    last_progress = started
    try:
        for record in EventGenerator(spec).records(count):
            if pace:
                delay = (record.send_ms - spec.start_ms) / 1000 - (time.monotonic() - started)
                if delay > 0:
                    time.sleep(delay)
            sink.send(record)
            kinds[record.kind] += 1
            if record.event is not None:
                e = record.event
                ledger_rows.append(
                    {
                        "event_id": e.event_id,
                        "event_time": e.event_time,
                        "event_type": e.event_type,
                        "tweet_id": e.tweet_id,
                    }
                )
            if sum(kinds.values()) % FLUSH_EVERY == 0:
                sink.flush()
                if ledger:
                    warehouse.append("truth_ledger", ledger_rows, writer="generator")
                ledger_rows = []
            if time.monotonic() - last_progress >= PROGRESS_EVERY_S:
                last_progress = time.monotonic()
                total = sum(kinds.values())
                echo_err(f"generate: {total} records sent ({total / (last_progress - started):.0f}/s)")
    finally:
        sink.close()
        if ledger and ledger_rows:
            warehouse.append("truth_ledger", ledger_rows, writer="generator")
    return kinds


@click.command()
@click.option("--events", type=click.IntRange(min=1), help="Send this many records, as fast as possible.")
@click.option(
    "--duration", type=click.FloatRange(min=0, min_open=True), help="Send for this many seconds, paced."
)
@click.option(
    "--rate",
    type=click.FloatRange(min=0, min_open=True),
    default=200.0,
    show_default=True,
    help="Records per second (the simulated clock; paced with --duration).",
)
@click.option("--seed", type=int, default=42, show_default=True, help="Random seed: same seed, same records.")
@click.option(
    "--dup-rate", type=float, default=0.02, show_default=True, help="Share of events re-sent later."
)
@click.option(
    "--late-rate", type=float, default=0.01, show_default=True, help="Share of events with an old event_time."
)
@click.option(
    "--max-lateness", type=float, default=30.0, show_default=True, help="Seconds a late event may lag."
)
@click.option(
    "--malformed-rate", type=float, default=0.005, show_default=True, help="Share of malformed records."
)
@click.option(
    "--tweets", type=int, default=1000, show_default=True, help="Number of distinct tweets (Zipf-like)."
)
@click.option("--start-time", help="ISO 8601 start of the simulated clock (default: now). Fixes event times.")
@click.option("--to", "target", default="kafka", show_default=True, help="kafka, or file:PATH for JSONL.")
@click.option("--no-ledger", is_flag=True, help="Do not record the truth ledger in the warehouse.")
@with_config
def generate(
    config: Config,
    events: int | None,
    duration: float | None,
    rate: float,
    seed: int,
    dup_rate: float,
    late_rate: float,
    max_lateness: float,
    malformed_rate: float,
    tweets: int,
    start_time: str | None,
    target: str,
    no_ledger: bool,
) -> None:
    """Produce synthetic interaction events (duplicates, late and malformed records included).

    The unique valid events are recorded in the warehouse table `truth_ledger`, from which
    the `truth` view counts every window exactly. Prints a JSON summary by kind."""
    if (events is None) == (duration is None):
        raise ConfigError("give exactly one of --events N or --duration S")
    start_ms = parse_instant(start_time, "--start-time") if start_time else now_ms()
    spec = GeneratorSpec(
        seed=seed,
        tweets=tweets,
        rate=rate,
        dup_rate=dup_rate,
        late_rate=late_rate,
        max_lateness_s=max_lateness,
        malformed_rate=malformed_rate,
        start_ms=start_ms,
    )
    errors = spec.check()
    if errors:
        raise ConfigError("; ".join(errors))
    count = events if duration is None else int(duration * rate)
    kinds = run_generator(config, spec, count, pace=duration is not None, target=target, ledger=not no_ledger)
    click.echo(json.dumps({"records": sum(kinds.values()), **dict(sorted(kinds.items()))}))
