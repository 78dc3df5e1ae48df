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

from pipelines.stack.private import write_config
from tests.kappa.conftest import kappa_flink_on_free_ports
from tests.stack.test_demo import short_demo_passes_despite_hostile_records

pytestmark = [pytest.mark.stack, pytest.mark.kappa_cluster, pytest.mark.flink, pytest.mark.slow,
              pytest.mark.timeout(900)]  # fmt: skip


def test_a_short_demo_on_the_flink_runner_passes_its_own_rule_despite_hostile_records(
    local_stack, tmp_path: Path
) -> None:
    config = replace(local_stack.config, kappa_flink=kappa_flink_on_free_ports())
    config_path = write_config(config, tmp_path / "config.yaml")
    short_demo_passes_despite_hostile_records(config, config_path, "flink", tmp_path)
