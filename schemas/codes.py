"""The error-code catalogue: every refusal the hub reports, banded by hundreds.

1xx transport/format, 2xx unauthorised, 3xx invalid, 4xx expired, 5xx undeliverable.
"""

import enum
from typing import Final

import msgspec

__all__ = ["BANDS", "CATALOGUE", "CodeInfo", "Delivered", "ErrorCode", "info", "markdown_table"]


class ErrorCode(enum.IntEnum):
    """Codes carried by `error.report`; a code is never reused for another meaning."""

    MALFORMED = 100
    OVERSIZED = 101
    UNSUPPORTED_CONTENT_TYPE = 102
    UNSUPPORTED_SCHEMA_VERSION = 103
    MISSING_USER_ID = 200
    UNKNOWN_ACCOUNT = 201
    SENDER_MISMATCH = 202
    TYPE_NOT_PERMITTED = 203
    RECIPIENT_NOT_PERMITTED = 204
    INSUFFICIENT_CLEARANCE = 205
    RESERVED_TYPE = 206
    NOT_RECEIVED = 207
    SIGNATURE_MISSING = 208
    SIGNATURE_MALFORMED = 209
    SIGNATURE_UNKNOWN_KEY = 210
    SIGNATURE_KEY_EXPIRED = 211
    SIGNATURE_MISMATCH = 212
    INVALID_ENVELOPE = 300
    INVALID_BODY = 301
    UNKNOWN_MESSAGE_TYPE = 302
    INCONSISTENT = 303
    EXPIRED = 400
    EXPIRED_UNREAD = 401
    UNKNOWN_RECIPIENT = 500
    NO_RECIPIENTS = 501
    DELIVERY_REFUSED = 502
    POISON = 503
    NO_INBOX = 504


class Delivered(enum.StrEnum):
    """What became of the refused message when this code is reported."""

    #: No recipient received it; the original is kept in the dead letters for the operator.
    NOTHING = "nothing"
    #: Every recipient not listed in `refused_recipients` received it, and the reason starts
    #: with "delivered to"; when nobody was left, nothing was delivered (as for NOTHING).
    THE_REST = "the rest"
    #: The broker refused at least one inbox of a single publish; others may have taken it.
    UNKNOWN = "unknown"


class CodeInfo(msgspec.Struct, frozen=True):
    """What a code means, whether sending again (unchanged) may succeed, what was delivered."""

    code: int
    name: str
    band: str
    meaning: str
    retryable: bool
    delivered: Delivered = Delivered.NOTHING


#: Hundreds digit -> band name.
BANDS: Final[dict[int, str]] = {
    1: "transport/format",
    2: "unauthorised",
    3: "invalid",
    4: "expired",
    5: "undeliverable",
}

NOTHING, THE_REST, UNKNOWN = Delivered.NOTHING, Delivered.THE_REST, Delivered.UNKNOWN

_MEANINGS: Final[dict[ErrorCode, tuple[str, bool, Delivered]]] = {
    ErrorCode.MALFORMED: ("The message body is not a UTF-8 JSON object.", False, NOTHING),
    ErrorCode.OVERSIZED: (
        "The message body is larger than the hub accepts (256 KiB).",
        False,
        NOTHING,
    ),
    ErrorCode.UNSUPPORTED_CONTENT_TYPE: (
        "The content_type property is not application/json.",
        False,
        NOTHING,
    ),
    ErrorCode.UNSUPPORTED_SCHEMA_VERSION: (
        "The schema_version major is not one the hub speaks.",
        False,
        NOTHING,
    ),
    ErrorCode.MISSING_USER_ID: (
        "The user_id property is missing; set it to your broker account.",
        False,
        NOTHING,
    ),
    ErrorCode.UNKNOWN_ACCOUNT: (
        "The broker account is not registered to any organisation.",
        False,
        NOTHING,
    ),
    ErrorCode.SENDER_MISMATCH: (
        "The envelope sender is not the authenticated organisation.",
        False,
        NOTHING,
    ),
    ErrorCode.TYPE_NOT_PERMITTED: (
        "Your organisation may not send this message type.",
        False,
        NOTHING,
    ),
    ErrorCode.RECIPIENT_NOT_PERMITTED: (
        "Your organisation may not address these recipients.",
        False,
        THE_REST,
    ),
    ErrorCode.INSUFFICIENT_CLEARANCE: (
        "These recipients are not cleared for the classification.",
        False,
        THE_REST,
    ),
    ErrorCode.RESERVED_TYPE: (
        "Only the hub sends this message type (error.report).",
        False,
        NOTHING,
    ),
    ErrorCode.NOT_RECEIVED: (
        "An ack refers to a message the hub did not deliver to you within its dedupe window.",
        False,
        NOTHING,
    ),
    ErrorCode.SIGNATURE_MISSING: (
        "The message carries no x-liaison-signature header, and your organisation must sign.",
        False,
        NOTHING,
    ),
    ErrorCode.SIGNATURE_MALFORMED: (
        "The x-liaison-signature header is not a detached JWS "
        '(protected..signature) with alg Ed25519, a kid, "b64":false and "crit":["b64"].',
        False,
        NOTHING,
    ),
    ErrorCode.SIGNATURE_UNKNOWN_KEY: (
        "The signature's kid is not one of your organisation's registered signing keys.",
        False,
        NOTHING,
    ),
    ErrorCode.SIGNATURE_KEY_EXPIRED: (
        "The signing key was outside its not_before/not_after when the hub received the "
        "message; sign with a current key.",
        False,
        NOTHING,
    ),
    ErrorCode.SIGNATURE_MISMATCH: (
        "The signature does not match the body: the bytes changed after signing, or the "
        "signature belongs to another message.",
        False,
        NOTHING,
    ),
    ErrorCode.INVALID_ENVELOPE: (
        "The envelope breaks the contract; see field_path.",
        False,
        NOTHING,
    ),
    ErrorCode.INVALID_BODY: (
        "The body breaks its message type's schema; see field_path.",
        False,
        NOTHING,
    ),
    ErrorCode.UNKNOWN_MESSAGE_TYPE: ("The body type is not in the catalogue.", False, NOTHING),
    ErrorCode.INCONSISTENT: (
        "Fields contradict each other (e.g. expires_at before sent_at).",
        False,
        NOTHING,
    ),
    ErrorCode.EXPIRED: ("The message expired before the hub could deliver it.", False, NOTHING),
    ErrorCode.EXPIRED_UNREAD: (
        "A copy expired unread in a recipient's inbox; refused_recipients names the recipient.",
        False,
        THE_REST,
    ),
    ErrorCode.UNKNOWN_RECIPIENT: (
        "A recipient address names no known organisation or group.",
        False,
        NOTHING,
    ),
    ErrorCode.NO_RECIPIENTS: ("The addressing resolved to nobody.", False, NOTHING),
    ErrorCode.DELIVERY_REFUSED: (
        "The broker refused delivery (a recipient inbox is full); send it again unchanged.",
        True,
        UNKNOWN,
    ),
    ErrorCode.POISON: (
        "The message repeatedly crashed the hub and was dead-lettered.",
        False,
        NOTHING,
    ),
    ErrorCode.NO_INBOX: (
        "A recipient has no inbox on the broker (not provisioned, or removed); "
        "refused_recipients names each one, the others got the message.",
        True,
        THE_REST,
    ),
}

#: Every code with its name, band, meaning, retryability and what was delivered.
CATALOGUE: Final[dict[ErrorCode, CodeInfo]] = {
    code: CodeInfo(
        code=int(code),
        name=code.name.lower(),
        band=BANDS[int(code) // 100],
        meaning=meaning,
        retryable=retryable,
        delivered=delivered,
    )
    for code, (meaning, retryable, delivered) in _MEANINGS.items()
}


def info(code: ErrorCode) -> CodeInfo:
    """The catalogue entry for a code."""
    return CATALOGUE[code]


_DELIVERED_NOTES: Final = (
    "**delivered** says what became of the refused message:",
    "",
    "- `nothing` — no recipient received it. The original is kept in the dead-letter queue "
    "for the operator, who can replay it.",
    "- `the rest` — the recipients that were allowed received it: the reason starts with "
    '"delivered to <n>, refused:" and names the organisations left out. The original is not '
    "kept in the dead-letter queue (it was delivered); the ledger records it and what became "
    "of each recipient's copy. When nobody was left, nothing was "
    'delivered, the reason has no "delivered to", and the original is kept as for `nothing`.',
    "- `unknown` — the broker refused at least one recipient's inbox, and other inboxes of the "
    "same publish may have taken the message; the original is kept. Send it again unchanged "
    "(same `distribution_id`): recipients drop a repeat by its `message_id`.",
    "",
    "`refused_recipients` holds addresses exactly as you wrote them in `recipients` (for "
    "example `org:unmas` or `group:icg-ma`): those through which an organisation was left out. "
    "The reason names the organisations.",
)


def markdown_table() -> str:
    """The catalogue as a Markdown document, for the generated docs."""
    lines = [
        "# Liaison error codes",
        "",
        "Generated from `schemas/codes.py` by `python -m liaison.schemas.generate`; do not edit.",
        "",
        "| code | name | band | retryable | delivered | meaning |",
        "|---:|---|---|---|---|---|",
    ]
    lines += [
        f"| {i.code} | `{i.name}` | {i.band} | {'yes' if i.retryable else 'no'} "
        f"| {i.delivered.value} | {i.meaning} |"
        for i in CATALOGUE.values()
    ]
    lines += ["", *_DELIVERED_NOTES]
    return "\n".join(lines) + "\n"
