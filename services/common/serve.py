"""Serve a service's aiohttp app under uvloop until SIGINT or SIGTERM (the hub, the ledger)."""

import asyncio
import io
import signal

import structlog
import uvloop
from aiohttp import web


def serve(
    app: web.Application, *, name: str, host: str, port: int, shutdown_timeout: float
) -> None:
    """Log ``starting``, then run ``app`` on ``host:port``; a stop signal shuts it down in order.
    SIGUSR1 logs what every task is waiting on (``tasks``), for a process that seems stuck."""
    log = structlog.get_logger(f"liaison.{name}")
    log.info("starting", http=f"http://{host}:{port}/")
    loop = uvloop.new_event_loop()
    loop.add_signal_handler(signal.SIGUSR1, lambda: log.warning("tasks", tasks=task_stacks(loop)))
    web.run_app(
        app,
        host=host,
        port=port,
        print=None,
        access_log=None,
        loop=loop,
        shutdown_timeout=shutdown_timeout,
    )


def task_stacks(loop: asyncio.AbstractEventLoop) -> dict[str, str]:
    """Each pending task's name and where it is suspended."""
    stacks: dict[str, str] = {}
    for task in asyncio.all_tasks(loop):
        out = io.StringIO()
        task.print_stack(limit=8, file=out)
        stacks[f"{task.get_name()}#{id(task):x}"] = out.getvalue()
    return stacks
