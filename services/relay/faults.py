"""A poor link between a site and headquarters, emulated as a TCP proxy (tests and the bench).

Every connection through the proxy shares one emulated link: a bandwidth per direction (bytes
queue behind each other, as on a real modem), a one-way delay (half the round trip), and
switches to cut the link (open connections reset, new ones refused until ``restore``) or make
it flap.

Packet loss is modelled as TCP makes the application see it: a lost segment is sent again
after the retransmission timeout, and everything behind it on that connection waits for it
(head-of-line blocking). Each chunk the proxy forwards (about one segment at satellite rates)
is "lost" with probability ``loss`` and then arrives ``retransmit`` seconds late. Kernel loss
(``tc netem`` in a network namespace) would be the real thing, but this machine's kernel has no
``sch_netem``.
"""

import asyncio
import contextlib
import random
from dataclasses import dataclass, field

from liaison.relay.listener import Listener

CHUNK = 16 * 1024


@dataclass
class Direction:
    """One direction of the link: serialisation at ``bits_per_second``, then ``delay``."""

    bits_per_second: float | None = None
    delay: float = 0.0
    #: Share of chunks lost once and sent again ``retransmit`` seconds later.
    loss: float = 0.0
    retransmit: float = 0.5
    seed: int = 14
    #: When the link finishes sending what is already queued (loop time).
    _free_at: float = 0.0
    bytes_sent: int = 0
    lost: int = 0
    _random: random.Random = field(init=False, repr=False)

    def __post_init__(self) -> None:
        # Not for security: a reproducible pattern of losses.
        self._random = random.Random(self.seed)  # noqa: S311

    def schedule(self, now: float, size: int) -> float:
        """When ``size`` bytes handed over at ``now`` arrive at the far end."""
        self.bytes_sent += size
        late = 0.0
        if size and self.loss and self._random.random() < self.loss:
            self.lost += 1
            late = self.retransmit
        if self.bits_per_second is None:
            return now + self.delay + late
        start = max(now, self._free_at)
        self._free_at = start + size * 8 / self.bits_per_second
        return self._free_at + self.delay + late


@dataclass
class LinkEmulator:
    """A TCP proxy from ``listen`` to ``target`` that behaves like a poor link."""

    target: tuple[str, int]
    listen: tuple[str, int] = ("127.0.0.1", 0)
    up: Direction = field(default_factory=Direction)
    down: Direction = field(default_factory=Direction)
    _listener: Listener = field(default_factory=Listener)
    _up_link: bool = True
    _flapping: asyncio.Task[None] | None = None

    @classmethod
    def shaped(
        cls,
        target: tuple[str, int],
        *,
        rtt: float = 0.0,
        bits_per_second: float | None = None,
        loss: float = 0.0,
    ) -> "LinkEmulator":
        """A symmetric link: ``rtt`` round trip, ``bits_per_second`` and ``loss`` each way.

        A lost chunk comes ``rtt`` plus 0.2 s late (Linux's smallest retransmission timeout).
        """
        return cls(
            target=target,
            up=Direction(bits_per_second, rtt / 2, loss, rtt + 0.2, seed=1),
            down=Direction(bits_per_second, rtt / 2, loss, rtt + 0.2, seed=2),
        )

    async def start(self) -> None:
        """Start accepting connections."""
        await self._listener.start(self._accepted, *self.listen)

    @property
    def port(self) -> int:
        """The port the proxy listens on."""
        return self._listener.port

    @property
    def is_up(self) -> bool:
        """Whether the link carries traffic now."""
        return self._up_link

    def cut(self) -> None:
        """The link goes down: open connections break, new ones fail until ``restore``."""
        self._up_link = False
        self._listener.end_connections()

    def restore(self) -> None:
        """The link comes back."""
        self._up_link = True

    def flap(self, *, up: float, down: float) -> None:
        """Cut and restore the link again and again (``stop_flapping`` ends it, link up)."""

        async def run() -> None:
            while True:
                await asyncio.sleep(up)
                self.cut()
                await asyncio.sleep(down)
                self.restore()

        self.stop_flapping()
        self._flapping = asyncio.create_task(run())

    def stop_flapping(self) -> None:
        """End flapping and leave the link up."""
        if self._flapping is not None:
            self._flapping.cancel()
            self._flapping = None
        self.restore()

    async def close(self) -> None:
        """Stop the proxy and every connection through it."""
        self.stop_flapping()
        await self._listener.close()

    async def _accepted(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self._up_link:
            writer.transport.abort()
            return
        try:
            target_reader, target_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        pumps = [
            asyncio.create_task(self._carry(reader, target_writer, self.up)),
            asyncio.create_task(self._carry(target_reader, writer, self.down)),
        ]
        try:
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for pump in pumps:
                pump.cancel()
            await asyncio.gather(*pumps, return_exceptions=True)
            # A cut link is a reset, not a polite close: neither side gets a FIN in order.
            for w in (writer, target_writer):
                w.transport.abort()

    async def _carry(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        direction: Direction,
    ) -> None:
        loop = asyncio.get_running_loop()
        # Bounded: the proxy does not read far ahead of what the link has sent (backpressure).
        arrivals: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue(maxsize=64)

        async def deliver() -> None:
            while True:
                at, data = await arrivals.get()
                await asyncio.sleep(max(0.0, at - loop.time()))
                if not data:
                    return
                writer.write(data)
                await writer.drain()

        deliverer = asyncio.create_task(deliver())
        try:
            while True:
                # Small reads: a big one would arrive as one lump and hide the bandwidth.
                data = await reader.read(_chunk(direction))
                if not data:
                    # What the link already carries still arrives, then the close.
                    await arrivals.put((direction.schedule(loop.time(), 0), b""))
                    await deliverer
                    return
                await arrivals.put((direction.schedule(loop.time(), len(data)), data))
        finally:
            deliverer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await deliverer


def _chunk(direction: Direction) -> int:
    if direction.bits_per_second is None:
        return CHUNK
    # About 50 ms of the link's time per read, at least 512 bytes.
    return max(512, min(CHUNK, int(direction.bits_per_second / 8 / 20)))
