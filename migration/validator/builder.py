"""Re-exports `kinds.counts_sql` (the interaction-count expressions) at its earlier path."""

from migration.validator.kinds.counts_sql import (
    KEYS,
    Arm,
    archive_key_stats,
    error_histogram,
    error_stats,
    group_summary,
    key_diffs,
    normalize,
    quantiles_or_null,
    top_unexplained,
)

__all__ = [
    "KEYS",
    "Arm",
    "archive_key_stats",
    "error_histogram",
    "error_stats",
    "group_summary",
    "key_diffs",
    "normalize",
    "quantiles_or_null",
    "top_unexplained",
]
