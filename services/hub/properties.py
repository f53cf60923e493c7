"""The AMQP properties of everything the hub publishes, built here and nowhere else.

    delivery_properties      a routed message, encoded straight to wire bytes (hot path)
    report_properties        an error report to a sender
    dead_letter_properties   a refused original, kept with the reason in its headers

Every publish is persistent. The delivery's set is encoded by hand because it is the one the
hub sends per message (a third of pamqp's cost); a property test holds it equal to pamqp's
encoding (tests/hub/test_outbox.py).
"""

import struct
from collections.abc import Callable
from datetime import UTC, datetime

from pamqp import commands as spec
from pamqp.common import FieldTable

from liaison.hub.decisions import Refusal
from liaison.schemas.wire import (
    CONTENT_TYPE,
    HEADER_ERROR_CODE,
    HEADER_ERROR_FIELD,
    HEADER_ERROR_REASON,
    HEADER_ORIGINAL_USER,
    HEADER_POSSIBLE_REPEAT,
    HEADER_REFUSED_AT,
    HEADER_SENDER,
    HEADER_SIGNATURE,
    HEADER_TYPE,
    HUB_SENDER,
    delivered_message_id,
)

#: Properties as the outbox takes them: pamqp's, or already encoded (``delivery_properties``).
Properties = spec.Basic.Properties | bytes

_PERSISTENT = 2
_LONG = struct.Struct(">I")
_FLAGS = struct.Struct(">H")
_TIMESTAMP = struct.Struct(">Q")
# Basic properties present on every delivery, by their flag bits: content type, headers,
# delivery mode, message id, timestamp, type, app id; expiration when the message has one.
_DELIVERY_FLAGS = 0x8000 | 0x2000 | 0x1000 | 0x0080 | 0x0040 | 0x0020 | 0x0008
_EXPIRATION_FLAG = 0x0100
_CONTENT_TYPE = bytes((len(CONTENT_TYPE),)) + CONTENT_TYPE.encode()
_APP_ID = bytes((len(HUB_SENDER),)) + HUB_SENDER.encode()


def _shortstr(value: str) -> bytes:
    raw = value.encode()
    if len(raw) > 255:
        raise ValueError(f"an AMQP short string holds 255 bytes, not {len(raw)}")
    return bytes((len(raw),)) + raw


def _longstr_value(value: str) -> bytes:
    raw = value.encode()
    return b"S" + _LONG.pack(len(raw)) + raw


#: Encoded header fields and strings the hub sends again and again (header names, senders,
#: types, precedences, recipients' routing keys), by what they encode; values longer than
#: ``_CACHED_LENGTH`` (signatures) are encoded each time. Bounded: cleared when full.
_CACHED_LENGTH = 64
_CACHE_ENTRIES = 4096
_fields: dict[tuple[str, str], bytes] = {}
_longstrs: dict[str, bytes] = {}
_shortstrs: dict[str, bytes] = {}


def _field(key: str, value: str) -> bytes:
    """A header table entry: the key's short string, then the value's long string."""
    encoded = _fields.get((key, value))
    if encoded is None:
        encoded = _shortstr(key) + _longstr_value(value)
        if len(value) <= _CACHED_LENGTH:
            if len(_fields) >= _CACHE_ENTRIES:
                _fields.clear()
            _fields[key, value] = encoded
    return encoded


def _cached(cache: dict[str, bytes], encode: Callable[[str], bytes], value: str) -> bytes:
    encoded = cache.get(value)
    if encoded is None:
        encoded = encode(value)
        if len(value) <= _CACHED_LENGTH:
            if len(cache) >= _CACHE_ENTRIES:
                cache.clear()
            cache[value] = encoded
    return encoded


def delivery_properties(
    *,
    message_id: str,
    message_type: str,
    timestamp: int,
    expiration: str | None,
    headers: dict[str, str | list[str]],
) -> bytes:
    """A delivery's basic properties (persistent, JSON, from the hub), encoded for the wire.

    The bytes pamqp's ``Basic.Properties`` marshals to, at a third of the cost.
    """
    table: list[bytes] = []
    for key in sorted(headers):
        value = headers[key]
        if isinstance(value, str):
            table.append(_field(key, value))
        else:
            items = b"".join([_cached(_longstrs, _longstr_value, item) for item in value])
            table.append(_cached(_shortstrs, _shortstr, key))
            table.append(b"A" + _LONG.pack(len(items)) + items)
    encoded_table = b"".join(table)
    flags = _DELIVERY_FLAGS if expiration is None else _DELIVERY_FLAGS | _EXPIRATION_FLAG
    return b"".join(
        (
            _FLAGS.pack(flags),
            _CONTENT_TYPE,
            _LONG.pack(len(encoded_table)),
            encoded_table,
            b"\x02",  # delivery mode: persistent
            b"" if expiration is None else _shortstr(expiration),
            _shortstr(message_id),
            _TIMESTAMP.pack(timestamp),
            _cached(_shortstrs, _shortstr, message_type),
            _APP_ID,
        )
    )


def report_properties(
    report_id: str,
    *,
    now: datetime,
    signature: str | None = None,
    possible_repeat: bool = False,
) -> spec.Basic.Properties:
    """An error report's properties: from the hub, with a message id stable across repeats,
    signed with the hub's key when it has one, marked when it may repeat an earlier one."""
    headers: FieldTable = {HEADER_SENDER: HUB_SENDER, HEADER_TYPE: "error.report"}
    if signature is not None:
        headers[HEADER_SIGNATURE] = signature
    if possible_repeat:
        headers[HEADER_POSSIBLE_REPEAT] = "true"
    return spec.Basic.Properties(
        content_type=CONTENT_TYPE,
        delivery_mode=_PERSISTENT,
        message_id=delivered_message_id(HUB_SENDER, report_id),
        message_type="error.report",
        app_id=HUB_SENDER,
        timestamp=now,
        headers=headers,
    )


def dead_letter_properties(
    original: spec.Basic.Properties, refusal: Refusal, *, now: float, possible_repeat: bool = False
) -> spec.Basic.Properties:
    """A refused original's properties: its own, plus why, when and whose it was (and whether
    it may repeat an earlier dead letter)."""
    headers = dict(original.headers or {})
    headers.update(
        {
            HEADER_ERROR_CODE: int(refusal.code),
            HEADER_ERROR_REASON: refusal.reason[:1000],
            HEADER_ORIGINAL_USER: original.user_id or "",
            HEADER_REFUSED_AT: datetime.fromtimestamp(now, UTC).isoformat(),
        }
    )
    if refusal.field_path:
        headers[HEADER_ERROR_FIELD] = refusal.field_path
    if possible_repeat:
        headers[HEADER_POSSIBLE_REPEAT] = "true"
    return spec.Basic.Properties(
        content_type=original.content_type,
        delivery_mode=_PERSISTENT,
        message_id=original.message_id,
        message_type=refusal.message_type,
        timestamp=original.timestamp,
        headers=headers,
    )
