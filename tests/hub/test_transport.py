"""The hub's broker connection (transport.py): frames received into the hub's own buffers,
large ones into buffers of their own, reading paused while aiormq's reader falls behind, and
aiormq's errors for a cut connection or a broken frame, after every frame received before it."""

import asyncio
from typing import Any
from unittest.mock import patch

import pytest
from aiormq.exceptions import AMQPConnectionError, InvalidFrameError
from hypothesis import given, settings
from hypothesis import strategies as st
from pamqp import commands as spec
from pamqp import frame as pamqp_frame
from pamqp.body import ContentBody
from pamqp.header import ContentHeader

from liaison.hub import transport as hub_transport
from liaison.hub.channel import _whole
from liaison.hub.frames import VIEW_FROM
from liaison.hub.transport import _PAUSE_AT, _RESUME_AT, READ_SIZE, FrameStream, FrameWriter
from tests.hub.support import feed


class _Transport:
    """What FrameStream calls on its transport, recorded."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def pause_reading(self) -> None:
        self.calls.append("pause")

    def resume_reading(self) -> None:
        self.calls.append("resume")


def _delivery(body: bytes, channel: int = 1, frame_max: int = 131_072) -> list[bytes]:
    """A delivery's frames as the broker sends them: deliver, header, body frames."""
    step = frame_max - 8
    return [
        pamqp_frame.marshal(spec.Basic.Deliver("ctag", 1, False, "liaison.ingress", "k"), channel),
        pamqp_frame.marshal(ContentHeader(0, len(body), spec.Basic.Properties()), channel),
        *(
            pamqp_frame.marshal(ContentBody(body[i : i + step]), channel)
            for i in range(0, len(body), step)
        ),
    ]


async def _drain(stream: FrameStream) -> list[Any]:
    out = []
    async for used, channel, frame in stream:
        out.append((used, channel, frame))
    return out


@pytest.mark.parametrize("compiled", [True, False], ids=["into-bodies", "no-compiled-buffers"])
@settings(max_examples=40, deadline=None)
@given(
    sizes=st.lists(
        st.sampled_from([0, 1, 900, VIEW_FROM - 1, VIEW_FROM, 131_064, 131_065, 300_000]),
        min_size=1,
        max_size=5,
    ),
    cuts=st.lists(st.integers(1, 200_000), max_size=12),
)
async def test_bodies_of_any_size_arrive_whole_however_the_reads_fall(
    compiled: bool, sizes: list[int], cuts: list[int]
) -> None:
    """Deliveries with small, threshold and multi-frame bodies, received in reads cut anywhere
    (one byte, a frame head, across frames): every frame comes out in order, with pamqp's
    values. A body of VIEW_FROM or more is received into a bytes object of its own, each of
    its frames a view of it (without the compiled buffers: each frame of VIEW_FROM or more a
    view of a buffer of its own)."""
    bodies = [bytes([n % 251]) * size for n, size in enumerate(sizes)]
    wire = b"".join(b"".join(_delivery(body)) for body in bodies)
    with patch("liaison.hub.transport.fresh", hub_transport.fresh if compiled else None):
        stream = FrameStream()
        at = 0
        for cut in cuts:
            feed(stream, wire[at : at + cut])
            at += cut
            if at >= len(wire):
                break
        feed(stream, wire[at:])
        stream.eof_received()
    frames = await _drain(stream)
    got: list[list[bytes | memoryview]] = []
    for _, channel, frame in frames:
        assert channel == 1
        if isinstance(frame, ContentHeader):
            got.append([])
        elif isinstance(frame, ContentBody):
            got[-1].append(frame.value)
    assert [b"".join(parts) for parts in got] == bodies
    for body, parts in zip(bodies, got, strict=True):
        if compiled and len(body) >= VIEW_FROM:
            whole = parts[0].obj  # type: ignore[union-attr]
            assert isinstance(whole, bytes)
            assert whole == body
            assert all(isinstance(p, memoryview) and p.obj is whole for p in parts)
        else:
            for value in parts:
                assert isinstance(value, memoryview if len(value) >= VIEW_FROM else bytes)
    assert sum(used for used, _, _ in frames) == len(wire)


async def test_reading_pauses_while_frames_wait_and_resumes_when_taken() -> None:
    """More than _PAUSE_AT bytes of frames not taken pause the transport's reading; taking
    them down to _RESUME_AT resumes it, once each way."""
    stream = FrameStream()
    transport = _Transport()
    stream.connection_made(transport)  # type: ignore[arg-type]
    frame = pamqp_frame.marshal(ContentBody(b"x" * 100_000), 1)
    count = _PAUSE_AT // len(frame) + 2
    for _ in range(count):
        feed(stream, frame)
    assert transport.calls == ["pause"]
    taken = 0
    while stream._waiting_bytes > _RESUME_AT:
        await stream.get_frame()
        taken += 1
    assert transport.calls == ["pause", "resume"]
    for _ in range(count - taken):
        await stream.get_frame()
    assert transport.calls == ["pause", "resume"]


async def test_a_connection_cut_inside_a_large_frame_fails_after_the_frames_before_it() -> None:
    """The frames received whole come out first; then aiormq's 'unexpectedly closed' error,
    naming how much of the large frame had arrived."""
    frames = _delivery(b"y" * 200_000)
    stream = FrameStream()
    feed(stream, b"".join(frames[:2]) + frames[2][:70_000])
    stream.eof_received()
    first = await stream.get_frame()
    second = await stream.get_frame()
    assert isinstance(first[2], spec.Basic.Deliver)
    assert isinstance(second[2], ContentHeader)
    with pytest.raises(AMQPConnectionError, match="Read 70000 bytes but 131072 bytes expected"):
        await stream.get_frame()


async def test_a_reset_connection_is_aiormqs_error_after_the_frames_before_it() -> None:
    """A connection lost with an OS error ends the frames with aiormq's error for it, and a
    waiting reader is woken with it."""
    stream = FrameStream()
    ack = pamqp_frame.marshal(spec.Basic.Ack(delivery_tag=3), 1)
    feed(stream, ack)
    assert isinstance((await stream.get_frame())[2], spec.Basic.Ack)
    waiting = asyncio.ensure_future(stream.get_frame())
    await asyncio.sleep(0)
    stream.connection_lost(ConnectionResetError(104, "Connection reset by peer"))
    with pytest.raises(AMQPConnectionError, match="Server connection reset"):
        await waiting


async def test_a_broken_frame_ends_the_stream_after_the_good_ones_and_stops_reading() -> None:
    """A large frame without its end byte: the frames before it come out, then aiormq's
    InvalidFrameError; reading is paused and later bytes are ignored."""
    stream = FrameStream()
    transport = _Transport()
    stream.connection_made(transport)  # type: ignore[arg-type]
    good = pamqp_frame.marshal(spec.Basic.Ack(delivery_tag=1), 1)
    bad = bytearray(pamqp_frame.marshal(ContentBody(b"z" * (VIEW_FROM + 5)), 1))
    bad[-1] = 0
    feed(stream, good + bytes(bad) + good)
    assert isinstance((await stream.get_frame())[2], spec.Basic.Ack)
    with pytest.raises(InvalidFrameError):
        await stream.get_frame()
    assert transport.calls == ["pause"]
    with pytest.raises(InvalidFrameError):
        await stream.get_frame()


async def test_small_frames_never_outgrow_the_buffer() -> None:
    """Frames just under VIEW_FROM arriving a byte short of whole, again and again: the unread
    bytes move to the front and the buffer never grows (it cannot: views of it are lent)."""
    stream = FrameStream()
    frame = pamqp_frame.marshal(ContentBody(b"s" * (VIEW_FROM - 1)), 2)
    wire = frame * 20
    for start in range(0, len(wire), len(frame) - 1):
        feed(stream, wire[start : start + len(frame) - 1])
    assert len(stream._buffer) == READ_SIZE
    frames = [await stream.get_frame() for _ in range(20)]
    assert all(bytes(f[2].value) == b"s" * (VIEW_FROM - 1) for f in frames)


class _WriteTransport(_Transport):
    """A transport for the writer's side: what FrameWriter and StreamWriter.drain call."""

    def __init__(self) -> None:
        super().__init__()
        self.written: list[bytes] = []
        self.closing = False

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def write(self, data: bytes) -> None:
        self.written.append(bytes(data))

    def writelines(self, pieces: list[bytes | memoryview]) -> None:
        self.written.append(b"".join(pieces))


async def test_the_writer_writes_lists_whole_and_drain_waits_while_the_transport_is_full() -> None:
    """A list of buffers is one write, in order; drain returns at once, waits from
    pause_writing to resume_writing, and fails once the connection is lost."""
    loop = asyncio.get_running_loop()
    stream = FrameStream(loop)
    transport = _WriteTransport()
    stream.connection_made(transport)  # type: ignore[arg-type]
    writer = FrameWriter(transport, stream, None, loop)  # type: ignore[arg-type]
    body = b"b" * 70_000
    writer.write([b"head", memoryview(body)[:10], b"tail"])
    writer.write(b"plain")
    assert transport.written == [b"head" + body[:10] + b"tail", b"plain"]
    await asyncio.wait_for(writer.drain(), 1)
    stream.pause_writing()
    draining = asyncio.ensure_future(writer.drain())
    await asyncio.sleep(0.01)
    assert not draining.done()
    stream.resume_writing()
    await asyncio.wait_for(draining, 1)
    stream.pause_writing()
    draining = asyncio.ensure_future(writer.drain())
    await asyncio.sleep(0)
    stream.connection_lost(ConnectionResetError(104, "reset"))
    with pytest.raises(ConnectionResetError):
        await asyncio.wait_for(draining, 1)
    with pytest.raises(ConnectionResetError):
        await writer.drain()
    writer.close()
    await asyncio.wait_for(writer.wait_closed(), 1)


async def test_a_frame_beyond_frame_max_is_refused_before_anything_is_allocated() -> None:
    """An HTTP server's answer reads as a frame of about a gigabyte: InvalidFrameError at
    once, nothing allocated for it. After the broker's Connection.Tune its frame_max is the
    bound: a frame of frame_max bytes passes, one byte more is refused after the frames
    before it."""
    stream = FrameStream()
    feed(stream, b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
    with pytest.raises(InvalidFrameError, match="more than the broker's frame_max 131072"):
        await stream.get_frame()
    assert stream._large is None

    stream = FrameStream()
    tune = pamqp_frame.marshal(spec.Connection.Tune(channel_max=2047, frame_max=200_000), 0)
    fits = pamqp_frame.marshal(ContentBody(b"f" * (200_000 - 8)), 1)
    beyond = pamqp_frame.marshal(ContentBody(b"g" * (200_000 - 7)), 1)
    feed(stream, tune + fits)
    assert isinstance((await stream.get_frame())[2], spec.Connection.Tune)
    assert stream.frame_max == 200_000
    assert bytes((await stream.get_frame())[2].value) == b"f" * (200_000 - 8)
    feed(stream, beyond[:100])
    with pytest.raises(InvalidFrameError, match="a frame of 200001 bytes"):
        await stream.get_frame()


@pytest.mark.parametrize("cut", [None, 80_000], ids=["whole-in-buffer", "into-body"])
async def test_a_broken_end_of_a_body_frame_received_into_its_body_ends_the_stream(
    cut: int | None,
) -> None:
    """A large body's frame without its end byte, whether it arrived whole with the frames
    before it or was received into the body from the socket: the frames before it come out,
    then aiormq's InvalidFrameError, and reading stops."""
    stream = FrameStream()
    transport = _Transport()
    stream.connection_made(transport)  # type: ignore[arg-type]
    frames = _delivery(b"q" * 200_000)
    bad = bytearray(frames[2])
    bad[-1] = 0
    wire = b"".join(frames[:2]) + bytes(bad)
    if cut is None:
        feed(stream, wire)
    else:
        feed(stream, wire[:cut])
        feed(stream, wire[cut:])
    assert isinstance((await stream.get_frame())[2], spec.Basic.Deliver)
    assert isinstance((await stream.get_frame())[2], ContentHeader)
    with pytest.raises(InvalidFrameError, match="ends with 0x00"):
        await stream.get_frame()
    assert transport.calls == ["pause"]


async def test_large_bodies_of_two_channels_interleaved_frame_by_frame_arrive_whole() -> None:
    """AMQP lets frames of different channels interleave: each channel's large body is
    received into its own bytes, whole."""
    one, two = _delivery(b"1" * 300_000, channel=1), _delivery(b"2" * 200_000, channel=2)
    wire = b"".join(a + b for a, b in zip(one, two, strict=False)) + one[-1]
    stream = FrameStream()
    feed(stream, wire)
    stream.eof_received()
    parts: dict[int, list[Any]] = {1: [], 2: []}
    for _, channel, frame in await _drain(stream):
        if isinstance(frame, ContentBody):
            parts[channel].append(frame.value)
    assert _whole(parts[1], 300_000) == b"1" * 300_000
    assert _whole(parts[2], 200_000) == b"2" * 200_000


async def test_a_body_frame_beyond_its_headers_size_is_left_to_pamqp() -> None:
    """A body frame that carries more than the content header announced is not written into
    the body's bytes (nothing is written beyond them): it comes out as pamqp decodes it."""
    deliver, header, _ = _delivery(b"s" * VIEW_FROM)
    longer = pamqp_frame.marshal(ContentBody(b"t" * (VIEW_FROM + 10)), 1)
    stream = FrameStream()
    feed(stream, deliver + header + longer)
    stream.eof_received()
    (value,) = [f.value for _, _, f in await _drain(stream) if isinstance(f, ContentBody)]
    assert bytes(value) == b"t" * (VIEW_FROM + 10)
    assert not stream._bodies


def test_a_body_is_the_transports_bytes_only_when_its_parts_cover_them() -> None:
    """The consumer's body is the object the transport received into when the frames' views
    cover it whole; any other mixture is joined (a copy)."""
    whole = b"abcdef" * 20_000
    view = memoryview(whole)
    assert _whole([view[:50_000], view[50_000:]], len(whole)) is whole
    assert _whole([b"abc"], 3) == b"abc"
    assert _whole([view[:50_000]], 50_000) is None
    assert _whole([view[:50_000], b"x" * 70_000], len(whole)) is None
    assert _whole([memoryview(bytearray(10))], 10) is None
    assert _whole([], 0) is None


def test_the_compiled_buffers_are_built_and_give_a_bytes_object_to_fill() -> None:
    """This repository's install has liaison.hub._buffers (make install builds it): fresh(n)
    gives bytes of n and a writable view of their storage; a negative size is refused."""
    fresh = hub_transport.fresh
    assert fresh is not None
    body, into = fresh(5)
    assert len(body) == len(into) == 5
    assert not into.readonly
    into[:] = b"abcde"
    into.release()
    assert body == b"abcde"
    with pytest.raises(ValueError, match="0 or more"):
        fresh(-1)


async def test_a_header_announcing_more_than_the_bound_allocates_no_body() -> None:
    """A content header claiming a body beyond _BODY_INTO_MAX (a broken or hostile peer: no
    hub message comes near it) gets no bytes object: its body frames take the ordinary path."""
    deliver = pamqp_frame.marshal(spec.Basic.Deliver("ctag", 1, False, "x", "k"), 1)
    header = pamqp_frame.marshal(
        ContentHeader(0, hub_transport._BODY_INTO_MAX + 1, spec.Basic.Properties()), 1
    )
    body = pamqp_frame.marshal(ContentBody(b"u" * VIEW_FROM), 1)
    stream = FrameStream()
    feed(stream, deliver + header + body)
    assert not stream._bodies
    stream.eof_received()
    (value,) = [f.value for _, _, f in await _drain(stream) if isinstance(f, ContentBody)]
    assert bytes(value) == b"u" * VIEW_FROM
    assert not isinstance(value.obj, bytes) or len(value.obj) != VIEW_FROM
