"""A hub given several broker nodes moves past one that refuses to the next that answers."""

import asyncio
from pathlib import Path

import aio_pika
import pytest
from yarl import URL

from liaison.directory.index import DirectoryIndex
from liaison.hub.consumer import HubConsumer
from liaison.hub.memory import LocalMemory
from liaison.hub.metrics import HubMetrics
from liaison.hub.router import Router
from liaison.schemas.wire import inbox_queue
from tests.hub.conftest import hub_settings, purge_all
from tests.hub.support import Partner, decode, drain, envelope
from tests.hub_process import free_port

pytestmark = pytest.mark.broker


async def test_hub_skips_a_node_that_refuses_and_routes_through_the_next(
    admin: aio_pika.abc.AbstractConnection,
    partners: dict[str, Partner],
    directory: DirectoryIndex,
    directory_file: Path,
    topology: str,
) -> None:
    """With the first listed node down, the hub connects to the second and delivers."""
    await purge_all(admin, directory)
    # A port nobody listens on: the first node of the list is "down".
    dead = str(URL(topology).with_port(free_port()))
    settings = hub_settings(f"{dead},{topology}", directory_file)
    router = Router(directory, max_message_bytes=2**18)
    memory = LocalMemory(seconds=60, max_entries=100)
    consumer = HubConsumer(settings, router, memory, HubMetrics())
    task = asyncio.create_task(consumer.run())
    try:
        for _ in range(200):
            if consumer.ready:
                break
            await asyncio.sleep(0.05)
        assert consumer.ready, "the hub never moved on to the node that answers"
        doc = envelope("mag", ["org:unmas"])
        await partners["mag"].send(doc)
        (got,) = await drain(admin, inbox_queue("unmas"), expect=1, timeout=10)
        assert decode(got)["distribution_id"] == doc["distribution_id"]
    finally:
        await consumer.stop()
        await asyncio.wait_for(task, 10)
