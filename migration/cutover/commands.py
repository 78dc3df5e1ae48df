"""`kappactl cutover status | advance | rollback | history | check`."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any, Callable

import click

from migration.cutover.controller import advance, check, default_actor, gate_for, rollback
from migration.cutover.gate import (
    ValidationRun,
    read_bigquery_validation_runs,
    read_shadow_stats,
    read_validation_runs,
)
from migration.cutover.model import TERRAFORM_HINTS, CutoverState, Stage, parse_stage
from migration.cutover.store import LocalStateStore, StateStore, default_state_location, open_store
from migration.policy import Policy, load_policy
from pipelines.cli_common import with_config
from pipelines.config import Config
from pipelines.instants import utc_iso
from pipelines.warehouse import Warehouse

EXIT_ROLLBACK = 1  # `check` decided a rollback (applied when the policy's auto_rollback is on)


class Context:
    """Where the state and the gate's evidence live. In the cloud profile (a `gcp` section)
    without --warehouse: runs from BigQuery's migration.validation_runs, state in the GCS
    object `gcp.cutover_state`."""

    def __init__(self, config: Config, warehouse: str | None, state: str | None, policy: str | None):
        self.warehouse = Warehouse(warehouse or config.paths.warehouse_root)
        self.bigquery_project = config.gcp.project if config.gcp and not warehouse else None
        cloud_state = config.gcp.cutover_state if config.gcp and not warehouse else None
        self.location = state or cloud_state or default_state_location(self.warehouse.root)
        self.store: StateStore = open_store(self.location)
        self.policy: Policy = load_policy(policy)


def cutover_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """--warehouse/--state/--policy (plus --config/--set) on every subcommand."""

    @with_config
    @click.option("--warehouse", help="Warehouse root (default: the config's paths.warehouse_root).")
    @click.option(
        "--state",
        "state_location",
        help="State folder or gs://bucket/prefix (default: <warehouse>/../cutover).",
    )
    @click.option("--policy", "policy_path", help="Policy YAML (default: config/policy.yaml).")
    @functools.wraps(func)
    def wrapper(
        *args: Any,
        config: Config,
        warehouse: str | None,
        state_location: str | None,
        policy_path: str | None,
        **kw: Any,
    ) -> Any:
        return func(*args, ctx=Context(config, warehouse, state_location, policy_path), **kw)

    return wrapper


def _gate_runs(ctx: Context) -> list[ValidationRun]:
    """The validation runs the gate counts: those comparing the policy's gate_arms."""
    if ctx.bigquery_project:
        return read_bigquery_validation_runs(ctx.bigquery_project, ctx.policy.gate_arms)
    return read_validation_runs(ctx.warehouse, ctx.policy.gate_arms)


actor_option = click.option("--actor", default=None, help="Who is acting (default: $USER@hostname).")


@click.group()
def cutover() -> None:
    """Cutover state: SHADOW -> CANARY(p%) -> FULL -> DECOMMISSIONED, rollback to SHADOW."""


@cutover.command()
@cutover_options
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def status(ctx: Context, as_json: bool) -> None:
    """The current state, the gate for the next move, and the last transition."""
    state, generation = ctx.store.load()
    gate = gate_for(ctx.store, state, ctx.policy, _gate_runs(ctx))
    if as_json:
        out = {"state": state.as_json(), "generation": generation, "store": ctx.store.describe()}
        out["gate"] = {"ok": gate.ok, "message": gate.message, "evidence": list(gate.evidence)}
        click.echo(json.dumps(out, indent=2))
        return
    click.echo(f"state: {state.label}   (store {ctx.store.describe()}, generation {generation})")
    if state.last_transition:
        t = state.last_transition
        click.echo(f"since: {utc_iso(t.at_ms)} by {t.actor}: {t.reason}")
    if state.stage is not Stage.DECOMMISSIONED:
        click.echo(f"gate:  {gate.message}")
    _print_shadow(ctx)
    click.echo(f"terraform: {TERRAFORM_HINTS[state.stage]}")


def _print_shadow(ctx: Context) -> None:
    if isinstance(ctx.store, LocalStateStore) and (stats := read_shadow_stats(ctx.store.directory)):
        click.echo(
            f"shadow: {stats.reads} reads, {stats.keys_mismatched}/{stats.keys_compared} keys mismatched "
            f"({stats.mismatch_rate:.2%}), {stats.keys_pending} pending (transition {stats.seq})"
        )


def _announce(state: CutoverState) -> None:
    entry = state.last_transition
    assert entry is not None
    click.echo(f"{entry.label}  (transition {entry.seq}, {utc_iso(entry.at_ms)}, by {entry.actor})")
    if entry.evidence:
        click.echo(f"evidence: {', '.join(entry.evidence)}")
    click.echo(f"next: {TERRAFORM_HINTS[state.stage]}")


@cutover.command("advance")
@cutover_options
@click.option(
    "--to", "to", default=None, help="Target state (default: the next one): CANARY, FULL, DECOMMISSIONED."
)
@click.option(
    "--percent", type=int, default=None, help="Canary share of tweets (default: policy canary_percent)."
)
@click.option("--reason", required=True, help="Why (goes into the audit log).")
@actor_option
def advance_command(
    ctx: Context, to: str | None, percent: int | None, reason: str, actor: str | None
) -> None:
    """Move forward if the policy's consecutive PASS runs since the last transition exist."""
    target = parse_stage(to) if to else None
    runs = _gate_runs(ctx)
    _announce(advance(ctx.store, ctx.policy, runs, reason, actor or default_actor(), target, percent))


@cutover.command("rollback")
@cutover_options
@click.option("--reason", required=True, help="Why (goes into the audit log).")
@actor_option
def rollback_command(ctx: Context, reason: str, actor: str | None) -> None:
    """Return to SHADOW from CANARY or FULL (not from DECOMMISSIONED)."""
    _announce(rollback(ctx.store, reason, actor or default_actor()))


@cutover.command()
@cutover_options
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def history(ctx: Context, as_json: bool) -> None:
    """The append-only audit log, oldest first."""
    for entry in ctx.store.history():
        if as_json:
            click.echo(json.dumps(entry.as_json(), sort_keys=True))
            continue
        auto = " [automatic]" if entry.automatic else ""
        evidence = f"  evidence: {', '.join(entry.evidence)}" if entry.evidence else ""
        click.echo(f"{entry.seq:>3}  {utc_iso(entry.at_ms)}  {entry.label:<32} {entry.actor}{auto}")
        click.echo(f"     {entry.reason}{evidence}")


@cutover.command("check")
@cutover_options
@click.option(
    "--shadow-stats",
    type=click.Path(path_type=Path),
    help="Shadow stats file (default: in the state folder).",
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@actor_option
def check_command(ctx: Context, shadow_stats: Path | None, as_json: bool, actor: str | None) -> None:
    """Apply the rollback rules to the latest runs and shadow reads (exit 1 if rollback is due)."""
    stats_path = shadow_stats or (ctx.store.directory if isinstance(ctx.store, LocalStateStore) else None)
    stats = read_shadow_stats(stats_path) if stats_path else None
    decision, new_state = check(ctx.store, ctx.policy, _gate_runs(ctx), stats, actor)
    if as_json:
        click.echo(json.dumps({**decision.as_json(), "applied": new_state is not None}, indent=2))
    else:
        click.echo(f"{decision.state.label}: {decision.action}: {decision.reason}")
        for note in decision.notes:
            click.echo(f"note: {note}")
        if new_state is not None:
            _announce(new_state)
        elif decision.action == "rollback":
            click.echo("auto_rollback is off: run `kappactl cutover rollback --reason ...` to act on it")
    if decision.action == "rollback":
        raise SystemExit(EXIT_ROLLBACK)
