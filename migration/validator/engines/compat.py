"""Ibis 12.0.0 on DuckDB 2.0: a connection shim.

DuckDB 2.0 removed `DuckDBPyConnection.fetch_arrow_table()` and `fetch_record_batch()`,
which Ibis 12.0.0 still calls on the result of `con.execute(...)` (listing tables,
schemas, batches); the upstream fix (ibis-project/ibis#12001) is not released yet. The
shim forwards everything to the real connection and adds the two methods under their
old names. Drop it once the pinned Ibis calls `to_arrow_table()` itself.
"""

from __future__ import annotations

import warnings
from typing import Any


class CompatConnection:
    """A DuckDB connection that still answers `fetch_arrow_table` and `fetch_record_batch`."""

    def __init__(self, con: Any):
        self._con = con

    def __getattr__(self, name: str) -> Any:
        return getattr(self._con, name)

    def execute(self, *args: Any, **kwargs: Any) -> CompatConnection:
        result = self._con.execute(*args, **kwargs)
        return self if result is self._con else CompatConnection(result)

    def cursor(self) -> CompatConnection:
        return CompatConnection(self._con.cursor())

    def fetch_arrow_table(self) -> Any:
        with warnings.catch_warnings():  # "extra copy": only small catalog results come here
            warnings.simplefilter("ignore", UserWarning)
            return self._con.to_arrow_table()

    def fetch_record_batch(self, rows_per_batch: int = 1_000_000) -> Any:
        return self._con.to_arrow_reader(rows_per_batch)


def ibis_connection(con: Any) -> Any:
    """`ibis.duckdb.from_connection` over `con`, shimmed when the driver needs it."""
    import ibis

    if not hasattr(con, "fetch_arrow_table"):
        con = CompatConnection(con)
    return ibis.duckdb.from_connection(con)
