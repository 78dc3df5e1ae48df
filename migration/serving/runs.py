"""Incremental in-memory tables for the serving snapshot: sorted runs, merged like an LSM tree.

A table (`legacy_speed`, `legacy_batch`, `kappa_stream`) is held as a tuple of immutable
*runs*, each a set of NumPy columns sorted by (tweet_id, window_start, event_type) with at
most one row per key. A refresh reads only the Parquet segments that appeared since the
last one, reduces them to one new run with DuckDB (one thread, outside the GIL) and appends
it; when a run is not much smaller than the one before it, the two are merged (the same
DuckDB query over the two runs as Arrow). So a refresh costs what the new segments cost, plus
merges whose amortised cost per row is logarithmic: never a re-read of the whole table.

A lookup binary-searches each run (a handful) and keeps, per key, the row with the highest
(pane_index, emitted_at): the same rule as the warehouse's `<table>_current` views. The
batch table keeps one row per (key, pane_index) instead, because `legacy_serving` serves the
rows of a period's latest FINISHED run, which need not be the highest pane_index written.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

# A run is merged into the one before it while that one is at most this many times bigger:
# runs shrink geometrically, so a table holds O(log rows) runs.
MERGE_FACTOR = 4
COLUMNS = ("tweet_id", "ws", "et", "pane", "emitted", "we", "count")


class Vocabulary:
    """Event type <-> small integer code, append-only (codes never change once given)."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def codes(self, column: pa.ChunkedArray) -> np.ndarray:
        names = pa.array(self.names, pa.string())
        found = pc.index_in(column, value_set=names)
        if found.null_count:
            new = pc.unique(pc.filter(column, pc.is_null(found))).to_pylist()
            self.names.extend(sorted(n for n in new if n is not None))
            found = pc.index_in(column, value_set=pa.array(self.names, pa.string()))
        return found.to_numpy(zero_copy_only=False).astype(np.int16)


@dataclass(frozen=True)
class Run:
    """Columns sorted by (tweet_id, ws, et[, pane]); `ws`, `we`, `emitted` are epoch ms."""

    tweet_id: np.ndarray
    ws: np.ndarray
    et: np.ndarray
    pane: np.ndarray
    emitted: np.ndarray
    we: np.ndarray
    count: np.ndarray

    def __len__(self) -> int:
        return len(self.tweet_id)

    def span(self, tweet_id: int) -> tuple[int, int]:
        lo, hi = np.searchsorted(self.tweet_id, [tweet_id, tweet_id + 1])
        return int(lo), int(hi)

    def table(self) -> pa.Table:
        return pa.table({name: getattr(self, name) for name in COLUMNS})


_SEGMENT_COLUMNS = """
    tweet_id::BIGINT AS tweet_id, epoch_ms(window_start) AS ws, event_type AS et,
    pane_index::BIGINT AS pane, epoch_ms(emitted_at) AS emitted, epoch_ms(window_end) AS we,
    count::BIGINT AS count
"""


def reducer() -> duckdb.DuckDBPyConnection:
    """The refresher's own DuckDB connection: one thread, the other core is the requests'."""
    con = duckdb.connect()
    con.execute("SET threads = 1").fetchall()
    con.execute("SET TimeZone = 'UTC'").fetchall()
    return con


def _reduced(con: duckdb.DuckDBPyConnection, source: str, keep_panes: bool) -> pa.Table:
    """Per key (per key and pane if keep_panes) the newest row, sorted by tweet_id. DuckDB runs
    the query outside the GIL: request threads keep running while a large run is merged."""
    partition = "tweet_id, ws, et" + (", pane" if keep_panes else "")
    return con.sql(
        f"SELECT * FROM {source} QUALIFY row_number() OVER "
        f"(PARTITION BY {partition} ORDER BY pane DESC, emitted DESC) = 1 ORDER BY tweet_id"
    ).to_arrow_table()


def _run(table: pa.Table, et: np.ndarray) -> Run:
    def ints(name: str) -> np.ndarray:
        return np.ascontiguousarray(table.column(name).to_numpy().astype(np.int64, copy=False))

    return Run(ints("tweet_id"), ints("ws"), et, ints("pane"), ints("emitted"), ints("we"), ints("count"))


def read_segments(
    con: duckdb.DuckDBPyConnection, paths: Sequence[Path], vocab: Vocabulary, keep_panes: bool
) -> tuple[Run, int]:
    """The rows of these segment files as one run, and how many rows the files held."""
    files = ", ".join("'" + str(p).replace("'", "''") + "'" for p in paths)
    source = f"(SELECT {_SEGMENT_COLUMNS} FROM read_parquet([{files}], union_by_name = true))"
    read = sum(pq.ParquetFile(p).metadata.num_rows for p in paths)
    table = _reduced(con, source, keep_panes)
    return _run(table, vocab.codes(table.column("et"))), read


def merge(con: duckdb.DuckDBPyConnection, older: Run, newer: Run, keep_panes: bool) -> Run:
    both = pa.concat_tables([older.table(), newer.table()])
    con.register("__runs", both)
    try:
        table = _reduced(con, "__runs", keep_panes)
    finally:
        con.unregister("__runs")
    return _run(table, np.ascontiguousarray(table.column("et").to_numpy().astype(np.int16, copy=False)))


def add_run(
    con: duckdb.DuckDBPyConnection, runs: tuple[Run, ...], new: Run, keep_panes: bool
) -> tuple[Run, ...]:
    """Append `new`, merging tail runs while the older is at most MERGE_FACTOR times bigger."""
    if not len(new):
        return runs
    out = [*runs, new]
    while len(out) > 1 and len(out[-2]) <= MERGE_FACTOR * len(out[-1]):
        newer, older = out.pop(), out.pop()
        out.append(merge(con, older, newer, keep_panes))
    return tuple(out)


def gather(runs: Sequence[Run], tweet_id: int) -> dict[str, np.ndarray] | None:
    """All rows of one tweet across runs (older runs first), or None."""
    pieces = [(run, *run.span(tweet_id)) for run in runs]
    pieces = [(run, lo, hi) for run, lo, hi in pieces if hi > lo]
    if not pieces:
        return None
    if len(pieces) == 1:
        run, lo, hi = pieces[0]
        return {name: getattr(run, name)[lo:hi] for name in COLUMNS}
    return {name: np.concatenate([getattr(r, name)[lo:hi] for r, lo, hi in pieces]) for name in COLUMNS}


def newest_per_key(rows: dict[str, np.ndarray], keep_panes: bool = False) -> dict[str, np.ndarray]:
    """Per (ws, et[, pane]) the row with the highest (pane, emitted): a small in-memory reduce."""
    keys = [rows["emitted"], rows["pane"], rows["et"], rows["ws"]]
    if keep_panes:
        keys.insert(2, rows["pane"])
    order = np.lexsort(keys)
    sorted_rows = {name: values[order] for name, values in rows.items()}
    n = len(order)
    last = np.ones(n, dtype=bool)
    if n > 1:
        same = (sorted_rows["ws"][1:] == sorted_rows["ws"][:-1]) & (
            sorted_rows["et"][1:] == sorted_rows["et"][:-1]
        )
        if keep_panes:
            same &= sorted_rows["pane"][1:] == sorted_rows["pane"][:-1]
        last[:-1] = ~same
    return {name: values[last] for name, values in sorted_rows.items()}
