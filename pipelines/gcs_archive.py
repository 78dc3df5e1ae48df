"""A local stand-in for Terraform's Pub/Sub Cloud Storage subscription (`archive`).

pstest has no Cloud Storage subscriptions, so on the emulators this writes the objects that
subscription would write, by its documented rules (CloudStorageConfig in the Pub/Sub API):

- name: `<filename_prefix><datetime in filename_datetime_format>_<uuid><filename_suffix>`,
  here "interactions/" + "YYYY-MM-DD/hh/mm_ssZ" + "_" + uuid + ".jsonl" (terraform/modules/pubsub);
  the datetime is the UTC time the object is started;
- batching: a new object once `max_duration` (60 s to 600 s, default 300 s) has passed or
  `max_bytes` (default 128 MiB, terraform's value) would be exceeded, whichever first;
- text format: each message's data, newline-terminated; an object appears only complete.

Only the local wiring uses it; the readers (pipelines/archive.py) are the cloud code.
"""

from __future__ import annotations

import uuid
from typing import Iterable

from pipelines.archive import one_line, subscription_object_name
from pipelines.events import now_ms
from pipelines.gcs_io import write_bytes

MAX_DURATION_S = 300.0
MAX_BYTES = 134_217_728


class SubscriptionObjectWriter:
    """Collects message bodies and writes them as Cloud Storage subscription objects."""

    def __init__(self, root: str, max_duration_s: float = MAX_DURATION_S, max_bytes: int = MAX_BYTES) -> None:
        if not root.startswith("gs://"):
            raise ValueError(f"{root!r}: the subscription writes to gs:// only")
        self.root = root if root.endswith("/") else root + "/"
        self.max_duration_ms = int(max_duration_s * 1000)
        self.max_bytes = max_bytes
        self._lines: list[bytes] = []
        self._size = 0
        self._started_ms: int | None = None

    def add(self, body: bytes, at_ms: int | None = None) -> list[str]:
        """Buffer one message; returns the objects this closed (at most one)."""
        at_ms = now_ms() if at_ms is None else at_ms
        size = len(body) + 1
        written = []
        if self._started_ms is not None and (
            at_ms - self._started_ms >= self.max_duration_ms or self._size + size > self.max_bytes
        ):
            written.append(self.flush())
        if self._started_ms is None:
            self._started_ms = at_ms
        self._lines.append(body)
        self._size += size
        return written

    def due(self, at_ms: int | None = None) -> bool:
        at_ms = now_ms() if at_ms is None else at_ms
        return self._started_ms is not None and at_ms - self._started_ms >= self.max_duration_ms

    def flush(self) -> str:
        """Write the buffered messages as one object; returns its gs:// name ("" if none)."""
        if self._started_ms is None:
            return ""
        uri = write_object(self.root, self._lines, self._started_ms)
        self._lines, self._size, self._started_ms = [], 0, None
        return uri


def write_object(root: str, bodies: Iterable[bytes], started_ms: int) -> str:
    """One subscription object holding the message `bodies`, one per line."""
    body = b"".join(one_line(raw) + b"\n" for raw in bodies)
    bucket_root = root.removeprefix("gs://")
    bucket, _, prefix = bucket_root.partition("/")
    name = subscription_object_name(prefix, started_ms, str(uuid.uuid4()))
    uri = f"gs://{bucket}/{name}"
    write_bytes(uri, body, content_type="text/plain")
    return uri
