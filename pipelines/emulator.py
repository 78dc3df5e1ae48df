"""Fail fast on an emulator that is not running.

Google's clients retry a refused connection for two minutes before they give up; against
an emulator on this machine a refused connection means it is not started, so the clients
made for an emulator check that something listens first and say so in one line.
"""

from __future__ import annotations

import socket
from urllib.parse import urlsplit

from pipelines.errors import StackError


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
