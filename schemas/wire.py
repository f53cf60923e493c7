"""The AMQP side of the partner contract: names and properties a partner relies on.

These are published in the AsyncAPI document, so they belong to the contract, not to a service:
renaming one is a breaking change for every partner.
"""

import hashlib
from typing import Final

#: Topic exchange partners publish to. Routing key: the sender's organisation id.
INGRESS_EXCHANGE: Final = "liaison.ingress"
#: Topic exchange the hub delivers through; routing key ``<org>`` or ``<org>.flash``.
DELIVERY_EXCHANGE: Final = "liaison.delivery"
#: Where refused originals are kept, with the reason in headers.
DEAD_LETTER_EXCHANGE: Final = "liaison.dead"
DEAD_LETTER_QUEUE: Final = "liaison.dead-letters"
#: One copy of every delivery, bound with ``#``.
AUDIT_QUEUE: Final = "liaison.audit"

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


def dead_letter_id(routing_key: str, user: str, refused_at: str, body: bytes) -> str:
    """The short id operators see for one dead letter (``liaison dead-letters``, the ledger).

    Derived from the dead letter itself (routing key, original user, refusal time, body), so
    every tool names the same dead letter the same way.
    """
    digest = hashlib.blake2b(digest_size=6)
    for part in (routing_key, user, refused_at):
        digest.update(part.encode())
        digest.update(b"\0")
    digest.update(body)
    return digest.hexdigest()
