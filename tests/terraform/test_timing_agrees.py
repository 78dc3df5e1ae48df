"""Terraform's timing validation and `pipelines/config.py` give the same verdict on the same values.

Terraform's side is Terraform itself: the `timing` (and `batch_period_seconds`) variable
blocks, copied verbatim out of the modules and the dev env into a scratch root that calls one
module instance per case, are checked by `terraform plan` (no provider, nothing to reach).
The Python side is what a flex template does with the parameters Terraform passes: the
template's `seconds_settings` into `load_config` of config/production.yaml, and for the legacy
batch reading the Cloud Storage archive `batch_delay_error`.

Terraform passes whole seconds (the templates' parameters are positive integers), so the two
must agree on every whole value; a fractional value is refused by Terraform and by the templates.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from kappa.flex_template import main as kappa_template
from lambda_legacy.flex_template import main as legacy_template
from pipelines.config import MAX_DURATION_S, batch_delay_error, load_config
from pipelines.errors import ConfigError
from pipelines.flex import seconds_settings
from tests.terraform.hcl import ENV_DIR, MODULES_DIR, ROOT, block_text, terraform_binary

PRODUCTION = ROOT / "config" / "production.yaml"
DEFAULT = {  # envs/dev's default timing: the production profile
    "window_size_seconds": 60,
    "allowed_lateness_seconds": 3600,
    "early_firing_seconds": 10,
    "dedup_horizon_seconds": 3600,
    "batch_period_seconds": 3600,
    "batch_delay_seconds": 900,
}
CONFIG_KEYS = {**kappa_template.TIMING, **legacy_template.TIMING}  # Terraform name -> time.<key>
EDGES = {
    "window_size_seconds": [-1, 0, 1, 7, 59, 60, 61, 3600],
    "allowed_lateness_seconds": [-1, 0, 1, 86400],
    "early_firing_seconds": [0, 1],
    "dedup_horizon_seconds": [0, 1],
    "batch_period_seconds": [-60, 0, 30, 59, 60, 90, 120, 420, 900, 1800, 3600]
    + [5400, 7200, 25200, 86400, 90000],
    "batch_delay_seconds": [-1, 0, 1, 299, 300, 3600],
}
COMBINED = [  # a period against the window
    {"window_size_seconds": 7, "batch_period_seconds": 420},
    {"window_size_seconds": 7, "batch_period_seconds": 120},
    {"window_size_seconds": 900, "batch_period_seconds": 7200},
    {"window_size_seconds": 5400, "batch_period_seconds": 10800},
    {"window_size_seconds": 3600, "batch_period_seconds": 60},
]
CASES = [{**DEFAULT, name: value} for name, values in EDGES.items() for value in values]
CASES += [{**DEFAULT, **combo} for combo in COMBINED]
FRACTIONAL = [{**DEFAULT, name: 1.5} for name in DEFAULT] + [{**DEFAULT, "batch_period_seconds": 3600.5}]

# (module name, file, variable, the case's value for it): every block that judges a timing.
DATAFLOW = ("dataflow", MODULES_DIR / "dataflow" / "variables.tf", "timing", lambda case: case)
BIGQUERY = (
    "bigquery",
    MODULES_DIR / "bigquery" / "variables.tf",
    "batch_period_seconds",
    lambda case: case["batch_period_seconds"],
)
DEV = ("dev", ENV_DIR / "variables.tf", "timing", lambda case: case)
_REFUSED = re.compile(r'Error: Invalid value for variable\s+on main\.tf line \d+, in module "(\w+)"')


def python_accepts(case: dict[str, float], archive: str) -> bool:
    """What the flex templates do with these parameters (for the legacy batch, on `archive`)."""
    params = {name: str(value) for name, value in case.items()}
    try:
        args = seconds_settings(params, CONFIG_KEYS)
        overrides = dict(arg.split("=", 1) for arg in args[1::2])
        config = load_config(PRODUCTION, overrides)
    except ConfigError:
        return False
    return batch_delay_error(config.time, config.gcp, archive) is None


def terraform_refuses(blocks, cases: list[dict[str, float]], scratch: Path) -> dict[int, set[str]]:
    """Per case, the names of the blocks whose validation refused it (via `terraform plan`)."""
    binary = terraform_binary()
    if binary is None:
        pytest.skip("terraform or tofu is missing: run `make setup` or tools/setup_terraform.sh")
    calls = []
    for name, path, variable, value_of in blocks:
        (scratch / name).mkdir()
        block = block_text(path.read_text(encoding="utf-8"), f'variable "{variable}"')
        (scratch / name / "variables.tf").write_text(block + "\n", encoding="utf-8")
        for i, case in enumerate(cases):
            value = json.dumps(value_of(case)).replace(":", " =")
            calls.append(f'module "{name}_{i}" {{\n  source = "./{name}"\n  {variable} = {value}\n}}\n')
    (scratch / "main.tf").write_text("\n".join(calls), encoding="utf-8")
    run = {"cwd": scratch, "capture_output": True, "text": True, "timeout": 300, "check": False}
    init = subprocess.run([binary, "init", "-backend=false", "-input=false", "-no-color"], **run)
    assert init.returncode == 0, init.stdout + init.stderr
    plan = subprocess.run([binary, "plan", "-input=false", "-no-color", "-lock=false"], **run)
    errors = plan.stderr.count("Error: ")
    refused = _REFUSED.findall(plan.stderr)
    assert len(refused) == errors, f"an error other than a refused value:\n{plan.stderr[-3000:]}"
    assert (plan.returncode != 0) == bool(refused), plan.stdout[-2000:] + plan.stderr[-2000:]
    verdicts: dict[int, set[str]] = {i: set() for i in range(len(cases))}
    for module in refused:
        name, _, i = module.rpartition("_")
        verdicts[int(i)].add(name)
    return verdicts


def test_the_dataflow_module_agrees_with_the_config(tmp_path: Path) -> None:
    refused = terraform_refuses([DATAFLOW], CASES, tmp_path)
    disagree = [
        (case, "terraform refuses" if refused[i] else "terraform accepts")
        for i, case in enumerate(CASES)
        if bool(refused[i]) == python_accepts(case, archive=".local/archive")
    ]
    assert not disagree, disagree
    assert sum(not r for r in refused.values()) >= 15  # a real range of accepted values
    assert len(CASES) - sum(not r for r in refused.values()) >= 15  # and of refused ones


def test_the_dev_env_agrees_with_the_cloud_legacy_batch(tmp_path: Path) -> None:
    """Planning envs/dev checks its own block and those of the modules it passes the timing to;
    the legacy batch there reads the Cloud Storage archive (batch_delay at least max_duration)."""
    refused = terraform_refuses([DEV, DATAFLOW, BIGQUERY], CASES, tmp_path)
    archive = "gs://project-interactions-archive/interactions/"
    disagree = [
        (case, sorted(refused[i]) or "terraform accepts")
        for i, case in enumerate(CASES)
        if bool(refused[i]) == python_accepts(case, archive)
    ]
    assert not disagree, disagree
    delays = {case["batch_delay_seconds"]: bool(refused[i]) for i, case in enumerate(CASES)}
    assert delays[299] and not delays[300]


def test_the_archive_max_duration_terraform_sets_is_the_one_the_config_assumes() -> None:
    pubsub = (MODULES_DIR / "pubsub" / "variables.tf").read_text(encoding="utf-8")
    default = re.search(r'max_duration\s*=\s*optional\(string, "(\d+)s"\)', pubsub)
    assert default, "no max_duration default in the pubsub module"
    assert float(default.group(1)) == MAX_DURATION_S
    assert "max_duration" not in (ENV_DIR / "main.tf").read_text(encoding="utf-8")  # the default holds


def test_fractional_seconds_are_refused_by_terraform_and_by_the_templates(tmp_path: Path) -> None:
    refused = terraform_refuses([DATAFLOW, BIGQUERY], FRACTIONAL, tmp_path)
    assert all(refused.values()), [case for i, case in enumerate(FRACTIONAL) if not refused[i]]
    for case in FRACTIONAL:
        with pytest.raises(ConfigError, match="a positive whole number of seconds"):
            seconds_settings({name: str(value) for name, value in case.items()}, CONFIG_KEYS)
    for template in (kappa_template, legacy_template):
        for parameter in json.loads(template.METADATA.read_text(encoding="utf-8"))["parameters"]:
            if parameter["name"] in CONFIG_KEYS:
                assert parameter["regexes"] == ["^[1-9][0-9]*$"], parameter
