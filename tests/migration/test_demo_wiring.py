"""`kappactl demo --kappa-runner`: its default, which arms the local demo starts, and what it refuses."""

from __future__ import annotations

import subprocess
from pathlib import Path

from migration.demo import default_kappa_runner
from migration.demo_support import LocalWiring, checkpoint_note
from pipelines.config import load_config
from pipelines.events import now_ms
from pipelines.stack.processes import KAPPACTL

ROOT = Path(__file__).resolve().parents[2]
CONFIG = load_config(ROOT / "config" / "demo.yaml")


def test_unnamed_the_runner_is_flink_on_the_local_profile_and_direct_on_the_cloud_one() -> None:
    assert default_kappa_runner(CONFIG) == "flink"
    assert default_kappa_runner(load_config(ROOT / "config" / "gcp-emulated.yaml")) == "direct"


def test_on_flink_the_stream_reads_kafka_itself_and_no_bridge_runs() -> None:
    wiring = LocalWiring(CONFIG, Path("run.yaml"), "flink")
    arms = dict(wiring.arms())
    assert arms["kappa-stream"] == ["kappa", "run", "--runner", "flink", "--source", "kafka"]
    assert "bridge" not in arms
    assert wiring.kafka_readers == ("archiver", "speed", "kappa")


def test_on_the_direct_runner_the_stream_reads_pubsub_through_the_bridge() -> None:
    wiring = LocalWiring(CONFIG, Path("run.yaml"))
    arms = dict(wiring.arms())
    assert arms["kappa-stream"] == ["kappa", "run"]
    assert arms["bridge"] == ["bridge"]
    assert "kappa" not in wiring.kafka_readers


def test_the_progress_line_gives_a_flink_streams_checkpoint_and_its_age() -> None:
    stream = {"checkpoints": {"completed": 7, "latest_at_ms": now_ms() - 4_000}}
    assert checkpoint_note(stream) in (", checkpoint 7 4s old", ", checkpoint 7 5s old")
    assert (
        checkpoint_note({"checkpoints": {"completed": 0, "latest_at_ms": None}}) == ", checkpoint 0 none yet"
    )
    assert checkpoint_note({"read": 10}) == ""  # the DirectRunner's stream has no checkpoints


def test_the_flink_runner_with_the_cloud_profile_is_refused_in_one_line() -> None:
    done = subprocess.run(
        [*KAPPACTL, "demo", "--config", "config/gcp-emulated.yaml", "--kappa-runner", "flink"],
        capture_output=True, text=True, timeout=120, cwd=ROOT,
    )  # fmt: skip
    assert done.returncode == 3
    assert done.stderr.strip().splitlines() == [
        "kappactl: error: --kappa-runner flink runs the local profile only (the cloud one reads Pub/Sub)"
    ]
