"""A wheel carries every file the packages read at run time (SQL, templates, the console's
assets): each non-Python file under a package matches a `package-data` pattern."""

from __future__ import annotations

import fnmatch
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_package_file_is_package_data():
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    # bench/ results are not read at run time; a flex template's Dockerfile builds its image.
    packages = [p.rstrip("*") for p in setuptools["packages"]["find"]["include"] if p != "bench*"]
    patterns = setuptools["package-data"]["*"]
    files = [
        f
        for pkg in packages
        for f in (ROOT / pkg).rglob("*")
        if f.is_file()
        and f.suffix not in {".py", ".pyc", ".md"}
        and "__pycache__" not in f.parts
        and f.name != "Dockerfile"
    ]
    assert any(f.name == "console.js" for f in files)  # the console's assets are among them
    missing = [
        str(f.relative_to(ROOT)) for f in files if not any(fnmatch.fnmatch(f.name, p) for p in patterns)
    ]
    assert not missing, f"not in [tool.setuptools.package-data]: {missing}"
