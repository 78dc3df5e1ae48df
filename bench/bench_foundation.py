"""generator -> Kafka and bridge (Kafka -> Pub/Sub) throughput on a private local stack."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

from bench.figures import Figure
from pipelines.pubsub_io import create_subscription
from pipelines.stack.private import PrivateStack
from pipelines.stack.processes import KAPPACTL


def _timed_run(args: list[str]) -> tuple[float, str]:
    start = time.perf_counter()
    out = subprocess.run([*KAPPACTL, *args], capture_output=True, text=True, check=True, timeout=1200)
    return time.perf_counter() - start, out.stdout


def run(workdir: Path, quick: bool = False) -> list[Figure]:
    events = 50_000 if quick else 300_000
    shutil.rmtree(workdir, ignore_errors=True)
    with PrivateStack(workdir) as stack:
        cfg = str(stack.config_path)
        create_subscription(stack.config, "bench-sink")  # the bridge's output is kept, as in a real run
        gen_s, _ = _timed_run(["generate", "--events", str(events), "--no-ledger", "--config", cfg])
        idle = 2.0
        bridge_s, _ = _timed_run(["bridge", "--exit-when-idle", str(idle), "--config", cfg])
    # The bridge's wall time includes start-up, the consumer-group join and the idle wait.
    bridge_busy = max(bridge_s - idle, 1e-9)
    return [
        Figure(
            "generator_events_per_s",
            events / gen_s,
            "events/s",
            events,
            "kappactl generate --events to Kafka, acknowledged (process start-up included)",
        ),
        Figure(
            "bridge_events_per_s",
            events / bridge_busy,
            "events/s",
            events,
            f"Kafka -> Pub/Sub emulator, publishes acknowledged before commit; wall {bridge_s:.1f}s "
            f"minus the {idle:.0f}s idle exit; includes start-up and group join",
        ),
    ]
