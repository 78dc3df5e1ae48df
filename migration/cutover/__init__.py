"""The cutover controller (DESIGN.md section 5): a gated state machine with an audit log.

The Python API the demo and the serving API use:

    store = LocalStateStore(default_state_location(warehouse_root))   # or GcsStateStore
    state, generation = store.load()
    runs = read_validation_runs(warehouse, policy.gate_arms)   # only the migration pair counts
    advance(store, policy, runs, reason="3 PASS runs")
    decision, rolled_back = check(store, policy, runs, shadow_stats)
"""

from migration.cutover.controller import Decision, advance, apply, check, default_actor, evaluate, rollback
from migration.cutover.gate import (
    GateResult,
    ShadowStats,
    ValidationRun,
    check_gate,
    read_shadow_stats,
    read_validation_runs,
    write_shadow_stats,
)
from migration.cutover.model import TERRAFORM_HINTS, CutoverState, Stage, Transition, parse_stage
from migration.cutover.store import (
    GcsStateStore,
    LocalStateStore,
    StateStore,
    default_state_location,
    open_store,
)

__all__ = [
    "TERRAFORM_HINTS",
    "CutoverState",
    "Decision",
    "GateResult",
    "GcsStateStore",
    "LocalStateStore",
    "ShadowStats",
    "Stage",
    "StateStore",
    "Transition",
    "ValidationRun",
    "advance",
    "apply",
    "check",
    "check_gate",
    "default_actor",
    "default_state_location",
    "evaluate",
    "open_store",
    "parse_stage",
    "read_shadow_stats",
    "read_validation_runs",
    "rollback",
    "write_shadow_stats",
]
