"""Partner-to-inbox latency at a fixed offered load, with and without the hub in the path.

Each body is stamped with ``sent_at`` just before it is published; the consumer of the inboxes
takes receive time minus ``sent_at`` for the first copy of each message. Without the hub, the
partner publishes straight to the delivery exchange with its recipients in a ``BCC`` header, as
it would have to if there were no hub (the same copies); with it, partner -> ingress -> shard
-> hub -> delivery exchange -> inboxes (and the bench's copy counter). The two alternate in rounds
(the hub runs throughout, idle while the direct path is measured), so drift in what else the
machine is doing falls on both alike; the first half second of each round is warm-up, not
counted.
"""

import asyncio
import time
from collections.abc import Sequence
from datetime import UTC, datetime

import aiormq
import msgspec
from aiormq.abc import DeliveredMessage
from pamqp import commands as spec

from bench.broker import PARTNER_PASSWORD, amqp_url
from bench.peers import route
from bench.workload import Message, with_sent_at
from liaison.schemas.wire import CONTENT_TYPE, DELIVERY_EXCHANGE, INGRESS_EXCHANGE

WARMUP_SECONDS = 0.5


class _Stamp(msgspec.Struct):
    distribution_id: str
    sent_at: datetime


_stamp = msgspec.json.Decoder(_Stamp)


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0..1) by nearest rank."""
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * len(ordered) + 0.5) - 1))
    return ordered[index]


async def measure(
    vhost: str,
    messages: Sequence[Message],
    inboxes: Sequence[str],
    *,
    rate: float,
    via_hub: bool,
    limit_seconds: float = 60.0,
) -> tuple[list[float], float]:
    """Offer ``messages`` at ``rate`` per second: (latencies in ms after warm-up, rate achieved)."""
    admin = await aiormq.connect(amqp_url(vhost))
    seen: dict[str, float] = {}
    done = asyncio.Event()
    total = len(messages)
    expected = {m.envelope.distribution_id for m in messages}

    async def on_message(message: DeliveredMessage) -> None:
        received = time.time()
        stamp = _stamp.decode(message.body)
        if stamp.distribution_id in expected and stamp.distribution_id not in seen:
            seen[stamp.distribution_id] = received - stamp.sent_at.timestamp()
            if len(seen) >= total:
                done.set()

    consumer = await admin.channel()
    await consumer.basic_qos(prefetch_count=1000)
    for queue in inboxes:
        await consumer.basic_consume(queue, on_message, no_ack=True)

    channels: dict[str, aiormq.abc.AbstractChannel] = {}
    connections: list[aiormq.abc.AbstractConnection] = [admin]
    if via_hub:
        for account in sorted({m.account for m in messages}):
            connection = await aiormq.connect(amqp_url(vhost, account, PARTNER_PASSWORD))
            connections.append(connection)
            channels[account] = await connection.channel(publisher_confirms=True)
    else:
        direct = await admin.channel(publisher_confirms=True)

    props: dict[str, spec.Basic.Properties] = {}
    confirms = []
    loop = asyncio.get_running_loop()
    start = loop.time() + 0.05
    warmup = int(rate * WARMUP_SECONDS)
    for i, message in enumerate(messages):
        delay = start + i / rate - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        body = with_sent_at(message, datetime.now(UTC))
        if via_hub:
            p = props.get(message.account)
            if p is None:
                p = props[message.account] = spec.Basic.Properties(
                    content_type=CONTENT_TYPE, delivery_mode=2, user_id=message.account
                )
            confirm = channels[message.account].basic_publish(
                body,
                exchange=INGRESS_EXCHANGE,
                routing_key=message.sender,
                properties=p,
                wait=False,
            )
        else:
            key, headers = route(message.envelope.recipients, message.envelope.precedence)
            confirm = direct.basic_publish(
                body,
                exchange=DELIVERY_EXCHANGE,
                routing_key=key,
                properties=spec.Basic.Properties(
                    content_type=CONTENT_TYPE, delivery_mode=2, headers=headers
                ),
                wait=False,
            )
        confirms.append(asyncio.ensure_future(confirm))
    offered_seconds = loop.time() - start
    await asyncio.gather(*confirms)
    await asyncio.wait_for(done.wait(), limit_seconds)
    for connection in connections:
        await connection.close()

    order = [m.envelope.distribution_id for m in messages][warmup:]
    return [seen[d] * 1000 for d in order], total / offered_seconds


def summary(samples: Sequence[float], rates: Sequence[float], offered: float) -> dict[str, float]:
    """p50, p99, max and mean of pooled latency samples, in milliseconds."""
    return {
        "offered_rate": offered,
        "achieved_rate": round(min(rates), 1),
        "messages": len(samples),
        "p50_ms": round(percentile(samples, 0.50), 3),
        "p99_ms": round(percentile(samples, 0.99), 3),
        "max_ms": round(max(samples), 3),
        "mean_ms": round(sum(samples) / len(samples), 3),
    }
