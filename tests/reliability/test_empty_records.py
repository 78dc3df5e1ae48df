"""An empty Kafka message is archived as an empty line: both archive readers must see it
as a record (and dead-letter it), or the legacy batch and the kappa backfill drop it
silently while the speed layer and the stream dead-letter it."""

from __future__ import annotations

import uuid

from lambda_legacy.batch.runs import run_period
from pipelines.archive import ArchiveWriter, partition_of, read_lines, read_part
from pipelines.beam.arrow_events import LineBatch, lines_of_blob, parse_batch
from pipelines.events import Interaction
from pipelines.warehouse import Warehouse

P0 = 1_767_571_200_000  # 2026-01-05T00:00:00Z


def test_empty_records_are_read_and_dead_lettered_by_both_archive_readers(tmp_path):
    good = Interaction(str(uuid.uuid4()), P0 + 1_000, "like", 5, 6, 7, "web").to_json()
    part = ArchiveWriter(tmp_path / "archive", "w", 60).write(partition_of(P0, 60), [b"", good, b"", b" "])
    assert list(read_lines(str(part))) == [b"", good, b"", b" "]

    lines = lines_of_blob(read_part(str(part)))
    parsed, rejected = parse_batch(LineBatch(lines, P0 + 60_000, 0), "kappa_backfill")
    assert len(lines) == 4 and parsed.events.num_rows == 1
    assert [r.error for r in rejected] == ["empty message"] * 3

    report = run_period(str(tmp_path / "archive"), str(tmp_path / "wh"), P0, 60_000, 10_000, [])
    assert report.counters["lines_read"] == 4
    assert report.counters["dead_lettered"] == 3 and report.counters["events_counted"] == 1
    con = Warehouse(tmp_path / "wh").connect()
    assert con.execute("SELECT count(*) FROM dead_letter WHERE error = 'empty message'").fetchone()[0] == 3
