"""Flagger's own webhook client (github.com/fluxcd/flagger/pkg/controller.CallWebhook, from the
Go module proxy: what the Flagger controller runs for each of a Canary's analysis.webhooks)
calls the hooks of deploy/flagger/canary.yaml on a live `kappactl serve`, whose gate is
INCONCLUSIVE, then PASS, then FAIL (a FAIL run during CANARY). Flagger takes 200-202 as
success: confirm-promotion must succeed only on PASS, rollback only on FAIL, and the rollout
check on anything but FAIL.

The Go test module is tests/flagger (go.mod/go.sum pinned), built by `make setup` into Go's own caches (see
tests/argo/test_argo_webmetric.py); without `go` the test is skipped (under CI=true it fails)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from migration.cutover import advance
from migration.policy import load_policy
from tests.argo.test_argo_webmetric import go, go_env
from tests.migration.serving.gate_evidence import Evidence, Serve

MODULE = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def webhook_test(tmp_path_factory: pytest.TempPathFactory) -> Path:
    binary = tmp_path_factory.mktemp("flagger") / "webhook.test"
    built = subprocess.run([go(), "test", "-c", "-o", str(binary), "."], cwd=MODULE, env=go_env(),
                           capture_output=True, text=True, timeout=1800)  # fmt: skip
    assert built.returncode == 0, built.stdout + built.stderr
    return binary


def call_hooks(binary: Path, url: str, promote: str, rollback: str, check: str) -> str:
    want = f"confirm-promotion={promote},rollback={rollback},rollout={check}"
    done = subprocess.run([str(binary), "-test.run", "TestGateHooksWithFlaggersClient", "-test.v"], cwd=MODULE,
                          env={**go_env(), "KAPPA_GATE_URL": url, "KAPPA_HOOKS_WANT": want},
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count(" hook: ") == 3, done.stdout  # all three hooks of the snippet ran
    return done.stdout


@pytest.mark.timeout(2400)  # a cold Go cache builds Kubernetes libraries first (minutes)
def test_flaggers_webhook_client_follows_the_gate(webhook_test: Path, tmp_path: Path) -> None:
    evidence = Evidence(tmp_path)
    server = Serve(evidence)
    try:
        server.wait_for_verdict("INCONCLUSIVE")
        call_hooks(webhook_test, server.url, promote="refused", rollback="refused", check="ok")
        evidence.run("PASS")
        evidence.run("PASS")
        server.wait_for_verdict("PASS")
        call_hooks(webhook_test, server.url, promote="ok", rollback="refused", check="ok")
        advance(
            evidence.store, load_policy(evidence.policy_path), evidence.gate_runs(), "two PASS runs", "test"
        )
        evidence.run("FAIL")
        server.wait_for_verdict("FAIL")
        call_hooks(webhook_test, server.url, promote="refused", rollback="ok", check="refused")
    finally:
        server.stop()
