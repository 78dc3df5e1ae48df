"""Where a Kappa run writes (`pipelines.beam.destinations.Sink`): built once from the CLI's options."""

from __future__ import annotations

from pathlib import Path

import pytest

from kappa.backfill import backfill_sink
from kappa.stream import StreamJob, stream_sink
from pipelines.beam.destinations import BigQueryDestination, WarehouseDestination
from pipelines.config import load_config
from pipelines.errors import ConfigError

CONFIG = load_config(Path(__file__).resolve().parents[2] / "config" / "production.yaml")  # early firing 10 s


def test_without_a_bigquery_table_each_job_writes_its_own_table_to_the_warehouse() -> None:
    stream, backfill = stream_sink("wh", flush_s=2.5), backfill_sink("wh")
    assert stream.destination == WarehouseDestination("wh", "kappa-stream", 2.5, 20_000)
    assert backfill.destination == WarehouseDestination("wh", "kappa-backfill", None, 50_000)
    assert (stream.table, backfill.table) == ("kappa_stream", "kappa_backfill")


def test_a_relative_warehouse_root_is_made_absolute_where_the_sink_is_built(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert stream_sink(".local/warehouse").destination.root == str(tmp_path / ".local" / "warehouse")
    assert backfill_sink("/abs/wh").destination.root == "/abs/wh"


def test_a_bigquery_table_wins_with_its_dead_letters_beside_it_unless_told() -> None:
    sink = backfill_sink("wh", "p:kappa.kappa_backfill")
    assert sink.destination == BigQueryDestination("p:kappa", "kappa.dead_letter")
    assert sink.table == "kappa_backfill"
    told = stream_sink("wh", 1.0, "p:kappa.rows", "p:migration.dead_letter")
    assert told.destination == BigQueryDestination("p:kappa", "p:migration.dead_letter")
    assert told.table == "rows"


def test_a_bigquery_table_without_its_dataset_is_refused() -> None:
    with pytest.raises(ConfigError, match="PROJECT:DATASET.TABLE"):
        stream_sink("wh", bigquery_table="kappa_stream")


def test_the_streams_drain_waits_out_an_early_firing_and_the_sinks_buffering() -> None:
    local = StreamJob(CONFIG, stream_sink("wh", flush_s=3.0))
    cloud = StreamJob(CONFIG, stream_sink("wh", flush_s=3.0, bigquery_table="p:kappa.kappa_stream"))
    assert local.drain_s == 2 * (10 + 3.0)
    assert cloud.drain_s == 2 * 10  # BigQuery's rows are inserted as each bundle ends, not buffered
