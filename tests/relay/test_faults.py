"""The link at its worst: 600 ms round trip, 128 kbit/s, 5% loss, flapping, the site broker killed.

Nothing is lost, the recipient sees each message once, and each sender's order is kept, in
both directions. Headquarters' inbox is read raw (the hub's delivery memory must already have
removed duplicates the link made); the site's inbox is read raw too, where a shovel redelivery
may leave a second copy for the SDK's dedupe window: those are counted and printed.
"""

import asyncio
import time

import msgspec
import pytest

from liaison.nodes.node import BrokerNode
from liaison.relay.faults import LinkEmulator
from liaison.schemas.messages.coordination import InformationRequest
from liaison.sdk import Client
from tests.hub.support import demo_signing
from tests.relay.conftest import VHOST, Headquarters, drain, linked, needs_root

pytestmark = [pytest.mark.slow, needs_root]

UP_EACH = 40  # from each of the two site partners
DOWN = 30  # from headquarters to a site partner


async def send_numbered(client: Client, to: str, count: int, *, pause: float = 0.05) -> None:
    """``count`` questions to ``to`` numbered 0..count-1, one after the other."""
    for n in range(count):
        await client.send(InformationRequest(question=f"n={n}"), recipients=[f"org:{to}"])
        await asyncio.sleep(pause)


def numbers(messages: list, sender: str) -> list[int]:  # type: ignore[type-arg]
    """The question numbers of ``sender``'s messages, in arrival order."""
    out = []
    for m in messages:
        doc = msgspec.json.decode(m.body)
        if doc["sender"] == sender:
            out.append(int(doc["body"]["question"].removeprefix("n=")))
    return out


async def test_nothing_lost_or_repeated_over_a_bad_link(
    hq: Headquarters, site_node: BrokerNode
) -> None:
    """Flapping 600 ms / 128 kbit/s / 5% loss link, site broker killed: once each, in order."""
    link = LinkEmulator.shaped(("127.0.0.1", 0), rtt=0.6, bits_per_second=128_000, loss=0.05)
    async with linked(hq, site_node, "bria", link) as relay:
        began = time.monotonic()
        await relay.status(connected=True, timeout=90)
        took = time.monotonic() - began
        print(f"\nshovels connected over 600 ms / 128 kbit/s / 5% loss in {took:.1f}s")
        site_url = f"amqp://127.0.0.1:{site_node.ports.amqp}/{VHOST}"
        hq_url = f"amqp://127.0.0.1:{hq.node.ports.amqp}/{VHOST}"
        clients = {
            org: Client.connect(org, site_url, account=org, password=hq.password(org), sign=False)
            for org in ("mag-bria", "unmas-bria")
        }
        mag = await clients["mag-bria"]
        unmas_bria = await clients["unmas-bria"]
        office = await Client.connect(
            "unmas", hq_url, account="unmas", password=hq.password("unmas"), **demo_signing("unmas")
        )
        try:
            link.flap(up=6, down=3)
            sending = asyncio.gather(
                send_numbered(mag, "unmas", UP_EACH),
                send_numbered(unmas_bria, "unmas", UP_EACH),
                send_numbered(office, "mag-bria", DOWN),
            )
            await asyncio.sleep(2)
            site_node.kill()
            await asyncio.sleep(1)
            await asyncio.to_thread(site_node.restart)
            print(f"site broker killed and back in {site_node.started_in:.1f}s")
            await sending
            await asyncio.sleep(10)
            link.stop_flapping()
            drained = time.monotonic()
            at_hq = await drain(hq.url("unmas"), "inbox.unmas", expect=2 * UP_EACH, timeout=120)
            at_site = await drain(
                site_node.amqp_url("mag-bria", hq.password("mag-bria"), VHOST),
                "inbox.mag-bria",
                expect=DOWN,
                timeout=120,
            )
            await asyncio.sleep(3)  # any late duplicate would land now
            at_site += await drain(
                site_node.amqp_url("mag-bria", hq.password("mag-bria"), VHOST),
                "inbox.mag-bria",
                expect=DOWN,
                timeout=1,
            )
            print(f"drained {time.monotonic() - drained:.1f}s after the link settled")
        finally:
            await mag.close()
            await unmas_bria.close()
            await office.close()
        status = await relay.status(connected=True)
    for sender in ("mag-bria", "unmas-bria"):
        assert numbers(at_hq, sender) == list(range(UP_EACH)), sender
    ids = [m.message_id for m in at_hq]
    assert len(ids) == len(set(ids)) == 2 * UP_EACH
    down = numbers(at_site, "unmas")
    firsts = list(dict.fromkeys(down))
    assert firsts == list(range(DOWN))
    print(
        f"up {len(at_hq)} once each and in order; down {DOWN} in order, "
        f"{len(down) - DOWN} raw duplicates at the site (the SDK skips them); link bytes "
        f"up {status['up_wire_bytes']} wire / {status['up_plain_bytes']} plain; "
        f"{link.up.lost + link.down.lost} chunks lost and sent again"
    )
