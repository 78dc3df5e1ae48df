"""Google's clients against an emulator or the cloud: fail fast on an emulator that is not
running, and translate the clients' errors where they enter.

Google's clients retry a refused connection for two minutes before they give up; against
an emulator on this machine a refused connection means it is not started, so the clients
made for an emulator check that something listens first and say so in one line.
"""

from __future__ import annotations

import socket
from contextlib import AbstractContextManager
from typing import Mapping
from urllib.parse import urlsplit

from pipelines.errors import Causes, ConfigError, InputError, StackError, Translation, map_exceptions


def require_listening(endpoint: str, service: str, timeout_s: float = 3.0) -> None:
    """Raise StackError unless something accepts connections at `endpoint`
    (http://host:port or host:port)."""
    parts = urlsplit(endpoint if "://" in endpoint else f"http://{endpoint}")
    host, port = parts.hostname or "127.0.0.1", parts.port or (443 if parts.scheme == "https" else 80)
    try:
        socket.create_connection((host, port), timeout=timeout_s).close()
    except OSError as exc:
        raise StackError(
            f"{service} at {endpoint} does not answer ({exc.strerror or exc}); start it with `kappactl up`"
        ) from exc


def google_errors(
    what: str,
    service: str,
    host: str,
    not_found_fix: str,
    more: Mapping[Causes, Translation] | None = None,
) -> AbstractContextManager[None]:
    """Inside the block, an error of Google's clients about `what` becomes one line of ours
    saying what to fix: not found (`not_found_fix`) or refused -> InputError, no credentials
    -> ConfigError, no answer from `service` at `host` (refused, reset, timed out, still
    failing after the client's retries) -> StackError. `more` adds a client's own classes."""
    from google.api_core import exceptions as gexc
    from google.auth import exceptions as auth_exc

    def unreachable(why: str) -> StackError:
        return StackError(f"{what}: {service} at {host} does not answer ({why}); start it with `kappactl up`")

    return map_exceptions(
        {
            gexc.NotFound: lambda why: InputError(f"{what}: not found ({why}); {not_found_fix}"),
            gexc.GoogleAPICallError: lambda why: InputError(f"{what}: {service} refused the request ({why})"),
            gexc.GoogleAPIError: unreachable,  # RetryError: the client gave up retrying
            auth_exc.DefaultCredentialsError: lambda why: ConfigError(
                f"{what}: no Google application default credentials ({why}): run "
                "`gcloud auth application-default login`, set GOOGLE_APPLICATION_CREDENTIALS, or use an emulator"
            ),
            auth_exc.GoogleAuthError: unreachable,  # TransportError: the token endpoint
            OSError: unreachable,  # requests' errors are OSErrors too
            **(more or {}),
        }
    )
