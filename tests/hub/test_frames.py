"""The hub's frame reader decodes every frame exactly as pamqp does, however the bytes arrive."""

import asyncio
import re
from datetime import UTC, datetime
from typing import Any

import pytest
from aiormq.exceptions import AMQPConnectionError, InvalidFrameError, ProtocolSyntaxError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pamqp import commands as spec
from pamqp import frame as pamqp_frame
from pamqp.body import ContentBody
from pamqp.exceptions import PAMQPException
from pamqp.header import ContentHeader
from pamqp.heartbeat import Heartbeat

from liaison.hub.frames import VIEW_FROM, decode_frame
from liaison.hub.transport import FrameStream
from tests.hub.support import feed

_shortstr = st.text(max_size=40).filter(lambda s: len(s.encode()) <= 255)
_int64 = st.integers(-(2**63), 2**63 - 1)
_field_value = st.recursive(
    st.one_of(
        st.text(max_size=300),
        st.booleans(),
        st.integers(-(2**31), 2**31 - 1),
        _int64,
        st.floats(allow_nan=False, width=32),
        st.none(),
        st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2100, 1, 1)).map(
            lambda d: d.replace(microsecond=0, tzinfo=UTC)
        ),
    ),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(_shortstr.filter(bool), inner, max_size=4)
    ),
    max_leaves=8,
)
_headers = st.dictionaries(_shortstr.filter(bool), _field_value, max_size=6)
_properties = st.builds(
    spec.Basic.Properties,
    content_type=st.none() | _shortstr,
    content_encoding=st.none() | _shortstr,
    headers=st.none() | _headers,
    delivery_mode=st.none() | st.sampled_from([1, 2]),
    priority=st.none() | st.integers(0, 255),
    correlation_id=st.none() | _shortstr,
    reply_to=st.none() | _shortstr,
    expiration=st.none() | _shortstr,
    message_id=st.none() | _shortstr,
    timestamp=st.none()
    | st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2100, 1, 1)).map(
        lambda d: d.replace(microsecond=0, tzinfo=UTC)
    ),
    message_type=st.none() | _shortstr,
    user_id=st.none() | _shortstr,
    app_id=st.none() | _shortstr,
)
_channel = st.integers(1, 2047)
_frames = st.one_of(
    st.builds(
        lambda props, size, ch: pamqp_frame.marshal(ContentHeader(0, size, props), ch),
        _properties,
        st.integers(0, 2**40),
        _channel,
    ),
    st.builds(
        lambda tag, key, exchange, tag_no, again, ch: pamqp_frame.marshal(
            spec.Basic.Deliver(
                consumer_tag=tag,
                delivery_tag=tag_no,
                redelivered=again,
                exchange=exchange,
                routing_key=key,
            ),
            ch,
        ),
        _shortstr,
        _shortstr,
        st.from_regex(r"[a-z.]{0,20}", fullmatch=True),
        st.integers(1, 2**63 - 1),
        st.booleans(),
        _channel,
    ),
    st.builds(
        lambda n, multiple, ch: pamqp_frame.marshal(
            spec.Basic.Ack(delivery_tag=n, multiple=multiple), ch
        ),
        st.integers(0, 2**63 - 1),
        st.booleans(),
        _channel,
    ),
    st.builds(
        lambda n, multiple, requeue, ch: pamqp_frame.marshal(
            spec.Basic.Nack(delivery_tag=n, multiple=multiple, requeue=requeue), ch
        ),
        st.integers(0, 2**63 - 1),
        st.booleans(),
        st.booleans(),
        _channel,
    ),
    st.builds(
        lambda body, ch: pamqp_frame.marshal(ContentBody(body), ch), st.binary(min_size=1), _channel
    ),
    st.builds(
        lambda n, ch: pamqp_frame.marshal(spec.Basic.QosOk(), ch) if n else Heartbeat().marshal(),
        st.booleans(),
        _channel,
    ),
)


def _fields(frame: Any) -> Any:
    """A frame as plain data with every value's type, so equal means decoded the same."""
    if isinstance(frame, ContentHeader):
        return ("header", frame.class_id, frame.weight, frame.body_size, _fields(frame.properties))
    if isinstance(frame, ContentBody):
        return ("body", type(frame.value), frame.value)
    names = getattr(type(frame), "__slots__", None) or sorted(vars(frame))
    return (type(frame), [(n, _typed(getattr(frame, n, None))) for n in names])


def _typed(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _typed(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_typed(v) for v in value]
    return (type(value), value)


def _error(exc: Exception) -> Any:
    # pamqp's messages name the frame object by its address.
    return (type(exc), re.sub(r" at 0x[0-9a-f]+", "", str(exc)))


def _pamqp(data: bytes) -> Any:
    try:
        used, channel, frame = pamqp_frame.unmarshal(data)
    except PAMQPException as exc:
        return _error(exc)
    return used, channel, _fields(frame)


def _ours(data: bytes) -> Any:
    try:
        used, channel, frame = decode_frame(data)
    except PAMQPException as exc:
        return _error(exc)
    return used, channel, _fields(frame)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(_frames)
def test_frames_decode_as_pamqp_decodes_them(data: bytes) -> None:
    """Every frame kind, with any properties and header table, decodes as pamqp decodes it."""
    assert _ours(data) == _pamqp(data)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(_frames, st.data())
def test_damaged_frames_fail_or_decode_as_in_pamqp(data: bytes, draw: st.DataObject) -> None:
    """A frame with a byte changed or cut short gives pamqp's frame or pamqp's error."""
    position = draw.draw(st.integers(0, len(data) - 1))
    if draw.draw(st.booleans()):
        damaged = data[:position] + bytes([draw.draw(st.integers(0, 255))]) + data[position + 1 :]
    else:
        damaged = data[:position] + data[-1:]
    try:
        expected = _pamqp(damaged)
    except Exception as exc:  # pamqp's own failure outside its exception type: ours must match
        with pytest.raises(type(exc)):
            _ours(damaged)
        return
    assert _ours(damaged) == expected


async def _read_all(chunks: list[bytes], *, eof: bool = True) -> list[Any]:
    stream = FrameStream()
    for chunk in chunks:
        feed(stream, chunk)
    if eof:
        stream.eof_received()
    frames = []
    async for used, channel, frame in stream:
        frames.append((used, channel, _fields(frame)))
    return frames


def _as_pamqp_bodies(frames: list[Any]) -> list[Any]:
    """Body frames' views as bytes, where the transport may give views: a frame of VIEW_FROM
    bytes or more, or a frame of a body announced at VIEW_FROM or more (received into one bytes
    object). A view anywhere else fails."""
    announced: dict[int, int] = {}
    out = []
    for used, channel, fields in frames:
        if fields[0] == "header":
            announced[channel] = fields[3]
        elif fields[0] == "body" and fields[1] is memoryview:
            assert max(len(fields[2]), announced.get(channel, 0)) >= VIEW_FROM
            fields = ("body", bytes, bytes(fields[2]))
        out.append((used, channel, fields))
    return out


@settings(max_examples=100, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_frames, min_size=1, max_size=8), st.data())
def test_reader_cuts_frames_out_of_any_chunking(frames: list[bytes], draw: st.DataObject) -> None:
    """Frames arriving split and joined in any way come out one by one, in order, as pamqp's."""
    stream = b"".join(frames)
    cuts = sorted(draw.draw(st.sets(st.integers(1, max(1, len(stream) - 1)), max_size=10)))
    chunks = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
    expected = [_pamqp(f) for f in frames]
    assert _as_pamqp_bodies(asyncio.run(_read_all([c for c in chunks if c]))) == expected


def test_reader_fails_as_aiormq_on_a_cut_connection_and_a_bad_frame() -> None:
    """A connection closed mid-frame, a protocol header and a broken frame raise aiormq's errors."""
    ack = pamqp_frame.marshal(spec.Basic.Ack(delivery_tag=7), 1)
    with pytest.raises(AMQPConnectionError, match="unexpectedly closed"):
        asyncio.run(_read_all([ack + ack[:5]]))
    with pytest.raises(ProtocolSyntaxError):
        asyncio.run(_read_all([b"AMQP\x00\x00\x09\x01"]))
    with pytest.raises(InvalidFrameError):
        asyncio.run(_read_all([ack[:-1] + b"\x00"]))
    assert asyncio.run(_read_all([ack])) == [_pamqp(ack)]


def test_a_hub_delivery_never_falls_back_to_pamqp(monkeypatch: pytest.MonkeyPatch) -> None:
    """The frames of a signed partner message and its confirms take the fast paths, not pamqp."""
    from liaison.hub import frames

    properties = spec.Basic.Properties(
        content_type="application/json",
        delivery_mode=2,
        user_id="partner-account",
        headers={"x-liaison-signature": "eyJ..c2ln", "x-delivery-count": 3, "flag": True},
    )
    stream = [
        spec.Basic.Deliver("ctag", 1, False, "liaison.ingress", "dpko"),
        ContentHeader(0, 2, properties),
        ContentBody(b"{}"),
        spec.Basic.Ack(delivery_tag=9, multiple=True),
        spec.Basic.Nack(delivery_tag=10, requeue=False),
    ]

    def refuse(data: bytes) -> Any:
        raise AssertionError(f"pamqp decoded {data[:16]!r}")

    monkeypatch.setattr(frames, "unmarshal", refuse)
    for value in stream:
        data = pamqp_frame.marshal(value, 1)
        assert _fields(decode_frame(data)[2]) == _pamqp(data)[2]


def test_a_large_body_frame_is_a_view_of_the_bytes_read() -> None:
    """From VIEW_FROM on, a body frame's value is a view (no copy) holding pamqp's bytes,
    however the frame arrived; below it, bytes as pamqp gives them."""
    from liaison.hub.frames import VIEW_FROM

    for size, kind in (
        (VIEW_FROM - 1, bytes),
        (VIEW_FROM, memoryview),
        (VIEW_FROM + 9, memoryview),
    ):
        body = bytes(i % 251 for i in range(size))
        data = pamqp_frame.marshal(ContentBody(body), 5)
        used, channel, frame = decode_frame(data)
        assert (used, channel, type(frame.value)) == (len(data), 5, kind)
        assert bytes(frame.value) == body
        chunks = [data[start : start + 10_000] for start in range(0, len(data), 10_000)]
        ((_, _, (_, read_kind, value)),) = asyncio.run(_read_all(chunks))
        assert (read_kind, bytes(value)) == (kind, body)
