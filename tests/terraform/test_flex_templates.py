"""The flex templates against what Terraform launches them with, and what they run.

Terraform's Dataflow job (kappa stream) and Cloud Scheduler job (legacy batch) pass
parameters by name; Dataflow refuses a launch whose names the template's metadata.json
does not declare, or that misses a required one. Each template's main.py turns its
parameters into one kappactl command, checked here against the CLI itself.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import click
import pytest

from kappa.flex_template import main as kappa_template
from lambda_legacy.flex_template import main as legacy_template
from migration.cli import cli
from pipelines.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
DATAFLOW_TF = (ROOT / "terraform" / "modules" / "dataflow" / "main.tf").read_text(encoding="utf-8")


def block_after(marker: str, within: str = "") -> str:
    """The text of the {...} block that follows `marker` (after `within`) in the dataflow module."""
    start = DATAFLOW_TF.index("{", DATAFLOW_TF.index(marker, DATAFLOW_TF.index(within)))
    depth = 0
    for i in range(start, len(DATAFLOW_TF)):
        depth += {"{": 1, "}": -1}.get(DATAFLOW_TF[i], 0)
        if depth == 0:
            return DATAFLOW_TF[start : i + 1]
    raise AssertionError(f"unbalanced block after {marker}")


def keys(block: str) -> set[str]:
    return set(re.findall(r"^\s*(\w+)\s*=", block, re.M))


def metadata(template) -> dict[str, dict]:
    return {p["name"]: p for p in json.loads(template.METADATA.read_text())["parameters"]}


TERRAFORM_PARAMETERS = {
    "kappa": keys(block_after("timing_parameters = {"))
    | keys(block_after("parameters = merge(local.timing_parameters,")),
    "legacy": keys(
        block_after("parameters = {", within='resource "google_cloud_scheduler_job" "legacy_batch"')
    ),
}
TEMPLATES = {"kappa": kappa_template, "legacy": legacy_template}


@pytest.mark.parametrize("name", TEMPLATES)
def test_terraform_passes_only_declared_parameters_and_every_required_one(name):
    declared = metadata(TEMPLATES[name])
    passed = TERRAFORM_PARAMETERS[name]
    assert passed, "no parameters found in the dataflow module"
    assert passed <= set(declared), f"undeclared: {passed - set(declared)}"
    required = {n for n, p in declared.items() if not p.get("isOptional")}
    assert required <= passed, f"required but not passed: {required - passed}"
    for parameter in passed:
        for pattern in declared[parameter].get("regexes", []):
            re.compile(pattern)


def _parses(argv: list[str]) -> click.Context:
    """kappactl's own click command accepts `argv` (a group, a command, its options)."""
    group = cli.get_command(click.Context(cli), argv[0])
    sub = group.commands[argv[1]] if isinstance(group, click.Group) else group
    return sub.make_context(argv[1], argv[2:])


def test_kappa_template_runs_the_stream_with_terraforms_parameters():
    argv = [
        "--subscription=projects/p/subscriptions/kappa",
        "--output_table=p.kappa.kappa_stream",
        "--dead_letter_table=p.migration.dead_letter",
        "--window_size_seconds=60",
        "--allowed_lateness_seconds=3600",
        "--runner=DataflowRunner",
        "--project=p",
    ]
    args = kappa_template.kappactl_args(argv)
    assert args[:4] == ["kappa", "run", "--config", "config/production.yaml"]
    assert args[-2:] == ["--runner=DataflowRunner", "--project=p"]  # Beam's, untouched
    joined = " ".join(args)
    assert "--set time.window_size=60s --set time.kappa_allowed_lateness=3600s" in joined
    assert "--bigquery-table p:kappa.kappa_stream" in joined
    assert "--bigquery-dead-letter-table p:migration.dead_letter" in joined
    ctx = _parses(args)
    assert ctx.params["subscription"] == "projects/p/subscriptions/kappa"
    assert ctx.params["bigquery_table"] == "p:kappa.kappa_stream"


def test_kappa_template_backfill():
    args = kappa_template.kappactl_args(
        ["--command=backfill", "--archive_root=gs://a/archive", "--from=2026-01-05T00:00:00Z",
         "--output_table=p:kappa.kappa_backfill"]
    )  # fmt: skip
    ctx = _parses(args)
    assert (ctx.params["archive"], ctx.params["start"]) == ("gs://a/archive", "2026-01-05T00:00:00Z")


def test_legacy_template_runs_the_latest_period_into_bigquery():
    argv = [
        "--archive_root=gs://a/archive",
        "--output_table=p.legacy.legacy_batch",
        "--batch_runs_table=p.legacy.batch_runs",
        "--dead_letter_table=p.migration.dead_letter",
        "--batch_period_seconds=3600",
        "--batch_delay_seconds=900",
        "--temp_location=gs://t/tmp",
    ]
    args = legacy_template.kappactl_args(argv)
    assert args[-2:] == ["--latest", "--temp_location=gs://t/tmp"]
    ctx = _parses(args)
    assert ctx.params["bigquery_dataset"] == "p:legacy"
    assert ctx.params["bigquery_dead_letter_table"] == "migration.dead_letter"
    assert ctx.params["latest"] and ctx.params["archive"] == "gs://a/archive"
    rerun = legacy_template.kappactl_args([*argv[:3], "--period_start=2026-01-05T00:00:00Z"])
    assert rerun[-2:] == ["--period-start", "2026-01-05T00:00:00Z"]


@pytest.mark.parametrize(
    "argv, words",
    [
        (["--output_table=p.legacy.legacy_batch", "--batch_runs_table=p.legacy.batch_runs"], "archive_root"),
        (["--archive_root=gs://a", "--output_table=p.legacy.other", "--batch_runs_table=p.legacy.batch_runs"],
         "writes legacy_batch"),
        (["--archive_root=gs://a", "--output_table=p.legacy.legacy_batch", "--batch_runs_table=p.x.batch_runs"],
         "one dataset"),
        (["--archive_root=gs://a", "--output_table=p.legacy.legacy_batch", "--batch_runs_table=p.legacy.batch_runs",
          "--batch_delay_seconds=soon"], "batch_delay_seconds"),
    ],
)  # fmt: skip
def test_legacy_template_refuses_bad_parameters(argv, words):
    with pytest.raises(ConfigError, match=words):
        legacy_template.kappactl_args(argv)


def test_kappa_template_needs_an_output_table():
    with pytest.raises(ConfigError, match="output_table"):
        kappa_template.kappactl_args(["--subscription=projects/p/subscriptions/kappa"])


def test_the_image_holds_what_the_templates_run():
    """The Dockerfile copies the code and the configs the templates name, and the entry
    point it defaults to (or is built with) exists."""
    dockerfile = (ROOT / "kappa" / "flex_template" / "Dockerfile").read_text(encoding="utf-8")
    copied = set(re.findall(r"^COPY (\S+)/ ", dockerfile, re.M))
    assert {"pipelines", "kappa", "lambda_legacy", "migration", "config"} <= copied
    default_main = re.search(r"^ARG TEMPLATE_MAIN=(\S+)", dockerfile, re.M).group(1)
    for template in TEMPLATES.values():
        assert Path(template.__file__).is_file()
        assert "config/production.yaml" in " ".join(template.kappactl_args(_minimal_args(template)))
    assert (ROOT / default_main).is_file() and (ROOT / "config" / "production.yaml").is_file()


def _minimal_args(template) -> list[str]:
    if template is kappa_template:
        return ["--output_table=p.kappa.kappa_stream"]
    return ["--archive_root=gs://a", "--output_table=p.l.legacy_batch", "--batch_runs_table=p.l.batch_runs"]


@pytest.mark.parametrize("name", TEMPLATES)
def test_a_bad_launch_fails_in_one_line_with_exit_3(name):
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, TEMPLATES[name].__file__, "--output_table=bad"],
        capture_output=True, text=True, timeout=60, cwd=ROOT,
    )  # fmt: skip
    assert done.returncode == 3
    assert done.stderr.startswith("kappactl: error: ") and done.stderr.count("\n") == 1
