"""The console's gate line (`GET /v1/migration/status`, `cutover.gate`) is the gate that
`kappactl cutover advance` applies: the same evidence window, restricted spec runs left out,
and runs an earlier transition cited not counted again."""

from __future__ import annotations

from migration.cutover import LocalStateStore, Stage, advance, read_validation_runs
from migration.cutover.gate import CLOCK_SKEW_MS
from migration.cutover.model import now_ms
from migration.policy import build_policy
from migration.serving.status import LocalMigrationSource, build_status, gather
from migration.validator.handlers import VALIDATION_RUNS_ROW_SCHEMA
from pipelines.rows import table_from_rows
from pipelines.warehouse import Warehouse

POLICY = build_policy({"consecutive_passes": 3})


def _add(warehouse: Warehouse, run_id: str, started_ms: int, finished_ms: int, **extra: object) -> None:
    row = {
        "run_id": run_id, "started_at": started_ms, "finished_at": finished_ms, "verdict": "PASS",
        "left_arm": "legacy_serving", "right_arm": "kappa_stream", "reference_arm": None,
        "keys_total": 5000, "keys_final": 4000, "keys_unexplained": 0, "unexplained_rate": 0.0,
        "report_path": None, **extra,
    }  # fmt: skip
    # with the validator's own schema, which carries a spec run's restrictions
    warehouse.append(
        "validation_runs",
        table_from_rows([dict.fromkeys(VALIDATION_RUNS_ROW_SCHEMA.names) | row], VALIDATION_RUNS_ROW_SCHEMA),
        writer="validator",
    )


def _gate(warehouse: Warehouse, store: LocalStateStore) -> dict:
    now = now_ms()
    return build_status(gather(LocalMigrationSource(warehouse, store), now), POLICY, now)["cutover"]["gate"]


def test_the_status_gate_ignores_runs_from_the_future_and_restricted_spec_runs(tmp_path) -> None:
    warehouse, store = Warehouse(tmp_path / "warehouse"), LocalStateStore(tmp_path / "cutover")
    ahead = now_ms() + 3_600_000  # a validator host whose clock runs an hour fast
    for i in range(3):
        _add(warehouse, f"ahead{i}", ahead + i, ahead + 10 + i)
    start = now_ms() - 60_000
    for i in range(3):
        _add(warehouse, f"filtered{i}", start + i, start + 10 + i, spec_filter="tweet_id > 5")
    gate = _gate(warehouse, store)
    assert not gate["ok"] and gate["evidence"] == [], gate


def test_the_status_gate_does_not_count_the_runs_an_earlier_transition_cited(tmp_path) -> None:
    """Runs within the skew bound count, once: they started after the transition they open
    (by their clocks), and the next gate excludes them as cited."""
    warehouse, store = Warehouse(tmp_path / "warehouse"), LocalStateStore(tmp_path / "cutover")
    soon = now_ms() + CLOCK_SKEW_MS // 2
    for i in range(3):
        _add(warehouse, f"r{i}", soon + i, soon + 10 + i)
    assert _gate(warehouse, store)["ok"]
    runs = read_validation_runs(warehouse, POLICY.gate_arms)
    assert advance(store, POLICY, runs, reason="gate open", actor="alice").stage is Stage.CANARY
    gate = _gate(warehouse, store)
    assert not gate["ok"] and "already cited" in gate["message"], gate
