"""Where the cutover state and its audit log live, behind one small interface.

`load() -> (state, generation)` and `save(state, expected_generation) -> generation` with
compare-and-swap semantics: a save whose expected generation is no longer current raises
ConflictError, so two writers can never both win. `save` also appends the state's last
transition to the append-only audit log; `history()` reads that log back.

- LocalStateStore: `<dir>/state.json` (atomic replace), `<dir>/audit.jsonl`, guarded by an
  fcntl lock on `<dir>/state.lock`; the generation is a counter kept in state.json.
- GcsStateStore (store_gcs.py): one object `<prefix>/state.json` written with
  `if_generation_match` (the object's generation is the CAS token) and one create-only
  object per audit entry.

Both write the state first and its audit entry after; both seal each record with a digest
(records.py). `current()` says what the store holds: a state.json that is unreadable, lost
while the audit log has entries, or behind the log is not read as a fresh SHADOW: `load()`
raises InputError saying so and how to recover, and a rollback (`controller.rollback`)
rebuilds the state from the last good audit entry. A torn last audit line (a writer died
mid-append) is skipped by readers and moved aside by the next save.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any, Iterator, Protocol

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
from migration.cutover.store_gcs import GcsStateStore
from pipelines.errors import InputError

__all__ = ["GcsStateStore", "LocalStateStore", "StateStore", "default_state_location", "open_store"]
log = logging.getLogger(__name__)


class StateStore(Protocol):
    def load(self) -> tuple[CutoverState, int]: ...

    def current(self) -> Current: ...

    def save(self, state: CutoverState, expected_generation: int) -> int: ...

    def history(self) -> list[Transition]: ...

    def describe(self) -> str: ...


class LocalStateStore:
    """State in a local folder (default: `<warehouse>/../cutover`)."""

    def __init__(self, directory: str | os.PathLike[str]):
        self.directory = Path(directory)
        self.state_path = self.directory / "state.json"
        self.audit_path = self.directory / "audit.jsonl"
        self.lock_path = self.directory / "state.lock"
        self.torn_path = self.directory / "audit.jsonl.torn"  # lines taken off the log's end, kept

    def describe(self) -> str:
        return str(self.directory)

    def load(self) -> tuple[CutoverState, int]:
        return self.current().readable()

    def current(self) -> Current:
        """The state as written; rebuilt from the audit log (with the damage said) when
        state.json is unreadable, lost while the log has entries, or behind the log."""
        last = _last_good(self._audit_bytes(), str(self.audit_path))
        try:
            data = self.state_path.read_bytes()
        except FileNotFoundError:
            if last is None:
                return Current(CutoverState(), 0)
            problem = f"{self.state_path} is missing but the audit log records transitions"
            return Current(rebuilt(last), last.seq, damage_message(problem, last))
        try:
            state, generation = read_state(data, str(self.state_path), with_generation=True)
        except InputError as exc:
            return Current(rebuilt(last), last.seq if last else 0, damage_message(str(exc), last))
        assert generation is not None
        if last is not None and state.seq < last.seq:
            problem = f"{self.state_path} is at transition {state.seq}, behind the audit log (an old copy?)"
            return Current(rebuilt(last), max(generation, last.seq), damage_message(problem, last))
        return Current(state, generation)

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
            now = self.current()
            if now.generation != expected_generation:
                raise conflict(expected_generation, now.generation, str(self.state_path))
            last = self._repair_tail()
            if now.damage is None:  # a writer that crashed between replace and append left its entry out
                last = self._append_audit(now.state.last_transition, last)
            check_not_behind(state, last, str(self.audit_path))
            if now.damage and self.state_path.exists():
                self._keep_damaged()
            generation = now.generation + 1
            self._replace_state({"generation": generation, "state": state.as_json()})
            self._append_audit(state.last_transition, last)
            return generation

    def _keep_damaged(self) -> None:
        kept = self.directory / f"state.json.damaged-{time.time_ns() // 1_000_000}"
        os.replace(self.state_path, kept)
        log.warning(
            "cutover state %s was damaged: kept as %s, rebuilt from the audit log", self.state_path, kept
        )

    def _replace_state(self, payload: dict[str, Any]) -> None:
        tmp = self.directory / f".state.json.{os.getpid()}.{threading.get_ident()}.tmp"
        with open(tmp, "wb") as handle:
            handle.write(seal(payload))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self.state_path)
        _fsync_dir(self.directory)

    def _audit_bytes(self) -> bytes:
        try:
            return self.audit_path.read_bytes()
        except FileNotFoundError:
            return b""

    def _repair_tail(self) -> Transition | None:
        """The log's last good entry, after moving a torn or damaged last line (a writer that
        died mid-append) to audit.jsonl.torn: the next append must not be glued onto it, and
        the entry it held is in state.json, which re-appends it."""
        while True:
            data = self._audit_bytes()
            start, line = _last_line(data)
            if line is None:
                return None
            try:
                entry = read_entry(line, f"{self.audit_path} (last line)")
            except InputError as exc:
                log.warning("%s: skipping a torn last line, kept in %s", exc, self.torn_path)
                with open(self.torn_path, "ab") as kept:
                    kept.write(line + b"\n")
                    kept.flush()
                    os.fsync(kept.fileno())
                os.truncate(self.audit_path, start)
                continue
            if not data.endswith(b"\n"):  # complete but for its newline
                self._write_audit(b"\n")
            return entry

    def _append_audit(self, entry: Transition | None, last: Transition | None) -> Transition | None:
        """Append `entry` unless the log already has it; the log's last entry after."""
        if entry is None or (last is not None and entry.seq <= last.seq):
            return last
        if last is not None and entry.seq > last.seq + 1:
            log.warning(
                "%s: transitions %d..%d are missing from the log",
                self.audit_path,
                last.seq + 1,
                entry.seq - 1,
            )
        self._write_audit(seal(entry.as_json()))
        return entry

    def _write_audit(self, data: bytes) -> None:
        with open(self.audit_path, "ab") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())

    def history(self) -> list[Transition]:
        """The log, oldest first: a torn last line is skipped (with a warning) and the entry
        state.json holds but the log does not yet is added; any other unreadable line is an
        error naming it."""
        lines = self._audit_bytes().split(b"\n")
        numbered = [(n, line) for n, line in enumerate(lines, 1) if line.strip()]
        entries = []
        for number, line in numbered:
            try:
                entries.append(read_entry(line, f"{self.audit_path}:{number}"))
            except InputError as exc:
                if number != numbered[-1][0]:
                    raise
                log.warning("%s: skipped as a torn last line", exc)
        now = self.current()
        pending = now.state.last_transition
        if now.damage is None and pending and (not entries or pending.seq > entries[-1].seq):
            entries.append(pending)
        return entries


def _fsync_dir(directory: Path) -> None:
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _last_line(data: bytes) -> tuple[int, bytes | None]:
    """(offset, bytes) of the last non-blank line of `data`; (0, None) if there is none."""
    pos = len(data)
    while pos > 0:
        start = data.rfind(b"\n", 0, pos) + 1
        if (line := data[start:pos]).strip():
            return start, line
        pos = start - 1
    return 0, None


def _last_good(data: bytes, where: str) -> Transition | None:
    """The last audit entry that reads, scanning back from the end (None: none does)."""
    for line in reversed(data.split(b"\n")):
        if line.strip():
            with contextlib.suppress(InputError):
                return read_entry(line, where)
    return None


def open_store(location: str) -> StateStore:
    """A store for `gs://bucket/prefix` or a local folder."""
    if location.startswith("gs://"):
        return GcsStateStore.from_uri(location)
    return LocalStateStore(location)


def default_state_location(warehouse_root: str | os.PathLike[str]) -> str:
    """Local state lives beside the warehouse: `<warehouse>/../cutover`."""
    return str(Path(warehouse_root).resolve().parent / "cutover")
