"""Reading an organisation's two inboxes as one stream, flash messages first.

Two consumers, one per queue and each on its own channel with its own prefetch, fill two
buffers; the iterator always takes from the flash buffer while it holds anything. The
guarantee: whenever a flash message and a regular message are both waiting in the SDK, the
flash one is handed out first, and a flash message is never stuck behind unacknowledged regular
ones (its consumer has its own prefetch). A flash message that reaches the broker after a
regular one was handed out waits only for the caller to ask for the next delivery.

The connection is robust: when it drops (broker restart, failover, a forced close) aio-pika
reconnects and re-attaches both consumers, and the broker redelivers everything that was not
acknowledged. Each raw message is checked before it is handed out:
- stale (its channel closed meanwhile): dropped quietly, the broker redelivers it;
- undecodable or breaking the contract: rejected without requeue (so the broker dead-letters
  it) and logged, never raised;
- a copy of a message settled recently: settled the same way (ack, or reject to the dead
  letters) and skipped;
- a copy of a message the caller holds right now (its ack is still to come): held, and settled
  as the caller settles the original.
So a handler sees each message once however often the connection drops, as long as the
process lives (the dedupe window is in memory), or across restarts with ``dedupe_file``
(settled.py).
"""

import asyncio
import collections
import logging
import signal
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from datetime import UTC
from types import TracebackType
from typing import Final, Self

import aio_pika
import aio_pika.abc
import aiormq.exceptions
import msgspec

from liaison.schemas.envelope import decode_envelope, error_path
from liaison.schemas.wire import (
    HEADER_SIGNATURE,
    delivered_message_id,
    flash_inbox_queue,
    inbox_queue,
)
from liaison.sdk.delivery import SETTLE_LOST, Delivery, Replier
from liaison.sdk.errors import ConnectFailed
from liaison.sdk.settled import SettledIds
from liaison.sdk.signing import TrustedKey, check_delivered

log = logging.getLogger("liaison.sdk.inbox")

_Raw = tuple[aio_pika.abc.AbstractIncomingMessage, bool]
FLASH_PREFETCH: Final = 16


def is_stale(message: aio_pika.abc.AbstractIncomingMessage) -> bool:
    """Whether ``message`` came on a channel that has closed since (it cannot be settled)."""
    try:
        # aio-pika's ``channel`` raises once the channel is closed rather than returning it.
        return bool(message.channel.is_closed)
    except aiormq.exceptions.ChannelInvalidStateError:
        return True


class Inbox:
    """``async for delivery in inbox`` yields validated deliveries until ``stop()``/``close()``.

    Also an async context manager that closes it: ``async with client.inbox() as inbox``. For a
    clean shutdown on Ctrl-C and SIGTERM call ``inbox.stop_on_signals()`` first.
    """

    def __init__(
        self,
        connection: aio_pika.abc.AbstractRobustConnection,
        org: str,
        *,
        reply: Replier,
        prefetch: int,
        settled: SettledIds,
        trusted_keys: Mapping[str, TrustedKey] | None = None,
    ) -> None:
        self._connection = connection
        self._trusted_keys = trusted_keys
        self._org = org
        self._reply = reply
        self._prefetch = prefetch
        self._settled_ids = settled
        self._flash: collections.deque[_Raw] = collections.deque()
        self._regular: collections.deque[_Raw] = collections.deque()
        self._wakeup = asyncio.Event()
        # Message ids handed out and not settled yet -> copies redelivered meanwhile.
        self._in_hand: dict[str, list[aio_pika.abc.AbstractIncomingMessage]] = {}
        self._channels: list[aio_pika.abc.AbstractChannel] = []
        self._closed = False
        self._stopped = False
        self._signals: tuple[signal.Signals, ...] = ()
        #: Counters for the caller's logs and the tests: duplicates skipped, invalid rejected,
        #: buffered deliveries of a closed channel dropped (the broker redelivers those).
        self.duplicates = 0
        self.invalid = 0
        self.stale = 0

    @property
    def closed(self) -> bool:
        """Whether ``close()`` was called."""
        return self._closed

    @property
    def stopped(self) -> bool:
        """Whether ``stop()`` or ``close()`` was called: no more deliveries are handed out."""
        return self._stopped or self._closed

    def stop(self) -> None:
        """End the iteration after the delivery in hand; ``async for`` then returns normally.

        The channels stay open until ``close()``, so the delivery in hand can still be
        acknowledged; whatever was buffered and not handed out goes back to the broker then.
        """
        if self._stopped and self._signals:
            # A second signal: give the signals back, so a third one interrupts as usual.
            self._forget_signals()
        self._stopped = True
        self._wakeup.set()

    def stop_on_signals(
        self, signals: tuple[signal.Signals, ...] = (signal.SIGINT, signal.SIGTERM)
    ) -> None:
        """Make Ctrl-C and SIGTERM call ``stop()``: the loop ends cleanly, no traceback.

        Call it from the running event loop (Unix: asyncio's signal handlers); ``close()``
        gives the signals back to Python's default handling.
        """
        loop = asyncio.get_running_loop()
        for sig in signals:
            loop.add_signal_handler(sig, self.stop)
        self._signals = signals

    def _forget_signals(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in self._signals:
            loop.remove_signal_handler(sig)
        self._signals = ()

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
            raise ConnectFailed(
                f"cannot read the inboxes of {self._org}: {exc}; check that the organisation id "
                f"is yours and that provisioning created inbox.{self._org}"
            ) from None

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
        if self._signals:
            self._forget_signals()
        for channel in self._channels:
            if not channel.is_closed:
                try:
                    await channel.close()
                except (aiormq.exceptions.AMQPError, ConnectionError, RuntimeError) as exc:
                    log.debug("closing an inbox channel failed: %s", exc)
        self._channels.clear()
        self._flash.clear()
        self._regular.clear()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def __aiter__(self) -> AsyncIterator[Delivery]:
        return self

    async def __anext__(self) -> Delivery:
        while True:
            raw = await self._next_raw(None)
            assert raw is not None  # without a deadline it waits, or stops the iteration
            delivery = await self._admit(*raw)
            if delivery is not None:
                return delivery

    async def get(self, within: float) -> Delivery | None:
        """The next delivery, or None when none arrives within ``within`` seconds (or closed)."""
        deadline = asyncio.get_running_loop().time() + within
        try:
            while True:
                raw = await self._next_raw(deadline)
                if raw is None:
                    return None
                delivery = await self._admit(*raw)
                if delivery is not None:
                    return delivery
        except StopAsyncIteration:
            return None

    async def _next_raw(self, deadline: float | None) -> _Raw | None:
        loop = asyncio.get_running_loop()
        while True:
            if self._closed or self._stopped:
                raise StopAsyncIteration
            if self._flash:
                return self._flash.popleft()
            if self._regular:
                return self._regular.popleft()
            self._wakeup.clear()
            if deadline is None:
                await self._wakeup.wait()
                continue
            remaining = deadline - loop.time()
            if remaining <= 0:
                return None
            try:
                async with asyncio.timeout(remaining):
                    await self._wakeup.wait()
            except TimeoutError:
                return None

    async def _admit(
        self, message: aio_pika.abc.AbstractIncomingMessage, flash: bool
    ) -> Delivery | None:
        if is_stale(message):
            self.stale += 1
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
        copies = self._in_hand.get(message_id)
        if copies is not None:
            # Redelivered while the caller still holds the original: settled with it.
            self.duplicates += 1
            copies.append(message)
            return None
        rejected = self._settled_ids.outcome(message_id)
        if rejected is not None:
            self.duplicates += 1
            log.info("skipped a duplicate of %s (redelivered=%s)", message_id, message.redelivered)
            await self._settle_copy(message, reject=rejected)
            return None
        self._in_hand[message_id] = []
        # Valid when the hub delivered it: a key that expired since still signed it in time.
        stamp = message.timestamp
        signature = check_delivered(
            message.body,
            (message.headers or {}).get(HEADER_SIGNATURE),
            envelope.sender,
            self._trusted_keys,
            at=stamp.replace(tzinfo=UTC) if stamp is not None and stamp.tzinfo is None else stamp,
        )
        return Delivery(
            envelope,
            message,
            message_id=message_id,
            flash=flash,
            reply=self._reply,
            on_settled=self._settled,
            signature=signature,
        )

    async def _settled(self, message_id: str, reject: bool) -> None:
        # Remembered before the copies are settled, so a copy arriving meanwhile is a duplicate.
        self._settled_ids.remember(message_id, rejected=reject)
        for copy in self._in_hand.pop(message_id, []):
            await self._settle_copy(copy, reject=reject)

    async def _refuse(
        self, message: aio_pika.abc.AbstractIncomingMessage, reason: str, path: str
    ) -> None:
        self.invalid += 1
        log.warning(
            "dead-lettered an invalid delivery %s at %s: %s",
            message.message_id,
            path,
            reason[:300],
        )
        await self._settle_copy(message, reject=True)

    @staticmethod
    async def _settle_copy(message: aio_pika.abc.AbstractIncomingMessage, *, reject: bool) -> None:
        try:
            if reject:
                await message.reject(requeue=False)
            else:
                await message.ack()
        except SETTLE_LOST as exc:
            # Its channel closed too: the broker redelivers it and it is settled next time.
            log.debug("settling a copy failed: %s", exc)
