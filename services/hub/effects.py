"""What one message causes, planned before anything is done: the hub's effects as data.

    plan(verdict, handled, ...) -> Effects
        publishes   each with exchange, routing key, properties and body, in publish order
        remember    what the hub's memory records once every publish is confirmed
        (the ack)   every plan ends with acking the ingress message, after the two above

``plan`` is pure (no I/O, no clock of its own); ``carry_out`` (``publish_all``, then
``settle``) does a plan through a ``Publisher`` and the hub's memory. Both are unit-tested with a
fake publisher behind the outbox's interface (tests/hub/test_effects.py).
"""

import asyncio
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import NamedTuple, Protocol

from pamqp import commands as spec

from liaison.common.hub_key import HubKey
from liaison.hub.decisions import Delivery, Refusal, Verdict
from liaison.hub.memory import DeliveryMemory, Handled
from liaison.hub.properties import (
    Properties,
    dead_letter_properties,
    delivery_properties,
    report_properties,
)
from liaison.hub.reports import error_report, report_id
from liaison.schemas.wire import (
    DEAD_LETTER_EXCHANGE,
    DELIVERY_EXCHANGE,
    HEADER_POSSIBLE_REPEAT,
    HEADER_PRECEDENCE,
    HEADER_SENDER,
    HEADER_SIGNATURE,
    HEADER_TYPE,
    delivery_key,
)


class Publisher(Protocol):
    """Where planned publishes go: the outbox on a broker channel, or a fake in tests."""

    def publish(
        self, body: bytes, *, exchange: str, routing_key: str, properties: Properties
    ) -> Awaitable[object]:
        """Publish one message; the awaitable completes on the broker's confirm."""
        ...


class Publish(NamedTuple):
    """One message to publish."""

    exchange: str
    routing_key: str
    properties: Properties
    body: bytes


class Memo(NamedTuple):
    """What the hub's memory records after the publishes are confirmed."""

    key: str
    handled: Handled
    recipients: Sequence[str] = ()


@dataclass(slots=True)
class Effects:
    """Everything one message causes; the ingress ack follows the publishes and the memo."""

    #: For the decision's log line and metrics: delivered, partial, refused or duplicate.
    outcome: str
    publishes: list[Publish]
    remember: Memo | None


_NOTHING = Effects("duplicate", [], None)


def memory_key(verdict: Verdict, original: bytes) -> str:
    """The key the hub's memory holds ``verdict`` under: the delivered message id, or the
    refusal's report id (both the same on every redelivery of the message)."""
    if isinstance(verdict, Delivery):
        return verdict.message_id
    return report_id(verdict, original)


def plan(
    verdict: Verdict,
    handled: Handled | None,
    *,
    key: str,
    original: bytes,
    properties: spec.Basic.Properties,
    routing_key: str,
    now: float,
    hub_key: HubKey | None = None,
    redelivered: bool = False,
) -> Effects:
    """The effects of ``verdict`` on the message ``original`` (received with ``properties``
    under ``routing_key``), given what the memory recalls of ``key``; ``now`` is POSIX time.
    Error reports are signed with ``hub_key`` when there is one. A ``redelivered`` message
    the memory does not know may have been published by a hub that stopped before its record:
    every publish then says it is a possible repeat."""
    if handled is not None:
        # Handled before (a republished id, or a redelivery): everything it caused was
        # confirmed then, so only the ack is left.
        return _NOTHING
    if isinstance(verdict, Delivery):
        publishes = [deliver(verdict, original, now, possible_repeat=redelivered)]
        outcome = "delivered"
        for left_out in (verdict.partial, verdict.unrouted):
            if left_out is not None:
                publishes.append(
                    answer(left_out, original, now, hub_key=hub_key, possible_repeat=redelivered)
                )
                outcome = "partial"
        return Effects(outcome, publishes, Memo(key, Handled.DELIVERED, verdict.recipients))
    publishes = [
        Publish(
            DEAD_LETTER_EXCHANGE,
            routing_key,
            dead_letter_properties(properties, verdict, now=now, possible_repeat=redelivered),
            original,
        )
    ]
    if verdict.reply_to is not None:
        publishes.append(
            answer(verdict, original, now, report=key, hub_key=hub_key, possible_repeat=redelivered)
        )
    return Effects("refused", publishes, Memo(key, Handled.REFUSED))


def deliver(
    delivery: Delivery, original: bytes, now: float, *, possible_repeat: bool = False
) -> Publish:
    """The one publish that reaches every recipient's inbox."""
    recipients = delivery.recipients
    # A routine copy's routing key is the organisation id itself (delivery_key).
    keys = [delivery_key(org, flash=True) for org in recipients] if delivery.flash else recipients
    headers: dict[str, str | list[str]] = {
        HEADER_SENDER: delivery.sender,
        HEADER_TYPE: delivery.message_type,
        HEADER_PRECEDENCE: delivery.precedence,
    }
    if delivery.signature is not None:
        # Forwarded unchanged with the unchanged body: each recipient verifies end to end.
        headers[HEADER_SIGNATURE] = delivery.signature
    if possible_repeat:
        headers[HEADER_POSSIBLE_REPEAT] = "true"
    if len(keys) > 1:
        # Sender-selected distribution: one publish reaches every inbox named here, and the
        # broker strips the header before delivery.
        headers["BCC"] = keys[1:]
    properties = delivery_properties(
        message_id=delivery.message_id,
        message_type=delivery.message_type,
        timestamp=int(now),
        expiration=None if delivery.expiration_ms is None else str(delivery.expiration_ms),
        headers=headers,
    )
    return Publish(DELIVERY_EXCHANGE, keys[0], properties, original)


def answer(
    refusal: Refusal,
    original: bytes,
    now: float,
    *,
    report: str | None = None,
    hub_key: HubKey | None = None,
    possible_repeat: bool = False,
) -> Publish:
    """The error report to the refused sender (``refusal.reply_to``), signed by the hub."""
    assert refusal.reply_to is not None
    report = report or report_id(refusal, original)
    stamp = datetime.fromtimestamp(now, UTC)
    body = error_report(refusal, report=report, now=stamp)
    signature = None if hub_key is None else hub_key.sign(body)
    return Publish(
        DELIVERY_EXCHANGE,
        delivery_key(refusal.reply_to, flash=False),
        report_properties(report, now=stamp, signature=signature, possible_repeat=possible_repeat),
        body,
    )


async def carry_out(effects: Effects, publisher: Publisher, memory: DeliveryMemory) -> None:
    """Publish everything, await every confirm, then record the memo."""
    await settle(effects, publish_all(effects, publisher), memory)


def publish_all(effects: Effects, publisher: Publisher) -> Awaitable[object] | None:
    """Hand every planned publish to the publisher at once, in plan order; their confirms.

    All are published before any confirm is awaited, so they share one round trip.
    """
    publishes = effects.publishes
    if len(publishes) == 1:  # the common case, kept cheap: one delivery
        exchange, routing_key, properties, body = publishes[0]
        return publisher.publish(
            body, exchange=exchange, routing_key=routing_key, properties=properties
        )
    if not publishes:
        return None
    return asyncio.gather(
        *(
            publisher.publish(
                p.body, exchange=p.exchange, routing_key=p.routing_key, properties=p.properties
            )
            for p in publishes
        )
    )


async def settle(
    effects: Effects, confirms: Awaitable[object] | None, memory: DeliveryMemory
) -> None:
    """Await the confirms, then record the memo (never before: a message the broker did not
    take must be handled again when it is redelivered)."""
    if confirms is not None:
        await confirms
    if effects.remember is not None:
        await memory.remember(*effects.remember)
