"""The Kappa stream on Beam's Flink runner, reading Kafka directly.

`kappactl kappa run --runner flink --source kafka` builds the same pipeline as every other
run (`kappa.pipeline.build_kappa`); only its source and its runner differ:

- **Source** `ReadKafkaPartitions` (`kappa.kafka_source`): a Python splittable DoFn per
  partition, whose offsets are in Flink's checkpoints and whose watermark follows what it
  has read. Beam's cross-language `ReadFromKafka` (2.73) is not used: on a busy machine its
  watermark ran ahead of its read and it dropped a backlog as late.
- **Runner**: Beam's PortableRunner, submitting to the cluster's Flink job server, with
  checkpointing on (`kappa_flink.checkpointing_interval`): after a failure Flink restores
  every step's state and the read's offsets from the newest checkpoint, and a checkpoint
  is what commits the consumer group's offsets. The job's Python steps run in SDK harness
  processes of the cluster's worker pool (EXTERNAL), which write the same local files as
  the DirectRunner; `kappa run` only submits and watches.
- **Progress and summary** from Beam metrics, as Flink reports them over its REST API
  (`FlinkJob.counters`): the process-local counters and the DirectRunner adaptations
  (`kappa.direct_runner`) are not used on this path.
"""

from __future__ import annotations

import json
import logging
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

from pipelines.beam import METRICS_NAMESPACE
from pipelines.config import Config
from pipelines.errors import PipelineError, StackError
from pipelines.stack.local import port_open

log = logging.getLogger(__name__)
SOURCE_STUCK_S = 90.0  # a source that handed out nothing this long after its tasks run is stuck
SOURCE_STUCK = "the source handed out no Kafka partition"
MAX_BUNDLE_MS = 200
# Flink's REST API shows a Beam counter of the `kappa` namespace as "<operator>.kappa_<name>".
USER_COUNTER = f"{METRICS_NAMESPACE}_"
END_OF_TIME_MS = 1 << 62  # at or past it a Flink watermark means "no more input" (Long.MAX_VALUE)


def portable_args(config: Config, job_name: str) -> list[str]:
    """The Beam arguments of a run on the Kappa cluster (before the user's own, which win)."""
    from pipelines.stack.kappa_cluster import KappaCluster, job_jars

    cluster = KappaCluster.of(config)
    if not port_open(cluster.ks.job_port):
        raise StackError(
            f"the Flink job server on {cluster.job_endpoint} does not answer: "
            "start the Kappa cluster with `kappactl up --kappa-cluster`"
        )
    return [
        "--runner=PortableRunner",
        f"--job_endpoint={cluster.job_endpoint}",
        "--environment_type=EXTERNAL",
        f"--environment_config=127.0.0.1:{cluster.ks.worker_pool_port}",
        f"--job_name={job_name}",
        f"--checkpointing_interval={round(config.kappa_flink.checkpointing_interval * 1000)}",
        # A step passes its input's watermark on only between bundles: short bundles keep the
        # windows' watermark within a few seconds of the read (p99 freshness 4.8 s at 1,500
        # events/s where Flink's default of 1,000 ms gave 13.7 s, one trial each).
        f"--max_bundle_time_mills={MAX_BUNDLE_MS}",
        # Beam 2.62's Flink runner sends the read's watermark on from a callback it schedules
        # after each bundle, and skips it if a bundle is open by then: while the read is behind,
        # a partition's resume timer is always due first and opens the next bundle, and the
        # watermark stood still for as long as the backlog lasted (45-55 s at 3,000 events/s).
        # Finishing the bundle at each checkpoint barrier sends it on at least once a checkpoint
        # (p99 freshness 52.7 s -> 6.7 s at 3,000 events/s, one trial each).
        "--finish_bundle_before_checkpointing",
        f"--files_to_stage={','.join(job_jars())}",
    ]


def _cause(stacktrace: str) -> str:
    """The innermost cause of a Java stack trace, or the Python error it carries, on one line."""
    lines = [line.strip() for line in stacktrace.splitlines() if line.strip()]
    python = [line for line in lines if not line.startswith(("at ", "...", "Caused by", "File ")) and ": " in line
              and not line.startswith(("java.", "org.", "Traceback"))]  # fmt: skip
    causes = [line.removeprefix("Caused by: ") for line in lines if line.startswith("Caused by: ")]
    found = python[-1] if python else causes[-1] if causes else lines[0] if lines else ""
    return found[:300]


def _counter_name(metric_id: str) -> str:
    """The `kappa` counter a Flink metric id names, or "" for any other metric."""
    last = metric_id.rsplit(".", 1)[-1]
    return last.removeprefix(USER_COUNTER) if last.startswith(USER_COUNTER) else ""


class FlinkJob:
    """One Beam job on the Kappa cluster, seen through Flink's REST API: the newest whose name
    starts with `name` (and started at or after `started_after_ms`).

    PortableRunner's result reports no metrics while a streaming job runs, and its cancel
    does not reach the cluster: both go through the JobManager instead.
    """

    def __init__(self, config: Config, name: str, started_after_ms: int = 0):
        self.rest = f"http://127.0.0.1:{config.kappa_flink.rest_port}"
        self.name, self.started_after_ms = name, started_after_ms
        self._id: str | None = None

    def _get(self, path: str) -> Any:
        with urllib.request.urlopen(f"{self.rest}{path}", timeout=5) as response:
            return json.loads(response.read())

    @property
    def job_id(self) -> str | None:
        if self._id is None:
            try:
                jobs = self._get("/jobs/overview").get("jobs", [])
            except (OSError, ValueError, urllib.error.URLError):
                return None
            mine = [j for j in jobs if j.get("name", "").startswith(self.name)
                    and j.get("start-time", 0) >= self.started_after_ms]  # fmt: skip
            if mine:
                self._id = max(mine, key=lambda j: j.get("start-time", 0))["jid"]
        return self._id

    def state(self) -> str | None:
        if self.job_id is None:
            return None
        try:
            return str(self._get(f"/jobs/{self.job_id}").get("state"))
        except (OSError, ValueError, urllib.error.URLError):
            return None

    def counters(self) -> dict[str, int]:
        """The job's `kappa` counters, summed over its tasks ({} before it runs)."""
        if self.job_id is None:
            return {}
        try:
            vertices = self._get(f"/jobs/{self.job_id}").get("vertices", [])
            totals: dict[str, int] = {}
            for vertex in vertices:
                base = f"/jobs/{self.job_id}/vertices/{vertex['id']}/subtasks/metrics"
                names = [m["id"] for m in self._get(base) if _counter_name(m["id"])]
                if names:
                    query = urllib.parse.urlencode({"get": ",".join(names), "agg": "sum"})
                    for metric in self._get(f"{base}?{query}"):
                        counter = _counter_name(metric["id"])
                        totals[counter] = totals.get(counter, 0) + int(float(metric.get("sum", 0)))
            return totals
        except (OSError, ValueError, KeyError, urllib.error.URLError) as exc:
            log.debug("flink metrics not readable yet: %s", exc)
            return {}

    def checkpoints(self) -> dict[str, Any]:
        """Completed checkpoints and the newest one's age, from the JobManager."""
        if self.job_id is None:
            return {}
        try:
            stats = self._get(f"/jobs/{self.job_id}/checkpoints")
        except (OSError, ValueError, urllib.error.URLError):
            return {}
        latest = (stats.get("latest") or {}).get("completed") or {}
        return {"completed": stats.get("counts", {}).get("completed", 0),
                "latest_at_ms": latest.get("latest_ack_timestamp")}  # fmt: skip

    def restarts(self) -> dict[str, Any]:
        """How often Flink restarted the job from a checkpoint, and why it last did."""
        if self.job_id is None:
            return {}
        try:
            metric = self._get(f"/jobs/{self.job_id}/metrics?get=numRestarts")
            history = self._get(f"/jobs/{self.job_id}/exceptions?maxExceptions=1").get("exceptionHistory", {})
        except (OSError, ValueError, urllib.error.URLError):
            return {}
        restarts = int(float(metric[0]["value"])) if metric else 0
        entries = history.get("entries") or []
        if not restarts or not entries:
            return {"restarts": restarts}
        return {"restarts": restarts, "last_failure": _cause(entries[0].get("stacktrace", ""))}

    def watermark_age_s(self) -> float | None:
        """How far the watermark of what the job has read is behind the clock: the newest
        input watermark of any of its steps (those after the read have it; the read's own
        input is the Impulse, done at once), or None before it has one."""
        if self.job_id is None:
            return None
        try:
            inputs = []
            for vertex in self._get(f"/jobs/{self.job_id}").get("vertices", []):
                marks = self._get(f"/jobs/{self.job_id}/vertices/{vertex['id']}/watermarks")
                if marks:
                    inputs.append(min(int(mark["value"]) for mark in marks))
        except (OSError, ValueError, KeyError, urllib.error.URLError):
            return None
        read = [w for w in inputs if 0 < w < END_OF_TIME_MS]
        return max(0.0, (time.time() * 1000 - max(read)) / 1000) if read else None

    def source_sent(self) -> int | None:
        """Records the job's source vertex (its Impulse, turned into the partitions to read)
        has sent on; None until every task of the job runs."""
        if self.job_id is None:
            return None
        try:
            vertices = self._get(f"/jobs/{self.job_id}").get("vertices", [])
        except (OSError, ValueError, urllib.error.URLError):
            return None
        if not vertices or any(v.get("status") != "RUNNING" for v in vertices):
            return None
        sources = [v for v in vertices if str(v.get("name", "")).startswith("Source:")]
        return sum(int(v.get("metrics", {}).get("write-records", 0)) for v in sources)

    def cancel(self) -> None:
        if self.job_id is None:
            raise PipelineError(f"no Flink job named {self.name} to cancel")
        request = urllib.request.Request(f"{self.rest}/jobs/{self.job_id}?mode=cancel", method="PATCH")
        with urllib.request.urlopen(request, timeout=10):
            pass


@dataclass
class SourceWatch:
    """Whether a Flink job's source handed out its partitions once its tasks ran."""

    flink: FlinkJob
    running_since: float | None = None
    handed_out: bool = False

    def stuck(self) -> bool:
        if self.handed_out:
            return False
        sent = self.flink.source_sent()
        if sent is None:  # not every task runs yet
            return False
        if sent > 0 or self.flink.restarts().get("restarts"):  # a restored source sends nothing again
            self.handed_out = True
            return False
        self.running_since = self.running_since or time.monotonic()
        return time.monotonic() - self.running_since >= SOURCE_STUCK_S
