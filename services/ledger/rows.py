"""From what reaches the ledger queue to the rows it stores: pure, so every rule is unit-tested.

Two inputs: a hub decision record (``record_rows``) and a dead letter the broker or the hub put
on ``liaison.dead`` (``dead_letter_rows``). Every event gets a key derived only from its input,
so the same input always produces the same rows and a redelivery inserts nothing new.
"""

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import msgspec

from liaison.ledger.records import DecisionRecord, Outcome
from liaison.ledger.search_text import search_text
from liaison.schemas.wire import (
    HEADER_ERROR_CODE,
    HEADER_ERROR_REASON,
    HEADER_ORIGINAL_USER,
    HEADER_REFUSED_AT,
    dead_letter_id,
)

#: Inbox dead-letter reasons (x-death) -> lifecycle event kind.
_DEATH_KINDS = {"expired": "expired", "rejected": "rejected"}

Resolver = Callable[[str], frozenset[str] | None]


@dataclass(slots=True)
class Rows:
    """Rows for one transaction, in the column order of each table's INSERT."""

    messages: list[tuple[Any, ...]] = field(default_factory=list)
    recipients: list[tuple[Any, ...]] = field(default_factory=list)
    events: list[tuple[Any, ...]] = field(default_factory=list)
    dead_letters: list[tuple[Any, ...]] = field(default_factory=list)
    replays: list[tuple[str, datetime, str | None]] = field(default_factory=list)
    unreadable: list[tuple[str, dict[str, Any], bytes]] = field(default_factory=list)
    #: Newest decision time in this batch, for the lag metric.
    newest: datetime | None = None

    def months(self) -> set[datetime]:
        """First instant of each month the partitioned rows fall in."""
        # A batch spans a month or two: one replace() per month, not per row.
        firsts: dict[tuple[int, int, object], datetime] = {}
        for table in (self.messages, self.events):
            for row in table:
                t = row[0]
                key = (t.year, t.month, t.tzinfo)
                if key not in firsts:
                    firsts[key] = t.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        return set(firsts.values())


class _EnvelopeProbe(msgspec.Struct):
    """An envelope read leniently: refused messages are stored too, valid or not."""

    sender: object = None
    distribution_id: object = None
    sent_at: object = None
    expires_at: object = None
    status: object = None
    recipients: object = None
    precedence: object = None
    classification: object = None
    incident_id: object = None
    in_reply_to: object = None


_probe = msgspec.json.Decoder(_EnvelopeProbe)


def _read_envelope(body: bytes) -> _EnvelopeProbe:
    try:
        return _probe.decode(body)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        # RecursionError: nested deeper than msgspec decodes, refused by the hub as malformed.
        return _EnvelopeProbe()


def _short(value: object, limit: int = 256) -> str | None:
    return value[:limit].replace("\x00", "") if isinstance(value, str) and value else None


def _time(value: object) -> datetime | None:
    if not isinstance(value, str) or len(value) > 64:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def message_key(sender: str | None, distribution_id: str | None) -> str | None:
    """``sender/distribution_id``, the id a message is tracked by, when both are known."""
    return f"{sender}/{distribution_id}" if sender and distribution_id else None


def record_rows(
    rows: Rows, record: DecisionRecord, *, resolve: Resolver | None, keep_body: bool
) -> None:
    """Add the rows of one decision record to ``rows``."""
    decided_at = datetime.fromtimestamp(record.decided_at, UTC)
    envelope = _read_envelope(record.body)
    message_id = message_key(record.sender, record.distribution_id)
    addresses = (
        [a for a in envelope.recipients if isinstance(a, str)][:64]
        if isinstance(envelope.recipients, list)
        else []
    )
    rid = record.record_id
    rows.messages.append(
        (
            decided_at,
            rid,
            record.outcome.value,
            message_id,
            record.sender,
            record.user_id,
            record.distribution_id,
            record.message_type,
            record.precedence or _short(envelope.precedence, 32),
            _short(envelope.classification, 32),
            _short(envelope.status, 32),
            _short(envelope.incident_id),
            _short(envelope.in_reply_to),
            _time(envelope.sent_at),
            _time(envelope.expires_at),
            record.code,
            record.reason,
            record.field_path,
            record.reply_to,
            len(record.recipients),
            len(record.refused_recipients),
            record.replay_of,
            record.replayed_by,
            record.body if keep_body else None,
            search_text(record.body) if keep_body else None,
            # Kept even without the body: the chain and an evidence bundle prove it by its hash.
            hashlib.sha256(record.body).hexdigest(),
            record.signature,
            record.signature_kid,
            record.signature_status,
        )
    )
    # A status.request is addressed to the ledger itself: no recipient copy to follow.
    copies = record.recipients if record.message_type != "status.request" else []
    # Each address resolved once per record, not once per recipient.
    resolved = (
        [(a, resolve(a) or frozenset()) for a in addresses]
        if resolve is not None and (copies or record.refused_recipients)
        else []
    )
    for org in copies:
        rows.recipients.append(
            (decided_at, rid, org, message_id, _via(org, resolved), False, None, None)
        )
        rows.events.append((decided_at, f"{rid}:inbox:{org}", message_id, org, "in_inbox", rid, {}))
    for org in record.refused_recipients:
        via = _via(org, resolved)
        rows.recipients.append(
            (decided_at, rid, org, message_id, via, True, record.code, record.reason)
        )
        detail = {"code": record.code, "reason": record.reason}
        rows.events.append(
            (decided_at, f"{rid}:refused:{org}", message_id, org, "refused", rid, detail)
        )
    if record.outcome is not Outcome.DELIVERED or not record.recipients:
        detail = {"code": record.code, "reason": record.reason, "field_path": record.field_path}
        rows.events.append(
            (decided_at, f"{rid}:decided", message_id, None, record.outcome.value, rid, detail)
        )
    if record.ack is not None:
        acked = message_key(record.ack.ref_sender, record.ack.ref_distribution_id)
        kind = f"receipt_{record.ack.level}"[:32]
        detail = {"ack": message_id}
        rows.events.append((decided_at, f"{rid}:receipt", acked, record.sender, kind, rid, detail))
    if record.replay_of is not None:
        detail = {"replay_of": record.replay_of, "replayed_by": record.replayed_by}
        rows.events.append((decided_at, f"{rid}:replay", message_id, None, "replayed", rid, detail))
        rows.replays.append((record.replay_of, decided_at, record.replayed_by))
    if rows.newest is None or decided_at > rows.newest:
        rows.newest = decided_at


def _via(org: str, resolved: list[tuple[str, frozenset[str]]]) -> list[str]:
    return [a for a, orgs in resolved if org in orgs]


def dead_letter_rows(
    rows: Rows,
    *,
    body: bytes,
    routing_key: str,
    user_id: str | None,
    message_id: str | None,
    message_type: str | None,
    headers: Mapping[str, Any],
    org_for_account: Callable[[str], str | None],
    received_at: datetime,
) -> None:
    """Add the rows of one dead letter (a hub refusal kept, or an inbox copy that died)."""
    # The broker's own dead-lettering (a hub shard's delivery limit) keeps the sender's user_id.
    user = _header_text(headers.get(HEADER_ORIGINAL_USER)) or user_id or ""
    refused_at = _header_text(headers.get(HEADER_REFUSED_AT)) or ""
    letter_id = dead_letter_id(routing_key=routing_key, user_id=user_id, headers=headers, body=body)
    code = headers.get(HEADER_ERROR_CODE)
    code = code if isinstance(code, int) and not isinstance(code, bool) else None
    deaths = headers.get("x-death")
    death = (
        deaths[0]
        if isinstance(deaths, list) and deaths and isinstance(deaths[0], Mapping)
        else None
    )
    died_in = _inbox_owner(_header_text(death.get("queue")) or "") if death else None
    if death is None or died_in is None:
        # The hub refused it and kept the original: its decision record already has the rest.
        # (An inbox death carries x-death naming the inbox, and may carry the hub's 401 too.)
        envelope = _read_envelope(body)
        sender = org_for_account(user) if user else None
        key = message_key(sender, _short(envelope.distribution_id))
        when = _time(refused_at) or received_at
        reason = _header_text(headers.get(HEADER_ERROR_REASON)) or "refused by the hub"
        kind, org, queue, event_key = "kept", None, None, f"kept:{letter_id}"
    else:
        queue = _header_text(death.get("queue")) or ""
        cause = _header_text(death.get("reason")) or "unknown"
        count = death.get("count")
        when_raw = death.get("time")
        when = when_raw if isinstance(when_raw, datetime) else received_at
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        key = _short(message_id)
        org = _inbox_owner(queue)
        kind = _DEATH_KINDS.get(cause, "dead_lettered")
        reason = f"{cause} in {queue}"
        event_key = f"death:{letter_id}:{queue}:{cause}:{count}"
    detail = {"dead_letter_id": letter_id, "reason": reason, "code": code}
    rows.events.append((when, event_key, key, org, kind, None, detail))
    rows.dead_letters.append(
        (
            letter_id,
            when,
            key,
            queue,
            reason,
            code,
            routing_key,
            user or None,
            _short(message_type, 64),
            {k: _jsonable(v) for k, v in headers.items()},
            body,
        )
    )


def _inbox_owner(queue: str) -> str | None:
    if not queue.startswith("inbox."):
        return None
    org = queue.removeprefix("inbox.")
    return org.removesuffix(".flash")


def _header_text(value: object) -> str | None:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    return value[:1000] if isinstance(value, str) and value else None


def _jsonable(value: object) -> object:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)
