"""The validator on the BigQuery emulator (bqemulator: DuckDB behind SQLGlot and a REST API)
beside the validator on DuckDB, on the same rows, in the same run.

The arms are bench_validator's (aggregate schema, 1% of keys differing), 1 million keys per
arm (`quick`: 100,000). They go into bqemulator by streaming inserts (`insert_rows_json`,
batches of 10,000 rows, the load rate is a figure too), then `run_validation` runs twice:
on the Parquet files (DuckDB) and on the two tables (`--bigquery-project/--dataset`, the
same Ibis expressions compiled to BigQuery SQL and run through the BigQuery client). Both
must give the same class counts. Figures: each run's seconds and their ratio. The emulator
is not BigQuery: the ratio says what the emulator costs here, not what BigQuery would.

    .venv/bin/python -m bench.bench_validator_bigquery [--quick]
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from bench.bench_validator import make_arms
from bench.figures import Figure, timed

INSERT_BATCH = 10_000
DATASET = "bench"
PROJECT = "kappa-bench"


def _emulator(workdir: Path) -> Any:
    from pipelines.config import GcpConfig, load_config
    from pipelines.stack.cloud import BigQueryEmulator
    from pipelines.stack.component import ROOT
    from pipelines.stack.private import free_port

    config = load_config(ROOT / "config" / "gcp-emulated.yaml")
    gcp = replace(config.gcp or GcpConfig(), bigquery_emulator_host=f"127.0.0.1:{free_port()}",
                  bigquery_grpc_port=free_port(), project=PROJECT)  # fmt: skip
    return BigQueryEmulator(replace(config, gcp=gcp), workdir / f"emulator-{os.getpid()}")


def _json_rows(batch: Any) -> list[dict[str, Any]]:
    from pipelines.instants import utc_iso

    rows = batch.drop_columns(["revenue"]).to_pylist()
    for row in rows:
        for name in ("window_start", "window_end", "emitted_at"):
            row[name] = utc_iso(int(row[name].timestamp() * 1000))
    return rows


def load_arm(client: Any, table_id: str, path: Path) -> float:
    """Stream the Parquet arm into `table_id`; its load rate in rows per second."""
    import pyarrow.parquet as pq
    from google.cloud import bigquery

    from pipelines.bigquery_io import insert_rows, schema_fields

    client.create_table(bigquery.Table(table_id, schema=schema_fields("aggregate.json")), exists_ok=True)
    rows = 0
    with timed() as t:
        for batch in pq.ParquetFile(path).iter_batches(batch_size=INSERT_BATCH):
            insert_rows(client, table_id, _json_rows(batch))
            rows += batch.num_rows
    return rows / t.seconds


def _validate(**arms: Any) -> tuple[float, dict, str]:
    from migration.policy import build_policy
    from migration.validator import build_inputs, run_validation
    from pipelines.config import load_config

    config = load_config(Path(__file__).parents[1] / "config" / "demo.yaml")
    with timed() as t:
        report = run_validation(build_inputs(config, record=False, **arms), build_policy({}))
    return t.seconds, report.keys, report.verdict


def run(workdir: Path, quick: bool = False) -> list[Figure]:
    from pipelines.bigquery_io import EMULATOR_ENV, bigquery_client

    n = 100_000 if quick else 1_000_000
    label = "100k" if quick else "1m"
    workdir.mkdir(parents=True, exist_ok=True)
    left, right = make_arms(workdir, n)
    emulator = _emulator(workdir)
    saved = os.environ.get(EMULATOR_ENV)
    emulator.start()
    try:
        endpoint = f"http://{emulator.host}:{emulator.port}"
        os.environ[EMULATOR_ENV] = endpoint
        client = bigquery_client(PROJECT, endpoint)
        client.create_dataset(f"{PROJECT}.{DATASET}", exists_ok=True)
        rates = [load_arm(client, f"{PROJECT}.{DATASET}.arm_{side}", path)
                 for side, path in (("left", left), ("right", right))]  # fmt: skip
        duck_s, duck_keys, duck_verdict = _validate(left_path=str(left), right_path=str(right))
        bq_s, bq_keys, bq_verdict = _validate(
            left="arm_left", right="arm_right", bigquery_project=PROJECT, bigquery_dataset=DATASET
        )
    finally:
        emulator.stop()
        if saved is None:
            os.environ.pop(EMULATOR_ENV, None)
        else:
            os.environ[EMULATOR_ENV] = saved
    assert bq_keys == duck_keys and bq_verdict == duck_verdict, (bq_keys, duck_keys)
    notes = f"{n:,} keys per arm, {duck_keys['total'] - duck_keys['same']:,} differing; same rows, same run"
    return [
        Figure(f"validator_bigquery_emulator_{label}_keys_seconds", round(bq_s, 2), "s", n,
               notes + "; bqemulator 1.4 (DuckDB + SQLGlot behind REST), Ibis SQL via the BigQuery client"),
        Figure(f"validator_duckdb_{label}_keys_seconds", round(duck_s, 2), "s", n, notes + "; Parquet files"),
        Figure(f"validator_bigquery_emulator_vs_duckdb_{label}_ratio", round(bq_s / duck_s, 2), "x", n,
               "the emulator's cost here, not BigQuery's"),
        Figure("bigquery_emulator_insert_rows_per_s", round(sum(rates) / 2), "rows/s", 2 * n,
               f"insert_rows_json, batches of {INSERT_BATCH:,}"),
    ]  # fmt: skip


if __name__ == "__main__":
    import tempfile

    started = time.perf_counter()
    for figure in run(
        Path(tempfile.gettempdir()) / "kappa-bench" / "validator_bigquery", "--quick" in sys.argv
    ):
        print(json.dumps(figure.as_json()))
    print(json.dumps({"wall_seconds": round(time.perf_counter() - started, 1)}))
