"""`kappactl demo` as a user runs it on the local profile: the Kappa stream on Beam's Flink
runner, reading the run's Kafka topic itself (no bridge), with the hostile-input drill of
tests/stack/test_demo.py in its traffic and judged by the same rule. The demo starts its own
Kappa cluster (on free ports) and stops it at the end, as `make demo` does on a machine where
none runs; the file runs first of the Kappa-cluster tests, before their session's cluster
starts in the same state folder."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from pipelines.config import KappaFlinkConfig
from pipelines.stack.private import free_port, write_config
from tests.stack.test_demo import short_demo_passes_despite_hostile_records

pytestmark = [pytest.mark.stack, pytest.mark.kappa_cluster, pytest.mark.flink, pytest.mark.slow,
              pytest.mark.timeout(900)]  # fmt: skip


def test_a_short_demo_on_the_flink_runner_passes_its_own_rule_despite_hostile_records(
    local_stack, tmp_path: Path
) -> None:
    ports = {name: free_port() for name in ("rest_port", "rpc_port", "job_port", "worker_pool_port")}
    config = local_stack.config
    config = replace(config, kappa_flink=KappaFlinkConfig(**ports, checkpointing_interval=2.0))
    config_path = write_config(config, tmp_path / "config.yaml")
    short_demo_passes_despite_hostile_records(config, config_path, "flink", tmp_path)
