"""Running the ledger app under uvloop until SIGINT or SIGTERM."""

import structlog
import uvloop
from aiohttp import web

from liaison.common.logging import configure_logging
from liaison.ledger.app import create_app
from liaison.ledger.settings import LedgerSettings


def run_ledger(settings: LedgerSettings) -> None:
    """Serve the ledger's API and console and consume until a stop signal."""
    configure_logging(level=settings.log_level)
    app = create_app(settings)
    structlog.get_logger("liaison.ledger").info(
        "starting", http=f"http://{settings.http_host}:{settings.http_port}/"
    )
    web.run_app(
        app,
        host=settings.http_host,
        port=settings.http_port,
        print=None,
        access_log=None,
        loop=uvloop.new_event_loop(),
        shutdown_timeout=10,
    )
