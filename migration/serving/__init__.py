"""The serving API (DESIGN.md section 5): reads routed by the cutover state, shadow reads.

settings = ServingSettings.from_config(config)            # or ServingSettings(...)
server = start_in_thread(settings, LocalStateStore(...))   # server.url, server.stop()
"""

from migration.serving.app import ServingService, ServingSettings, create_app
from migration.serving.routing import KAPPA, LEGACY, canary_bucket, route
from migration.serving.server import RunningServer, start_in_thread

__all__ = [
    "KAPPA",
    "LEGACY",
    "RunningServer",
    "ServingService",
    "ServingSettings",
    "canary_bucket",
    "create_app",
    "route",
    "start_in_thread",
]
