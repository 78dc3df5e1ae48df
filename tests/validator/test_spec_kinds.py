"""The kinds beside the keyed metric diff (schema, column aggregates, row hash), a warehouse
table as a side, and the shipped interaction-count spec against today's flags."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from migration.policy import build_policy
from migration.validator import build_inputs
from migration.validator.options import RunOptions
from migration.validator.run import run_spec
from migration.validator.spec import load_spec, parse_spec
from pipelines.config import load_config
from pipelines.warehouse import Warehouse
from tests.validator.arms import arm_rows, build_archive
from tests.validator.orders import write_orders
from tests.validator.test_validator_warehouse import build_warehouse

REPO = Path(__file__).parents[2]
CONFIG = load_config(REPO / "config" / "demo.yaml")
SHIPPED = REPO / "config" / "validations" / "interaction_counts.yaml"
POLICY = build_policy({"min_final_keys": 1})


def run(raw: dict, tmp: Path):
    return run_spec(parse_spec(raw), CONFIG, POLICY, RunOptions(warehouse_root=tmp / "wh", record=False), [])


def test_schema_kind_uses_the_type_compatibility_table(tmp_path: Path) -> None:
    left = pa.table(
        {"id": pa.array([1], pa.int32()), "name": ["a"], "price": [1.5], "born": pa.array([0], pa.date32())}
    )
    right = pa.table({"id": pa.array([1], pa.int64()), "name": ["a"], "price": ["1.5"], "extra": [1]})
    pq.write_table(left, tmp_path / "l.parquet")
    pq.write_table(right, tmp_path / "r.parquet")
    sides = {"left": {"path": str(tmp_path / "l.parquet")}, "right": {"path": str(tmp_path / "r.parquet")}}
    report = run({"name": "s", "kind": "schema", **sides}, tmp_path)
    status = {r["column"]: r["status"] for r in report.schema}
    assert status == {"id": "COMPATIBLE", "name": "SAME", "price": "DIFFERENT", "born": "MISSING_IN_RIGHT",
                      "extra": "MISSING_IN_LEFT"}  # fmt: skip
    assert report.verdict == "FAIL" and report.keys["compatible"] == 1 and report.keys["unexplained"] == 3
    ok = run({"name": "s", "kind": "schema", "columns": ["id", "name"], **sides}, tmp_path)
    assert ok.verdict == "PASS" and ok.keys["same"] == 2


def test_column_aggregates_grouped(tmp_path: Path) -> None:
    root = write_orders(tmp_path / "orders")
    raw = {"name": "agg", "kind": "aggregates", "left": {"path": f"{root}/left/*.parquet"},
           "right": {"csv": f"{root}/right.csv"}, "columns": ["revenue", "orders"], "group_by": "region"}  # fmt: skip
    report = run(raw, tmp_path)
    differing = {
        (r["group"], r["column"], r["aggregate"]) for r in report.aggregates if r["status"] != "SAME"
    }
    # eu: 999 -> 1000, 998.999 -> 1000, revenue x 2 on one key, one extra key (sku z);
    # us: orders + 1 on one key, two keys missing on the right.
    assert ("eu", "*", "rows") in differing and ("us", "*", "rows") in differing
    assert ("eu", "revenue", "sum") in differing and ("us", "orders", "sum") in differing
    assert ("eu", "orders", "null_count") not in differing and ("us", "revenue", "min") not in differing
    assert report.verdict == "FAIL"
    same = run({**raw, "right": {"path": f"{root}/left/*.parquet"}}, tmp_path)
    assert same.verdict == "PASS" and same.keys["total"] == 2 * (1 + 2 * 5) and same.keys["same"] == 22


def test_row_hash_on_warehouse_tables(tmp_path: Path) -> None:
    wh = Warehouse(tmp_path / "wh")
    people = [{"id": i, "name": f"n{i}", "city": "x"} for i in range(1, 11)]
    wh.append("people_old", pa.Table.from_pylist(people), writer="a")
    changed = [dict(p) for p in people if p["id"] != 3] + [{"id": 11, "name": "n11", "city": "x"}]
    changed[0]["city"] = "y"  # id 1 differs
    changed[1]["city"] = None  # id 2: NULL vs "x"
    wh.append("people_new", pa.Table.from_pylist(changed), writer="a")
    raw = {"name": "people", "kind": "row_hash", "left": {"table": "people_old"}, "right": {"table": "people_new"},
           "keys": ["id"]}  # fmt: skip
    report = run(raw, tmp_path)
    assert report.keys == {"total": 11, "same": 7, "compatible": 0, "different": 2, "missing_in_left": 1,
                           "missing_in_right": 1, "pending": 0, "unexplained": 4}  # fmt: skip
    assert {r["id"]: r["comparison"] for r in report.top_differing} == {
        1: "DIFFERENT", 2: "DIFFERENT", 3: "MISSING_IN_RIGHT", 11: "MISSING_IN_LEFT"}  # fmt: skip
    only_name = run({**raw, "columns": ["name"]}, tmp_path)
    assert only_name.keys["different"] == 0 and only_name.keys["same"] == 9


def test_shipped_spec_is_what_the_flags_build(tmp_path: Path) -> None:
    from_flags = build_inputs(CONFIG, warehouse=tmp_path / "wh", report_dir=tmp_path / "r")
    assert dataclasses.replace(from_flags.spec, origin="x") == dataclasses.replace(
        load_spec(SHIPPED), origin="x"
    )
    assert (
        from_flags.options.warehouse_root == tmp_path / "wh"
        and from_flags.options.report_dir == tmp_path / "r"
    )
    given = build_inputs(CONFIG, left_path="a/*.parquet", reference="truth", archive="A")
    assert (given.spec.left.label, given.spec.right.label) == ("file:a/*.parquet", "kappa_stream")
    assert (given.spec.archive, given.spec.reference and given.spec.reference.label) == ("A", "truth")
    assert given.spec.streaming and given.spec.keys == load_spec(SHIPPED).keys


def _raw(path: Path) -> dict:
    import yaml

    return yaml.safe_load(path.read_text())


def _cli(tmp: Path, *args: str) -> str:
    """report.json of one `kappactl validate` run, its run id, times and folder blanked."""
    out = tmp / f"report-{len(list(tmp.glob('report-*')))}"
    cmd = [sys.executable, "-m", "migration.cli", "validate", "--config", str(REPO / "config" / "demo.yaml"),
           "--warehouse", str(tmp / "wh"), "--no-record", "--report-dir", str(out),
           "--policy", str(tmp / "policy.yaml"), *args]  # fmt: skip
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=180,
                          env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})  # fmt: skip
    assert done.returncode in (0, 1, 2), done.stderr
    text = (out / "report.json").read_text()
    report = json.loads(text)
    for key in ("run_id", "started_at", "finished_at", "report_dir"):
        text = text.replace(json.dumps(report[key]), f'"<{key}>"')
    return text


@pytest.mark.parametrize("extra", [False, True], ids=["shipped", "archive-and-reference"])
def test_flags_and_shipped_spec_give_byte_identical_reports(tmp_path: Path, extra: bool) -> None:
    wh = build_warehouse(tmp_path / "wh")  # legacy_serving vs kappa_stream, half the windows pending
    (tmp_path / "policy.yaml").write_text(
        "min_final_keys: 100\nmax_unexplained_key_rate: 0.01\nmax_unexplained_count_rate: 0.05\n"
    )
    spec, flags = SHIPPED, []
    if extra:
        wh.append("kappa_backfill", arm_rows("right"), writer="backfill")
        build_archive(tmp_path / "archive")
        spec = tmp_path / "with_options.yaml"
        spec.write_text(SHIPPED.read_text() + f"explain: {{archive: {tmp_path / 'archive'}}}\n"
                        "reference: {table: kappa_backfill}\n")  # fmt: skip
        flags = ["--archive", str(tmp_path / "archive"), "--reference", "kappa_backfill"]
    by_flags = _cli(tmp_path, *flags)
    by_spec = _cli(tmp_path, "--spec", str(spec))
    assert by_spec == by_flags
    report = json.loads(by_flags)
    assert report["spec"] == "interaction_counts" and report["keys"]["pending"] == 121
    assert "kind" not in report and list(report)[:4] == ["run_id", "verdict", "reasons", "keys"]
    assert (report["reference"] is not None) == extra and (report["inputs"]["archive"] is not None) == extra


def test_a_streaming_spec_uses_its_top_n(tmp_path: Path) -> None:
    build_warehouse(tmp_path / "wh")
    spec = parse_spec({**_raw(SHIPPED), "top_n": 0})
    report = run_spec(spec, CONFIG, POLICY, RunOptions(warehouse_root=tmp_path / "wh", record=False), [])
    assert report.keys["unexplained"] > 0 and report.top_unexplained == []
    default = run_spec(
        parse_spec(_raw(SHIPPED)),
        CONFIG,
        POLICY,
        RunOptions(warehouse_root=tmp_path / "wh", record=False),
        [],
    )
    assert len(default.top_unexplained) == min(POLICY.top_n_unexplained, default.keys["unexplained"]) > 0


def test_streaming_options_need_the_aggregate_shape() -> None:
    with pytest.raises(Exception) as caught:
        parse_spec({"name": "x", "left": {"csv": "a"}, "right": {"path": "b"}, "keys": ["k"],
                    "metrics": ["m"], "finality": {"rules": "arms"}, "filter": "k > 1"})  # fmt: skip
    message = str(caught.value)
    for part in (
        "keys: finality rules",
        "metrics: finality rules",
        "filter: finality rules",
        "left: finality",
    ):
        assert part in message
