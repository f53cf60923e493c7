"""Serve a service's aiohttp app under uvloop until SIGINT or SIGTERM (the hub, the ledger)."""

import structlog
import uvloop
from aiohttp import web


def serve(
    app: web.Application, *, name: str, host: str, port: int, shutdown_timeout: float
) -> None:
    """Log ``starting``, then run ``app`` on ``host:port``; a stop signal shuts it down in order."""
    structlog.get_logger(f"liaison.{name}").info("starting", http=f"http://{host}:{port}/")
    web.run_app(
        app,
        host=host,
        port=port,
        print=None,
        access_log=None,
        loop=uvloop.new_event_loop(),
        shutdown_timeout=shutdown_timeout,
    )
