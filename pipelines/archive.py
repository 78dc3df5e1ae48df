"""The archive layouts (DESIGN.md 2.2): raw lines by arrival time, in one of two namings.

Local archiver (pipelines/source/archiver.py):

    <root>/dt=YYYY-MM-DD/hr=HH/[mi=MM/]part-<writer>-<seq>.jsonl[.gz]

The partition granularity is the batch period (the `mi=` level exists when the period
is shorter than an hour). A part is written under a hidden temporary name, fsynced and
renamed, so a reader never sees half a file.

Pub/Sub Cloud Storage subscription (terraform/modules/pubsub, `filename_datetime_format`
"YYYY-MM-DD/hh/mm_ssZ"):

    gs://<bucket>/<filename_prefix>YYYY-MM-DD/hh/mm_ssZ_<uuid><filename_suffix>

The datetime is Pub/Sub's UTC time for the object (the time it was started), to the second;
an object collects up to `max_duration` of messages, so its lines may have arrived up to
`max_duration` later, in the next period (terraform/README.md, "Archive layout").

The arrival rule, the one every reader applies (`ArrivalSpans`): a part's lines arrived in
its arrival interval [arrival_start_ms, arrival_end_ms) -- a local partition's period; a
subscription object's [object time, object time + 1 s + max_duration) (the name's time is
cut to the second), cut at the end of the object's period when the objects are aligned to
periods. A reader of the arrivals of
[start, end) reads every part whose interval overlaps it (`list_parts`).
Both namings are read by the same functions; `gs://` roots go through google-cloud-storage
(pipelines/gcs_io.py), which honours STORAGE_EMULATOR_HOST.
"""

from __future__ import annotations

import gzip
import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Iterable, Iterator

from isal import igzip

from pipelines.config import MAX_DURATION_S, Config, seconds_to_ms
from pipelines.events import one_line

_PARTITION = re.compile(r"dt=(\d{4}-\d{2}-\d{2})/hr=(\d{2})(?:/mi=(\d{2}))?/part-[^/]+\.jsonl(?:\.gz)?$")
# The Cloud Storage subscription's objects: <prefix>YYYY-MM-DD/hh/mm_ssZ_<uuid>.jsonl
_SUBSCRIPTION_OBJECT = re.compile(
    r"(?:^|/)(\d{4}-\d{2}-\d{2})/(\d{2})/(\d{2})_(\d{2})Z_[0-9A-Za-z-]+\.jsonl$"
)


def partition_of(arrival_ms: int, period_s: float) -> str:
    """The partition folder (relative) of a record that arrived at `arrival_ms`."""
    period_ms = int(period_s * 1000)
    start = datetime.fromtimestamp((arrival_ms - arrival_ms % period_ms) / 1000, tz=UTC)
    folder = start.strftime("dt=%Y-%m-%d/hr=%H")
    return folder + start.strftime("/mi=%M") if period_s < 3600 else folder


def partition_start_ms(path: str) -> int | None:
    """Arrival time encoded in a part's path, or None if it is not an archive part: the
    partition start for the local layout, the object's own time for the subscription's."""
    path = path.replace(os.sep, "/")
    match = _PARTITION.search(path)
    if match:
        day, hour, minute = match.groups()
        stamp = f"{day} {hour}:{minute or '00'}:00"
    else:
        match = _SUBSCRIPTION_OBJECT.search(path)
        if not match:
            return None
        day, hour, minute, second = match.groups()
        stamp = f"{day} {hour}:{minute}:{second}"
    try:
        start = datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S")
    except ValueError:  # 2025-13-40/99/...: named like a part, but no instant
        return None
    return int(start.replace(tzinfo=UTC).timestamp() * 1000)


def subscription_object_name(prefix: str, arrival_ms: int, object_id: str) -> str:
    """The object name the Cloud Storage subscription gives a file created at `arrival_ms`
    (filename_datetime_format "YYYY-MM-DD/hh/mm_ssZ", filename_suffix ".jsonl")."""
    stamp = datetime.fromtimestamp(arrival_ms // 1000, tz=UTC).strftime("%Y-%m-%d/%H/%M_%SZ")
    return f"{prefix}{stamp}_{object_id}.jsonl"


NAME_RESOLUTION_MS = 1_000  # an object's name gives its time to the second, cut


@dataclass(frozen=True)
class ArrivalSpans:
    """How long the arrivals of one part span (see the module doc)."""

    period_ms: int  # a local partition: the batch period
    object_ms: int = seconds_to_ms(MAX_DURATION_S)  # a subscription object: its max_duration
    aligned: bool = False  # objects never span a period boundary (the stand-in's alignment)

    def interval(self, path: str) -> tuple[int, int] | None:
        """[arrival_start_ms, arrival_end_ms) of the part at `path`, None if not a part."""
        start = partition_start_ms(path)
        if start is None:
            return None
        period_end = start - start % self.period_ms + self.period_ms
        if _PARTITION.search(path.replace(os.sep, "/")):
            return start, period_end
        end = start + NAME_RESOLUTION_MS + self.object_ms
        return start, min(end, period_end) if self.aligned else end


def arrival_spans(config: Config) -> ArrivalSpans:
    """The arrival rule of `config`'s archive: the batch period, and the `gcp` section's
    `archive_max_duration` and `archive_aligned_to_period` (Terraform's defaults without it)."""
    gcp = config.gcp
    if gcp is None:
        return ArrivalSpans(config.time.period_ms)
    return ArrivalSpans(
        config.time.period_ms, seconds_to_ms(gcp.archive_max_duration), gcp.archive_aligned_to_period
    )


@dataclass(frozen=True)
class ArchivePart:
    path: str
    arrival_start_ms: int  # the part's arrival interval [start, end): see ArrivalSpans
    arrival_end_ms: int
    size: int = 0  # bytes as stored (compressed, for a gzip part)


def list_parts(
    root: str, start_ms: int | None = None, end_ms: int | None = None, *, spans: ArrivalSpans
) -> list[ArchivePart]:
    """Parts whose arrival interval overlaps [start_ms, end_ms), by path."""
    if root.startswith("gs://"):
        from pipelines.gcs_io import list_objects

        objects = list_objects(root)
    else:
        base = Path(root)
        objects = [(str(p), p.stat().st_size) for p in base.rglob("part-*.jsonl*")] if base.exists() else []
    parts = []
    for path, size in sorted(objects):
        interval = spans.interval(path)
        if interval is None:
            continue
        first, end = interval
        if (start_ms is None or end > start_ms) and (end_ms is None or first < end_ms):
            parts.append(ArchivePart(path, first, end, size))
    return parts


def read_part(path: str) -> bytes:
    """The whole (decompressed) content of one part, gzip or plain, local or gs://."""
    if path.startswith("gs://"):
        from pipelines.gcs_io import read_bytes

        raw = read_bytes(path)
    else:
        with open(path, "rb") as handle:
            raw = handle.read()
    return igzip.decompress(raw) if path.endswith(".gz") else raw


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
        body = b"".join(one_line(line) + b"\n" for line in lines)  # the form every arm reads
        with open(tmp, "wb") as handle:
            handle.write(gzip.compress(body, compresslevel=1) if self.compress else body)
            handle.flush()
            os.fsync(handle.fileno())
        final = folder / name
        os.replace(tmp, final)
        return final
