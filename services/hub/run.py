"""Running the hub app under uvloop until SIGINT or SIGTERM."""

import gc

from aiohttp import web

from liaison.common.errors import LiaisonError
from liaison.common.logging import configure_logging
from liaison.common.serve import serve
from liaison.hub.app import create_app
from liaison.hub.settings import HubSettings


def run_hub(settings: HubSettings) -> None:
    """Serve the hub's HTTP endpoints and consume until a stop signal.

    A configuration error found on connecting (a CA that does not vouch for the broker, a client
    certificate the broker refuses) shuts the hub down cleanly and is raised from here.
    """
    # A decision line per message: written in batches rather than a system call each.
    configure_logging(level=settings.log_level, hold_info_lines=True)
    fatal: list[LiaisonError] = []

    def stop_on(error: LiaisonError) -> None:
        fatal.append(error)
        raise web.GracefulExit  # out of the event loop: web.run_app shuts down in order

    app = create_app(settings, on_fatal=stop_on)
    # Per message the hub makes many short-lived objects and few cycles: collecting the young
    # generation less often and freezing start-up objects out of it cut CPU per message by
    # ~20% under make bench (151 -> 118 us), with the same RSS.
    gc.freeze()
    gc.set_threshold(50_000, 50, 100)
    serve(
        app,
        name="hub",
        host=settings.http_host,
        port=settings.http_port,
        shutdown_timeout=settings.shutdown_grace_seconds,
    )
    if fatal:
        raise fatal[0]
