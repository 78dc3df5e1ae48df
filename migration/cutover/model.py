"""The cutover state machine: stages, the state record, audit entries and legal moves.

SHADOW -> CANARY(p%) -> FULL -> DECOMMISSIONED, and ROLLBACK from CANARY or FULL to SHADOW.
CANARY may also ramp up (CANARY(10%) -> CANARY(50%)). DECOMMISSIONED is terminal: the
legacy arms are deleted when it is reached (`legacy_enabled = false`), so a rollback there
would route reads to a view nobody feeds any more; recovering means re-provisioning legacy
and starting a new migration, not flipping a switch.
"""

from __future__ import annotations

import enum
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Callable, Mapping

from pipelines.errors import ConflictError, InputError
from pipelines.instants import utc_iso


class Stage(enum.StrEnum):
    SHADOW = "SHADOW"
    CANARY = "CANARY"
    FULL = "FULL"
    DECOMMISSIONED = "DECOMMISSIONED"


FORWARD: dict[Stage, Stage] = {
    Stage.SHADOW: Stage.CANARY,
    Stage.CANARY: Stage.FULL,
    Stage.FULL: Stage.DECOMMISSIONED,
}
ROLLBACK_FROM = (Stage.CANARY, Stage.FULL)

# What the operator has to change in Terraform once a stage is reached (DESIGN.md 5, 7).
TERRAFORM_HINTS: dict[Stage, str] = {
    Stage.SHADOW: 'set the Terraform variable serving_source = "legacy" (and keep legacy_enabled = true)',
    Stage.CANARY: 'keep serving_source = "legacy" in Terraform: the serving API splits canary reads itself',
    Stage.FULL: 'set the Terraform variable serving_source = "kappa" and apply',
    Stage.DECOMMISSIONED: "set the Terraform variable legacy_enabled = false and apply (removes the legacy "
    "batch, speed and their subscriptions)",
}


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def stage_label(stage: Stage, percent: int | None) -> str:
    return f"CANARY({percent}%)" if stage is Stage.CANARY else stage.value


@dataclass(frozen=True)
class Transition:
    """One audit entry: an applied move of the state machine."""

    seq: int  # 1, 2, ...: the state's transition count after this move
    at_ms: int
    action: str  # "advance" | "rollback"
    from_stage: str
    to_stage: str
    from_percent: int | None
    to_percent: int | None
    reason: str
    evidence: tuple[str, ...]  # validation run ids that allowed (or forced) the move
    actor: str
    automatic: bool = False

    @property
    def label(self) -> str:
        before = stage_label(Stage(self.from_stage), self.from_percent)
        return f"{before} -> {stage_label(Stage(self.to_stage), self.to_percent)}"

    def as_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["at"] = utc_iso(self.at_ms)
        out["evidence"] = list(self.evidence)
        return out

    @classmethod
    def from_json(cls, raw: Any) -> Transition:
        """An audit entry, every field checked: InputError naming the first bad one."""
        if not isinstance(raw, Mapping):
            raise InputError(f"an audit entry must be a JSON object, got {_shown(raw)}")
        evidence = _field(raw, "evidence", lambda v: isinstance(v, list) and all(isinstance(i, str) for i in v),
                          "a list of run ids")  # fmt: skip
        from_stage = _field(raw, "from_stage", _is_stage, "a stage name")
        to_stage = _field(raw, "to_stage", _is_stage, "a stage name")
        return cls(
            seq=_field(raw, "seq", lambda v: _is_int(v) and v >= 1, "an integer >= 1"),
            at_ms=_field(raw, "at_ms", lambda v: _is_int(v) and v >= 0, "epoch milliseconds"),
            action=_field(raw, "action", lambda v: v in ("advance", "rollback"), "advance or rollback"),
            from_stage=from_stage,
            to_stage=to_stage,
            from_percent=_percent(raw, "from_percent", from_stage),
            to_percent=_percent(raw, "to_percent", to_stage),
            reason=_field(raw, "reason", lambda v: isinstance(v, str), "a string"),
            evidence=tuple(evidence),
            actor=_field(raw, "actor", lambda v: isinstance(v, str), "a string"),
            automatic=_field(raw, "automatic", lambda v: isinstance(v, bool), "true or false", False),
        )


@dataclass(frozen=True)
class CutoverState:
    stage: Stage = Stage.SHADOW
    canary_percent: int | None = None
    since_ms: int = 0  # time of the last transition (0: never moved)
    seq: int = 0  # number of transitions so far
    last_transition: Transition | None = field(default=None, compare=False)

    @property
    def label(self) -> str:
        return stage_label(self.stage, self.canary_percent)

    def as_json(self) -> dict[str, Any]:
        return {
            "stage": self.stage.value,
            "canary_percent": self.canary_percent,
            "since_ms": self.since_ms,
            "since": utc_iso(self.since_ms) if self.since_ms else None,
            "seq": self.seq,
            "last_transition": self.last_transition.as_json() if self.last_transition else None,
        }

    @classmethod
    def from_json(cls, raw: Any) -> CutoverState:
        """The state record, every field checked (a hand-edited `"canary_percent": "50"` or
        `250` must not route reads): InputError naming the first bad field."""
        if not isinstance(raw, Mapping):
            raise InputError(f"cutover state must be a JSON object, got {_shown(raw)}")
        stage = _field(raw, "stage", _is_stage, "one of " + ", ".join(s.value for s in Stage))
        seq = _field(raw, "seq", lambda v: _is_int(v) and v >= 0, "an integer >= 0", 0)
        since = _field(raw, "since_ms", lambda v: _is_int(v) and v >= 0, "epoch milliseconds", 0)
        state = cls(Stage(stage), _percent(raw, "canary_percent", stage), since, seq)
        last = raw.get("last_transition")
        if last is None:
            return state
        try:
            entry = Transition.from_json(last)
        except InputError as exc:
            raise InputError(f"cutover state field 'last_transition': {exc}") from exc
        if entry.seq > seq:
            raise InputError(
                f"cutover state field 'last_transition' is transition {entry.seq}, after the state's {seq}"
            )
        return replace(state, last_transition=entry)


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_stage(value: Any) -> bool:
    return isinstance(value, str) and value in Stage.__members__


def _field(
    raw: Mapping[str, Any], name: str, ok: Callable[[Any], bool], what: str, default: Any = ...
) -> Any:
    if name not in raw:
        if default is ...:
            raise InputError(f"cutover state field {name!r} is missing")
        return default
    value = raw[name]
    if not ok(value):
        raise InputError(f"cutover state field {name!r} must be {what}, got {_shown(value)}")
    return value


def _percent(raw: Mapping[str, Any], name: str, stage: str) -> int | None:
    """A canary percent: an integer from 1 to 99 in CANARY, null in every other stage."""
    if stage == Stage.CANARY:
        return int(
            _field(raw, name, lambda v: _is_int(v) and 1 <= v <= 99, "an integer from 1 to 99 in CANARY")
        )
    _field(raw, name, lambda v: v is None, f"null in {stage}", None)
    return None


def parse_stage(text: str) -> Stage:
    try:
        return Stage(text.strip().upper())
    except ValueError as exc:
        allowed = ", ".join(s.value for s in Stage)
        raise InputError(f"unknown cutover state {text!r}: use one of {allowed}") from exc


def check_advance(state: CutoverState, target: Stage | None, percent: int | None) -> tuple[Stage, int | None]:
    """The (stage, canary percent) an advance would reach, or ConflictError if illegal."""
    if state.stage is Stage.DECOMMISSIONED:
        raise ConflictError("cutover is DECOMMISSIONED: there is nothing to advance to")
    goal = target or FORWARD[state.stage]
    if goal is Stage.CANARY and percent is not None and not 1 <= percent <= 99:
        raise InputError(f"--percent must be from 1 to 99, got {percent}")
    ramp = goal is Stage.CANARY and state.stage is Stage.CANARY
    if ramp and (percent is None or percent <= (state.canary_percent or 0)):
        raise ConflictError(f"already {state.label}: ramp with a higher --percent, or advance --to FULL")
    if ramp:
        return goal, percent
    if goal is not FORWARD[state.stage]:
        raise ConflictError(
            f"cannot advance from {state.label} to {goal.value}: the next state is "
            f"{FORWARD[state.stage].value} (stages are not skipped; use rollback to go back)"
        )
    return goal, percent if goal is Stage.CANARY else None


def check_rollback(state: CutoverState) -> None:
    if state.stage in ROLLBACK_FROM:
        return
    if state.stage is Stage.SHADOW:
        raise ConflictError("already SHADOW: legacy serves every read, there is nothing to roll back")
    raise ConflictError(
        "cannot roll back from DECOMMISSIONED: the legacy arms were removed (legacy_enabled = false). "
        "Re-provision them with legacy_enabled = true, backfill, and start a new migration"
    )


def apply_move(
    state: CutoverState,
    action: str,
    to: Stage,
    percent: int | None,
    reason: str,
    evidence: tuple[str, ...],
    actor: str,
    automatic: bool = False,
    at_ms: int | None = None,
) -> CutoverState:
    """The state after a (legal, already checked) move, carrying its audit entry."""
    if not reason.strip():
        raise InputError("a transition needs a --reason (it goes into the audit log)")
    at = at_ms if at_ms is not None else now_ms()
    at = max(at, state.since_ms + 1)  # transitions are strictly ordered in time
    entry = Transition(
        seq=state.seq + 1,
        at_ms=at,
        action=action,
        from_stage=state.stage.value,
        to_stage=to.value,
        from_percent=state.canary_percent,
        to_percent=percent if to is Stage.CANARY else None,
        reason=reason.strip(),
        evidence=evidence,
        actor=actor,
        automatic=automatic,
    )
    return replace(
        state,
        stage=to,
        canary_percent=entry.to_percent,
        since_ms=at,
        seq=entry.seq,
        last_transition=entry,
    )
