"""The hub's consume side: AMQP frames read from the socket in bulk and decoded without pamqp's
general machinery for the few frames every message brings.

aiormq reads each frame with three ``readexactly`` calls under a lock into a ``BytesIO``, then
decodes it with pamqp, which walks every field through a table of decoders, slicing the input
again for each; a delivery is three frames (deliver, content header with the properties and
their header table, body) and each publish brings a confirm frame back. Under ``make bench`` load
that was the largest part of the hub's consume side (bench/README.md, "Where a message's hub CPU
goes").

The hub's connection cuts frames out of what it receives (transport.py, ``FrameStream``) and
``decode_frame`` decodes ``Basic.Deliver``, ``Basic.Ack``, ``Basic.Nack``, content headers and
content bodies directly into the very pamqp objects pamqp would build (a large body frame's
value is a ``memoryview``: ``VIEW_FROM``).
Anything else, and anything these fast paths do not recognise as well formed (an
unusual field type in the header table, a length that overruns), goes to ``pamqp.frame.unmarshal``
whole, so every other frame, and every error, is pamqp's own. A property test holds the fast
paths equal to pamqp's decoding (tests/hub/test_frames.py).
"""

import struct
from typing import Any, cast

from pamqp import commands as spec
from pamqp import decode
from pamqp.body import ContentBody
from pamqp.frame import unmarshal
from pamqp.header import ContentHeader

#: A frame's head: type, channel, payload size; a frame ends with 0xCE after its payload.
FRAME_HEAD = struct.Struct(">BHI")
_FRAME_END = 0xCE
_METHOD, _HEADER, _BODY = 1, 2, 3
_DELIVER = (60 << 16) | 60
_ACK = (60 << 16) | 80
_NACK = (60 << 16) | 120
_U32 = struct.Struct(">I")
_I64 = struct.Struct(">q")
_CONTENT_HEADER = struct.Struct(">HHQH")
#: Fixed-size header table values by type tag, read as pamqp reads them (its ``TABLE_MAPPING``:
#: ``s`` is a signed 16-bit integer there, ``i`` an unsigned 32-bit one): layout, and whether
#: the value is a boolean.
_FIXED = {
    ord("t"): (struct.Struct(">B"), True),
    ord("b"): (struct.Struct(">b"), False),
    ord("B"): (struct.Struct(">B"), False),
    ord("s"): (struct.Struct(">h"), False),
    ord("u"): (struct.Struct(">H"), False),
    ord("I"): (struct.Struct(">l"), False),
    ord("i"): (struct.Struct(">L"), False),
}
#: A body frame from this size on decodes to a view of the bytes read, not a copy; the
#: transport receives a body of this size or more into its own bytes (transport.py).
VIEW_FROM = 64 * 1024

# Basic.Properties in pamqp's order, with their flag bits and AMQP types.
_PROPERTIES = tuple(
    (name, spec.Basic.Properties.flags[name], getattr(spec.Basic.Properties, "_" + name))
    for name in spec.Basic.Properties.__slots__
)
_PROPERTY_DEFAULTS = tuple(
    (name, getattr(spec.Basic.Properties(), name)) for name in spec.Basic.Properties.__slots__
)


class _Unusual(Exception):
    """Not a shape the fast paths take: pamqp decodes the whole frame instead."""


def _shortstr(data: bytes, offset: int, end: int) -> tuple[str, int]:
    length = data[offset]
    stop = offset + 1 + length
    if stop > end:
        raise _Unusual
    return data[offset + 1 : stop].decode(), stop


def _table(data: bytes, offset: int, end: int) -> tuple[dict[str, Any], int]:
    """A field table at ``offset`` as pamqp decodes it, and the offset after it."""
    length = _U32.unpack_from(data, offset)[0]
    offset += 4
    stop = offset + length
    if stop > end:
        raise _Unusual
    table: dict[str, Any] = {}
    while offset < stop:
        key, offset = _shortstr(data, offset, stop)
        if offset >= stop:
            raise _Unusual
        kind = data[offset]
        offset += 1
        value: Any
        if kind == 0x53:  # S: long string, text unless it is not UTF-8 (pamqp's rule)
            size = _U32.unpack_from(data, offset)[0]
            offset += 4
            if offset + size > stop:
                raise _Unusual
            raw = data[offset : offset + size]
            offset += size
            try:
                value = raw.decode()
            except UnicodeDecodeError:
                value = raw
        elif kind in (0x6C, 0x4C):  # l, L: 64-bit signed (pamqp reads L signed too)
            if offset + 8 > stop:
                raise _Unusual
            value = _I64.unpack_from(data, offset)[0]
            offset += 8
        elif kind in _FIXED:
            layout, bool_ = _FIXED[kind]
            if offset + layout.size > stop:
                raise _Unusual
            value = layout.unpack_from(data, offset)[0]
            if bool_:
                value = bool(value)
            offset += layout.size
        else:
            raise _Unusual
        table[key] = value
    return table, stop


def _properties(data: bytes, offset: int, end: int, flags: int) -> spec.Basic.Properties:
    properties = spec.Basic.Properties.__new__(spec.Basic.Properties)
    for name, default in _PROPERTY_DEFAULTS:
        setattr(properties, name, default)
    for name, flag, kind in _PROPERTIES:
        if not flags & flag:
            continue
        value: Any
        if kind == "shortstr":
            value, offset = _shortstr(data, offset, end)
        elif kind == "table":
            value, offset = _table(data, offset, end)
        elif kind == "octet":
            if offset >= end:
                raise _Unusual
            value = data[offset]
            offset += 1
        else:
            # timestamp: pamqp's decoder (it picks seconds or milliseconds by size).
            if offset + 8 > end:
                raise _Unusual
            _, value = decode.timestamp(data[offset : offset + 8])
            offset += 8
        setattr(properties, name, value)
    return properties


def _content_header(data: bytes, offset: int, end: int) -> ContentHeader:
    if offset + 14 > end:
        raise _Unusual
    class_id, weight, body_size, flags = _CONTENT_HEADER.unpack_from(data, offset)
    if flags & 1:
        raise _Unusual  # a second flag word: never sent for basic, pamqp knows what to do
    header = ContentHeader(weight, body_size, _properties(data, offset + 14, end, flags))
    header.class_id = class_id
    return header


def _method(data: bytes, offset: int, end: int) -> Any:
    if offset + 4 > end:
        raise _Unusual
    index = _U32.unpack_from(data, offset)[0]
    offset += 4
    if index in (_ACK, _NACK):
        if offset + 9 > end:
            raise _Unusual
        tag = _I64.unpack_from(data, offset)[0]  # pamqp reads a longlong signed
        bits = data[offset + 8]
        if index == _ACK:
            ack = spec.Basic.Ack.__new__(spec.Basic.Ack)
            ack.delivery_tag, ack.multiple = tag, bool(bits & 1)
            return ack
        nack = spec.Basic.Nack.__new__(spec.Basic.Nack)
        nack.delivery_tag, nack.multiple, nack.requeue = tag, bool(bits & 1), bool(bits & 2)
        return nack
    if index == _DELIVER:
        deliver = spec.Basic.Deliver.__new__(spec.Basic.Deliver)
        deliver.consumer_tag, offset = _shortstr(data, offset, end)
        if offset + 9 > end:
            raise _Unusual
        deliver.delivery_tag = _I64.unpack_from(data, offset)[0]
        deliver.redelivered = bool(data[offset + 8] & 1)
        deliver.exchange, offset = _shortstr(data, offset + 9, end)
        deliver.routing_key, offset = _shortstr(data, offset, end)
        return deliver
    raise _Unusual


def decode_frame(data: bytes, offset: int = 0) -> tuple[int, int, Any]:
    """(bytes used, channel, frame) of the complete frame at ``offset``, as
    ``pamqp.frame.unmarshal`` returns them; raises what it raises."""
    size = -1
    try:
        kind, channel, size = FRAME_HEAD.unpack_from(data, offset)
        end = offset + FRAME_HEAD.size + size
        if end >= len(data) or data[end] != _FRAME_END:
            raise _Unusual
        start = offset + FRAME_HEAD.size
        if kind == _BODY:
            if size >= VIEW_FROM:
                view = memoryview(data)[start:end]
                # pamqp types the value bytes; every reader of it takes any bytes-like object
                # (Deliveries' join, aiormq's BytesIO).
                return size + 8, channel, ContentBody(cast(bytes, view))
            return size + 8, channel, ContentBody(data[start:end])
        if kind == _HEADER:
            return size + 8, channel, _content_header(data, start, end)
        if kind == _METHOD:
            return size + 8, channel, _method(data, start, end)
    except (_Unusual, struct.error, ValueError, IndexError):
        pass
    return unmarshal(data[offset:] if size < 0 else data[offset : offset + size + 8])
