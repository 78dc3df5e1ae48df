"""A Terraform tool the tests need and cannot find: under CI (CI=true, as `.ci/run` runs)
that is a failure, never a silent skip; elsewhere a skip that says what to install."""

from __future__ import annotations

import os
from typing import Callable, NoReturn

import pytest


def under_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def missing_tool(what: str, install: str) -> NoReturn:
    message = f"{what} is missing: {install}"
    if under_ci():
        pytest.fail(f"{message} (CI=true: a missing tool fails the run)", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def require_tool() -> Callable[[str, str], NoReturn]:
    """`require_tool(what, install)`: fail under CI, skip with the install hint elsewhere."""
    return missing_tool
