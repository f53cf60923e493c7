"""A publish the broker nacks is sent again in place, in order, before any 502 (retry.py)."""

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import quote

import aio_pika
import aiormq
import pytest

from liaison.directory.index import DirectoryIndex
from liaison.hub.consumer import HubConsumer
from liaison.hub.retry import Holdback, NackRetry
from liaison.schemas.wire import inbox_queue
from tests.conftest import management
from tests.hub.memory_support import local_hub
from tests.hub.support import Partner, decode, drain, envelope


def test_retry_pauses_grow_to_the_cap_and_stop_at_the_limit() -> None:
    """Pauses double from ``first`` up to ``cap``; the last ends at the limit; then give up."""
    policy = NackRetry(limit=3.0, first=0.05, cap=1.0)
    assert [policy.delay(n, 0.0) for n in range(6)] == [0.05, 0.1, 0.2, 0.4, 0.8, 1.0]
    assert policy.delay(40, 0.0) == 1.0
    assert policy.delay(9, 2.5) == pytest.approx(0.5)
    assert policy.delay(9, 3.0) is None
    assert NackRetry(limit=0.0).delay(0, 0.0) is None, "0 answers the first nack at once"


async def test_held_tickets_make_later_ones_wait_in_order() -> None:
    """While ticket 3 is retried, ticket 5 waits and ticket 2 does not; releasing lets 5 go."""
    holdback = Holdback()
    holdback.hold(3)
    assert holdback.held
    await asyncio.wait_for(holdback.clear(2), 1)
    await asyncio.wait_for(holdback.clear(3), 1)
    later = asyncio.ensure_future(holdback.clear(5))
    await asyncio.sleep(0.05)
    assert not later.done()
    await holdback.release(3)
    await asyncio.wait_for(later, 1)
    assert not holdback.held


async def policy_applied(vhost: str, queue: str) -> None:
    """Wait until the broker reports the two-message limit in force on ``queue``."""
    path = f"/queues/{quote(vhost, safe='')}/{quote(queue, safe='')}"
    for _ in range(100):
        info = await management("GET", path)
        if (info.get("effective_policy_definition") or {}).get("max-length") == 2:
            await asyncio.sleep(0.5)  # the queue's replicas apply it just after
            return
        await asyncio.sleep(0.1)
    raise AssertionError("the two-message policy never applied")


@pytest.fixture
async def patient_hub(
    admin: aio_pika.abc.AbstractConnection,
    directory: DirectoryIndex,
    directory_file: Path,
    topology: str,
) -> AsyncIterator[HubConsumer]:
    """A hub that retries nacked publishes for 20 s (the default), on clean queues; in confirm
    mode, the one with nacks (a transactional channel is never told of a refusal)."""
    retrying = local_hub(
        admin, directory, directory_file, topology, nack_retry_seconds=20.0, delivery="confirm"
    )
    async with retrying as consumer:
        yield consumer


@pytest.mark.broker
async def test_an_inbox_that_refuses_for_a_moment_gets_everything_in_order(
    patient_hub: HubConsumer,
    partners: dict[str, Partner],
    admin: aio_pika.abc.AbstractConnection,
    vhost: str,
) -> None:
    """An inbox nacks while full; once read, the held messages arrive in order, no 502."""
    inbox = inbox_queue("halo-trust")
    policy = f"/policies/{quote(vhost, safe='')}/brief-inbox"
    await management(
        "PUT",
        policy,
        {"pattern": "^inbox\\.halo-trust$", "apply-to": "queues", "definition": {"max-length": 2}},
    )
    try:
        await policy_applied(vhost, inbox)
        # Filled to the limit first (quorum queues apply a new limit lazily): the broker's own
        # nack proves the inbox refuses before the hub publishes anything to it.
        filler = await admin.channel(publisher_confirms=True)
        probes = 0
        for _ in range(50):
            try:
                await filler.default_exchange.publish(aio_pika.Message(b"{}"), routing_key=inbox)
            except aiormq.exceptions.DeliveryError:
                break
            probes += 1
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("the inbox never refused")
        await filler.close()
        docs = [envelope("mag", ["org:halo-trust"]) for _ in range(3)]
        for doc in docs:
            await partners["mag"].send(doc)
        for _ in range(100):
            if patient_hub.metrics.nack_retries._value.get() >= 1:
                break
            await asyncio.sleep(0.1)
        assert patient_hub.metrics.nack_retries._value.get() >= 1, "the hub was never nacked"
    finally:
        await management("DELETE", policy)
    got = await drain(admin, inbox, expect=probes + len(docs), timeout=20)
    arrived = [decode(m)["distribution_id"] for m in got if m.body != b"{}"]
    assert arrived == [d["distribution_id"] for d in docs]
    assert await drain(admin, inbox_queue("mag"), expect=0, settle=0.5) == [], "nobody got 502"


@pytest.mark.broker
async def test_publishing_moves_to_a_new_channel_without_losing_or_reordering(
    patient_hub: HubConsumer,
    partners: dict[str, Partner],
    admin: aio_pika.abc.AbstractConnection,
) -> None:
    """Renewing the publishing channel mid-stream (as after 2 s of nacks) keeps every message,
    in order, closes the old channel, and leaves the hub consuming."""
    docs = [envelope("mag", ["org:unmas"]) for _ in range(20)]
    for doc in docs[:10]:
        await partners["mag"].send(doc)
    old = patient_hub._current_publisher()
    await patient_hub._renew_outbox(old)
    assert patient_hub._current_publisher() is not old
    # Messages that took the old outbox before the renewal publish through the new one.
    assert old.replaced_by is patient_hub._current_publisher()  # type: ignore[attr-defined]
    assert patient_hub.metrics.publish_channels._value.get() == 1
    for doc in docs[10:]:
        await partners["mag"].send(doc)
    got = await drain(admin, inbox_queue("unmas"), expect=len(docs), timeout=20)
    assert [decode(m)["distribution_id"] for m in got] == [d["distribution_id"] for d in docs]
    assert patient_hub.ready
    for _ in range(50):
        if old.channel.is_closed:  # type: ignore[attr-defined]
            break
        await asyncio.sleep(0.1)
    assert old.channel.is_closed, "the replaced channel was closed"  # type: ignore[attr-defined]
