"""What the reliability drills share: processes they start and always stop, kill -9 of a
stack component, deterministic generator runs, counts per key, and the drill summaries.

Every process a drill starts is a `kappactl` child (`pipelines.stack.processes`): `Procs.stop_all`
stops each one and everything below it, first with SIGTERM, then SIGKILL.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from collections import Counter
from pathlib import Path
from typing import Any, Iterator

from pipelines.archive import arrival_spans, list_parts, read_lines
from pipelines.config import Config
from pipelines.events import BadEvent, parse_event
from pipelines.instants import utc_iso
from pipelines.source.generator import EventGenerator, GeneratorSpec, Record
from pipelines.stack.local import Component
from pipelines.stack.processes import LoggedProcesses
from pipelines.warehouse import Warehouse

ROOT = Path(__file__).resolve().parents[2]
SUMMARY = Path(os.environ.get("RELIABILITY_SUMMARY", ROOT / ".local" / "reliability" / "summary.json"))
Key = tuple[int, int, str]  # (window_start ms, tweet_id, event_type)


class Procs(LoggedProcesses):
    """Subprocesses of one drill, logged to files, all stopped by `stop_all` (use try/finally)."""

    def __init__(self, log_dir: Path):
        # FLINK_LOG_DIR: PyFlink's JVM log of this drill, not the venv's shared one.
        super().__init__(log_dir, cwd=ROOT, env={"FLINK_LOG_DIR": str(log_dir / "flink")})


def kill9_component(component: Component) -> int:
    """kill -9 a stack component started by this process (Kafka or the emulator); its pid."""
    pid = component.pid()
    assert pid is not None, f"{component.name} is not running"
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while component.pid() is not None and time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)  # the stack's Popen is ours: reap the zombie
        time.sleep(0.1)
    assert component.pid() is None, f"{component.name} survived SIGKILL"
    return pid


def wait_until(predicate, timeout: float, what: str, interval: float = 0.5) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


@contextlib.contextmanager
def _topic_probe(config: Config, group_id: str) -> Iterator[tuple[Any, list[Any]]]:
    """A consumer of group `group_id` (it joins nothing) and the events topic's partitions."""
    from confluent_kafka import Consumer, TopicPartition

    probe = Consumer({"bootstrap.servers": config.kafka.bootstrap, "group.id": group_id, "log_level": 3})
    try:
        topic = probe.list_topics(config.kafka.topic, timeout=10).topics[config.kafka.topic]
        yield probe, [TopicPartition(config.kafka.topic, p) for p in topic.partitions]
    finally:
        probe.close()


def committed_records(config: Config, group_id: str) -> int:
    """Records of the events topic consumer group `group_id` has committed (offsets summed)."""
    try:
        with _topic_probe(config, group_id) as (probe, partitions):
            return sum(max(tp.offset, 0) for tp in probe.committed(partitions, timeout=10))
    except Exception:  # the group's coordinator not ready yet: nothing known to be committed
        return 0


def topic_records(config: Config) -> int:
    """Records in the events topic: the partitions' end offsets summed."""
    with _topic_probe(config, "probe") as (probe, partitions):
        return sum(probe.get_watermark_offsets(tp, timeout=10)[1] for tp in partitions)


def generator_spec(seed: int, rate: float, start_ms: int, **overrides: Any) -> GeneratorSpec:
    """The spec `kappactl generate` builds from `generator_args` (same defaults)."""
    return GeneratorSpec(seed=seed, rate=rate, start_ms=start_ms, **overrides)


def generator_args(spec: GeneratorSpec, count: int) -> list[str]:
    return [
        "generate",
        "--duration",
        f"{count / spec.rate:g}",
        "--rate",
        f"{spec.rate:g}",
        "--seed",
        str(spec.seed),
        "--start-time",
        utc_iso(spec.start_ms),
        "--dup-rate",
        f"{spec.dup_rate:g}",
        "--late-rate",
        f"{spec.late_rate:g}",
        "--max-lateness",
        f"{spec.max_lateness_s:g}",
        "--malformed-rate",
        f"{spec.malformed_rate:g}",
    ]


def generated(spec: GeneratorSpec, count: int) -> list[Record]:
    """Exactly the records `kappactl generate` sends for this spec (it is deterministic)."""
    return list(EventGenerator(spec).records(count))


def archived_lines(config: Config) -> Counter:
    return Counter(
        line
        for part in list_parts(config.paths.archive_root, spans=arrival_spans(config))
        for line in read_lines(part.path)
    )


def counts(config: Config, view: str, where: str = "") -> dict[Key, int]:
    con = Warehouse(config.paths.warehouse_root).connect(config.time.window_ms)
    rows = con.execute(
        f"SELECT epoch_ms(window_start), tweet_id, event_type, count FROM {view} {where}"
    ).fetchall()
    return {(int(r[0]), int(r[1]), r[2]): int(r[3]) for r in rows}


def scalar(config: Config, sql: str) -> Any:
    row = Warehouse(config.paths.warehouse_root).connect(config.time.window_ms).execute(sql).fetchone()
    assert row is not None, sql
    return row[0]


def diff(got: dict[Key, int], want: dict[Key, int], window_ms: int) -> dict[str, Any]:
    """How `got` differs from `want`: keys and windows wrong, events missing and extra."""
    keys = set(got) | set(want)
    wrong = {k for k in keys if got.get(k, 0) != want.get(k, 0)}
    return {
        "keys": len(keys),
        "keys_wrong": len(wrong),
        "windows": len({k[0] for k in keys}),
        "windows_wrong": len({k[0] for k in wrong}),
        "events_expected": sum(want.values()),
        "events_counted": sum(got.values()),
        "events_missing": sum(max(0, want.get(k, 0) - got.get(k, 0)) for k in wrong),
        "events_extra": sum(max(0, got.get(k, 0) - want.get(k, 0)) for k in wrong),
        "window_ms": window_ms,
    }


def speed_expected(records: list[Record], window_ms: int, received_at_ms: int) -> dict[Key, int]:
    """What a speed layer without dedup and without late drops would count: every valid copy."""
    out: Counter = Counter()
    for record in records:
        try:
            e = parse_event(record.payload, received_at_ms)
        except BadEvent:
            continue
        out[(e.event_time - e.event_time % window_ms, e.tweet_id, e.event_type)] += 1
    return dict(out)


def record_summary(request: Any, tmp_path: Path, name: str, data: dict[str, Any]) -> None:
    """A drill's measurements: JSON in its tmp dir, one entry of SUMMARY, and pytest properties."""
    text = json.dumps(data, indent=2, sort_keys=True, default=str)
    (tmp_path / f"{name}.json").write_text(text + "\n")
    SUMMARY.parent.mkdir(parents=True, exist_ok=True)
    with _locked(SUMMARY.with_suffix(".lock")):
        current = json.loads(SUMMARY.read_text()) if SUMMARY.exists() else {}
        current[name] = {"test": request.node.nodeid, "at": utc_iso(int(time.time() * 1000)), **data}
        tmp = SUMMARY.with_suffix(".tmp")
        tmp.write_text(json.dumps(current, indent=2, sort_keys=True, default=str) + "\n")
        os.replace(tmp, SUMMARY)
    for key, value in data.items():
        request.node.user_properties.append((key, json.dumps(value, default=str)))
    print(f"reliability summary {name}: {text}")


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    import fcntl

    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield
