"""Moved to tests/migration/serving/browser.py (tests mirror the packages); this module keeps the old
import path working for the tests that still use it, and goes when none does."""

from __future__ import annotations

from tests.migration.serving.browser import Browser as Browser
from tests.migration.serving.browser import poll as poll
