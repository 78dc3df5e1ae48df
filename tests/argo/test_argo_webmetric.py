"""Argo Rollouts' own web metric provider (github.com/argoproj/argo-rollouts/metricproviders/webmetric,
from the Go module proxy) runs deploy/argo/analysis-template.yaml's metric against a live
`kappactl serve` whose gate is PASS, then INCONCLUSIVE (just advanced: no run since), then
FAIL (a FAIL run during CANARY), then unreadable (a corrupt validation_runs segment).

The Go test module is tests/argo (go.mod/go.sum pinned); `make setup` builds it once into Go's
own module and build caches, so the test's build takes seconds. Without `go` the test is skipped (under
CI=true it fails: `make setup` needs Go anyway)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest

from migration.cutover import advance
from migration.policy import load_policy
from tests.migration.serving.gate_evidence import Evidence, Serve

MODULE = Path(__file__).resolve().parent


def go_env() -> dict[str, str]:
    """Go's own module and build caches (make setup warms them: tools/setup.sh go_tests)."""
    return {**os.environ, "GOFLAGS": "-modcacherw -mod=readonly", "GOTOOLCHAIN": "local"}


def go() -> str:
    found = shutil.which("go")
    if found:
        return found
    message = "go is missing: install Go 1.24 or newer (make setup needs it too)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="module")
def webmetric_test(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Go test binary (built once; the module proxy only on a cold cache)."""
    binary = tmp_path_factory.mktemp("argo") / "webmetric.test"
    built = subprocess.run([go(), "test", "-c", "-o", str(binary), "."], cwd=MODULE, env=go_env(),
                           capture_output=True, text=True, timeout=1200)  # fmt: skip
    assert built.returncode == 0, built.stdout + built.stderr
    return binary


def argo_phase(binary: Path, url: str, want: str) -> str:
    cases = f"{url}/v1/migration/gate={want}"
    done = subprocess.run([str(binary), "-test.run", "TestGateAsArgoWebMetric", "-test.v"], cwd=MODULE,
                          env={**go_env(), "KAPPA_GATE_CASES": cases}, capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert f": {want} (value " in done.stdout, done.stdout  # the case ran: it was not skipped
    return done.stdout


@pytest.mark.timeout(2400)  # a cold Go cache builds Kubernetes libraries first (minutes)
def test_argo_rollouts_web_metric_follows_the_gate(webmetric_test: Path, tmp_path: Path) -> None:
    evidence = Evidence(tmp_path)
    server = Serve(evidence)
    try:
        runs = [evidence.run("PASS"), evidence.run("PASS")]
        assert server.wait_for_verdict("PASS")["advance_allowed"] is True
        assert ': Successful (value "PASS")' in argo_phase(webmetric_test, server.url, "Successful")

        policy = load_policy(evidence.policy_path)
        advance(evidence.store, policy, evidence.gate_runs(), "two PASS runs", "test")
        doc = server.wait_for_verdict("INCONCLUSIVE")
        assert doc["state"]["stage"] == "CANARY" and doc["consecutive_passes"] == 0
        assert ': Inconclusive (value "INCONCLUSIVE")' in argo_phase(
            webmetric_test, server.url, "Inconclusive"
        )

        evidence.run("FAIL", unexplained=12)
        doc = server.wait_for_verdict("FAIL")
        assert doc["rollback"] is True and doc["verdicts"]["FAIL"] == 1 and runs[0] not in doc["evidence"]
        assert ': Failed (value "FAIL")' in argo_phase(webmetric_test, server.url, "Failed")

        evidence.corrupt_runs()
        server.wait_for(lambda: _status(server) == 503, "the gate to answer 503")
        out = argo_phase(webmetric_test, server.url, "Error")
        assert "non 2xx response code: 503" in out
    finally:
        server.stop()


def _status(server: Serve) -> int:
    return httpx.get(f"{server.url}/v1/migration/gate", timeout=10).status_code
