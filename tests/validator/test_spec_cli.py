"""`kappactl validate --spec` through the real CLI on tables written by someone else: exact
class counts, tolerance at its boundary, PENDING keys out of the verdict, exit codes 0-3,
one line per bad spec, several specs in one run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.validator.orders import (
    BOUNDARY_OVER,
    BOUNDARY_SAME,
    EXPECTED,
    MISSING_LEFT,
    MISSING_RIGHT,
    ORDERS_DIFFER,
    orders_spec,
    write_orders,
)

REPO = Path(__file__).parents[2]


@pytest.fixture(scope="module")
def orders(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_orders(tmp_path_factory.mktemp("orders"))


def validate(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "migration.cli", "validate", "--config", str(REPO / "config" / "demo.yaml"),
           "--warehouse", str(tmp / "wh"), "--report-dir", str(tmp / "report"), *args]  # fmt: skip
    env = {"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=180, env=env)


def write_spec(tmp: Path, text: str, name: str = "spec.yaml") -> str:
    path = tmp / name
    path.write_text(text)
    return str(path)


def test_exact_class_counts_boundary_and_pending(orders: Path, tmp_path: Path) -> None:
    spec = write_spec(
        tmp_path, orders_spec(orders, policy="{min_final_keys: 10, max_unexplained_key_rate: 0.05}")
    )
    done = validate(tmp_path, "--spec", spec, "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["keys"] == EXPECTED
    assert report["verdict"] == "PASS"  # 4 of 81 final keys differ: 0.0494 <= 0.05; the 20 pending left out
    top = {(r["region"], r["day"], r["sku"]): r for r in report["top_differing"]}
    assert BOUNDARY_SAME not in top  # |999 - 1000| = 0.001 x 1000: inside the tolerance
    assert top[BOUNDARY_OVER]["comparison"] == "DIFFERENT"
    assert top[ORDERS_DIFFER]["right_orders"] == top[ORDERS_DIFFER]["left_orders"] + 1
    assert top[MISSING_LEFT]["comparison"] == "MISSING_IN_LEFT"
    assert top[MISSING_RIGHT]["comparison"] == "MISSING_IN_RIGHT"
    assert all(day != "2026-01-05" for _, day, _ in top)  # pending keys never listed
    revenue, orders_stats = report["metrics"]
    assert (revenue["metric"], revenue["differing_keys"], orders_stats["differing_keys"]) == ("revenue", 1, 1)
    assert revenue["abs_max"] == pytest.approx(1000 - 998.999)
    assert revenue["rel"]["max"] == pytest.approx((1000 - 998.999) / 1000)
    assert orders_stats["abs_sum"] == 1
    for name in ("report.json", "report.md", "report.html"):
        assert (tmp_path / "report" / name).exists()
    assert "| unexplained | 4 |" in (tmp_path / "report" / "report.md").read_text()


def test_absolute_tolerance_and_no_finality(orders: Path, tmp_path: Path) -> None:
    text = orders_spec(orders, policy="{min_final_keys: 1}").replace(
        "{column: orders}", "{column: orders, tolerance: {absolute: 1}}"
    )
    text = text.replace("finality: {column: day, lateness: 1d}\n", "")
    done = validate(tmp_path, "--spec", write_spec(tmp_path, text), "--json")
    keys = json.loads(done.stdout)["keys"]
    # No finality: the pending day is compared (its revenue x 2 differs, its missing key counts);
    # orders +1 is within absolute 1.
    assert (keys["pending"], keys["different"], keys["missing_in_right"], keys["same"]) == (0, 2, 2, 96)
    assert done.returncode == 1  # default max_unexplained_key_rate 0.001


@pytest.mark.parametrize(
    ("policy", "code", "verdict"),
    [
        ("{min_final_keys: 10, max_unexplained_key_rate: 0.05}", 0, "PASS"),
        ("{min_final_keys: 10}", 1, "FAIL"),
        ("{min_final_keys: 82}", 2, "INCONCLUSIVE"),  # 81 final keys: the 20 pending do not count
    ],
)
def test_exit_codes_by_verdict(orders: Path, tmp_path: Path, policy: str, code: int, verdict: str) -> None:
    done = validate(
        tmp_path, "--spec", write_spec(tmp_path, orders_spec(orders, policy=policy)), "--no-record"
    )
    assert done.returncode == code, done.stderr
    assert done.stdout.startswith(f"{verdict}: spec orders_daily (metric_diff): 101 keys, 77 same")


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            ("keys: [region, day, sku]", "keys: [region, day, sku, store]"),
            "key 'store' is not a column of left and right",
        ),
        (
            ("{column: orders}", "{column: order_count}"),
            "metric 'order_count' is not a column of left and right",
        ),
        (("{csv: ", "{path: "), "right: cannot read"),
        (
            ("finality: {column: day, lateness: 1d}", "finality: {column: dia, lateness: 1d}"),
            "finality.column: must be one of the keys",
        ),
        (("name: orders_daily", "name: orders_daily\nthreshold: 0.1"), "unknown key 'threshold'"),
        (
            ("{relative: 0.001}", "{relative: -1}"),
            "metrics[0].tolerance.relative: must be a non-negative number",
        ),
    ],
)
def test_bad_spec_exits_3_with_one_line(
    orders: Path, tmp_path: Path, edit: tuple[str, str], message: str
) -> None:
    text = orders_spec(orders).replace(*edit)
    done = validate(tmp_path, "--spec", write_spec(tmp_path, text))
    assert done.returncode == 3, done.stdout
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("kappactl: error: "), done.stderr
    assert message in lines[0]


def test_type_clash_and_every_problem_at_once(orders: Path, tmp_path: Path) -> None:
    import duckdb

    clash = tmp_path / "clash.parquet"
    duckdb.sql(f"COPY (SELECT region, day::VARCHAR AS day, sku, revenue::VARCHAR AS revenue, orders "
               f"FROM read_csv('{orders}/right.csv')) TO '{clash}' (FORMAT parquet)")  # fmt: skip
    text = orders_spec(orders).replace(f"{{csv: '{orders}/right.csv'}}", f"{{path: '{clash}'}}")
    done = validate(tmp_path, "--spec", write_spec(tmp_path, text))
    assert done.returncode == 3
    (line,) = done.stderr.strip().splitlines()
    assert "key 'day' is date on left and string on right: type clash" in line
    assert "metric 'revenue' is float64 on left and string on right: metrics must be numeric" in line
    bad = "name: x\nleft: {parquet: a}\nright: {path: b}\nkeys: []\nmetrics: [{column: m, tolerance: {relatve: 1}}]\n"
    done = validate(tmp_path, "--spec", write_spec(tmp_path, bad))
    (line,) = done.stderr.strip().splitlines()
    for part in ("left.parquet: unknown source kind", "keys: required by kind metric_diff",
                 "metrics[0].tolerance.relatve: unknown key"):  # fmt: skip
        assert part in line


def test_several_specs_one_summary_worst_verdict(orders: Path, tmp_path: Path) -> None:
    folder = tmp_path / "specs"
    folder.mkdir()
    write_spec(
        folder, orders_spec(orders, policy="{min_final_keys: 10, max_unexplained_key_rate: 0.05}"), "a.yaml"
    )
    strict = orders_spec(orders, policy="{min_final_keys: 10}").replace("orders_daily", "orders_strict")
    write_spec(folder, strict, "b.yaml")
    schema = f"name: orders_schema\nkind: schema\nleft: {{path: '{orders}/left/*.parquet'}}\n" \
             f"right: {{csv: '{orders}/right.csv'}}\n"  # fmt: skip
    one = write_spec(tmp_path, schema, "schema.yaml")
    done = validate(tmp_path, "--spec", str(folder), "--spec", one)
    assert done.returncode == 1, done.stderr  # PASS, FAIL, PASS: the worst is FAIL
    table = done.stdout[done.stdout.index("| spec |") :]
    assert "| orders_daily | metric_diff | PASS | 101 | 77 | 2 | 1 | 1 | 20 |" in table
    assert "| orders_strict | metric_diff | FAIL |" in table and "| orders_schema | schema | PASS |" in table
    assert "worst verdict: FAIL (exit 1)" in table
    for name in ("orders_daily", "orders_strict", "orders_schema"):
        assert (tmp_path / "report" / name / "report.html").exists()
    twice = validate(tmp_path, "--spec", str(folder / "a.yaml"), "--spec", str(folder / "a.yaml"))
    assert twice.returncode == 3 and "orders_daily appear twice" in twice.stderr


def test_a_spec_whose_data_cannot_be_read_does_not_stop_the_others(orders: Path, tmp_path: Path) -> None:
    """The other specs still run and report; the unreadable one is an ERROR line and one
    error line naming it; the exit code is the worst of all (3 for the data error)."""
    good = write_spec(
        tmp_path, orders_spec(orders, policy="{min_final_keys: 10, max_unexplained_key_rate: 0.05}")
    )
    gone = (
        orders_spec(orders).replace("orders_daily", "orders_gone").replace(f"{orders}/left", f"{orders}/nope")
    )
    bad = write_spec(tmp_path, gone, "gone.yaml")
    done = validate(tmp_path, "--spec", bad, "--spec", good)
    assert done.returncode == 3, done.stderr
    assert [line for line in done.stderr.splitlines() if "error: spec orders_gone:" in line], done.stderr
    table = done.stdout[done.stdout.index("| spec |") :]
    assert "| orders_daily | metric_diff | PASS |" in table and "| orders_gone | | ERROR (exit 3) |" in table
    assert (tmp_path / "report" / "orders_daily" / "report.html").exists()
    as_json = json.loads(validate(tmp_path, "--spec", bad, "--spec", good, "--json").stdout)
    assert [r.get("verdict") or r["exit_code"] for r in as_json] == ["PASS", 3]


def test_spec_refuses_arm_flags(orders: Path, tmp_path: Path) -> None:
    done = validate(tmp_path, "--spec", write_spec(tmp_path, orders_spec(orders)), "--left", "truth")
    assert done.returncode == 3 and "--spec replaces the arm flags: drop --left" in done.stderr


SHIPPED = REPO / "config" / "validations" / "interaction_counts.yaml"


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (("right: {table: kappa_stream}", "right: {table: legacy_serving}"), "right: the same arm as left"),
        (("right: {table: kappa_stream}", "right: {csv: x.csv}"), "right: finality rules: arms"),
        (("keys: [window_start, tweet_id, event_type]", "keys: [window_start]"), "keys: finality rules"),
        (
            ("name: interaction_counts", "name: interaction_counts\ntop_n: -1"),
            "top_n: must be a non-negative",
        ),
    ],
)
def test_a_bad_streaming_spec_names_its_keys_not_flags(
    tmp_path: Path, edit: tuple[str, str], message: str
) -> None:
    text = SHIPPED.read_text().replace(*edit)
    assert text != SHIPPED.read_text()
    done = validate(tmp_path, "--spec", write_spec(tmp_path, text))
    assert done.returncode == 3, done.stdout
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], done.stderr
    assert " --" not in lines[0]  # the user typed no flag: none is named


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--left", "truth", "--left-path", "x.parquet"], "--left and --left-path are exclusive"),
        (["--left", "kappa_stream"], "--left and --right are the same arm (kappa_stream)"),
        (["--since", "soon", "--threads", "0"], "--threads must be at least 1"),
        (["--bigquery-project", "p"], "--bigquery-project needs --dataset"),
    ],
)
def test_bad_flags_exit_3_with_one_line_naming_them(tmp_path: Path, args: list[str], message: str) -> None:
    done = validate(tmp_path, *args)
    assert done.returncode == 3, done.stdout
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("kappactl: error: ") and message in lines[0], done.stderr
