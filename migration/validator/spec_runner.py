"""Re-exports the spec runner (`run`) and its options at their earlier path."""

from migration.validator.options import RunOptions
from migration.validator.run import run_spec

__all__ = ["RunOptions", "run_spec"]
