"""The stream's watch loop (`kappa.stream._watch`): when a running job counts as idle.

Driven by a scripted job (its counters per poll), not a runner: what is asserted is the
loop's rule, on a timeline it cannot mistake.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from kappa import stream
from kappa.stream import StreamJob, _watch, _Watched, stream_sink
from pipelines.config import load_config
from pipelines.stop_signals import StopSignals

CONFIG = load_config(Path(__file__).resolve().parents[2] / "config" / "production.yaml")


class ScriptedJob:
    """Counters that follow `script` (one dict per poll; the last one stays)."""

    def __init__(self, script: list[dict[str, int]]):
        self.script, self.polls, self.cancelled_at = script, 0, None

    def counters(self) -> dict[str, int]:
        self.polls += 1
        return self.script[min(self.polls, len(self.script)) - 1]

    def cancel(self) -> None:
        self.cancelled_at = self.polls

    def watched(self) -> _Watched:
        return _Watched(
            self.counters, lambda counters: counters.get("read", 0) > 0, lambda: None, self.cancel
        )


@pytest.fixture(autouse=True)
def quick_polls(monkeypatch) -> None:
    monkeypatch.setattr(stream, "POLL_S", 0.01)


def run(script: list[dict[str, int]], idle_polls: int) -> ScriptedJob:
    job = StreamJob(CONFIG, stream_sink("wh"), exit_when_idle_s=idle_polls * 0.01, progress_every_s=3600)
    scripted = ScriptedJob(script)
    reason = _watch(scripted.watched(), job, 0.0, StopSignals())  # never signalled
    assert reason.startswith("idle for")
    return scripted


def test_rows_in_the_sinks_buffer_are_not_idleness() -> None:
    in_flight = {"read": 100, "rows_buffered_kappa_stream": 40, "rows_written_kappa_stream": 30}
    written = {**in_flight, "rows_written_kappa_stream": 40}
    job = run([in_flight] * 50 + [written], idle_polls=5)
    assert job.cancelled_at is not None and job.cancelled_at > 50  # not before the rows were written


def test_a_dead_letter_in_the_sinks_buffer_is_not_idleness_either() -> None:
    in_flight = {"read": 9, "rows_buffered_dead_letter": 2, "rows_written_dead_letter": 1}
    job = run([in_flight] * 30 + [{**in_flight, "rows_written_dead_letter": 2}], idle_polls=5)
    assert job.cancelled_at is not None and job.cancelled_at > 30


def test_a_job_whose_counters_stand_still_with_nothing_buffered_is_idle() -> None:
    settled = {"read": 100, "rows_buffered_kappa_stream": 40, "rows_written_kappa_stream": 40}
    job = run([settled], idle_polls=5)
    assert job.cancelled_at is not None and job.cancelled_at < 20
