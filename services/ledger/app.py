"""Wiring: the ledger's aiohttp app, whose lifecycle owns the consumer and the database pools."""

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import structlog
from aiohttp import web

from liaison.common.health import add_health_routes
from liaison.common.hub_key import load_hub_key
from liaison.directory.index import DirectoryIndex, load_directory
from liaison.ledger.api import LedgerApi, ReadPool, management_client, operator_middleware
from liaison.ledger.consumer import LedgerConsumer
from liaison.ledger.heads import HeadSigner, PoolFactory
from liaison.ledger.jws import HeadSigningKey
from liaison.ledger.metrics import LedgerMetrics
from liaison.ledger.settings import LedgerSettings

log = structlog.get_logger("liaison.ledger")

SETTINGS = web.AppKey("settings", LedgerSettings)
METRICS = web.AppKey("metrics", LedgerMetrics)
CONSUMER = web.AppKey("consumer", LedgerConsumer)
API = web.AppKey("api", LedgerApi)
SIGNER = web.AppKey("signer", HeadSigner)
CONSOLE = Path(__file__).with_name("console")


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
    await app[API].pool.close()
    log.info("stopped")


async def _signer_ctx(app: web.Application) -> AsyncIterator[None]:
    signer = app[SIGNER]
    task = asyncio.create_task(signer.run(), name="ledger-chain-heads")
    yield
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await signer.pool_factory.close()


def _health(consumer: LedgerConsumer, signer: HeadSigner | None) -> dict[str, Any]:
    backlog, lag = consumer.backlog, consumer.lag
    return {
        "ledger_ready": consumer.connected and consumer.database_ok,
        "broker_connected": consumer.connected,
        "database": consumer.database_ok,
        "lag_seconds": round(lag, 3),
        "backlog": backlog,
        "chain_heads": (
            {
                "kid": signer.key.kid,
                "last_signed": signer.last_signed and signer.last_signed.isoformat(),
            }
            if signer is not None
            else None
        ),
    }


async def _console_index(_: web.Request) -> web.FileResponse:
    return web.FileResponse(CONSOLE / "index.html")


def create_app(
    settings: LedgerSettings,
    *,
    metrics: LedgerMetrics | None = None,
    directory: DirectoryIndex | None = None,
) -> web.Application:
    """The ledger application; starting it connects to the broker and PostgreSQL."""
    app = web.Application(middlewares=[operator_middleware(lambda: settings.token)])
    app[SETTINGS] = settings
    app[METRICS] = metrics = metrics or LedgerMetrics()
    if directory is None and settings.directory:
        directory = load_directory(settings.directory)
    app[CONSUMER] = consumer = LedgerConsumer(settings, metrics, directory)
    signer = None
    if settings.hub_signing_key is not None:
        key = HeadSigningKey.from_hub_key(load_hub_key(settings.hub_signing_key))
        app[SIGNER] = signer = HeadSigner(
            PoolFactory(settings.database_url), key, settings.head_seconds
        )
    app[API] = api = LedgerApi(
        ReadPool(settings.database_url),
        management=management_client(
            settings.management_url,
            settings.management_user,
            settings.management_password.reveal(),
        ),
        vhost=settings.vhost,
        organisations=lambda: sorted(directory.organisations) if directory else [],
        health=lambda: _health(consumer, signer),
        hub_url=settings.hub_url,
        stale_seconds=settings.stale_seconds,
        amqp_url=settings.replay_amqp_url or settings.amqp_url,
    )
    add_health_routes(
        app,
        ready=lambda: {"broker_connected": consumer.connected, "database": consumer.database_ok},
        registry=metrics.registry,
    )
    api.routes(app)
    app.router.add_get("/", _console_index)
    app.router.add_static("/console/", CONSOLE)
    app.cleanup_ctx.append(_consumer_ctx)
    if signer is not None:
        app.cleanup_ctx.append(_signer_ctx)
    return app
