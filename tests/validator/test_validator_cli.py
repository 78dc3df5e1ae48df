"""`kappactl validate`: exit codes 0/1/2/3 and one clear line for each bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from migration.policy import build_policy
from migration.validator import build_inputs, run_validation
from pipelines.config import load_config
from pipelines.errors import ConfigError, InputError
from pipelines.rows import AGGREGATE_SCHEMA, table_from_rows
from tests.validator.arms import arm_rows, write_arm

REPO = Path(__file__).parents[2]
KAPPACTL = Path(sys.executable).parent / "kappactl"
CONFIG = load_config(REPO / "config" / "demo.yaml")
POLICY = build_policy({"min_final_keys": 10})


@pytest.fixture(scope="module")
def arms(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cli")
    write_arm(root / "left.parquet", arm_rows("left"))
    write_arm(root / "right.parquet", arm_rows("right"))
    write_arm(root / "same.parquet", arm_rows("right"))
    good = table_from_rows(arm_rows("left")[:10], AGGREGATE_SCHEMA)
    pq.write_table(good.drop_columns(["count"]), root / "no_count.parquet")
    idx = good.schema.get_field_index("count")
    pq.write_table(good.set_column(idx, "count", pa.array([str(v) for v in good["count"].to_pylist()])),
                   root / "text_count.parquet")  # fmt: skip
    pq.write_table(good.slice(0, 0), root / "empty.parquet")
    (root / "garbage.parquet").write_bytes(b"PAR1 this is not parquet at all")
    (root / "bad_policy.yaml").write_text("max_unexplained_key_rate: 2\nmin_final_keyz: 5\n")
    (root / "policy.yaml").write_text("min_final_keys: 10\n")
    return root


def kappactl(arms: Path, tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [str(KAPPACTL), "validate", "--config", str(REPO / "config" / "demo.yaml"),
           "--warehouse", str(tmp / "wh"), "--report-dir", str(tmp / "report"), *args]  # fmt: skip
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=120)


def test_cli_pass_fail_and_dry_run(arms: Path, tmp_path: Path) -> None:
    ok = kappactl(arms, tmp_path, "--left-path", str(arms / "same.parquet"), "--right-path",
                  str(arms / "right.parquet"), "--policy", str(arms / "policy.yaml"), "--json")  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["verdict"] == "PASS"
    assert (tmp_path / "report" / "report.html").exists()
    fail = kappactl(arms, tmp_path, "--left-path", str(arms / "left.parquet"), "--right-path",
                    str(arms / "right.parquet"), "--policy", str(arms / "policy.yaml"))  # fmt: skip
    assert fail.returncode == 1, fail.stderr
    assert fail.stdout.startswith("FAIL: 606 keys, 600 same")
    dry = kappactl(arms, tmp_path, "--left-path", str(arms / "left.parquet"), "--right-path",
                   str(arms / "right.parquet"), "--dry-run")  # fmt: skip
    assert dry.returncode == 0, dry.stderr
    assert "-- key_diffs" in dry.stdout and "FULL OUTER JOIN" in dry.stdout.upper()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--left-path", "{arms}/no_count.parquet"],
            "left arm file:{arms}/no_count.parquet: no column 'count'",
        ),
        (
            ["--left-path", "{arms}/garbage.parquet"],
            "left arm: cannot read {arms}/garbage.parquet as Parquet",
        ),
        (["--policy", "{arms}/bad_policy.yaml"], "max_unexplained_key_rate: must be a number from 0 to 1"),
    ],
)
def test_cli_bad_input_exits_3_with_one_line(
    arms: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    base = ["--left-path", str(arms / "left.parquet"), "--right-path", str(arms / "right.parquet")]
    args = [a.format(arms=arms) for a in args]
    result = kappactl(arms, tmp_path, *base, *args)
    assert result.returncode == 3
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("kappactl: error: "), result.stderr
    assert message.format(arms=arms) in lines[0]
    if "bad_policy" in args[-1]:
        assert "unknown key 'min_final_keyz'" in lines[0]


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"left_path": "text_count.parquet"}, InputError, "column 'count' is string, expected an integer"),
        ({"left_path": "empty.parquet"}, InputError, "left arm file:{arms}/empty.parquet has no rows"),
        ({"right_path": "nothing-*.parquet"}, InputError, "right arm: no file matches"),
        ({"archive": "no-archive-here"}, ConfigError, "no such folder"),
        ({"left": "legacy_batch"}, ConfigError, "--left and --left-path are exclusive"),
        ({"since": "2026-01-06", "until": "2026-01-05"}, ConfigError, "--since must be before --until"),
        ({"since": "yesterday"}, ConfigError, "not an ISO 8601 time"),
        ({"since": "2027-01-01"}, InputError, "has no rows with window_start in [2027-01-01T00:00:00Z"),
    ],
)
def test_bad_inputs_name_the_problem(
    arms: Path, tmp_path: Path, kwargs: dict, error: type, message: str
) -> None:
    args = {"left_path": "left.parquet", "right_path": "right.parquet", **kwargs}
    for key in ("left_path", "right_path", "archive"):
        if key in args:
            args[key] = str(arms / args[key])
    with pytest.raises(error) as caught:
        run_validation(build_inputs(CONFIG, warehouse=str(tmp_path / "wh"), record=False, **args), POLICY)
    assert message.format(arms=arms) in str(caught.value)
