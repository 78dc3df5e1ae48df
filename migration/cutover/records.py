"""How the state record and audit entries are written and read back, shared by both stores.

Each record is one JSON object carrying a `digest` (SHA-256 of its canonical JSON), so a
flipped byte that still parses (`"canary_percent": 10` -> `11`) is refused instead of being
served; records written before the digest existed (no `digest` key) are read as before.

The audit log is written after the state (the state record is the commit point), so a
damaged or lost state can be rebuilt from the last good audit entry, and the state always
holds the entry a writer that died before its audit append left out.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from typing import Any

from migration.cutover.model import CutoverState, Stage, Transition
from pipelines.errors import ConflictError, InputError, map_exceptions

log = logging.getLogger(__name__)
DIGEST = "digest"


def _canonical(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()


def seal(payload: dict[str, Any]) -> bytes:
    """One JSON line: the payload plus the digest of its canonical form."""
    digest = hashlib.sha256(_canonical(payload)).hexdigest()
    return (json.dumps({**payload, DIGEST: digest}, sort_keys=True) + "\n").encode()


def unseal(data: bytes | str) -> tuple[dict[str, Any], bool]:
    """(payload, whether its digest matches: True also when it has none), or InputError."""
    # UnicodeDecodeError is a ValueError; a deep enough nesting is a RecursionError.
    with map_exceptions({(ValueError, RecursionError): lambda why: InputError(f"not JSON ({why})")}):
        raw = json.loads(data)
    if not isinstance(raw, dict):
        raise InputError("not a JSON object")
    digest = raw.pop(DIGEST, None)
    return raw, digest is None or digest == hashlib.sha256(_canonical(raw)).hexdigest()


def _digest_error(where: str) -> InputError:
    return InputError(f"{where} does not match its digest: it was damaged, or edited by hand")


def read_state(data: bytes | str, where: str, with_generation: bool) -> tuple[CutoverState, int | None]:
    """(state, generation kept in the record) of a state record: InputError naming the first
    bad field (checked before the digest, so a hand edit is told what is wrong)."""
    try:
        raw, sound = unseal(data)
    except InputError as exc:
        raise InputError(f"{where} is {exc}") from exc
    generation = raw.get("generation")
    if with_generation and not (isinstance(generation, int) and not isinstance(generation, bool)):
        raise InputError(f"{where}: field 'generation' must be an integer, got {str(generation)[:40]!r}")
    try:
        state = CutoverState.from_json(raw.get("state"))
    except InputError as exc:
        raise InputError(f"{where}: {exc}") from exc
    if not sound:
        raise _digest_error(where)
    return state, generation


def read_entry(data: bytes | str, where: str) -> Transition:
    try:
        raw, sound = unseal(data)
        entry = Transition.from_json(raw)
    except InputError as exc:
        raise InputError(f"{where}: unreadable audit entry ({exc})") from exc
    if not sound:
        raise _digest_error(where)
    return entry


def rebuilt(last: Transition | None) -> CutoverState:
    """The state the last good audit entry leaves (SHADOW if there is none)."""
    if last is None:
        return CutoverState()
    stage = Stage(last.to_stage)
    return CutoverState(stage, last.to_percent, last.at_ms, last.seq, last)


@dataclass(frozen=True)
class Current:
    """What a store holds now: the state (read, or rebuilt from the audit log when the state
    record is damaged or lost), the compare-and-swap token a save must present, and why the
    state was rebuilt (None: read as written)."""

    state: CutoverState
    generation: int
    damage: str | None = None

    def readable(self) -> tuple[CutoverState, int]:
        """(state, generation) for an ordinary read; a rebuilt state is an error to fix first."""
        if self.damage:
            raise InputError(self.damage)
        return self.state, self.generation


def conflict(expected: int, current: int, where: str) -> ConflictError:
    return ConflictError(
        f"cutover state in {where} changed while you were deciding (expected generation {expected}, "
        f"now {current}): someone else moved it; run `kappactl cutover status` and retry"
    )


def damage_message(problem: str, last: Transition | None) -> str:
    audited = (
        f"the audit log's last entry is transition {last.seq}, {last.label}" if last else "no audit entry"
    )
    return (
        f"{problem}; {audited}. Restore it, or run `kappactl cutover rollback --reason ...`, "
        "which rebuilds it from the audit log"
    )


def check_not_behind(state: CutoverState, last: Transition | None, where: str) -> None:
    """A save whose transition the audit log already holds would go unaudited (its entry is
    skipped as a duplicate): refuse it."""
    entry = state.last_transition
    if entry is None or last is None or entry.seq > last.seq or entry == last:
        return  # (== last: a state rebuilt from the audit log, saved back unchanged)
    raise ConflictError(
        f"{where}: the audit log already records transition {last.seq}; the state being saved "
        f"(transition {entry.seq}) is behind it: run `kappactl cutover status` and retry"
    )
