"""The Python peers the hub is measured against, each run as its own process until killed.

    python -m bench.peers plain URL SRC DST       aio-pika, msgspec Envelope, await each confirm
    python -m bench.peers faststream URL SRC DST  FastStream subscriber -> publisher, pydantic

Both consume a quorum queue with prefetch 256, publish one persistent message per input to a
destination quorum queue with publisher confirms, and ack after the confirm: what the hub does
for one recipient, minus its rules.
"""

import asyncio
import sys
from typing import Any

PREFETCH = 256


async def plain(url: str, src: str, dst: str) -> None:
    """An aio-pika forwarder written the way its documentation shows."""
    import aio_pika

    from schemas.envelope import decode_envelope

    connection = await aio_pika.connect(url)
    channel = await connection.channel(publisher_confirms=True)
    await channel.set_qos(prefetch_count=PREFETCH)
    queue = await channel.get_queue(src, ensure=False)
    exchange = channel.default_exchange

    async def forward(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        envelope = decode_envelope(message.body)
        await exchange.publish(
            aio_pika.Message(
                message.body,
                content_type="application/json",
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                message_id=f"{envelope.sender}/{envelope.distribution_id}",
                type=envelope.body.__struct_config__.tag,  # type: ignore[arg-type]
            ),
            routing_key=dst,
        )
        await message.ack()

    await queue.consume(forward)
    print("ready", flush=True)
    await asyncio.Future()


def _faststream_app(url: str, src: str, dst: str) -> Any:
    from faststream.rabbit import Channel, QueueType, RabbitBroker, RabbitQueue

    from bench.pydantic_model import envelope_model

    # The whole contract as pydantic models: every body type, discriminated on `type`.
    EnvelopeModel = envelope_model()

    broker = RabbitBroker(url, log_level=30)
    source = RabbitQueue(src, queue_type=QueueType.QUORUM, durable=True, declare=False)
    target = RabbitQueue(dst, queue_type=QueueType.QUORUM, durable=True, declare=False)
    publisher = broker.publisher(target, persistent=True)

    @broker.subscriber(source, channel=Channel(prefetch_count=PREFETCH))
    @publisher
    async def forward(envelope: EnvelopeModel) -> EnvelopeModel:  # type: ignore[valid-type]
        return envelope

    return broker


async def faststream(url: str, src: str, dst: str) -> None:
    """FastStream's RabbitBroker: a subscriber whose return value its publisher sends on."""
    broker = _faststream_app(url, src, dst)
    await broker.start()
    print("ready", flush=True)
    await asyncio.Future()


def main(argv: list[str]) -> None:
    kind, url, src, dst = argv
    runner = {"plain": plain, "faststream": faststream}[kind]
    asyncio.run(runner(url, src, dst))


if __name__ == "__main__":
    main(sys.argv[1:])
