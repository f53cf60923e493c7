"""The extra-node harness: a node of its own beside the shared broker, gone after the test."""

import os
import socket
import tempfile
from pathlib import Path

import aio_pika
import aiohttp
import pytest

from liaison.nodes.node import BrokerNode, NodeError

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0, reason="an extra RabbitMQ node is started as root (then as rabbitmq)"
)


def _accepts(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1.0)
        return sock.connect_ex(("127.0.0.1", port)) == 0


async def test_extra_node_is_its_own_broker(extra_node: BrokerNode) -> None:
    """The node answers AMQP on its own port, under its own name, and keeps what is sent to it."""
    print(f"extra node {extra_node.name} started in {extra_node.started_in:.1f}s")
    assert extra_node.ports.amqp != 5672
    connection = await aio_pika.connect(extra_node.amqp_url(), timeout=10)
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue("harness-check", durable=True)
        await channel.default_exchange.publish(aio_pika.Message(b"hello"), routing_key=queue.name)
        message = await queue.get(timeout=5)
        assert message is not None
        assert message.body == b"hello"
        await message.ack()
    auth = {"Authorization": aiohttp.encode_basic_auth("guest", "guest")}
    async with (
        aiohttp.ClientSession(headers=auth) as session,
        session.get(f"{extra_node.management_url}/api/overview") as response,
    ):
        overview = await response.json()
    assert overview["node"] == extra_node.name
    assert overview["node"] != "rabbit@localhost"


def test_stop_ends_the_node_and_removes_its_directory() -> None:
    """After stop nothing listens on the node's ports and its directory is gone."""
    node = BrokerNode.start(prefix="liaison-test", plugins=())
    directory, port = node.directory, node.ports.amqp
    assert _accepts(port)
    node.stop()
    assert not _accepts(port)
    assert not directory.exists()
    assert node.process is not None
    assert node.process.poll() is not None


def test_a_node_that_cannot_start_says_why_and_leaves_nothing() -> None:
    """A configuration the broker refuses fails start with its log, and no directory is left."""
    before = set(Path(tempfile.gettempdir()).glob("liaison-badconf-*"))
    with pytest.raises(NodeError, match="exited while starting") as failure:
        BrokerNode.start(prefix="liaison-badconf", plugins=(), config="no_such.setting = 1")
    assert "no_such.setting" in str(failure.value)
    after = set(Path(tempfile.gettempdir()).glob("liaison-badconf-*"))
    assert after == before
