"""A flash message published behind a routine backlog crosses the link before the backlog."""

import asyncio
import time
from collections.abc import Awaitable, Callable

import aio_pika
import pytest

from bench.relay import depth
from liaison.nodes.node import BrokerNode
from liaison.relay.faults import LinkEmulator
from liaison.relay.site import OUTBOUND_QUEUE, ROUTINE_QUEUE
from liaison.schemas.messages.coordination import InformationRequest
from liaison.sdk import Client
from tests.relay.conftest import VHOST, Headquarters, linked, needs_root

pytestmark = [pytest.mark.slow, needs_root]

BACKLOG = 600


async def until(read: Callable[[], Awaitable[int]], at_least: int, every: float) -> None:
    """Poll ``read`` every ``every`` seconds until it gives ``at_least``."""
    for _ in range(int(120 / every)):
        if await read() >= at_least:
            return
        await asyncio.sleep(every)
    raise AssertionError(f"never reached {at_least}")


async def test_flash_crosses_ahead_of_a_routine_backlog(
    hq: Headquarters, site_node: BrokerNode
) -> None:
    """Over 64 kbit/s, a flash sent once the backlog drains arrives while routine ones wait."""
    link = LinkEmulator.shaped(("127.0.0.1", 0), rtt=0.2, bits_per_second=64_000)
    # The routine shovel's window smaller than the backlog (the default, 500, is sized for a
    # 600 ms round trip at 256 kbit/s): what it pins is the flash queue's own way across.
    async with linked(hq, site_node, "bria", link, relay_routine_prefetch=100) as relay:
        await relay.status(connected=True, timeout=60)
        link.cut()
        site_url = f"amqp://127.0.0.1:{site_node.ports.amqp}/{VHOST}"
        site_admin = site_node.amqp_url(vhost=VHOST)
        hq_admin = hq.node.amqp_url(vhost=VHOST)
        async with Client.connect(
            "mag-bria", site_url, account="mag-bria", password=hq.password("mag-bria"), sign=False
        ) as field:
            for n in range(BACKLOG):
                await field.send(InformationRequest(question=f"n={n}"), recipients=["org:ocha"])
            link.restore()
            await until(lambda: depth(hq_admin, "inbox.ocha"), 20, 0.2)
            sent = time.monotonic()
            await field.send(
                InformationRequest(question="Mine strike at km 41, send MEDEVAC"),
                recipients=["org:ocha"],
                precedence="flash",
            )
            await until(lambda: depth(hq_admin, "inbox.ocha.flash"), 1, 0.1)
            crossed = time.monotonic() - sent
            waiting = await depth(site_admin, OUTBOUND_QUEUE, ROUTINE_QUEUE)
            arrived = await depth(hq_admin, "inbox.ocha")
        print(
            f"\nflash crossed in {crossed:.2f}s over 64 kbit/s with {waiting} routine still "
            f"waiting at the site ({arrived} of {BACKLOG} across)"
        )
        assert waiting > 0
        # Let the rest cross at full speed, then leave the inboxes empty for the next test.
        link.up.bits_per_second = link.down.bits_per_second = None
        await until(lambda: depth(hq_admin, "inbox.ocha"), BACKLOG, 0.5)
    async with await aio_pika.connect(hq_admin) as connection:
        channel = await connection.channel()
        for name in ("inbox.ocha", "inbox.ocha.flash"):
            await (await channel.get_queue(name, ensure=False)).purge()
