"""The Liaison partner SDK: send typed messages, read the inbox flash-first, answer with receipts.

See ``docs/partners.md`` for the contract underneath (usable from any AMQP client).
"""

from liaison.schemas.codes import ErrorCode
from liaison.schemas.messages.system import AckLevel
from liaison.sdk.client import Client, partner_url
from liaison.sdk.compose import compose, new_distribution_id, parse_ttl
from liaison.sdk.delivery import Delivery
from liaison.sdk.errors import (
    ConfirmTimeout,
    ConnectFailed,
    InvalidMessage,
    NotAnswerable,
    PublishFailed,
    SdkError,
    SettleFailed,
)
from liaison.sdk.inbox import Inbox
from liaison.sdk.refusal import Refusal
from liaison.sdk.tls import tls_context

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
    "tls_context",
]
