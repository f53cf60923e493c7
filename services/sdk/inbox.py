"""Reading an organisation's two inboxes as one stream, flash messages first.

Two consumers, one per queue and each on its own channel with its own prefetch, fill two
buffers; the iterator always takes from the flash buffer while it holds anything. The
guarantee: whenever a flash message and a regular message are both waiting in the SDK, the
flash one is handed out first, and a flash message is never stuck behind unacknowledged regular
ones (its consumer has its own prefetch). A flash message that reaches the broker after a
regular one was handed out waits only for the caller to ask for the next delivery.

Each raw message is checked before it is handed out:
- stale (its channel closed meanwhile): dropped, the broker redelivers it;
- undecodable or breaking the contract: rejected without requeue (so the broker dead-letters
  it) and logged, never raised;
- a message id settled recently or being handled now: acknowledged and skipped (duplicate).
"""

import asyncio
import collections
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Final

import aio_pika
import aio_pika.abc
import aiormq.exceptions
import msgspec
import structlog

from liaison.common.dedupe import DedupeWindow
from liaison.schemas.envelope import decode_envelope, error_path
from liaison.schemas.wire import delivered_message_id, flash_inbox_queue, inbox_queue
from liaison.sdk.delivery import Delivery, Replier
from liaison.sdk.errors import ConnectFailed

log = structlog.get_logger("liaison.sdk")

_Raw = tuple[aio_pika.abc.AbstractIncomingMessage, bool]
FLASH_PREFETCH: Final = 16


class Inbox:
    """``async for delivery in inbox`` yields validated deliveries until ``close()``."""

    def __init__(
        self,
        connection: aio_pika.abc.AbstractRobustConnection,
        org: str,
        *,
        reply: Replier,
        seen: DedupeWindow,
        prefetch: int,
    ) -> None:
        self._connection = connection
        self._org = org
        self._reply = reply
        self._seen = seen
        self._prefetch = prefetch
        self._flash: collections.deque[_Raw] = collections.deque()
        self._regular: collections.deque[_Raw] = collections.deque()
        self._wakeup = asyncio.Event()
        self._in_hand: set[str] = set()
        self._channels: list[aio_pika.abc.AbstractChannel] = []
        self._closed = False
        #: Counters for the caller's logs and the tests: duplicates skipped, invalid rejected.
        self.duplicates = 0
        self.invalid = 0

    async def start(self) -> None:
        """Attach a consumer to ``inbox.<org>.flash`` and one to ``inbox.<org>``."""
        try:
            for name, flash in (
                (flash_inbox_queue(self._org), True),
                (inbox_queue(self._org), False),
            ):
                channel = await self._connection.channel()
                await channel.set_qos(prefetch_count=FLASH_PREFETCH if flash else self._prefetch)
                # Passive: a partner may not declare; the robust channel re-attaches after a
                # reconnect with the same passive declare and consumer.
                queue = await channel.declare_queue(name, passive=True)
                self._channels.append(channel)
                await queue.consume(self._buffer(flash), no_ack=False)
        except (aiormq.exceptions.AMQPError, ConnectionError) as exc:
            await self.close()
            raise ConnectFailed(f"cannot read the inboxes of {self._org}: {exc}") from None

    def _buffer(
        self, flash: bool
    ) -> Callable[[aio_pika.abc.AbstractIncomingMessage], Awaitable[None]]:
        target = self._flash if flash else self._regular

        async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            target.append((message, flash))
            self._wakeup.set()

        return on_message

    async def close(self) -> None:
        """Stop consuming; unsettled messages go back to the broker for redelivery."""
        self._closed = True
        self._wakeup.set()
        for channel in self._channels:
            if not channel.is_closed:
                try:
                    await channel.close()
                except (aiormq.exceptions.AMQPError, ConnectionError, RuntimeError) as exc:
                    log.debug("inbox_close_failed", error=str(exc))
        self._channels.clear()

    def __aiter__(self) -> AsyncIterator[Delivery]:
        return self

    async def __anext__(self) -> Delivery:
        while True:
            message, flash = await self._next_raw()
            delivery = await self._admit(message, flash)
            if delivery is not None:
                return delivery

    async def get(self, within: float) -> Delivery | None:
        """The next delivery, or None when none arrives within ``within`` seconds."""
        try:
            return await asyncio.wait_for(self.__anext__(), within)
        except (TimeoutError, StopAsyncIteration):
            return None

    async def _next_raw(self) -> _Raw:
        while True:
            if self._closed:
                raise StopAsyncIteration
            if self._flash:
                return self._flash.popleft()
            if self._regular:
                return self._regular.popleft()
            self._wakeup.clear()
            await self._wakeup.wait()

    async def _admit(
        self, message: aio_pika.abc.AbstractIncomingMessage, flash: bool
    ) -> Delivery | None:
        if message.channel.is_closed:
            return None  # from a connection that dropped: the broker redelivers it
        try:
            envelope = decode_envelope(message.body)
        except msgspec.ValidationError as exc:
            await self._refuse(message, str(exc), error_path(exc))
            return None
        except msgspec.DecodeError as exc:
            await self._refuse(message, str(exc), "$")
            return None
        message_id = message.message_id or delivered_message_id(
            envelope.sender, envelope.distribution_id
        )
        if message_id in self._seen or message_id in self._in_hand:
            self.duplicates += 1
            log.info("duplicate_skipped", message_id=message_id, redelivered=message.redelivered)
            await self._quietly(message.ack())
            return None
        self._in_hand.add(message_id)
        return Delivery(
            envelope,
            message,
            message_id=message_id,
            flash=flash,
            reply=self._reply,
            on_settled=self._settled,
        )

    def _settled(self, message_id: str) -> None:
        self._in_hand.discard(message_id)
        self._seen.add(message_id)

    async def _refuse(
        self, message: aio_pika.abc.AbstractIncomingMessage, reason: str, path: str
    ) -> None:
        self.invalid += 1
        log.warning(
            "invalid_delivery_dead_lettered",
            message_id=message.message_id,
            reason=reason[:300],
            field_path=path,
        )
        await self._quietly(message.reject(requeue=False))

    @staticmethod
    async def _quietly(settle: Awaitable[None]) -> None:
        try:
            await settle
        except (aiormq.exceptions.AMQPError, ConnectionError, RuntimeError) as exc:
            log.debug("settle_failed", error=str(exc))
