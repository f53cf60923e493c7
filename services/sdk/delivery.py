"""One message taken from an inbox: the validated envelope, and how to settle and answer it."""

import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta
from typing import Protocol

import aio_pika.abc
import aio_pika.exceptions
import aiormq.exceptions

from liaison.schemas.catalogue import tag_of
from liaison.schemas.envelope import Body, Envelope
from liaison.schemas.messages.system import Ack, AckLevel, ErrorReport
from liaison.schemas.types import Classification, Precedence
from liaison.schemas.wire import HEADER_POSSIBLE_REPEAT
from liaison.sdk.compose import enum_value
from liaison.sdk.errors import NotAnswerable, SettleFailed
from liaison.sdk.refusal import Refusal
from liaison.sdk.signing import SignatureCheck

log = logging.getLogger("liaison.sdk.delivery")

#: What settling a message on a channel that closed meanwhile raises; the broker redelivers it.
SETTLE_LOST = (
    aiormq.exceptions.AMQPError,
    aiormq.exceptions.ChannelInvalidStateError,
    aio_pika.exceptions.MessageProcessError,
    ConnectionError,
    RuntimeError,
)


class Replier(Protocol):
    """What a delivery needs to answer: the client's ``send``."""

    def __call__(
        self,
        body: Body,
        *,
        recipients: Sequence[str],
        in_reply_to: str | None,
        incident_id: str | None,
        precedence: Precedence | str,
        classification: Classification | str,
        ttl: timedelta | None,
    ) -> Awaitable[str]:
        """Send ``body``; return its distribution id once the broker confirmed it."""
        ...


class Delivery:
    """A delivered message. Settle it exactly once: ``ack()`` or ``reject(reason)``.

    Until it is settled the broker holds it for this consumer; if the connection drops first,
    the broker redelivers it and the inbox settles that copy as you settle this one.
    """

    __slots__ = (
        "_envelope",
        "_flash",
        "_message",
        "_message_id",
        "_on_settled",
        "_reply",
        "_settled",
        "_signature",
    )

    def __init__(
        self,
        envelope: Envelope,
        message: aio_pika.abc.AbstractIncomingMessage,
        *,
        message_id: str,
        flash: bool,
        reply: Replier,
        on_settled: Callable[[str, bool], Awaitable[None]],
        signature: SignatureCheck | None = None,
    ) -> None:
        self._signature = signature or SignatureCheck(None, None, False, "not checked")
        self._envelope = envelope
        self._message_id = message_id
        self._flash = flash
        self._message = message
        self._reply = reply
        self._on_settled = on_settled
        self._settled = False

    def __repr__(self) -> str:
        return f"<Delivery {self.message_id} {self.type} flash={self.flash}>"

    @property
    def envelope(self) -> Envelope:
        """The whole validated envelope: ids, times, recipients, precedence, the body."""
        return self._envelope

    @property
    def message_id(self) -> str:
        """``<sender>/<distribution_id>``: the same on every copy, the key of the dedupe."""
        return self._message_id

    @property
    def flash(self) -> bool:
        """Whether it came from the urgent ``inbox.<org>.flash`` queue."""
        return self._flash

    @property
    def sender(self) -> str:
        """The organisation that sent it (``liaison`` for the hub's own error reports)."""
        return self._envelope.sender

    @property
    def possible_repeat(self) -> bool:
        """Whether the hub marked it as possibly repeating an earlier copy (a hub stopped after
        publishing it and before recording that): the inbox already drops a copy whose
        ``message_id`` it settled in this process, or in any process sharing its
        ``dedupe_file``; an application that keeps its own record of processed ids checks this
        id against it."""
        return (self._message.headers or {}).get(HEADER_POSSIBLE_REPEAT) == "true"

    @property
    def verified(self) -> bool:
        """Whether the signature verified against the trusted keys: the sender's own key (the
        hub's for its reports), valid when delivered, over these exact bytes."""
        return self._signature.verified

    @property
    def signed_by(self) -> str | None:
        """The organisation whose key signed it, once verified; None otherwise."""
        return self._signature.signed_by

    @property
    def signature_kid(self) -> str | None:
        """The key id the signature names (verified only when ``verified``)."""
        return self._signature.kid

    @property
    def signature_problem(self) -> str | None:
        """Why ``verified`` is False: no signature, no trusted keys, or what failed."""
        return self._signature.problem

    @property
    def body(self) -> Body:
        """The typed body, e.g. a ``HazardAlert``: ``match delivery.body: case HazardAlert():``."""
        return self._envelope.body

    @property
    def type(self) -> str:
        """The wire type name, e.g. ``hazard.alert``."""
        return tag_of(type(self._envelope.body))

    @property
    def redelivered(self) -> bool:
        """The broker delivered this before (to this or an earlier connection)."""
        return bool(self._message.redelivered)

    @property
    def error_report(self) -> Refusal | None:
        """The hub's refusal of one of your messages, when this is an ``error.report``."""
        body = self._envelope.body
        return Refusal.from_report(body) if isinstance(body, ErrorReport) else None

    @property
    def acknowledgement(self) -> Ack | None:
        """A partner's receipt for one of your messages, when this is an ``ack``."""
        body = self._envelope.body
        return body if isinstance(body, Ack) else None

    @property
    def settled(self) -> bool:
        """Whether ``ack`` or ``reject`` was called."""
        return self._settled

    async def ack(self) -> None:
        """Tell the broker the message is handled; it is removed from the inbox.

        If the connection dropped since it was delivered, this still returns normally: the
        broker redelivers it, and the inbox acknowledges that copy without handing it out.
        """
        await self._settle(reject=False)

    async def reject(self, reason: str) -> None:
        """Refuse the message: the broker moves it to the dead-letter queue (no requeue).

        ``reason`` is logged here; to tell the sender too, send
        ``receipt(AckLevel.REJECTED, note=reason)`` as well.
        """
        log.warning("rejected %s (%s): %s", self.message_id, self.type, reason[:500])
        await self._settle(reject=True)

    async def reply(
        self,
        body: Body,
        *,
        precedence: Precedence | str = Precedence.ROUTINE,
        classification: Classification | str | None = None,
        ttl: timedelta | None = None,
    ) -> str:
        """Send ``body`` back to the sender, as a reply; returns its distribution id.

        Sets the recipient (``org:<sender>``), ``in_reply_to`` (this distribution id) and the
        incident reference; the classification defaults to this message's.
        """
        self._answerable("a reply")
        return await self._reply(
            body,
            recipients=[f"org:{self._envelope.sender}"],
            in_reply_to=self._envelope.distribution_id,
            incident_id=self._envelope.incident_id,
            precedence=precedence,
            classification=self._envelope.classification
            if classification is None
            else classification,
            ttl=ttl,
        )

    async def receipt(self, level: AckLevel | str, *, note: str | None = None) -> str:
        """Send an ``ack`` of ``level`` to the sender; returns the receipt's distribution id.

        ``level`` is an ``AckLevel``: received, accepted, processed or rejected.
        """
        self._answerable("a receipt")
        ack = Ack(
            ref_distribution_id=self._envelope.distribution_id,
            ref_sender=self._envelope.sender,
            level=enum_value(AckLevel, level, "$.body.level"),
            note=note,
        )
        # A receipt says nothing of the content, so it goes unclassified whatever it answers.
        return await self.reply(ack, classification=Classification.UNCLASSIFIED)

    def _answerable(self, what: str) -> None:
        if isinstance(self._envelope.body, (ErrorReport, Ack)):
            raise NotAnswerable(f"{self.type} messages take no {what.split()[-1]}")

    async def _settle(self, *, reject: bool) -> None:
        if self._settled:
            raise SettleFailed(f"{self.message_id} is already settled")
        self._settled = True
        try:
            if reject:
                await self._message.reject(requeue=False)
            else:
                await self._message.ack()
        except SETTLE_LOST as exc:
            # The connection dropped since it was delivered. The broker redelivers it, and the
            # inbox settles that copy the same way without handing it out again.
            log.info("%s: its channel closed before it was settled (%s)", self.message_id, exc)
        finally:
            await self._on_settled(self.message_id, reject)
