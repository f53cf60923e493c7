"""The AMQP side of the partner contract: names and properties a partner relies on.

These are published in the AsyncAPI document, so they belong to the contract, not to a service:
renaming one is a breaking change for every partner.
"""

import hashlib
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final

#: Topic exchange partners publish to. Routing key: the sender's organisation id.
INGRESS_EXCHANGE: Final = "liaison.ingress"
#: Topic exchange the hub delivers through; routing key ``<org>`` or ``<org>.flash``.
DELIVERY_EXCHANGE: Final = "liaison.delivery"
#: Where refused originals are kept, with the reason in headers.
DEAD_LETTER_EXCHANGE: Final = "liaison.dead"
DEAD_LETTER_QUEUE: Final = "liaison.dead-letters"

#: The RabbitMQ virtual host `liaison provision` creates by default (`LIAISON_VHOST`); the AMQP
#: URL's path, e.g. ``amqps://broker.example.org:5671/liaison``.
VHOST: Final = "liaison"
#: The envelope `sender` and `x-liaison-sender` of the hub's own messages (error reports); the
#: directory refuses it as an organisation id.
HUB_SENDER: Final = "liaison"
#: Partners publish with `mandatory` set, so a message no hub queue takes is returned to them
#: rather than dropped by the broker.
PUBLISH_MANDATORY: Final = True
#: Persistent: the message survives a broker restart.
PUBLISH_DELIVERY_MODE: Final = 2

CONTENT_TYPE: Final = "application/json"
#: Largest message body the hub accepts, in bytes; larger ones are refused with code 101.
MAX_MESSAGE_BYTES: Final = 256 * 1024

#: Headers the hub sets on what it delivers and dead-letters.
HEADER_SENDER: Final = "x-liaison-sender"
HEADER_TYPE: Final = "x-liaison-type"
HEADER_PRECEDENCE: Final = "x-liaison-precedence"
HEADER_ERROR_CODE: Final = "x-liaison-error-code"
HEADER_ERROR_REASON: Final = "x-liaison-error-reason"
HEADER_ERROR_FIELD: Final = "x-liaison-error-field"
HEADER_ORIGINAL_USER: Final = "x-liaison-original-user-id"
HEADER_REFUSED_AT: Final = "x-liaison-refused-at"
#: The sender's signature over the exact body bytes: a JWS in compact serialisation with a
#: detached, unencoded payload (RFC 7515 App. F, RFC 7797),
#: ``BASE64URL(protected)..BASE64URL(signature)``, protected header
#: ``{"alg":"Ed25519","kid":…,"b64":false,"crit":["b64"]}``. The hub forwards it unchanged
#: with the body, so every recipient verifies end to end.
HEADER_SIGNATURE: Final = "x-liaison-signature"
#: Set (``"true"``) on a copy the hub published for a message the broker redelivered to it with
#: no record of its delivery: an earlier hub process may have published the same copy before it
#: stopped (the broker takes a copy before its confirm reaches the hub). The copy has the same
#: ``message_id`` as any earlier one: a receiver that has seen that id drops it.
HEADER_POSSIBLE_REPEAT: Final = "x-liaison-possible-repeat"


def inbox_queue(org: str) -> str:
    """The queue an organisation reads routine, priority and immediate messages from."""
    return f"inbox.{org}"


def flash_inbox_queue(org: str) -> str:
    """The queue an organisation reads flash messages from, ahead of its routine backlog."""
    return f"inbox.{org}.flash"


def delivery_key(org: str, *, flash: bool) -> str:
    """Routing key on the delivery exchange for one recipient."""
    return f"{org}.flash" if flash else org


def delivered_message_id(sender: str, distribution_id: str) -> str:
    """The AMQP message_id of a delivery: the same on every redelivery, so receivers dedupe."""
    return f"{sender}/{distribution_id}"


#: ``inbox.<org>`` or ``inbox.<org>.flash`` with an organisation id as the directory allows it.
_INBOX_QUEUE = re.compile(r"^inbox\.[a-z][a-z0-9-]{1,47}(\.flash)?$")


def dead_letter_id(
    *, routing_key: str, user_id: str | None, headers: Mapping[str, Any], body: bytes
) -> str:
    """The short id operators see for one dead letter (``liaison dead-letters``, the ledger).

    Every tool calls this with the dead letter as the broker hands it over (routing key,
    ``user_id`` property, headers, body), so each names the same dead letter the same way. It
    hashes where the letter died, who sent it and when:

    - a copy that died in an inbox (``x-death`` names an inbox and the hub's sender header is
      there): that inbox, no account (the hub published it), the time it died;
    - a refusal (the hub's, or the broker's at a hub shard's delivery limit): the routing key,
      the sender's account, the time it was refused.

    An inbox copy is named by its inbox, not its routing key: a fan-out's copies all carry the
    first recipient's routing key, and two of them may die the same way.
    """
    death = _newest_death(headers)
    died_in = _text(death.get("queue")) if death is not None else None
    when = _text(headers.get(HEADER_REFUSED_AT))
    if not when and death is not None:
        time = death.get("time")
        when = time.isoformat() if isinstance(time, datetime) else _text(time)
    if died_in and _INBOX_QUEUE.match(died_in) and HEADER_SENDER in headers:
        where, user = died_in, ""
    else:
        where, user = routing_key, _text(headers.get(HEADER_ORIGINAL_USER)) or user_id or ""
    digest = hashlib.blake2b(digest_size=6)
    for part in (where, user, when or ""):
        digest.update(part.encode())
        digest.update(b"\0")
    digest.update(body)
    return digest.hexdigest()


def _newest_death(headers: Mapping[str, Any]) -> Mapping[str, Any] | None:
    deaths = headers.get("x-death")
    if isinstance(deaths, list | tuple) and deaths and isinstance(deaths[0], Mapping):
        return deaths[0]
    return None


def _text(value: object) -> str | None:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value if isinstance(value, str) else None
