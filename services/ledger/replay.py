"""Replaying a dead letter the ledger kept, from the console: at most once, and recorded.

The same mechanism as ``liaison dead-letters replay`` (cli/replay.py): the original bytes go
back into ``liaison.ingress`` with the original sender's routing key and ``user_id``, which the
broker allows only to an account with the ``impersonator`` tag — the account the ledger runs
as. The hub then decides again, as for any message from that sender; its decision record
carries ``x-liaison-replay-of`` and closes the loop in the timeline.

Order: mark the dead letter replayed (only if it was not, in one UPDATE), publish and await the
broker's confirm, record a ``replay_sent`` event; a failed publish clears the mark again.
"""

from datetime import UTC, datetime
from typing import Any

import aio_pika
import aio_pika.exceptions
import aiormq.exceptions

from liaison.common.errors import LiaisonError
from liaison.ledger.records import HEADER_REPLAY_OF, HEADER_REPLAYED_BY
from liaison.schemas.wire import INGRESS_EXCHANGE

HEADER_REPLAYED_AT = "x-liaison-replayed-at"
#: Headers the hub or the broker added on the way into the dead-letter queue.
_NOT_REPLAYED = (
    "x-liaison-error-",
    "x-liaison-original-",
    "x-liaison-refused-",
    "x-death",
    "x-first-death",
    "x-last-",
    "x-delivery-count",
    "x-liaison-replay",
)


class ReplayRefused(LiaisonError):
    """The replay cannot be done: the HTTP status and why."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


async def replay_dead_letter(
    connection: Any, amqp_url: str, dead_letter_id: str, *, operator: str, force: bool = False
) -> datetime:
    """Replay one dead letter; returns when. ReplayRefused for unknown, done or unroutable."""
    row = await connection.fetchrow(
        "SELECT * FROM dead_letters WHERE dead_letter_id = $1", dead_letter_id
    )
    if row is None:
        raise ReplayRefused(404, f"no dead letter {dead_letter_id!r} in the ledger")
    sender, user_id = await _original_sender(connection, row)
    now = datetime.now(UTC)
    marked = await connection.fetchval(
        "UPDATE dead_letters SET replayed_at = $2, replayed_by = $3 WHERE dead_letter_id = $1 "
        "AND (replayed_at IS NULL OR $4) RETURNING dead_letter_id",
        dead_letter_id,
        now,
        operator,
        force,
    )
    if marked is None:
        raise ReplayRefused(
            409,
            f"{dead_letter_id} was replayed at {row['replayed_at']:%Y-%m-%d %H:%M:%S} by "
            f"{row['replayed_by']}; replay with force to do it again",
        )
    headers = {k: v for k, v in (row["headers"] or {}).items() if not k.startswith(_NOT_REPLAYED)}
    headers.update(
        {
            HEADER_REPLAY_OF: dead_letter_id,
            HEADER_REPLAYED_BY: operator,
            HEADER_REPLAYED_AT: now.isoformat(),
        }
    )
    try:
        await _publish(amqp_url, bytes(row["body"]), sender, user_id, headers)
    except BaseException:
        await connection.execute(
            "UPDATE dead_letters SET replayed_at = $2, replayed_by = $3 WHERE dead_letter_id = $1",
            dead_letter_id,
            row["replayed_at"],
            row["replayed_by"],
        )
        raise
    await connection.execute(
        "INSERT INTO events (occurred_at, event_key, message_id, org, kind, record_id, detail) "
        "VALUES ($1, $2, $3, NULL, 'replay_sent', NULL, $4) ON CONFLICT DO NOTHING",
        now,
        f"replay-sent:{dead_letter_id}:{now.isoformat()}",
        row["message_id"],
        {"dead_letter_id": dead_letter_id, "replayed_by": operator},
    )
    return now


async def _original_sender(connection: Any, row: Any) -> tuple[str, str]:
    # A hub refusal kept the account and the ingress routing key (the sender's org); an inbox
    # dead letter carries the recipient's key, so the sender comes from the decision record.
    if row["user_id"]:
        return row["routing_key"], row["user_id"]
    decided = await connection.fetchrow(
        "SELECT sender, user_id FROM messages WHERE message_id = $1 AND user_id IS NOT NULL "
        "ORDER BY decided_at LIMIT 1",
        row["message_id"],
    )
    if row["message_id"] is None or decided is None:
        raise ReplayRefused(422, "the ledger does not know who sent this message")
    return decided["sender"], decided["user_id"]


async def _publish(
    amqp_url: str, body: bytes, sender: str, user_id: str, headers: dict[str, Any]
) -> None:
    try:
        connection = await aio_pika.connect(
            amqp_url, client_properties={"connection_name": "liaison-ledger replay"}
        )
    except (OSError, aiormq.exceptions.AMQPError) as exc:
        raise ReplayRefused(503, f"cannot reach the broker: {exc}") from None
    try:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.get_exchange(INGRESS_EXCHANGE, ensure=False)
        await exchange.publish(
            aio_pika.Message(
                body,
                content_type="application/json",
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                user_id=user_id,
                headers=headers,
            ),
            routing_key=sender,
            timeout=10,
        )
    except (aiormq.exceptions.AMQPError, aio_pika.exceptions.AMQPException) as exc:
        # A user_id that is not the connection's own is refused unless the account has the
        # broker's 'impersonator' tag: say so, the channel error alone does not.
        raise ReplayRefused(
            503,
            f"the broker refused the replay as {user_id!r} ({type(exc).__name__}); replays need "
            "an account with the 'impersonator' tag and write access to liaison.ingress: set "
            "LIAISON_LEDGER_REPLAY_URL to the operators' account",
        ) from None
    finally:
        await connection.close()
