"""Starts bqemulator (BigQuery emulator, PyPI `bqemulator`) without DuckDB extension downloads.

At start bqemulator 1.4.0 runs `INSTALL spatial; LOAD spatial` (GEOGRAPHY support) and
refuses to start when that fails; on a machine without access to extensions.duckdb.org it
cannot start at all. The project needs no GEOGRAPHY, so this launcher turns that load off
(and the best-effort `avro` one) and then runs the emulator's own CLI unchanged:

    .venv-bq/bin/python tools/bqemulator_main.py start --rest-port 9050 --grpc-port 9060 ...

It runs in `.venv-bq` (bqemulator pins sqlglot 30, the main venv needs sqlglot < 28).
"""

from __future__ import annotations

import os

from bqemulator.cli import main
from bqemulator.storage.engine import DuckDBEngine


def _no_spatial(self: DuckDBEngine) -> None:
    """GEOGRAPHY is unused here: skip the extension (ST_* queries would fail, nothing else)."""


if __name__ == "__main__":
    os.environ.setdefault("BQEMU_ENABLE_FORMAT_EXTENSIONS", "false")
    DuckDBEngine._load_spatial = _no_spatial  # type: ignore[method-assign]
    main()
