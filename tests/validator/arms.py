"""Arms with known differences of every class, and the archive that explains some.

Times follow config/demo.yaml: 10 s windows, 60 s batch periods, 120 s kappa lateness.
Period 0 starts at T0; its six windows hold the SAME keys and the special keys below.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from pipelines.archive import ArchiveWriter, partition_of
from pipelines.events import Interaction
from pipelines.rows import AGGREGATE_SCHEMA, table_from_rows

T0 = 1_767_571_200_000  # 2026-01-05T00:00:00Z, a period boundary
WINDOW_MS = 10_000
PERIOD_MS = 60_000
SAME_TWEETS = 50  # x 6 windows x 2 event types = 600 SAME keys

# key name -> (window index, tweet_id, event_type, left count or None, right count or None)
SPECIAL = {
    "late": (1, 9001, "like", 3, 5),  # archive: 3 in period + 2 a period later
    "dups": (2, 9002, "retweet", 6, 4),  # archive: 4 unique, 2 re-sent
    "unexplained": (3, 9003, "reply", 7, 9),  # archive: nothing
    "late_missing_left": (4, 9004, "quote", None, 2),  # archive: both events a period later
    "missing_right": (5, 9005, "click", 1, None),
    "missing_left": (0, 9006, "bookmark", None, 4),
}
EXPECTED_KEYS = {
    "total": 600 + 6,
    "same": 600,
    "different": 3,
    "missing_in_left": 2,
    "missing_in_right": 1,
    "pending": 0,
    "explained_late": 2,
    "explained_duplicates": 1,
    "unexplained": 3,
}


def agg_row(window: int, tweet: int, event_type: str, count: int, **extra: object) -> dict:
    start = T0 + window * WINDOW_MS
    row = {
        "window_start": start,
        "window_end": start + WINDOW_MS,
        "tweet_id": tweet,
        "event_type": event_type,
        "count": count,
        "pipeline": "test",
        "emitted_at": start + WINDOW_MS,
        "pane": "FINAL",
        "pane_index": 0,
    }
    row.update(extra)
    return row


def same_rows() -> list[dict]:
    return [
        agg_row(w, t, et, 1 + (t * 7 + w) % 5)
        for w in range(6)
        for t in range(1, SAME_TWEETS + 1)
        for et in ("impression", "like")
    ]


def arm_rows(side: str) -> list[dict]:
    rows = same_rows()
    for window, tweet, event_type, left, right in SPECIAL.values():
        count = left if side == "left" else right
        if count is not None:
            rows.append(agg_row(window, tweet, event_type, count))
    return rows


def expected_weighted() -> dict[str, int]:
    same = sum(r["count"] for r in same_rows())
    w = {k: max(v[3] or 0, v[4] or 0) for k, v in SPECIAL.items()}
    return {
        "total": same + sum(w.values()),
        "same": same,
        "different": w["late"] + w["dups"] + w["unexplained"],
        "missing_in_left": w["late_missing_left"] + w["missing_left"],
        "missing_in_right": w["missing_right"],
        "pending": 0,
        "explained_late": w["late"] + w["late_missing_left"],
        "explained_duplicates": w["dups"],
        "unexplained": w["unexplained"] + w["missing_right"] + w["missing_left"],
    }


def write_arm(path: Path, rows: list[dict], schema: pa.Schema = AGGREGATE_SCHEMA) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table_from_rows(rows, schema), path)
    return path


@dataclass
class ArchiveBuilder:
    root: Path
    lines: dict[str, list[bytes]] = field(default_factory=dict)

    def add(self, arrival_ms: int, line: bytes) -> None:
        self.lines.setdefault(partition_of(arrival_ms, PERIOD_MS / 1000), []).append(line)

    def event(self, window: int, tweet: int, event_type: str, arrival_ms: int, copies: int = 1) -> None:
        ev = Interaction(
            event_id=str(uuid.uuid4()),
            event_time=T0 + window * WINDOW_MS + 1_000,
            event_type=event_type,
            tweet_id=tweet,
            user_id=7,
            author_id=8,
            client="web",
        )
        for _ in range(copies):
            self.add(arrival_ms, ev.to_json())

    def write(self) -> Path:
        writer = ArchiveWriter(self.root, "test", PERIOD_MS / 1000, compress=False)
        for i, (partition, lines) in enumerate(sorted(self.lines.items())):
            half = len(lines) // 2  # two parts per partition, one gzipped
            writer.write(partition, lines[:half])
            ArchiveWriter(self.root, f"gz{i}", PERIOD_MS / 1000, compress=True).write(partition, lines[half:])
        return self.root


def build_archive(root: Path) -> Path:
    """Events behind the special keys, plus bad lines that must never count."""
    a = ArchiveBuilder(root)
    in_period, next_period = T0 + 30_000, T0 + PERIOD_MS + 5_000
    w, t, et, _, _ = SPECIAL["late"]
    for _ in range(3):
        a.event(w, t, et, in_period)
    for _ in range(2):
        a.event(w, t, et, next_period)
    w, t, et, _, _ = SPECIAL["dups"]
    for i in range(4):
        a.event(w, t, et, in_period, copies=2 if i < 2 else 1)
    w, t, et, _, _ = SPECIAL["late_missing_left"]
    for _ in range(2):
        a.event(w, t, et, next_period)
    # Bad lines shaped like events of the "late" key: none of them may count.
    good = Interaction(str(uuid.uuid4()), T0 + 11_000, "like", 9001, 7, 8, "web").to_json().decode()
    bad = [
        good.replace('"client":"web"', '"client":"fax"'),
        good.replace('"user_id":7', '"user_id":0'),
        good.replace('"user_id":7', '"user_id":7.0'),
        good.replace('"user_id":7', '"user_id":"7"'),
        good.replace('"user_id":7', '"user_id":99999999999999999999'),
        good.replace('"user_id":7,', ""),
        good.replace("}", ',"extra":1}'),
        good.replace("}", ',"user_id":7}'),
        good.replace(good[13:49], "not-a-uuid-at-all-not-a-uuid-at-all!"),
        good.replace(str(T0 + 11_000), str(T0 + 11_000 + 3 * 86_400_000)),
        good[:-1],
        "   ",
        "[1, 2, 3]",
        good.replace("}", ',"pad":"' + "x" * 70_000 + '"}'),
    ]
    for line in bad:
        a.add(in_period, line.encode())
    a.add(in_period, b"\xff\xfe not utf-8")
    return a.write()
