"""Copies that expire unread in an inbox: the sender hears of it, operators keep the dead letter.

Inbox queues dead-letter to ``liaison.inbox-dead`` (not the hub's refusals' exchange), whose
queue this reader consumes in every hub process. For each dead letter it reads why the broker
dropped it (``x-first-death-reason``) and from which inbox (``x-first-death-queue``); for an
``expired`` copy of a partner's message (the sender is the hub's ``x-liaison-sender`` header) it
sends the sender an error report 401 naming the recipient that did not receive it in time. Every
dead letter, expired or not, then goes on to ``liaison.dead`` (``liaison.dead-letters``) for
operators, with the report's code and reason in headers, and is acknowledged only once both
publishes are confirmed. A redelivery after a crash repeats the report under the same id, which
the sender's dedupe drops.

A quorum queue expires messages at its head only: a copy behind an unread backlog is dropped,
and reported, when the partner has read up to it.
"""

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import UTC, datetime
from typing import Any, cast

import aiormq
import structlog
from aiohttp import web
from aiormq.abc import DeliveredMessage
from pamqp import commands as spec

from liaison.common.config import redact_url
from liaison.common.reconnect import keep_running
from liaison.common.topology import INBOX_DEAD_LETTER_QUEUE
from liaison.directory.index import DirectoryIndex
from liaison.hub.decisions import Refusal
from liaison.hub.properties import report_properties
from liaison.hub.reports import error_report, report_id
from liaison.hub.settings import HubSettings
from liaison.schemas.codes import ErrorCode
from liaison.schemas.wire import (
    DEAD_LETTER_EXCHANGE,
    DELIVERY_EXCHANGE,
    HEADER_ERROR_CODE,
    HEADER_ERROR_REASON,
    HEADER_REFUSED_AT,
    HEADER_SENDER,
    delivery_key,
)

log = structlog.get_logger("liaison.hub")

_INBOX_PREFIX = "inbox."
_FLASH_SUFFIX = ".flash"


def recipient_of(queue: object, directory: DirectoryIndex) -> str | None:
    """The organisation whose inbox (routine or flash) ``queue`` is, if it is one."""
    if not isinstance(queue, str) or not queue.startswith(_INBOX_PREFIX):
        return None
    org = queue.removeprefix(_INBOX_PREFIX).removesuffix(_FLASH_SUFFIX)
    return org if org in directory.organisations else None


def expired_copy(
    headers: Mapping[str, Any],
    message_id: str | None,
    message_type: str | None,
    directory: DirectoryIndex,
) -> Refusal | None:
    """The sender's report for a dead letter that expired unread in an inbox, else None.

    Reads only what the broker (``x-first-death-*``) and the hub (``x-liaison-sender``, the
    ``sender/id`` message id) set; anything else, or anything malformed, gets no report.
    """
    if headers.get("x-first-death-reason") != "expired":
        return None
    recipient = recipient_of(headers.get("x-first-death-queue"), directory)
    sender = headers.get(HEADER_SENDER)
    if recipient is None or not isinstance(sender, str) or sender not in directory.organisations:
        return None
    distribution_id: str | None = None
    if isinstance(message_id, str) and message_id.startswith(f"{sender}/"):
        distribution_id = message_id.removeprefix(f"{sender}/") or None
    address = f"org:{recipient}"
    return Refusal(
        ErrorCode.EXPIRED_UNREAD,
        f"expired unread in {address}'s inbox: {recipient} did not receive it in time",
        None,
        distribution_id,
        message_type if isinstance(message_type, str) and len(message_type) <= 64 else None,
        sender,
        refused_recipients=(recipient,),
        refused_addresses=(address,),
    )


class InboxDeadLetters:
    """Consumes the inbox dead letters: report expired copies, keep every one for operators."""

    def __init__(
        self,
        settings: HubSettings,
        directory: Callable[[], DirectoryIndex],
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self._directory = directory
        self._clock = clock
        self._hub_key = settings.hub_key()
        self._stopping = asyncio.Event()
        #: Attached to the inbox dead-letter queue.
        self.consuming = False
        #: Reports sent, for tests and logs.
        self.reported = 0
        #: Which of the settings' broker nodes to try next.
        self._node = 0

    async def run(self) -> None:
        """Consume until ``stop``; reconnect with backoff whenever the broker goes away."""
        await keep_running(
            self._session,
            stopping=self._stopping,
            max_backoff=self.settings.reconnect_max_seconds,
            on_failure=self._failed,
            on_end=self._ended,
        )

    def _failed(self, exc: Exception, retry_in: float) -> None:
        log.warning(
            "inbox_dead_letters_unavailable",
            url=redact_url(self._broker_url),
            error=f"{type(exc).__name__}: {exc}",
            retry_in=round(retry_in, 2),
        )
        # On a cluster, try the next node (the hub's own rotation, kept apart).
        self._node += 1

    def _ended(self) -> None:
        self.consuming = False

    @property
    def _broker_url(self) -> str:
        urls = self.settings.amqp_urls
        return urls[self._node % len(urls)]

    async def stop(self) -> None:
        """Stop after the message in hand; what is unacknowledged goes back to the queue."""
        self._stopping.set()

    async def _session(self) -> None:
        connection = await aiormq.connect(
            self._broker_url,
            context=self.settings.ssl_context(),
            client_properties={"connection_name": "liaison-hub inbox-dead-letters"},
        )
        try:
            channel = cast(aiormq.Channel, await connection.channel(publisher_confirms=True))
            # One at a time: dead letters are rare, and order of reports does not matter.
            await channel.basic_qos(prefetch_count=1)
            await channel.basic_consume(INBOX_DEAD_LETTER_QUEUE, self._on_message, no_ack=False)
            self.consuming = True
            stopping = asyncio.ensure_future(self._stopping.wait())
            try:
                await asyncio.wait(
                    [connection.closing, channel.closing, stopping],
                    return_when=asyncio.FIRST_COMPLETED,
                )
            finally:
                stopping.cancel()
            if not self._stopping.is_set():
                raise ConnectionError("broker connection lost")
        finally:
            self.consuming = False
            if not connection.is_closed:
                await connection.close()

    async def _on_message(self, message: DeliveredMessage) -> None:
        channel = cast(aiormq.Channel, message.channel)
        delivery = cast(spec.Basic.Deliver, message.delivery)
        props = message.header.properties
        headers: dict[str, Any] = dict(props.headers or {})
        refusal = expired_copy(headers, props.message_id, props.message_type, self._directory())
        now = datetime.fromtimestamp(self._clock(), UTC)
        if refusal is not None:
            headers[HEADER_ERROR_CODE] = int(refusal.code)
            headers[HEADER_ERROR_REASON] = refusal.reason[:1000]
            headers[HEADER_REFUSED_AT] = now.isoformat()
            await self._report(channel, refusal, message.body, now)
        kept = spec.Basic.Properties(
            content_type=props.content_type,
            delivery_mode=2,
            message_id=props.message_id,
            message_type=props.message_type,
            timestamp=props.timestamp,
            app_id=props.app_id,
            headers=headers,
        )
        await channel.basic_publish(
            message.body,
            exchange=DEAD_LETTER_EXCHANGE,
            routing_key=delivery.routing_key or "",
            properties=kept,
        )
        tag = delivery.delivery_tag
        assert tag is not None
        await channel.basic_ack(tag)
        log.info(
            "inbox_dead_letter",
            reason=headers.get("x-first-death-reason"),
            queue=headers.get("x-first-death-queue"),
            message_id=props.message_id,
            reported_to=None if refusal is None else refusal.reply_to,
        )

    async def _report(
        self, channel: aiormq.Channel, refusal: Refusal, original: bytes, now: datetime
    ) -> None:
        assert refusal.reply_to is not None
        report = report_id(refusal, original)
        body = error_report(refusal, report=report, now=now)
        signature = None if self._hub_key is None else self._hub_key.sign(body)
        await channel.basic_publish(
            body,
            exchange=DELIVERY_EXCHANGE,
            routing_key=delivery_key(refusal.reply_to, flash=False),
            properties=report_properties(report, now=now, signature=signature),
        )
        self.reported += 1


def inbox_dead_letters_ctx(
    reader: InboxDeadLetters,
) -> Callable[[web.Application], AsyncIterator[None]]:
    """An aiohttp cleanup context running ``reader`` for the app's lifetime."""

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(reader.run(), name="hub-inbox-dead-letters")
        yield
        await reader.stop()
        try:
            await asyncio.wait_for(task, reader.settings.shutdown_grace_seconds)
        except TimeoutError:
            task.cancel()

    return ctx
