"""Moved to tests/migration/serving/test_serving_api.py (tests mirror the packages); this module keeps the old
import path working for the tests that still use it, and goes when none does."""

from __future__ import annotations

from tests.migration.serving.test_serving_api import BASE_MS as BASE_MS
from tests.migration.serving.test_serving_api import TWEETS as TWEETS
from tests.migration.serving.test_serving_api import WINDOW_MS as WINDOW_MS
from tests.migration.serving.test_serving_api import aggregate_rows as aggregate_rows
