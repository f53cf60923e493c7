"""Publishing on the hub's hot path: an ordered outbox and the delivery's encoded properties.

Under ``make bench`` load aiormq's ``basic_publish`` was ~44% of the hub's CPU per message
(py-spy); the outbox and the direct property encoding below took the hub from ~340 to ~135 µs of
CPU per message (see bench/README.md).
"""

import asyncio
import struct
from typing import Any

import aiormq
import structlog
from aiormq.abc import ChannelFrame
from pamqp import commands as spec
from pamqp.body import ContentBody
from pamqp.frame import marshal
from pamqp.header import ContentHeader

from liaison.hub.refusal import HUB_SENDER
from liaison.schemas.wire import CONTENT_TYPE

log = structlog.get_logger("liaison.hub")

_METHOD_CACHE_SIZE = 4096

# A content header frame: type 2, channel, payload size; class 60 (basic), weight 0, body size.
_HEADER_FRAME = struct.Struct(">BHIHHQ")
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


def delivery_properties(
    *,
    message_id: str,
    message_type: str,
    timestamp: int,
    expiration: str | None,
    headers: dict[str, str | list[str]],
) -> bytes:
    """A delivery's basic properties (persistent, JSON, from the hub), encoded for the wire.

    The bytes pamqp's ``Basic.Properties`` marshals to, at a third of the cost: this is the
    one property set the hub sends per message, so it is encoded directly.
    """
    table: list[bytes] = []
    for key in sorted(headers):
        value = headers[key]
        table.append(_shortstr(key))
        if isinstance(value, str):
            table.append(_longstr_value(value))
        else:
            items = b"".join(map(_longstr_value, value))
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
            _shortstr(message_type),
            _APP_ID,
        )
    )


class Outbox:
    """A channel's publishes, handed to the connection in order by a single sender task.

    aiormq's ``basic_publish`` takes the channel lock, an ``asyncio.timeout`` and two context
    managers per call, and waits on the connection's 10-frame write queue while holding the
    lock; under ``make bench`` load that path was ~40% of the hub's CPU per message (profiled
    with py-spy). Here a publish is marshalled and numbered at once (so delivery tags follow
    the order frames reach the wire), its confirm is the same future aiormq resolves or
    rejects, and one task moves everything published since its last wake-up to the connection
    in one frame. Every publish of the channel goes through here, so nothing else takes a
    delivery tag out of order. This leans on aiormq 7's Channel attributes (``delivery_tag``,
    ``confirmations``, ``write_queue``); tests/hub fails loudly if they change.
    """

    def __init__(self, channel: aiormq.Channel, confirm_timeout: float) -> None:
        self.channel = channel
        self._confirm_timeout = confirm_timeout
        self._frames: list[bytes] = []
        self._wanted = asyncio.Event()
        # The Basic.Publish frame depends only on exchange and routing key: marshal it once.
        self._methods: dict[tuple[str, str], bytes] = {}

    def publish(
        self,
        body: bytes,
        *,
        exchange: str,
        routing_key: str,
        properties: spec.Basic.Properties | bytes,
    ) -> "asyncio.Future[Any]":
        """Queue one publish; the future resolves on the broker's ack, raises on its nack.

        ``properties`` may come encoded already (``delivery_properties``).
        """
        channel = self.channel
        if channel.is_closed:
            raise aiormq.exceptions.ChannelInvalidStateError(f"{channel!r} closed")
        channel.delivery_tag += 1
        # A bare future, not aiormq's create_future(): that one joins the channel's and the
        # connection's future stores, three done-callbacks per publish (measured: ~16% of the
        # hub's CPU per message). Nothing is lost: closing the channel fails the consumer task
        # that awaits it, and the broker redelivers the unacked message.
        confirmation: asyncio.Future[Any] = channel.loop.create_future()
        channel.confirmations[channel.delivery_tag] = confirmation
        number = channel.number
        frames = self._frames
        method = self._methods.get((exchange, routing_key))
        if method is None:
            if len(self._methods) >= _METHOD_CACHE_SIZE:
                self._methods.clear()
            method = marshal(spec.Basic.Publish(exchange=exchange, routing_key=routing_key), number)
            self._methods[exchange, routing_key] = method
        frames.append(method)
        if isinstance(properties, bytes):
            frames.append(
                _HEADER_FRAME.pack(2, number, 12 + len(properties), 60, 0, len(body))
                + properties
                + b"\xce"
            )
        else:
            frames.append(
                marshal(ContentHeader(properties=properties, body_size=len(body)), number)
            )
        step = channel.max_content_size
        for start in range(0, len(body), step):
            frames.append(marshal(ContentBody(body[start : start + step]), number))
        self._wanted.set()
        return confirmation

    async def send(self) -> None:
        """Hand what was published since the last wake-up to the connection's writer."""
        write_queue = self.channel.write_queue
        while True:
            await self._wanted.wait()
            self._wanted.clear()
            payload = b"".join(self._frames)
            self._frames.clear()
            # Blocks while the connection's write queue is full: the broker's backpressure.
            await write_queue.put(ChannelFrame(payload=payload, should_close=False))

    async def watch(self) -> None:
        """Close the channel when the broker leaves one publish unconfirmed for too long.

        One check per quarter of the timeout instead of a timer per publish; closing the
        channel fails every waiting publish, and the broker redelivers what was not acked.
        """
        confirmations = self.channel.confirmations
        interval = self._confirm_timeout / 4
        waiting: int | None = None
        waited = 0.0
        while True:
            await asyncio.sleep(interval)
            oldest = next(iter(confirmations), None)
            if oldest is None or oldest != waiting:
                waiting, waited = oldest, 0.0
                continue
            waited += interval
            if waited >= self._confirm_timeout:
                log.warning("confirm_timeout", delivery_tag=oldest, waited_s=round(waited, 1))
                await self.channel.close(
                    ConnectionError(f"no publish confirm in {waited:.1f}s"), timeout=5
                )
                return
