"""The compressing TCP tunnel the relay's shovels reach headquarters through.

Shovels cannot compress, and bytes are what a satellite link is paid by. Each AMQP connection a
shovel opens to ``127.0.0.1:<site port>`` becomes one tunnel connection: the site end compresses
what the shovel sends and decompresses what comes back; the headquarters end does the reverse
and talks plain AMQP to the broker. One zstd stream per direction per connection, flushed at
every write (``COMPRESSOBJ_FLUSH_BLOCK``): nothing waits in the compressor for more input, and
the stream's window keeps the history, so the second JSON envelope of a kind costs a fraction
of the first.

    shovel --amqp--> [site end: compress] ==zstd over the link==> [hq end: decompress] --> broker

The link side is not encrypted: run it inside the site's VPN or an SSH tunnel
(docs/operations.md, "Field sites").
"""

import asyncio
import contextlib
import enum
from collections.abc import Callable
from dataclasses import dataclass, field

import structlog
import zstandard

from liaison.relay.listener import Listener

log = structlog.get_logger("liaison.relay.tunnel")

CHUNK = 64 * 1024
DEFAULT_LEVEL = 6


class End(enum.StrEnum):
    """Which end of the link this is."""

    #: Accepts plain AMQP from the site broker's shovels; the link side is compressed.
    SITE = "site"
    #: Accepts the compressed link; forwards plain AMQP to the headquarters broker.
    HQ = "hq"


@dataclass
class WireCounters:
    """Bytes through the tunnel: plain (what AMQP carried) and on the link (compressed)."""

    #: Site -> headquarters.
    up_plain: int = 0
    up_wire: int = 0
    #: Headquarters -> site.
    down_plain: int = 0
    down_wire: int = 0
    connections: int = 0
    opened: int = 0

    def ratio(self) -> float | None:
        """Plain bytes per wire byte, both directions; None before anything passed."""
        wire = self.up_wire + self.down_wire
        return (self.up_plain + self.down_plain) / wire if wire else None


@dataclass
class Tunnel:
    """One end of the tunnel: listens on ``listen``, forwards each connection to ``target``."""

    end: End
    listen: tuple[str, int]
    target: tuple[str, int]
    level: int = DEFAULT_LEVEL
    counters: WireCounters = field(default_factory=WireCounters)
    _listener: Listener = field(default_factory=Listener)

    async def start(self) -> None:
        """Start listening (``listen`` port 0 picks one: read it back from ``port``)."""
        await self._listener.start(self._accepted, *self.listen)

    @property
    def port(self) -> int:
        """The port listened on."""
        return self._listener.port

    async def close(self) -> None:
        """Stop listening and end every open connection."""
        await self._listener.close()

    async def _accepted(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.counters.connections += 1
        self.counters.opened += 1
        try:
            await self._serve(reader, writer)
        except (OSError, zstandard.ZstdError) as exc:
            log.info("tunnel connection ended", end=self.end.value, reason=str(exc))
        finally:
            self.counters.connections -= 1
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        target_reader, target_writer = await asyncio.open_connection(*self.target)
        counters = self.counters
        try:
            if self.end is End.SITE:
                # Shovel -> link: compress; link -> shovel: decompress.
                pumps = (
                    _pump(reader, target_writer, _compressor(self.level), _count_up(counters)),
                    _pump(target_reader, writer, _decompressor(), _count_down(counters, True)),
                )
            else:
                pumps = (
                    _pump(reader, target_writer, _decompressor(), _count_up(counters, True)),
                    _pump(target_reader, writer, _compressor(self.level), _count_down(counters)),
                )
            tasks = [asyncio.create_task(p) for p in pumps]
            # Either side closing ends the connection: AMQP has no half-closed state.
            done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            for task in done:
                task.result()
        finally:
            target_writer.close()
            with contextlib.suppress(Exception):
                await target_writer.wait_closed()


Transform = Callable[[bytes], bytes]
Count = Callable[[int, int], None]


def _compressor(level: int) -> Transform:
    stream = zstandard.ZstdCompressor(level=level).compressobj()

    def compress(data: bytes) -> bytes:
        # Flush a block per write: AMQP is a conversation, the peer must see each frame now.
        return stream.compress(data) + stream.flush(zstandard.COMPRESSOBJ_FLUSH_BLOCK)

    return compress


def _decompressor() -> Transform:
    stream = zstandard.ZstdDecompressor().decompressobj()
    return stream.decompress


def _count_up(counters: WireCounters, wire_first: bool = False) -> Count:
    def count(read: int, written: int) -> None:
        plain, wire = (written, read) if wire_first else (read, written)
        counters.up_plain += plain
        counters.up_wire += wire

    return count


def _count_down(counters: WireCounters, wire_first: bool = False) -> Count:
    def count(read: int, written: int) -> None:
        plain, wire = (written, read) if wire_first else (read, written)
        counters.down_plain += plain
        counters.down_wire += wire

    return count


async def _pump(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, transform: Transform, count: Count
) -> None:
    while True:
        data = await reader.read(CHUNK)
        if not data:
            return
        out = transform(data)
        count(len(data), len(out))
        if out:
            writer.write(out)
            await writer.drain()
