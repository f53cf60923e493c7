"""Recipients no inbox took: the sender hears of each, the others still get the message."""

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aio_pika
import pytest

from liaison.common.topology import build_topology
from liaison.directory.index import DirectoryIndex
from liaison.hub.consumer import HubConsumer
from liaison.hub.memory import LocalMemory
from liaison.schemas.wire import DEAD_LETTER_QUEUE, HEADER_ERROR_CODE, inbox_queue
from tests.hub.conftest import purge_all
from tests.hub.memory_support import memory_hub, start_hub
from tests.hub.support import Partner, decode, drain, envelope

__all__ = ["memory_hub"]  # the fixture, imported so pytest finds it here

pytestmark = pytest.mark.broker

Admin = aio_pika.abc.AbstractConnection
GONE = "ocha"


@pytest.fixture
async def without_inbox(admin: Admin, directory: DirectoryIndex) -> AsyncIterator[str]:
    """Delete ``ocha``'s routine inbox queue for the test, and provision it again afterwards."""
    channel = await admin.channel()
    await channel.queue_delete(inbox_queue(GONE))
    yield inbox_queue(GONE)
    await restore_inbox(admin, directory)
    await channel.close()


async def restore_inbox(admin: Admin, directory: DirectoryIndex) -> None:
    """Declare and bind ``ocha``'s inbox as provisioning does."""
    spec = build_topology(
        {org.id: org.inbox_max_length for org in directory.organisations.values()}
    )
    channel = await admin.channel()
    (queue_spec,) = [q for q in spec.queues if q.name == inbox_queue(GONE)]
    queue = await channel.declare_queue(
        queue_spec.name, durable=True, arguments=queue_spec.arguments
    )
    for binding in spec.bindings:
        if binding.destination == queue_spec.name:
            await queue.bind(binding.source, routing_key=binding.routing_key)
    await channel.close()


async def wait_missing(consumer: HubConsumer, queue: str, missing: bool = True) -> None:
    """Until the hub's census says ``queue`` is (or is no longer) missing."""
    deadline = time.monotonic() + 10
    while (queue in consumer.inboxes.missing) != missing:
        assert time.monotonic() < deadline, f"census never saw {queue} {missing=}"
        await asyncio.sleep(0.05)


async def no_inbox_report(admin: Admin) -> dict[str, object]:
    """The one error report in mag's inbox."""
    (got,) = await drain(admin, inbox_queue("mag"), expect=1)
    body = decode(got)["body"]
    assert body["type"] == "error.report"
    return body  # type: ignore[no-any-return]


async def test_recipient_without_inbox_is_reported_and_others_get_it(
    memory_hub: HubConsumer, partners: dict[str, Partner], admin: Admin, without_inbox: str
) -> None:
    """After a reload, a recipient with no inbox is named in a 504; the other recipient gets it."""
    memory_hub.inboxes.resurvey()  # as a directory reload does
    await wait_missing(memory_hub, without_inbox)
    doc = envelope("mag", ["org:unmas", f"org:{GONE}"])
    await partners["mag"].send(doc)
    (got,) = await drain(admin, inbox_queue("unmas"), expect=1)
    assert decode(got)["distribution_id"] == doc["distribution_id"]
    report = await no_inbox_report(admin)
    assert report["code"] == 504
    assert report["refused_recipients"] == [f"org:{GONE}"]
    assert report["ref_distribution_id"] == doc["distribution_id"]
    assert await drain(admin, DEAD_LETTER_QUEUE, expect=0) == []


async def test_message_no_inbox_took_is_refused_and_kept(
    memory_hub: HubConsumer, partners: dict[str, Partner], admin: Admin, without_inbox: str
) -> None:
    """When no recipient has an inbox, the sender gets a 504 and the original is dead-lettered."""
    memory_hub.inboxes.resurvey()
    await wait_missing(memory_hub, without_inbox)
    doc = envelope("mag", [f"org:{GONE}"])
    await partners["mag"].send(doc)
    report = await no_inbox_report(admin)
    assert report["code"] == 504
    assert report["refused_recipients"] == [f"org:{GONE}"]
    (dead,) = await drain(admin, DEAD_LETTER_QUEUE, expect=1)
    assert dead.headers[HEADER_ERROR_CODE] == 504


async def test_inbox_deleted_while_running_is_noticed_without_reload(
    admin: Admin,
    partners: dict[str, Partner],
    directory: DirectoryIndex,
    directory_file: Path,
    topology: str,
) -> None:
    """An inbox deleted while the hub runs, no reload, is found by the periodic check."""
    await purge_all(admin, directory)
    memory = LocalMemory(seconds=600, max_entries=1000)
    hub, task, _ = await start_hub(
        topology, directory, directory_file, memory, inbox_check_seconds=0.2
    )
    channel = await admin.channel()
    try:
        assert hub.inboxes.missing == frozenset()
        await channel.queue_delete(inbox_queue(GONE))
        await wait_missing(hub, inbox_queue(GONE))
        await partners["mag"].send(envelope("mag", ["org:unmas", f"org:{GONE}"]))
        assert len(await drain(admin, inbox_queue("unmas"), expect=1)) == 1
        report = await no_inbox_report(admin)
        assert report["refused_recipients"] == [f"org:{GONE}"]
    finally:
        await restore_inbox(admin, directory)
        await channel.close()
        await hub.stop()
        await asyncio.wait_for(task, 10)


async def test_inbox_provisioned_since_the_check_gets_the_message(
    memory_hub: HubConsumer,
    partners: dict[str, Partner],
    admin: Admin,
    directory: DirectoryIndex,
    without_inbox: str,
) -> None:
    """A queue found missing is checked again before a refusal, so a new inbox is not refused."""
    memory_hub.inboxes.resurvey()
    await wait_missing(memory_hub, without_inbox)
    await restore_inbox(admin, directory)
    await asyncio.sleep(1.1)  # past the census's recheck_after: a miss is checked again
    doc = envelope("mag", [f"org:{GONE}"])
    await partners["mag"].send(doc)
    (got,) = await drain(admin, inbox_queue(GONE), expect=1)
    assert decode(got)["distribution_id"] == doc["distribution_id"]
    assert await drain(admin, inbox_queue("mag"), expect=0) == []
    assert without_inbox not in memory_hub.inboxes.missing
