"""A validation spec's run with its own `policy:` overrides or a `filter` is recorded as such,
and the cutover gate leaves it out (it neither opens a gate nor rolls one back) unless the
policy's gate_counts_restricted_runs says so: through `kappactl validate --spec` and
`kappactl cutover`, on the warehouse's validation_runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from migration.cli import main as kappactl
from migration.cutover import LocalStateStore, Stage, advance, default_state_location, read_validation_runs
from migration.policy import build_policy
from pipelines.warehouse import Warehouse
from tests.validator.test_validator_warehouse import build_warehouse

REPO = Path(__file__).parents[3]
SHIPPED = REPO / "config" / "validations" / "interaction_counts.yaml"
# The base policy FAILs the test warehouse (one final key of 120 differs); the spec's own
# policy loosens it into a PASS.
STRICT = (
    "consecutive_passes: 2\nmin_final_keys: 10\n"
    + "max_unexplained_key_rate: 0.0001\nmax_unexplained_count_rate: 0.0001\n"
)
LOOSENED = "policy: {max_unexplained_key_rate: 0.5, max_unexplained_count_rate: 0.5}\n"
FILTERED = """name: tweet_two
left: {table: legacy_serving}
right: {table: kappa_stream}
keys: [window_start, tweet_id, event_type]
metrics: [{column: count}]
filter: "tweet_id = 2"
"""


class Site:
    def __init__(self, root: Path):
        self.root = root
        self.warehouse = build_warehouse(root / "wh")
        self.store = LocalStateStore(default_state_location(self.warehouse.root))
        (root / "strict.yaml").write_text(STRICT)
        (root / "counting.yaml").write_text(STRICT + "gate_counts_restricted_runs: true\n")
        (root / "loosened.yaml").write_text(SHIPPED.read_text() + LOOSENED)
        (root / "filtered.yaml").write_text(FILTERED)
        self.reports = 0

    def run(self, *args: str) -> int:
        try:
            kappactl(list(args))
        except SystemExit as exc:
            return int(exc.code or 0)
        return 0

    def validate(self, spec: str, policy: str = "strict") -> dict:
        self.reports += 1
        out = self.root / f"report{self.reports}"
        argv = ["validate", "--config", str(REPO / "config" / "demo.yaml"), "--warehouse", str(self.warehouse.root),
                "--policy", str(self.root / f"{policy}.yaml"), "--report-dir", str(out),
                "--spec", str(self.root / spec)]  # fmt: skip
        self.run(*argv)
        return json.loads((out / "report.json").read_text())

    def cutover(self, command: str, policy: str, *args: str) -> int:
        base = ["--warehouse", str(self.warehouse.root), "--policy", str(self.root / f"{policy}.yaml")]
        return self.run("cutover", command, *base, *args)


@pytest.fixture
def site(tmp_path: Path) -> Site:
    return Site(tmp_path)


def test_a_loosened_spec_run_opens_no_gate(site: Site, capsys) -> None:
    reports = [site.validate("loosened.yaml") for _ in range(2)]
    assert [r["verdict"] for r in reports] == ["PASS", "PASS"]
    capsys.readouterr()
    assert site.cutover("advance", "strict", "--reason", "two passes") == 6
    assert "has 0" in capsys.readouterr().err
    assert site.store.load()[0].stage is Stage.SHADOW
    assert reports[0]["policy_overrides"] == {
        "max_unexplained_key_rate": 0.5,
        "max_unexplained_count_rate": 0.5,
    }
    assert [r["consecutive_passes"]["count"] for r in reports] == [0, 0]  # the streak as the gate counts it
    runs = read_validation_runs(Warehouse(site.warehouse.root), ("legacy_serving", "kappa_stream"))
    assert len(runs) == 2 and all("spec policy overrides" in (r.restricted or "") for r in runs)
    assert site.cutover("advance", "counting", "--reason", "counted on purpose") == 0
    assert site.store.load()[0].stage is Stage.CANARY


def test_a_filtered_spec_run_rolls_nothing_back(site: Site, capsys) -> None:
    advance(site.store, build_policy({"consecutive_passes": 0}), [], reason="canary", actor="alice")
    report = site.validate("filtered.yaml")
    assert report["verdict"] == "FAIL" and report["inputs"]["filter"] == "tweet_id = 2"
    capsys.readouterr()
    assert site.cutover("check", "strict") == 0  # held: the filtered FAIL is not the migration's evidence
    assert "CANARY(10%): hold" in capsys.readouterr().out
    assert report["policy_overrides"] == {}
    (run,) = read_validation_runs(Warehouse(site.warehouse.root))
    assert run.restricted == "spec filter 'tweet_id = 2'"
    assert site.cutover("check", "counting") == 1  # counted on purpose, it rolls back
    assert site.store.load()[0].stage is Stage.SHADOW


def test_an_unchanged_policy_key_is_no_override(site: Site) -> None:
    (site.root / "same.yaml").write_text(SHIPPED.read_text() + "policy: {min_final_keys: 10}\n")
    report = site.validate("same.yaml")
    assert report["verdict"] == "FAIL" and report["policy_overrides"] == {}
    (run,) = read_validation_runs(Warehouse(site.warehouse.root))
    assert run.restricted is None and run.verdict == "FAIL"
