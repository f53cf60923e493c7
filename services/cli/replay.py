"""Replaying a dead letter where it was going, at most once.

A hub refusal goes back into the ingress as its original sender (below). An inbox dead letter
(a delivery rejected, expired or over the delivery limit in an inbox) was already judged and
delivered by the hub: it goes back into the inbox it died in, through ``liaison.replay``, with
the hub's headers (sender, type, precedence) and message id as they were, so the recipient's
SDK sees the same delivery again.

The broker only lets a connection publish with its own ``user_id`` — unless the account has
RabbitMQ's ``impersonator`` tag. Replay uses exactly that: a dedicated operator account tagged
``impersonator`` (rights: write ``liaison.ingress``, read ``liaison.dead-letters``, nothing
else) republishes the original bytes to ``liaison.ingress`` with the original routing key and
``user_id`` (the hub kept it in ``x-liaison-original-user-id``). The hub then treats the replay
like any message from that sender: same validation, authorisation, shard and dedupe. Replays
carry ``x-liaison-replayed-at``, ``-replayed-by`` and ``-replay-of`` for the audit trail.

At most once, in this order: check the replay log; publish and wait for the broker's confirm;
append the replay to the log (flushed to disk); only then remove the dead letter. A crash
between the confirm and the removal leaves the dead letter in the queue but recorded, so the
next attempt refuses it without ``--force``; the hub's dedupe window catches a repeat too.
"""

import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aio_pika
import aio_pika.abc
import msgspec

from liaison.cli.dead_letter_store import (
    HEADER_REPLAY_OF,
    HEADER_REPLAYED_AT,
    HEADER_REPLAYED_BY,
    DeadLetter,
    Origin,
)
from liaison.common.errors import (
    BrokerAccessRefused,
    BrokerError,
    BrokerNotFound,
    BrokerPreconditionFailed,
    ConfigError,
    broker_errors,
)
from liaison.common.topology import REPLAY_EXCHANGE
from liaison.directory.settings import OperatorSettings
from liaison.schemas.wire import (
    HEADER_ORIGINAL_USER,
    HEADER_PRECEDENCE,
    HEADER_REFUSED_AT,
    HEADER_SENDER,
    HEADER_TYPE,
    INGRESS_EXCHANGE,
)

#: Headers the hub or the broker added on the way into the dead-letter queue.
_NOT_REPLAYED = ("x-liaison-error-", "x-delivery-count", "x-death", "x-first-death", "x-last-")


class ReplayRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One line of the replay log."""

    dead_letter_id: str
    message_key: str
    sender: str
    user_id: str
    message_type: str | None
    code: int | None
    replayed_at: str
    replayed_by: str
    #: The inbox an inbox dead letter was put back into (None: replayed into the ingress).
    inbox: str | None = None


class ReplayLog:
    """An append-only JSON-lines file of every replay done from this installation."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def from_env(cls, path: Path | None = None) -> "ReplayLog":
        """``path``, else LIAISON_REPLAY_LOG, else ./var/replays.jsonl."""
        return cls(path or OperatorSettings.from_env().replay_log)

    def records(self) -> list[ReplayRecord]:
        """Every replay recorded so far."""
        try:
            lines = self.path.read_bytes().splitlines()
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise ConfigError(f"cannot read the replay log {self.path}: {exc.strerror}") from None
        decoder = msgspec.json.Decoder(ReplayRecord)
        out = []
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                out.append(decoder.decode(line))
            except msgspec.DecodeError:
                raise ConfigError(f"{self.path}:{number} is not a replay record") from None
        return out

    def previous(self, dead_letter: DeadLetter) -> ReplayRecord | None:
        """The earlier replay of this dead letter or of the same message, if any."""
        for record in self.records():
            if dead_letter.id == record.dead_letter_id or (
                dead_letter.message_key == record.message_key
            ):
                return record
        return None

    def append(self, record: ReplayRecord) -> None:
        """Add one record and make sure it is on disk before returning."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("ab") as handle:
                handle.write(msgspec.json.encode(record) + b"\n")
                handle.flush()
                os.fsync(handle.fileno())
        except OSError as exc:
            raise ConfigError(f"cannot write the replay log {self.path}: {exc.strerror}") from None


@dataclass(frozen=True, slots=True)
class Replayer:
    """Republishes dead letters on the operator's connection, recording each."""

    connection: aio_pika.abc.AbstractConnection
    channel: aio_pika.abc.AbstractChannel
    operator: str
    log: ReplayLog

    @classmethod
    async def open(
        cls, connection: aio_pika.abc.AbstractConnection, operator: str, log: ReplayLog
    ) -> "Replayer":
        """A replayer with its own confirmed channel."""
        channel = await connection.channel(publisher_confirms=True)
        return cls(connection, channel, operator, log)

    async def replay(self, dead_letter: DeadLetter) -> ReplayRecord:
        """Put ``dead_letter`` back where it was going, confirmed, then record it."""
        now = datetime.now(UTC).isoformat()
        if dead_letter.origin is Origin.INBOX:
            await self._back_into_inbox(dead_letter, now)
        else:
            await self._into_ingress(dead_letter, now)
        record = ReplayRecord(
            dead_letter_id=dead_letter.id,
            message_key=dead_letter.message_key,
            sender=(
                (dead_letter.sender or "")
                if dead_letter.origin is Origin.INBOX
                else dead_letter.routing_key
            ),
            user_id=dead_letter.original_user,
            message_type=dead_letter.message_type,
            code=dead_letter.code,
            replayed_at=now,
            replayed_by=self.operator,
            inbox=dead_letter.inbox,
        )
        self.log.append(record)
        return record

    def _replay_headers(
        self, dead_letter: DeadLetter, now: str, drop: frozenset[str]
    ) -> dict[str, Any]:
        headers = {
            k: v
            for k, v in dead_letter.headers.items()
            if not k.startswith(_NOT_REPLAYED) and k not in drop
        }
        headers.update(
            {
                HEADER_REPLAYED_AT: now,
                HEADER_REPLAYED_BY: self.operator,
                HEADER_REPLAY_OF: dead_letter.id,
            }
        )
        return headers

    async def _back_into_inbox(self, dead_letter: DeadLetter, now: str) -> None:
        inbox = dead_letter.inbox
        assert inbox is not None, "an inbox dead letter names its inbox"
        try:
            # A passive declare needs no right: it tells a removed organisation's inbox apart
            # from one that is there, so nothing is replayed where no queue takes it.
            with broker_errors(f"cannot check {inbox}"):
                probe = await self.connection.channel()
                await probe.declare_queue(inbox, passive=True)
                await probe.close()
        except BrokerNotFound:
            raise BrokerError(
                f"{dead_letter.id} died in {inbox}, which no longer exists; nothing replayed"
            ) from None
        message = aio_pika.Message(
            dead_letter.body,
            content_type=dead_letter.content_type,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            message_id=dead_letter.message_id,
            type=dead_letter.message.type,
            app_id=dead_letter.message.app_id,
            timestamp=dead_letter.message.timestamp,
            headers=self._replay_headers(dead_letter, now, frozenset()),
        )
        exchange = await self.channel.get_exchange(REPLAY_EXCHANGE, ensure=False)
        try:
            with broker_errors(f"replay of {dead_letter.id} not confirmed"):
                await exchange.publish(message, routing_key=inbox, timeout=30)
        except BrokerAccessRefused as exc:
            raise BrokerError(
                f"{self.operator!r} may not publish to {REPLAY_EXCHANGE}: {exc.detail} "
                "(run `liaison provision` to grant the operators' account)"
            ) from None

    async def _into_ingress(self, dead_letter: DeadLetter, now: str) -> None:
        headers = self._replay_headers(dead_letter, now, _HUB_HEADERS)
        message = aio_pika.Message(
            dead_letter.body,
            content_type=dead_letter.content_type,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            user_id=dead_letter.original_user or None,
            message_id=dead_letter.message_id,
            headers=headers,
        )
        exchange = await self.channel.get_exchange(INGRESS_EXCHANGE, ensure=False)
        try:
            with broker_errors(f"replay of {dead_letter.id} not confirmed"):
                await exchange.publish(
                    message, routing_key=dead_letter.routing_key, mandatory=True, timeout=30
                )
        except BrokerPreconditionFailed:
            raise BrokerError(
                f"the broker refused to let {self.operator!r} publish as "
                f"{dead_letter.original_user!r}: the replay account needs the "
                "'impersonator' tag (see docs/partners.md, Replaying dead letters)"
            ) from None
        except BrokerAccessRefused as exc:
            raise BrokerError(
                f"{self.operator!r} may not publish to {INGRESS_EXCHANGE}: {exc.detail}"
            ) from None


#: What the hub sets on the dead-letter copy; the replay starts clean.
_HUB_HEADERS = frozenset(
    {HEADER_ORIGINAL_USER, HEADER_REFUSED_AT, HEADER_SENDER, HEADER_TYPE, HEADER_PRECEDENCE}
)
