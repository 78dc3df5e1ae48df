"""Re-exports what the interaction-count flags build (`spec.flags`) at its earlier path."""

from migration.validator.spec.flags import ValidationInputs, build_inputs
from migration.validator.spec.model import ArmSpec

__all__ = ["ArmSpec", "ValidationInputs", "build_inputs"]
