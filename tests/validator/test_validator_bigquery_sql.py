"""The same validation compiles to BigQuery SQL: compiled for BigQuery, transpiled back
to DuckDB by sqlglot and run on the same data, it gives the same rows as the DuckDB plan.

Percentiles are the one exception: BigQuery has only APPROX_QUANTILES (the BigQuery
backend asks for approximate quantiles), which has no DuckDB spelling to transpile to;
they are compiled for BigQuery here but compared only on DuckDB.
"""

from __future__ import annotations

from pathlib import Path

import ibis
import pytest
import sqlglot

from migration.validator import build_inputs, build_plan
from migration.validator.kinds import counts_sql
from pipelines.config import load_config
from tests.validator.arms import arm_rows, build_archive, write_arm
from tests.validator.test_validator_warehouse import build_warehouse

CONFIG = load_config(Path(__file__).parents[2] / "config" / "demo.yaml")
COUNTED = ("key_diffs", "group_summary", "error_histogram", "top_unexplained")


def normalized(rows: list[tuple]) -> list[tuple]:
    return sorted(rows, key=repr)


def check_same_results(inputs) -> dict[str, int]:
    plan = build_plan(inputs)
    try:
        expressions = plan.expressions(top_n=50)
        sizes = {}
        for name in COUNTED:
            expr = expressions[name]
            bigquery_sql = ibis.to_sql(expr, dialect="bigquery")
            assert "`" in bigquery_sql  # really the BigQuery dialect
            duckdb_sql = sqlglot.transpile(str(bigquery_sql), read="bigquery", write="duckdb")[0]
            via_bigquery = plan.engine.raw.execute(duckdb_sql).fetchall()
            direct = plan.engine.raw.execute(str(ibis.to_sql(expr, dialect="duckdb"))).fetchall()
            assert normalized(via_bigquery) == normalized(direct), name
            sizes[name] = len(direct)
        approx = counts_sql.error_stats(plan.diffs(), exact=False)
        assert "APPROX_QUANTILES" in ibis.to_sql(approx, dialect="bigquery")
        return sizes
    finally:
        plan.engine.close()


def test_file_arms_with_archive(tmp_path: Path) -> None:
    write_arm(tmp_path / "left.parquet", arm_rows("left"))
    write_arm(tmp_path / "right.parquet", arm_rows("right"))
    build_archive(tmp_path / "archive")
    inputs = build_inputs(
        CONFIG,
        left_path=str(tmp_path / "left.parquet"),
        right_path=str(tmp_path / "right.parquet"),
        archive=str(tmp_path / "archive"),
        warehouse=str(tmp_path / "wh"),
    )
    sizes = check_same_results(inputs)
    assert sizes["key_diffs"] == 6 and sizes["top_unexplained"] == 3


@pytest.mark.parametrize("reference", [None, "kappa_backfill"])
def test_warehouse_tables_with_finality_rules(tmp_path: Path, reference: str | None) -> None:
    wh = build_warehouse(tmp_path / "wh")
    wh.append("kappa_backfill", arm_rows("right"), writer="backfill")
    inputs = build_inputs(CONFIG, warehouse=str(tmp_path / "wh"), reference=reference)
    sizes = check_same_results(inputs)
    assert sizes["key_diffs"] == 3 and sizes["group_summary"] == 13  # + the watermark key (pending)
