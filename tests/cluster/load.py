"""Load for cluster tests: partners that publish and read through a list of nodes.

Each sender and recipient holds one connection at a time and moves to the next node of its list
when its node goes away, as a partner's client should (the SDK's own failover is not used here).
A sender publishes its messages one after another, each waiting for its confirm, and sends the
same message again after a failure: at least once, in order. Every arrival is timed.
"""

import asyncio
import contextlib
import time
from collections import defaultdict
from dataclasses import dataclass, field

import aiormq
import aiormq.abc
import msgspec
from pamqp.commands import Basic

from liaison.schemas.wire import HEADER_SIGNATURE, INGRESS_EXCHANGE, inbox_queue
from tests.hub.support import demo_signature, envelope

#: What a dropped node looks like to a client: refused, reset, closed, or silent.
LOST = (
    aiormq.exceptions.AMQPError,
    aiormq.exceptions.ChannelInvalidStateError,
    ConnectionError,
    OSError,
    TimeoutError,
)


@dataclass
class SenderLog:
    """What one sender published: distribution ids in order, and when each was first tried."""

    org: str
    confirmed: list[str] = field(default_factory=list)
    first_tried: dict[str, float] = field(default_factory=dict)
    reconnects: int = 0


@dataclass
class RecipientLog:
    """Every delivery one recipient got, in arrival order, with its arrival time, and which of
    its own messages the hub answered with an error report (distribution id -> code)."""

    org: str
    arrivals: list[tuple[str, float]] = field(default_factory=list)
    reports: dict[str, int] = field(default_factory=dict)
    reconnects: int = 0


async def run_sender(
    log: SenderLog,
    account: str,
    urls: list[str],
    recipients: list[str],
    stop: asyncio.Event,
    *,
    first: int,
    pace: float,
) -> None:
    """Publish envelopes to ``recipients`` until ``stop``, moving node on any loss."""
    node = first
    pending: tuple[str, bytes] | None = None
    while not stop.is_set():
        connection: aiormq.abc.AbstractConnection | None = None
        try:
            connection = await asyncio.wait_for(aiormq.connect(urls[node % len(urls)]), 5)
            channel = await connection.channel(publisher_confirms=True)
            while not stop.is_set():
                if pending is None:
                    doc = envelope(log.org, recipients)
                    pending = (doc["distribution_id"], msgspec.json.encode(doc))
                distribution_id, body = pending
                log.first_tried.setdefault(distribution_id, time.monotonic())
                # Signed as the sample directory requires (demo keys).
                properties = Basic.Properties(
                    content_type="application/json",
                    user_id=account,
                    delivery_mode=2,
                    headers={HEADER_SIGNATURE: demo_signature(log.org, body)},
                )
                confirm = await asyncio.wait_for(
                    channel.basic_publish(
                        body, exchange=INGRESS_EXCHANGE, routing_key=log.org, properties=properties
                    ),
                    15,
                )
                if isinstance(confirm, Basic.Ack):
                    log.confirmed.append(distribution_id)
                    pending = None
                await asyncio.sleep(pace)
        except LOST:
            node += 1
            log.reconnects += 1
            await asyncio.sleep(0.2)
        finally:
            if connection is not None and not connection.is_closed:
                with contextlib.suppress(*LOST):
                    await asyncio.wait_for(connection.close(), 2)


async def run_recipient(
    log: RecipientLog, urls: list[str], stop: asyncio.Event, *, first: int
) -> None:
    """Read the recipient's inbox until ``stop``, acking each delivery, moving node on loss."""
    node = first

    async def on_message(message: aiormq.abc.DeliveredMessage) -> None:
        doc = msgspec.json.decode(message.body)
        body = doc.get("body") or {}
        if body.get("type") == "error.report":
            log.reports[body["ref_distribution_id"]] = body["code"]
        else:
            log.arrivals.append((doc["distribution_id"], time.monotonic()))
        await message.channel.basic_ack(message.delivery_tag)  # type: ignore[arg-type]

    while not stop.is_set():
        connection: aiormq.abc.AbstractConnection | None = None
        try:
            connection = await asyncio.wait_for(aiormq.connect(urls[node % len(urls)]), 5)
            channel = await connection.channel()
            await channel.basic_qos(prefetch_count=100)
            await channel.basic_consume(inbox_queue(log.org), on_message, no_ack=False)
            stopping = asyncio.ensure_future(stop.wait())
            try:
                await asyncio.wait(
                    [connection.closing, channel.closing, stopping],
                    return_when=asyncio.FIRST_COMPLETED,
                )
            finally:
                stopping.cancel()
            if not stop.is_set():
                raise ConnectionError("recipient lost its node")
        except LOST:
            node += 1
            log.reconnects += 1
            await asyncio.sleep(0.2)
        finally:
            if connection is not None and not connection.is_closed:
                with contextlib.suppress(*LOST):
                    await asyncio.wait_for(connection.close(), 2)


@dataclass(frozen=True)
class Tally:
    """A recipient's view of every sender's confirmed messages."""

    #: Confirmed, never arrived, and its sender was told nothing: silently lost.
    lost: int
    #: Confirmed, never arrived, and the hub answered its sender with an error report.
    refused: int
    #: Answered to its sender as not delivered, and arrived all the same.
    refused_yet_arrived: int
    duplicates: int
    #: A first arrival its sender had published before one that already arrived (messages
    #: answered as refused left out: the sender was told they failed, their order is moot).
    inversions: int


def tally(
    recipient: RecipientLog, senders: list[SenderLog], reports: dict[str, int] | None = None
) -> Tally:
    """Lost, refused, repeated and out-of-order arrivals of every sender's confirmed messages."""
    reports = reports or {}
    position = {d: (s.org, i) for s in senders for i, d in enumerate(s.confirmed)}
    seen: set[str] = set()
    duplicates = inversions = 0
    highest: dict[str, int] = defaultdict(lambda: -1)
    for distribution_id, _ in recipient.arrivals:
        if distribution_id in seen:
            duplicates += 1
            continue
        seen.add(distribution_id)
        if distribution_id not in position or distribution_id in reports:
            # Unconfirmed (the sender's node went before its confirm) or answered as refused.
            continue
        org, index = position[distribution_id]
        if index < highest[org]:
            inversions += 1
        highest[org] = max(highest[org], index)
    missing = [d for d in position if d not in seen]
    refused = sum(1 for d in missing if d in reports)
    return Tally(
        lost=len(missing) - refused,
        refused=refused,
        refused_yet_arrived=sum(1 for d in position if d in seen and d in reports),
        duplicates=duplicates,
        inversions=inversions,
    )


def routed_again_after(
    killed_at: float, recipients: list[RecipientLog], senders: list[SenderLog]
) -> float | None:
    """Seconds from ``killed_at`` to the first arrival of a message first tried after it."""
    tried = {d: t for s in senders for d, t in s.first_tried.items()}
    after = [
        arrived - killed_at
        for r in recipients
        for d, arrived in r.arrivals
        if tried.get(d, 0.0) > killed_at
    ]
    return min(after, default=None)


def everyone_again_after(
    killed_at: float, recipients: list[RecipientLog], senders: list[SenderLog]
) -> float | None:
    """Seconds from ``killed_at`` until a message first tried after it had reached every
    recipient (a copy can reach one inbox while another's queue still refuses it)."""
    tried = {d: t for s in senders for d, t in s.first_tried.items() if t > killed_at}
    firsts: list[dict[str, float]] = []
    for r in recipients:
        first: dict[str, float] = {}
        for d, arrived in r.arrivals:
            if d in tried:
                first.setdefault(d, arrived)
        firsts.append(first)
    everywhere = set(tried).intersection(*firsts) if firsts else set()
    return min((max(f[d] for f in firsts) - killed_at for d in everywhere), default=None)
