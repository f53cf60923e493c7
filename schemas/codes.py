"""The error-code catalogue: every refusal the hub reports, banded by hundreds.

1xx transport/format, 2xx unauthorised, 3xx invalid, 4xx expired, 5xx undeliverable.
"""

import enum
from typing import Final

import msgspec

__all__ = ["BANDS", "CATALOGUE", "CodeInfo", "ErrorCode", "info", "markdown_table"]


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


class CodeInfo(msgspec.Struct, frozen=True):
    """What a code means and whether sending again (unchanged) may succeed."""

    code: int
    name: str
    band: str
    meaning: str
    retryable: bool


#: Hundreds digit -> band name.
BANDS: Final[dict[int, str]] = {
    1: "transport/format",
    2: "unauthorised",
    3: "invalid",
    4: "expired",
    5: "undeliverable",
}

_MEANINGS: Final[dict[ErrorCode, tuple[str, bool]]] = {
    ErrorCode.MALFORMED: ("The message body is not a UTF-8 JSON object.", False),
    ErrorCode.OVERSIZED: ("The message body is larger than the hub accepts (256 KiB).", False),
    ErrorCode.UNSUPPORTED_CONTENT_TYPE: (
        "The content_type property is not application/json.",
        False,
    ),
    ErrorCode.UNSUPPORTED_SCHEMA_VERSION: (
        "The schema_version major is not one the hub speaks.",
        False,
    ),
    ErrorCode.MISSING_USER_ID: (
        "The user_id property is missing; set it to your broker account.",
        False,
    ),
    ErrorCode.UNKNOWN_ACCOUNT: ("The broker account is not registered to any organisation.", False),
    ErrorCode.SENDER_MISMATCH: (
        "The envelope sender is not the authenticated organisation.",
        False,
    ),
    ErrorCode.TYPE_NOT_PERMITTED: ("Your organisation may not send this message type.", False),
    ErrorCode.RECIPIENT_NOT_PERMITTED: ("Your organisation may not address this recipient.", False),
    ErrorCode.INSUFFICIENT_CLEARANCE: ("A recipient is not cleared for the classification.", False),
    ErrorCode.RESERVED_TYPE: ("Only the hub sends this message type (error.report).", False),
    ErrorCode.NOT_RECEIVED: (
        "An ack refers to a message the hub did not deliver to you within its dedupe window.",
        False,
    ),
    ErrorCode.INVALID_ENVELOPE: ("The envelope breaks the contract; see field_path.", False),
    ErrorCode.INVALID_BODY: ("The body breaks its message type's schema; see field_path.", False),
    ErrorCode.UNKNOWN_MESSAGE_TYPE: ("The body type is not in the catalogue.", False),
    ErrorCode.INCONSISTENT: (
        "Fields contradict each other (e.g. expires_at before sent_at).",
        False,
    ),
    ErrorCode.EXPIRED: ("The message expired before the hub could deliver it.", False),
    ErrorCode.EXPIRED_UNREAD: (
        "A copy expired unread in a recipient's inbox; refused_recipients names the recipient.",
        False,
    ),
    ErrorCode.UNKNOWN_RECIPIENT: (
        "A recipient address names no known organisation or group.",
        False,
    ),
    ErrorCode.NO_RECIPIENTS: ("The addressing resolved to nobody.", False),
    ErrorCode.DELIVERY_REFUSED: ("The broker refused delivery (a recipient inbox is full).", True),
    ErrorCode.POISON: ("The message repeatedly crashed the hub and was dead-lettered.", False),
    ErrorCode.NO_INBOX: (
        "A recipient has no inbox on the broker (not provisioned, or removed); "
        "refused_recipients names each one, the others got the message.",
        True,
    ),
}

#: Every code with its name, band, meaning and retryability.
CATALOGUE: Final[dict[ErrorCode, CodeInfo]] = {
    code: CodeInfo(
        code=int(code),
        name=code.name.lower(),
        band=BANDS[int(code) // 100],
        meaning=meaning,
        retryable=retryable,
    )
    for code, (meaning, retryable) in _MEANINGS.items()
}


def info(code: ErrorCode) -> CodeInfo:
    """The catalogue entry for a code."""
    return CATALOGUE[code]


def markdown_table() -> str:
    """The catalogue as a Markdown document, for the generated docs."""
    lines = [
        "# Liaison error codes",
        "",
        "Generated from `schemas/codes.py` by `python -m liaison.schemas.generate`; do not edit.",
        "",
        "| code | name | band | retryable | meaning |",
        "|---:|---|---|---|---|",
    ]
    lines += [
        f"| {i.code} | `{i.name}` | {i.band} | {'yes' if i.retryable else 'no'} | {i.meaning} |"
        for i in CATALOGUE.values()
    ]
    return "\n".join(lines) + "\n"
