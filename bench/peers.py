"""The Python peers the hub is measured against, each run as its own process until killed.

    python -m bench.peers plain URL SRC       aio-pika, msgspec Envelope, await each confirm
    python -m bench.peers faststream URL SRC  FastStream subscriber -> publisher, pydantic

Both consume a quorum queue with prefetch 256 and forward each message to its recipients the way
the hub does, so the broker does the same work for every mover: one persistent publish with
publisher confirms to the delivery exchange, first recipient's key as routing key and the others
in a ``BCC`` header, which puts a copy in each recipient's inbox and one in the bench's copy
counter. The peers read the recipients from the envelope (the bench workload addresses
organisations only); they ack after the confirm. What the hub does, minus its rules.
"""

import asyncio
import sys
from collections.abc import Sequence
from typing import Any

from liaison.schemas.wire import DELIVERY_EXCHANGE, delivery_key

PREFETCH = 256


def route(recipients: Sequence[str], precedence: str) -> tuple[str, dict[str, Any]]:
    """The routing key and headers that deliver to every ``org:`` recipient, as the hub does."""
    flash = precedence == "flash"
    keys = [delivery_key(r.removeprefix("org:"), flash=flash) for r in recipients]
    return keys[0], ({"BCC": keys[1:]} if len(keys) > 1 else {})


async def plain(url: str, src: str) -> None:
    """An aio-pika forwarder written the way its documentation shows."""
    import aio_pika

    from liaison.schemas.envelope import decode_envelope

    connection = await aio_pika.connect(url)
    channel = await connection.channel(publisher_confirms=True)
    await channel.set_qos(prefetch_count=PREFETCH)
    queue = await channel.get_queue(src, ensure=False)
    exchange = await channel.get_exchange(DELIVERY_EXCHANGE, ensure=False)

    async def forward(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        envelope = decode_envelope(message.body)
        key, headers = route(envelope.recipients, envelope.precedence)
        await exchange.publish(
            aio_pika.Message(
                message.body,
                content_type="application/json",
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                message_id=f"{envelope.sender}/{envelope.distribution_id}",
                type=envelope.body.__struct_config__.tag,  # type: ignore[arg-type]
                headers=headers,
            ),
            routing_key=key,
        )
        await message.ack()

    await queue.consume(forward)
    print("ready", flush=True)
    await asyncio.Future()


def _faststream_app(url: str, src: str) -> Any:
    from faststream.rabbit import (
        Channel,
        ExchangeType,
        QueueType,
        RabbitBroker,
        RabbitExchange,
        RabbitQueue,
    )

    from bench.pydantic_model import envelope_model

    # The whole contract as pydantic models: every body type, discriminated on `type`.
    EnvelopeModel = envelope_model()

    broker = RabbitBroker(url, log_level=30)
    source = RabbitQueue(src, queue_type=QueueType.QUORUM, durable=True, declare=False)
    delivery = RabbitExchange(
        DELIVERY_EXCHANGE, type=ExchangeType.TOPIC, durable=True, declare=False
    )
    publisher = broker.publisher(exchange=delivery, persistent=True)

    # The routing key depends on the message, so the handler publishes itself (a decorator
    # publisher's routing key is fixed); FastStream awaits the confirm before it acks.
    @broker.subscriber(source, channel=Channel(prefetch_count=PREFETCH))
    async def forward(envelope: EnvelopeModel) -> None:  # type: ignore[valid-type]
        key, headers = route(envelope.recipients, envelope.precedence)  # type: ignore[attr-defined]
        await publisher.publish(envelope, routing_key=key, headers=headers)

    return broker


async def faststream(url: str, src: str) -> None:
    """FastStream's RabbitBroker: a subscriber that sends each message on through a publisher."""
    broker = _faststream_app(url, src)
    await broker.start()
    print("ready", flush=True)
    await asyncio.Future()


def main(argv: list[str]) -> None:
    kind, url, src = argv
    runner = {"plain": plain, "faststream": faststream}[kind]
    asyncio.run(runner(url, src))


if __name__ == "__main__":
    main(sys.argv[1:])
