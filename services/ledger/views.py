"""What the ledger's HTTP API takes and answers, as msgspec Structs.

The OpenAPI document (``openapi.py``) is generated from these same Structs, so the published
API and the code cannot disagree.
"""

import enum
from datetime import datetime
from typing import Annotated, Any

import msgspec
from msgspec import Meta

_Short = Annotated[str, Meta(min_length=1, max_length=256)]
_Slug = Annotated[str, Meta(pattern=r"^[a-z][a-z0-9-]{1,31}$")]


class Status(enum.StrEnum):
    """A decision's outcome, searchable as ``status``."""

    DELIVERED = "delivered"
    PARTIAL = "partial"
    REFUSED = "refused"
    DUPLICATE = "duplicate"


class SearchQuery(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Filters of a message search; every one optional, all of them combined with AND."""

    sender: _Slug | None = None
    recipient: _Slug | None = None
    type: Annotated[str, Meta(pattern=r"^[a-z][a-z0-9_.]{1,63}$")] | None = None
    incident: _Short | None = None
    precedence: Annotated[str, Meta(pattern=r"^(flash|immediate|priority|routine)$")] | None = None
    status: Status | None = None
    since: datetime | None = None
    until: datetime | None = None
    #: Words that must all appear in the text values of the message's body (PostgreSQL
    #: full-text, 'simple' configuration; what is searched: services/ledger/search_text.py).
    text: Annotated[str, Meta(min_length=1, max_length=200)] | None = None
    limit: Annotated[int, Meta(ge=1, le=500)] = 50
    #: The ``next`` cursor of the previous page.
    after: Annotated[str, Meta(max_length=200)] | None = None


class MessageSummary(msgspec.Struct, frozen=True, kw_only=True):
    """One decision as a search result row."""

    record_id: str
    decided_at: datetime
    outcome: str
    message_id: str | None
    sender: str | None
    distribution_id: str | None
    message_type: str | None
    precedence: str | None
    incident_id: str | None
    recipient_count: int
    refused_count: int
    code: int | None
    reason: str | None
    replay_of: str | None


class SearchPage(msgspec.Struct, frozen=True, kw_only=True):
    """A page of results, newest first; ``next`` fetches the following page."""

    items: list[MessageSummary]
    next: str | None


class Recipient(msgspec.Struct, frozen=True, kw_only=True):
    """A recipient a decision resolved or refused, and its copy's latest state."""

    org: str
    via: list[str]
    refused: bool
    code: int | None
    reason: str | None
    state: str


class TimelineEvent(msgspec.Struct, frozen=True, kw_only=True):
    """One step in a message's life."""

    occurred_at: datetime
    kind: str
    org: str | None
    record_id: str | None
    detail: dict[str, Any]


class MessageDetail(msgspec.Struct, frozen=True, kw_only=True):
    """Everything the ledger knows about one message: decisions, recipients, timeline."""

    message_id: str
    decisions: list[MessageSummary]
    recipients: list[Recipient]
    timeline: list[TimelineEvent]
    body: str | None


class PartnerView(msgspec.Struct, frozen=True, kw_only=True):
    """One organisation's inboxes and traffic."""

    org: str
    backlog: int | None
    oldest_unread_age_seconds: float | None
    last_sent: datetime | None
    last_received: datetime | None
    connected: bool | None
    stale: bool


class TypeRate(msgspec.Struct, frozen=True):
    """Decisions per minute of one message type."""

    message_type: str
    per_minute: float


class RefusalCount(msgspec.Struct, frozen=True):
    """Refusals with one code."""

    code: int
    count: int


class Traffic(msgspec.Struct, frozen=True, kw_only=True):
    """Recent traffic: rate by type and refusals by code over ``minutes``."""

    minutes: int
    rates: list[TypeRate]
    refusals: list[RefusalCount]


class DeadLetterView(msgspec.Struct, frozen=True, kw_only=True):
    """A dead letter the ledger kept, and whether it was replayed."""

    dead_letter_id: str
    kept_at: datetime
    message_id: str | None
    source_queue: str | None
    reason: str
    code: int | None
    message_type: str | None
    replayed_at: datetime | None
    replayed_by: str | None


class ReplayResult(msgspec.Struct, frozen=True, kw_only=True):
    """What a replay did."""

    dead_letter_id: str
    replayed_at: datetime
    replayed_by: str


class Health(msgspec.Struct, frozen=True, kw_only=True):
    """The ledger's and the hub's health, for the console."""

    ledger_ready: bool
    broker_connected: bool
    database: bool
    lag_seconds: float
    backlog: int
    hub: dict[str, Any] | None
    #: The head signer's key id and last pass, or None when no signing key is set.
    chain_heads: dict[str, Any] | None = None


class ChainHead(msgspec.Struct, frozen=True, kw_only=True):
    """A signed head of one day's chain (services/ledger/chain.py)."""

    day: str
    seq: int
    head: str
    signed_at: datetime
    kid: str
    #: Compact JWS (Ed25519) over the canonical head payload.
    jws: str


class ChainHeads(msgspec.Struct, frozen=True, kw_only=True):
    """The latest signed head of each day, newest day first."""

    heads: list[ChainHead]


class Problem(msgspec.Struct, frozen=True, kw_only=True):
    """An error answer."""

    status: str
    error: str


RESPONSES = (
    SearchPage,
    MessageDetail,
    PartnerView,
    Traffic,
    DeadLetterView,
    ReplayResult,
    Health,
    ChainHeads,
    Problem,
)
