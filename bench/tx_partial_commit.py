"""Does a quorum queue keep the publishes of a channel that dies just after sending them?

``python -m bench.tx_partial_commit [--mode tx|close|relay] [--messages 300] [--rounds 12]
[--pause-ms 3] [--queue-type quorum|classic]``

Each round a child process publishes ``--messages`` messages to a fresh queue (quorum, or
classic with ``--queue-type classic``: the single-node transaction profile), then
either commits them in one transaction (``tx``) or closes its channel at once without
publisher confirms (``close``), and SIGKILLs itself ``--pause-ms`` later; the parent counts
what the queue holds. ``relay`` is what a hub killed mid-commit does: the child takes every
message of a source queue and, in one transaction, publishes a copy of each and acks them all.

On RabbitMQ 3.10.8 some rounds keep only part of what was published: the queue's leader
appends enqueues at low priority, in chunks, and handles the channel's ``DOWN`` first, after
which the rest arrive out of sequence and are dropped (``rabbit_fifo``). A transaction is
then partly applied, while its acks (normal priority) are not held back. Figures:
docs/operations.md, "Repeats after a crash".
"""

import argparse
import asyncio
import os
import secrets
import signal
import subprocess
import sys

import aiormq
from aiormq.abc import ChannelFrame
from pamqp import commands as spec

URL = "amqp://guest:guest@127.0.0.1:5672/"


async def publish_and_die(url: str, queue: str, messages: int, mode: str, pause: float) -> None:
    """The child: publish, commit or close, then die as a SIGKILLed process does."""
    connection = await aiormq.connect(url)
    channel = await connection.channel(publisher_confirms=False)
    if mode == "tx":
        await channel.tx_select()
    properties = spec.Basic.Properties(delivery_mode=2)
    for _ in range(messages):
        await channel.basic_publish(b"x" * 100, routing_key=queue, properties=properties)
    if mode == "tx":
        # Written, not awaited: the process dies before the broker can answer.
        await channel.write_queue.put(ChannelFrame.marshall(channel.number, [spec.Tx.Commit()]))
    else:
        await channel.close()
    await asyncio.sleep(pause)
    os.kill(os.getpid(), signal.SIGKILL)


async def relay_and_die(url: str, queue: str, messages: int, pause: float) -> None:
    """The child of ``relay`` (what the hub does): take every message of ``queue``.in, publish
    a copy of each to ``queue`` and ack them all in one transaction, commit, then die."""
    connection = await aiormq.connect(url)
    channel = await connection.channel(publisher_confirms=False)
    await channel.basic_qos(prefetch_count=messages)
    await channel.tx_select()
    received: asyncio.Queue[int] = asyncio.Queue()

    async def take(message: aiormq.abc.DeliveredMessage) -> None:
        assert message.delivery_tag is not None
        received.put_nowait(message.delivery_tag)

    await channel.basic_consume(f"{queue}.in", take)
    properties = spec.Basic.Properties(delivery_mode=2)
    for _ in range(messages):
        tag = await received.get()
        await channel.basic_publish(b"x" * 100, routing_key=queue, properties=properties)
    frames = [spec.Basic.Ack(delivery_tag=tag, multiple=True), spec.Tx.Commit()]
    await channel.write_queue.put(ChannelFrame.marshall(channel.number, frames))
    await asyncio.sleep(pause)
    os.kill(os.getpid(), signal.SIGKILL)


async def rounds(
    url: str, messages: int, count: int, mode: str, pause_ms: float, queue_type: str = "quorum"
) -> int:
    """Run ``count`` rounds on queues of ``queue_type``; how many kept only part of what was
    published."""
    queue = f"bench-tx-partial-{secrets.token_hex(4)}"
    connection = await aiormq.connect(url)
    channel = await connection.channel()
    arguments = {"x-queue-type": queue_type}
    await channel.queue_declare(queue, durable=True, arguments=arguments)
    await channel.queue_declare(f"{queue}.in", durable=True, arguments=arguments)
    partial = 0
    try:
        for number in range(count):
            if mode == "relay":
                for _ in range(messages):
                    await channel.basic_publish(b"in", routing_key=f"{queue}.in")
            child = [sys.executable, "-m", "bench.tx_partial_commit", "--child", queue]
            child += ["--url", url, "--messages", str(messages), "--mode", mode]
            child += ["--pause-ms", str(pause_ms)]
            await asyncio.to_thread(subprocess.run, child, check=False)
            await asyncio.sleep(1.0)
            held = (await channel.queue_declare(queue, passive=True)).message_count or 0
            partial += 0 < held < messages
            line = f"round {number}: published {messages} ({mode}), the queue holds {held}"
            if mode == "relay":
                # What the commit did not ack went back to the source queue.
                back = (await channel.queue_declare(f"{queue}.in", passive=True)).message_count
                line += f", {back} not acked; {messages - held - (back or 0)} acked without a copy"
                await channel.queue_purge(f"{queue}.in")
            print(line, flush=True)
            await channel.queue_purge(queue)
    finally:
        await channel.queue_delete(queue)
        await channel.queue_delete(f"{queue}.in")
        await connection.close()
    print(
        f"{mode} ({queue_type}): {partial} of {count} rounds kept only part of what was published"
    )
    return partial


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=URL)
    parser.add_argument("--mode", choices=["tx", "close", "relay"], default="tx")
    parser.add_argument("--messages", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--pause-ms", type=float, default=3.0)
    parser.add_argument("--queue-type", choices=["quorum", "classic"], default="quorum")
    parser.add_argument("--child", metavar="QUEUE", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child and args.mode == "relay":
        asyncio.run(relay_and_die(args.url, args.child, args.messages, args.pause_ms / 1000))
    elif args.child:
        asyncio.run(
            publish_and_die(args.url, args.child, args.messages, args.mode, args.pause_ms / 1000)
        )
    else:
        asyncio.run(
            rounds(args.url, args.messages, args.rounds, args.mode, args.pause_ms, args.queue_type)
        )


if __name__ == "__main__":
    main()
