"""Who may call the console's actions over HTTP, and what they may send.

An action (`POST /v1/migration/advance|rollback`) moves the cutover, so it is accepted only
from the console page of this very server:

- same origin: the `Host` header must name the address the connection arrived on (the bound
  address; `localhost` too when that is loopback), and `Origin` must be `http://` + that Host.
  A POST without `Origin` is refused unless `Sec-Fetch-Site: same-origin` says the browser
  sent it from the same origin; a `Sec-Fetch-Site` other than `same-origin` is refused
  whatever `Origin` says. This stops other sites' forms and scripts, and DNS rebinding (a
  hostile name resolved to 127.0.0.1 still sends its own name as Host and Origin): 403.
- `Content-Type: application/json` only (a form or `text/plain` body is what another site can
  send without a preflight): 415.
- the per-server token: a random value made when the server starts, written into the console
  page (only for a request whose Host is the server's own) and sent back by its script in the
  `X-Console-Token` header; a request without it, or with another value, gets 403.
- a body of at most `MAX_BODY_BYTES` (413) holding one JSON object of the known fields only,
  a `reason` of at most `MAX_REASON_CHARS` characters without control characters (400).

Who acted is never taken from the request: the console records the OS user running
`kappactl serve` (see `Console`).
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import secrets
import unicodedata
from dataclasses import dataclass
from typing import Any

from starlette.datastructures import Headers
from starlette.requests import Request

from migration.cutover.model import Stage, parse_stage
from pipelines.errors import InputError, KappaError

TOKEN_HEADER = "X-Console-Token"
MAX_BODY_BYTES = 4096
MAX_REASON_CHARS = 500
MAX_STAGE_CHARS = 32
FIELDS = ("reason", "confirm", "to", "percent")
# Besides the C0/C1 controls (Cc): line separators and the bidi controls that make an audit
# line read differently from what it holds.
_REFUSED_CATEGORIES = {"Cc", "Cs", "Zl", "Zp"}
_BIDI_CONTROLS = {chr(c) for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x200E, 0x200F, 0x061C)}
_BODY_SHAPE = 'the body must be one JSON object: {"reason": "...", "confirm": true[, "to", "percent"]}'


class ActionRefused(KappaError):
    """An action from another origin, another Host, or without the console's token."""

    http_status = 403


class UnsupportedMediaType(KappaError):
    """An action whose body is not `application/json`."""

    http_status = 415


class BodyTooLarge(KappaError):
    """An action whose body is bigger than MAX_BODY_BYTES."""

    http_status = 413


@dataclass(frozen=True)
class ActionBody:
    reason: str
    to: Stage | None = None
    percent: int | None = None


def new_token() -> str:
    return secrets.token_urlsafe(32)


def own_hosts(server: tuple[str, int] | None) -> frozenset[str]:
    """The Host values that name this server: the address the connection arrived on."""
    if server is None:
        return frozenset()
    host, port = server[0].lower(), int(server[1])
    names = {f"[{host}]" if ":" in host else host}
    try:
        if ipaddress.ip_address(host).is_loopback:
            names.add("localhost")
    except ValueError:  # not an address (the test client's "testserver")
        pass
    hosts = {f"{name}:{port}" for name in names}
    if port == 80:  # browsers leave the default port out of Host and Origin
        hosts |= names
    return frozenset(hosts)


def host_is_own(request: Request) -> bool:
    return request.headers.get("host", "").lower() in own_hosts(request.scope.get("server"))


def check_same_origin(request: Request) -> None:
    headers = request.headers
    host = headers.get("host", "").lower()
    if host not in own_hosts(request.scope.get("server")):
        raise ActionRefused(
            f"Host {_shown(host)} is not this server's address: open the console at its own address"
        )
    site = headers.get("sec-fetch-site")
    origin = headers.get("origin")
    if site is not None and site != "same-origin":
        raise ActionRefused(f"cross-site request refused (Sec-Fetch-Site: {_shown(site)})")
    if origin is None:
        if site == "same-origin":
            return
        raise ActionRefused("an action needs an Origin header naming this server (the console page sends it)")
    if origin.lower() != f"http://{host}":
        raise ActionRefused(
            f"Origin {_shown(origin)} is not this server (http://{host}): actions are same-origin only"
        )


def check_media_type(headers: Headers) -> None:
    kind, _, params = headers.get("content-type", "").partition(";")
    charset = next((p.split("=", 1)[1].strip().strip('"').lower() for p in params.split(";")
                    if p.strip().lower().startswith("charset=")), "utf-8")  # fmt: skip
    if kind.strip().lower() != "application/json" or charset not in ("utf-8", "utf8"):
        raise UnsupportedMediaType(
            f"Content-Type {_shown(headers.get('content-type', ''))} refused: send application/json"
        )


def check_token(headers: Headers, token: str) -> None:
    given = headers.get(TOKEN_HEADER, "")
    if not hmac.compare_digest(given.encode("latin-1", "replace"), token.encode("ascii")):
        raise ActionRefused(f"missing or wrong {TOKEN_HEADER}: act from the console page of this server")


async def read_body(request: Request, limit: int = MAX_BODY_BYTES) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isascii() and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge(f"the body is {declared} bytes: at most {limit} are accepted")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(f"the body is over {limit} bytes: at most {limit} are accepted")
        chunks.append(chunk)
    return b"".join(chunks)


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        raise InputError(f"a field appears twice in the body: {_BODY_SHAPE}")
    return dict(pairs)


def parse_action(raw: bytes) -> ActionBody:
    """The action's fields, checked; InputError (400) saying what to send otherwise."""
    try:
        body = json.loads(raw.decode("utf-8"), object_pairs_hook=_unique_keys)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        if isinstance(exc, InputError):
            raise
        raise InputError(_BODY_SHAPE) from exc
    if not isinstance(body, dict):
        raise InputError(_BODY_SHAPE)
    unknown = sorted(set(body) - set(FIELDS))
    if unknown:
        raise InputError(
            f"unknown field(s) {', '.join(map(_shown, unknown))}: the body takes {', '.join(FIELDS)} "
            "(the actor is the user running kappactl serve, not a field)"
        )
    if body.get("confirm") is not True:
        raise InputError("not confirmed: send 'confirm': true once the operator confirmed the move")
    return ActionBody(_reason(body.get("reason")), _stage(body.get("to")), _percent(body.get("percent")))


def _reason(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InputError("a reason is required (it goes into the audit log)")
    reason = value.strip()
    if len(reason) > MAX_REASON_CHARS:
        raise InputError(f"the reason is {len(reason)} characters: at most {MAX_REASON_CHARS}")
    bad = next(
        (c for c in reason if c in _BIDI_CONTROLS or unicodedata.category(c) in _REFUSED_CATEGORIES), None
    )
    if bad is not None:
        raise InputError(f"the reason holds a control character (U+{ord(bad):04X}): write it on one line")
    return reason


def _stage(value: Any) -> Stage | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > MAX_STAGE_CHARS:
        raise InputError(f"'to' must be a stage name, got {_shown(value)}")
    return parse_stage(value)


def _percent(value: Any) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 99:
        raise InputError(f"percent must be an integer from 1 to 99, got {_shown(value)}")
    return value


def _shown(value: Any, limit: int = 60) -> str:
    """A value for an error message: repr, cut to `limit` characters."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "...'"
