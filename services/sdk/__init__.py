"""The Liaison partner SDK: send typed messages, read the inbox flash-first, answer with receipts.

See ``docs/partners.md`` for the contract underneath (usable from any AMQP client).
"""

from schemas.codes import ErrorCode
from schemas.messages.system import AckLevel
from services.sdk.client import Client, partner_url
from services.sdk.compose import compose, new_distribution_id, parse_ttl
from services.sdk.delivery import Delivery
from services.sdk.errors import (
    ConfirmTimeout,
    ConnectFailed,
    InvalidMessage,
    NotAnswerable,
    PublishFailed,
    SdkError,
    SettleFailed,
)
from services.sdk.inbox import Inbox
from services.sdk.refusal import Refusal

__all__ = [
    "AckLevel",
    "Client",
    "ConfirmTimeout",
    "ConnectFailed",
    "Delivery",
    "ErrorCode",
    "Inbox",
    "InvalidMessage",
    "NotAnswerable",
    "PublishFailed",
    "Refusal",
    "SdkError",
    "SettleFailed",
    "compose",
    "new_distribution_id",
    "parse_ttl",
    "partner_url",
]
