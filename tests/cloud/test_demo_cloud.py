"""`kappactl demo --config <gcp-emulated on free ports>`, short: the whole dual run on the
emulators (Kafka, pstest, fake-gcs-server, bqemulator, all started and stopped by the demo),
every arm on its cloud adapter; the summary names where each table and the cutover state
lived, every arm equals truth (the kappa arms exactly, the legacy within the 0.1% rule), and
the exit code is the local demo's pass rule applied to the summary.

The gate's three PASS runs are not asserted here: on bqemulator a validation takes one to
two minutes on this 2-core machine, so a run that reaches CANARY takes about 15 minutes
(`kappactl demo --config config/gcp-emulated.yaml --duration 180`, measured in the README), so
this run stops once its last batch period settled and the stream caught up (`--no-wait-for-gate`),
and validates once a minute: the demo's loop waits for each validation, so fewer of them let
it stop when the evidence is in."""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from migration.demo import demo_passed
from pipelines.config import Config, load_config
from pipelines.stack.local import ROOT
from pipelines.stack.private import free_port, write_config
from pipelines.stack.processes import KAPPACTL

pytestmark = [pytest.mark.cloud, pytest.mark.stack, pytest.mark.flink, pytest.mark.slow,
              pytest.mark.timeout(1500)]  # fmt: skip
EMULATOR_VARIABLES = ("PUBSUB_EMULATOR_HOST", "STORAGE_EMULATOR_HOST", "BIGQUERY_EMULATOR_HOST")


def private_cloud_config(base: Path) -> Config:
    """config/gcp-emulated.yaml with every service on a free loopback port, state under `base`."""
    config = load_config(ROOT / "config" / "gcp-emulated.yaml")
    assert config.gcp is not None
    return replace(
        config,
        kafka=replace(config.kafka, bootstrap=f"127.0.0.1:{free_port()}", controller_port=free_port()),
        pubsub=replace(config.pubsub, emulator_host=f"127.0.0.1:{free_port()}"),
        paths=replace(config.paths, state_dir=base / "state", warehouse_root=base / "warehouse"),
        gcp=replace(config.gcp, storage_emulator_host=f"127.0.0.1:{free_port()}",
                    bigquery_emulator_host=f"127.0.0.1:{free_port()}", bigquery_grpc_port=free_port()),
    )  # fmt: skip


def test_a_short_cloud_demo_passes_the_local_rule_on_bigquery_and_gcs(tmp_path: Path) -> None:
    config_path = write_config(private_cloud_config(tmp_path), tmp_path / "gcp.yaml")
    reports = tmp_path / "reports"
    env = {k: v for k, v in os.environ.items() if k not in EMULATOR_VARIABLES}  # the config's own
    command = [*KAPPACTL, "demo", "--config", str(config_path), "--set", "time.kappa_allowed_lateness=30s",
               "--duration", "30", "--validate-every", "60", "--no-wait-for-gate",
               "--report-dir", str(reports)]  # fmt: skip
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=1100, env=env)
    summary = json.loads((reports / "demo_summary.json").read_text())
    assert done.returncode == (0 if demo_passed(summary) else 1), done.stderr[-4000:]
    for arm in ("kappa_stream", "kappa_backfill"):
        result = summary[f"{arm}_vs_truth"]
        assert result["all_exact"] and result["exact"] == result["final_keys"] > 0, (arm, result)
    legacy = summary["legacy_serving_vs_truth"]
    assert legacy["final_keys"] > 0 and legacy["unexplained"] <= legacy["final_keys"] * 0.001, legacy
    assert summary["validation"]["runs"] >= 1
    backends = summary["backends"]
    for table in ("legacy_speed", "legacy_batch", "kappa_stream", "kappa_backfill", "validation_runs"):
        assert backends[table]["backend"] == "bigquery", table
    assert backends["archive"]["backend"] == "gcs" and backends["cutover_state"]["backend"] == "gcs"
    assert backends["cutover_state"]["location"].startswith("gs://")
