"""`kappactl demo`, short: the whole dual run on the real stack, judged by its own pass rule.

A one-minute run with a 30 s allowed lateness, so stream windows become final within it
and still no event is too late for the stream (the demo's late events are at most 20 s
behind their send time, so they arrive within 20 s and a bridge delay of their window's end).
The demo exits 0 only when the kappa stream equals truth on every final key, the backfill
equals truth, at most 0.1% of the legacy's final keys are unexplained and the cutover left
SHADOW through its gate (`migration.demo.demo_passed`, unit-tested case by case in
tests/pipelines/test_demo_rule.py); the summary it writes must say the same.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from pipelines.stack.processes import KAPPACTL
from tests.reliability.support import ROOT

pytestmark = [pytest.mark.stack, pytest.mark.slow, pytest.mark.flink, pytest.mark.timeout(900)]


def test_a_short_demo_passes_its_own_rule_with_every_arm_right(local_stack, tmp_path) -> None:
    reports = tmp_path / "reports"
    command = [
        *KAPPACTL,
        "demo",
        "--config",
        str(local_stack.config_path),
        "--set",
        "time.kappa_allowed_lateness=30s",
        "--duration",
        "60",
        "--validate-every",
        "10",
        "--report-dir",
        str(reports),
    ]
    # What an interrupted earlier run leaves in the shared speed state: a restore point that
    # cannot be used. Each demo run keeps its speed job's state in its own folder.
    leftover = Path(local_stack.config.paths.state_dir) / "legacy_speed" / "checkpoints" / "old" / "chk-1"
    leftover.mkdir(parents=True)
    leftover.joinpath("_metadata").write_bytes(b"not a checkpoint")
    try:
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=840)
    finally:
        shutil.rmtree(leftover.parents[1])
    assert done.returncode == 0, done.stderr[-4000:]
    summary = json.loads((reports / "demo_summary.json").read_text())
    for arm in ("kappa_stream", "kappa_backfill"):
        result = summary[f"{arm}_vs_truth"]
        assert result["final_keys"] > 0 and result["exact"] == result["final_keys"], (arm, result)
    legacy = summary["legacy_serving_vs_truth"]
    assert legacy["final_keys"] > 0 and legacy["unexplained"] <= legacy["final_keys"] * 0.001, legacy
    assert summary["cutover"]["final_state"] != "SHADOW", summary["cutover"]
    assert (reports / "report.html").exists()
