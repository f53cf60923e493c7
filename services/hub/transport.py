"""The hub's broker connection under aiormq: the socket read into the hub's own buffers.

aiormq reads through an ``asyncio.StreamReader``: the transport receives each read as new bytes,
the reader appends them to its buffer, and each ``read`` copies them out twice more
(``bytes(buffer[:n])``); a frame that spans reads was then joined once more. For a body of
hundreds of KB that was four or five copies before the consumer's own, and memory copies were
the largest single cost left per KB (bench/README.md, "The hub per KB, second pass").

``FrameStream`` is an ``asyncio.BufferedProtocol``: the kernel copies into the protocol's
buffer, frames are decoded as soon as they are complete (frames.py's ``decode_frame``), and
aiormq's reader task takes them in order (it is aiormq's ``FrameReceiver``: ``__aiter__``,
``get_frame``). A body of ``VIEW_FROM`` bytes or more gets its bytes object as soon as its
content header is in (``_buffers.fresh``, compiled), and its body frames' payloads are received
into it, from the socket straight or from what the small buffer already holds; each frame's
value is a view of it, and the consumer takes the object itself (channel.py, ``_whole``): the
body is written once, by the kernel or by one copy. Without the compiled buffers a frame of
``VIEW_FROM`` or more is received into a buffer of its own, its value a view of it, and the
consumer joins the body (one copy more). ``HubTransport`` is the aiormq transport factory that opens
connections this way (TCP and TLS alike); ``install`` lets aiormq's connection take the stream
as its frame receiver. The errors are aiormq's own, as its reader would raise them.
"""

import asyncio
import collections
import ssl
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import aiormq.connection
from aiormq.exceptions import AMQPConnectionError, InvalidFrameError, ProtocolSyntaxError
from pamqp import commands as spec
from pamqp.body import ContentBody
from pamqp.exceptions import PAMQPException
from yarl import URL

from liaison.hub.frames import FRAME_HEAD, VIEW_FROM, decode_frame


def _compiled_fresh() -> Callable[[int], tuple[bytes, memoryview]] | None:
    try:
        from liaison.hub._buffers import fresh
    except ImportError:  # an install without a C compiler: large frames get buffers of their own
        return None
    return fresh


fresh = _compiled_fresh()

#: The buffer small frames are received into; any frame below ``VIEW_FROM`` fits with room.
READ_SIZE = 256 * 1024
#: Room kept after the received bytes: less, and the unread bytes move to the front first.
_MIN_ROOM = 2 * VIEW_FROM
#: Reading pauses while this many bytes of decoded frames wait for aiormq's reader task, and
#: resumes once it has taken them down to ``_RESUME_AT`` (a channel's full frame queue holds
#: that task, and so the socket: the broker's flow control then does the rest).
_PAUSE_AT = 4 * 1024 * 1024
_RESUME_AT = 1024 * 1024
_FRAME_END = 0xCE
_HEADER, _BODY = 2, 3
#: A content header's body size: after the frame head, class and weight (two shorts).
_BODY_SIZE = struct.Struct(">Q")
_BODY_SIZE_AT = FRAME_HEAD.size + 4
#: The largest body received straight into its bytes; a larger one (no hub message is: their
#: limit is 256 KiB) goes the way of other frames, so a wrong size allocates nothing large.
_BODY_INTO_MAX = 16 * 1024 * 1024
#: The largest frame taken before the broker's Connection.Tune names its own: RabbitMQ's
#: default, far above what the handshake's frames need.
_FRAME_MAX_BEFORE_TUNE = 131_072


@dataclass(slots=True)
class _Body:
    """A large message body being received on a channel straight into its bytes object."""

    body: bytes
    #: Writable view of ``body``'s storage (``_buffers.fresh``); dropped once it is full.
    into: memoryview
    #: Bytes of ``body`` received so far.
    filled: int = 0


class FrameStream(asyncio.BufferedProtocol):
    """One connection's frames, decoded as they arrive; aiormq's ``FrameReceiver`` for it, and
    the protocol of its ``StreamWriter`` (``drain`` waits while the transport's write buffer is
    full, as asyncio's ``FlowControlMixin`` has it: not inherited, because uvloop takes any
    ``asyncio.Protocol`` subclass, which that mixin is, for an unbuffered protocol and would hand
    it ``data_received`` calls instead)."""

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self._stream_loop = loop or asyncio.get_running_loop()
        self._writing_paused = False
        self._drain_waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self._connection_lost = False
        self._buffer = bytearray(READ_SIZE)
        self._view = memoryview(self._buffer)
        #: The unread bytes are ``_buffer[_start:_end]``.
        self._start = 0
        self._end = 0
        #: A frame of ``VIEW_FROM`` bytes or more, received into a buffer of its own.
        self._large: bytearray | None = None
        self._filled = 0
        #: Large bodies being received, by channel: from its content header on, each body
        #: frame's payload goes into the body's own bytes, and the frame's value is a view of
        #: them (``_buffers.fresh``), so the body the consumer takes is that object, uncopied.
        self._bodies: dict[int, _Body] = {}
        #: The body frame whose payload the kernel is writing into its body, as
        #: (body, channel, offset of the payload in the body, payload size); its frame end
        #: byte comes after, into the small buffer.
        self._receiving: tuple[_Body, int, int, int] | None = None
        self._frames: collections.deque[tuple[int, int, Any]] = collections.deque()
        self._waiting_bytes = 0
        #: What ends the stream once the frames before it are taken: an error, or None at EOF.
        self._end_of_stream: BaseException | None = None
        self._ended = False
        self._waiter: asyncio.Future[None] | None = None
        self._transport: asyncio.Transport | None = None
        self._reading_paused = False
        self._closed = self._stream_loop.create_future()
        self.started = False
        #: The largest frame the broker may send: its Connection.Tune's frame_max. A frame that
        #: claims more is refused before anything is allocated for it (a peer that is not an
        #: AMQP broker, an HTTP server say, reads as a frame of about a gigabyte).
        self.frame_max = _FRAME_MAX_BEFORE_TUNE

    # The transport's side.

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, only alike.
        self._transport = cast(asyncio.Transport, transport)

    def get_buffer(self, sizehint: int) -> memoryview:
        receiving = self._receiving
        if receiving is not None and receiving[0].filled < receiving[2] + receiving[3]:
            target, _, offset, size = receiving
            return target.into[target.filled : offset + size]
        if self._large is not None:
            return memoryview(self._large)[self._filled :]
        if len(self._buffer) - self._end < _MIN_ROOM:
            start, end = self._start, self._end
            # A copy first: the two ranges may overlap, and bytearray copies with memcpy.
            self._buffer[: end - start] = bytes(self._view[start:end])
            self._start, self._end = 0, end - start
        return self._view[self._end :]

    def buffer_updated(self, nbytes: int) -> None:
        if self._ended:
            return
        receiving = self._receiving
        if receiving is not None and receiving[0].filled < receiving[2] + receiving[3]:
            # Into the body (get_buffer); the frame end byte comes into the small buffer after.
            receiving[0].filled += nbytes
            return
        if self._large is not None:
            self._filled += nbytes
            if self._filled == len(self._large):
                self._large_frame_complete()
        else:
            self._end += nbytes
            self._cut()
        self._wake()

    def eof_received(self) -> bool:
        self._finish(None)
        return False  # close the transport: the broker is gone

    def connection_lost(self, exc: Exception | None) -> None:
        self._connection_lost = True
        self._finish(exc)
        if not self._closed.done():
            self._closed.set_result(None)
        self._transport = None
        self._wake_drain_waiters(exc)

    # The writer's side (asyncio's FlowControlMixin, which StreamWriter.drain relies on).

    def pause_writing(self) -> None:
        self._writing_paused = True

    def resume_writing(self) -> None:
        self._writing_paused = False
        self._wake_drain_waiters(None)

    def _wake_drain_waiters(self, exc: Exception | None) -> None:
        for waiter in self._drain_waiters:
            if not waiter.done():
                if exc is None:
                    waiter.set_result(None)
                else:
                    waiter.set_exception(exc)

    async def _drain_helper(self) -> None:
        if self._connection_lost:
            raise ConnectionResetError("Connection lost")
        if not self._writing_paused:
            return
        waiter = self._stream_loop.create_future()
        self._drain_waiters.append(waiter)
        try:
            await waiter
        finally:
            self._drain_waiters.remove(waiter)

    def _get_close_waiter(self, stream: asyncio.StreamWriter) -> "asyncio.Future[None]":
        return self._closed

    # Cutting frames out of what arrived.

    def _cut(self) -> None:
        """Decode every complete frame received; start receiving a large frame into its own
        buffer when its head has arrived."""
        start, end = self._start, self._end
        view = self._view
        if self._receiving is not None:
            if start == end:
                return
            self._body_frame_ended(view[start])
            start += 1
            if self._ended:
                return
        if not self.started and end - start >= FRAME_HEAD.size:
            if self._buffer.startswith(b"AMQP", start):
                self._fail(ProtocolSyntaxError("Unexpected AMQP protocol header"))
                return
            self.started = True
        complete = start
        while end - complete >= FRAME_HEAD.size:
            kind, channel, size = FRAME_HEAD.unpack_from(view, complete)
            needed = size + FRAME_HEAD.size + 1
            if needed > self.frame_max:
                # The frames before it first: a Connection.Tune among them sets the bound.
                self._decode(bytes(view[start:complete]))
                start = complete
                if self._ended:
                    return
                if needed > self.frame_max:
                    self._fail(
                        InvalidFrameError(
                            f"a frame of {needed} bytes, more than the broker's frame_max "
                            f"{self.frame_max}"
                        )
                    )
                    return
            if kind == _BODY and channel in self._bodies:
                target = self._bodies[channel]
                if target.filled + size <= len(target.body):
                    # The frames before it first, in order.
                    if complete > start:
                        self._decode(bytes(view[start:complete]))
                        if self._ended:
                            return
                    if self._into_body(target, channel, complete, end):
                        complete += needed
                        start = complete
                        if self._ended:
                            return
                        continue
                    self._start = self._end = 0
                    return
                del self._bodies[channel]  # more than its header said: pamqp's to judge
            if end - complete < needed:
                if needed >= VIEW_FROM + 8:
                    self._decode(bytes(view[start:complete]))
                    if self._ended:
                        return
                    large = bytearray(needed)
                    have = end - complete
                    large[:have] = view[complete:end]
                    self._large, self._filled = large, have
                    self._start = self._end = 0
                    return
                break
            if kind == _HEADER:
                self._header(channel, complete, needed)
            complete += needed
        if complete > start:
            # The complete frames as bytes: one copy, and every decoded field is a slice of it.
            self._decode(bytes(view[start:complete]))
        if complete == end:
            complete = end = 0
        self._start, self._end = complete, end

    def _header(self, channel: int, at: int, needed: int) -> None:
        """A complete content header frame at ``at``: a large body it announces gets its bytes
        now, and its body frames go into them (``_into_body``)."""
        self._bodies.pop(channel, None)
        if fresh is None or needed < _BODY_SIZE_AT + _BODY_SIZE.size + 1:
            return  # no compiled buffers, or not a header pamqp would take: its decode says
        (size,) = _BODY_SIZE.unpack_from(self._view, at + _BODY_SIZE_AT)
        if VIEW_FROM <= size <= _BODY_INTO_MAX:
            body, into = fresh(size)
            self._bodies[channel] = _Body(body, into)

    def _into_body(self, target: _Body, channel: int, at: int, end: int) -> bool:
        """The body frame at ``at`` into ``target``: True when it was whole in the buffer (its
        frame is decoded), False when the rest of its payload is to be received into the body
        straight from the socket (``_receiving``)."""
        view = self._view
        size = FRAME_HEAD.unpack_from(view, at)[2]
        payload = at + FRAME_HEAD.size
        have = min(end - payload, size)
        offset = target.filled
        target.into[offset : offset + have] = view[payload : payload + have]
        target.filled += have
        self._receiving = (target, channel, offset, size)
        if have == size and end > payload + size:
            self._body_frame_ended(view[payload + size])
            return True
        return False

    def _body_frame_ended(self, frame_end: int) -> None:
        """The end byte of the body frame received into its body: the frame is decoded, a
        view of the body."""
        receiving = self._receiving
        assert receiving is not None
        self._receiving = None
        target, channel, offset, size = receiving
        if frame_end != _FRAME_END:
            self._fail(InvalidFrameError(f"a body frame ends with {frame_end:#04x}, not 0xce"))
            return
        # pamqp types the value bytes; its readers take any bytes-like object (frames.py).
        value = cast(bytes, memoryview(target.body)[offset : offset + size])
        self._frames.append((size + 8, channel, ContentBody(value)))
        self._waiting_bytes += size + 8
        if target.filled == len(target.body):
            target.into.release()
            if self._bodies.get(channel) is target:
                del self._bodies[channel]

    def _decode(self, data: bytes) -> None:
        offset = 0
        frames = self._frames
        try:
            while offset < len(data):
                frame = decode_frame(data, offset)
                if frame[1] == 0 and isinstance(frame[2], spec.Connection.Tune):
                    # 0: no limit but the protocol's own (a 32-bit size).
                    self.frame_max = frame[2].frame_max or 2**32
                frames.append(frame)
                self._waiting_bytes += frame[0]
                offset += frame[0]
        except PAMQPException as exc:
            self._fail(InvalidFrameError(str(exc)))
        except Exception as exc:  # pamqp's own failure outside its type: aiormq's reader sees it
            self._fail(exc)

    def _large_frame_complete(self) -> None:
        large = self._large
        assert large is not None
        self._large = None
        if large[0] == _BODY and large[-1] == _FRAME_END:
            _, channel, size = FRAME_HEAD.unpack_from(large)
            self._frames.append(
                (size + 8, channel, ContentBody(memoryview(large)[FRAME_HEAD.size : -1]))  # type: ignore[arg-type]
            )
            self._waiting_bytes += size + 8
        else:
            self._decode(bytes(large))

    def _fail(self, exc: BaseException) -> None:
        self._finish(exc)
        if self._transport is not None:
            self._transport.pause_reading()
            self._reading_paused = True

    def _finish(self, exc: BaseException | None) -> None:
        if self._ended:
            return
        self._ended = True
        if exc is None and self._receiving is not None:
            target, _, offset, size = self._receiving
            exc = AMQPConnectionError(
                "Server connection unexpectedly closed. "
                f"Read {target.filled - offset + FRAME_HEAD.size} bytes but {size + 8} bytes "
                "expected"
            )
        elif exc is None and (self._large is not None or self._end > self._start):
            have = self._filled if self._large is not None else self._end - self._start
            needed = len(self._large) if self._large is not None else FRAME_HEAD.size
            if self._large is None and have >= FRAME_HEAD.size:
                needed = FRAME_HEAD.unpack_from(self._view, self._start)[2] + FRAME_HEAD.size + 1
            exc = AMQPConnectionError(
                "Server connection unexpectedly closed. "
                f"Read {have} bytes but {needed} bytes expected"
            )
        elif isinstance(exc, ConnectionRefusedError):
            exc = AMQPConnectionError(f"Server connection refused: {exc!r}")
        elif isinstance(exc, ConnectionResetError):
            exc = AMQPConnectionError(f"Server connection reset: {exc!r}")
        elif isinstance(exc, ConnectionError):
            exc = AMQPConnectionError(f"Server connection error: {exc!r}")
        elif isinstance(exc, OSError):
            exc = AMQPConnectionError(f"Server communication error: {exc!r}")
        self._end_of_stream = exc
        self._wake()

    def _wake(self) -> None:
        if self._waiting_bytes > _PAUSE_AT and not self._reading_paused and self._transport:
            self._transport.pause_reading()
            self._reading_paused = True
        waiter = self._waiter
        if waiter is not None and not waiter.done() and (self._frames or self._ended):
            waiter.set_result(None)

    # aiormq's side: its reader task iterates over the frames.

    def __aiter__(self) -> "FrameStream":
        return self

    async def get_frame(self) -> tuple[int, int, Any]:
        """The next frame as (bytes used, channel, frame); the stream's end or error after the
        last one."""
        while not self._frames:
            if self._ended:
                if self._end_of_stream is None:
                    raise StopAsyncIteration
                raise self._end_of_stream
            self._waiter = self._stream_loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        frame = self._frames.popleft()
        self._waiting_bytes -= frame[0]
        if self._reading_paused and not self._ended and self._waiting_bytes <= _RESUME_AT:
            self._reading_paused = False
            if self._transport is not None:
                self._transport.resume_reading()
        return frame

    # Iterating is reading frames: one coroutine a frame, not two.
    __anext__ = get_frame


class FrameWriter(asyncio.StreamWriter):
    """The connection's writer: ``write`` also takes a list of buffers, which the transport
    writes in order with nothing between them (uvloop: one scatter write, no join), so a large
    body goes out as the view the outbox made of it (outbox.py)."""

    def write(self, data: bytes | bytearray | memoryview | list[bytes | memoryview]) -> None:
        if isinstance(data, list):
            self.transport.writelines(data)
        else:
            self.transport.write(data)


class HubTransport(aiormq.connection.TransportFactory):
    """aiormq's transport factory for the hub's connection: a ``FrameStream`` over TCP or TLS
    (``amqps``, with the context aiormq built from the URL or was given), and a
    ``FrameWriter`` on it for aiormq's writer task."""

    async def create(
        self, url: URL, **kwargs: Any
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        provider = kwargs.pop("ssl_context_provider", None)
        context: ssl.SSLContext | None = None
        if url.scheme == "amqps" and provider is not None:
            context = await provider.get_context()
        loop = asyncio.get_running_loop()
        try:
            transport, stream = await loop.create_connection(
                lambda: FrameStream(loop),
                host=url.host or "localhost",
                port=url.port or (5671 if context else 5672),
                ssl=context,
                **kwargs,
            )
        except OSError as exc:
            raise AMQPConnectionError(*exc.args) from exc
        writer = FrameWriter(transport, stream, None, loop)
        # aiormq types the reader as a StreamReader and hands it to FrameReceiver: install().
        return stream, writer  # type: ignore[return-value]


_aiormq_receiver = aiormq.connection.FrameReceiver


def _frame_receiver(reader: Any) -> Any:
    """aiormq's ``FrameReceiver(reader)``: a ``FrameStream`` is its own; any other connection
    keeps aiormq's."""
    if isinstance(reader, FrameStream):
        return reader
    return _aiormq_receiver(reader)


def install() -> None:
    """Let aiormq connections opened with ``HubTransport`` read their frames from the stream."""
    aiormq.connection.FrameReceiver = _frame_receiver  # type: ignore[misc,assignment]
