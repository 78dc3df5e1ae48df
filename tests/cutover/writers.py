"""Moved to tests/migration/cutover/writers.py (tests mirror the packages); this module keeps the old
import path working for the tests that still use it, and goes when none does."""

from __future__ import annotations

from tests.migration.cutover.writers import churn as churn
from tests.migration.cutover.writers import moved as moved
from tests.migration.cutover.writers import race_once as race_once
