"""The tunnel's two ends and the link emulator, without a broker."""

import asyncio
import json

import pytest

from liaison.relay.faults import Direction, LinkEmulator
from liaison.relay.sorter import is_flash
from liaison.relay.tunnel import End, Tunnel


async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Answer every byte with itself."""
    while data := await reader.read(4096):
        writer.write(data)
        await writer.drain()
    writer.close()


def envelope(n: int) -> bytes:
    """A JSON envelope of the usual shape, different in its numbers."""
    return json.dumps(
        {
            "schema_version": "1.0",
            "distribution_id": f"01JD{n:022d}",
            "sender": "mag-bria",
            "recipients": ["org:unmas"],
            "body": {"type": "information.request", "question": f"Road at km {n} cleared?"},
        }
    ).encode()


async def test_bytes_cross_both_ends_unchanged_and_compressed() -> None:
    """What the site end takes comes out of the hq end as is, smaller on the link between."""
    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    hq = Tunnel(End.HQ, ("127.0.0.1", 0), ("127.0.0.1", port))
    await hq.start()
    link = LinkEmulator(target=("127.0.0.1", hq.port))
    await link.start()
    site = Tunnel(End.SITE, ("127.0.0.1", 0), ("127.0.0.1", link.port))
    await site.start()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", site.port)
        sent = b"".join(envelope(n) for n in range(200))
        for n in range(200):
            writer.write(envelope(n))
            await writer.drain()
        got = await asyncio.wait_for(reader.readexactly(len(sent)), 30)
        assert got == sent
        counters = site.counters
        assert counters.up_plain == counters.down_plain == len(sent)
        assert counters.up_wire == link.up.bytes_sent
        # The stream's history makes the 200 similar envelopes cost a fraction of their size.
        assert counters.up_wire * 4 < counters.up_plain
        print(f"\n200 envelopes: {counters.up_plain} plain, {counters.up_wire} on the link")
        link.cut()
        assert await asyncio.wait_for(reader.read(), 10) == b""
        writer.close()
    finally:
        await site.close()
        await link.close()
        await hq.close()
        server.close()


def test_the_link_serialises_at_its_bandwidth_then_delays() -> None:
    """Bytes queue behind each other at the bandwidth, then take the one-way delay."""
    direction = Direction(bits_per_second=8000, delay=0.3)
    assert direction.schedule(10.0, 1000) == pytest.approx(11.3)
    assert direction.schedule(10.0, 500) == pytest.approx(11.8)  # waits behind the first
    assert direction.schedule(20.0, 0) == pytest.approx(20.3)


def test_a_lost_chunk_arrives_a_retransmission_late() -> None:
    """With loss, about that share of chunks arrives ``retransmit`` seconds late."""
    direction = Direction(delay=0.1, loss=0.05, retransmit=0.8)
    late = sum(direction.schedule(0.0, 100) > 0.5 for _ in range(4000))
    assert late == direction.lost
    assert 120 < late < 280


@pytest.mark.parametrize(
    ("body", "flash"),
    [
        (b'{"precedence": "flash", "sender": "x"}', True),
        (b'{"precedence": "routine"}', False),
        (b'{"sender": "x"}', False),
        (b"not json", False),
        (b'{"precedence": 7}', False),
    ],
)
def test_the_sorter_reads_only_the_precedence(body: bytes, flash: bool) -> None:
    """Flash only when the envelope says so; anything unreadable goes routine (the hub judges)."""
    assert is_flash(body) is flash
