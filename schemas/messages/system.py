"""System messages: acknowledgements between partners and error reports from the hub."""

import enum
from typing import Annotated

import msgspec
from msgspec import Meta

from liaison.schemas.messages.base import BodyBase
from liaison.schemas.types import AwareDatetime, DistributionId, OrgId, Text


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


class StatusRequest(BodyBase, frozen=True, kw_only=True, tag="status.request"):
    """A partner asks the ledger how far one of its messages got; addressed to `org:liaison`.

    Answered with a `status.report`. Only the message's sender or one of its recipients gets
    an answer with states; anyone else gets `found: false`, as for a message that never was.
    """

    ref_distribution_id: DistributionId
    ref_sender: OrgId


class CopyStatus(msgspec.Struct, frozen=True, kw_only=True):
    """One recipient's copy: its latest state in the ledger, and when it got there."""

    org: OrgId
    #: in_inbox, receipt_received, receipt_accepted, receipt_processed, receipt_rejected,
    #: refused, expired, rejected or dead_lettered.
    state: Annotated[str, Meta(min_length=1, max_length=32)]
    since: AwareDatetime | None = None


class StatusReport(BodyBase, frozen=True, kw_only=True, tag="status.report"):
    """The ledger's answer to a `status.request` (sent by the hub's id, `liaison`)."""

    ref_distribution_id: DistributionId
    ref_sender: OrgId
    found: bool
    #: The sender sees every recipient; a recipient sees its own copy only.
    recipients: Annotated[list[CopyStatus], Meta(max_length=512)] = []
    note: Text | None = None
