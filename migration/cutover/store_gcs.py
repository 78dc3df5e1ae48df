"""The cutover state in a GCS bucket: one object `<prefix>/state.json` written with
`if_generation_match` (the object's generation is the compare-and-swap token) and one
create-only object per audit entry, `<prefix>/audit/<seq>.json`.

A writer can die between the state upload and the audit upload: the state then holds the
entry the log lacks, and the next save (or a history read) writes it before anything else,
so no entry is lost for good.
"""

from __future__ import annotations

import contextlib
import logging
import time
from contextlib import AbstractContextManager
from typing import Any

from migration.cutover.model import CutoverState, Transition
from migration.cutover.records import (
    Current,
    check_not_behind,
    conflict,
    damage_message,
    read_entry,
    read_state,
    rebuilt,
    seal,
)
from pipelines.errors import ConflictError, InputError
from pipelines.gcs_io import split_uri, storage_client, storage_errors

log = logging.getLogger(__name__)


class GcsStateStore:
    """State in a GCS bucket: `bucket` is a google.cloud.storage Bucket. Cloud Storage and
    connection errors become one-line InputError/StackError (what to fix), never a traceback."""

    def __init__(self, bucket: Any, prefix: str = "cutover"):
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.state_name = f"{self.prefix}/state.json"

    @classmethod
    def from_uri(cls, uri: str) -> GcsStateStore:
        """`gs://bucket/prefix` with the default Google credentials (anonymous against the
        emulator named by STORAGE_EMULATOR_HOST)."""
        bucket_name, prefix = split_uri(uri)
        return cls(storage_client().bucket(bucket_name), prefix or "cutover")

    def describe(self) -> str:
        return f"gs://{self.bucket.name}/{self.prefix}"

    def _translated(self, what: str) -> AbstractContextManager[None]:
        return storage_errors(f"{what} {self.describe()}/state.json")

    def load(self) -> tuple[CutoverState, int]:
        with self._translated("reading"):
            return self._current().readable()

    def current(self) -> Current:
        with self._translated("reading"):
            return self._current()

    def save(self, state: CutoverState, expected_generation: int) -> int:
        with self._translated("writing"):
            return self._save(state, expected_generation)

    def history(self) -> list[Transition]:
        with self._translated("reading the audit of"):
            return self._history()

    def _audit_name(self, seq: int) -> str:
        return f"{self.prefix}/audit/{seq:08d}.json"

    def _read_state_object(self) -> tuple[int, bytes | None]:
        """(generation, bytes) of the state object; (0, None) if there is none."""
        from google.api_core.exceptions import PreconditionFailed
        from google.cloud.storage.exceptions import DataCorruption

        # The object may be replaced between the metadata read and the download: the
        # generation precondition refuses that, or (fake-gcs-server checks the precondition
        # before it reads the bytes) the body's checksum does not match its header. Either
        # way, read again.
        for _ in range(5):
            blob = self.bucket.get_blob(self.state_name)
            if blob is None:
                if not self.bucket.exists():  # a misspelt bucket is not a fresh SHADOW state
                    raise InputError(
                        f"{self.describe()}: bucket not found; check the name or create it (Terraform, `kappactl up`)"
                    )
                return 0, None
            try:
                return int(blob.generation), blob.download_as_bytes(if_generation_match=blob.generation)
            except (PreconditionFailed, DataCorruption):
                continue
        raise ConflictError(f"{self.describe()}/state.json keeps changing: retry")

    def _current(self) -> Current:
        # The state object is written before its audit object: an audit object past the
        # state read means either a writer moved on meanwhile (read again) or a state
        # behind the log.
        for _ in range(5):
            generation, data = self._read_state_object()
            if (judged := self._judge(generation, data)) is not None:
                return judged
        raise ConflictError(f"{self.describe()}/state.json keeps changing: retry")

    def _judge(self, generation: int, data: bytes | None) -> Current | None:
        """What the state read says, or None if it changed under the read."""
        where = f"{self.describe()}/state.json"
        if data is None:
            if (last := self._last_audited()) is None:
                return Current(CutoverState(), 0)
            if self._moved(generation):
                return None
            problem = f"{where} is missing but the audit log records transitions"
            return Current(rebuilt(last), 0, damage_message(problem, last))
        try:
            state, _ = read_state(data, where, with_generation=False)
        except InputError as exc:
            last = self._last_audited()
            return Current(rebuilt(last), generation, damage_message(str(exc), last))
        if not self.bucket.blob(self._audit_name(state.seq + 1)).exists():  # one read, not a listing
            return Current(state, generation)
        if self._moved(generation):
            return None
        last = self._last_audited()
        problem = f"{where} is at transition {state.seq}, behind the audit log (an old copy?)"
        return Current(rebuilt(last), generation, damage_message(problem, last))

    def _moved(self, generation: int) -> bool:
        blob = self.bucket.get_blob(self.state_name)
        return (int(blob.generation) if blob is not None else 0) != generation

    def _audit_blobs(self) -> list[Any]:
        return sorted(self.bucket.list_blobs(prefix=f"{self.prefix}/audit/"), key=lambda b: b.name)

    def _last_audited(self) -> Transition | None:
        """The last audit entry that reads (a damaged object is passed over), or None."""
        for blob in reversed(self._audit_blobs()):
            with contextlib.suppress(InputError):
                return read_entry(blob.download_as_bytes(), f"gs://{self.bucket.name}/{blob.name}")
        return None

    def _save(self, state: CutoverState, expected_generation: int) -> int:
        from google.api_core.exceptions import PreconditionFailed

        now = self._current()
        if now.generation != expected_generation:
            raise conflict(expected_generation, now.generation, self.describe())
        last = self._last_audited()
        if now.damage is None:  # a writer that died between its two uploads left this entry out
            last = self._append_audit(now.state.last_transition, last)
        check_not_behind(state, last, f"{self.describe()}/audit")
        if now.damage and now.generation:
            self._keep_damaged(now.generation)
        blob = self.bucket.blob(self.state_name)
        try:
            blob.upload_from_string(
                seal({"state": state.as_json()}),
                content_type="application/json",
                if_generation_match=expected_generation,
            )
        except PreconditionFailed as exc:
            current = self.bucket.get_blob(self.state_name)
            raise conflict(
                expected_generation, current.generation if current else 0, self.describe()
            ) from exc
        self._append_audit(state.last_transition, last)
        return int(blob.generation)

    def _keep_damaged(self, generation: int) -> None:
        name = f"{self.state_name}.damaged-{time.time_ns() // 1_000_000}"
        source = self.bucket.blob(self.state_name)
        self.bucket.copy_blob(source, self.bucket, name, source_generation=generation)
        log.warning("cutover state %s/state.json was damaged: kept as %s", self.describe(), name)

    def _append_audit(self, entry: Transition | None, last: Transition | None) -> Transition | None:
        """Write `entry` unless the log already has it; the log's last entry after."""
        from google.api_core.exceptions import PreconditionFailed

        if entry is None or (last is not None and entry.seq <= last.seq):
            return last
        blob = self.bucket.blob(self._audit_name(entry.seq))
        with contextlib.suppress(PreconditionFailed):  # already written: entries are immutable
            blob.upload_from_string(
                seal(entry.as_json()), content_type="application/json", if_generation_match=0
            )
        return entry

    def _history(self) -> list[Transition]:
        now = self._current()
        if now.damage is None:  # repair an entry a crashed writer left out
            self._append_audit(now.state.last_transition, self._last_audited())
        return [
            read_entry(b.download_as_bytes(), f"gs://{self.bucket.name}/{b.name}")
            for b in self._audit_blobs()
        ]
