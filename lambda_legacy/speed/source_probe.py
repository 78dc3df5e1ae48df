"""Is the speed job's Kafka source reading yet? Asked of the job's own REST endpoint.

`--exit-when-idle` must count idleness from the moment the source reads, not from job
submission: on a busy machine, starting the mini-cluster, deploying the tasks, booting the
Python workers and assigning the Kafka splits took longer than the whole idle window, and
the job stopped as "idle" before its first poll (records 0 on a topic holding 300 events).
The source reads once every partition is assigned to a reader and every reader holding one
has had a fetch answered (the Kafka consumer metrics `assigned-partitions` and
`fetch-total` that the connector exposes per subtask). No PyFlink import: testable anywhere.
"""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
from typing import Any

SOURCE_NAME = "Source: kafka"
METRIC_PREFIX = "Source__kafka.KafkaSourceReader.KafkaConsumer."
ASSIGNED, FETCHES = METRIC_PREFIX + "assigned-partitions", METRIC_PREFIX + "fetch-total"


def free_loopback_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=2) as response:
        return json.loads(response.read())


def _number(value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return 0.0
    return 0.0 if number != number else number  # NaN: not reported yet


def reading(subtasks: list[dict[str, float]], partitions: int) -> bool:
    """The rule, on each source subtask's {metric: value}: every partition assigned
    (`partitions`, or at least one when unknown), every reader holding one has fetched."""
    assigned = 0
    for metrics in subtasks:
        held = int(metrics.get(ASSIGNED, 0.0))
        if held and metrics.get(FETCHES, 0.0) < 1:
            return False
        assigned += held
    return assigned >= max(partitions, 1)


def source_subtask_metrics(rest_url: str, job_id: str) -> list[dict[str, float]]:
    """Each Kafka source subtask's assigned partitions and fetches ([] until it runs)."""
    job = _get(f"{rest_url}/jobs/{job_id}")
    source = next((v for v in job.get("vertices", []) if v["name"].startswith(SOURCE_NAME)), None)
    if source is None or source.get("status") != "RUNNING":
        return []
    out = []
    for index in range(int(source["parallelism"])):
        url = f"{rest_url}/jobs/{job_id}/vertices/{source['id']}/subtasks/{index}/metrics?get={ASSIGNED},{FETCHES}"
        out.append({m["id"]: _number(m.get("value")) for m in _get(url)})
    return out


def source_reading(rest_url: str, job_id: str, partitions: int) -> bool:
    """True once the job's Kafka source reads (see the module docstring); False while it
    starts, including while its REST endpoint does not answer yet."""
    try:
        subtasks = source_subtask_metrics(rest_url, job_id)
    except (OSError, ValueError, KeyError, urllib.error.URLError):
        return False
    return bool(subtasks) and reading(subtasks, partitions)
