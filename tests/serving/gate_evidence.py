"""Moved to tests/migration/serving/gate_evidence.py (tests mirror the packages); this module keeps the old
import path working for the tests that still use it, and goes when none does."""

from __future__ import annotations

from tests.migration.serving.gate_evidence import REPO as REPO
from tests.migration.serving.gate_evidence import Evidence as Evidence
from tests.migration.serving.gate_evidence import Serve as Serve
