"""Publishing turns: whatever order messages' awaits end in, they publish in receive order."""

import asyncio
import random
from pathlib import Path

import aio_pika
import pytest

from liaison.directory.index import DirectoryIndex
from liaison.hub.memory import Handled, LocalMemory
from liaison.hub.turns import Turns
from liaison.schemas.wire import inbox_queue
from tests.hub.conftest import purge_all
from tests.hub.support import Partner, decode, drain, envelope
from tests.hub.test_handover import start_consumer


async def test_turns_follow_tickets_whatever_order_the_waits_end_in() -> None:
    """Messages whose recall ends in random order still publish in ticket order."""
    turns = Turns()
    rng = random.Random(11)
    published: list[int] = []

    async def message() -> None:
        ticket = turns.ticket()
        await asyncio.sleep(rng.random() / 100)  # a recall over the network
        await turns.wait(ticket)
        published.append(ticket)
        turns.done(ticket)

    await asyncio.gather(*(message() for _ in range(200)))
    assert published == list(range(200))


async def test_a_ticket_given_up_early_does_not_block_the_rest() -> None:
    """A message that fails before its turn passes it on; done twice is harmless."""
    turns = Turns()
    first, second, third = turns.ticket(), turns.ticket(), turns.ticket()
    turns.done(second)  # failed early, before its turn
    turns.done(second)
    waiting = asyncio.create_task(turns.wait(third))
    await asyncio.sleep(0)
    assert not waiting.done()
    await turns.wait(first)
    turns.done(first)
    await asyncio.wait_for(waiting, 1)
    assert turns.serving == third
    turns.done(third)
    turns.done(first)  # long past: ignored
    assert turns.serving == third + 1


async def test_the_first_ticket_waits_for_nothing() -> None:
    """In the common case (an in-process memory) a message never suspends for its turn."""
    turns = Turns()
    for _ in range(3):
        ticket = turns.ticket()
        waited = turns.wait(ticket)
        with pytest.raises(StopIteration):  # finished on its first step: it never suspended
            waited.send(None)
        turns.done(ticket)


class SlowMemory(LocalMemory):
    """A shared store's latency: each recall answers after a random few milliseconds."""

    def __init__(self) -> None:
        super().__init__(seconds=600, max_entries=10_000)
        self._rng = random.Random(5)

    async def recall(self, key: str) -> Handled | None:
        await asyncio.sleep(self._rng.random() / 200)
        return await super().recall(key)


@pytest.mark.broker
async def test_sender_order_holds_when_the_memory_answers_out_of_order(
    admin: aio_pika.abc.AbstractConnection,
    partners: dict[str, Partner],
    directory: DirectoryIndex,
    directory_file: Path,
    topology: str,
) -> None:
    """With recalls that end in any order (a memory over the network), a sender's messages
    still reach the recipient in the order they were sent."""
    await purge_all(admin, directory)
    consumer, task = await start_consumer(directory, directory_file, topology, SlowMemory())
    sent = []
    for _ in range(150):
        doc = envelope("mag", ["org:unmas"])
        sent.append(doc["distribution_id"])
        await partners["mag"].send(doc)
    got = await drain(admin, inbox_queue("unmas"), expect=len(sent), timeout=30)
    await consumer.stop()
    await asyncio.wait_for(task, 10)
    assert [decode(m)["distribution_id"] for m in got] == sent
