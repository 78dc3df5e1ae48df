"""Static checks of terraform/ parsed with python-hcl2: the promises of DESIGN.md section 7."""

from __future__ import annotations

import json
import re
import string
from pathlib import Path
from typing import Any

from tests.terraform.hcl import (
    BIGQUERY_DIR,
    ENV_DIR,
    MODULES_DIR,
    ROOT,
    TERRAFORM_DIR,
    expand_locals,
    locals_of,
    named_blocks,
    only,
)

EXPECTED_MODULES = {
    "artifact_registry",
    "bigquery",
    "dataflow",
    "iam",
    "kms",
    "legacy_speed",
    "pubsub",
    "storage",
}
MODULE_FILES = {"main.tf", "variables.tf", "outputs.tf", "versions.tf"}
# Every role granted anywhere; a new grant must be reviewed and added here.
ALLOWED_ROLES = {
    "roles/artifactregistry.reader",
    "roles/bigquery.dataEditor",
    "roles/bigquery.jobUser",
    "roles/cloudkms.cryptoKeyEncrypterDecrypter",
    "roles/dataflow.developer",
    "roles/dataflow.worker",
    "roles/dataproc.worker",
    "roles/iam.serviceAccountUser",
    "roles/pubsub.publisher",
    "roles/pubsub.subscriber",
    "roles/pubsub.viewer",
    "roles/storage.legacyBucketReader",
    "roles/storage.objectAdmin",
    "roles/storage.objectCreator",
    "roles/storage.objectViewer",
}
AGGREGATE_COLUMNS = {
    "window_start": "TIMESTAMP",
    "window_end": "TIMESTAMP",
    "tweet_id": "INT64",
    "event_type": "STRING",
    "count": "INT64",
    "pipeline": "STRING",
    "emitted_at": "TIMESTAMP",
    "pane": "STRING",
    "pane_index": "INT64",
}


def test_modules_have_the_four_files() -> None:
    modules = {p.name for p in MODULES_DIR.iterdir() if p.is_dir()}
    assert modules >= EXPECTED_MODULES
    for module in [*(MODULES_DIR / m for m in modules), ENV_DIR]:
        assert {p.name for p in module.glob("*.tf")} >= MODULE_FILES, module
    assert (ENV_DIR / "terraform.tfvars.example").is_file()


def test_versions_are_bounded(docs: dict[Path, dict[str, Any]]) -> None:
    for path, doc in docs.items():
        if path.name != "versions.tf":
            continue
        terraform = only(doc, "terraform")
        assert terraform["required_version"].startswith(">="), path
        for providers in terraform["required_providers"]:
            for name, spec in providers.items():
                assert ">=" in spec["version"] and "<" in spec["version"].replace("<=", ""), (path, name)


def test_kappa_subscription_keeps_replays_and_dead_letters(res: dict[str, dict[str, Any]]) -> None:
    sub = res["pubsub/google_pubsub_subscription.kappa"]
    assert sub["retain_acked_messages"] is True
    assert sub["message_retention_duration"] == "var.subscription_message_retention"
    assert "ack_deadline_seconds" in sub
    dead_letter = only(sub, "dead_letter_policy")
    assert dead_letter["dead_letter_topic"] == "google_pubsub_topic.dead_letter.id"
    assert "max_delivery_attempts" in dead_letter
    assert {"minimum_backoff", "maximum_backoff"} <= set(only(sub, "retry_policy"))
    topic = res["pubsub/google_pubsub_topic.interactions"]
    assert topic["message_retention_duration"] == "var.topic_message_retention"


def test_pubsub_service_agent_can_dead_letter(res: dict[str, dict[str, Any]]) -> None:
    publisher = res["pubsub/google_pubsub_topic_iam_member.dead_letter_publisher"]
    subscriber = res["pubsub/google_pubsub_subscription_iam_member.dead_letter_source_subscriber"]
    assert (publisher["role"], publisher["topic"]) == (
        "roles/pubsub.publisher",
        "google_pubsub_topic.dead_letter.name",
    )
    assert (subscriber["role"], subscriber["subscription"]) == (
        "roles/pubsub.subscriber",
        "google_pubsub_subscription.kappa.name",
    )
    main = (MODULES_DIR / "pubsub" / "main.tf").read_text(encoding="utf-8")
    assert "gcp-sa-pubsub.iam.gserviceaccount.com" in main


def test_archive_subscription_writes_the_archive_bucket(res: dict[str, dict[str, Any]]) -> None:
    config = only(res["pubsub/google_pubsub_subscription.archive"], "cloud_storage_config")
    assert config["bucket"] == "var.archive.bucket"
    assert {"filename_prefix", "filename_suffix", "filename_datetime_format"} <= set(config)


def test_no_primitive_roles_and_only_reviewed_roles() -> None:
    text = "\n".join(p.read_text(encoding="utf-8") for p in TERRAFORM_DIR.rglob("*.tf"))
    assert not re.search(r"\broles/(owner|editor|viewer)\b", text)
    granted = set(re.findall(r"roles/[A-Za-z]+(?:\.[A-Za-z]+)?", text))
    assert granted <= ALLOWED_ROLES, f"unreviewed roles: {sorted(granted - ALLOWED_ROLES)}"


def test_buckets_are_private_uniform_and_aged(res: dict[str, dict[str, Any]]) -> None:
    buckets = {k: v for k, v in res.items() if "/google_storage_bucket." in k}
    assert len(buckets) >= 2
    for key, bucket in buckets.items():
        assert bucket["uniform_bucket_level_access"] is True, key
        assert bucket["public_access_prevention"] == "enforced", key
        assert bucket.get("lifecycle_rule"), key
    assert only(res["storage/google_storage_bucket.archive"], "versioning")["enabled"] is True


def test_aggregate_tables_partitioned_and_clustered(res: dict[str, dict[str, Any]]) -> None:
    for name in ("kappa_aggregate", "legacy_aggregate"):
        table = res[f"bigquery/google_bigquery_table.{name}"]
        partitioning = only(table, "time_partitioning")
        assert (partitioning["type"], partitioning["field"]) == ("DAY", "window_start"), name
        assert table["clustering"] == ["tweet_id"], name
        assert "schemas/aggregate.json" in table["schema"], name
    main = (BIGQUERY_DIR / "main.tf").read_text(encoding="utf-8")
    for table in ("kappa_stream", "kappa_backfill", "legacy_batch", "legacy_speed"):
        assert f'"{table}"' in main


def test_aggregate_schema_matches_design() -> None:
    schema = json.loads((BIGQUERY_DIR / "schemas" / "aggregate.json").read_text(encoding="utf-8"))
    assert {c["name"]: c["type"] for c in schema} == AGGREGATE_COLUMNS


def test_serving_view_follows_serving_source(
    res: dict[str, dict[str, Any]], docs: dict[Path, dict[str, Any]]
) -> None:
    view = only(res["bigquery/google_bigquery_table.serving_interaction_counts"], "view")
    assert "var.serving_source" in view["query"]
    locals_ = locals_of(docs[BIGQUERY_DIR / "main.tf"])
    assert set(locals_["serving_query"]) == {"legacy", "kappa"}
    assert "legacy.legacy_serving" in locals_["serving_query"]["legacy"]
    assert "kappa.kappa_stream_current" in locals_["serving_query"]["kappa"]
    env_modules = dict(named_blocks(docs[ENV_DIR / "main.tf"], "module"))
    assert env_modules["bigquery"]["serving_source"] == "var.serving_source"


def test_enum_variables_are_validated(docs: dict[Path, dict[str, Any]]) -> None:
    for path in (ENV_DIR / "variables.tf", BIGQUERY_DIR / "variables.tf"):
        variables = dict(named_blocks(docs[path], "variable"))
        message = only(variables["serving_source"], "validation")["error_message"]
        assert "legacy" in message and "kappa" in message, path
    env_variables = dict(named_blocks(docs[ENV_DIR / "variables.tf"], "variable"))
    for name in ("region", "project_id", "topic_message_retention", "subscription_message_retention"):
        assert env_variables[name].get("validation"), name


def test_legacy_serving_sql_is_shared_and_keeps_the_batch_rule(res: dict[str, dict[str, Any]]) -> None:
    # The view renders the legacy codebase's own SQL file: one rule, tested against DuckDB
    # in tests/legacy/test_legacy_merge.py.
    sql_path = ROOT / "lambda_legacy" / "sql" / "legacy_serving.bigquery.sql"
    view = only(res["bigquery/google_bigquery_table.legacy_serving"], "view")
    assert (
        "templatefile" in view["query"] and "lambda_legacy/sql/legacy_serving.bigquery.sql" in view["query"]
    )
    rendered = string.Template(sql_path.read_text(encoding="utf-8")).substitute(
        project="p",
        dataset="legacy",
        batch_runs_table="batch_runs",
        batch_table="legacy_batch",
        speed_table="legacy_speed",
        batch_period_seconds=3600,
    )
    assert "${" not in rendered
    assert "status = 'FINISHED'" in rendered and "latest_finished_run" in rendered
    assert re.search(r"LEFT JOIN latest_finished_run.*IS NULL", rendered, re.DOTALL)


def test_every_legacy_resource_is_gated(docs: dict[Path, dict[str, Any]]) -> None:
    checked = 0
    for path, doc in docs.items():
        items = [(f"module.{n}", b) for n, b in named_blocks(doc, "module")]
        for entry in doc.get("resource", []):
            for rtype, named in entry.items():
                items += [(f"{rtype}.{n}", b) for n, b in named.items()]
        locals_ = locals_of(doc)
        for address, body in items:
            if "legacy" not in address:
                continue
            gate = str(body.get("count", "")) + str(body.get("for_each", ""))
            gate = expand_locals(gate, locals_)
            assert "legacy_enabled" in gate, f"{path}: {address} is not gated by legacy_enabled"
            checked += 1
    assert checked >= 10


def test_every_variable_typed_and_described(docs: dict[Path, dict[str, Any]]) -> None:
    for path, doc in docs.items():
        for name, body in named_blocks(doc, "variable"):
            assert body.get("type"), f"{path}: variable {name} has no type"
            assert not re.search(r"\bany\b", str(body["type"])), f"{path}: variable {name} uses type any"
            assert str(body.get("description", "")).strip(), f"{path}: variable {name} has no description"
        for name, body in named_blocks(doc, "output"):
            assert str(body.get("description", "")).strip(), f"{path}: output {name} has no description"


def test_stream_job_drains_and_stays_private(res: dict[str, dict[str, Any]]) -> None:
    job = res["dataflow/google_dataflow_flex_template_job.kappa_stream"]
    assert job["on_delete"] == "drain"
    assert job["ip_configuration"] == "WORKER_IP_PRIVATE"
    assert job["enable_streaming_engine"] is True
    assert job["service_account_email"] == "var.kappa_stream.service_account_email"
    assert {"subscription", "output_table", "dead_letter_table"} <= set(
        re.findall(r"(\w+)\s*=", job["parameters"])
    )


def test_legacy_batch_is_launched_by_scheduler(res: dict[str, dict[str, Any]]) -> None:
    target = only(res["dataflow/google_cloud_scheduler_job.legacy_batch"], "http_target")
    assert target["uri"].endswith("/flexTemplates:launch")
    assert only(target, "oauth_token")["service_account_email"] == "var.legacy_batch.launcher_email"
