"""Incremental in-memory tables for the serving snapshot: sorted runs, merged like an LSM tree.

A table (`legacy_speed`, `legacy_batch`, `kappa_stream`) is held as a tuple of immutable
*runs*, each a set of NumPy columns sorted by (tweet_id, window_start, event_type) with at
most one row per key. A refresh reads only the Parquet segments that appeared since the
last one (pyarrow reads and sorts them with the GIL released), turns them into one new run
and appends it; when a run is not much smaller than the one before it, the two are merged
(Arrow's sort, also outside the GIL). So a refresh costs what the new segments cost, plus
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

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

# A run is merged into the one before it while that one is at most this many times bigger:
# runs shrink geometrically, so a table holds O(log rows) runs.
MERGE_FACTOR = 4
COLUMNS = ("tweet_id", "ws", "et", "pane", "emitted", "we", "count")
_READ = ["window_start", "window_end", "tweet_id", "event_type", "count", "pane_index", "emitted_at"]


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


def _ms(column: pa.ChunkedArray) -> np.ndarray:
    return pc.cast(pc.cast(column, pa.timestamp("ms", tz="UTC")), pa.int64()).to_numpy()


def read_segments(paths: Sequence[Path], vocab: Vocabulary) -> pa.Table:
    """The aggregate rows of these segment files, in run columns (unsorted)."""
    parts = [pq.read_table(path, columns=_READ) for path in paths]
    if not parts:
        return Run(*(np.empty(0, np.int64) for _ in COLUMNS)).table()
    raw = pa.concat_tables(parts, promote_options="permissive")
    return pa.table(
        {
            "tweet_id": raw.column("tweet_id").to_numpy().astype(np.int64, copy=False),
            "ws": _ms(raw.column("window_start")),
            "et": vocab.codes(raw.column("event_type")),
            "pane": raw.column("pane_index").to_numpy().astype(np.int64, copy=False),
            "emitted": _ms(raw.column("emitted_at")),
            "we": _ms(raw.column("window_end")),
            "count": raw.column("count").to_numpy().astype(np.int64, copy=False),
        }
    )


def reduce(table: pa.Table, keep_panes: bool) -> Run:
    """Sort by key and keep, per key (per key and pane if keep_panes), the newest row."""
    keys = ["tweet_id", "ws", "et", "pane"] if keep_panes else ["tweet_id", "ws", "et"]
    order = pc.sort_indices(table, sort_keys=[(k, "ascending") for k in (*keys, "pane", "emitted")])
    cols = {name: table.column(name).take(order).to_numpy() for name in COLUMNS}
    n = len(cols["tweet_id"])
    last = np.ones(n, dtype=bool)  # the last row of each key group (sorted by rank within it)
    if n > 1:
        same = np.ones(n - 1, dtype=bool)
        for key in keys:
            same &= cols[key][1:] == cols[key][:-1]
        last[:-1] = ~same
    if not last.all():
        cols = {name: values[last] for name, values in cols.items()}
    return Run(**{name: np.ascontiguousarray(cols[name]) for name in COLUMNS})


def add_run(runs: tuple[Run, ...], new: Run, keep_panes: bool) -> tuple[Run, ...]:
    """Append `new`, merging tail runs while the older is at most MERGE_FACTOR times bigger."""
    if not len(new):
        return runs
    out = [*runs, new]
    while len(out) > 1 and len(out[-2]) <= MERGE_FACTOR * len(out[-1]):
        newer, older = out.pop(), out.pop()
        out.append(reduce(pa.concat_tables([older.table(), newer.table()]), keep_panes))
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
