"""`kappactl demo`, short: the whole dual run on the real stack, judged by its own pass rule,
with a hostile-input drill in the middle of it.

A one-minute run with a 30 s allowed lateness, so stream windows become final within it
and still no event is too late for the stream (the demo's late events are at most 20 s
behind their send time, so they arrive within 20 s and a bridge delay of their window's end).
The demo exits 0 only when the kappa stream equals truth on every final key, the backfill
equals truth, at most 0.1% of the legacy's final keys are unexplained and the cutover left
SHADOW through its gate (`migration.demo.demo_passed`, unit-tested case by case in
tests/migration/test_demo_rule.py); the summary it writes must say the same.

While the generator's traffic flows, the test publishes every crafted record of the
hostile-input test (`hostile_payloads`) to the demo's own Kafka topic: the demo must still
pass, and every arm must have dead-lettered every one of them with a reason.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest

from pipelines.config import Config, load_config
from pipelines.events import now_ms, one_line
from pipelines.kafka_io import produce
from pipelines.stack.processes import KAPPACTL
from tests.reliability.support import ROOT
from tests.reliability.test_hostile_input import dead_letters, hostile_payloads

pytestmark = [pytest.mark.stack, pytest.mark.slow, pytest.mark.flink, pytest.mark.timeout(900)]

TRAFFIC = re.compile(r"demo \[\s*\d+s\] traffic\s+truth events=\s*([0-9]+)")


def _wait_for_traffic(demo: subprocess.Popen, stderr: Path) -> None:
    """Until the demo's progress line shows the generator's events reaching the warehouse."""
    while demo.poll() is None:
        if any(int(n) > 0 for n in TRAFFIC.findall(stderr.read_text(errors="replace"))):
            return
        time.sleep(1)
    raise AssertionError(f"the demo ended before its traffic: {stderr.read_text()[-4000:]}")


def _run_config(state_dir: Path, started: float):
    """The config the demo wrote for its own run (topics, archive and warehouse of the run)."""
    made = [p for p in (state_dir / "demo").glob("*/config.yaml") if p.stat().st_mtime >= started]
    assert len(made) == 1, made
    return load_config(made[0])


def test_a_short_demo_passes_its_own_rule_with_every_arm_right_despite_hostile_records(
    local_stack, tmp_path
) -> None:
    """On the DirectRunner (Pub/Sub through the bridge); the Flink runner's run, the local
    default, is tests/kappa/test_demo_flink.py."""
    short_demo_passes_despite_hostile_records(local_stack.config, local_stack.config_path, "direct", tmp_path)


def short_demo_passes_despite_hostile_records(
    config: Config, config_path: Path, runner: str, tmp_path: Path
) -> None:
    """A one-minute demo with the Kappa stream on `runner`, hostile records published into its
    traffic: it passes its own rule, and every arm dead-lettered every crafted record."""
    reports = tmp_path / "reports"
    command = [
        *KAPPACTL,
        "demo",
        "--config",
        str(config_path),
        "--kappa-runner",
        runner,
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
    state_dir = Path(config.paths.state_dir)
    leftover = state_dir / "legacy_speed" / "checkpoints" / "old" / "chk-1"
    leftover.mkdir(parents=True)
    leftover.joinpath("_metadata").write_bytes(b"not a checkpoint")
    stdout, stderr = tmp_path / "demo.out", tmp_path / "demo.err"
    started = time.time() - 1
    with stdout.open("wb") as out, stderr.open("wb") as err:
        demo = subprocess.Popen(command, cwd=ROOT, stdout=out, stderr=err)
    try:
        _wait_for_traffic(demo, stderr)
        run_config = _run_config(state_dir, started)
        crafted = hostile_payloads(now_ms())
        produce(run_config, list(crafted.values()))
        returncode = demo.wait(timeout=840)
    finally:
        if demo.poll() is None:
            demo.kill()
        shutil.rmtree(leftover.parents[1])
    assert returncode == 0, stderr.read_text()[-4000:]
    summary = json.loads((reports / "demo_summary.json").read_text())
    for arm in ("kappa_stream", "kappa_backfill"):
        result = summary[f"{arm}_vs_truth"]
        assert result["final_keys"] > 0 and result["exact"] == result["final_keys"], (arm, result)
    legacy = summary["legacy_serving_vs_truth"]
    assert legacy["final_keys"] > 0 and legacy["unexplained"] <= legacy["final_keys"] * 0.001, legacy
    assert summary["cutover"]["final_state"] != "SHADOW", summary["cutover"]
    assert (reports / "report.html").exists()

    # Every crafted record, as every arm reads it (one line; a tombstone is an empty record),
    # is in that arm's dead letters with a reason. The speed layer's Kafka source skips
    # tombstones (the one record it neither counts nor dead-letters).
    expected = Counter(one_line(v or b"") for v in crafted.values())
    for pipeline in ("kappa_stream", "legacy_speed", "legacy_batch", "kappa_backfill"):
        got = dead_letters(run_config, pipeline)
        assert all(error for _, error in got), pipeline
        want = expected - Counter([b""]) if pipeline == "legacy_speed" else expected
        missing = want - Counter(payload for payload, _ in got)
        assert not missing, (pipeline, sorted(p[:60] for p in missing))
