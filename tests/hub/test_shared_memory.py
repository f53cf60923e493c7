"""Hub processes sharing the Redis delivery memory: a redelivery or a restart repeats nothing."""

import asyncio
import contextlib
import signal
import subprocess
from pathlib import Path

import aio_pika
import pytest
import redis.asyncio
import redis.exceptions
from pamqp import commands as spec

from liaison.common.topology import hub_queue
from liaison.directory.index import DirectoryIndex
from liaison.hub.memory import Handled
from liaison.hub.redis_memory import RedisMemory
from liaison.schemas.wire import inbox_queue
from tests.hub.conftest import purge_all
from tests.hub.memory_support import REDIS_URL, memory_prefix, shared_memory, start_hub
from tests.hub.support import Partner, decode, drain, envelope
from tests.hub.test_processes import HubProcess, free_port, queue_depth, wait_for

__all__ = ["memory_prefix"]  # the fixture, imported so pytest finds it here

pytestmark = [pytest.mark.broker, pytest.mark.redis]

Admin = aio_pika.abc.AbstractConnection
#: In-flight messages of the hub killed mid-stream: the bound on what a kill can repeat.
PREFETCH = 32


async def shard_states(admin: Admin) -> list[spec.Queue.DeclareOk]:
    """Each of the 4 shards' message and consumer counts, read by a passive declare."""
    channel = await admin.channel()
    try:
        return [
            (await channel.declare_queue(hub_queue(shard), passive=True)).declaration_result
            for shard in range(4)
        ]
    finally:
        await channel.close()


async def shards_empty(admin: Admin) -> bool:
    """No ingress message waits or is unacknowledged in any shard."""
    return not any(state.message_count for state in await shard_states(admin))


async def test_a_second_hub_does_not_deliver_a_redelivered_message_again(
    admin: Admin,
    partners: dict[str, Partner],
    directory: DirectoryIndex,
    directory_file: Path,
    topology: str,
    memory_prefix: str,
) -> None:
    """A message delivered by one hub that died before its ack is not delivered by the next."""
    await purge_all(admin, directory)
    first_memory, second_memory = shared_memory(memory_prefix), shared_memory(memory_prefix)
    # Confirm mode: the first hub publishes, gets its confirms and records the delivery, but
    # its acks never leave, as if it died between the record and the ack (a state transaction
    # mode does not have: there the copies and the ack commit together).
    first, first_task, _ = await start_hub(
        topology, directory, directory_file, first_memory, delivery="confirm"
    )
    first._ack = lambda tag: None  # type: ignore[method-assign]
    doc = envelope("mag", ["org:unmas"])
    await partners["mag"].send(doc)
    key = f"mag/{doc['distribution_id']}"

    async def recorded() -> bool:
        return await second_memory.recall(key) is Handled.DELIVERED

    await wait_for(recorded, 10, "the first hub's record")
    await first.stop()  # closes its connection: the broker takes the unacked message back
    await asyncio.wait_for(first_task, 10)
    await first_memory.close()

    second, second_task, metrics = await start_hub(
        topology, directory, directory_file, second_memory
    )
    try:
        after = envelope("mag", ["org:unmas"])  # same sender, same shard: decided after the first
        await partners["mag"].send(after)
        got = await drain(admin, inbox_queue("unmas"), expect=2)
        ids = [decode(m)["distribution_id"] for m in got]
        assert sorted(ids) == sorted([doc["distribution_id"], after["distribution_id"]])

        async def redelivery_decided() -> bool:
            labels = {"type": "hazard.eo_spot_report", "outcome": "duplicate"}
            value = metrics.registry.get_sample_value("liaison_hub_messages_total", labels)
            return value == 1

        await wait_for(redelivery_decided, 10, "the redelivery to be decided a duplicate")
        assert await drain(admin, inbox_queue("unmas"), expect=0) == []
    finally:
        await second.stop()
        await asyncio.wait_for(second_task, 10)
        await second_memory.close()


@pytest.mark.slow
async def test_a_restarted_hub_does_not_deliver_again_what_it_delivered(
    admin: Admin,
    partners: dict[str, Partner],
    directory: DirectoryIndex,
    directory_file: Path,
    topology: str,
    tmp_path: Path,
    memory_prefix: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """After SIGKILL and a restart, the same message id arriving again reaches nobody twice."""
    await purge_all(admin, directory)
    monkeypatch.setenv("LIAISON_REDIS_URL", REDIS_URL)
    monkeypatch.setenv("LIAISON_REDIS_PREFIX", memory_prefix)
    doc = envelope("mag", ["org:unmas", "org:ocha"])
    hubs: list[HubProcess] = []
    try:
        first = HubProcess(topology, directory_file, tmp_path / "hub1.log")
        hubs.append(first)
        await first.wait_ready()
        await partners["mag"].send(doc)
        observer = shared_memory(memory_prefix)
        key = f"mag/{doc['distribution_id']}"

        async def recorded() -> bool:
            return await observer.recall(key) is Handled.DELIVERED

        # Killed once its delivery is recorded: acknowledged or not, nobody gets it twice.
        await wait_for(recorded, 20, "the first hub to deliver and record")
        await observer.close()
        assert first.stop(signal.SIGKILL) == -signal.SIGKILL

        second = HubProcess(topology, directory_file, tmp_path / "hub2.log")
        hubs.append(second)
        await second.wait_ready()
        # The same message id again, as a redelivery after the kill would bring it.
        await partners["mag"].send(doc)
        after = envelope("mag", ["org:unmas"])
        await partners["mag"].send(after)
        await wait_for(lambda: shards_empty(admin), 20, "the second hub to decide both")

        unmas = [
            decode(m)["distribution_id"] for m in await drain(admin, inbox_queue("unmas"), expect=2)
        ]
        ocha = [
            decode(m)["distribution_id"] for m in await drain(admin, inbox_queue("ocha"), expect=1)
        ]
        assert unmas.count(doc["distribution_id"]) == 1
        assert ocha.count(doc["distribution_id"]) == 1
        assert after["distribution_id"] in unmas
        assert await queue_depth(admin, inbox_queue("mag")) == 0  # and no error report
        assert second.stop() == 0
    finally:
        for hub in hubs:
            if hub.process.poll() is None:
                hub.process.kill()
                hub.process.wait()


class PrivateRedis:
    """A redis-server of this test's own on a free port, which the test may stop and restart."""

    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        self.directory = directory
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Where it listens."""
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        """Start it (no persistence: only up or down matters here) and wait until it answers."""
        self.process = subprocess.Popen(  # noqa: ASYNC220 - returns at once, nothing waits
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.directory),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.asyncio.Redis.from_url(self.url)
        try:
            for _ in range(100):
                with contextlib.suppress(redis.exceptions.ConnectionError):
                    if await client.ping():
                        return
                await asyncio.sleep(0.05)
        finally:
            await client.aclose()
        raise AssertionError("private redis-server did not start")

    def stop(self) -> None:
        """Kill it, as a Redis crash would."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


@pytest.mark.slow
async def test_hub_stops_consuming_while_redis_is_unreachable(
    admin: Admin,
    partners: dict[str, Partner],
    directory: DirectoryIndex,
    directory_file: Path,
    topology: str,
    tmp_path: Path,
) -> None:
    """Without Redis the hub stops consuming and is not ready; when Redis is back it delivers."""
    await purge_all(admin, directory)
    server = PrivateRedis(tmp_path)
    await server.start()
    memory = RedisMemory.from_url(server.url, window_seconds=600, timeout=0.5)
    hub, task, _ = await start_hub(topology, directory, directory_file, memory)
    try:
        first = envelope("mag", ["org:unmas"])
        await partners["mag"].send(first)
        assert len(await drain(admin, inbox_queue("unmas"), expect=1)) == 1

        server.stop()
        held = envelope("mag", ["org:unmas"])
        await partners["mag"].send(held)
        await wait_for(lambda: _not(hub.ready), 10, "the hub to stop consuming")
        assert await drain(admin, inbox_queue("unmas"), expect=0, settle=1.0) == []
        assert not await shards_empty(admin)  # kept by the broker, not lost, not delivered

        await server.start()
        await wait_for(lambda: _is(hub.ready), 20, "the hub to consume again")
        got = await drain(admin, inbox_queue("unmas"), expect=1)
        assert [decode(m)["distribution_id"] for m in got] == [held["distribution_id"]]
    finally:
        await hub.stop()
        await asyncio.wait_for(task, 10)
        await memory.close()
        server.stop()


async def _is(value: bool) -> bool:
    return value


async def _not(value: bool) -> bool:
    return not value


@pytest.mark.slow
async def test_sigkill_mid_stream_loses_nothing_and_repeats_at_most_the_prefetch(
    admin: Admin,
    partners: dict[str, Partner],
    directory: DirectoryIndex,
    directory_file: Path,
    topology: str,
    tmp_path: Path,
    memory_prefix: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """SIGKILL mid-stream loses nothing and repeats at most the prefetch; prints both figures.

    What it repeats are copies the broker had taken before the kill whose record was not yet
    written (publish to confirm to record): at most the messages in flight, LIAISON_PREFETCH.
    """
    await purge_all(admin, directory)
    monkeypatch.setenv("LIAISON_REDIS_URL", REDIS_URL)
    monkeypatch.setenv("LIAISON_REDIS_PREFIX", memory_prefix)
    monkeypatch.setenv("LIAISON_PREFETCH", str(PREFETCH))
    sent = []
    for _ in range(2000):
        doc = envelope("mag", ["org:unmas"])
        sent.append(doc["distribution_id"])
        await partners["mag"].send(doc)
    hubs: list[HubProcess] = []
    try:
        first = HubProcess(topology, directory_file, tmp_path / "hub1.log")
        hubs.append(first)

        async def some_delivered() -> bool:
            return await queue_depth(admin, inbox_queue("unmas")) >= 400

        await wait_for(some_delivered, 30, "the first deliveries")
        assert first.stop(signal.SIGKILL) == -signal.SIGKILL
        second = HubProcess(topology, directory_file, tmp_path / "hub2.log")
        hubs.append(second)

        async def all_delivered() -> bool:
            return await queue_depth(admin, inbox_queue("unmas")) >= len(sent)

        await wait_for(all_delivered, 120, "every message to be delivered")
        await wait_for(lambda: shards_empty(admin), 30, "the shards to drain")
        got = await drain(admin, inbox_queue("unmas"), expect=len(sent), timeout=30, settle=1.0)
        ids = [decode(m)["distribution_id"] for m in got]
        lost = len(set(sent) - set(ids))
        repeats = len(ids) - len(set(ids))
        print(f"sigkill mid-stream, prefetch {PREFETCH}: lost={lost} repeats={repeats}")
        assert lost == 0
        assert repeats <= PREFETCH
        assert second.stop() == 0
    finally:
        for hub in hubs:
            if hub.process.poll() is None:
                hub.process.kill()
                hub.process.wait()
