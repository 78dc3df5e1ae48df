"""deploy/argo/analysis-template.yaml and deploy/flagger/canary.yaml against the CRDs their
releases ship, taken from the Go module proxy (argo-rollouts' manifests/crds, Flagger's
artifacts/flagger/crd.yaml): kube-openapi's schema validator and a walk for undeclared
fields, in tests/argo/crd_test.go. Plus what the schemas cannot say: the hooks and the metric
point at the gate routes the serving API has, and the conditions name its verdicts."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from migration.serving.gate_api import HOOKS, VERDICTS
from tests.argo.test_argo_webmetric import MODULE, go, go_env
from tests.migration.serving.gate_evidence import REPO

TEMPLATE = REPO / "deploy" / "argo" / "analysis-template.yaml"
CANARY = REPO / "deploy" / "flagger" / "canary.yaml"
FLAGGER = "github.com/fluxcd/flagger@v1.36.1"  # the release the Canary snippet targets


def module_dir(*args: str) -> Path:
    done = subprocess.run(
        [go(), *args], cwd=MODULE, env=go_env(), capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr
    return Path(json.loads(done.stdout)["Dir"])


@pytest.mark.timeout(2400)  # a cold Go cache builds Kubernetes libraries first (minutes)
def test_the_manifests_match_their_crds(tmp_path: Path) -> None:
    argo = module_dir("list", "-m", "-json", "github.com/argoproj/argo-rollouts")
    flagger = module_dir("mod", "download", "-json", FLAGGER)
    bad = tmp_path / "bad-canary.yaml"  # the check must catch a typo and a wrong enum value
    text = CANARY.read_text().replace("progressDeadlineSeconds", "progressDeadlineSecond")
    bad.write_text(text.replace("type: confirm-promotion", "type: confirm-promote"))
    cases = {
        TEMPLATE: argo / "manifests" / "crds" / "analysis-template-crd.yaml",
        CANARY: flagger / "artifacts" / "flagger" / "crd.yaml",
        bad: flagger / "artifacts" / "flagger" / "crd.yaml",
    }

    def run(pairs: dict[Path, Path]) -> subprocess.CompletedProcess[str]:
        env = {**go_env(), "KAPPA_CRD_CASES": ",".join(f"{m}={c}" for m, c in pairs.items())}
        return subprocess.run([go(), "test", "-count=1", "-run", "TestDeployManifestsMatchTheirCRDs", "-v", "."],
                              cwd=MODULE, env=env, capture_output=True, text=True, timeout=1200)  # fmt: skip

    good = run({TEMPLATE: cases[TEMPLATE], CANARY: cases[CANARY]})
    assert good.returncode == 0, good.stdout + good.stderr
    assert "valid AnalysisTemplate" in good.stdout and "valid Canary" in good.stdout
    refused = run({bad: cases[bad]})
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert ".spec.progressDeadlineSecond is not a field of Canary" in refused.stdout
    assert "spec.analysis.webhooks[1].type in body should be one of" in refused.stdout


def test_the_manifests_call_the_gate_routes_the_server_has() -> None:
    template = yaml.safe_load(TEMPLATE.read_text())
    (metric,) = template["spec"]["metrics"]
    url = next(a["value"] for a in template["spec"]["args"] if a["name"] == "gate-url")
    assert url.endswith("/v1/migration/gate") and metric["provider"]["web"]["url"] == "{{args.gate-url}}"
    assert metric["provider"]["web"]["jsonPath"] == "{$.verdict}"
    named = {metric["successCondition"].split('"')[1], metric["failureCondition"].split('"')[1]}
    assert named == {"PASS", "FAIL"} <= set(VERDICTS)
    hooks = {
        h["type"]: h["url"].rsplit("/", 1)[1]
        for h in yaml.safe_load(CANARY.read_text())["spec"]["analysis"]["webhooks"]
    }
    assert hooks == {"rollout": "check", "confirm-promotion": "promote", "rollback": "rollback"}
    assert set(hooks.values()) == set(HOOKS)


@pytest.mark.parametrize("path", [TEMPLATE, CANARY])
def test_the_manifests_are_single_yaml_documents(path: Path) -> None:
    assert len(list(yaml.safe_load_all(path.read_text()))) == 1
