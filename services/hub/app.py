"""Wiring: the hub's aiohttp app, whose lifecycle owns the directory, router and consumer."""

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator, Callable

import structlog
from aiohttp import web

from liaison.common.errors import DirectoryError, LiaisonError
from liaison.common.health import add_health_routes
from liaison.directory.index import load_directory
from liaison.hub.admin import AdminRefusal, check_admin_access
from liaison.hub.consumer import HubConsumer
from liaison.hub.expiry import InboxDeadLetters, inbox_dead_letters_ctx
from liaison.hub.geo import DECODER_PATH
from liaison.hub.metrics import HubMetrics
from liaison.hub.redis_memory import open_memory
from liaison.hub.router import Router
from liaison.hub.settings import HubSettings

log = structlog.get_logger("liaison.hub")

SETTINGS = web.AppKey("settings", HubSettings)
METRICS = web.AppKey("metrics", HubMetrics)
ROUTER = web.AppKey("router", Router)
CONSUMER = web.AppKey("consumer", HubConsumer)
#: Called when the consumer stops on an error retrying cannot heal (a bad TLS file or CA).
ON_FATAL: web.AppKey[Callable[[LiaisonError], None]] = web.AppKey("on_fatal")


def reload_directory(app: web.Application) -> str:
    """Load the directory file again; a bad file raises DirectoryError and the old one stays."""
    settings, router, metrics = app[SETTINGS], app[ROUTER], app[METRICS]
    try:
        index = load_directory(settings.directory)
    except DirectoryError as exc:
        metrics.directory_reloads.labels("refused").inc()
        log.error("directory_refused", error=str(exc), kept="previous version")
        raise
    router.directory = index
    app[CONSUMER].inboxes.resurvey()  # inboxes: the new directory may name other inboxes
    metrics.directory_reloads.labels("loaded").inc()
    log.info(
        "directory_loaded", organisations=len(index.organisations), path=str(settings.directory)
    )
    return f"loaded {len(index.organisations)} organisations from {settings.directory}"


async def _reload(request: web.Request) -> web.Response:
    try:
        check_admin_access(
            request.remote, request.headers.get("Authorization"), request.app[SETTINGS].admin_token
        )
    except AdminRefusal as refusal:
        log.warning(
            "admin_refused", path=request.path, remote=request.remote, status=refusal.status
        )
        headers = {"WWW-Authenticate": "Bearer"} if refusal.status == 401 else None
        return web.json_response(
            {"status": "refused", "error": refusal.reason}, status=refusal.status, headers=headers
        )
    try:
        message = reload_directory(request.app)
    except DirectoryError as exc:
        return web.json_response({"status": "refused", "error": str(exc)}, status=422)
    return web.json_response({"status": "loaded", "message": message})


async def _consumer_ctx(app: web.Application) -> AsyncIterator[None]:
    consumer = app[CONSUMER]
    task = asyncio.create_task(consumer.run(), name="hub-consumer")
    task.add_done_callback(lambda done: _consumer_ended(app, done))
    loop = asyncio.get_running_loop()
    # Not the main thread, or no signals on this platform: reload stays on /admin/reload.
    with contextlib.suppress(NotImplementedError, RuntimeError):
        loop.add_signal_handler(signal.SIGHUP, _on_sighup, app)
    yield
    # Shutdown order: stop consuming, finish in-flight messages, close the connection.
    await consumer.stop()
    try:
        await asyncio.wait_for(task, app[SETTINGS].shutdown_grace_seconds + 5)
    except TimeoutError:
        task.cancel()
    except LiaisonError:
        pass  # already handed to ON_FATAL when the task ended
    await consumer.memory.close()
    log.info("stopped")


def _consumer_ended(app: web.Application, task: "asyncio.Task[None]") -> None:
    if not task.cancelled() and isinstance(error := task.exception(), LiaisonError):
        app[ON_FATAL](error)


def _on_sighup(app: web.Application) -> None:
    # A refused file is already logged; the previous directory stays in force.
    with contextlib.suppress(DirectoryError):
        reload_directory(app)


def create_app(
    settings: HubSettings,
    *,
    metrics: HubMetrics | None = None,
    on_fatal: Callable[[LiaisonError], None] | None = None,
) -> web.Application:
    """The hub application; starting it connects to the broker and starts consuming.

    ``on_fatal`` hears of a configuration error found only on connecting (the process runner
    stops the hub with it); without one it is only logged.
    """
    app = web.Application()
    app[SETTINGS] = settings
    app[ON_FATAL] = on_fatal or (lambda error: None)
    app[METRICS] = metrics or HubMetrics()
    app[METRICS].delivery_mode.labels(settings.delivery).set(1)
    log.info("delivery_mode", mode=settings.delivery, nodes=len(settings.amqp_urls))
    app[METRICS].decoder.labels(DECODER_PATH).set(1)
    log.info("decoder", path=DECODER_PATH)
    index = load_directory(settings.directory)
    app[ROUTER] = Router(index, max_message_bytes=settings.max_message_bytes)
    # What the hub handled: Redis shared by every hub process when LIAISON_REDIS_URL is set,
    # else this process's own (redis_memory.open_memory logs which).
    memory = open_memory(
        settings.redis_url,
        prefix=settings.redis_prefix,
        window_seconds=settings.dedupe_window_seconds,
        max_entries=settings.dedupe_max_entries,
    )
    app[CONSUMER] = HubConsumer(settings, app[ROUTER], memory, app[METRICS])
    consumer = app[CONSUMER]
    add_health_routes(
        app,
        ready=lambda: {"broker_connected": consumer.connected, "consuming": consumer.consuming},
        registry=app[METRICS].registry,
    )
    app.router.add_post("/admin/reload", _reload)
    app.cleanup_ctx.append(_consumer_ctx)
    # expiry (issue 11): tell senders of copies that expired unread in an inbox.
    reader = InboxDeadLetters(settings, lambda: app[ROUTER].directory)
    app.cleanup_ctx.append(inbox_dead_letters_ctx(reader))
    return app
