"""The aiormq channel internals the hub's outbox relies on, behind one small interface.

aiormq's ``basic_publish`` costs too much per message for the hub (outbox.py says why), so the
outbox numbers its publishes and writes their frames itself. For that it needs four things of an
aiormq 7 ``Channel`` that are not its public API:

- ``delivery_tag``: the last publish's sequence number, which the broker's confirms name;
- ``confirmations``: tag -> future, resolved by aiormq when the broker acks, failed on a nack;
- ``write_queue``: the connection's frame queue, which ``ChannelFrame`` payloads go through;
- ``number`` and ``max_content_size``: the channel's id and the largest body frame;

and it answers the broker's multiple-confirms itself (``_on_confirm_frame``, see there).
``Deliveries`` likewise takes over how the consuming channel hands a delivery to its consumer.

Only ``AiormqChannel`` touches them. tests/hub/test_channel.py drives each one on a real broker
channel (confirm, nack, multi-frame body, tags shared with aiormq's own publishes), so an aiormq
release that changes any of them fails that test instead of losing messages in production.
"""

import asyncio
import logging
from typing import Any, Protocol

import aiormq
from aiormq.abc import ChannelFrame, ConfirmationFrameType, DeliveredMessage
from pamqp import commands as spec
from pamqp.body import ContentBody
from pamqp.header import ContentHeader

# aiormq's own logger: an unexpected confirm is reported where aiormq reported it.
log = logging.getLogger("aiormq.channel")


class ConfirmChannel(Protocol):
    """What the outbox needs of a channel in confirm mode."""

    number: int
    max_content_size: int

    @property
    def is_closed(self) -> bool:
        """Whether the channel can no longer publish."""
        ...

    def expect_confirm(self) -> "asyncio.Future[Any]":
        """Take the next delivery tag; the future resolves on its ack and raises on its nack."""
        ...

    def oldest_unconfirmed(self) -> int | None:
        """The lowest delivery tag still waiting for the broker's confirm, if any."""
        ...

    async def write(self, payload: bytes | list[bytes | memoryview]) -> None:
        """Hand marshalled frames to the connection's writer (waits while it is full): bytes,
        or buffers to write in order (transport.py's ``FrameWriter`` takes a list)."""
        ...

    async def close(self, exc: BaseException) -> None:
        """Close the channel, failing everything that waits on it."""
        ...


class AiormqChannel:
    """``ConfirmChannel`` over an aiormq 7 ``Channel`` opened with publisher confirms."""

    __slots__ = ("_confirmations", "_loop", "channel", "max_content_size", "number")

    def __init__(self, channel: aiormq.Channel) -> None:
        self.channel = channel
        self.number: int = channel.number
        self.max_content_size: int = channel.max_content_size
        self._confirmations = channel.confirmations
        self._loop = channel.loop
        # An instance attribute, so only this channel's reader uses it.
        channel._on_confirm_frame = self._on_confirm_frame  # type: ignore[method-assign]

    @property
    def is_closed(self) -> bool:
        """Whether the channel can no longer publish."""
        return bool(self.channel.is_closed)

    def expect_confirm(self) -> "asyncio.Future[Any]":
        """Take the next delivery tag; the future resolves on its ack and raises on its nack."""
        channel = self.channel
        channel.delivery_tag += 1
        # A bare future, not aiormq's create_future(): that one joins the channel's and the
        # connection's future stores, three done-callbacks per publish (measured: ~16% of the
        # hub's CPU per message). Nothing is lost: closing the channel fails the consumer task
        # that awaits it, and the broker redelivers the unacked message.
        confirmation: asyncio.Future[Any] = self._loop.create_future()
        self._confirmations[channel.delivery_tag] = confirmation
        return confirmation

    def oldest_unconfirmed(self) -> int | None:
        """The lowest delivery tag still waiting for the broker's confirm, if any."""
        return next(iter(self._confirmations), None)

    async def write(self, payload: bytes | list[bytes | memoryview]) -> None:
        """Hand marshalled frames to the connection's writer (waits while it is full): bytes,
        or buffers to write in order (transport.py's ``FrameWriter`` takes a list)."""
        # aiormq types the payload bytes; the hub's connection writes it with FrameWriter.
        frame = ChannelFrame(payload=payload, should_close=False)  # type: ignore[arg-type]
        await self.channel.write_queue.put(frame)

    async def close(self, exc: BaseException) -> None:
        """Close the channel, failing everything that waits on it."""
        await self.channel.close(exc, timeout=5)

    async def _on_confirm_frame(self, frame: ConfirmationFrameType) -> None:
        """aiormq's handler of a broker confirm, settling the tags a multiple-confirm covers
        without looking at the rest.

        aiormq walks every unconfirmed tag for each multiple-confirm (hundreds with the hub's
        prefetch) and settles each in a callback of its own. Tags enter ``confirmations`` in
        increasing order (each publish takes the next), so the covered ones are a prefix.
        Each is settled by aiormq's own ``_confirm_delivery``, as before.
        """
        channel = self.channel
        confirmations = self._confirmations
        tag = frame.delivery_tag
        if tag not in confirmations:
            log.error("Unexpected confirmation frame %r from broker", frame)
            return
        if not getattr(frame, "multiple", False):
            channel._confirm_delivery(tag, frame)
            return
        covered = []
        for pending in confirmations:
            if pending > tag:
                break
            covered.append(pending)
        for pending in covered:
            channel._confirm_delivery(pending, frame)


class TxChannel:
    """``ConfirmChannel`` over the hub's consuming channel in transaction mode (tx.select).

    A transactional channel has no publisher confirms: every publish and ack since the last
    commit takes effect at the next ``tx.commit``, together, or (the channel or the hub gone
    before it) not at all. So every publish of one batch shares one future, the batch's, which
    resolves when the broker answers its commit and fails when the channel closes first.
    """

    __slots__ = ("_batch", "_loop", "channel", "max_content_size", "number")

    def __init__(self, channel: aiormq.Channel) -> None:
        self.channel = channel
        self.number: int = channel.number
        self.max_content_size: int = channel.max_content_size
        self._loop = channel.loop
        self._batch: asyncio.Future[Any] | None = None
        channel.closing.add_done_callback(self._closed)

    @property
    def is_closed(self) -> bool:
        """Whether the channel can no longer publish."""
        return bool(self.channel.is_closed)

    def expect_confirm(self) -> "asyncio.Future[Any]":
        """The future of the batch the next publish (or ack) joins: resolved by its commit."""
        batch = self._batch
        if batch is None:
            batch = self._batch = self._loop.create_future()
        return batch

    def take_batch(self) -> "asyncio.Future[Any] | None":
        """The current batch's future, if anything joined it; later publishes start another."""
        batch, self._batch = self._batch, None
        return batch

    def oldest_unconfirmed(self) -> int | None:
        """Nothing waits for a confirm on this channel: commits have their own timeout."""
        return None

    async def write(self, payload: bytes | list[bytes | memoryview]) -> None:
        """Hand marshalled frames to the connection's writer (waits while it is full): bytes,
        or buffers to write in order (transport.py's ``FrameWriter`` takes a list)."""
        # aiormq types the payload bytes; the hub's connection writes it with FrameWriter.
        frame = ChannelFrame(payload=payload, should_close=False)  # type: ignore[arg-type]
        await self.channel.write_queue.put(frame)

    async def commit(self) -> None:
        """Commit everything written since the last commit (waits for the broker's answer)."""
        await self.channel.tx_commit()

    async def close(self, exc: BaseException) -> None:
        """Close the channel, failing everything that waits on it."""
        await self.channel.close(exc, timeout=5)

    def _closed(self, closing: "asyncio.Future[Any]") -> None:
        # An uncommitted batch is discarded by the broker with the channel: its waiters fail
        # (their deliveries are redelivered, nothing of them reached anyone).
        batch, self._batch = self._batch, None
        if batch is not None and not batch.done():
            reason = None if closing.cancelled() else closing.exception()
            batch.set_exception(ConnectionError(f"channel closed before its commit: {reason}"))


def _whole(parts: list[bytes | memoryview], size: int) -> bytes | None:
    """The body, uncopied, when ``parts`` are the whole of one bytes object: one frame's value,
    or views of a body the transport received into its own bytes (transport.py, ``_Body``),
    all of it, in order, since the frames of one channel's body come in order."""
    first = parts[0] if parts else None
    if isinstance(first, bytes):
        return first if len(parts) == 1 else None
    whole = first.obj if first is not None else None
    if not isinstance(whole, bytes) or len(whole) != size:
        return None
    for part in parts:
        if not isinstance(part, memoryview) or part.obj is not whole:
            return None
    return whole


class Deliveries:
    """An aiormq ``Channel``'s deliveries, each handed to its consumer in a task of its own, as
    aiormq does, with less work per delivery.

    aiormq wraps each consumer task and files it in the channel's and the connection's future
    stores (five callbacks, two closures, a wrapper a delivery), and reads each body through a
    ``BytesIO``. Here a task is kept in one set, and every task still running is cancelled
    when the channel closes, as aiormq's stores do: a handler never outlives its channel.
    """

    __slots__ = ("_channel", "_loop", "_running")

    def __init__(self, channel: aiormq.Channel) -> None:
        self._channel = channel
        self._loop = channel.loop
        self._running: set[asyncio.Task[Any]] = set()
        # An instance attribute, so only this channel's reader uses it.
        channel._on_deliver_frame = self._on_deliver_frame  # type: ignore[method-assign]
        channel.closing.add_done_callback(self._closed)

    @property
    def running(self) -> int:
        """Consumer tasks not finished yet."""
        return len(self._running)

    async def _on_deliver_frame(self, frame: spec.Basic.Deliver) -> None:
        channel = self._channel
        header = await channel._get_frame()
        if not isinstance(header, ContentHeader):
            raise ValueError(f"Unexpected frame {header!r} instead of ContentHeader", header)
        size = header.body_size or 0
        # Bytes, or views of the bytes read for large frames (frames.VIEW_FROM).
        parts: list[bytes | memoryview] = []
        received = 0
        while received < size:
            content = await channel._get_frame()
            if not isinstance(content, ContentBody):
                raise ValueError(f"Unexpected frame {content!r}", content)
            if not content.value:
                break  # aiormq stops at an empty body frame too
            parts.append(content.value)
            received += len(content.value)
        body = _whole(parts, received) or b"".join(parts)
        consumer = channel.consumers.get(frame.consumer_tag or "")
        if consumer is None:
            return
        if channel.is_closed:
            return  # aiormq's closed store would fail the task at once
        message = DeliveredMessage(delivery=frame, header=header, body=body, channel=channel)
        task = self._loop.create_task(consumer(message))
        self._running.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: "asyncio.Task[Any]") -> None:
        self._running.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error("Consumer callback failed", exc_info=exc)

    def _closed(self, _: "asyncio.Future[Any]") -> None:
        for task in list(self._running):
            task.cancel()
