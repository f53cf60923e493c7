"""The AMQP side of the partner contract: names and properties a partner relies on.

These are published in the AsyncAPI document, so they belong to the contract, not to a service:
renaming one is a breaking change for every partner.
"""

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

#: The sender id of the hub's own messages (error reports); no organisation may take it.
HUB_SENDER: Final = "liaison"

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
