"""Transaction delivery (LIAISON_DELIVERY=transaction): a hub killed under a backlog repeats
nothing, loses nothing and keeps each sender's order (issue #11: repeats at most one per kill)."""

import asyncio
import contextlib
import json
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aio_pika
import msgspec
import pytest

from liaison.common.topology import hub_queue
from liaison.directory.index import DirectoryIndex
from liaison.hub.consumer import HubConsumer
from liaison.hub.decisions import Verdict
from liaison.hub.memory import LocalMemory
from liaison.schemas.wire import (
    DEAD_LETTER_QUEUE,
    HEADER_ERROR_CODE,
    HEADER_SIGNATURE,
    INGRESS_EXCHANGE,
    inbox_queue,
)
from tests.conftest import admin_client
from tests.hub.conftest import ClassicVhost, purge_all
from tests.hub.memory_support import start_hub
from tests.hub.support import Partner, decode, demo_signature, drain, envelope
from tests.hub.test_processes import queue_depth, wait_for
from tests.hub.test_shared_memory import shard_states, shards_empty
from tests.hub_process import HubProcess

pytestmark = [pytest.mark.broker]

SENDERS = ["mag", "ocha"]
RECIPIENTS = ["unmas", "minusca"]
#: Messages queued before the first hub starts: a backlog, so every killed hub has its whole
#: prefetch (256 on each of the 4 shards) in flight, not a trickle.
BACKLOG = 4000
#: Messages the shards hold, at least, when each later hub starts (topped up). A hub works
#: through 250-1,300 of them before the test sees its progress and kills it, so the backlog
#: alone could run out before the fourth hub, which then finished the rest before its progress
#: was even measured, and the test waited for copies that could never come (issue #11).
MIN_BACKLOG = 2000
KILLS = 4
#: Copies each hub delivers before it is killed: enough that it is mid-backlog, not starting.
PROGRESS = 100


@pytest.fixture
async def tx_hub(
    classic: ClassicVhost, directory: DirectoryIndex, directory_file: Path
) -> AsyncIterator[HubConsumer]:
    """An in-process hub in transaction mode, consuming every shard of the classic vhost, on
    clean queues."""
    await purge_all(classic.admin, directory)
    memory = LocalMemory(seconds=600, max_entries=10_000)
    consumer, task, _ = await start_hub(
        classic.url, directory, directory_file, memory, delivery="transaction"
    )
    yield consumer
    await consumer.stop()
    await asyncio.wait_for(task, 10)


async def test_a_failing_message_is_given_back_within_a_batch_and_the_rest_flows(
    tx_hub: HubConsumer, classic: ClassicVhost, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A message whose handling fails every time is rejected in its batch (a transactional
    reject only counts once committed), comes back until the delivery limit, and is answered
    503 and dead-lettered; the messages sent around it arrive once each, in order."""
    real = tx_hub.router.route

    def failing(body: bytes, **kwargs: Any) -> Verdict:
        if b"POISON-PILL" in body:
            raise RuntimeError("simulated hub bug")
        return real(body, **kwargs)

    monkeypatch.setattr(tx_hub.router, "route", failing)
    admin, partners = classic.admin, classic.partners
    before = envelope("mag", ["org:unmas"])
    poison = envelope("mag", ["org:unmas"], incident_id="POISON-PILL")
    after = [envelope("mag", ["org:unmas"]) for _ in range(3)]
    for doc in [before, poison, *after]:
        await partners["mag"].send(doc)
    (report,) = await drain(admin, inbox_queue("mag"), expect=1, timeout=20)
    assert decode(report)["body"]["code"] == 503
    assert decode(report)["body"]["ref_distribution_id"] == poison["distribution_id"]
    (dead,) = await drain(admin, DEAD_LETTER_QUEUE, expect=1)
    assert dead.headers[HEADER_ERROR_CODE] == 503
    delivered = await drain(admin, inbox_queue("unmas"), expect=4, settle=1.0)
    assert [decode(m)["distribution_id"] for m in delivered] == [
        d["distribution_id"] for d in [before, *after]
    ]
    assert tx_hub.ready


@pytest.mark.slow
async def test_killed_hubs_under_a_backlog_repeat_nothing(
    classic: ClassicVhost, directory: DirectoryIndex, directory_file: Path, tmp_path: Path
) -> None:
    """Four hubs in turn are SIGKILLed mid-backlog, each a fresh process with its own memory
    (so nothing but the transaction keeps a redelivery from repeating), on the single-node
    transaction profile (classic inboxes, ledger and dead-letter queues): each recipient gets
    every message exactly once and in each sender's order. In confirm mode the same run
    repeats hundreds of copies (what each killed hub had published but not yet acked)."""
    admin, partners, topology, vhost = classic.admin, classic.partners, classic.url, classic.vhost
    await purge_all(admin, directory)
    env = {
        "LIAISON_AMQP_URL": topology,
        "LIAISON_DIRECTORY": str(directory_file),
        "LIAISON_HUB_SHARDS": "all",
        "LIAISON_DELIVERY": "transaction",
        "LIAISON_LOG_LEVEL": "info",
    }
    # Each sender's distribution ids in sequence order (a message's sequence is its index).
    published: dict[str, list[str]] = {sender: [] for sender in SENDERS}
    await top_up(admin, partners, published, BACKLOG)
    hubs: list[HubProcess] = []
    left: list[int] = []
    try:
        for kill in range(KILLS):
            # Measured before the hub starts: it may deliver hundreds of copies before it reports
            # ready, and those count towards its progress.
            floor = await queue_depth(admin, inbox_queue(RECIPIENTS[0])) + PROGRESS
            hub = HubProcess(env, tmp_path / f"hub{kill}.log")
            hubs.append(hub)
            await hub.wait_ready(90)

            async def progressed(floor: int = floor) -> bool:
                return await queue_depth(admin, inbox_queue(RECIPIENTS[0])) >= floor

            try:
                await wait_for(progressed, 20, f"hub {kill} to deliver {PROGRESS} copies")
            except AssertionError as exc:
                raise AssertionError(f"{exc}\n{await stall_report(hub, vhost)}") from None
            assert await asyncio.to_thread(hub.stop, signal.SIGKILL) == -signal.SIGKILL
            # What the killed hub left: once the broker has dropped its consumers, its unacked
            # deliveries are back in the shards.
            await wait_for(lambda: no_consumers(admin), 30, f"hub {kill}'s consumers to go")
            left.append(await top_up(admin, partners, published, MIN_BACKLOG))
        last = HubProcess(env, tmp_path / "last.log")
        hubs.append(last)
        await last.wait_ready(90)
        try:
            await wait_for(lambda: shards_empty(admin), 120, "every shard to drain")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{await stall_report(last, vhost)}") from None
        expected = sum(map(len, published.values()))
        repeats = inversions = 0
        missing: list[tuple[str, str, int]] = []
        for recipient in RECIPIENTS:
            got = await consume(admin, inbox_queue(recipient), expected)
            seqs: dict[str, list[int]] = {s: [] for s in SENDERS}
            for message in got:
                doc = decode(message)
                seqs[doc["sender"]].append(int(doc["incident_id"]))
            for sender, seq_list in seqs.items():
                seen: set[int] = set()
                highest = -1
                for seq in seq_list:
                    if seq in seen:
                        repeats += 1
                        continue
                    seen.add(seq)
                    inversions += seq < highest
                    highest = max(highest, seq)
                missing += [
                    (recipient, sender, seq)
                    for seq in range(len(published[sender]))
                    if seq not in seen
                ]
        lost = len(missing)
        print(
            f"\n{KILLS} kills, {expected} messages, left in the shards by each killed hub {left}:"
            f" repeats {repeats}, lost {lost}"
        )
        # A kill after its hub had drained the shards would test nothing.
        assert all(left), f"a hub drained the backlog before its kill: {left}"
        assert lost == 0, await loss_report(admin, missing, published, hubs)
        assert inversions == 0
        assert repeats <= KILLS, f"{repeats} copies repeated over {KILLS} kills"
        assert await asyncio.to_thread(last.stop) == 0
    finally:
        for hub in hubs:
            if hub.process.poll() is None:
                hub.stop(signal.SIGKILL)
        await purge_all(admin, directory)


async def top_up(
    admin: aio_pika.abc.AbstractConnection,
    partners: dict[str, Partner],
    published: dict[str, list[str]],
    backlog: int,
) -> int:
    """Publish more of each sender's numbered sequence until the shards hold ``backlog``
    messages (``published`` gets their distribution ids); what they held before."""
    before = sum([await queue_depth(admin, hub_queue(s)) for s in range(4)])
    each = -(-(backlog - before) // len(SENDERS))
    if each <= 0:
        return before
    channels = []
    for sender in SENDERS:
        # Without waiting for each confirm (fast, and in order on one channel); the count in
        # the shard queues below says when the broker has them all. Each channel stays open
        # until then: a quorum queue (RabbitMQ 3.10) drops the publishes still on their way to
        # it from a channel that has closed (docs/operations.md, "Repeats after a crash").
        channel = await partners[sender].connection.channel(publisher_confirms=False)
        channels.append(channel)
        exchange = await channel.get_exchange(INGRESS_EXCHANGE, ensure=False)
        ids = published[sender]
        for seq in range(len(ids), len(ids) + each):
            doc = envelope(sender, [f"org:{r}" for r in RECIPIENTS], incident_id=str(seq))
            ids.append(doc["distribution_id"])
            body = msgspec.json.encode(doc)
            message = aio_pika.Message(
                body,
                content_type="application/json",
                user_id=partners[sender].account,
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                headers={HEADER_SIGNATURE: demo_signature(sender, body)},
            )
            await exchange.publish(message, routing_key=sender)

    depths: list[int] = []

    async def queued() -> bool:
        depths[:] = [await queue_depth(admin, hub_queue(s)) for s in range(4)]
        return sum(depths) >= before + each * len(SENDERS)

    try:
        await wait_for(queued, 60, "the backlog to be queued")
    except AssertionError as exc:
        dead = await queue_depth(admin, DEAD_LETTER_QUEUE)
        raise AssertionError(
            f"{exc}: {before} + {each} x {len(SENDERS)} expected in the shards, which hold"
            f" {depths}; {dead} dead letters"
        ) from None
    finally:
        for channel in channels:
            await channel.close()
    return before


async def consume(
    admin: aio_pika.abc.AbstractConnection, queue: str, expect: int
) -> list[aio_pika.abc.AbstractIncomingMessage]:
    """Every message in ``queue``: ``expect`` of them, then whatever arrives within a second
    more (repeats). Consumed with a prefetch, not fetched one basic.get at a time: thousands of
    copies took ~15 s that way."""
    channel = await admin.channel()
    await channel.set_qos(prefetch_count=1000)
    got: list[aio_pika.abc.AbstractIncomingMessage] = []
    enough = asyncio.Event()

    async def take(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        got.append(message)
        if len(got) >= expect:
            enough.set()

    q = await channel.get_queue(queue, ensure=False)
    await q.consume(take, no_ack=True)
    try:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(enough.wait(), 60)
        await asyncio.sleep(1)
    finally:
        await channel.close()
    return list(got)


async def no_consumers(admin: aio_pika.abc.AbstractConnection) -> bool:
    """No consumer is attached to any shard."""
    return not any(state.consumer_count for state in await shard_states(admin))


async def loss_report(
    admin: aio_pika.abc.AbstractConnection,
    missing: list[tuple[str, str, int]],
    published: dict[str, list[str]],
    hubs: list[HubProcess],
) -> str:
    """Where the copies that never reached an inbox went: what each hub logged of their
    messages, and what the dead letters and the senders' inboxes (error reports) hold."""
    lines = [f"{len(missing)} copies missing: {missing[:20]}"]
    for name in (DEAD_LETTER_QUEUE, *(inbox_queue(s) for s in SENDERS)):
        lines.append(f"{name}: {await queue_depth(admin, name)} messages")
    logs = {hub.log_path.name: hub.output().splitlines() for hub in hubs}
    for _, sender, seq in missing[:5]:
        distribution_id = published[sender][seq]
        for name, log in logs.items():
            lines += [f"{name}: {line}" for line in log if distribution_id in line]
    return "\n".join(lines)


async def stall_report(hub: HubProcess, vhost: str) -> str:
    """What a hub that stopped making progress was doing: its ``tasks`` log (SIGUSR1), and the
    broker's view of its connection and channels."""
    hub.process.send_signal(signal.SIGUSR1)
    await asyncio.sleep(2)
    lines = hub.output().splitlines()
    tasks = [line for line in lines if '"tasks"' in line][-1:]
    async with admin_client() as api:
        connections = await api.request("GET", f"/vhosts/{vhost}/connections") or []
        channels = await api.request("GET", f"/vhosts/{vhost}/channels") or []
        queues = [
            await api.request("GET", f"/queues/{vhost}/{name}")
            for name in [*(hub_queue(s) for s in range(4)), inbox_queue(RECIPIENTS[0])]
        ]
    mine = [c for c in connections if "liaison-hub" in str(c.get("client_properties"))]
    keys = ("name", "state", "recv_oct", "send_oct", "send_pend", "recv_cnt", "send_cnt")
    broker = [{k: c.get(k) for k in keys} for c in mine]
    names = {c["name"] for c in mine}
    ch_keys = (
        "name",
        "state",
        "prefetch_count",
        "messages_unacknowledged",
        "messages_uncommitted",
        "acks_uncommitted",
        "consumer_count",
        "transactional",
        "confirm",
    )
    chans = [
        {k: ch.get(k) for k in ch_keys}
        for ch in channels
        if ch.get("connection_details", {}).get("name") in names
    ]
    return "\n".join(
        [
            "last log lines:",
            *lines[-15:],
            "tasks: " + ("\n".join(tasks) or "(no tasks line)"),
            "connections: " + json.dumps(broker),
            "channels: " + json.dumps(chans),
            "queues: "
            + json.dumps(
                [
                    {
                        k: q.get(k)
                        for k in (
                            "name",
                            "messages_ready",
                            "messages_unacknowledged",
                            "consumers",
                            "single_active_consumer_tag",
                            "state",
                        )
                    }
                    for q in queues
                    if q
                ]
            ),
        ]
    )
