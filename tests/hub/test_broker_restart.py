"""The broker itself restarts mid-stream: durable queues and persistent messages come back, the
hub reconnects on its own, and every message reaches its recipient.

This restarts the local RabbitMQ node (``rabbitmqctl stop_app`` / ``start_app``), which drops
every connection on it, so it runs in a pytest session of its own after the rest of the suite
(``make pytest`` does both); the other tests' session-wide connections would not survive it.
"""

import asyncio
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import aio_pika
import pytest

from liaison.common.topology import hub_queue
from liaison.directory.index import DirectoryIndex
from liaison.schemas.wire import DEAD_LETTER_QUEUE, inbox_queue
from tests.conftest import amqp_url_for
from tests.hub.conftest import purge_all
from tests.hub.support import PASSWORD, Partner, decode, drain, envelope
from tests.hub.test_processes import HubProcess, queue_depth, wait_for

pytestmark = [pytest.mark.broker, pytest.mark.slow, pytest.mark.broker_restart]

COUNT = 2000


def _rabbitmqctl(*args: str, timeout: float = 120) -> None:
    subprocess.run(["rabbitmqctl", *args], check=True, capture_output=True, timeout=timeout)


@pytest.fixture
def restartable_broker() -> Iterator[None]:
    """The local node, started again after the test whatever happened in it."""
    if shutil.which("rabbitmqctl") is None:
        pytest.skip("the broker is not on this machine: rabbitmqctl is missing")
    yield
    _rabbitmqctl("start_app")
    _rabbitmqctl("await_startup")


async def test_broker_restart_mid_stream_loses_nothing(
    restartable_broker: None,
    vhost: str,
    partner_accounts: dict[str, str],
    directory_file: Path,
    directory: DirectoryIndex,
    topology: str,
    tmp_path: Path,
) -> None:
    """Restart RabbitMQ while the hub works through 2,000 messages: the hub stays up,
    reconnects, and afterwards every message is in the recipient's inbox under its own
    message id, with nothing dead-lettered and no error report."""
    admin = await aio_pika.connect(topology)
    await purge_all(admin, directory)
    mag = Partner(
        "mag",
        partner_accounts["mag"],
        await aio_pika.connect(amqp_url_for(vhost, partner_accounts["mag"], PASSWORD)),
    )
    sent = []
    for _ in range(COUNT):
        doc = envelope("mag", ["org:unmas"])
        sent.append(doc["distribution_id"])
        await mag.send(doc)
    await mag.connection.close()

    hub = HubProcess(topology, directory_file, tmp_path / "hub.log")
    try:
        await hub.wait_ready()

        async def some_delivered() -> bool:
            return await queue_depth(admin, inbox_queue("unmas")) >= COUNT // 4

        await wait_for(some_delivered, 60, "the first deliveries")
        await admin.close()
        await asyncio.to_thread(_rabbitmqctl, "stop_app")
        assert hub.process.poll() is None, "the hub exited when the broker went away"
        await asyncio.to_thread(_rabbitmqctl, "start_app")
        await asyncio.to_thread(_rabbitmqctl, "await_startup")

        await hub.wait_ready(timeout=60)
        admin = await aio_pika.connect(topology)

        async def all_processed() -> bool:
            shards = sum([await queue_depth(admin, hub_queue(s)) for s in range(4)])
            return shards == 0 and await queue_depth(admin, inbox_queue("unmas")) >= COUNT

        await wait_for(all_processed, 120, "every message to be processed")
        assert await hub.metric("liaison_hub_reconnects_total") >= 1
        assert hub.stop() == 0
        got = await drain(admin, inbox_queue("unmas"), expect=COUNT, timeout=30)
        assert {decode(m)["distribution_id"] for m in got} == set(sent)
        # Work in flight when the broker stopped may be delivered again, never under a new id.
        for message in got:
            assert message.message_id == f"mag/{decode(message)['distribution_id']}"
        assert await queue_depth(admin, DEAD_LETTER_QUEUE) == 0
        assert await drain(admin, inbox_queue("mag"), expect=0) == []
        await admin.close()
    finally:
        if hub.process.poll() is None:
            hub.process.kill()
            hub.process.wait()
