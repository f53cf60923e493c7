"""The inbox loop rides through forced connection closes with hundreds of deliveries buffered."""

import collections

import aio_pika
import pytest

from liaison.schemas.wire import inbox_queue
from liaison.sdk import Client
from tests.conftest import amqp_url_for
from tests.hub.conftest import RunningHub
from tests.hub.support import PASSWORD, demo_signing
from tests.sdk.conftest import Connect
from tests.sdk.support import force_close, queue_depth, spot_report, wait_for_depth

pytestmark = [pytest.mark.broker, pytest.mark.slow]

BACKLOG = 600
PREFETCH = 250
#: Processed counts at which the broker drops the reader's connection: each time with about
#: PREFETCH deliveries buffered in the SDK and one in the handler's hands.
CLOSE_AT = (40, 180, 330, 480)


async def test_backlog_survives_forced_closes_exactly_once(
    hub: RunningHub,
    connect: Connect,
    admin: aio_pika.abc.AbstractConnection,
    vhost: str,
    partner_accounts: dict[str, str],
) -> None:
    """Four forced closes mid-backlog: the loop never raises, each message is handled once."""
    mag = await connect("mag")
    sent = [await mag.send(spot_report(), recipients=["org:unmas"]) for _ in range(BACKLOG)]
    await wait_for_depth(admin, inbox_queue("unmas"), BACKLOG)
    handled: collections.Counter[str] = collections.Counter()
    async with Client.connect(
        "unmas",
        amqp_url_for(vhost),
        account=partner_accounts["unmas"],
        password=PASSWORD,
        prefetch=PREFETCH,
        reconnect_interval=0.3,
        **demo_signing("unmas"),
    ) as unmas:
        inbox = await unmas.inbox()
        while len(handled) < BACKLOG:
            delivery = await inbox.get(30)
            assert delivery is not None, f"stalled after {len(handled)} of {BACKLOG}"
            handled[delivery.envelope.distribution_id] += 1
            if len(handled) in CLOSE_AT:
                # The broker drops the connection while this one is in hand, unacked.
                await force_close(vhost, partner_accounts["unmas"])
            await delivery.ack()
        assert await inbox.get(2.0) is None  # no copy of anything is handed out again
        assert inbox.stale >= len(CLOSE_AT)  # buffered deliveries of dead channels were dropped
    assert sorted(handled) == sorted(sent)
    assert set(handled.values()) == {1}
    assert await queue_depth(admin, inbox_queue("unmas")) == 0
