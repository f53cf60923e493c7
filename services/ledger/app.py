"""Wiring: the ledger's aiohttp app, whose lifecycle owns the consumer and the database pool."""

import asyncio
from collections.abc import AsyncIterator

import structlog
from aiohttp import web

from liaison.common.health import add_health_routes
from liaison.directory.index import load_directory
from liaison.ledger.consumer import LedgerConsumer
from liaison.ledger.metrics import LedgerMetrics
from liaison.ledger.settings import LedgerSettings

log = structlog.get_logger("liaison.ledger")

SETTINGS = web.AppKey("settings", LedgerSettings)
METRICS = web.AppKey("metrics", LedgerMetrics)
CONSUMER = web.AppKey("consumer", LedgerConsumer)


async def _consumer_ctx(app: web.Application) -> AsyncIterator[None]:
    consumer = app[CONSUMER]
    task = asyncio.create_task(consumer.run(), name="ledger-consumer")
    yield
    # Shutdown order: stop taking batches, let the one in hand commit (bounded), close.
    await consumer.stop()
    try:
        await asyncio.wait_for(task, 10)
    except TimeoutError:
        task.cancel()
    await consumer.close()
    log.info("stopped")


def create_app(
    settings: LedgerSettings, *, metrics: LedgerMetrics | None = None
) -> web.Application:
    """The ledger application; starting it connects to the broker and PostgreSQL."""
    app = web.Application()
    app[SETTINGS] = settings
    app[METRICS] = metrics or LedgerMetrics()
    directory = load_directory(settings.directory) if settings.directory else None
    app[CONSUMER] = consumer = LedgerConsumer(settings, app[METRICS], directory)
    add_health_routes(
        app,
        ready=lambda: {"broker_connected": consumer.connected, "database": consumer.database_ok},
        registry=app[METRICS].registry,
    )
    app.cleanup_ctx.append(_consumer_ctx)
    return app
