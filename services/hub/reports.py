"""The error report the hub sends a sender whose message it refused, and its stable id."""

import hashlib
import re
from datetime import datetime

from liaison.hub.decisions import Refusal
from liaison.schemas.codes import info
from liaison.schemas.envelope import Envelope, encode
from liaison.schemas.messages.system import ErrorReport
from liaison.schemas.types import DISTRIBUTION_ID_MAX, DISTRIBUTION_ID_PATTERN
from liaison.schemas.wire import HUB_SENDER


def report_id(refusal: Refusal, original: bytes) -> str:
    """The distribution id of ``refusal``'s error report: the same for every redelivery.

    It is derived from what was refused, so the hub's memory and the receiver's dedupe both
    recognise a repeat. A refusal nobody can be told of gets an id too: the hub remembers it.
    """
    seed = hashlib.blake2b(digest_size=12)
    if refusal.reply_to is not None:
        seed.update(refusal.reply_to.encode())
    seed.update(str(int(refusal.code)).encode())
    if refusal.distribution_id is not None:
        seed.update(refusal.distribution_id.encode())
    else:
        seed.update(original)
    # Reports on different recipients of one message (each inbox its copy expired in) differ.
    for recipient in refusal.refused_recipients:
        seed.update(recipient.encode())
    return f"err-{seed.hexdigest()}"


def error_report(refusal: Refusal, *, report: str, now: datetime) -> bytes:
    """The encoded ``error.report`` envelope with id ``report`` for ``refusal``."""
    assert refusal.reply_to is not None
    code = info(refusal.code)
    envelope = Envelope(
        distribution_id=report,
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
            refused_recipients=_refused_addresses(refusal)[:64],
        ),
    )
    return encode(envelope)


def _refused_addresses(refusal: Refusal) -> list[str]:
    # Addresses as the sender wrote them; an organisation refused some other way is `org:<id>`.
    if refusal.refused_addresses:
        return list(refusal.refused_addresses)
    return [f"org:{org}" for org in refusal.refused_recipients]


_DISTRIBUTION_ID = re.compile(DISTRIBUTION_ID_PATTERN)


def _as_distribution_id(value: str | None) -> str | None:
    # A refused message's id goes into in_reply_to only if it is a valid id itself.
    if value is None or len(value) > DISTRIBUTION_ID_MAX or not _DISTRIBUTION_ID.search(value):
        return None
    return value
