"""Cutover moves: advance (gated by validation runs), rollback, and the automatic check.

Every move reads the state with its generation, decides, and saves with that generation as
the compare-and-swap token, so a concurrent move makes this one fail with ConflictError
instead of silently overwriting it.
"""

from __future__ import annotations

import getpass
import logging
import os
import socket
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from migration.cutover.gate import (
    MIN_SHADOW_KEYS,
    GateResult,
    ShadowStats,
    ValidationRun,
    check_gate,
    cited_runs,
    counted,
    runs_since,
)
from migration.cutover.model import (
    ROLLBACK_FROM,
    CutoverState,
    Stage,
    apply_move,
    check_advance,
    check_rollback,
)
from migration.cutover.store import StateStore
from migration.policy import Policy
from pipelines.errors import ConflictError

Runs = Iterable[ValidationRun | Mapping[str, Any]]
log = logging.getLogger(__name__)


def default_actor() -> str:
    user = os.environ.get("USER") or getpass.getuser()
    return f"{user}@{socket.gethostname()}"


def advance(
    store: StateStore,
    policy: Policy,
    runs: Runs,
    reason: str,
    actor: str | None = None,
    to: Stage | None = None,
    percent: int | None = None,
) -> CutoverState:
    """Move one stage forward (or ramp the canary) if the PASS streak allows it."""
    state, generation = store.load()
    goal, goal_percent = check_advance(state, to, percent)
    if goal is Stage.CANARY and goal_percent is None:
        goal_percent = policy.canary_percent
    gate = gate_for(store, state, policy, runs)
    if not gate.ok:
        raise ConflictError(f"cannot advance {state.label} -> {goal.value}: {gate.message}")
    new = apply_move(state, "advance", goal, goal_percent, reason, gate.evidence, actor or default_actor())
    store.save(new, generation)
    return new


def gate_for(store: StateStore, state: CutoverState, policy: Policy, runs: Runs) -> GateResult:
    """The policy's gate over `runs`, less the runs earlier transitions cited (the audit log)."""
    chosen = counted(runs, policy.gate_counts_restricted_runs)
    return check_gate(state, policy.consecutive_passes, chosen, cited_runs(store.history()))


def rollback(
    store: StateStore,
    reason: str,
    actor: str | None = None,
    evidence: tuple[str, ...] = (),
    automatic: bool = False,
    expected_generation: int | None = None,
) -> CutoverState:
    """Return to SHADOW from CANARY or FULL (never gated: going back is always allowed).

    It works on a damaged or lost state.json too: the state is then the one the last good
    audit entry leaves, and the entry says it was rebuilt. Rebuilt as SHADOW, the state is
    written back as the log has it and ConflictError says there was nothing to roll back."""
    now = store.current()
    state, generation = now.state, now.generation
    if expected_generation is not None and generation != expected_generation:
        raise ConflictError(
            f"cutover state moved (generation {expected_generation} -> {generation}) since the decision "
            "to roll back: re-run the check"
        )
    if now.damage:
        log.warning("rolling back from a rebuilt cutover state: %s", now.damage)
        reason = f"{reason} (state rebuilt from the audit log: {now.damage.split('; ')[0]})"
        if state.stage is Stage.SHADOW:
            store.save(state, generation)
            raise ConflictError(
                "already SHADOW by the audit log: nothing to roll back; the state was rebuilt from it"
            )
    check_rollback(state)
    new = apply_move(
        state, "rollback", Stage.SHADOW, None, reason, evidence, actor or default_actor(), automatic
    )
    store.save(new, generation)
    return new


@dataclass(frozen=True)
class Decision:
    """What the evidence says about the current state; `evaluate` decides, `apply` acts."""

    action: str  # "rollback" | "advance_ready" | "hold"
    reason: str
    state: CutoverState
    generation: int
    evidence: tuple[str, ...] = ()
    automatic: bool = False  # the policy lets `apply` roll back without a person
    notes: tuple[str, ...] = field(default=())

    def as_json(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "reason": self.reason,
            "state": self.state.as_json(),
            "generation": self.generation,
            "evidence": list(self.evidence),
            "automatic": self.automatic,
            "notes": list(self.notes),
        }


def _shadow_problem(state: CutoverState, policy: Policy, stats: ShadowStats | None) -> str | None:
    if stats is None or stats.seq != state.seq or stats.keys_compared < MIN_SHADOW_KEYS:
        return None
    if stats.mismatch_rate <= policy.max_shadow_mismatch_rate:
        return None
    return (
        f"shadow-read mismatch rate {stats.mismatch_rate:.2%} ({stats.keys_mismatched} of "
        f"{stats.keys_compared} keys) is above max_shadow_mismatch_rate {policy.max_shadow_mismatch_rate:.2%}"
    )


def evaluate(
    store: StateStore, policy: Policy, latest_runs: Runs, shadow_stats: ShadowStats | None
) -> Decision:
    """Rollback if CANARY/FULL saw a FAIL or too many shadow mismatches; else hold or ready."""
    runs = counted(latest_runs, policy.gate_counts_restricted_runs)
    state, generation = store.load()
    notes = []
    if stats_stale := (shadow_stats is not None and shadow_stats.seq != state.seq):
        notes.append(f"shadow stats are from transition {shadow_stats.seq}, state is at {state.seq}: ignored")
    if shadow_stats and not stats_stale and shadow_stats.keys_compared < MIN_SHADOW_KEYS:
        notes.append(
            f"only {shadow_stats.keys_compared} shadow keys compared (< {MIN_SHADOW_KEYS}): no verdict"
        )
    if state.stage in ROLLBACK_FROM:
        fails = [r for r in runs_since(runs, state.since_ms) if r.verdict == "FAIL"]
        if fails:
            reason = f"validation {fails[-1].describe()} during {state.label}"
            ids = tuple(r.run_id for r in fails)
            return Decision("rollback", reason, state, generation, ids, policy.auto_rollback, tuple(notes))
        if problem := _shadow_problem(state, policy, shadow_stats):
            return Decision(
                "rollback",
                f"{problem} during {state.label}",
                state,
                generation,
                (),
                policy.auto_rollback,
                tuple(notes),
            )
    if state.stage is Stage.DECOMMISSIONED:
        return Decision("hold", "DECOMMISSIONED is final", state, generation, (), False, tuple(notes))
    gate = gate_for(store, state, policy, runs)
    action = "advance_ready" if gate.ok else "hold"
    return Decision(action, gate.message, state, generation, gate.evidence, False, tuple(notes))


def apply(
    store: StateStore, decision: Decision, actor: str | None = None, force: bool = False
) -> CutoverState | None:
    """Carry out an automatic rollback decision (or any rollback with `force`); None if nothing done.

    Advancing is never automatic: a person runs `kappactl cutover advance --reason ...`.
    """
    if decision.action != "rollback" or not (decision.automatic or force):
        return None
    return rollback(
        store,
        reason=f"automatic rollback: {decision.reason}" if not force else decision.reason,
        actor=actor or f"auto-rollback ({default_actor()})",
        evidence=decision.evidence,
        automatic=not force,
        expected_generation=decision.generation,
    )


def check(
    store: StateStore,
    policy: Policy,
    latest_runs: Runs,
    shadow_stats: ShadowStats | None,
    actor: str | None = None,
) -> tuple[Decision, CutoverState | None]:
    """`evaluate` then `apply`: what the demo runs after each validation run."""
    decision = evaluate(store, policy, latest_runs, shadow_stats)
    return decision, apply(store, decision, actor)
