"""The Kappa cluster's Python SDK worker pool: one SDK harness process per worker Flink asks for.

`python -m pipelines.stack.sdk_pool --port P` serves Beam's external worker pool API on
127.0.0.1:P (the EXTERNAL environment of `kappactl kappa run --runner flink`). Each
StartWorker request starts an SDK harness in a process of its own, with this interpreter,
so the job's Python steps run apart from the command that submitted it, as Dataflow runs
them in SDK containers: killing a harness fails its tasks, Flink restores them from the
newest checkpoint and asks this pool for a new one. Beam's own `worker_pool_main` does the
same but listens on every interface and starts workers with whatever `python` is first on
PATH.
"""

from __future__ import annotations

import argparse
import logging
import signal
import subprocess
import sys
import threading
from typing import Any

log = logging.getLogger("kappa-sdk-pool")
STATE_CACHE_BYTES = 100 << 20  # per harness: the state a stateful step re-reads stays in memory
# A harness logs to the pool's log: warnings, and the project's own INFO lines (e.g. where
# each Kafka partition is read from).
HARNESS = (
    "import logging, sys; "
    "logging.basicConfig(level=logging.WARNING, format='%(asctime)s %(name)s %(levelname)s %(message)s'); "
    "[logging.getLogger(n).setLevel(logging.INFO) for n in ('kappa', 'pipelines')]; "
    "from apache_beam.runners.worker.sdk_worker import SdkHarness; "
    "SdkHarness(sys.argv[1], worker_id=sys.argv[2], state_cache_size=int(sys.argv[3])).run()"
)


def _servicer() -> Any:
    from apache_beam.portability.api import beam_fn_api_pb2, beam_fn_api_pb2_grpc

    class Pool(beam_fn_api_pb2_grpc.BeamFnExternalWorkerPoolServicer):
        """Harnesses by (caller, worker id): each TaskManager numbers its workers from "1-1", so
        an id alone names one harness per TaskManager. A TaskManager asks to start and to stop
        a worker over one channel, which is the caller (`context.peer()`)."""

        def __init__(self) -> None:
            self.workers: dict[tuple[str, str], subprocess.Popen] = {}
            self.lock = threading.Lock()

        def StartWorker(self, request: Any, context: Any) -> Any:  # noqa: N802 (gRPC's name)
            command = [sys.executable, "-c", HARNESS, request.control_endpoint.url, request.worker_id,
                       str(STATE_CACHE_BYTES)]  # fmt: skip
            try:
                process = subprocess.Popen(command, close_fds=True)
            except OSError as exc:
                return beam_fn_api_pb2.StartWorkerResponse(error=f"cannot start an SDK harness: {exc}")
            with self.lock:
                self.workers = {key: p for key, p in self.workers.items() if p.poll() is None}
                self.workers[(context.peer(), request.worker_id)] = process
            log.info("started SDK harness %s for %s (pid %d)", request.worker_id, context.peer(), process.pid)
            return beam_fn_api_pb2.StartWorkerResponse()

        def StopWorker(self, request: Any, context: Any) -> Any:  # noqa: N802 (gRPC's name)
            with self.lock:
                process = self.workers.pop((context.peer(), request.worker_id), None)
            if process is not None:
                _stop(process)
                log.info("stopped SDK harness %s for %s", request.worker_id, context.peer())
            else:  # the TaskManager closed its control stream first: it ends by itself
                log.info("no SDK harness %s started for %s to stop", request.worker_id, context.peer())
            return beam_fn_api_pb2.StopWorkerResponse()

        def stop_all(self) -> None:
            with self.lock:
                workers, self.workers = list(self.workers.values()), {}
            for process in workers:
                _stop(process)

    return Pool()


def _stop(process: subprocess.Popen, timeout_s: float = 10) -> None:
    process.terminate()
    try:
        process.wait(timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def serve(port: int) -> None:
    import grpc
    from apache_beam.portability.api import beam_fn_api_pb2_grpc
    from apache_beam.utils import thread_pool_executor

    pool = _servicer()
    server = grpc.server(thread_pool_executor.shared_unbounded_instance())
    beam_fn_api_pb2_grpc.add_BeamFnExternalWorkerPoolServicer_to_server(pool, server)
    if server.add_insecure_port(f"127.0.0.1:{port}") != port:
        raise SystemExit(f"kappa-sdk-pool: cannot listen on 127.0.0.1:{port}")
    server.start()
    log.info("SDK worker pool listening on 127.0.0.1:%d", port)
    stopped = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopped.set())
    stopped.wait()
    pool.stop_all()
    server.stop(5).wait()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m pipelines.stack.sdk_pool", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--port", type=int, required=True, help="the loopback port to serve the pool API on")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    serve(args.port)


if __name__ == "__main__":
    main()
