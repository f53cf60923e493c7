"""A TCP listener that runs each accepted connection as a task, so closing it ends them all.

The tunnel's two ends and the link emulator each forward connections this way.
"""

import asyncio
from collections.abc import Awaitable, Callable

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class Listener:
    """``handle`` for every connection accepted on ``host:port`` until ``close``."""

    def __init__(self) -> None:
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self, handle: Handler, host: str, port: int) -> None:
        """Start accepting (``port`` 0 picks one: read it back from ``port``)."""

        async def accepted(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            assert task is not None
            self._tasks.add(task)
            try:
                await handle(reader, writer)
            finally:
                self._tasks.discard(task)

        self._server = await asyncio.start_server(accepted, host, port)

    @property
    def port(self) -> int:
        """The port listened on."""
        assert self._server is not None, "start() first"
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    def end_connections(self) -> None:
        """Cancel every open connection's task; the listener goes on accepting."""
        for task in list(self._tasks):
            task.cancel()

    async def close(self) -> None:
        """Stop accepting and end every open connection."""
        if self._server is not None:
            self._server.close()
        self.end_connections()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
