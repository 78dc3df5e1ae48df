"""`kappactl kappa graph`: the stream and the backfill run one pipeline definition."""

from __future__ import annotations

import subprocess
from pathlib import Path

from pipelines.stack.processes import KAPPACTL

ROOT = Path(__file__).resolve().parents[2]


def graph(mode: str) -> list[str]:
    done = subprocess.run(
        [*KAPPACTL, "kappa", "graph", "--mode", mode, "--config", "config/demo.yaml"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def test_stream_and_backfill_have_the_same_steps_between_source_and_sink() -> None:
    stream, backfill = graph("stream"), graph("backfill")
    assert stream[0] == "ReadFromPubSub" and backfill[0] == "ReadArchive"
    assert stream[-1] == backfill[-1] == "Write"
    assert stream[1:-1] == backfill[1:-1]
    assert stream[1:-1] == [
        "Parse",
        "SelectEventTimes",
        "Dedup",
        "Window",
        "Count",
        "PaneRows",
        "DeadLetterRows",
    ]


def test_an_unknown_mode_is_refused() -> None:
    done = subprocess.run(
        [*KAPPACTL, "kappa", "graph", "--mode", "lambda"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert done.returncode == 3 and "--mode" in done.stderr
