"""A Terraform tool the tests need and cannot find: under CI (CI=true, as `.ci/run` runs)
that is a failure, never a silent skip; elsewhere a skip that says what to install. And
every .tf file parsed once (`docs`), its resources by address (`res`)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, NoReturn

import pytest

from tests.terraform.hcl import TERRAFORM_DIR, normalise

try:
    import hcl2
except ImportError:  # reported by the `hcl2_module` fixture: a failure under CI, a skip elsewhere
    hcl2 = None  # type: ignore[assignment]


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


@pytest.fixture(scope="session")
def hcl2_module(require_tool) -> Any:
    if hcl2 is None:
        require_tool("python-hcl2", "install the dev extra (`make setup`, or pip install python-hcl2)")
    return hcl2


@pytest.fixture(scope="session")
def docs(hcl2_module: Any) -> dict[Path, dict[str, Any]]:
    files = sorted(p for p in TERRAFORM_DIR.rglob("*.tf") if ".terraform" not in p.parts)
    assert files, f"no .tf files under {TERRAFORM_DIR}"
    parsed = {}
    for path in files:
        with path.open(encoding="utf-8") as handle:
            parsed[path] = normalise(hcl2_module.load(handle))
    return parsed


@pytest.fixture(scope="session")
def res(docs: dict[Path, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Every resource body keyed '<dir>/<type>.<name>', e.g. 'pubsub/google_pubsub_subscription.kappa'."""
    found = {}
    for path, doc in docs.items():
        for entry in doc.get("resource", []):
            for rtype, named in entry.items():
                for name, body in named.items():
                    found[f"{path.parent.name}/{rtype}.{name}"] = body
    return found
