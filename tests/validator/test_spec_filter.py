"""A spec's `filter` is a restricted predicate turned into Ibis, never SQL text: the two
attacks of issue 27 are refused through the real CLI (one line, exit 3, no fabricated key,
no file content), the grammar filters what it says on both engines, and arbitrary strings
either give a predicate or the project's InputError."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import duckdb
import ibis
import pytest
import sqlglot
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from migration.validator.spec import parse_spec
from migration.validator.spec.filter import filter_predicate
from pipelines.errors import ConfigError, InputError
from tests.validator.orders import orders_spec, write_orders

REPO = Path(__file__).parents[2]
SECRET = "s3cr3t-7f1c2d"  # the content of a file no filter may read


@pytest.fixture(scope="module")
def orders(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_orders(tmp_path_factory.mktemp("orders"))


@pytest.fixture(scope="module")
def pairs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two identical two-column tables, keys 1 and 2: the shape of the issue's attack."""
    root = tmp_path_factory.mktemp("pairs")
    for side in ("left", "right"):
        duckdb.sql(f"COPY (SELECT * FROM (VALUES (1, 10), (2, 20)) v(k, m)) TO '{root}/{side}.parquet'")
    (root / "secret.txt").write_text(SECRET)
    return root


def validate(tmp: Path, spec_text: str) -> subprocess.CompletedProcess[str]:
    (tmp / "spec.yaml").write_text(spec_text)
    cmd = [sys.executable, "-m", "migration.cli", "validate", "--config", str(REPO / "config" / "demo.yaml"),
           "--warehouse", str(tmp / "wh"), "--report-dir", str(tmp / "report"), "--no-record", "--json",
           "--spec", str(tmp / "spec.yaml")]  # fmt: skip
    env = {"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}
    return subprocess.run(cmd, cwd=tmp, capture_output=True, text=True, timeout=180, env=env)


def pairs_spec(root: Path, flt: str) -> str:
    return (f"name: pairs\nleft: {{path: '{root}/left.parquet'}}\nright: {{path: '{root}/right.parquet'}}\n"
            f"keys: [k]\nmetrics: [m]\npolicy: {{min_final_keys: 1}}\nfilter: {json.dumps(flt)}\n")  # fmt: skip


def one_error_line(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 3, (done.returncode, done.stdout, done.stderr)
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("kappactl: error: ")
    return line


def test_a_union_cannot_add_a_fabricated_key(pairs: Path, tmp_path: Path) -> None:
    done = validate(tmp_path, pairs_spec(pairs, "true UNION ALL SELECT 3, 30"))
    line = one_error_line(done)
    assert "filter: subqueries and set operations are not allowed" in line
    assert not (tmp_path / "report").exists()


@pytest.mark.parametrize(
    ("attack", "reason"),
    [
        ("CAST((SELECT content FROM read_text('{secret}')) AS INTEGER) = 1", "casts are not allowed"),
        ("k = (SELECT content FROM read_text('{secret}'))", "subqueries and set operations are not allowed"),
        ("read_text('{secret}') IS NOT NULL", "functions are not allowed (read_text)"),
        ("k IN (SELECT 1 FROM read_csv('{secret}'))", "subqueries and set operations are not allowed"),
        ("k = 1; SELECT * FROM read_text('{secret}')", "one expression only"),
        ("k = 1 /* {secret} */", "comments are not allowed"),
    ],
)
def test_a_filter_cannot_read_a_file(pairs: Path, tmp_path: Path, attack: str, reason: str) -> None:
    done = validate(tmp_path, pairs_spec(pairs, attack.format(secret=pairs / "secret.txt")))
    line = one_error_line(done)
    assert reason in line
    assert SECRET not in done.stdout + done.stderr


def test_the_grammar_filters_both_sides(orders: Path, tmp_path: Path) -> None:
    """eu from 2026-01-02: 4 days x 10 skus on the left, and the right's extra key z."""
    flt = "region = 'eu' AND day >= DATE '2026-01-02' AND NOT sku IN ('x', 'y') AND orders IS NOT NULL"
    text = orders_spec(orders, policy="{min_final_keys: 1}", filter=json.dumps(flt))
    done = validate(tmp_path, text)
    assert done.returncode in (0, 1), done.stderr
    keys = json.loads(done.stdout)["keys"]
    assert (keys["total"], keys["missing_in_left"], keys["missing_in_right"]) == (41, 1, 0)
    assert keys["pending"] == 10  # 2026-01-05, eu only


def test_dry_run_shows_the_predicate_rebuilt_not_the_text(orders: Path, tmp_path: Path) -> None:
    """What reaches the engine is the Ibis predicate compiled for it: DuckDB's MAKE_DATE, not
    the spec's DATE '...' literal."""
    text = orders_spec(orders, filter=json.dumps("region = 'eu' AND day >= DATE '2026-01-02'"))
    (tmp_path / "spec.yaml").write_text(text)
    cmd = [sys.executable, "-m", "migration.cli", "validate", "--config", str(REPO / "config" / "demo.yaml"),
           "--spec", str(tmp_path / "spec.yaml"), "--dry-run"]  # fmt: skip
    env = {"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}
    done = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=180, env=env)
    assert done.returncode == 0, done.stderr
    for side in ("t0", "t1"):
        assert f'"{side}"."region" = \'eu\' AND "{side}"."day" >= MAKE_DATE(2026, 1, 2)' in done.stdout
    assert "DATE '2026-01-02'" not in done.stdout


def test_unknown_columns_are_named_in_one_line(orders: Path, tmp_path: Path) -> None:
    text = orders_spec(orders, filter=json.dumps("store = 'x' OR regoin = 'eu'"))
    line = one_error_line(validate(tmp_path, text))
    assert "left: filter: no column 'store', 'regoin' in the table" in line
    assert "right: filter: no column 'store', 'regoin' in the table" in line
    assert "left columns: region, day, sku, revenue, orders" in line


def test_a_refused_filter_is_a_spec_error_with_every_other_problem() -> None:
    raw = {"name": "x", "left": {"path": "a"}, "right": {"path": "b"}, "keys": ["k"], "metrics": ["m"],
           "filter": "now() > k", "top_n": -1}  # fmt: skip
    with pytest.raises(ConfigError) as caught:
        parse_spec(raw)
    assert "filter: functions are not allowed (now)" in str(caught.value)
    assert "top_n: must be a non-negative integer" in str(caught.value)


# --- the grammar, on a small table ---------------------------------------------------------

ROWS: dict[str, list[Any]] = {
    "k": [1, 2, 3, 4],
    "s": ["a", "b", None, "it's"],
    "d": [dt.date(2026, 1, 1), dt.date(2026, 1, 2), dt.date(2026, 1, 3), None],
    "t": [dt.datetime(2026, 1, 1, h, tzinfo=dt.UTC) for h in (0, 6, 12, 18)],
    "b": [True, False, True, None],
    "f": [0.5, 1.5, None, -2.0],
    "my col": [1, 1, 2, 2],
}


@pytest.fixture(scope="module")
def table() -> ibis.Table:
    return ibis.duckdb.connect().create_table("rows", ibis.memtable(ROWS))


def keys_where(table: ibis.Table, flt: str) -> list[int]:
    return sorted(table.filter(filter_predicate(table, flt)).k.to_pyarrow().to_pylist())


@pytest.mark.parametrize(
    ("flt", "keys"),
    [
        ("k > 1 AND k <= 3", [2, 3]),
        ("k != 2 AND k <> 3", [1, 4]),
        ("k = -1 OR k >= 4", [4]),
        ("s = 'a' OR s IS NULL", [1, 3]),
        ("s = 'it''s'", [4]),
        ("NOT (s IN ('a', 'b'))", [4]),  # NULL IN (...) is NULL: row 3 is not kept, as in SQL
        ("s NOT IN ('a')", [2, 4]),
        ("k BETWEEN 2 AND 3", [2, 3]),
        ("k NOT BETWEEN 2 AND 3", [1, 4]),
        ("d >= DATE '2026-01-02'", [2, 3]),
        ("t < TIMESTAMP '2026-01-01 12:00:00'", [1, 2]),
        ("t >= TIMESTAMP '2026-01-01T13:00:00+01:00'", [3, 4]),  # 12:00 UTC
        ("b", [1, 3]),
        ("b = FALSE", [2]),
        ("f < 1 AND f IS NOT NULL", [1, 4]),
        ('"my col" = 2', [3, 4]),
        ("k = NULL", []),
        ("TRUE", [1, 2, 3, 4]),
        ("((k IN (1, 2.0)))", [1, 2]),
    ],
)
def test_allowed_filters_keep_what_they_say(table: ibis.Table, flt: str, keys: list[int]) -> None:
    assert keys_where(table, flt) == keys


@pytest.mark.parametrize(
    ("flt", "reason"),
    [
        ("true UNION ALL SELECT 3, 30", "subqueries and set operations are not allowed"),
        ("CAST((SELECT content FROM read_text('secret.txt')) AS INTEGER) = 1", "casts are not allowed"),
        ("k::VARCHAR = '1'", "casts are not allowed"),
        ("TRY_CAST(s AS INT) = 1", "casts are not allowed"),
        ("lower(s) = 'a'", "functions are not allowed (lower)"),
        ("k IN (SELECT k FROM rows)", "subqueries and set operations are not allowed"),
        ("EXISTS (SELECT 1)", "subqueries and set operations are not allowed"),
        ("k = 1 -- trailing", "comments are not allowed"),
        ("k = 1;", "one expression only"),
        ("rows.k = 1", "columns are named without a table"),
        ("k + 1 = 2", "ADD is not allowed"),
        ("s LIKE 'a%'", "LIKE is not allowed"),
        ("k IS TRUE", "IS takes NULL only"),
        ("k IN (1, k)", "is not a literal"),
        ("k", "is not a condition"),
        ("k = 99999999999999999999", "outside the 64-bit range"),
        ("k = 1e999", "not finite"),
        ("d = DATE '2026-02-30'", "DATE '2026-02-30' is not a valid YYYY-MM-DD"),
        ("(" * 200 + "k = 1" + ")" * 200, "nested too deeply"),
        ("k = 1 AND " * 600 + "k = 1", "longer than 4096 characters"),
        ("k = 'a", "cannot parse it"),
        ("", "must be a non-empty predicate string"),
    ],
)
def test_refused_filters_say_why(table: ibis.Table, flt: str, reason: str) -> None:
    with pytest.raises(InputError) as caught:
        filter_predicate(table, flt)
    assert reason in str(caught.value)
    assert len(str(caught.value).splitlines()) == 1


def test_type_clashes_are_input_errors(table: ibis.Table) -> None:
    with pytest.raises(InputError, match="not comparable"):
        filter_predicate(table, "k = 'one'")


def test_bigquery_compiles_the_same_predicate_in_its_own_dialect(table: ibis.Table) -> None:
    """The BigQuery engine gets the Ibis predicate compiled for BigQuery; transpiled back to
    DuckDB it keeps the same rows as the DuckDB plan."""
    flt = "s IN ('a', 'b') AND d BETWEEN DATE '2026-01-01' AND DATE '2026-01-02' OR \"my col\" = 2"
    filtered = table.filter(filter_predicate(table, flt)).select("k")
    bigquery_sql = ibis.to_sql(filtered, dialect="bigquery")
    assert "`t0`.`my col` = 2" in bigquery_sql and "`t0`.`d` >= DATE(2026, 1, 1)" in bigquery_sql
    back = sqlglot.transpile(str(bigquery_sql), read="bigquery", write="duckdb")[0]
    raw = table.get_backend().con
    assert sorted(r[0] for r in raw.execute(back).fetchall()) == keys_where(table, flt) == [1, 2, 3, 4]


# --- any string at all ---------------------------------------------------------------------

VOCABULARY = [
    *ROWS, "zz", "rows", "rows.k", '"my col"', '"k"',
    "=", "!=", "<>", "<", "<=", ">", ">=", "==", "+", "-", "*", "/", "||", "::", ".", ",", ";", "(", ")",
    "AND", "OR", "NOT", "IN", "BETWEEN", "IS", "NULL", "TRUE", "FALSE", "LIKE", "AS", "SELECT", "FROM",
    "WHERE", "UNION", "ALL", "EXISTS", "CASE", "WHEN", "THEN", "END", "CAST", "INTEGER", "DATE", "TIMESTAMP",
    "INTERVAL", "0", "1", "-1", "2.5", "1e400", "99999999999999999999", "'a'", "'it''s'", "'2026-01-02'",
    "'2026-01-01 06:00:00'", "'", '"', "--", "/*", "*/", "read_text('secret.txt')", "read_csv('secret.txt')",
    "getenv('HOME')", "now()", "content",
]  # fmt: skip
token_soup = st.lists(st.sampled_from(VOCABULARY), min_size=1, max_size=14).map(" ".join)
LITERALS = ["0", "1", "-1", "2.5", "'a'", "'it''s'", "NULL", "TRUE", "DATE '2026-01-02'",
            "TIMESTAMP '2026-01-01 06:00:00'"]  # fmt: skip
operand = st.sampled_from([*(c if c.isidentifier() else f'"{c}"' for c in ROWS), "zz", *LITERALS])
literal_list = st.lists(st.sampled_from(LITERALS), min_size=1, max_size=3).map(", ".join)
simple = st.one_of(
    st.tuples(operand, st.sampled_from(["=", "!=", "<>", "<", "<=", ">", ">="]), operand).map(" ".join),
    st.tuples(operand, st.sampled_from(["IN", "NOT IN"]), literal_list).map(
        lambda t: f"{t[0]} {t[1]} ({t[2]})"
    ),
    st.tuples(operand, operand, operand).map(lambda t: f"{t[0]} BETWEEN {t[1]} AND {t[2]}"),
    st.tuples(operand, st.sampled_from(["IS NULL", "IS NOT NULL"])).map(" ".join),
    st.sampled_from(["b", "TRUE", "FALSE"]),
)
grammar = st.recursive(
    simple,
    lambda inner: st.one_of(
        st.tuples(inner, st.sampled_from(["AND", "OR"]), inner).map(lambda t: f"({t[0]}) {t[1]} {t[2]}"),
        inner.map(lambda p: f"NOT ({p})"),
    ),
    max_leaves=6,
)
# A sentence of the grammar with one foreign token spliced in: near misses of the grammar.
spliced = st.tuples(grammar, st.sampled_from(VOCABULARY), st.integers(0, 200)).map(
    lambda t: " ".join([*t[0].split()[: t[2]], t[1], *t[0].split()[t[2] :]])
)
any_filter = st.one_of(
    grammar, spliced, token_soup, st.text(max_size=60), st.text(alphabet="()'\"-*/;:=<>!.,ak1 ", max_size=60)
)


@pytest.mark.fuzz
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow], deadline=None)
@given(flt=any_filter)
def test_any_string_is_a_predicate_or_an_input_error(
    flt: str, table: ibis.Table, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Accepted filters run on DuckDB and keep a subset of the rows; refused ones raise
    InputError; nothing reads secret.txt in the working folder."""
    (tmp_path / "secret.txt").write_text(SECRET)
    monkeypatch.chdir(tmp_path)
    try:
        predicate = filter_predicate(table, flt)
    except InputError as exc:
        assert SECRET not in str(exc)
        return
    kept = table.filter(predicate).k.to_pyarrow().to_pylist()
    assert set(kept) <= set(ROWS["k"])
    assert SECRET not in ibis.to_sql(table.filter(predicate))
