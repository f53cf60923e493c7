"""Handing the shards from one hub process to its standby without reordering a sender's
messages: the broker fact it rests on, and graceful stops, crashes and pauses under load."""

import asyncio
import signal
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import cast

import aio_pika
import aiormq
import msgspec
import pytest
from aiormq.abc import DeliveredMessage

from liaison.directory.index import DirectoryIndex
from liaison.hub.consumer import HubConsumer
from liaison.hub.memory import Handled, LocalMemory
from liaison.hub.metrics import HubMetrics
from liaison.hub.router import Router
from liaison.schemas.wire import inbox_queue
from tests.hub.conftest import hub_settings, purge_all
from tests.hub.support import Partner, decode, drain, envelope
from tests.hub.test_processes import HubProcess, queue_depth, wait_for

pytestmark = pytest.mark.broker

Admin = aio_pika.abc.AbstractConnection
SENDERS = ["mag", "unmas", "ocha", "wfp", "unhcr", "nrc"]
RECIPIENT = "minusca"
#: Bigger messages keep a hub busy longer with what it has prefetched: the window in which a
#: standby promoted too early routes newer messages ahead of older ones.
PADDING = "x" * 4_000


@pytest.fixture
async def quorum_queue(admin_url: str) -> AsyncIterator[str]:
    """A single-active-consumer quorum queue, as the hub's shards are declared; deleted after."""
    name = f"test-handover-{uuid.uuid4().hex[:8]}"
    connection = await aiormq.connect(admin_url)
    channel = await connection.channel()
    await channel.queue_declare(
        name,
        durable=True,
        arguments={"x-queue-type": "quorum", "x-single-active-consumer": True},
    )
    yield name
    await channel.queue_delete(name)
    await connection.close()


async def test_quorum_queue_gives_returned_messages_first_and_in_order(
    admin_url: str, quorum_queue: str
) -> None:
    """When the active consumer closes its channel with deliveries unacked, the standby gets
    those first, in their order, and then the newer ones: nothing overtakes anything."""
    publisher = await aiormq.connect(admin_url)
    out = await publisher.channel(publisher_confirms=True)
    for n in range(300):
        await out.basic_publish(str(n).encode(), routing_key=quorum_queue)

    active_connection = await aiormq.connect(admin_url)
    active = cast(aiormq.Channel, await active_connection.channel())
    await active.basic_qos(prefetch_count=100)
    seen_by_active: list[int] = []
    prefetched = asyncio.Event()

    async def on_active(message: DeliveredMessage) -> None:
        n = int(message.body)
        seen_by_active.append(n)
        if n < 50:
            await active.basic_ack(message.delivery_tag)  # type: ignore[arg-type]
        elif len(seen_by_active) == 100:
            prefetched.set()

    await active.basic_consume(quorum_queue, on_active)
    standby_connection = await aiormq.connect(admin_url)
    standby = await standby_connection.channel()
    await standby.basic_qos(prefetch_count=100)
    seen_by_standby: list[int] = []
    counts: dict[int, object] = {}
    everything = asyncio.Event()

    async def on_standby(message: DeliveredMessage) -> None:
        seen_by_standby.append(int(message.body))
        headers = message.header.properties.headers or {}
        counts[int(message.body)] = headers.get("x-delivery-count")
        await standby.basic_ack(message.delivery_tag)  # type: ignore[arg-type]
        if len(seen_by_standby) == 300:
            everything.set()

    await standby.basic_consume(quorum_queue, on_standby)
    await asyncio.wait_for(prefetched.wait(), 10)
    assert seen_by_standby == []  # the standby waits while the active consumer lives
    await active.close()
    for n in range(300, 350):  # newer messages published during the handover
        await out.basic_publish(str(n).encode(), routing_key=quorum_queue)
    await asyncio.wait_for(everything.wait(), 20)
    print(
        f"\nactive consumer: acked 50, left {len(seen_by_active) - 50} unacked; "
        f"standby got {seen_by_standby[:3]}... first, {len(seen_by_standby)} in all; "
        f"x-delivery-count of a returned one: {counts[50]}, of a newer one: {counts[300]}"
    )
    assert seen_by_standby == list(range(50, 350))
    for connection in (publisher, active_connection, standby_connection):
        await connection.close()


class GatedMemory(LocalMemory):
    """LocalMemory whose recall waits at a gate: it holds a hub's started deliveries in flight."""

    def __init__(self) -> None:
        super().__init__(seconds=600, max_entries=10_000)
        self.gate = asyncio.Event()
        self.started = 0

    async def recall(self, key: str) -> Handled | None:
        self.started += 1
        await self.gate.wait()
        return await super().recall(key)


async def start_consumer(
    directory: DirectoryIndex, directory_file: Path, topology: str, memory: LocalMemory
) -> tuple[HubConsumer, asyncio.Task[None]]:
    """An in-process hub on every shard of the test vhost, consuming (or standing by)."""
    settings = hub_settings(topology, directory_file)
    router = Router(directory, max_message_bytes=settings.max_message_bytes)
    consumer = HubConsumer(settings, router, memory, HubMetrics())
    task = asyncio.create_task(consumer.run())
    for _ in range(200):
        if consumer.ready:
            break
        await asyncio.sleep(0.05)
    assert consumer.ready
    return consumer, task


def handled(consumer: HubConsumer) -> float:
    """Messages a hub handled, over every type and outcome."""
    return sum(
        sample.value
        for metric in consumer.metrics.messages.collect()
        for sample in metric.samples
        if sample.name.endswith("_total")
    )


async def test_stopping_hub_keeps_its_shards_until_its_started_work_is_done(
    admin: Admin,
    partners: dict[str, Partner],
    directory: DirectoryIndex,
    directory_file: Path,
    topology: str,
) -> None:
    """While a stopping hub finishes what it started, the standby gets nothing; what arrived
    meanwhile goes back to the queue and reaches the standby after, so order holds."""
    await purge_all(admin, directory)
    memory = GatedMemory()
    active, active_task = await start_consumer(directory, directory_file, topology, memory)
    standby, standby_task = await start_consumer(
        directory, directory_file, topology, LocalMemory(seconds=600, max_entries=10_000)
    )
    sent = []
    for _ in range(30):
        doc = envelope("mag", ["org:unmas"])
        sent.append(doc["distribution_id"])
        await partners["mag"].send(doc)
    for _ in range(100):
        if memory.started == len(sent):
            break
        await asyncio.sleep(0.05)
    assert memory.started == len(sent), "the active hub did not start every delivery"
    stopping = asyncio.create_task(active.stop())
    for _ in range(10):  # published while the active hub finishes its started work
        doc = envelope("mag", ["org:unmas"])
        sent.append(doc["distribution_id"])
        await partners["mag"].send(doc)
    await asyncio.sleep(1.0)
    assert handled(standby) == 0, "the standby took over while older messages were in flight"
    memory.gate.set()
    await stopping
    await asyncio.wait_for(active_task, 10)
    got = await drain(admin, inbox_queue("unmas"), expect=len(sent), timeout=20)
    assert [decode(m)["distribution_id"] for m in got] == sent
    assert handled(active) == 30
    assert handled(standby) == 10
    await standby.stop()
    await asyncio.wait_for(standby_task, 10)


@pytest.fixture
def hubs() -> Iterator[list[HubProcess]]:
    """Hub processes started by a test; any left running (or paused) are killed afterwards."""
    started: list[HubProcess] = []
    yield started
    for hub in started:
        if hub.process.poll() is None:
            hub.process.kill()
            hub.process.wait()


class Tally:
    """What the recipient received, per sender, against what each sender sent."""

    def __init__(self, sent: dict[str, int], received: list[tuple[str, int]]) -> None:
        self.sent = sum(sent.values())
        self.received = len(received)
        firsts: dict[str, list[int]] = {s: [] for s in sent}
        seen: set[tuple[str, int]] = set()
        for sender, seq in received:
            if (sender, seq) not in seen:
                seen.add((sender, seq))
                firsts[sender].append(seq)
        self.lost = sum(len(set(range(n)) - set(firsts[s])) for s, n in sent.items())
        self.duplicates = self.received - len(seen)
        self.inversions = 0
        for seqs in firsts.values():
            highest = -1
            for seq in seqs:
                if seq < highest:
                    self.inversions += 1
                highest = max(highest, seq)

    def __str__(self) -> str:
        return (
            f"sent {self.sent}, received {self.received}: lost {self.lost}, "
            f"order inversions {self.inversions}, duplicates {self.duplicates}"
        )


async def handover_under_load(
    interrupt: signal.Signals,
    *,
    hubs: list[HubProcess],
    partners: dict[str, Partner],
    admin: Admin,
    directory: DirectoryIndex,
    directory_file: Path,
    topology: str,
    tmp_path: Path,
    per_sender: int = 400,
) -> Tally:
    """Two hubs on every shard (active + standby); several senders publish, a third of it
    before the hubs start (so the active hub works through a full prefetch), while the active
    hub gets ``interrupt`` mid-stream; returns what the recipient saw."""
    await purge_all(admin, directory)
    sent = dict.fromkeys(SENDERS, 0)

    async def send(sender: str, upto: int) -> None:
        for n in range(sent[sender], upto):
            doc = envelope(sender, [f"org:{RECIPIENT}"], incident_id=str(n), x_padding=PADDING)
            await partners[sender].send(doc)
            sent[sender] = n + 1

    await asyncio.gather(*(send(s, per_sender // 3) for s in SENDERS))
    # The active hub's heartbeat is short, so the broker notices a paused process quickly.
    active = HubProcess(f"{topology}?heartbeat=2", directory_file, tmp_path / "active.log")
    hubs.append(active)
    await active.wait_ready()
    standby = HubProcess(topology, directory_file, tmp_path / "standby.log")
    hubs.append(standby)
    await standby.wait_ready()
    senders = asyncio.gather(*(send(s, per_sender) for s in SENDERS))

    async def midway() -> bool:
        return await queue_depth(admin, inbox_queue(RECIPIENT)) >= per_sender // 2

    async def standby_took_over() -> bool:
        return await standby.metric("liaison_hub_messages_total") > 0

    await wait_for(midway, 60, "the first deliveries")
    active.process.send_signal(interrupt)
    if interrupt is signal.SIGSTOP:
        # Paused until the broker gave its shards to the standby, then resumed.
        await wait_for(standby_took_over, 60, "the standby to take over")
        active.process.send_signal(signal.SIGCONT)
    await senders
    total = len(SENDERS) * per_sender
    got = await drain(admin, inbox_queue(RECIPIENT), expect=total, timeout=120, settle=3.0)
    received = []
    for message in got:
        doc = msgspec.json.decode(message.body)
        received.append((doc["sender"], int(doc["incident_id"])))
    tally = Tally(sent, received)
    print(f"\n{interrupt.name} of the active hub mid-stream: {tally}")
    if interrupt is signal.SIGTERM:
        assert await asyncio.to_thread(active.process.wait, 30) == 0
    for hub in hubs:
        hub.stop()
    await purge_all(admin, directory)  # the ledger's records: the broker is shared
    return tally


@pytest.mark.slow
@pytest.mark.parametrize(
    "interrupt", [signal.SIGTERM, signal.SIGKILL, signal.SIGSTOP], ids=["term", "kill", "stop"]
)
async def test_sender_order_holds_across_a_handover(
    interrupt: signal.Signals,
    hubs: list[HubProcess],
    partners: dict[str, Partner],
    admin: Admin,
    directory: DirectoryIndex,
    directory_file: Path,
    topology: str,
    tmp_path: Path,
) -> None:
    """Graceful stop, crash or pause of the active hub under load from six senders: the
    standby takes over, nothing is lost, no sender's messages overtake each other; a graceful
    stop repeats nothing (a crash or pause may, until the hubs share their memory)."""
    tally = await handover_under_load(
        interrupt,
        hubs=hubs,
        partners=partners,
        admin=admin,
        directory=directory,
        directory_file=directory_file,
        topology=topology,
        tmp_path=tmp_path,
    )
    assert tally.lost == 0
    assert tally.inversions == 0
    if interrupt is signal.SIGTERM:
        assert tally.duplicates == 0
