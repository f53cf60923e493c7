"""What Python partners expect of the SDK: one inbox, context managers, replies, clean stops."""

import asyncio
import signal

import aio_pika
import pytest

from liaison.schemas.wire import flash_inbox_queue, inbox_queue
from liaison.sdk import Classification, Sitrep, build
from tests.hub.conftest import RunningHub
from tests.sdk.conftest import Connect
from tests.sdk.support import spot_report

pytestmark = pytest.mark.broker


async def consumers(admin: aio_pika.abc.AbstractConnection, queue: str) -> int:
    """How many consumers ``queue`` has now."""
    channel = await admin.channel()
    try:
        declared = await channel.declare_queue(queue, passive=True)
        return declared.declaration_result.consumer_count or 0
    finally:
        await channel.close()


async def consumers_settle(
    admin: aio_pika.abc.AbstractConnection, queue: str, expected: int
) -> int:
    """The consumer count of ``queue`` once it reaches ``expected`` (the broker updates the
    count a moment after a channel closes), or the last count seen after a few seconds."""
    for _ in range(50):
        count = await consumers(admin, queue)
        if count == expected:
            break
        await asyncio.sleep(0.1)
    return count


async def test_one_inbox_per_client(
    hub: RunningHub, connect: Connect, admin: aio_pika.abc.AbstractConnection
) -> None:
    """A second inbox() is the same Inbox: one consumer per queue, not two."""
    unmas = await connect("unmas")
    first = await unmas.inbox()
    second = await unmas.inbox()
    assert first is second
    assert await consumers_settle(admin, inbox_queue("unmas"), 1) == 1
    assert await consumers_settle(admin, flash_inbox_queue("unmas"), 1) == 1


async def test_inbox_context_manager_closes(
    hub: RunningHub, connect: Connect, admin: aio_pika.abc.AbstractConnection
) -> None:
    """async with client.inbox() consumes inside the block and stops consuming after it."""
    unmas, mag = await connect("unmas"), await connect("mag")
    async with unmas.inbox() as inbox:
        sent = await mag.send(spot_report(), recipients=["org:unmas"])
        delivery = await inbox.get(10)
        assert delivery is not None
        assert delivery.envelope.distribution_id == sent
        await delivery.ack()
        assert await consumers_settle(admin, inbox_queue("unmas"), 1) == 1
    assert inbox.closed
    assert await consumers_settle(admin, inbox_queue("unmas"), 0) == 0
    again = await unmas.inbox()
    assert again is not inbox  # a closed inbox is replaced, not handed back


async def test_reply_answers_the_sender(hub: RunningHub, connect: Connect) -> None:
    """delivery.reply(body) reaches the sender with in_reply_to, incident and classification."""
    unmas, minusca = await connect("unmas"), await connect("minusca")
    minusca_inbox = await minusca.inbox()
    unmas_inbox = await unmas.inbox()
    asked = await minusca.send(
        spot_report(),
        recipients=["org:unmas"],
        incident_id="INC-7",
        classification=Classification.CONFIDENTIAL,
    )
    question = await unmas_inbox.get(10)
    assert question is not None
    sitrep = build(
        Sitrep,
        {
            "period_start": "2024-03-11T07:45:00Z",
            "period_end": "2024-03-12T07:45:00Z",
            "component": "mine_action",
            "summary": "Device removed; road open.",
        },
    )
    answer_id = await question.reply(sitrep)
    await question.ack()
    answer = await minusca_inbox.get(10)
    assert answer is not None, "the reply did not arrive"
    assert (answer.sender, answer.envelope.distribution_id) == ("unmas", answer_id)
    assert answer.envelope.in_reply_to == asked
    assert answer.envelope.recipients == ["org:minusca"]
    assert answer.envelope.incident_id == "INC-7"
    assert answer.envelope.classification is Classification.CONFIDENTIAL
    assert isinstance(answer.body, Sitrep)
    await answer.ack()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
async def test_stop_on_signals_ends_the_loop(
    hub: RunningHub, connect: Connect, signum: signal.Signals
) -> None:
    """With stop_on_signals a signal ends async-for after the delivery in hand, which acks."""
    unmas, mag = await connect("unmas"), await connect("mag")
    for _ in range(3):
        await mag.send(spot_report(), recipients=["org:unmas"])
    handled = []
    async with unmas.inbox() as inbox:
        inbox.stop_on_signals()
        async for delivery in inbox:
            if not handled:
                signal.raise_signal(signum)
                await asyncio.sleep(0.1)  # the handler runs; the delivery in hand is not lost
            await delivery.ack()
            handled.append(delivery.message_id)
        assert inbox.stopped
    assert len(handled) == 1
    # Not consumed: the other two are still in the inbox for the next reader.
    async with unmas.inbox() as inbox:
        rest = [await inbox.get(10) for _ in range(2)]
        assert all(d is not None and d.message_id not in handled for d in rest)
        for d in rest:
            assert d is not None
            await d.ack()
