"""The report of a validation run: one type for every kind (`model`), its sections and
plots per kind (`sections`), the one renderer (`render`), and what happens to a finished
report (`handlers`: stdout, report files, the validation_runs tables)."""

from migration.validator.report.model import (
    EXIT_CODES,
    FAIL,
    INCONCLUSIVE,
    KEY_CLASSES,
    PASS,
    SEVERITY,
    Report,
    iso,
)

__all__ = ["EXIT_CODES", "FAIL", "INCONCLUSIVE", "KEY_CLASSES", "PASS", "SEVERITY", "Report", "iso"]
