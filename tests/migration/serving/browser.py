"""A few W3C WebDriver commands against Debian's chromedriver, over plain HTTP with httpx:
enough to load a page, read it with JavaScript, type, click and take a screenshot."""

from __future__ import annotations

import base64
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Any, Callable

import httpx
import pytest

ELEMENT = "element-6066-11e4-a52e-4f735466cecf"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1400,1400",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def find_browser() -> tuple[str, str]:
    """(chromium, chromedriver); skip without them, but fail under CI (which installs them)."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if chromium and driver:
        return chromium, driver
    message = "headless Chromium is missing: apt-get install -y chromium chromium-driver (.ci/run does)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


class Browser:
    """One chromedriver process and one headless Chromium session with a fresh profile."""

    def __init__(self, profile_dir: Path, log_path: Path, extra_args: tuple[str, ...] = ()):
        chromium, driver = find_browser()
        self.port = free_port()
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in close()
        self.driver = subprocess.Popen(
            [driver, f"--port={self.port}", "--allowed-ips=127.0.0.1"], stdout=self._log, stderr=self._log
        )
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=60)
        self._wait_ready()
        options = {
            "binary": chromium,
            "args": [*CHROMIUM_ARGS, *extra_args, f"--user-data-dir={profile_dir}"],
        }
        caps = {"capabilities": {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": options}}}
        self.session = self._call("POST", "/session", caps)["sessionId"]

    def _wait_ready(self, timeout_s: float = 30) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.driver.poll() is not None:
                raise RuntimeError(f"chromedriver exited with code {self.driver.returncode}")
            try:
                if self.http.get("/status").json()["value"]["ready"]:
                    return
            except (httpx.HTTPError, ValueError, KeyError):
                pass
            time.sleep(0.1)
        raise RuntimeError("chromedriver did not become ready")

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        response = self.http.request(method, path, json=body)
        value = response.json().get("value")
        if response.status_code != 200:
            raise RuntimeError(f"webdriver {method} {path}: {response.status_code} {value}")
        return value

    def _s(self, path: str) -> str:
        return f"/session/{self.session}{path}"

    def get(self, url: str) -> None:
        self._call("POST", self._s("/url"), {"url": url})

    def js(self, script: str, *args: Any) -> Any:
        return self._call("POST", self._s("/execute/sync"), {"script": script, "args": list(args)})

    def current_url(self) -> str:
        return self._call("GET", self._s("/url"))

    def wait_for(self, script: str, timeout_s: float = 30, what: str = "") -> Any:
        """Poll a JavaScript expression (`return ...`) until it is truthy; its value."""
        deadline = time.monotonic() + timeout_s
        last: Any = None
        while time.monotonic() < deadline:
            last = self.js(script)
            if last:
                return last
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {what or script} (last value {last!r})")

    def find(self, css: str) -> str:
        return self._call("POST", self._s("/element"), {"using": "css selector", "value": css})[ELEMENT]

    def click(self, css: str) -> None:
        self._call("POST", self._s(f"/element/{self.find(css)}/click"), {})

    def type(self, css: str, text: str) -> None:
        self._call("POST", self._s(f"/element/{self.find(css)}/value"), {"text": text})

    def screenshot(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(self._call("GET", self._s("/screenshot"))))

    def close(self) -> None:
        try:
            self._call("DELETE", self._s(""))
        except (RuntimeError, httpx.HTTPError):
            pass
        finally:
            self.http.close()
            self.driver.terminate()
            try:
                self.driver.wait(10)
            except subprocess.TimeoutExpired:
                self.driver.kill()
            self._log.close()


def poll(check: Callable[[], Any], timeout_s: float = 30, what: str = "") -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if value := check():
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")
