"""Run the serving app with uvicorn: in the foreground (`kappactl serve`) or on a thread
(tests, benchmarks and the demo), always on loopback unless told otherwise."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import uvicorn

from migration.cutover.store import StateStore
from migration.serving.app import ServingService, ServingSettings, create_app
from pipelines.errors import StackError


@dataclass
class RunningServer:
    server: uvicorn.Server
    thread: threading.Thread
    url: str
    service: ServingService

    def stop(self, timeout_s: float = 10.0) -> None:
        self.server.should_exit = True
        self.thread.join(timeout_s)


def start_in_thread(
    settings: ServingSettings,
    store: StateStore,
    host: str = "127.0.0.1",
    port: int = 0,
    timeout_s: float = 60.0,
) -> RunningServer:
    """Start the API on a daemon thread (port 0: a free port) and wait until it listens."""
    app = create_app(settings, store)
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False, lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="serving-api", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout_s
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise StackError(f"the serving API did not start on {host}:{port}")
        time.sleep(0.02)
    bound = server.servers[0].sockets[0].getsockname()
    return RunningServer(server, thread, f"http://{bound[0]}:{bound[1]}", app.state.service)


def serve_forever(settings: ServingSettings, store: StateStore, host: str, port: int, log_level: str) -> None:
    app = create_app(settings, store)
    uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=log_level == "debug")
