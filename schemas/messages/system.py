"""System messages: acknowledgements between partners and error reports from the hub."""

import enum
from typing import Annotated

from msgspec import Meta

from liaison.schemas.messages.base import BodyBase
from liaison.schemas.types import DistributionId, OrgId, Text


class AckLevel(enum.StrEnum):
    """How far the acknowledging partner got with the referenced message."""

    RECEIVED = "received"
    ACCEPTED = "accepted"
    PROCESSED = "processed"
    REJECTED = "rejected"


class Ack(BodyBase, frozen=True, kw_only=True, tag="ack"):
    """A partner's acknowledgement of a message, addressed back to its sender."""

    ref_distribution_id: DistributionId
    ref_sender: OrgId
    level: AckLevel
    note: Text | None = None


_Bounded = Annotated[str, Meta(max_length=256)]


class ErrorReport(BodyBase, frozen=True, kw_only=True, tag="error.report"):
    """The hub's answer to a message it refused: a banded code (see `liaison.schemas.codes`)."""

    code: Annotated[int, Meta(ge=100, le=599)]
    name: Annotated[str, Meta(min_length=1, max_length=64)]
    reason: Text
    retryable: bool
    field_path: _Bounded | None = None
    ref_distribution_id: _Bounded | None = None
    ref_type: Annotated[str, Meta(max_length=64)] | None = None
    refused_recipients: Annotated[
        list[_Bounded],
        Meta(
            max_length=64,
            description="The addresses of the refused message, as its sender wrote them (e.g. "
            "`group:icg-ma`), through which an organisation was left out; empty when the whole "
            "message was refused for another reason.",
        ),
    ] = []
