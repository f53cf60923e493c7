"""The aiormq internals the outbox relies on, driven on a real broker channel: the day an
aiormq release changes delivery tags, the confirmation store or the write queue, this fails."""

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import cast

import aiormq
import pytest
from aiormq.abc import DeliveredMessage
from pamqp import commands as spec

from liaison.hub.channel import AiormqChannel, Deliveries
from liaison.hub.outbox import Outbox
from liaison.hub.properties import delivery_properties
from liaison.hub.transport import HubTransport, install

pytestmark = pytest.mark.broker


@pytest.fixture
async def channel(admin_url: str) -> AsyncIterator[aiormq.Channel]:
    """A confirm-mode channel on the test vhost, on a connection opened as the hub opens its
    own (transport.py)."""
    install()
    connection = await aiormq.connect(admin_url, transport_factory=HubTransport())
    channel = cast(aiormq.Channel, await connection.channel(publisher_confirms=True))
    yield channel
    await connection.close()


async def scratch_queue(channel: aiormq.Channel, **arguments: object) -> str:
    """A classic queue that goes away with the connection."""
    name = f"test-outbox-{uuid.uuid4().hex[:8]}"
    await channel.queue_declare(name, exclusive=True, arguments=arguments or None)
    return name


async def run_outbox(channel: aiormq.Channel) -> tuple[Outbox, asyncio.Task[None]]:
    """An outbox on ``channel`` with its sender task running."""
    outbox = Outbox(AiormqChannel(channel), confirm_timeout=30)
    return outbox, asyncio.create_task(outbox.send())


async def test_confirms_resolve_and_tags_are_shared_with_aiormq(channel: aiormq.Channel) -> None:
    """Outbox publishes are confirmed, and aiormq's own publish afterwards takes the next tag."""
    queue = await scratch_queue(channel)
    outbox, sender = await run_outbox(channel)
    raw = AiormqChannel(channel)
    try:
        confirms = [
            outbox.publish(
                f"m{n}".encode(),
                exchange="",
                routing_key=queue,
                properties=spec.Basic.Properties(message_id=f"id-{n}"),
            )
            for n in range(3)
        ]
        assert raw.oldest_unconfirmed() == 1
        results = await asyncio.wait_for(asyncio.gather(*confirms), 10)
        assert all(isinstance(r, spec.Basic.Ack) for r in results)
        assert raw.oldest_unconfirmed() is None
        assert channel.delivery_tag == 3
        # aiormq's own publish must continue the numbering, or its confirm would never match.
        own = await channel.basic_publish(b"m3", routing_key=queue)
        assert isinstance(own, spec.Basic.Ack)
        assert channel.delivery_tag == 4
        bodies = []
        for _ in range(4):
            got = await channel.basic_get(queue, no_ack=True)
            bodies.append(got.body)
        assert bodies == [b"m0", b"m1", b"m2", b"m3"]
    finally:
        sender.cancel()


async def test_a_multiple_confirm_settles_exactly_the_tags_it_covers(
    channel: aiormq.Channel,
) -> None:
    """A multiple-ack settles every tag up to its own and none after; a single nack only its
    own tag (the hub's handler of confirm frames on aiormq's channel)."""
    raw = AiormqChannel(channel)
    confirms = [raw.expect_confirm() for _ in range(6)]
    await channel._on_confirm_frame(spec.Basic.Ack(delivery_tag=3, multiple=True))
    await asyncio.sleep(0)
    assert [c.done() for c in confirms] == [True, True, True, False, False, False]
    assert all(isinstance(c.result(), spec.Basic.Ack) for c in confirms[:3])
    await channel._on_confirm_frame(spec.Basic.Nack(delivery_tag=5, multiple=False))
    assert [c.done() for c in confirms[3:]] == [False, True, False]
    assert isinstance(confirms[4].exception(), aiormq.exceptions.DeliveryError)
    await channel._on_confirm_frame(spec.Basic.Ack(delivery_tag=6, multiple=True))
    assert all(c.done() for c in confirms)
    assert raw.oldest_unconfirmed() is None


async def test_a_nack_fails_the_confirm(channel: aiormq.Channel) -> None:
    """A publish the broker refuses (queue full, reject-publish) raises DeliveryError."""
    queue = await scratch_queue(channel, **{"x-max-length": 0, "x-overflow": "reject-publish"})
    outbox, sender = await run_outbox(channel)
    try:
        confirm = outbox.publish(
            b"x", exchange="", routing_key=queue, properties=spec.Basic.Properties()
        )
        with pytest.raises(aiormq.exceptions.DeliveryError):
            await asyncio.wait_for(confirm, 10)
    finally:
        sender.cancel()


async def test_encoded_properties_and_a_multi_frame_body_arrive_intact(
    channel: aiormq.Channel,
) -> None:
    """Hand-encoded properties and a body split over frames are what a consumer receives."""
    queue = await scratch_queue(channel)
    outbox, sender = await run_outbox(channel)
    body = bytes(range(256)) * (3 * channel.max_content_size // 256 + 7)
    try:
        properties = delivery_properties(
            message_id="mag/d-1",
            message_type="hazard.alert",
            timestamp=1_795_000_000,
            expiration="60000",
            headers={"x-liaison-sender": "mag", "x-list": ["a", "b"]},
        )
        confirm = outbox.publish(body, exchange="", routing_key=queue, properties=properties)
        await asyncio.wait_for(confirm, 10)
        got = await channel.basic_get(queue, no_ack=True)
    finally:
        sender.cancel()
    assert got.body == body
    props = got.header.properties
    assert (props.message_id, props.message_type, props.expiration) == (
        "mag/d-1",
        "hazard.alert",
        "60000",
    )
    assert props.headers == {"x-liaison-sender": "mag", "x-list": ["a", "b"]}


async def test_large_and_small_bodies_beside_another_channels_publishes_arrive_intact(
    channel: aiormq.Channel,
) -> None:
    """Large bodies written as views (scatter writes), small ones joined, and aiormq's own
    publishes on a second channel of the connection at the same time: the broker takes every
    frame (no other channel's frame lands inside a body) and each body arrives whole."""
    queue = await scratch_queue(channel)
    other = cast(aiormq.Channel, await channel.connection.channel(publisher_confirms=True))
    outbox, sender = await run_outbox(channel)
    bodies = [
        bytes([n % 251]) * size
        for n, size in enumerate([70_000, 5, 300_000, 1_000, 131_072, 20_000, 250_000] * 3)
    ]
    try:
        confirms = [
            outbox.publish(
                body,
                exchange="",
                routing_key=queue,
                properties=spec.Basic.Properties(message_id=f"o-{n}"),
            )
            for n, body in enumerate(bodies)
        ]
        aside = [
            other.basic_publish(
                bytes([n]) * 90_000,
                routing_key=queue,
                properties=spec.Basic.Properties(message_id=f"a-{n}"),
            )
            for n in range(10)
        ]
        await asyncio.wait_for(asyncio.gather(*confirms, *aside), 20)
        got = {}
        for _ in range(len(bodies) + 10):
            message = await channel.basic_get(queue, no_ack=True)
            got[message.header.properties.message_id] = message.body
    finally:
        sender.cancel()
    assert got == {
        **{f"o-{n}": body for n, body in enumerate(bodies)},
        **{f"a-{n}": bytes([n]) * 90_000 for n in range(10)},
    }


async def test_publishing_on_a_closed_channel_raises(channel: aiormq.Channel) -> None:
    """Once the channel is closed the outbox refuses at once instead of queueing frames."""
    outbox = Outbox(AiormqChannel(channel), confirm_timeout=30)
    await channel.close()
    with pytest.raises(aiormq.exceptions.ChannelInvalidStateError):
        outbox.publish(b"x", exchange="", routing_key="q", properties=spec.Basic.Properties())


async def test_deliveries_reach_the_consumer_whole_and_in_order(channel: aiormq.Channel) -> None:
    """Deliveries taken over from aiormq (Deliveries) keep empty, one-frame and many-frame
    bodies and their properties, in the order the queue held them."""
    queue = await scratch_queue(channel)
    Deliveries(channel)
    big = bytes(range(256)) * (2 * channel.max_content_size // 256 + 3)
    bodies = [b"", b"one frame", big]
    for n, body in enumerate(bodies):
        await channel.basic_publish(
            body, routing_key=queue, properties=spec.Basic.Properties(message_id=f"id-{n}")
        )
    got: list[tuple[bytes, str | None]] = []
    done = asyncio.Event()

    async def consume(message: DeliveredMessage) -> None:
        got.append((message.body, message.header.properties.message_id))
        if len(got) == len(bodies):
            done.set()

    await channel.basic_consume(queue, consume, no_ack=True)
    await asyncio.wait_for(done.wait(), 10)
    assert got == [(body, f"id-{n}") for n, body in enumerate(bodies)]


async def test_closing_the_channel_cancels_its_running_consumers(channel: aiormq.Channel) -> None:
    """A consumer still at work when its channel closes is cancelled, as aiormq's own future
    stores would: no handler outlives its session's channel."""
    queue = await scratch_queue(channel)
    deliveries = Deliveries(channel)
    started = asyncio.Event()
    cancelled = asyncio.Event()

    async def consume(_: DeliveredMessage) -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    await channel.basic_consume(queue, consume, no_ack=False)
    await channel.basic_publish(b"x", routing_key=queue)
    await asyncio.wait_for(started.wait(), 10)
    assert deliveries.running == 1
    await channel.close()
    await asyncio.wait_for(cancelled.wait(), 5)
    await asyncio.sleep(0)
    assert deliveries.running == 0
