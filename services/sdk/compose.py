"""Building envelopes the way the hub expects them: fresh ids, UTC times, the sender filled in."""

import re
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from liaison.common.errors import ConfigError
from liaison.schemas.envelope import Body, Envelope
from liaison.schemas.types import Classification, Precedence

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd])\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def new_distribution_id(org: str) -> str:
    """A fresh distribution id, ``<org>-<uuid4 hex>``: unique per sender without coordination."""
    return f"{org}-{uuid.uuid4().hex}"


def parse_ttl(text: str) -> timedelta:
    """``90s``, ``15m``, ``1h`` or ``2d`` as a duration; anything else is a ConfigError."""
    match = _DURATION.match(text)
    if match is None:
        raise ConfigError(f"a time to live looks like 90s, 15m, 1h or 2d; got {text!r}")
    seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    if seconds <= 0:
        raise ConfigError(f"a time to live must be positive; got {text!r}")
    return timedelta(seconds=seconds)


def compose(
    body: Body,
    *,
    sender: str,
    recipients: Sequence[str],
    precedence: Precedence | str = Precedence.ROUTINE,
    classification: Classification | str = Classification.UNCLASSIFIED,
    expires_at: datetime | None = None,
    ttl: timedelta | None = None,
    incident_id: str | None = None,
    in_reply_to: str | None = None,
    distribution_id: str | None = None,
    now: datetime | None = None,
) -> Envelope:
    """The envelope around ``body``; ``ttl`` is an alternative to an absolute ``expires_at``."""
    if expires_at is not None and ttl is not None:
        raise ConfigError("give expires_at or ttl, not both")
    sent_at = now or datetime.now(UTC)
    if ttl is not None:
        expires_at = sent_at + ttl
    return Envelope(
        distribution_id=distribution_id or new_distribution_id(sender),
        sender=sender,
        sent_at=sent_at,
        expires_at=expires_at,
        recipients=list(recipients),
        precedence=Precedence(precedence),
        classification=Classification(classification),
        incident_id=incident_id,
        in_reply_to=in_reply_to,
        body=body,
    )
