"""checkov over terraform/: no failed checks, a meaningful number passed, skips justified."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
MIN_PASSED = 40
_DEFAULT_SUPPRESS = "No comment provided"


def _checkov_binary() -> Path | None:
    candidate = os.environ.get("CHECKOV")
    path = Path(candidate) if candidate else REPO_ROOT / ".venv-checkov" / "bin" / "checkov"
    return path if path.is_file() else None


@pytest.fixture(scope="module")
def report(require_tool) -> dict[str, Any]:
    binary = _checkov_binary()
    if binary is None:
        require_tool(
            "checkov",
            "run `make setup` (it creates .venv-checkov: its pins clash with .venv) "
            "or set CHECKOV=/path/to/checkov",
        )
    result = subprocess.run(
        [str(binary), "-d", "terraform", "--framework", "terraform", "-o", "json", "--skip-download"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.stdout.strip(), (
        f"checkov printed nothing (exit {result.returncode}):\n{result.stderr[-2000:]}"
    )
    parsed = json.loads(result.stdout)
    # One framework gives a dict; several give a list of dicts.
    reports = parsed if isinstance(parsed, list) else [parsed]
    terraform = [r for r in reports if r.get("check_type") == "terraform"]
    assert len(terraform) == 1, f"expected one terraform report, got {[r.get('check_type') for r in reports]}"
    return terraform[0]


def test_no_failed_checks(report: dict[str, Any]) -> None:
    failed = report["results"].get("failed_checks", [])
    details = [f"{c['check_id']} {c['resource']} ({c['file_path']})" for c in failed]
    assert report["summary"]["failed"] == 0, "checkov failures:\n" + "\n".join(details)
    assert report["summary"]["parsing_errors"] == 0


def test_enough_checks_passed(report: dict[str, Any]) -> None:
    assert report["summary"]["passed"] >= MIN_PASSED


def test_every_skip_has_a_reason(report: dict[str, Any]) -> None:
    for check in report["results"].get("skipped_checks", []):
        reason = (check.get("check_result") or {}).get("suppress_comment", "")
        assert reason and reason != _DEFAULT_SUPPRESS, (
            f"{check['check_id']} on {check['resource']} skipped without a reason"
        )


def test_skip_comments_sit_in_terraform_with_reason() -> None:
    pattern = re.compile(r"#\s*checkov:skip=([A-Z0-9_]+)(:?)(.*)")
    for tf in (REPO_ROOT / "terraform").rglob("*.tf"):
        for line in tf.read_text(encoding="utf-8").splitlines():
            match = pattern.search(line)
            if match:
                assert match.group(2) == ":" and len(match.group(3).strip()) > 20, (
                    f"{tf}: skip without a written reason: {line.strip()}"
                )
