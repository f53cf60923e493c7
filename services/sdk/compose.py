"""Building envelopes and bodies the way the hub expects them, checked where they are written.

``compose`` fills the envelope (fresh id, UTC times, the sender) and refuses what the hub would
refuse and what can be known before sending: an expiry already past, a type only the hub
sends, an unknown precedence. ``build`` turns a mapping into a typed body, validating every
field with the contract's constraints, so a mistake fails on the line that made it.
"""

import enum
import re
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar, overload

import msgspec

from liaison.schemas.catalogue import HUB_ONLY_TYPES, MESSAGE_TYPES, tag_of
from liaison.schemas.envelope import Body, Envelope, error_message, error_path
from liaison.schemas.messages.base import BodyBase
from liaison.schemas.types import Classification, Precedence
from liaison.sdk.errors import InvalidArgument, InvalidMessage

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd])\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_E = TypeVar("_E", bound=enum.Enum)
_B = TypeVar("_B", bound=BodyBase)


def new_distribution_id(org: str) -> str:
    """A fresh distribution id, ``<org>-<uuid4 hex>``: unique per sender without coordination."""
    return f"{org}-{uuid.uuid4().hex}"


def parse_ttl(text: str) -> timedelta:
    """``90s``, ``15m``, ``1h`` or ``2d`` as a duration; anything else is an InvalidArgument."""
    match = _DURATION.match(text)
    if match is None:
        raise InvalidArgument(f"a time to live looks like 90s, 15m, 1h or 2d; got {text!r}")
    seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    if seconds <= 0:
        raise InvalidArgument(f"a time to live must be positive; got {text!r}")
    return timedelta(seconds=seconds)


@overload
def build(body_type: type[_B], fields: Mapping[str, Any]) -> _B: ...
@overload
def build(body_type: str, fields: Mapping[str, Any]) -> BodyBase: ...
def build(body_type: type[BodyBase] | str, fields: Mapping[str, Any]) -> BodyBase:
    """A validated body from its fields: ``build(HazardAlert, {...})`` or ``build("sitrep", …)``.

    Every constraint of the contract is checked here (ranges, patterns, enum values, aware
    datetimes; ISO 8601 strings are accepted for dates and times), and the first violation
    raises InvalidMessage with its field path inside the body, e.g. ``$.quantity``.
    Constructing a body class directly checks nothing until ``send``.
    """
    cls = _body_class(body_type)
    if not isinstance(fields, Mapping):
        raise InvalidArgument(
            f"build({cls.__name__}, …) takes a mapping of the body's fields, "
            f"not {type(fields).__name__}"
        )
    try:
        return msgspec.convert(dict(fields), cls)
    except msgspec.ValidationError as exc:
        raise InvalidMessage(f"{cls.__name__}: {error_message(exc)}", error_path(exc)) from None


def _body_class(body_type: type[BodyBase] | str) -> type[BodyBase]:
    if isinstance(body_type, str):
        cls = MESSAGE_TYPES.get(body_type)
        if cls is None:
            raise InvalidArgument(
                f"no message type {body_type!r}; the types are {', '.join(MESSAGE_TYPES)}"
            )
        return cls
    if isinstance(body_type, type) and body_type in MESSAGE_TYPES.values():
        return body_type
    raise InvalidArgument(
        f"build takes a message class such as HazardAlert or a type name such as "
        f"'hazard.alert', not {body_type!r}"
    )


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
    """The envelope around ``body``; ``ttl`` is an alternative to an absolute ``expires_at``.

    Refuses, before anything is sent: a body that is not a message, a type only the hub sends,
    an unknown precedence or classification, ``ttl`` with ``expires_at``, a ``ttl`` that is not
    positive, an ``expires_at`` without a time zone or not in the future, and recipients given
    as one string.
    """
    if not isinstance(body, BodyBase) or type(body) not in MESSAGE_TYPES.values():
        raise InvalidArgument(
            f"the body must be a message such as HazardAlert(...), not {type(body).__name__}; "
            "from a dict, build one with liaison.sdk.build(HazardAlert, {...})"
        )
    message_type = tag_of(type(body))
    if message_type in HUB_ONLY_TYPES:
        raise InvalidMessage(f"only the hub sends {message_type}", "$.body.type")
    if isinstance(recipients, str) or not isinstance(recipients, Sequence):
        raise InvalidArgument(
            f"recipients is a list of addresses, e.g. [{recipients!r}], not {recipients!r}"
        )
    if expires_at is not None and ttl is not None:
        raise InvalidArgument("give expires_at or ttl, not both")
    sent_at = now or datetime.now(UTC)
    if ttl is not None:
        if not isinstance(ttl, timedelta):
            raise InvalidArgument(f"ttl is a datetime.timedelta, not {type(ttl).__name__}")
        if ttl <= timedelta(0):
            raise InvalidMessage(f"ttl must be positive, got {ttl}", "$.expires_at")
        expires_at = sent_at + ttl
    elif expires_at is not None:
        if not isinstance(expires_at, datetime):
            raise InvalidArgument(f"expires_at is a datetime, not {type(expires_at).__name__}")
        if expires_at.tzinfo is None or expires_at.utcoffset() is None:
            raise InvalidMessage(
                "expires_at needs a time zone, e.g. datetime.now(UTC) + timedelta(hours=1)",
                "$.expires_at",
            )
        if expires_at <= sent_at:
            raise InvalidMessage(
                f"expires_at {expires_at.isoformat()} is not in the future; the hub would "
                "drop the message as expired",
                "$.expires_at",
            )
    return Envelope(
        distribution_id=distribution_id or new_distribution_id(sender),
        sender=sender,
        sent_at=sent_at,
        expires_at=expires_at,
        recipients=list(recipients),
        precedence=enum_value(Precedence, precedence, "$.precedence"),
        classification=enum_value(Classification, classification, "$.classification"),
        incident_id=incident_id,
        in_reply_to=in_reply_to,
        body=body,
    )


def enum_value(kind: type[_E], value: object, field_path: str) -> _E:
    """``value`` as a member of ``kind``, or an InvalidMessage listing the accepted values."""
    try:
        return kind(value)
    except ValueError:
        accepted = ", ".join(repr(member.value) for member in kind)
        hint = ""
        if isinstance(value, str) and value.lower() in {str(m.value) for m in kind}:
            hint = f" (lower case: {value.lower()!r})"
        raise InvalidMessage(
            f"{kind.__name__.lower()} must be one of {accepted}, not {value!r}{hint}", field_path
        ) from None
