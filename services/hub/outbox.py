"""Publishing on the hub's hot path: an ordered outbox over a confirm-mode channel.

Under ``make bench`` load aiormq's ``basic_publish`` was ~44% of the hub's CPU per message
(py-spy); the outbox and the direct property encoding (properties.py) took the hub from ~340 to
~135 µs of CPU per message (see bench/README.md).
"""

import asyncio
import contextlib
import struct
from collections.abc import Callable
from typing import Any

import structlog
from aiormq.exceptions import ChannelInvalidStateError
from pamqp import commands as spec
from pamqp.frame import marshal
from pamqp.header import ContentHeader

from liaison.hub.channel import ConfirmChannel, TxChannel
from liaison.hub.properties import Properties

log = structlog.get_logger("liaison.hub")

_METHOD_CACHE_SIZE = 4096

# A content header frame: type 2, channel, payload size; class 60 (basic), weight 0, body size.
_HEADER_FRAME = struct.Struct(">BHIHHQ")
# A content body frame's header: type 3, channel, payload size (the payload, then 0xCE, follow).
_BODY_FRAME = struct.Struct(">BHI")
_FRAME_END = b"\xce"
#: A body from this size on closes the write it is in as soon as it is published.
_LARGE_BODY = 64 * 1024
#: In such a write, pieces from this size on go to the transport as they are, not joined.
_APART = 16 * 1024

#: What one write to the connection holds: bytes, or buffers written in order with no join
#: between them (transport.py, ``FrameWriter``).
Payload = bytes | list[bytes | memoryview]


def _pieces(frames: list[bytes | memoryview]) -> list[bytes | memoryview]:
    """``frames`` with each run of small pieces joined and every large one (a body, or a
    view of it) kept as it is."""
    pieces: list[bytes | memoryview] = []
    run: list[bytes | memoryview] = []
    for frame in frames:
        if len(frame) >= _APART:
            if run:
                pieces.append(b"".join(run))
                run = []
            pieces.append(frame)
        else:
            run.append(frame)
    if run:
        pieces.append(b"".join(run))
    return pieces


def _chunks(pieces: list[bytes], step: int) -> list[list[bytes | memoryview]]:
    """The body that is ``pieces`` joined, as the pieces of each body frame of at most
    ``step`` bytes: views where a frame starts or ends inside a piece, no copy."""
    chunks: list[list[bytes | memoryview]] = []
    chunk: list[bytes | memoryview] = []
    room = step
    for piece in pieces:
        view: bytes | memoryview = piece
        while view:
            if not room:
                chunks.append(chunk)
                chunk, room = [], step
            if len(view) <= room:
                chunk.append(view)
                room -= len(view)
                break
            whole = view if isinstance(view, memoryview) else memoryview(view)
            chunk.append(whole[:room])
            view, room = whole[room:], 0
    if chunk:
        chunks.append(chunk)
    return chunks


class Outbox:
    """A channel's publishes, handed to the connection in order by a single sender task.

    aiormq's ``basic_publish`` takes the channel lock, an ``asyncio.timeout`` and two context
    managers per call, and waits on the connection's 10-frame write queue while holding the
    lock; under ``make bench`` load that path was ~40% of the hub's CPU per message (profiled
    with py-spy). Here a publish is marshalled and numbered at once (so delivery tags follow
    the order frames reach the wire), its confirm is the future aiormq resolves or rejects, and
    one task moves everything published since its last wake-up to the connection in one frame.
    A large body closes the write it ends instead (``_LARGE_BODY``), and that write hands its
    body to the transport as the views it is, beside the joined frame heads: no copy of the
    body on the hub's side (one buffer of several MB for several bodies of hundreds of KB was
    fresh memory, past the CPU's cache, every time). A publish's frames always stay in one
    frame of the write queue, as AMQP wants a message's frames contiguous on its channel.
    Every publish of the channel goes through here, so nothing else takes a delivery tag out of
    order. The channel internals this needs are behind ``ConfirmChannel`` (channel.py).
    """

    def __init__(self, channel: ConfirmChannel, confirm_timeout: float) -> None:
        self.channel = channel
        self._confirm_timeout = confirm_timeout
        self._frames: list[bytes | memoryview] = []
        #: Frames already joined (up to a large body), to be written before ``_frames``.
        self._payloads: list[Payload] = []
        self._wanted = asyncio.Event()
        # The Basic.Publish frame depends only on exchange and routing key: marshal it once.
        self._methods: dict[tuple[str, str], bytes] = {}
        #: The outbox that took over when this one's channel kept being nacked (the hub's
        #: _renew_outbox): publishes handed to this one from then on go there.
        self.replaced_by: Outbox | None = None

    def publish(
        self,
        body: bytes | list[bytes],
        *,
        exchange: str,
        routing_key: str,
        properties: Properties,
    ) -> "asyncio.Future[Any]":
        """Queue one publish; the future resolves on the broker's ack, raises on its nack.
        ``body`` may be pieces to send as one body (the ledger's batches: ledger_feed.py)."""
        if self.replaced_by is not None:
            return self.replaced_by.publish(
                body, exchange=exchange, routing_key=routing_key, properties=properties
            )
        channel = self.channel
        if channel.is_closed:
            raise ChannelInvalidStateError(f"{channel!r} closed")
        confirmation = channel.expect_confirm()
        number = channel.number
        frames = self._frames
        method = self._methods.get((exchange, routing_key))
        if method is None:
            if len(self._methods) >= _METHOD_CACHE_SIZE:
                self._methods.clear()
            method = marshal(spec.Basic.Publish(exchange=exchange, routing_key=routing_key), number)
            self._methods[exchange, routing_key] = method
        frames.append(method)
        size = sum(map(len, body)) if isinstance(body, list) else len(body)
        if isinstance(properties, bytes):
            frames.append(
                _HEADER_FRAME.pack(2, number, 12 + len(properties), 60, 0, size)
                + properties
                + b"\xce"
            )
        else:
            frames.append(marshal(ContentHeader(properties=properties, body_size=size), number))
        step = channel.max_content_size
        if isinstance(body, list):
            for chunk_pieces in _chunks(body, step):
                frames.append(_BODY_FRAME.pack(3, number, sum(map(len, chunk_pieces))))
                frames += chunk_pieces
                frames.append(_FRAME_END)
        elif 0 < size <= step:
            frames += (_BODY_FRAME.pack(3, number, size), body, _FRAME_END)
        elif size:  # an empty body has no body frame
            # Slices of a view, not of the bytes: the body is copied once, by send's join, and
            # not twice more per frame (a slice, then pamqp's frame) on its way to the socket.
            view = memoryview(body)
            for start in range(0, size, step):
                chunk = view[start : start + step]
                frames += (_BODY_FRAME.pack(3, number, len(chunk)), chunk, _FRAME_END)
        if size >= _LARGE_BODY:
            self._payloads.append(_pieces(frames))
            frames.clear()
        self._wanted.set()
        return confirmation

    async def send(self) -> None:
        """Hand what was published since the last wake-up to the connection's writer."""
        while True:
            await self._wanted.wait()
            self._wanted.clear()
            for payload in self._taken():
                # Blocks while the connection's write queue is full: the broker's backpressure.
                await self.channel.write(payload)

    def _taken(self) -> list[Payload]:
        """Everything published so far as payloads to write in order, taken from the outbox."""
        payloads, frames = self._payloads, self._frames
        if frames:
            payloads.append(b"".join(frames))  # bytes and views of bodies alike
            frames.clear()
        self._payloads = []
        return payloads

    async def watch(self) -> None:
        """Close the channel when the broker leaves one publish unconfirmed for too long.

        One check per quarter of the timeout instead of a timer per publish; closing the
        channel fails every waiting publish, and the broker redelivers what was not acked.
        """
        interval = self._confirm_timeout / 4
        waiting: int | None = None
        waited = 0.0
        while True:
            await asyncio.sleep(interval)
            oldest = self.channel.oldest_unconfirmed()
            if oldest is None or oldest != waiting:
                waiting, waited = oldest, 0.0
                continue
            waited += interval
            if waited >= self._confirm_timeout:
                log.warning("confirm_timeout", delivery_tag=oldest, waited_s=round(waited, 1))
                await self.channel.close(ConnectionError(f"no publish confirm in {waited:.1f}s"))
                return


class TxOutbox(Outbox):
    """The outbox of transaction mode (``LIAISON_DELIVERY=transaction``): publishes and the
    ingress acks go out on the consuming channel, and each batch ends with ``tx.commit``.

    The single sender task takes everything handed over since its last commit (the copies,
    the ledger records flushed just before, then one multiple-ack of the finished prefix of
    ingress deliveries), writes it and commits it, and only then takes the next batch: while
    one commit is in flight the next batch grows, so batches size themselves to the load (at
    most the prefetch's worth of deliveries). A hub that dies before the commit leaves nothing
    visible and its deliveries unacked; after it, the copies and the acks took effect together.
    """

    def __init__(
        self,
        channel: TxChannel,
        commit_timeout: float,
        *,
        before_commit: Callable[[], None] | None = None,
        committed: Callable[[int], None] | None = None,
    ) -> None:
        super().__init__(channel, commit_timeout)
        self._tx = channel
        #: Called just before a batch is taken (the ledger feed's flush: records of the batch's
        #: decisions join the batch).
        self.before_commit = before_commit
        # Called with the highest ingress tag a commit acked.
        self._committed = committed
        self._ack_upto = 0
        self._acked = 0

    def ack(self, tag: int) -> "asyncio.Future[Any]":
        """Ack every ingress delivery up to ``tag`` in the next commit; that commit's future."""
        if tag > self._ack_upto:
            self._ack_upto = tag
        self._wanted.set()
        return self._tx.expect_confirm()

    def reject(self, tag: int) -> "asyncio.Future[Any]":
        """Give ingress delivery ``tag`` back to its queue in the next commit (a reject on a
        transactional channel takes effect only when committed); that commit's future."""
        self._frames.append(
            marshal(spec.Basic.Reject(delivery_tag=tag, requeue=True), self._tx.number)
        )
        self._wanted.set()
        return self._tx.expect_confirm()

    async def send(self) -> None:
        """Write and commit batch after batch; a failed or late commit closes the channel."""
        channel = self._tx
        while True:
            await self._wanted.wait()
            self._wanted.clear()
            if self.before_commit is not None:
                self.before_commit()
            batch = channel.take_batch()
            if batch is None:
                continue
            frames = self._frames
            ack = self._ack_upto
            if ack > self._acked:
                frames.append(
                    marshal(spec.Basic.Ack(delivery_tag=ack, multiple=True), channel.number)
                )
            payloads = self._taken()
            try:
                async with asyncio.timeout(self._confirm_timeout):
                    for payload in payloads:
                        await channel.write(payload)
                    await channel.commit()
            except BaseException as exc:
                # Waiters see a lost channel, as when it closes: the session ends and the
                # broker redelivers whatever this commit did not ack.
                if not batch.done():
                    batch.set_exception(ConnectionError(f"commit failed: {exc!r}"))
                if isinstance(exc, asyncio.CancelledError):
                    raise
                log.warning("commit_failed", error=f"{type(exc).__name__}: {exc}")
                with contextlib.suppress(Exception):
                    await channel.close(ConnectionError(f"commit failed: {exc}"))
                return
            self._acked = max(self._acked, ack)
            if not batch.done():
                batch.set_result(None)
            if self._committed is not None:
                self._committed(self._acked)

    async def watch(self) -> None:
        """Nothing to watch: ``send`` bounds each commit by the confirm timeout itself."""
        await asyncio.Event().wait()
