"""Preloading: publish precomputed bodies, persistent and confirmed, many confirms in flight."""

import asyncio
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import aiormq
from pamqp import commands as spec

from bench.broker import PARTNER_PASSWORD, amqp_url
from bench.workload import Message
from liaison.schemas.wire import CONTENT_TYPE, HEADER_SIGNATURE, INGRESS_EXCHANGE

WINDOW = 500


async def _publish_all(
    channel: aiormq.abc.AbstractChannel,
    items: Sequence[tuple[bytes, str, spec.Basic.Properties]],
    exchange: str,
) -> None:
    for start in range(0, len(items), WINDOW):
        # aiormq's basic_publish is a coroutine that returns with the confirm: one task each
        # keeps a window of confirms in flight.
        confirms = [
            asyncio.ensure_future(
                channel.basic_publish(
                    body, exchange=exchange, routing_key=key, properties=props, wait=False
                )
            )
            for body, key, props in items[start : start + WINDOW]
        ]
        results = await asyncio.gather(*confirms)
        for result in results:
            if not isinstance(result, spec.Basic.Ack):
                raise RuntimeError(f"preload publish not confirmed: {result!r}")


async def preload_queue(
    url: str,
    queue: str,
    bodies: Sequence[bytes],
    headers: Sequence[dict[str, Any]] | None = None,
) -> None:
    """``bodies`` into ``queue`` through the default exchange, as the admin; each with its
    ``headers`` when given."""
    plain = spec.Basic.Properties(content_type=CONTENT_TYPE, delivery_mode=2)
    props = (
        [plain] * len(bodies)
        if headers is None
        else [
            spec.Basic.Properties(content_type=CONTENT_TYPE, delivery_mode=2, headers=h)
            for h in headers
        ]
    )
    connection = await aiormq.connect(url)
    try:
        channel = await connection.channel(publisher_confirms=True)
        await _publish_all(channel, [(b, queue, p) for b, p in zip(bodies, props, strict=True)], "")
    finally:
        await connection.close()


async def preload_ingress(vhost: str, messages: Sequence[Message]) -> None:
    """Each message to the ingress as its sender's partner account would send it (with its
    signature header when it has one)."""
    by_account: dict[str, list[tuple[bytes, str, spec.Basic.Properties]]] = defaultdict(list)
    props: dict[str, spec.Basic.Properties] = {}
    for m in messages:
        if m.signature is not None:
            p = spec.Basic.Properties(
                content_type=CONTENT_TYPE,
                delivery_mode=2,
                user_id=m.account,
                headers={HEADER_SIGNATURE: m.signature},
            )
        elif (p := props.get(m.account)) is None:
            p = props[m.account] = spec.Basic.Properties(
                content_type=CONTENT_TYPE, delivery_mode=2, user_id=m.account
            )
        by_account[m.account].append((m.body, m.sender, p))

    async def one(account: str, items: list[tuple[bytes, str, spec.Basic.Properties]]) -> None:
        connection = await aiormq.connect(amqp_url(vhost, account, PARTNER_PASSWORD))
        try:
            channel = await connection.channel(publisher_confirms=True)
            await _publish_all(channel, items, INGRESS_EXCHANGE)
        finally:
            await connection.close()

    await asyncio.gather(*(one(a, items) for a, items in by_account.items()))
