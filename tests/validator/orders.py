"""A pair of order tables another team might hand us, written by DuckDB: left as two Parquet
files, right as one CSV, keyed by (region, day, sku) with revenue (float) and orders (int).

Left: 2 regions x 5 days (2026-01-01..05) x 10 skus = 100 keys, revenue 100 + n,
orders n % 5. Right is left with the differences below. With `finality: {column: day,
lateness: 1d}` the newest day (2026-01-05) is PENDING on both sides.
"""

from __future__ import annotations

from pathlib import Path

import duckdb

REGIONS = ("eu", "us")
SKUS = tuple("abcdefghij")
# (region, day, sku): (left revenue, right revenue)
BOUNDARY_SAME = ("eu", "2026-01-02", "a")  # 999 vs 1000: |1| = 0.001 x 1000, SAME at the boundary
BOUNDARY_OVER = ("eu", "2026-01-02", "b")  # 998.999 vs 1000: just over, DIFFERENT
ORDERS_DIFFER = ("us", "2026-01-03", "c")  # orders + 1 on the right
MISSING_RIGHT = ("us", "2026-01-04", "d")  # not on the right
MISSING_LEFT = ("eu", "2026-01-02", "z")  # only on the right
PENDING_DIFFER = ("eu", "2026-01-05", "e")  # revenue x 2 on the right, but the day is pending
PENDING_MISSING = ("us", "2026-01-05", "f")  # not on the right, pending

EXPECTED = {
    "total": 101,
    "same": 77,
    "compatible": 0,
    "different": 2,
    "missing_in_left": 1,
    "missing_in_right": 1,
    "pending": 20,
    "unexplained": 4,
}

_LEFT = """
    SELECT region, day, sku,
           CASE WHEN (region, day::VARCHAR, sku) = ('eu', '2026-01-02', 'a') THEN 999.0
                WHEN (region, day::VARCHAR, sku) = ('eu', '2026-01-02', 'b') THEN 998.999
                ELSE 100.0 + n END::DOUBLE AS revenue,
           (n % 5)::BIGINT AS orders
    FROM (SELECT r.region, DATE '2026-01-01' + d.i::INTEGER AS day, s.sku,
                 row_number() OVER (ORDER BY r.region, d.i, s.sku) AS n
          FROM (VALUES ('eu'), ('us')) r(region), range(5) d(i),
               (VALUES ('a'),('b'),('c'),('d'),('e'),('f'),('g'),('h'),('i'),('j')) s(sku))
"""

_RIGHT = """
    SELECT region, day, sku,
           CASE WHEN (region, day::VARCHAR, sku) IN (('eu', '2026-01-02', 'a'), ('eu', '2026-01-02', 'b'))
                THEN 1000.0
                WHEN (region, day::VARCHAR, sku) = ('eu', '2026-01-05', 'e') THEN revenue * 2
                ELSE revenue END AS revenue,
           CASE WHEN (region, day::VARCHAR, sku) = ('us', '2026-01-03', 'c') THEN orders + 1
                ELSE orders END AS orders
    FROM left_rows
    WHERE (region, day::VARCHAR, sku) NOT IN (('us', '2026-01-04', 'd'), ('us', '2026-01-05', 'f'))
    UNION ALL SELECT 'eu', DATE '2026-01-02', 'z', 5.0, 1
"""


def write_orders(root: Path) -> Path:
    """left/part-0.parquet, left/part-1.parquet (split by region), right.csv."""
    (root / "left").mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    con.execute(f"CREATE TABLE left_rows AS {_LEFT}")
    for i, region in enumerate(REGIONS):
        con.execute(f"COPY (SELECT * FROM left_rows WHERE region = '{region}') "
                    f"TO '{root}/left/part-{i}.parquet' (FORMAT parquet)")  # fmt: skip
    con.execute(f"COPY ({_RIGHT} ORDER BY region, day, sku) TO '{root}/right.csv' (HEADER, DELIMITER ',')")
    con.close()
    return root


def orders_spec(root: Path, **extra: str) -> str:
    """The spec of the issue over these files, as YAML text, with `extra` top-level lines."""
    lines = [
        "name: orders_daily",
        f"left: {{path: '{root}/left/*.parquet'}}",
        f"right: {{csv: '{root}/right.csv'}}",
        "keys: [region, day, sku]",
        "metrics:",
        "  - {column: revenue, tolerance: {relative: 0.001}}",
        "  - {column: orders}",
        "finality: {column: day, lateness: 1d}",
        *(f"{k}: {v}" for k, v in extra.items()),
    ]
    return "\n".join(lines) + "\n"
