"""Cloud Storage access shared by the archive readers, the archive stand-in and the
cutover state store: one client, real Google credentials in the cloud, anonymous ones
against an emulator.

`STORAGE_EMULATOR_HOST` (e.g. `http://127.0.0.1:4443`, as fake-gcs-server serves) is
honoured by google-cloud-storage itself; this module only swaps the credentials so no
Google login is looked for on a machine that has none.
"""

from __future__ import annotations

import os
from typing import Any

from pipelines.emulator import require_listening
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
        try:
            client.create_bucket(name)
        except Conflict:
            pass
        except Exception as exc:  # noqa: BLE001
            raise translate(exc, f"creating bucket {name}") from exc


def bucket_of(uri: str) -> tuple[Any, str]:
    """(Bucket, prefix) of a gs:// URI."""
    name, prefix = split_uri(uri)
    return storage_client().bucket(name), prefix


def translate(exc: Exception, what: str) -> Exception:
    """A Cloud Storage or connection error as the project's own, one line, saying what to fix."""
    from google.api_core import exceptions as gexc

    first = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
    if isinstance(exc, gexc.NotFound):
        return InputError(f"{what}: not found ({first}); check the bucket name or run `kappactl up`")
    if isinstance(exc, gexc.GoogleAPICallError):
        return InputError(f"{what}: Cloud Storage refused the request ({first})")
    host = os.environ.get(EMULATOR_ENV) or "storage.googleapis.com"
    return StackError(
        f"{what}: Cloud Storage at {host} does not answer ({first}); start it with `kappactl up`"
    )


def list_objects(uri: str) -> list[tuple[str, int]]:
    """(full gs:// name, size in bytes) of every object under a gs:// prefix."""
    bucket, prefix = bucket_of(uri)
    try:
        return [
            (f"gs://{bucket.name}/{b.name}", b.size or 0)
            for b in bucket.client.list_blobs(bucket, prefix=prefix)
        ]
    except Exception as exc:  # noqa: BLE001 - translated to one line where it enters
        raise translate(exc, f"listing {uri}") from exc


def read_bytes(uri: str) -> bytes:
    bucket, name = bucket_of(uri)
    try:
        return bucket.blob(name).download_as_bytes()
    except Exception as exc:  # noqa: BLE001
        raise translate(exc, f"reading {uri}") from exc


def write_bytes(uri: str, body: bytes, content_type: str = "application/octet-stream") -> None:
    """Create `uri`; never replaces an existing object (if_generation_match=0)."""
    bucket, name = bucket_of(uri)
    try:
        bucket.blob(name).upload_from_string(body, content_type=content_type, if_generation_match=0)
    except Exception as exc:  # noqa: BLE001
        raise translate(exc, f"writing {uri}") from exc
