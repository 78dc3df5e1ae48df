import gzip

from pipelines.archive import (
    ArchiveWriter,
    ArrivalSpans,
    list_parts,
    partition_of,
    partition_start_ms,
    read_lines,
)
from pipelines.warehouse import Warehouse

T = 1_764_000_000_000  # 2025-11-24T16:00:00Z


def test_partition_granularity_follows_the_batch_period():
    assert partition_of(T + 61_000, 60) == "dt=2025-11-24/hr=16/mi=01"
    assert partition_of(T + 61_000, 900) == "dt=2025-11-24/hr=16/mi=00"
    assert partition_of(T + 3_599_000, 3600) == "dt=2025-11-24/hr=16"
    assert partition_start_ms("x/dt=2025-11-24/hr=16/mi=01/part-a-00000001.jsonl") == T + 60_000
    assert partition_start_ms("x/dt=2025-11-24/hr=16/part-a-00000001.jsonl.gz") == T
    assert partition_start_ms("x/dt=2025-11-24/hr=16/.part-a-1.jsonl.tmp") is None


def test_parts_are_closed_files_and_lines_kept_raw(tmp_path):
    writer = ArchiveWriter(tmp_path, "w1", 60)
    plain = writer.write(partition_of(T, 60), [b'{"a":1}', b"not json", b'{"pretty":\n1}'])
    gz = ArchiveWriter(tmp_path, "w2", 60, compress=True).write(partition_of(T + 60_000, 60), [b"x"])
    assert not list(tmp_path.rglob(".*.tmp"))
    assert list(read_lines(str(plain))) == [b'{"a":1}', b"not json", b'{"pretty": 1}']
    assert gzip.decompress(gz.read_bytes()) == b"x\n"
    spans = ArrivalSpans(60_000)
    parts = list_parts(str(tmp_path), spans=spans)
    assert [(p.arrival_start_ms, p.arrival_end_ms) for p in parts] == [
        (T, T + 60_000),
        (T + 60_000, T + 120_000),
    ]
    assert [p.path for p in list_parts(str(tmp_path), T + 60_000, T + 120_000, spans=spans)] == [str(gz)]


def test_the_arrival_interval_of_a_partition_and_of_a_subscription_object():
    """The one arrival rule: a partition spans its period, an object its max_duration from
    its time, plus the second its name cuts off (at most to its period's end when objects
    are aligned to periods)."""
    obj = "gs://b/interactions/2025-11-24/16/00_35Z_0a1b.jsonl"
    assert ArrivalSpans(60_000).interval("x/dt=2025-11-24/hr=16/mi=01/part-a-1.jsonl") == (
        T + 60_000,
        T + 120_000,
    )
    assert ArrivalSpans(3_600_000).interval("x/dt=2025-11-24/hr=16/part-a-1.jsonl") == (T, T + 3_600_000)
    assert ArrivalSpans(60_000, 60_000).interval(obj) == (T + 35_000, T + 96_000)  # into the next period
    assert ArrivalSpans(60_000, 60_000, aligned=True).interval(obj) == (T + 35_000, T + 60_000)
    assert ArrivalSpans(3_600_000).interval(obj) == (T + 35_000, T + 336_000)  # Terraform's 300 s
    assert ArrivalSpans(60_000).interval("gs://b/interactions/README.txt") is None


def test_warehouse_current_value_and_truth(tmp_path):
    wh = Warehouse(tmp_path)
    ledger = [
        {"event_id": "a", "event_time": T + 1, "event_type": "like", "tweet_id": 5},
        {"event_id": "b", "event_time": T + 9_999, "event_type": "like", "tweet_id": 5},
        {"event_id": "b", "event_time": T + 9_999, "event_type": "like", "tweet_id": 5},  # same event twice
        {"event_id": "c", "event_time": T + 10_000, "event_type": "like", "tweet_id": 5},
    ]
    wh.append("truth_ledger", ledger)
    rows = [
        dict(
            window_start=T,
            window_end=T + 10_000,
            tweet_id=5,
            event_type="like",
            count=c,
            pipeline="kappa_stream",
            emitted_at=T + 11_000 + i,
            pane=p,
            pane_index=i,
        )
        for i, (c, p) in enumerate([(1, "EARLY"), (2, "ON_TIME")])
    ]
    wh.append("kappa_stream", rows[:1])
    wh.append("kappa_stream", rows[1:])
    con = wh.connect(10_000)
    assert con.execute("select count(*) from kappa_stream").fetchone()[0] == 2
    assert con.execute("select count, pane from kappa_stream_current").fetchall() == [(2, "ON_TIME")]
    truth = con.execute(f"select epoch_ms(window_start) - {T}, count from truth order by 1").fetchall()
    assert truth == [(0, 2), (10_000, 1)]
    assert con.execute("select count(*) from legacy_batch").fetchone()[0] == 0  # empty known table
    assert not list(tmp_path.rglob(".*.tmp"))
