"""Validation specs: what to compare, declared in YAML (`model`), read and checked once
(`parse`), with the restricted `filter` language (`filter`); the interaction-count flags of
`kappactl validate` build the shipped spec (`flags`).

The names below are what callers outside the package read (the docs' reference tables
among them); the key constants of a spec file are all in `model`."""

from migration.validator.spec.model import (
    AGGREGATE_FUNCTIONS,
    EXPLAIN,
    FINALITY_KEYS,
    FINALITY_RULES,
    INTERACTION_COUNTS,
    KINDS,
    SOURCE_KINDS,
    TOLERANCE_KEYS,
    TOP_LEVEL,
    ArmSpec,
    Source,
    Spec,
)
from migration.validator.spec.parse import load_spec, load_specs, parse_spec

__all__ = [
    "AGGREGATE_FUNCTIONS",
    "EXPLAIN",
    "FINALITY_KEYS",
    "FINALITY_RULES",
    "INTERACTION_COUNTS",
    "KINDS",
    "SOURCE_KINDS",
    "TOLERANCE_KEYS",
    "TOP_LEVEL",
    "ArmSpec",
    "Source",
    "Spec",
    "load_spec",
    "load_specs",
    "parse_spec",
]
