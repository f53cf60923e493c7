"""Transaction mode at a full inbox: the hub refuses the copy itself (a transaction is never told
that a queue at its x-max-length dropped it), so nothing is silently lost; and it sends nothing
to an inbox that is not classic (a killed commit could drop that copy)."""

import asyncio
import tomllib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aio_pika
import pytest
import tomli_w

from liaison.common.topology import build_topology
from liaison.directory.index import DirectoryIndex, load_directory
from liaison.directory.management import Permission
from liaison.directory.topology import apply_topology, broker_objects
from liaison.hub.consumer import HubConsumer
from liaison.hub.memory import LocalMemory
from liaison.hub.metrics import HubMetrics
from liaison.schemas.wire import DEAD_LETTER_QUEUE, HEADER_ERROR_CODE, inbox_queue
from tests.conftest import _admin_credentials, admin_client, amqp_url_for
from tests.hub.memory_support import start_hub
from tests.hub.support import PASSWORD, Partner, decode, drain, envelope

pytestmark = pytest.mark.broker

SMALL = "halo-trust"
#: The sender; its inbox is small too, for the test of a report with nowhere to go.
SENDER = "mag"
#: The directory's smallest allowed inbox, so filling it takes a moment.
LIMIT = 100
HEADROOM = 10
#: Already in the inbox when the hub starts: room for HEADROOM // 2 more copies before the guard.
FILL = LIMIT - HEADROOM - HEADROOM // 2
SENT = 30


@dataclass
class SmallInbox:
    """A vhost whose directory gives ``SMALL`` and ``SENDER`` inboxes of ``LIMIT`` messages."""

    url: str
    vhost: str
    directory: DirectoryIndex
    directory_file: Path
    admin: aio_pika.abc.AbstractConnection
    sender: Partner


@pytest.fixture
async def small_inbox(
    run_id: str,
    directory_file: Path,
    partner_accounts: dict[str, str],
    tmp_path: Path,
) -> AsyncIterator[SmallInbox]:
    """A vhost of its own (the run's vhost has the sample's inbox sizes already declared)."""
    raw = tomllib.loads(directory_file.read_text())
    for org in raw["organisations"]:
        if org["id"] in (SMALL, SENDER):
            org["inbox_max_length"] = LIMIT
    path = tmp_path / "directory.toml"
    path.write_text(tomli_w.dumps(raw))
    directory = load_directory(path)
    vhost = f"liaison-test-{run_id}-small-inbox"
    admin_user, _ = _admin_credentials()
    async with admin_client() as api:
        await api.put_vhost(vhost)
        for account in (admin_user, partner_accounts["mag"]):
            await api.put_permission(Permission(account, vhost, ".*", ".*", ".*"))
        # Classic, as transaction delivery requires (LIAISON_QUEUE_TYPE=classic).
        spec = build_topology(
            {org.id: org.inbox_max_length for org in directory.organisations.values()},
            queue_type="classic",
        )
        await apply_topology(api, vhost, spec)
    url = amqp_url_for(vhost)
    admin = await aio_pika.connect(url)
    sender = await aio_pika.connect(amqp_url_for(vhost, partner_accounts["mag"], PASSWORD))
    try:
        yield SmallInbox(
            url, vhost, directory, path, admin, Partner("mag", partner_accounts["mag"], sender)
        )
    finally:
        await sender.close()
        await admin.close()
        async with admin_client() as api:
            await api.delete_vhost(vhost)


async def fill(small_inbox: SmallInbox, org: str, count: int) -> None:
    """Put ``count`` messages into ``org``'s inbox, as unread mail would be."""
    channel = await small_inbox.admin.channel(publisher_confirms=True)
    for _ in range(count):
        await channel.default_exchange.publish(
            aio_pika.Message(b"filler"), routing_key=inbox_queue(org)
        )
    await channel.close()


async def tx_hub(small_inbox: SmallInbox) -> tuple[HubConsumer, "asyncio.Task[None]", HubMetrics]:
    """A transaction-mode hub on the small-inbox vhost, with headroom ``HEADROOM``."""
    return await start_hub(
        small_inbox.url,
        small_inbox.directory,
        small_inbox.directory_file,
        LocalMemory(seconds=600, max_entries=10_000),
        delivery="transaction",
        inbox_headroom=HEADROOM,
    )


async def test_full_inbox_is_answered_as_undeliverable_in_transaction_mode(
    small_inbox: SmallInbox,
) -> None:
    """An inbox filled to within the headroom of its max length gets no more copies: each is
    answered 502 (retryable) and dead-lettered, as confirm mode answers a nacked copy; none
    vanishes. Once the inbox is read, copies flow again."""
    await fill(small_inbox, SMALL, FILL)
    consumer, task, metrics = await tx_hub(small_inbox)
    try:
        docs = [envelope("mag", [f"org:{SMALL}"]) for _ in range(SENT)]
        for doc in docs:
            await small_inbox.sender.send(doc)
        # At most HEADROOM // 2 fit (plus what a re-read between commits cannot yet see).
        reports = await drain(
            small_inbox.admin, inbox_queue("mag"), expect=SENT - HEADROOM, timeout=30, settle=1.5
        )
        inbox = await drain(small_inbox.admin, inbox_queue(SMALL), expect=FILL + 1)
        dead = await drain(small_inbox.admin, DEAD_LETTER_QUEUE, expect=len(reports))
        delivered = [decode(m)["distribution_id"] for m in inbox if m.body != b"filler"]
        bodies = [decode(r)["body"] for r in reports]
        refused = [b["ref_distribution_id"] for b in bodies]
        assert sum(m.body == b"filler" for m in inbox) == FILL
        assert 1 <= len(delivered) <= HEADROOM // 2 + HEADROOM
        assert sorted(delivered + refused) == sorted(d["distribution_id"] for d in docs)
        assert all(b["code"] == 502 and b["retryable"] for b in bodies)
        assert all(b["refused_recipients"] == [f"org:{SMALL}"] for b in bodies)
        assert len(dead) == len(reports)
        assert all(m.headers[HEADER_ERROR_CODE] == 502 for m in dead)
        assert metrics.inbox_guard_refusals._value.get() == len(reports)
        # Emptied (a partner read it), the inbox takes copies again at the next reading.
        await asyncio.sleep(0.6)
        again = envelope("mag", [f"org:{SMALL}"])
        await small_inbox.sender.send(again)
        (copy,) = await drain(small_inbox.admin, inbox_queue(SMALL), expect=1, timeout=15)
        assert decode(copy)["distribution_id"] == again["distribution_id"]
        assert consumer.ready
    finally:
        await consumer.stop()
        await asyncio.wait_for(task, 10)


async def test_a_report_with_no_room_is_left_out_and_the_refusal_still_dead_lettered(
    small_inbox: SmallInbox,
) -> None:
    """The sender's own inbox full too: its 502 report is not published (it would vanish), the
    refused message is dead-lettered all the same, and neither inbox grows."""
    full = LIMIT - HEADROOM
    await fill(small_inbox, SMALL, full)
    await fill(small_inbox, SENDER, full)
    consumer, task, metrics = await tx_hub(small_inbox)
    try:
        docs = [envelope("mag", [f"org:{SMALL}"]) for _ in range(3)]
        for doc in docs:
            await small_inbox.sender.send(doc)
        dead = await drain(small_inbox.admin, DEAD_LETTER_QUEUE, expect=len(docs), timeout=20)
        assert sorted(decode(m)["distribution_id"] for m in dead) == sorted(
            d["distribution_id"] for d in docs
        )
        assert all(m.headers[HEADER_ERROR_CODE] == 502 for m in dead)
        for org in (SMALL, SENDER):
            inbox = await drain(small_inbox.admin, inbox_queue(org), expect=full, settle=1.0)
            assert [m.body for m in inbox] == [b"filler"] * full
        assert metrics.inbox_guard_refusals._value.get() == len(docs)
        assert consumer.ready
    finally:
        await consumer.stop()
        await asyncio.wait_for(task, 10)


async def test_a_copy_to_a_quorum_inbox_is_refused_502_in_transaction_mode(
    small_inbox: SmallInbox,
) -> None:
    """One inbox re-declared quorum on the classic vhost: a copy to it is answered 502 naming
    it as not classic and dead-lettered (a killed commit could drop it), while a copy to a
    classic inbox in the same run is delivered."""
    quorum = broker_objects(
        build_topology(
            {org.id: org.inbox_max_length for org in small_inbox.directory.organisations.values()}
        )
    )
    name = inbox_queue(SMALL)
    async with admin_client() as api:
        await api.delete_queue(small_inbox.vhost, name)
        await api.put_queue(small_inbox.vhost, next(q for q in quorum.queues if q.name == name))
        for binding in quorum.bindings:
            if binding.destination == name:
                await api.post_binding(small_inbox.vhost, binding)
    consumer, task, metrics = await tx_hub(small_inbox)
    try:
        refused, delivered = envelope("mag", [f"org:{SMALL}"]), envelope("mag", ["org:unmas"])
        await small_inbox.sender.send(refused)
        await small_inbox.sender.send(delivered)
        (report,) = await drain(small_inbox.admin, inbox_queue(SENDER), expect=1, timeout=20)
        body = decode(report)["body"]
        assert body["code"] == 502
        assert body["ref_distribution_id"] == refused["distribution_id"]
        assert body["refused_recipients"] == [f"org:{SMALL}"]
        assert "not classic" in body["reason"]
        (dead,) = await drain(small_inbox.admin, DEAD_LETTER_QUEUE, expect=1)
        assert decode(dead)["distribution_id"] == refused["distribution_id"]
        assert await drain(small_inbox.admin, name, expect=0, settle=0.5) == []
        (copy,) = await drain(small_inbox.admin, inbox_queue("unmas"), expect=1)
        assert decode(copy)["distribution_id"] == delivered["distribution_id"]
        assert metrics.inbox_guard_refusals._value.get() == 1
    finally:
        await consumer.stop()
        await asyncio.wait_for(task, 10)
