"""`kappactl kappa run --runner/--source`: a pairing that cannot run is refused before anything starts."""

from __future__ import annotations

import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from pipelines.stack.private import free_port, private_config, write_config
from pipelines.stack.processes import KAPPACTL

ROOT = Path(__file__).resolve().parents[2]


def kappa_run(*args: str, config: Path | None = None) -> subprocess.CompletedProcess:
    config_args = ["--config", str(config)] if config else []
    return subprocess.run([*KAPPACTL, "kappa", "run", *config_args, *args, "--max-runtime", "1"],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)  # fmt: skip


@pytest.mark.parametrize(
    "args", [("--runner", "direct", "--source", "kafka"), ("--runner", "flink", "--source", "pubsub")]
)
def test_a_source_the_runner_cannot_read_is_refused_in_one_line(args: tuple[str, ...]) -> None:
    done = kappa_run(*args)
    assert done.returncode == 3, done.stderr
    assert done.stderr.strip().count("\n") == 0 and "--source kafka runs on --runner flink" in done.stderr


def test_the_flink_runner_without_the_kappa_cluster_says_how_to_start_it(tmp_path: Path) -> None:
    config = private_config(tmp_path)
    nothing_there = replace(config.kappa_flink, job_port=free_port(), worker_pool_port=free_port())
    config_path = write_config(replace(config, kappa_flink=nothing_there), tmp_path / "config.yaml")
    done = kappa_run("--runner", "flink", config=config_path)
    assert done.returncode == 4, done.stderr
    assert "kappactl up --kappa-cluster" in done.stderr and done.stderr.strip().count("\n") == 0


def test_an_unknown_runner_name_is_refused_in_one_line() -> None:
    """direct and flink are ours; any other --runner must be a Beam runner (e.g. DataflowRunner,
    as the flex template passes it: tests/terraform/test_flex_templates.py)."""
    done = kappa_run("--runner", "flnk")
    assert done.returncode == 3, done.stderr
    assert done.stderr.strip().count("\n") == 0 and "use direct, flink or a Beam runner" in done.stderr
