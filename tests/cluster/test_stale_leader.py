"""What the hub's publishing-channel renewal rests on (RabbitMQ 3.10): after a node loss, a
channel opened at once is nacked by a quorum queue the lost node led, for as long as the node
stays away; a channel opened once a new leader is elected is not; an older one is not."""

import asyncio
import secrets
import time

import aiormq
import aiormq.abc
import pytest
from pamqp.commands import Basic

from liaison.nodes.cluster import BrokerCluster
from tests.cluster.conftest import needs_root

pytestmark = [pytest.mark.broker, pytest.mark.slow, needs_root]

#: Seconds after the SIGKILL when the late channel opens (the election took 1-3 s here).
LATE = 6.0
UNTIL = 9.0


async def answers(channel: aiormq.abc.AbstractChannel, queue: str, until: float) -> list[str]:
    """Publish to ``queue`` every 0.2 s until ``until``; the broker's answer to each."""
    got: list[str] = []
    while time.monotonic() < until:
        try:
            confirm = await asyncio.wait_for(
                channel.basic_publish(b"probe", exchange="", routing_key=queue), 5
            )
            got.append(type(confirm).__name__)
        except aiormq.exceptions.DeliveryError as exc:
            got.append(type(exc.frame).__name__)
        await asyncio.sleep(0.2)
    return got


async def test_a_channel_opened_during_the_election_stays_nacked(cluster: BrokerCluster) -> None:
    """Kill the leader's node: the channel opened at once is nacked throughout, the one opened
    after the election and the one used before the loss are acked."""
    lost, survivor = cluster.nodes[0], cluster.nodes[1]
    queue = f"liaison-test-stale-{secrets.token_hex(3)}"
    # Declared through the node to lose, so its leader is there.
    on_lost = await aiormq.connect(lost.amqp_url())
    declaring = await on_lost.channel()
    await declaring.queue_declare(queue, durable=True, arguments={"x-queue-type": "quorum"})
    await on_lost.close()
    connection = await aiormq.connect(survivor.amqp_url())
    try:
        before = await connection.channel(publisher_confirms=True)
        assert isinstance(await before.basic_publish(b"warm", routing_key=queue), Basic.Ack)
        killed_at = time.monotonic()
        lost.kill()
        early = await connection.channel(publisher_confirms=True)
        end = killed_at + UNTIL
        early_task = asyncio.ensure_future(answers(early, queue, end))
        before_task = asyncio.ensure_future(answers(before, queue, end))
        await asyncio.sleep(LATE - (time.monotonic() - killed_at))
        late = await connection.channel(publisher_confirms=True)
        late_answers = await answers(late, queue, end)
        early_answers, before_answers = await early_task, await before_task
        print(
            "\nafter SIGKILL of the leader's node: channel opened at once "
            f"{early_answers.count('Nack')}/{len(early_answers)} nacked; opened {LATE:.0f} s later "
            f"{late_answers.count('Nack')}/{len(late_answers)}; opened before "
            f"{before_answers.count('Nack')}/{len(before_answers)}"
        )
        assert early_answers
        assert set(early_answers) == {"Nack"}
        assert late_answers
        assert set(late_answers) == {"Ack"}
        assert before_answers
        assert set(before_answers) == {"Ack"}
    finally:
        await asyncio.to_thread(lost.restart)
        await asyncio.to_thread(cluster.wait_running)
        with_queue = await aiormq.connect(survivor.amqp_url())
        channel = await with_queue.channel()
        await channel.queue_delete(queue)
        await with_queue.close()
        await connection.close()
