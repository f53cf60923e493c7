"""What the hub says when it refuses: the decision types and the error report it sends.

    Decision = Delivery | Refusal | Duplicate

A Refusal carries everything the sender's error report and the dead-letter copy need; a
Delivery may carry a partial Refusal for the recipients it left out.
"""

import hashlib
import re
from dataclasses import dataclass, field
from datetime import datetime

from liaison.directory.index import HUB_SENDER_ID
from liaison.schemas.codes import ErrorCode, info
from liaison.schemas.envelope import Envelope, encode
from liaison.schemas.messages.system import ErrorReport
from liaison.schemas.types import DISTRIBUTION_ID_MAX, DISTRIBUTION_ID_PATTERN

#: The sender id the hub signs its own messages with; the directory refuses it for partners.
HUB_SENDER = HUB_SENDER_ID


@dataclass(slots=True)
class Refusal:
    """The hub refuses a message, or part of its addressing, with one code."""

    code: ErrorCode
    reason: str
    field_path: str | None = None
    distribution_id: str | None = None
    message_type: str | None = None
    #: Organisation that gets the error report; None when nobody can be told.
    reply_to: str | None = None
    refused_recipients: tuple[str, ...] = ()


@dataclass(slots=True)
class Delivery:
    """Deliver the original bytes to ``recipients`` in one publish."""

    sender: str
    distribution_id: str
    message_type: str
    message_id: str
    recipients: list[str]
    flash: bool
    precedence: str
    expiration_ms: int | None
    partial: Refusal | None = None


@dataclass(slots=True)
class Duplicate:
    """Already delivered within the dedupe window: acknowledge, publish nothing."""

    sender: str
    distribution_id: str
    message_type: str
    message_id: str
    recipients: list[str] = field(default_factory=list)


Decision = Delivery | Refusal | Duplicate


def error_report(refusal: Refusal, *, now: datetime, original: bytes) -> tuple[str, bytes]:
    """The (distribution id, encoded envelope) of the error report for ``refusal``.

    The id is derived from what was refused, so a redelivered refusal produces the same
    report id and the receiver's dedupe drops the repeat.
    """
    assert refusal.reply_to is not None
    seed = hashlib.blake2b(digest_size=12)
    seed.update(refusal.reply_to.encode())
    seed.update(str(int(refusal.code)).encode())
    if refusal.distribution_id is not None:
        seed.update(refusal.distribution_id.encode())
    else:
        seed.update(original)
    # Reports on different recipients of one message (each inbox its copy expired in) differ.
    for recipient in refusal.refused_recipients:
        seed.update(recipient.encode())
    report_id = f"err-{seed.hexdigest()}"
    code = info(refusal.code)
    envelope = Envelope(
        distribution_id=report_id,
        sender=HUB_SENDER,
        sent_at=now,
        recipients=[f"org:{refusal.reply_to}"],
        in_reply_to=_as_distribution_id(refusal.distribution_id),
        body=ErrorReport(
            code=code.code,
            name=code.name,
            reason=refusal.reason[:4000] or code.meaning,
            retryable=code.retryable,
            field_path=None if refusal.field_path is None else refusal.field_path[:256],
            ref_distribution_id=(
                None if refusal.distribution_id is None else refusal.distribution_id[:256]
            ),
            ref_type=None if refusal.message_type is None else refusal.message_type[:64],
            refused_recipients=list(refusal.refused_recipients[:64]),
        ),
    )
    return report_id, encode(envelope)


_DISTRIBUTION_ID = re.compile(DISTRIBUTION_ID_PATTERN)


def _as_distribution_id(value: str | None) -> str | None:
    # A refused message's id goes into in_reply_to only if it is a valid id itself.
    if value is None or len(value) > DISTRIBUTION_ID_MAX or not _DISTRIBUTION_ID.search(value):
        return None
    return value
