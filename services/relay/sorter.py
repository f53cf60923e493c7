"""The one thing on the site no shovel can do: read each envelope's precedence.

Site partners publish to ``liaison.ingress`` as at headquarters; their messages wait in
``relay.outbound``. The sorter moves each, in order, to the flash or the routine queue (the
shovel of the flash queue has a small prefetch, so a flash message crosses the link while a
routine backlog drains). It republishes with confirms and acknowledges only after the confirm:
a crash leaves a copy that the hub's delivery memory recognises (same sender and distribution
id), never a loss. Properties are kept, except ``user_id`` (the sorter is not the partner;
the shovel sets the site's account) and ``expiration`` (a site queue would drop an expired
message silently; expiry is the hub's to judge, from the envelope), and a missing ``timestamp``
is filled in, so the site
broker reports the age of the oldest waiting message (``head_message_timestamp``).
"""

import asyncio
import time
from datetime import UTC, datetime

import aio_pika
import aio_pika.abc
import msgspec
import structlog

from liaison.relay.site import FLASH_EXCHANGE, OUTBOUND_QUEUE, ROUTINE_EXCHANGE
from liaison.schemas.types import Precedence

log = structlog.get_logger("liaison.relay.sorter")

PREFETCH = 64


class _Head(msgspec.Struct):
    precedence: str = Precedence.ROUTINE.value


_HEAD = msgspec.json.Decoder(_Head)


def is_flash(body: bytes) -> bool:
    """Whether an envelope asks for flash precedence; anything unreadable is routine."""
    try:
        return _HEAD.decode(body).precedence == Precedence.FLASH.value
    except msgspec.DecodeError:
        return False


class Sorter:
    """Reads ``relay.outbound`` on the site broker and files each message flash or routine."""

    def __init__(self, url: str) -> None:
        self._url = url
        self.sorted_flash = 0
        self.sorted_routine = 0
        self.connected = False
        self.last_error: str | None = None

    async def run(self) -> None:
        """Sort until cancelled, reconnecting to the site broker as needed."""
        while True:
            try:
                await self._session()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.connected = False
                self.last_error = str(exc) or type(exc).__name__
                log.warning("sorter lost the site broker", reason=self.last_error)
                await asyncio.sleep(2)

    async def _session(self) -> None:
        connection = await aio_pika.connect(self._url)
        try:
            channel = await connection.channel(publisher_confirms=True)
            await channel.set_qos(prefetch_count=PREFETCH)
            flash = await channel.get_exchange(FLASH_EXCHANGE, ensure=False)
            routine = await channel.get_exchange(ROUTINE_EXCHANGE, ensure=False)
            queue = await channel.get_queue(OUTBOUND_QUEUE, ensure=False)
            self.connected = True
            async with queue.iterator() as messages:
                async for message in messages:
                    await self._sort(message, flash, routine)
        finally:
            self.connected = False
            await connection.close()

    async def _sort(
        self,
        message: aio_pika.abc.AbstractIncomingMessage,
        flash: aio_pika.abc.AbstractExchange,
        routine: aio_pika.abc.AbstractExchange,
    ) -> None:
        urgent = is_flash(message.body)
        copy = aio_pika.Message(
            message.body,
            headers=dict(message.headers or {}),
            content_type=message.content_type,
            content_encoding=message.content_encoding,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            priority=message.priority,
            correlation_id=message.correlation_id,
            reply_to=message.reply_to,
            message_id=message.message_id,
            timestamp=message.timestamp or datetime.fromtimestamp(time.time(), UTC),
            type=message.type,
            app_id=message.app_id,
        )
        # The routing key is the partner's org id, checked by the site broker: it crosses.
        await (flash if urgent else routine).publish(copy, routing_key=message.routing_key or "")
        await message.ack()
        if urgent:
            self.sorted_flash += 1
        else:
            self.sorted_routine += 1
