"""A local stand-in for Terraform's Pub/Sub Cloud Storage subscription (`archive`).

pstest has no Cloud Storage subscriptions, so on the emulators this writes the objects that
subscription would write, by its documented rules (CloudStorageConfig in the Pub/Sub API):

- name: `<filename_prefix><datetime in filename_datetime_format>_<uuid><filename_suffix>`,
  here "interactions/" + "YYYY-MM-DD/hh/mm_ssZ" + "_" + uuid + ".jsonl" (terraform/modules/pubsub);
  the datetime is the UTC time the object is started;
- batching: a new object once `max_duration` (60 s to 600 s, default 300 s) has passed or
  `max_bytes` (default 128 MiB, terraform's value) would be exceeded, whichever first;
- text format: each message's data verbatim, newline-terminated; an object appears only
  complete. A message holding a newline would be split into several lines, as by the real
  subscription: the bridge publishes every record in its one-line form (pipelines/events.py,
  `one_line`), which is what keeps a record one line here.

`max_duration` is an upper bound: the subscription may start an object sooner. With
`gcp.archive_aligned_to_period` the stand-in also starts one at each batch-period boundary, so
no object spans two periods (the demo's profile sets it; the real subscription does not
promise it, and the readers then take an object's arrivals as spanning `max_duration`:
pipelines/archive.py, `ArrivalSpans`). `max_duration` is `gcp.archive_max_duration`.

Only the local wiring uses it; the readers (pipelines/archive.py) are the cloud code.
"""

from __future__ import annotations

import json
import signal
import time
import uuid
from typing import Any, Callable, Iterable

import click

from pipelines.archive import subscription_object_name
from pipelines.cli_common import exit_when_idle_option, with_config
from pipelines.config import MAX_DURATION_S, Config
from pipelines.errors import ConfigError
from pipelines.events import now_ms
from pipelines.gcs_io import write_bytes

SUBSCRIPTION = "archive"
ACK_DEADLINE_S = 300  # terraform/modules/pubsub: the archive subscription's ack deadline
MAX_BYTES = 134_217_728


class SubscriptionObjectWriter:
    """Collects message bodies and writes them as Cloud Storage subscription objects."""

    def __init__(
        self,
        root: str,
        max_duration_s: float = MAX_DURATION_S,
        max_bytes: int = MAX_BYTES,
        period_ms: int = 0,
    ) -> None:
        if not root.startswith("gs://"):
            raise ValueError(f"{root!r}: the subscription writes to gs:// only")
        self.root = root if root.endswith("/") else root + "/"
        self.max_duration_ms = int(max_duration_s * 1000)
        self.max_bytes = max_bytes
        self.period_ms = period_ms  # > 0: also a new object at each multiple of it
        self._lines: list[bytes] = []
        self._size = 0
        self._started_ms: int | None = None

    def add(self, body: bytes, at_ms: int | None = None) -> list[str]:
        """Buffer one message; returns the objects this closed (at most one)."""
        at_ms = now_ms() if at_ms is None else at_ms
        size = len(body) + 1
        written = []
        if self._started_ms is not None and (
            at_ms - self._started_ms >= self.max_duration_ms
            or self._size + size > self.max_bytes
            or self._crosses_period(at_ms)
        ):
            written.append(self.flush())
        if self._started_ms is None:
            self._started_ms = at_ms
        self._lines.append(body)
        self._size += size
        return written

    def _crosses_period(self, at_ms: int) -> bool:
        started = self._started_ms
        return (
            bool(self.period_ms)
            and started is not None
            and at_ms // self.period_ms != started // self.period_ms
        )

    def due(self, at_ms: int | None = None) -> bool:
        at_ms = now_ms() if at_ms is None else at_ms
        if self._started_ms is None:
            return False
        return at_ms - self._started_ms >= self.max_duration_ms or self._crosses_period(at_ms)

    def flush(self) -> str:
        """Write the buffered messages as one object; returns its gs:// name ("" if none)."""
        if self._started_ms is None:
            return ""
        uri = write_object(self.root, self._lines, self._started_ms)
        self._lines, self._size, self._started_ms = [], 0, None
        return uri


def object_body(bodies: Iterable[bytes]) -> bytes:
    """What the subscription writes for these messages: each one's data as is, newline-terminated."""
    return b"".join(raw + b"\n" for raw in bodies)


def write_object(root: str, bodies: Iterable[bytes], started_ms: int) -> str:
    """One subscription object holding the message `bodies`, one per line."""
    body = object_body(bodies)
    bucket_root = root.removeprefix("gs://")
    bucket, _, prefix = bucket_root.partition("/")
    name = subscription_object_name(prefix, started_ms, str(uuid.uuid4()))
    uri = f"gs://{bucket}/{name}"
    write_bytes(uri, body, content_type="text/plain")
    return uri


def run_stand_in(
    config: Config,
    max_duration_s: float | None = None,
    exit_when_idle: float | None = None,
    stop: Callable[[], bool] = lambda: False,
) -> int:
    """Pull `archive` and write its messages as subscription objects under
    `gcp.archive_root`; a message is acked only once the object holding it exists
    (at least once, as the real subscription). Returns the number of messages written.
    `max_duration_s` defaults to `gcp.archive_max_duration`; the readers assume that bound,
    so a longer one is refused."""
    from pipelines.pubsub_io import create_subscription, subscriber

    if config.gcp is None:
        raise ConfigError(f"{config.source}: archive-gcs needs the cloud profile (a `gcp` section)")
    configured = config.gcp.archive_max_duration
    max_duration_s = configured if max_duration_s is None else max_duration_s
    if not 60 <= max_duration_s <= min(ACK_DEADLINE_S, configured):
        raise ConfigError(
            f"--max-duration {max_duration_s:g}s: the stand-in allows 60s to {ACK_DEADLINE_S}s (its ack "
            f"deadline) and at most gcp.archive_max_duration {configured:g}s (what the readers assume)"
        )
    path = create_subscription(config, SUBSCRIPTION, ACK_DEADLINE_S)
    client = subscriber(config)
    period_ms = config.time.period_ms if config.gcp.archive_aligned_to_period else 0
    writer = SubscriptionObjectWriter(config.gcp.archive_root, max_duration_s, period_ms=period_ms)
    held: list[str] = []
    written, idle_since = 0, time.monotonic()
    while not stop():
        response = client.pull(request={"subscription": path, "max_messages": 1000}, timeout=30)
        for received in response.received_messages:
            if writer.add(received.message.data):  # closed an object: everything held before is in it
                written += _ack(client, path, held)
            held.append(received.ack_id)
        if response.received_messages:
            idle_since = time.monotonic()
        if writer.due():
            writer.flush()
            written += _ack(client, path, held)
        if exit_when_idle is not None and time.monotonic() - idle_since >= exit_when_idle:
            break
    writer.flush()
    return written + _ack(client, path, held)


def _ack(client: Any, path: str, held: list[str]) -> int:
    count = len(held)
    for start in range(0, count, 1000):
        client.acknowledge(request={"subscription": path, "ack_ids": held[start : start + 1000]})
    held.clear()
    return count


@click.command("archive-gcs")
@exit_when_idle_option
@click.option("--max-duration", type=float,
              help="Seconds before a new object is started; default: gcp.archive_max_duration.")  # fmt: skip
@with_config
def archive_gcs(config: Config, exit_when_idle: float | None, max_duration: float | None) -> None:
    """Write Pub/Sub `archive` as the Cloud Storage subscription's objects (local stand-in);
    with gcp.archive_aligned_to_period also a new object at each batch-period boundary."""
    stopping: list[bool] = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    written = run_stand_in(config, max_duration, exit_when_idle, lambda: bool(stopping))
    click.echo(json.dumps({"archived": written}))
