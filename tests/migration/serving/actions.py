"""What a client must send to use the console's actions: what the console page itself sends
(its Origin, JSON, and the token written into the page it was served)."""

from __future__ import annotations

import re

import httpx

TOKEN = re.compile(r'<meta name="console-token" content="([^"]*)">')


def page_token(http: httpx.Client) -> str:
    """The token of the console page as this client gets it (empty without --allow-actions)."""
    found = TOKEN.search(http.get("/console").text)
    assert found, "the console page carries no token meta tag"
    return found.group(1)


def console_headers(http: httpx.Client) -> dict[str, str]:
    """The headers of the console page's own action requests, for a client on `http.base_url`."""
    origin = str(http.base_url).rstrip("/")
    return {"Origin": origin, "Content-Type": "application/json", "X-Console-Token": page_token(http)}


def metric(text: str, series: str) -> float:
    """The value of one series (`name{labels}` as exported) in a /metrics text, 0 if absent."""
    for line in text.splitlines():
        name, _, value = line.rpartition(" ")
        if name == series:
            return float(value)
    return 0.0
