"""The Liaison partner SDK: send typed messages, read the inbox flash-first, answer with receipts.

    from liaison.sdk import Client, EoSpotReport, build

    report = build(EoSpotReport, {...})          # validated here, with the field path
    async with Client.connect("mag", "amqps://mag:SECRET@broker.example.org/liaison") as client:
        await client.send(report, recipients=["org:unmas"])

Every message class and enum of the contract is importable from here. Errors are
``SdkError`` subclasses (``liaison.sdk.errors``). The SDK logs through the standard ``logging``
module under ``liaison.sdk`` and is silent until the application configures logging.
See ``docs/partners.md`` for the contract underneath (usable from any AMQP client).
"""

import logging

from liaison.schemas.codes import ErrorCode
from liaison.schemas.envelope import Body, Envelope
from liaison.schemas.types import Classification, Precedence, Status
from liaison.sdk import messages as _messages
from liaison.sdk.client import Client
from liaison.sdk.compose import build, compose, new_distribution_id, parse_ttl
from liaison.sdk.connection import partner_url
from liaison.sdk.delivery import Delivery
from liaison.sdk.errors import (
    ClientClosed,
    ConfirmTimeout,
    ConnectFailed,
    InvalidArgument,
    InvalidMessage,
    LoginRefused,
    NotAnswerable,
    PublishFailed,
    SdkError,
    SettleFailed,
    SignatureError,
    SignatureKeyExpired,
    SignatureMalformed,
    SignatureMismatch,
    SignatureMissing,
    SignatureUnknownKey,
    SigningKeyMissing,
    VhostRefused,
)
from liaison.sdk.inbox import Inbox
from liaison.sdk.messages import *  # noqa: F403  (the contract's message classes and enums)
from liaison.sdk.refusal import Refusal
from liaison.sdk.tls import tls_context

# A library is silent until the application configures logging.
logging.getLogger("liaison.sdk").addHandler(logging.NullHandler())

__all__ = [
    "Body",
    "Classification",
    "Client",
    "ClientClosed",
    "ConfirmTimeout",
    "ConnectFailed",
    "Delivery",
    "Envelope",
    "ErrorCode",
    "Inbox",
    "InvalidArgument",
    "InvalidMessage",
    "LoginRefused",
    "NotAnswerable",
    "Precedence",
    "PublishFailed",
    "Refusal",
    "SdkError",
    "SettleFailed",
    "SignatureError",
    "SignatureKeyExpired",
    "SignatureMalformed",
    "SignatureMismatch",
    "SignatureMissing",
    "SignatureUnknownKey",
    "SigningKeyMissing",
    "Status",
    "VhostRefused",
    "build",
    "compose",
    "new_distribution_id",
    "parse_ttl",
    "partner_url",
    "tls_context",
]
__all__ += _messages.__all__
