"""Serve a service's aiohttp app under uvloop until SIGINT or SIGTERM (the hub, the ledger)."""

import asyncio
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
    """Each pending task's name and where it is suspended: every coroutine of its await chain,
    outermost first, then what the innermost one waits on (a future, a sleep)."""
    stacks: dict[str, str] = {}
    for task in asyncio.all_tasks(loop):
        lines = _await_chain(task.get_coro())
        # The future the task is parked on (private, but the only way to name it: the
        # innermost await of a future is an opaque iterator).
        waiter = getattr(task, "_fut_waiter", None)
        if waiter is not None:
            lines.append(f"awaits {_short(waiter)}")
        stacks[f"{task.get_name()}#{id(task):x}"] = "\n".join(lines)
    return stacks


def _await_chain(awaitable: object) -> list[str]:
    # A task's own stack (Task.print_stack) stops at its outermost coroutine; where a stuck
    # process really waits is at the end of the cr_await chain.
    lines: list[str] = []
    for _ in range(64):
        frame = getattr(awaitable, "cr_frame", None) or getattr(awaitable, "gi_frame", None)
        if frame is None:
            break
        code = frame.f_code
        lines.append(f"{code.co_filename}:{frame.f_lineno} {code.co_name}")
        awaited = getattr(awaitable, "cr_await", None) or getattr(awaitable, "gi_yieldfrom", None)
        if awaited is None:
            break
        awaitable = awaited
    return lines


def _short(awaitable: object) -> str:
    text = repr(awaitable)
    return text if len(text) <= 300 else text[:300] + "…"
