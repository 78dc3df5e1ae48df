"""A spec's engine and sides under their earlier names (`engines`, `kinds.sides`)."""

from pathlib import Path

from migration.validator.engines import Engine, open_engine
from migration.validator.kinds.sides import Sides, compatibility, family, open_sides
from migration.validator.options import RunOptions
from migration.validator.spec.model import Spec


def spec_engine(spec: Spec, warehouse_root: Path | None) -> Engine:
    """The engine of `spec`'s sides, as `open_engine` opens it for a run."""
    return open_engine(spec, RunOptions(warehouse_root=warehouse_root), None)


SpecEngine = spec_engine

__all__ = ["Sides", "SpecEngine", "compatibility", "family", "open_sides", "spec_engine"]
