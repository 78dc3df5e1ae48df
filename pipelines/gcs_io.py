"""Cloud Storage access shared by the archive readers, the archive stand-in and the
cutover state store: one client, real Google credentials in the cloud, anonymous ones
against an emulator.

`STORAGE_EMULATOR_HOST` (e.g. `http://127.0.0.1:4443`, as fake-gcs-server serves) is
honoured by google-cloud-storage itself; this module only swaps the credentials so no
Google login is looked for on a machine that has none.
"""

from __future__ import annotations

import contextlib
import os
from contextlib import AbstractContextManager
from typing import Any

from pipelines.emulator import google_errors, require_listening
from pipelines.errors import ConfigError, InputError, StackError

EMULATOR_ENV = "STORAGE_EMULATOR_HOST"


def split_uri(uri: str) -> tuple[str, str]:
    """`gs://bucket/some/prefix` -> ("bucket", "some/prefix")."""
    if not uri.startswith("gs://"):
        raise ConfigError(f"{uri!r} is not a gs:// URI (use gs://BUCKET/PREFIX)")
    bucket, _, prefix = uri.removeprefix("gs://").partition("/")
    if not bucket:
        raise ConfigError(f"{uri!r} names no bucket (use gs://BUCKET/PREFIX)")
    return bucket, prefix


def storage_client(project: str | None = None, emulator: str | None = None) -> Any:
    """A google.cloud.storage Client; anonymous against an emulator (`emulator` as
    http://host:port, else $STORAGE_EMULATOR_HOST)."""
    try:
        from google.cloud import storage
    except ImportError as exc:  # pragma: no cover - installed with apache-beam[gcp]
        raise ConfigError("gs:// paths need google-cloud-storage: pip install google-cloud-storage") from exc
    endpoint = emulator or os.environ.get(EMULATOR_ENV)
    if endpoint:
        from google.api_core.client_options import ClientOptions
        from google.auth.credentials import AnonymousCredentials

        require_listening(endpoint, "Cloud Storage")
        return storage.Client(
            project=project or "kappa-local",
            credentials=AnonymousCredentials(),
            client_options=ClientOptions(api_endpoint=endpoint),
        )
    return storage.Client(project=project)


def ensure_buckets(emulator: str, names: list[str]) -> None:
    """Create the buckets an emulator should hold (Terraform creates them in the cloud)."""
    from google.api_core.exceptions import Conflict

    client = storage_client(emulator=emulator)
    for name in dict.fromkeys(names):
        with storage_errors(f"creating bucket {name}"), contextlib.suppress(Conflict):
            client.create_bucket(name)


def bucket_of(uri: str) -> tuple[Any, str]:
    """(Bucket, prefix) of a gs:// URI."""
    name, prefix = split_uri(uri)
    return storage_client().bucket(name), prefix


def storage_errors(what: str) -> AbstractContextManager[None]:
    """Cloud Storage's and connection errors inside the block as one line of ours about
    `what`, saying what to fix (pipelines/emulator.py: `google_errors`)."""
    from google.cloud.storage.exceptions import DataCorruption, InvalidResponse

    host = os.environ.get(EMULATOR_ENV) or "storage.googleapis.com"
    return google_errors(
        what,
        "Cloud Storage",
        host,
        "check the bucket name or run `kappactl up`",
        {
            InvalidResponse: lambda why: InputError(f"{what}: Cloud Storage refused the request ({why})"),
            DataCorruption: lambda why: StackError(f"{what}: damaged in transit ({why}); retry"),
        },
    )


def list_objects(uri: str) -> list[tuple[str, int]]:
    """(full gs:// name, size in bytes) of every object under a gs:// prefix."""
    bucket, prefix = bucket_of(uri)
    with storage_errors(f"listing {uri}"):
        return [
            (f"gs://{bucket.name}/{b.name}", b.size or 0)
            for b in bucket.client.list_blobs(bucket, prefix=prefix)
        ]


def read_bytes(uri: str) -> bytes:
    bucket, name = bucket_of(uri)
    with storage_errors(f"reading {uri}"):
        return bucket.blob(name).download_as_bytes()


def write_bytes(uri: str, body: bytes, content_type: str = "application/octet-stream") -> None:
    """Create `uri`; never replaces an existing object (if_generation_match=0)."""
    bucket, name = bucket_of(uri)
    with storage_errors(f"writing {uri}"):
        bucket.blob(name).upload_from_string(body, content_type=content_type, if_generation_match=0)
