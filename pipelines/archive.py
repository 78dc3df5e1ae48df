"""The archive layout (DESIGN.md 2.2): raw lines partitioned by arrival time.

    <root>/dt=YYYY-MM-DD/hr=HH/[mi=MM/]part-<writer>-<seq>.jsonl[.gz]

The partition granularity is the batch period (the `mi=` level exists when the period
is shorter than an hour). A part is written under a hidden temporary name, fsynced and
renamed, so a reader never sees half a file. Reading goes through Beam's FileSystems
for `gs://` roots, so the same code serves local folders and Cloud Storage.
"""

from __future__ import annotations

import gzip
import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Iterable, Iterator

_PARTITION = re.compile(r"dt=(\d{4}-\d{2}-\d{2})/hr=(\d{2})(?:/mi=(\d{2}))?/part-[^/]+\.jsonl(?:\.gz)?$")


def partition_of(arrival_ms: int, period_s: float) -> str:
    """The partition folder (relative) of a record that arrived at `arrival_ms`."""
    period_ms = int(period_s * 1000)
    start = datetime.fromtimestamp((arrival_ms - arrival_ms % period_ms) / 1000, tz=UTC)
    folder = start.strftime("dt=%Y-%m-%d/hr=%H")
    return folder + start.strftime("/mi=%M") if period_s < 3600 else folder


def partition_start_ms(path: str) -> int | None:
    """Arrival-period start encoded in a part file's path, or None if not an archive part."""
    match = _PARTITION.search(path.replace(os.sep, "/"))
    if not match:
        return None
    day, hour, minute = match.groups()
    start = datetime.strptime(f"{day} {hour}:{minute or '00'}", "%Y-%m-%d %H:%M")
    return int(start.replace(tzinfo=UTC).timestamp() * 1000)


@dataclass(frozen=True)
class ArchivePart:
    path: str
    arrival_start_ms: int  # start of the arrival period the part belongs to


def list_parts(root: str, start_ms: int | None = None, end_ms: int | None = None) -> list[ArchivePart]:
    """Part files whose arrival period starts in [start_ms, end_ms), sorted by path."""
    if root.startswith("gs://"):
        from apache_beam.io.filesystems import FileSystems

        pattern = root.rstrip("/") + "/dt=*/**"
        paths = [m.path for r in FileSystems.match([pattern]) for m in r.metadata_list]
    else:
        base = Path(root)
        paths = [str(p) for p in base.rglob("part-*.jsonl*")] if base.exists() else []
    parts = []
    for path in sorted(paths):
        start = partition_start_ms(path)
        if start is None:
            continue
        if (start_ms is None or start >= start_ms) and (end_ms is None or start < end_ms):
            parts.append(ArchivePart(path, start))
    return parts


def read_part(path: str) -> bytes:
    """The whole (decompressed) content of one part, gzip or plain, local or gs://."""
    if path.startswith("gs://"):
        from apache_beam.io.filesystems import FileSystems

        raw = FileSystems.open(path).read()
    else:
        with open(path, "rb") as handle:
            raw = handle.read()
    return gzip.decompress(raw) if path.endswith(".gz") else raw


def read_lines(path: str) -> Iterator[bytes]:
    """The raw lines of one part (without the newline), gzip or plain, local or gs://.

    Every line is a record, an empty one too (an empty Kafka message is archived as an
    empty line, and every arm dead-letters it); only the final newline ends no record.
    """
    lines = read_part(path).split(b"\n")
    if lines[-1] == b"":
        lines.pop()
    yield from lines


class ArchiveWriter:
    """Writes batches of raw lines as closed part files under arrival-time partitions."""

    def __init__(self, root: str | os.PathLike[str], writer_id: str, period_s: float, compress: bool = False):
        self.root = Path(root)
        self.writer_id = writer_id
        self.period_s = period_s
        self.compress = compress
        self._seq = 0

    def write(self, partition: str, lines: Iterable[bytes]) -> Path:
        """Write one part holding `lines` in `partition`; returns its final path."""
        folder = self.root / partition
        folder.mkdir(parents=True, exist_ok=True)
        self._seq += 1
        suffix = ".jsonl.gz" if self.compress else ".jsonl"
        name = f"part-{self.writer_id}-{self._seq:08d}{suffix}"
        tmp = folder / f".{name}.tmp"
        body = b"".join(_one_line(line) + b"\n" for line in lines)
        with open(tmp, "wb") as handle:
            handle.write(gzip.compress(body, compresslevel=1) if self.compress else body)
            handle.flush()
            os.fsync(handle.fileno())
        final = folder / name
        os.replace(tmp, final)
        return final


def _one_line(raw: bytes) -> bytes:
    """A raw record as one archive line.

    Records are stored as received, except that a CR or LF (JSON whitespace between
    tokens) becomes a space so a record always stays on one line. Inside a string it
    could never be part of a valid event anyway: every string field is a UUID or an
    enumerated value, so the verdict of the parser is unchanged.
    """
    return raw.replace(b"\r", b" ").replace(b"\n", b" ")
