"""`make setup` names what to install when Java, Maven or Go is missing."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TOOLS = ["dirname", "python3.11", "java", "mvn", "go", "sed", "head", "cut", "sha256sum", "cat"]


@pytest.mark.parametrize(("hidden", "advice"), [("java", "Java 17"), ("mvn", "Maven"), ("go", "Go 1.24")])
def test_missing_prerequisite_is_named_with_what_to_install(tmp_path, hidden, advice):
    for tool in TOOLS:
        found = shutil.which(tool)
        if tool != hidden and found:
            (tmp_path / tool).symlink_to(found)
    out = subprocess.run(
        ["/bin/bash", str(ROOT / "tools" / "setup.sh")],
        env={"PATH": str(tmp_path), "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 1
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"setup: '{hidden}' not found: install {advice}")
    assert lines[0].endswith("then run 'make setup' again")
