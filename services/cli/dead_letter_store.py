"""Reading the dead-letter queue without losing anything, and removing one entry when told.

The hub keeps every refused original in ``liaison.dead-letters`` with the refusal in headers
(code, reason, field path, the sender's broker account, when). Browsing consumes with manual
acks and never acks: closing the channel hands every message back to the queue. ``remove``
acks one browsed message, which is how a confirmed replay takes it out.

Two kinds share the queue, told apart by the broker's ``x-death`` header:

- a *refusal*: the hub refused what a partner sent (or the broker dead-lettered it from a hub
  shard at its delivery limit). Its routing key is the sender's org; it is replayed into the
  ingress as that sender, and the hub judges it again.
- an *inbox dead letter*: a delivery the hub made that left an inbox without being read — a
  partner rejected it, it expired, or it passed the inbox's delivery limit. It still carries
  the hub's headers (``x-liaison-sender``, type, precedence); ``x-death`` names the inbox it
  died in. Its routing key is only the *first* recipient's, so it is replayed into that inbox
  (``inbox``), never by routing key.

A dead letter's id is a short hash of what identifies that one refusal or death (routing key or
inbox, account, time, body), so it stays the same from one listing to the next.
"""

import asyncio
import enum
import re
import ssl
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Any, Self

import aio_pika
import aio_pika.abc
import msgspec

from liaison.common.errors import broker_errors
from liaison.common.urls import redact_url
from liaison.schemas.wire import (
    DEAD_LETTER_QUEUE,
    HEADER_ERROR_CODE,
    HEADER_ERROR_FIELD,
    HEADER_ERROR_REASON,
    HEADER_ORIGINAL_USER,
    HEADER_REFUSED_AT,
    HEADER_SENDER,
    dead_letter_id,
)

#: Headers the replay adds; a dead letter carrying them was refused again after a replay.
HEADER_REPLAYED_AT = "x-liaison-replayed-at"
HEADER_REPLAYED_BY = "x-liaison-replayed-by"
HEADER_REPLAY_OF = "x-liaison-replay-of"


class _Probe(msgspec.Struct):
    distribution_id: object = None
    sender: object = None
    body: object = None


_probe = msgspec.json.Decoder(_Probe)
#: ``inbox.<org>`` or ``inbox.<org>.flash`` with an organisation id as the directory allows it.
_INBOX = re.compile(r"^inbox\.[a-z][a-z0-9-]{1,47}(\.flash)?$")


class Origin(enum.StrEnum):
    """Which of the two kinds a dead letter is."""

    REFUSAL = "refusal"
    INBOX = "inbox"


@dataclass(frozen=True, slots=True)
class Death:
    """The broker's record of where a message died (the newest ``x-death`` entry)."""

    queue: str
    reason: str
    time: str


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One refused original, as the hub kept it."""

    id: str
    routing_key: str
    original_user: str
    refused_at: str
    code: int | None
    reason: str
    field_path: str | None
    message_type: str | None
    distribution_id: str | None
    sender: str | None
    content_type: str | None
    message_id: str | None
    headers: dict[str, Any]
    body: bytes
    message: aio_pika.abc.AbstractIncomingMessage
    origin: Origin = Origin.REFUSAL
    #: For an inbox dead letter: the inbox it died in, where replay puts it back.
    inbox: str | None = None

    @property
    def message_key(self) -> str:
        """``<sender>/<distribution_id>`` when readable (``@<inbox>`` for an inbox dead letter:
        one message dies once per recipient), else the dead letter's own id."""
        if self.sender and self.distribution_id:
            key = f"{self.sender}/{self.distribution_id}"
            return key if self.inbox is None else f"{key}@{self.inbox}"
        return f"dead-letter/{self.id}"

    @property
    def when(self) -> str:
        """The refusal time, short and local."""
        try:
            return datetime.fromisoformat(self.refused_at).astimezone().strftime("%d %b %H:%M:%S")
        except ValueError:
            return self.refused_at or "-"


def last_death(headers: dict[str, Any]) -> Death | None:
    """The newest ``x-death`` entry, or None when the broker never dead-lettered the message."""
    deaths = headers.get("x-death")
    if not isinstance(deaths, list | tuple) or not deaths or not isinstance(deaths[0], dict):
        return None
    entry = deaths[0]
    when = entry.get("time")
    return Death(
        queue=_text(entry.get("queue")) or "",
        reason=_text(entry.get("reason")) or "",
        time=when.isoformat() if isinstance(when, datetime) else _text(when) or "",
    )


_DEATH_REASONS = {
    "rejected": "rejected by the recipient",
    "expired": "expired unread",
    "delivery_limit": "over the delivery limit",
    "maxlen": "dropped at the length limit",
}


def read(message: aio_pika.abc.AbstractIncomingMessage) -> DeadLetter:
    """The dead letter a consumed message carries."""
    headers = dict(message.headers or {})
    death = last_death(headers)
    routing_key = message.routing_key or ""
    # A message the broker dead-lettered from a hub shard kept the sender's own user_id.
    user = _text(headers.get(HEADER_ORIGINAL_USER)) or message.user_id or ""
    refused_at = _text(headers.get(HEADER_REFUSED_AT)) or (death.time if death else "")
    origin, inbox, reason = Origin.REFUSAL, None, _text(headers.get(HEADER_ERROR_REASON)) or ""
    if death is not None and _INBOX.match(death.queue) and HEADER_SENDER in headers:
        origin, inbox = Origin.INBOX, death.queue
        reason = f"{_DEATH_REASONS.get(death.reason, death.reason)} in {death.queue}"
        user = ""
    elif death is not None and not reason:
        reason = f"{_DEATH_REASONS.get(death.reason, death.reason)} in {death.queue}"
    code = headers.get(HEADER_ERROR_CODE)
    try:
        probe = _probe.decode(message.body)
    except msgspec.DecodeError:
        probe = _Probe()
    body_type = probe.body.get("type") if isinstance(probe.body, dict) else None
    return DeadLetter(
        id=dead_letter_id(
            routing_key=routing_key, user_id=message.user_id, headers=headers, body=message.body
        ),
        routing_key=routing_key,
        original_user=user,
        refused_at=refused_at,
        code=code if isinstance(code, int) else None,
        reason=reason,
        field_path=_text(headers.get(HEADER_ERROR_FIELD)),
        message_type=message.type or (body_type if isinstance(body_type, str) else None),
        distribution_id=probe.distribution_id if isinstance(probe.distribution_id, str) else None,
        sender=probe.sender if isinstance(probe.sender, str) else None,
        content_type=message.content_type,
        message_id=message.message_id,
        headers=headers,
        body=message.body,
        message=message,
        origin=origin,
        inbox=inbox,
    )


def _text(value: object) -> str | None:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value if isinstance(value, str) else None


class DeadLetterQueue:
    """A browsing session on the dead-letter queue: ``async with DeadLetterQueue(url) as q``."""

    def __init__(
        self, url: str, *, idle_seconds: float = 1.0, ssl_context: ssl.SSLContext | None = None
    ) -> None:
        self._url = url
        self._ssl_context = ssl_context
        self._idle = idle_seconds
        self._connection: aio_pika.abc.AbstractConnection | None = None
        self.channel: aio_pika.abc.AbstractChannel | None = None

    async def __aenter__(self) -> Self:
        with broker_errors(f"cannot connect to {redact_url(self._url)}"):
            self._connection = await aio_pika.connect(
                self._url, timeout=15, ssl_context=self._ssl_context
            )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._connection is not None and not self._connection.is_closed:
            await self._connection.close()  # unacked dead letters go back to the queue

    @property
    def connection(self) -> aio_pika.abc.AbstractConnection:
        """The operator's connection, for publishing replays on."""
        assert self._connection is not None, "use DeadLetterQueue as an async context manager"
        return self._connection

    async def browse(self, limit: int | None = None) -> list[DeadLetter]:
        """Up to ``limit`` dead letters (all when None), oldest first, held unacknowledged."""
        with broker_errors(f"cannot read {DEAD_LETTER_QUEUE}"):
            self.channel = await self.connection.channel()
            queue = await self.channel.declare_queue(DEAD_LETTER_QUEUE, passive=True)
        waiting = queue.declaration_result.message_count or 0
        wanted = waiting if limit is None else min(limit, waiting)
        if wanted == 0:
            return []
        await self.channel.set_qos(prefetch_count=min(wanted, 10_000))
        got: list[DeadLetter] = []
        done = asyncio.Event()

        async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            if len(got) < wanted:
                got.append(read(message))
            if len(got) >= wanted:
                done.set()

        tag = await queue.consume(on_message, no_ack=False)
        while not done.is_set():
            before = len(got)
            try:
                await asyncio.wait_for(done.wait(), self._idle)
            except TimeoutError:
                if len(got) == before:
                    break  # fewer than counted: another operator took some meanwhile
        await queue.cancel(tag)
        return got

    async def remove(self, dead_letter: DeadLetter) -> None:
        """Take one browsed dead letter out of the queue for good."""
        with broker_errors(f"cannot remove dead letter {dead_letter.id}"):
            await dead_letter.message.ack()
