"""Reading the ledger: search with keyset pagination, one message's timeline, traffic, partners.

Search pages are keyset-paginated on (decided_at, record_id), newest first: each page is an
index range scan from the cursor, whatever the depth, so a search over millions of rows stays
as fast on page 1,000 as on page 1. Filters are bound parameters, never formatted in.
"""

import base64
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import msgspec

from liaison.ledger.views import (
    DeadLetterView,
    MessageDetail,
    MessageSummary,
    Recipient,
    RefusalCount,
    SearchPage,
    SearchQuery,
    TimelineEvent,
    Traffic,
    TypeRate,
)

_SUMMARY_COLUMNS = (
    "record_id, decided_at, outcome, message_id, sender, distribution_id, message_type, "
    "precedence, incident_id, recipient_count, refused_count, code, reason, replay_of"
)
#: When two events share a time, the later stage wins as a copy's state.
_STAGE = {
    "in_inbox": 1,
    "receipt_received": 2,
    "receipt_accepted": 3,
    "receipt_processed": 4,
    "receipt_rejected": 5,
    "refused": 5,
    "expired": 6,
    "rejected": 6,
    "dead_lettered": 6,
}


class BadCursor(ValueError):
    """A pagination cursor that this ledger did not hand out."""


def encode_cursor(decided_at: datetime, record_id: str) -> str:
    """The opaque ``next`` cursor after the row (decided_at, record_id)."""
    raw = f"{decided_at.isoformat()}|{record_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """(decided_at, record_id) from a cursor; BadCursor when it is not one."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        when, record_id = raw.split("|", 1)
        moment = datetime.fromisoformat(when)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadCursor("not a cursor this ledger returned") from exc
    if moment.tzinfo is None or not 0 < len(record_id) <= 64:
        raise BadCursor("not a cursor this ledger returned")
    return moment, record_id


def _where(query: SearchQuery) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    args: list[Any] = []

    def add(sql: str, value: Any) -> None:
        args.append(value)
        clauses.append(sql.replace("?", f"${len(args)}"))

    if query.sender:
        add("m.sender = ?", query.sender)
    if query.type:
        add("m.message_type = ?", query.type)
    if query.incident:
        add("m.incident_id = ?", query.incident)
    if query.precedence:
        add("m.precedence = ?", query.precedence)
    if query.status:
        add("m.outcome = ?", query.status.value)
    if query.since:
        add("m.decided_at >= ?", query.since)
    if query.until:
        add("m.decided_at < ?", query.until)
    if query.recipient:
        add(
            "EXISTS (SELECT 1 FROM recipients r WHERE r.decided_at = m.decided_at "
            "AND r.record_id = m.record_id AND r.org = ?)",
            query.recipient,
        )
    if query.text:
        add(
            "to_tsvector('simple', coalesce(m.body_text, '')) @@ plainto_tsquery('simple', ?)",
            query.text,
        )
    if query.after:
        when, record_id = decode_cursor(query.after)
        args.extend((when, record_id))
        clauses.append(f"(m.decided_at, m.record_id) < (${len(args) - 1}, ${len(args)})")
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", args


def _summary(row: asyncpg.Record | dict[str, Any]) -> MessageSummary:
    return MessageSummary(**dict(row))


async def search(connection: Any, query: SearchQuery) -> SearchPage:
    """One page of decisions matching ``query``, newest first."""
    where, args = _where(query)
    args.append(query.limit + 1)
    rows = await connection.fetch(
        f"SELECT {_SUMMARY_COLUMNS} FROM messages m{where} "  # noqa: S608 - clauses are fixed text
        f"ORDER BY m.decided_at DESC, m.record_id DESC LIMIT ${len(args)}",
        *args,
    )
    items = [_summary(r) for r in rows[: query.limit]]
    more = len(rows) > query.limit
    last = items[-1] if items else None
    cursor = encode_cursor(last.decided_at, last.record_id) if more and last else None
    return SearchPage(items=items, next=cursor)


def copy_states(events: Sequence[TimelineEvent]) -> dict[str, str]:
    """Each recipient copy's latest state, from its events."""
    states: dict[str, tuple[datetime, int, str]] = {}
    for event in events:
        if event.org is None or event.kind not in _STAGE:
            continue
        key = (event.occurred_at, _STAGE[event.kind], event.kind)
        if event.org not in states or key > states[event.org]:
            states[event.org] = key
    return {org: value[2] for org, value in states.items()}


async def message_detail(connection: Any, message_id: str) -> MessageDetail | None:
    """Decisions, recipients and timeline of ``sender/distribution_id``; None if unknown."""
    decisions = await connection.fetch(
        f"SELECT {_SUMMARY_COLUMNS}, body FROM messages "  # noqa: S608 - fixed text
        "WHERE message_id = $1 ORDER BY decided_at, record_id",
        message_id,
    )
    events = await connection.fetch(
        "SELECT occurred_at, kind, org, record_id, detail FROM events "
        "WHERE message_id = $1 ORDER BY occurred_at, event_key",
        message_id,
    )
    if not decisions and not events:
        return None
    timeline = [TimelineEvent(**dict(e)) for e in events]
    states = copy_states(timeline)
    recipients = await connection.fetch(
        "SELECT DISTINCT ON (org) org, via, refused, code, reason FROM recipients "
        "WHERE message_id = $1 ORDER BY org, decided_at DESC",
        message_id,
    )
    return MessageDetail(
        message_id=message_id,
        decisions=[_summary(_without_body(d)) for d in decisions],
        recipients=[
            Recipient(
                org=r["org"],
                via=list(r["via"]),
                refused=r["refused"],
                code=r["code"],
                reason=r["reason"],
                state=states.get(r["org"], "refused" if r["refused"] else "in_inbox"),
            )
            for r in recipients
        ],
        timeline=timeline,
        body=_body_text(decisions[0]["body"]) if decisions else None,
    )


def _without_body(row: asyncpg.Record) -> dict[str, Any]:
    values = dict(row)
    values.pop("body", None)
    return values


def _body_text(body: bytes | None) -> str | None:
    """The body as received, as text (``body_text`` holds only what search reads of it)."""
    if body is None:
        return None
    try:
        return bytes(body).decode("utf-8")
    except UnicodeDecodeError:
        return None


async def traffic(connection: Any, minutes: int) -> Traffic:
    """Decisions per minute by type, and refusals by code, over the last ``minutes``."""
    since = datetime.now(UTC) - timedelta(minutes=minutes)
    rates = await connection.fetch(
        "SELECT coalesce(message_type, 'unknown') AS t, count(*) AS n FROM messages "
        "WHERE decided_at >= $1 GROUP BY 1 ORDER BY 2 DESC",
        since,
    )
    refusals = await connection.fetch(
        "SELECT code, count(*) AS n FROM messages WHERE decided_at >= $1 AND code IS NOT NULL "
        "GROUP BY 1 ORDER BY 2 DESC",
        since,
    )
    return Traffic(
        minutes=minutes,
        rates=[TypeRate(r["t"], round(r["n"] / minutes, 3)) for r in rates],
        refusals=[RefusalCount(r["code"], r["n"]) for r in refusals],
    )


async def partner_activity(connection: Any) -> dict[str, dict[str, Any]]:
    """Per organisation: last message sent and received, oldest copy with no receipt yet."""
    out: dict[str, dict[str, Any]] = {}
    for row in await connection.fetch(
        "SELECT sender AS org, max(decided_at) AS at FROM messages "
        "WHERE sender IS NOT NULL GROUP BY 1"
    ):
        out.setdefault(row["org"], {})["last_sent"] = row["at"]
    for row in await connection.fetch(
        "SELECT org, max(decided_at) AS at FROM recipients WHERE NOT refused GROUP BY 1"
    ):
        out.setdefault(row["org"], {})["last_received"] = row["at"]
    # A copy is unread until a receipt, an expiry or a dead-lettering follows it.
    for row in await connection.fetch(
        "SELECT e.org, min(e.occurred_at) AS at FROM events e WHERE e.kind = 'in_inbox' "
        "AND NOT EXISTS (SELECT 1 FROM events f WHERE f.message_id = e.message_id "
        "AND f.org = e.org AND f.kind <> 'in_inbox') GROUP BY 1"
    ):
        out.setdefault(row["org"], {})["oldest_unread"] = row["at"]
    return out


async def dead_letters(connection: Any, limit: int = 200) -> list[DeadLetterView]:
    """The newest dead letters the ledger kept."""
    rows = await connection.fetch(
        "SELECT dead_letter_id, kept_at, message_id, source_queue, reason, code, message_type, "
        "replayed_at, replayed_by FROM dead_letters ORDER BY kept_at DESC LIMIT $1",
        limit,
    )
    return [DeadLetterView(**dict(r)) for r in rows]


def to_builtins(value: object) -> Any:
    """A view as JSON-ready builtins."""
    return msgspec.to_builtins(value)
