"""Hub processes as operators run them: killed mid-stream, and two sharing the work."""

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import aio_pika
import aiohttp
import pytest

from liaison.common.topology import hub_queue
from liaison.directory.index import DirectoryIndex
from liaison.schemas.wire import inbox_queue
from tests.hub.conftest import purge_all
from tests.hub.support import Partner, decode, drain, envelope

pytestmark = [pytest.mark.broker, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
Admin = aio_pika.abc.AbstractConnection


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class HubProcess:
    """``python -m liaison.hub`` in a subprocess, as an operator would run it."""

    def __init__(self, url: str, directory: Path, log: Path, shards: str = "all") -> None:
        self.port = free_port()
        env = dict(os.environ)
        env.update(
            LIAISON_AMQP_URL=url,
            LIAISON_DIRECTORY=str(directory),
            LIAISON_HUB_SHARDS=shards,
            LIAISON_HTTP_PORT=str(self.port),
            LIAISON_LOG_LEVEL="warning",
        )
        self.log = log.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "liaison.hub"],
            cwd=ROOT,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    async def wait_ready(self, timeout: float = 20.0) -> None:
        """Poll /readyz until the hub consumes."""
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession() as session:
            while time.monotonic() < deadline:
                assert self.process.poll() is None, "hub exited"
                try:
                    async with session.get(f"http://127.0.0.1:{self.port}/readyz") as r:
                        if r.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.1)
        raise AssertionError("hub never became ready")

    async def metric(self, name: str) -> float:
        """Sum of a metric's samples from /metrics."""
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"http://127.0.0.1:{self.port}/metrics") as r,
        ):
            text = await r.text()
        return sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith(name) and not line.startswith("#")
        )

    def stop(self, sig: int = signal.SIGTERM) -> int:
        """Signal the hub and wait for it to exit."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
        code = self.process.wait(timeout=30)
        self.log.close()
        return code


HubFactory = Callable[[str], HubProcess]


def hub_factory(hubs: list[HubProcess], url: str, directory: Path, logs: Path) -> HubFactory:
    """Starts hub processes that the ``hubs`` fixture cleans up."""

    def start(log_name: str) -> HubProcess:
        hub = HubProcess(url, directory, logs / log_name)
        hubs.append(hub)
        return hub

    return start


@pytest.fixture
def hubs(tmp_path: Path) -> Iterator[list[HubProcess]]:
    """Hub processes started by a test; any left running are killed afterwards."""
    started: list[HubProcess] = []
    yield started
    for hub in started:
        if hub.process.poll() is None:
            hub.process.kill()
            hub.process.wait()


async def queue_depth(admin: Admin, name: str) -> int:
    """Messages ready in a queue."""
    channel = await admin.channel()
    queue = await channel.declare_queue(name, passive=True)
    await channel.close()
    return int(queue.declaration_result.message_count or 0)


async def wait_for(predicate: object, timeout: float, what: str) -> None:
    """Poll an async predicate until true."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await predicate():  # type: ignore[operator]
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


async def interrupt_mid_stream(
    sig: signal.Signals,
    *,
    partners: dict[str, Partner],
    admin: Admin,
    sender: str,
    recipient: str,
    count: int,
    start: HubFactory,
) -> tuple[list[str], int]:
    """Preload ``count`` messages, start a hub, send it ``sig`` mid-stream; ids and exit code."""
    sent = []
    for _ in range(count):
        doc = envelope(sender, [f"org:{recipient}"])
        sent.append(doc["distribution_id"])
        await partners[sender].send(doc)
    first = start("hub1.log")

    async def some_delivered() -> bool:
        return await queue_depth(admin, inbox_queue(recipient)) >= count // 6

    await wait_for(some_delivered, 30, "the first deliveries")
    return sent, first.stop(sig)


async def test_sigkill_mid_stream_loses_nothing(
    hubs: list[HubProcess],
    partners: dict[str, Partner],
    admin: Admin,
    directory_file: Path,
    topology: str,
    tmp_path: Path,
    directory: DirectoryIndex,
) -> None:
    """Killing the hub with SIGKILL mid-stream and restarting it delivers every message."""
    await purge_all(admin, directory)
    start = hub_factory(hubs, topology, directory_file, tmp_path)
    sent, code = await interrupt_mid_stream(
        signal.SIGKILL,
        partners=partners,
        admin=admin,
        sender="mag",
        recipient="unmas",
        count=3000,
        start=start,
    )
    assert code == -signal.SIGKILL
    second = start("hub2.log")

    async def all_processed() -> bool:
        depths = [await queue_depth(admin, hub_queue(s)) for s in range(4)]
        return sum(depths) == 0 and await queue_depth(admin, inbox_queue("unmas")) >= len(sent)

    await wait_for(all_processed, 120, "every message to be processed")
    # Read the inbox while the hub still runs: a stopping hub gives back what it has not
    # started (to the next hub), and repeats after the kill may fill the inbox before the rest.
    got = await drain(admin, inbox_queue("unmas"), expect=len(sent), timeout=30, settle=1.0)
    assert second.stop() == 0
    ids = [decode(m)["distribution_id"] for m in got]
    assert set(ids) == set(sent)
    # A redelivery after the crash may repeat a message, always under its own message id.
    for message in got:
        assert message.message_id == f"mag/{decode(message)['distribution_id']}"
    assert await drain(admin, inbox_queue("mag"), expect=0) == []


async def test_two_hubs_share_the_work_and_keep_sender_order(
    hubs: list[HubProcess],
    partners: dict[str, Partner],
    admin: Admin,
    directory_file: Path,
    topology: str,
    tmp_path: Path,
    directory: DirectoryIndex,
) -> None:
    """Two hub processes on disjoint shards deliver everything, each sender in order."""
    await purge_all(admin, directory)
    senders = ["mag", "unmas", "ocha", "wfp", "unhcr", "undp", "unicef", "nrc"]
    a = HubProcess(topology, directory_file, tmp_path / "a.log", shards="0,1")
    b = HubProcess(topology, directory_file, tmp_path / "b.log", shards="2,3")
    hubs.extend([a, b])
    await asyncio.gather(a.wait_ready(), b.wait_ready())
    sent: dict[str, list[str]] = {s: [] for s in senders}
    for n in range(150):
        for sender in senders:
            doc = envelope(sender, ["org:minusca"], incident_id=f"SEQ-{n}")
            sent[sender].append(doc["distribution_id"])
            await partners[sender].send(doc)
    total = 150 * len(senders)
    got = await drain(admin, inbox_queue("minusca"), expect=total, timeout=60)
    assert len(got) == total
    received: dict[str, list[str]] = {s: [] for s in senders}
    for message in got:
        doc = decode(message)
        received[doc["sender"]].append(doc["distribution_id"])
    assert received == sent
    done_a = await a.metric("liaison_hub_messages_total")
    done_b = await b.metric("liaison_hub_messages_total")
    assert done_a > 0
    assert done_b > 0
    assert done_a + done_b == total
    assert a.stop() == 0
    assert b.stop() == 0


async def test_sigterm_finishes_in_flight_work_and_exits_cleanly(
    hubs: list[HubProcess],
    partners: dict[str, Partner],
    admin: Admin,
    directory_file: Path,
    topology: str,
    tmp_path: Path,
    directory: DirectoryIndex,
) -> None:
    """SIGTERM mid-stream: exit 0, every message delivered exactly once after a restart."""
    await purge_all(admin, directory)
    start = hub_factory(hubs, topology, directory_file, tmp_path)
    sent, code = await interrupt_mid_stream(
        signal.SIGTERM,
        partners=partners,
        admin=admin,
        sender="unmas",
        recipient="mag",
        count=2000,
        start=start,
    )
    assert code == 0
    second = start("hub2.log")
    got = await drain(admin, inbox_queue("mag"), expect=len(sent), timeout=60, settle=1.0)
    assert second.stop() == 0
    ids = [decode(m)["distribution_id"] for m in got]
    assert sorted(ids) == sorted(sent), "graceful stop must neither lose nor repeat"
