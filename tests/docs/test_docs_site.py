"""The documentation site: `mkdocs build --strict` (a broken link or anchor fails it), the
reference pages generated from the code cover every command, option and key, and a headless
browser reads the built site."""

from __future__ import annotations

import dataclasses
import functools
import html
import http.server
import re
import subprocess
import sys
import threading
import typing
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
import yaml

from pipelines.stack.component import ROOT
from tests.migration.serving.browser import Browser


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    build = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert build.returncode == 0, f"mkdocs build --strict failed:\n{build.stderr}"
    return out


def _text(page: Path) -> str:
    """A page's HTML without tags, entities decoded: what a reader sees."""
    return html.unescape(re.sub(r"<[^>]+>", "", page.read_text(encoding="utf-8")))


def _nav_pages(nav: list) -> Iterator[str]:
    for item in nav:
        value = next(iter(item.values())) if isinstance(item, dict) else item
        if isinstance(value, list):
            yield from _nav_pages(value)
        else:
            yield value


def test_the_site_builds_strict_with_every_page_of_the_nav(site: Path) -> None:
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))
    assert config["strict"] is True
    pages = list(_nav_pages(config["nav"]))
    missing = [p for p in pages if not (site / p.replace(".md", ".html")).is_file()]
    assert pages and not missing
    # the pages left out of the nav would be warnings (omitted_files: warn), so strict fails on them
    sources = {str(p.relative_to(ROOT / "docs")) for p in (ROOT / "docs").rglob("*.md")}
    assert sources == set(pages)


def test_the_readme_is_a_short_guide_whose_links_resolve() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 200
    assert "make demo" in readme and "make test" in readme
    targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", readme)
    local = [t for t in targets if "://" not in t]
    assert local and not [t for t in local if not (ROOT / t).is_file()]
    assert "../" not in "".join(local)  # nothing outside the repository


def _commands(command: click.Command, path: str) -> Iterator[tuple[str, click.Command]]:
    yield path, command
    if isinstance(command, click.Group):
        ctx = click.Context(command)
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            if sub is not None and not sub.hidden:
                yield from _commands(sub, f"{path} {name}")


def test_the_cli_reference_shows_every_kappactl_command_and_option(site: Path) -> None:
    from migration.cli import cli

    page = _text(site / "reference" / "cli.html")
    absent = []
    for path, command in _commands(cli, "kappactl"):
        if f"Usage:\n{path} " not in page and f"Usage:\n{path}\n" not in page:
            absent.append(path)
        for param in command.params:
            if isinstance(param, click.Option) and not param.hidden:
                absent += [f"{path} {opt}" for opt in param.opts if opt.startswith("--") and opt not in page]
    assert not absent, f"missing from reference/cli.html: {absent}"


def test_the_key_reference_lists_every_config_policy_and_spec_key_and_exit_code(site: Path) -> None:
    from migration.policy import Policy
    from migration.validator.spec import TOP_LEVEL
    from pipelines.config import Config
    from pipelines.errors import KappaError

    config_page = _text(site / "reference" / "configuration.html")
    keys = []
    for name, hint in typing.get_type_hints(Config).items():
        section = next((a for a in (hint, *typing.get_args(hint)) if dataclasses.is_dataclass(a)), None)
        if section is not None:
            keys += [f"{name}.{f.name}" for f in dataclasses.fields(section)]
    assert "time.window_size" in keys and "kafka.bootstrap" in keys
    keys += [g.name for g in dataclasses.fields(Policy)]
    assert not [k for k in keys if k not in config_page]

    specs_page = _text(site / "reference" / "specs.html")
    assert not [k for k in TOP_LEVEL if k not in specs_page]

    codes_page = _text(site / "reference" / "exit-codes.html")
    classes = [cls for cls in KappaError.__subclasses__() if cls.__module__ == KappaError.__module__]
    assert classes and all(cls.__name__ in codes_page for cls in classes)


@pytest.fixture
def served(site: Path) -> Iterator[str]:
    handler = functools.partial(_QuietHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base's name
        pass


def test_a_browser_opens_the_index_and_the_cli_reference(served: str, tmp_path: Path) -> None:
    browser = Browser(tmp_path / "profile", tmp_path / "chromedriver.log")
    try:
        browser.get(f"{served}/index.html")
        browser.wait_for("return document.readyState === 'complete'", what="the index to load")
        assert browser.js("return document.title").startswith("kappa-migration")
        body = browser.js("return document.body.innerText")
        assert "make demo" in body and "make test" in body
        nav = browser.js("return [...document.querySelectorAll('.navbar a')].map(a => a.textContent.trim())")
        assert {"Getting started", "Concepts", "Guides", "Reference", "Contributing"} <= set(nav)

        reference = browser.js(
            "return [...document.querySelectorAll('a')].find(a => a.textContent.trim() === 'kappactl').href"
        )
        browser.get(reference)
        browser.wait_for("return document.readyState === 'complete'", what="the CLI reference to load")
        text = browser.js("return document.body.innerText")
        assert "kappactl kappa backfill [OPTIONS]" in text
        assert "<archive_root>/dt=" in text  # help placeholders are shown, not read as HTML tags
        assert "--exit-when-idle" in text and "--replay-from" in text
        headings = browser.js(
            "return [...document.querySelectorAll('h3')].map(h => h.firstChild.textContent.trim())"
        )
        assert {"kappactl validate", "kappactl cutover", "kappactl kappa"} <= set(headings)
    finally:
        browser.close()
