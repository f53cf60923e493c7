"""One message taken from an inbox: the validated envelope, and how to settle and answer it."""

import logging
from collections.abc import Awaitable, Callable
from typing import Protocol

import aio_pika.abc
import aio_pika.exceptions
import aiormq.exceptions

from liaison.schemas.catalogue import tag_of
from liaison.schemas.envelope import Body, Envelope
from liaison.schemas.messages.system import Ack, AckLevel, ErrorReport
from liaison.sdk.errors import NotAnswerable, SettleFailed
from liaison.sdk.refusal import Refusal

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
    """What a delivery needs to send a receipt: the client's ``send``."""

    def __call__(
        self, body: Body, *, recipients: list[str], in_reply_to: str | None
    ) -> Awaitable[str]:
        """Send ``body``; return its distribution id once the broker confirmed it."""
        ...


class Delivery:
    """A delivered message. Settle it exactly once: ``ack()`` or ``reject(reason)``.

    Until it is settled the broker holds it for this consumer; if the connection drops first,
    the broker redelivers it (``redelivered`` is then true on the copy).
    """

    __slots__ = ("_message", "_on_settled", "_reply", "_settled", "envelope", "flash", "message_id")

    def __init__(
        self,
        envelope: Envelope,
        message: aio_pika.abc.AbstractIncomingMessage,
        *,
        message_id: str,
        flash: bool,
        reply: Replier,
        on_settled: Callable[[str, bool], Awaitable[None]],
    ) -> None:
        self.envelope = envelope
        self.message_id = message_id
        #: Whether it came from the urgent ``inbox.<org>.flash`` queue.
        self.flash = flash
        self._message = message
        self._reply = reply
        self._on_settled = on_settled
        self._settled = False

    def __repr__(self) -> str:
        return f"<Delivery {self.message_id} {self.type} flash={self.flash}>"

    @property
    def sender(self) -> str:
        """The organisation that sent it (``liaison`` for the hub's own error reports)."""
        return self.envelope.sender

    @property
    def body(self) -> Body:
        """The typed body."""
        return self.envelope.body

    @property
    def type(self) -> str:
        """The wire type name, e.g. ``hazard.alert``."""
        return tag_of(type(self.envelope.body))

    @property
    def redelivered(self) -> bool:
        """The broker delivered this before (to this or an earlier connection)."""
        return bool(self._message.redelivered)

    @property
    def error_report(self) -> Refusal | None:
        """The hub's refusal of one of your messages, when this is an ``error.report``."""
        body = self.envelope.body
        return Refusal.from_report(body) if isinstance(body, ErrorReport) else None

    @property
    def acknowledgement(self) -> Ack | None:
        """A partner's receipt for one of your messages, when this is an ``ack``."""
        body = self.envelope.body
        return body if isinstance(body, Ack) else None

    @property
    def settled(self) -> bool:
        """Whether ``ack`` or ``reject`` was called."""
        return self._settled

    async def ack(self) -> None:
        """Tell the broker the message is handled; it is removed from the inbox."""
        await self._settle(reject=False)

    async def reject(self, reason: str) -> None:
        """Refuse the message: the broker moves it to the dead-letter queue (no requeue).

        ``reason`` is logged here; to tell the sender too, send
        ``receipt(AckLevel.REJECTED, note=reason)`` as well.
        """
        log.warning("rejected %s (%s): %s", self.message_id, self.type, reason[:500])
        await self._settle(reject=True)

    async def receipt(self, level: AckLevel | str, *, note: str | None = None) -> str:
        """Send an ``ack`` of ``level`` to the sender; returns the receipt's distribution id."""
        if isinstance(self.envelope.body, (ErrorReport, Ack)):
            raise NotAnswerable(f"{self.type} messages take no receipt")
        ack = Ack(
            ref_distribution_id=self.envelope.distribution_id,
            ref_sender=self.envelope.sender,
            level=AckLevel(level),
            note=note,
        )
        return await self._reply(
            ack,
            recipients=[f"org:{self.envelope.sender}"],
            in_reply_to=self.envelope.distribution_id,
        )

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
