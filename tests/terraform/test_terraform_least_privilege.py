"""Static checks of who may write what in terraform/, parsed with python-hcl2: the flex
templates sit in a bucket no worker has any role on; each worker writes only its own work
bucket; CMEK is on by default with a rotating key the service agents may use."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from tests.terraform.hcl import ENV_DIR, MODULES_DIR, named_blocks, only

WORKERS = {  # the member expression of each worker account, by module
    "kappa_worker": "google_service_account.kappa_worker.member",
    "legacy_batch_worker": "google_service_account.legacy_batch_worker[0].member",
    "legacy_speed": "google_service_account.speed.member",
}
ENCRYPTER = "roles/cloudkms.cryptoKeyEncrypterDecrypter"


def bucket_grants(res: dict[str, dict[str, Any]]) -> list[tuple[str, str, str, str]]:
    """(address, bucket expression, role, member expression) of every bucket grant."""
    return [(address, body["bucket"], body["role"], body["member"])
            for address, body in res.items() if "/google_storage_bucket_iam_member." in address]  # fmt: skip


def env_module(docs: dict[Path, dict[str, Any]], name: str) -> dict[str, Any]:
    return dict(named_blocks(docs[ENV_DIR / "main.tf"], "module"))[name]


def module_locals(docs: dict[Path, dict[str, Any]], path: Path) -> dict[str, Any]:
    return {k: v for entry in docs[path].get("locals", []) for k, v in entry.items()}


def env_locals(docs: dict[Path, dict[str, Any]]) -> dict[str, Any]:
    return module_locals(docs, ENV_DIR / "main.tf")


def test_no_worker_has_a_role_on_the_templates_bucket(
    res: dict[str, dict[str, Any]], docs: dict[Path, dict[str, Any]]
) -> None:
    on_templates = {(role, member) for _, bucket, role, member in bucket_grants(res) if "templates" in bucket}
    assert on_templates == {
        ("roles/storage.objectViewer", "google_service_account.legacy_batch_launcher[0].member"),
        ("roles/storage.objectAdmin", "each.value"),  # template_publishers, never a worker (below)
    }
    publishers = res["iam/google_storage_bucket_iam_member.template_publishers"]
    assert publishers["for_each"] == "toset(var.template_publishers)"
    precondition = only(only(publishers, "lifecycle"), "precondition")
    assert "!contains(local.worker_members, each.value)" in precondition["condition"]
    worker_members = module_locals(docs, MODULES_DIR / "iam" / "main.tf")["worker_members"]
    assert WORKERS["kappa_worker"] in worker_members and "legacy_batch_worker[0].member" in worker_members
    # The templates have a bucket of their own, and both jobs are launched from it.
    assert env_module(docs, "iam")["templates_bucket"] == "module.storage.templates_bucket"
    assert "google_storage_bucket.templates.url" in str(
        dict(named_blocks(docs[MODULES_DIR / "storage" / "outputs.tf"], "output"))["templates_prefix"][
            "value"
        ]
    )
    dataflow = env_module(docs, "dataflow")
    for job in (dataflow["kappa_stream"], dataflow["legacy_batch"]):
        assert "module.storage.templates_prefix" in str(job), job
    work = res["storage/google_storage_bucket.work"]
    assert work["for_each"] == "var.work_buckets" and "templates" not in str(work)


def test_each_worker_writes_only_its_own_work_bucket(
    res: dict[str, dict[str, Any]], docs: dict[Path, dict[str, Any]]
) -> None:
    by_worker: dict[str, set[tuple[str, str]]] = {w: set() for w in WORKERS}
    for _, bucket, role, member in bucket_grants(res):
        for worker, expression in WORKERS.items():
            if member == expression:
                by_worker[worker].add((bucket, role))
    assert by_worker == {
        "kappa_worker": {("var.work_buckets.kappa", "roles/storage.objectAdmin"),
                         ("var.archive_bucket", "roles/storage.objectViewer")},
        "legacy_batch_worker": {("var.work_buckets.legacy_batch", "roles/storage.objectAdmin"),
                                ("var.archive_bucket", "roles/storage.objectViewer")},
        "legacy_speed": {("var.staging_bucket", "roles/storage.objectAdmin")},
    }  # fmt: skip
    # One work bucket per worker, wired to the grants and to each job's temp and staging.
    names = re.findall(r"(\w+) = \"\$\{var\.project_id\}-([\w-]+)\"", env_locals(docs)["work_buckets"])
    assert {k for k, _ in names} == {"kappa", "legacy_batch", "legacy_speed"}
    assert len({n for _, n in names}) == 3
    iam = env_module(docs, "iam")["work_buckets"]
    assert '"kappa"' in iam["kappa"] and '"legacy_batch"' in iam["legacy_batch"]
    assert '"legacy_speed"' in env_module(docs, "legacy_speed")["staging_bucket"]
    dataflow = env_module(docs, "dataflow")
    kappa, legacy = dataflow["kappa_stream"], str(dataflow["legacy_batch"])  # legacy: behind legacy_enabled
    for key in ("temp_location", "staging_location"):
        assert kappa[key] == f'module.storage.{key}s["kappa"]'
        assert f'{key} = lookup(module.storage.{key}s, "legacy_batch", null)' in legacy
    for key in ("temp_location", "staging_location"):
        assert f"var.kappa_stream.{key}" in str(
            res["dataflow/google_dataflow_flex_template_job.kappa_stream"]
        )
        assert f"var.legacy_batch.{key}" in str(res["dataflow/google_cloud_scheduler_job.legacy_batch"])


def test_cmek_is_on_by_default_with_a_rotating_key_the_agents_may_use(
    res: dict[str, dict[str, Any]], docs: dict[Path, dict[str, Any]]
) -> None:
    variables = dict(named_blocks(docs[ENV_DIR / "variables.tf"], "variable"))
    opt_out = variables["cmek_enabled"]
    assert opt_out["default"] is True
    # The description says what opting out saves and what it gives up.
    assert "KMS charges" in opt_out["description"] and "unreadable" in opt_out["description"]
    assert "revoke" in opt_out["description"]
    kms = env_module(docs, "kms")
    assert kms["count"] == "var.cmek_enabled ? 1 : 0" and kms["kms_key_name"] == "var.kms_key_name"
    assert env_locals(docs)["kms_key_name"] == "one(module.kms[*].crypto_key_id)"
    encrypted = [
        n for n, m in dict(named_blocks(docs[ENV_DIR / "main.tf"], "module")).items() if "kms_key_name" in m
    ]
    assert set(encrypted) >= {
        "kms",
        "storage",
        "pubsub",
        "bigquery",
        "artifact_registry",
        "dataflow",
        "legacy_speed",
    }
    for name in set(encrypted) - {"kms"}:
        assert env_module(docs, name)["kms_key_name"] == "local.kms_key_name", name
    # The created key: rotated every 90 days at most, never destroyed by Terraform.
    key = res["kms/google_kms_crypto_key.data"]
    assert key["count"] == "var.kms_key_name == null ? 1 : 0"
    assert only(key, "lifecycle")["prevent_destroy"] is True
    kms_variables = dict(named_blocks(docs[MODULES_DIR / "kms" / "variables.tf"], "variable"))
    assert key["rotation_period"] == "var.rotation_period"
    assert int(kms_variables["rotation_period"]["default"].rstrip("s")) <= 90 * 86400
    assert res["kms/google_kms_key_ring.this"]["location"] == "var.location"
    assert kms["location"] == "var.region"  # regional data stores need a key in their region
    # Every service agent that encrypts for the stack may use the key, and only that role.
    grant = res["kms/google_kms_crypto_key_iam_member.service_agents"]
    assert (grant["role"], grant["crypto_key_id"]) == (ENCRYPTER, "local.crypto_key_id")
    assert grant["for_each"] == "var.grant_service_agents ? local.service_agents : {}"
    kms_locals = module_locals(docs, MODULES_DIR / "kms" / "main.tf")
    agents = set(re.findall(r"(\w+) = \"serviceAccount:", kms_locals["service_agents"]))
    assert agents == {"storage", "bigquery", "pubsub", "artifact_registry", "dataflow", "compute", "dataproc"}
    output = dict(named_blocks(docs[MODULES_DIR / "kms" / "outputs.tf"], "output"))["crypto_key_id"]
    assert output["depends_on"] == ["google_kms_crypto_key_iam_member.service_agents"]


def test_every_bucket_takes_the_key(res: dict[str, dict[str, Any]]) -> None:
    buckets = {k: v for k, v in res.items() if "/google_storage_bucket." in k}
    assert set(buckets) == {f"storage/google_storage_bucket.{n}" for n in ("archive", "templates", "work")}
    for address, bucket in buckets.items():
        assert "var.kms_key_name" in str(bucket.get("dynamic", "")), address
