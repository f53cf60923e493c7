"""SDK test helpers: sample bodies, closing a partner's connection from the broker side."""

import asyncio
import time
from urllib.parse import quote

import aio_pika

from liaison.schemas.examples import example
from liaison.schemas.messages.hazards import EoSpotReport
from tests.conftest import management


def spot_report() -> EoSpotReport:
    """The published example EO spot report body."""
    body = example("hazard.eo_spot_report").body
    assert isinstance(body, EoSpotReport)
    return body


async def force_close(vhost: str, account: str) -> None:
    """Close every connection of ``account`` on ``vhost`` through the management API."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        connections = await management("GET", f"/vhosts/{quote(vhost, safe='')}/connections")
        assert isinstance(connections, list)
        names = [c["name"] for c in connections if c.get("user") == account]
        if names:
            for name in names:
                await management("DELETE", f"/connections/{quote(name, safe='')}")
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"no connection of {account} appeared")


async def wait_for_depth(
    admin: aio_pika.abc.AbstractConnection, queue: str, count: int, within: float = 60.0
) -> None:
    """Wait until ``queue`` holds at least ``count`` ready messages."""
    channel = await admin.channel()
    try:
        deadline = time.monotonic() + within
        while True:
            declared = await channel.declare_queue(queue, passive=True)
            depth = declared.declaration_result.message_count or 0
            if depth >= count:
                return
            assert time.monotonic() < deadline, f"{queue} holds {depth} of {count}"
            await asyncio.sleep(0.2)
    finally:
        await channel.close()


async def queue_depth(admin: aio_pika.abc.AbstractConnection, queue: str) -> int:
    """Ready messages in ``queue`` now."""
    channel = await admin.channel()
    try:
        declared = await channel.declare_queue(queue, passive=True)
        return declared.declaration_result.message_count or 0
    finally:
        await channel.close()
