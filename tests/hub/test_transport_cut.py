"""The hub's own socket reading (transport.py) when the broker link breaks inside a large frame:
a proxy between hub and broker cuts the connection in the middle of a multi-frame body, and
every message still reaches each inbox once, whole, in order."""

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import aio_pika
import msgspec
import pytest
from yarl import URL

from liaison.directory.index import DirectoryIndex
from liaison.hub.consumer import HubConsumer
from liaison.hub.memory import LocalMemory
from liaison.hub.metrics import HubMetrics
from liaison.hub.router import Router
from liaison.schemas.wire import inbox_queue
from tests.hub.conftest import hub_settings, purge_all
from tests.hub.support import Partner, drain, envelope

pytestmark = pytest.mark.broker


@dataclass
class CuttingProxy:
    """Forwards TCP to the broker at ``upstream``; the first connection is cut, both ways at
    once, after ``cut_after`` bytes from the broker (the rest of that read is dropped)."""

    upstream: URL
    cut_after: int
    connections: int = 0
    cut: bool = False
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    async def start(self) -> int:
        server = await asyncio.start_server(self._accepted, "127.0.0.1", 0)
        self._server = server
        port: int = server.sockets[0].getsockname()[1]
        return port

    async def close(self) -> None:
        self._server.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _accepted(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        first = self.connections == 1
        broker_reader, broker_writer = await asyncio.open_connection(
            self.upstream.host, self.upstream.port
        )
        upstream = asyncio.create_task(self._pipe(reader, broker_writer, None))
        downstream = asyncio.create_task(
            self._pipe(broker_reader, writer, self.cut_after if first else None)
        )
        self._tasks |= {upstream, downstream}
        await asyncio.wait({upstream, downstream}, return_when=asyncio.FIRST_COMPLETED)
        # A cut: neither side hears a close; the sockets just go.
        for w in (writer, broker_writer):
            w.transport.abort()
        for task in (upstream, downstream):
            task.cancel()

    async def _pipe(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, limit: int | None
    ) -> None:
        sent = 0
        with contextlib.suppress(ConnectionError):
            while chunk := await reader.read(65536):
                if limit is not None and sent + len(chunk) > limit:
                    writer.write(chunk[: limit - sent])
                    await writer.drain()
                    self.cut = True
                    return
                writer.write(chunk)
                sent += len(chunk)
                await writer.drain()


@pytest.fixture
async def proxy(topology: str) -> AsyncIterator[CuttingProxy]:
    """A proxy to the test broker that cuts its first connection 300,000 bytes into what the
    broker sends."""
    cutting = CuttingProxy(URL(topology), cut_after=300_000)
    yield cutting
    await cutting.close()


async def test_a_link_cut_inside_a_large_body_loses_and_repeats_nothing(
    proxy: CuttingProxy,
    admin: aio_pika.abc.AbstractConnection,
    partners: dict[str, Partner],
    directory: DirectoryIndex,
    directory_file: Path,
    topology: str,
    hub_key_file: Path,
) -> None:
    """Ten ~200 KB messages (two body frames each) to two organisations, the hub's link cut
    300,000 bytes in, inside the second delivery's body: the hub reconnects, and each inbox
    holds all ten once, byte for byte, in the order sent."""
    await purge_all(admin, directory)
    port = await proxy.start()
    settings = hub_settings(
        str(URL(topology).with_port(port)), directory_file, hub_signing_key=hub_key_file
    )
    router = Router(directory, max_message_bytes=settings.max_message_bytes)
    consumer = HubConsumer(
        settings, router, LocalMemory(seconds=600, max_entries=10_000), HubMetrics()
    )
    raws = [
        msgspec.json.encode(
            envelope("mag", ["org:unmas", "org:minusca"], x_annex=f"{n}-" + "\u00e9" * 100_000)
        )
        for n in range(10)
    ]
    assert all(131_072 < len(raw) < 256 * 1024 for raw in raws)
    for raw in raws:
        await partners["mag"].send(raw)
    task = asyncio.create_task(consumer.run())
    try:
        for org in ("unmas", "minusca"):
            got = await drain(admin, inbox_queue(org), expect=len(raws), timeout=60, settle=1.0)
            assert [m.body for m in got] == raws
    finally:
        await consumer.stop()
        await asyncio.wait_for(task, 10)
    assert proxy.cut
    assert proxy.connections >= 2
