"""`terraform fmt -check` over terraform/ (terraform or OpenTofu, whichever exists)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def _terraform_binary() -> str | None:
    for name in ("terraform", "tofu"):
        found = shutil.which(name)
        if found:
            return found
        local = REPO_ROOT / ".local" / "bin" / name
        if local.is_file():
            return str(local)
    return None


def test_fmt_check_is_clean(require_tool) -> None:
    binary = _terraform_binary()
    if binary is None:
        require_tool(
            "terraform or tofu (on PATH or in .local/bin)", "run `make setup` or tools/setup_terraform.sh"
        )
    result = subprocess.run(
        [binary, "fmt", "-check", "-recursive", "-diff", str(REPO_ROOT / "terraform")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, f"run `{binary} fmt -recursive terraform/`:\n{result.stdout}"
