"""The migration console in headless Chromium, served by the real `kappactl serve`.

The warehouse is built with the real writers and commands: arm rows and dead letters with
`Warehouse.append`, validation runs with `kappactl validate`, the cutover history with
`kappactl cutover advance` and an automatic rollback by `kappactl cutover check`. The page
must draw that data, follow a change without a reload, refuse an action without
--allow-actions and audit one made with it. Set CONSOLE_SCREENSHOT=bench/results/console.png
to keep the screenshot (the test always takes one).
"""

from __future__ import annotations

import http.server
import json
import os
import subprocess
import threading
import time
from pathlib import Path

import httpx
import pytest

from migration.cutover.controller import default_actor
from pipelines.stack.processes import KAPPACTL
from pipelines.warehouse import Warehouse
from tests.migration.serving.actions import console_headers, metric
from tests.migration.serving.browser import Browser, find_browser, free_port, poll

REPO = Path(__file__).resolve().parents[3]
CONFIG = str(REPO / "config" / "demo.yaml")
T0 = 1_767_571_200_000  # 2026-01-05T00:00:00Z, a batch-period boundary of config/demo.yaml
TWEETS, WINDOWS = 200, 6


def arm_rows(pipeline: str, delta: int, pane_index: int) -> list[dict]:
    """Every 10th tweet differs by `delta`; emitted late enough that every window is final."""
    rows = []
    for tweet in range(1, TWEETS + 1):
        for w in range(WINDOWS):
            start = T0 + w * 10_000
            rows.append({
                "window_start": start, "window_end": start + 10_000, "tweet_id": tweet, "event_type": "like",
                "count": 1 + w + (delta if tweet % 10 == 0 else 0), "pipeline": pipeline,
                "emitted_at": T0 + 400_000 + pane_index, "pane": "FINAL", "pane_index": pane_index,
            })  # fmt: skip
    if pipeline == "kappa_stream":  # the stream's panes, and one that shows its watermark passed
        for row in rows:  # every window's end + allowed lateness (a tweet of its own: pending)
            row["pane"] = "ON_TIME"
        rows.append(
            {**rows[-1], "tweet_id": TWEETS + 1, "window_start": T0 + 300_000, "window_end": T0 + 310_000}
        )
    return rows


def kappactl(root: Path, *args: str, ok: tuple[int, ...] = (0,)) -> subprocess.CompletedProcess[str]:
    base = ["--config", CONFIG, "--warehouse", str(root / "warehouse"), "--policy", str(root / "policy.yaml")]
    proc = subprocess.run([*KAPPACTL, *args, *base], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode in ok, f"kappactl {' '.join(args)}: exit {proc.returncode}\n{proc.stderr[-2000:]}"
    return proc


def validate(root: Path, name: str, ok: int) -> None:
    kappactl(root, "validate", "--report-dir", str(root / "reports" / name), ok=(ok,))


@pytest.fixture(scope="module")
def migration(tmp_path_factory: pytest.TempPathFactory) -> Path:
    find_browser()  # skip (or fail under CI) before spending time on the warehouse
    root = tmp_path_factory.mktemp("console")
    (root / "policy.yaml").write_text("min_final_keys: 10\nconsecutive_passes: 1\ncanary_percent: 10\n")
    warehouse = Warehouse(root / "warehouse")
    warehouse.append("legacy_batch", arm_rows("legacy_batch", 0, 7))
    warehouse.append("batch_runs", [{
        "run_id": "b1", "period_start": T0, "period_end": T0 + 60_000, "started_at": T0 + 61_000,
        "finished_at": T0 + 62_000, "lines_read": 0, "events_counted": 0, "duplicates_removed": 0,
        "late_dropped": 0, "dead_lettered": 0, "status": "FINISHED", "pane_index": 7,
    }])  # fmt: skip
    warehouse.append("kappa_stream", arm_rows("kappa_stream", 0, 10))
    from pipelines.events import BadRecord

    now = int(time.time() * 1000)
    warehouse.append_dead_letters(
        [BadRecord(b"{", "not JSON: Expecting value at char 1", "kappa_stream", now - 60_000)] * 3
        + [BadRecord(b"{}", "unknown event_type 'zap'", "legacy_speed", now - 30_000)]
        + [BadRecord(b"x", "not JSON: old", "kappa_stream", now - 7_200_000)]  # older than an hour
    )
    validate(root, "pass-1", 0)
    kappactl(root, "cutover", "advance", "--reason", "first PASS run", "--actor", "alice")
    warehouse.append("kappa_stream", arm_rows("kappa_stream", 2, 11))  # kappa now disagrees
    validate(root, "fail-1", 1)
    kappactl(root, "cutover", "check", "--actor", "checker", ok=(1,))  # FAIL during CANARY: rolled back
    return root


class Server:
    def __init__(self, root: Path, *flags: str):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = open(root / f"serve-{self.port}.log", "wb")  # noqa: SIM115 - closed in stop()
        cmd = [*KAPPACTL, "serve", "--config", CONFIG, "--warehouse", str(root / "warehouse"), "--policy",
               str(root / "policy.yaml"), "--port", str(self.port), "--refresh", "0.3s", *flags]  # fmt: skip
        self.proc = subprocess.Popen(cmd, cwd=REPO, stdout=self.log, stderr=subprocess.STDOUT)

        def up() -> bool:
            assert self.proc.poll() is None, (root / f"serve-{self.port}.log").read_text()
            try:
                return httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200
            except httpx.TransportError:
                return False

        poll(up, 90, "kappactl serve to answer /healthz")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


@pytest.fixture
def browser(tmp_path: Path):
    b = Browser(tmp_path / "profile", tmp_path / "chromedriver.log")
    yield b
    b.close()


def text(browser: Browser, css: str) -> str:
    return browser.js(f"return document.querySelector({json.dumps(css)}).textContent")


def test_console_draws_the_migration_and_follows_it(migration: Path, browser: Browser) -> None:
    root = migration
    server = Server(root)
    try:
        status = httpx.get(f"{server.url}/v1/migration/status", timeout=30).json()
        history = [
            json.loads(line) for line in kappactl(root, "cutover", "history", "--json").stdout.splitlines()
        ]
        assert status["history"] == history and len(history) == 2
        assert [r["verdict"] for r in status["validation"]["runs"]] == ["PASS", "FAIL"]
        assert status["cutover"]["stage"] == "SHADOW" and status["dead_letters"]["total"] == 4

        browser.get(f"{server.url}/console?refresh_ms=500")
        browser.wait_for("return document.body.dataset.renders", what="the first render")
        assert text(browser, "#stage") == "SHADOW"
        # the timeline: newest first, both moves with who and why
        moves = browser.js("return [...document.querySelectorAll('#timeline li')].map(li => li.textContent)")
        assert len(moves) == 2
        assert "CANARY(10%) → SHADOW" in moves[0] and "checker [automatic]" in moves[0]
        assert "SHADOW → CANARY(10%)" in moves[1] and "alice: first PASS run" in moves[1]
        # the chart: one bar per run, stacked by class, coloured by verdict
        bars = browser.js("""return [...document.querySelectorAll('#chart g.run')].map(g => ({
            id: g.dataset.runId, verdict: g.dataset.verdict,
            unexplained: Number(g.querySelector('.seg.unexplained')?.dataset.keys || 0),
            same: Number(g.querySelector('.seg.same')?.dataset.keys || 0),
            colour: g.querySelector('rect.verdict').getAttribute('fill')}))""")
        runs = status["validation"]["runs"]
        assert [b["id"] for b in bars] == [r["run_id"] for r in runs]
        assert bars[0] == {"id": runs[0]["run_id"], "verdict": "PASS", "unexplained": 0,
                           "same": TWEETS * WINDOWS, "colour": "var(--pass)"}  # fmt: skip
        assert bars[1]["unexplained"] == TWEETS * WINDOWS // 10 and bars[1]["colour"] == "var(--fail)"
        # the latest report's unexplained keys, linked to its report.html
        link = browser.js("return document.querySelector('#report-link').getAttribute('href')")
        assert link == f"/v1/migration/reports/{runs[1]['run_id']}/report.html"
        assert httpx.get(server.url + link, timeout=10).text.lstrip().lower().startswith("<!doctype html")
        assert browser.js("return document.querySelectorAll('#unexplained tbody tr').length") == 10
        rows = browser.js(
            "return document.querySelector('#arms tr[data-arm=kappa_stream] .rows').textContent"
        )
        assert rows == f"{2 * (TWEETS * WINDOWS + 1):,}"  # two appends, each with its watermark row
        dead = text(browser, "#dead-letters tbody")
        assert "not JSON3" in dead and "unknown event_type1" in dead and text(browser, "#dl-total") == "(4)"
        assert browser.js("return document.getElementById('actions').hidden") is True

        # kappa corrects itself and a new PASS is recorded: the open page follows, no reload
        browser.js("window.__sameDocument = 42")
        Warehouse(root / "warehouse").append("kappa_stream", arm_rows("kappa_stream", 0, 12))
        validate(root, "pass-2", 0)
        browser.wait_for("return document.querySelectorAll('#chart g.run').length === 3", 60, "a third bar")
        assert (
            browser.js("return [...document.querySelectorAll('#chart g.run')].at(-1).dataset.verdict")
            == "PASS"
        )
        assert text(browser, "#gate").startswith("Gate open")
        assert browser.js("return window.__sameDocument") == 42

        refused = httpx.post(f"{server.url}/v1/migration/advance", json={"reason": "x", "confirm": True})
        assert refused.status_code == 403 and "--allow-actions" in refused.json()["error"]
        assert kappactl(root, "cutover", "status", "--json").stdout.count('"stage": "SHADOW"') == 1
    finally:
        server.stop()


def test_console_action_with_allow_actions_is_gated_and_audited(migration: Path, browser: Browser) -> None:
    root = migration
    if json.loads(kappactl(root, "cutover", "status", "--json").stdout)["gate"]["ok"] is False:
        Warehouse(root / "warehouse").append("kappa_stream", arm_rows("kappa_stream", 0, 13))
        validate(root, "pass-3", 0)  # this test alone: the gate needs a PASS since the rollback
    server = Server(root, "--allow-actions")
    try:
        browser.get(f"{server.url}/console?refresh_ms=500")
        browser.wait_for("return document.body.dataset.renders", what="the first render")
        assert browser.js("return document.getElementById('actions').hidden") is False
        # an empty reason is refused by the server even if a page skipped its own check
        with httpx.Client(base_url=server.url, timeout=30) as http:
            page = console_headers(http)
            empty = http.post("/v1/migration/advance", json={"reason": " ", "confirm": True}, headers=page)
            unconfirmed = http.post("/v1/migration/advance", json={"reason": "x"}, headers=page)
        assert empty.status_code == 400 and unconfirmed.status_code == 400
        browser.click("#advance-btn")
        browser.wait_for("return document.getElementById('confirm').open", what="the confirmation dialog")
        browser.type("#confirm-reason", "kappa agrees again after the fix")
        browser.click("#confirm-ok")
        browser.wait_for("return document.getElementById('stage').dataset.stage === 'CANARY'", 30, "CANARY")
        assert browser.js("return document.querySelectorAll('#timeline li').length") == 3
        entry = json.loads(kappactl(root, "cutover", "history", "--json").stdout.splitlines()[-1])
        assert entry["reason"] == "kappa agrees again after the fix"
        assert entry["actor"] == f"{default_actor()} (console)"  # the user running kappactl serve
        assert entry["from_stage"] == "SHADOW" and entry["to_stage"] == "CANARY" and entry["evidence"]
        metrics = httpx.get(f"{server.url}/metrics", timeout=10).text
        assert "kappa_serving_migration_cutover_transitions 3" in metrics
        assert 'kappa_serving_migration_validation_last_verdict{verdict="PASS"} 1' in metrics
        shot = Path(os.environ.get("CONSOLE_SCREENSHOT") or root / "console.png")
        browser.screenshot(shot if shot.is_absolute() else REPO / shot)
        assert (shot if shot.is_absolute() else REPO / shot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    finally:
        server.stop()


ATTACK_BODY = '{"reason": "forged", "confirm": true}'
# Another site's pages (on another loopback port): a form that posts a JSON-looking text/plain
# body (the classic cross-site JSON request) and scripts that post with and without CORS.
ATTACK_PAGES = {
    "/form.html": """<!doctype html><form id="f" method="POST" enctype="text/plain" action="{target}">
<input name='{{"reason": "forged", "confirm": true, "x": "' value='"}}'></form>
<script>document.getElementById("f").submit()</script>""",
    "/fetch.html": """<!doctype html><script>
const body = JSON.stringify({{reason: "forged", confirm: true}});
Promise.allSettled([
  fetch("{target}", {{method: "POST", mode: "no-cors", headers: {{"Content-Type": "text/plain"}}, body}}),
  fetch("{target}", {{method: "POST", headers: {{"Content-Type": "application/json"}}, body}}),
]).then((r) => {{ document.body.dataset.done = r.map((x) => x.status).join(","); }});
</script>""",
}


class AttackSite:
    """A second tiny server on another loopback port, serving ATTACK_PAGES aimed at `target`."""

    def __init__(self, target: str):
        pages = {path: page.format(target=target).encode() for path, page in ATTACK_PAGES.items()}

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the name http.server calls
                page = pages.get(self.path)
                self.send_response(200 if page else 404)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.end_headers()
                self.wfile.write(page or b"")

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def cutover_files(root: Path) -> tuple[dict, str]:
    """The state and its audit log, as the CLI reads them."""
    state = json.loads(kappactl(root, "cutover", "status", "--json").stdout)["state"]
    return state, kappactl(root, "cutover", "history", "--json").stdout


def ensure_canary(root: Path) -> None:
    """CANARY, with the CLI: a rollback accepted by mistake would show."""
    if json.loads(kappactl(root, "cutover", "status", "--json").stdout)["state"]["stage"] == "CANARY":
        return
    Warehouse(root / "warehouse").append("kappa_stream", arm_rows("kappa_stream", 0, 14))
    validate(root, "pass-4", 0)
    kappactl(root, "cutover", "advance", "--reason", "for the cross-site test", "--actor", "carol")


def rollbacks(server: Server, status: int) -> float:
    text = httpx.get(f"{server.url}/metrics", timeout=10).text
    return metric(text, f'kappa_serving_requests_total{{route="/v1/migration/rollback",status="{status}"}}')


def test_console_actions_refuse_other_sites_rebinding_and_text_plain_and_accept_the_page(
    migration: Path, browser: Browser, tmp_path: Path
) -> None:
    root = migration
    ensure_canary(root)
    server = Server(root, "--allow-actions")
    attacker = AttackSite(f"{server.url}/v1/migration/rollback")
    rebinding = Browser(tmp_path / "profile-rebind", tmp_path / "chromedriver-rebind.log",
                        ("--host-resolver-rules=MAP evil.example 127.0.0.1",))  # fmt: skip
    try:
        before = cutover_files(root)
        assert before[0]["stage"] == "CANARY"

        # another site's form: the browser navigates to our answer, a 403
        browser.get(f"{attacker.url}/form.html")
        browser.wait_for("return location.href.endsWith('/v1/migration/rollback')", what="the form's post")
        answer = browser.wait_for("return document.body && document.body.innerText", what="the answer")
        assert json.loads(answer)["type"] == "ActionRefused"
        assert browser.js("return performance.getEntriesByType('navigation')[0].responseStatus") == 403
        # another site's scripts: the simple request is refused (403), the JSON one never leaves
        # the browser (its CORS preflight gets no Access-Control-Allow-Origin)
        browser.get(f"{attacker.url}/fetch.html")
        assert (
            browser.wait_for("return document.body.dataset.done", what="the fetches") == "fulfilled,rejected"
        )
        poll(lambda: rollbacks(server, 403) == 2, 30, "two refused rollbacks")

        # DNS rebinding: evil.example resolves to 127.0.0.1; its console page has no token and
        # its own button is refused because the Host is not the server's
        rebinding.get(f"http://evil.example:{server.port}/console?refresh_ms=500")
        rebinding.wait_for("return document.body.dataset.renders", what="the rebound page's render")
        assert rebinding.js("return document.querySelector('meta[name=console-token]').content") == ""
        rebinding.click("#rollback-btn")
        rebinding.wait_for("return document.getElementById('confirm').open", what="the confirmation dialog")
        rebinding.type("#confirm-reason", "forged through a rebound name")
        rebinding.click("#confirm-ok")
        assert rebinding.wait_for("return document.getElementById('action-result').dataset.status") == "403"

        # the console page itself, sending text/plain with the right token: 415
        browser.get(f"{server.url}/console?refresh_ms=500")
        browser.wait_for("return document.body.dataset.renders", what="the first render")
        status = browser.js("""return fetch('/v1/migration/rollback', {method: 'POST', body: arguments[0],
            headers: {'Content-Type': 'text/plain',
                      'X-Console-Token': document.querySelector('meta[name=console-token]').content}})
            .then((r) => r.status)""", ATTACK_BODY)  # fmt: skip
        assert status == 415
        assert rollbacks(server, 403) == 3 and rollbacks(server, 415) == 1
        assert cutover_files(root) == before, "a refused request changed the state or the audit log"

        # and the page's own button works
        browser.click("#rollback-btn")
        browser.wait_for("return document.getElementById('confirm').open", what="the confirmation dialog")
        browser.type("#confirm-reason", "rolled back from the console")
        browser.click("#confirm-ok")
        browser.wait_for("return document.getElementById('stage').dataset.stage === 'SHADOW'", 30, "SHADOW")
        entry = json.loads(kappactl(root, "cutover", "history", "--json").stdout.splitlines()[-1])
        assert (entry["action"], entry["reason"]) == ("rollback", "rolled back from the console")
        assert entry["actor"] == f"{default_actor()} (console)"
    finally:
        rebinding.close()
        attacker.stop()
        server.stop()
