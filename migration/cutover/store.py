"""Where the cutover state and its audit log live, behind one small interface.

`load() -> (state, generation)` and `save(state, expected_generation) -> generation` with
compare-and-swap semantics: a save whose expected generation is no longer current raises
ConflictError, so two writers can never both win. `save` also appends the state's last
transition to the append-only audit log; `history()` reads that log back.

- LocalStateStore: `<dir>/state.json` (atomic replace), `<dir>/audit.jsonl`, guarded by an
  fcntl lock on `<dir>/state.lock`; the generation is a counter kept in state.json.
- GcsStateStore: one object `<prefix>/state.json` written with `if_generation_match`
  (the object's generation is the CAS token) and one create-only object per audit entry.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from pathlib import Path
from typing import Any, Iterator, Protocol

from migration.cutover.model import CutoverState, Transition
from pipelines.errors import ConflictError, InputError, KappaError


class StateStore(Protocol):
    def load(self) -> tuple[CutoverState, int]: ...

    def save(self, state: CutoverState, expected_generation: int) -> int: ...

    def history(self) -> list[Transition]: ...

    def describe(self) -> str: ...


def _encode(payload: dict[str, Any]) -> bytes:
    return (json.dumps(payload, sort_keys=True) + "\n").encode()


def _conflict(expected: int, current: int, where: str) -> ConflictError:
    return ConflictError(
        f"cutover state in {where} changed while you were deciding (expected generation {expected}, "
        f"now {current}): someone else moved it; run `kappactl cutover status` and retry"
    )


class LocalStateStore:
    """State in a local folder (default: `<warehouse>/../cutover`)."""

    def __init__(self, directory: str | os.PathLike[str]):
        self.directory = Path(directory)
        self.state_path = self.directory / "state.json"
        self.audit_path = self.directory / "audit.jsonl"
        self.lock_path = self.directory / "state.lock"

    def describe(self) -> str:
        return str(self.directory)

    def load(self) -> tuple[CutoverState, int]:
        raw = self._read_raw()
        if raw is None:
            return CutoverState(), 0
        return CutoverState.from_json(raw["state"]), int(raw["generation"])

    def _read_raw(self) -> dict[str, Any] | None:
        try:
            text = self.state_path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        try:
            raw = json.loads(text)
            int(raw["generation"])
            raw["state"]["stage"]
        except (ValueError, KeyError, TypeError) as exc:
            raise InputError(f"{self.state_path} is not a cutover state file ({exc})") from exc
        return raw

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # released by the kernel even if we crash
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def save(self, state: CutoverState, expected_generation: int) -> int:
        with self._locked():
            raw = self._read_raw()
            current = int(raw["generation"]) if raw else 0
            if current != expected_generation:
                raise _conflict(expected_generation, current, str(self.state_path))
            if raw:  # a writer that crashed between replace and append left its entry out
                self._append_audit(CutoverState.from_json(raw["state"]).last_transition)
            generation = current + 1
            self._replace_state({"generation": generation, "state": state.as_json()})
            self._append_audit(state.last_transition)
            return generation

    def _replace_state(self, payload: dict[str, Any]) -> None:
        tmp = self.directory / f".state.json.{os.getpid()}.tmp"
        with open(tmp, "wb") as handle:
            handle.write(_encode(payload))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self.state_path)
        dir_fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def _last_audit_seq(self) -> int:
        entries = self.history()
        return entries[-1].seq if entries else 0

    def _append_audit(self, entry: Transition | None) -> None:
        if entry is None or entry.seq <= self._last_audit_seq():
            return
        with open(self.audit_path, "ab") as handle:
            handle.write(_encode(entry.as_json()))
            handle.flush()
            os.fsync(handle.fileno())

    def history(self) -> list[Transition]:
        try:
            lines = self.audit_path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return []
        entries = []
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                entries.append(Transition.from_json(json.loads(line)))
            except (ValueError, TypeError) as exc:
                raise InputError(f"{self.audit_path}:{number}: unreadable audit entry ({exc})") from exc
        return entries


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
        from pipelines.gcs_io import split_uri, storage_client

        bucket_name, prefix = split_uri(uri)
        return cls(storage_client().bucket(bucket_name), prefix or "cutover")

    def describe(self) -> str:
        return f"gs://{self.bucket.name}/{self.prefix}"

    @contextlib.contextmanager
    def _translated(self, what: str) -> Iterator[None]:
        try:
            yield
        except KappaError:
            raise
        except Exception as exc:  # noqa: BLE001 - Cloud Storage errors, translated where they enter
            from pipelines.gcs_io import translate

            raise translate(exc, f"{what} {self.describe()}/state.json") from exc

    def load(self) -> tuple[CutoverState, int]:
        with self._translated("reading"):
            return self._load()

    def save(self, state: CutoverState, expected_generation: int) -> int:
        with self._translated("writing"):
            return self._save(state, expected_generation)

    def history(self) -> list[Transition]:
        with self._translated("reading the audit of"):
            return self._history()

    def _load(self) -> tuple[CutoverState, int]:
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
                return CutoverState(), 0
            try:
                data = blob.download_as_bytes(if_generation_match=blob.generation)
                break
            except (PreconditionFailed, DataCorruption):
                continue
        else:
            raise ConflictError(f"{self.describe()}/state.json keeps changing: retry")
        try:
            raw = json.loads(data)
        except ValueError as exc:
            raise InputError(f"{self.describe()}/state.json is not JSON ({exc})") from exc
        return CutoverState.from_json(raw["state"]), int(blob.generation)

    def _save(self, state: CutoverState, expected_generation: int) -> int:
        from google.api_core.exceptions import PreconditionFailed

        blob = self.bucket.blob(self.state_name)
        try:
            blob.upload_from_string(
                _encode({"state": state.as_json()}),
                content_type="application/json",
                if_generation_match=expected_generation,
            )
        except PreconditionFailed as exc:
            current = self.bucket.get_blob(self.state_name)
            raise _conflict(
                expected_generation, current.generation if current else 0, self.describe()
            ) from exc
        self._append_audit(state.last_transition)
        return int(blob.generation)

    def _append_audit(self, entry: Transition | None) -> None:
        from google.api_core.exceptions import PreconditionFailed

        if entry is None:
            return
        blob = self.bucket.blob(f"{self.prefix}/audit/{entry.seq:08d}.json")
        with contextlib.suppress(PreconditionFailed):  # already written: entries are immutable
            blob.upload_from_string(
                _encode(entry.as_json()), content_type="application/json", if_generation_match=0
            )

    def _history(self) -> list[Transition]:
        state, _ = self._load()
        self._append_audit(state.last_transition)  # repair an entry a crashed writer left out
        blobs = sorted(self.bucket.list_blobs(prefix=f"{self.prefix}/audit/"), key=lambda b: b.name)
        return [Transition.from_json(json.loads(b.download_as_bytes())) for b in blobs]


def open_store(location: str) -> StateStore:
    """A store for `gs://bucket/prefix` or a local folder."""
    if location.startswith("gs://"):
        return GcsStateStore.from_uri(location)
    return LocalStateStore(location)


def default_state_location(warehouse_root: str | os.PathLike[str]) -> str:
    """Local state lives beside the warehouse: `<warehouse>/../cutover`."""
    return str(Path(warehouse_root).resolve().parent / "cutover")
