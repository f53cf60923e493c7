"""``liaison audit verify``: recompute the chain from the records and check every signature.

Offline: reads PostgreSQL directly and trusts nothing stored there but the data itself. Per day,
link by link, it checks that

- each ``messages`` row still hashes to the record hash its link holds (an edited column is
  caught here, naming the record), its body still hashes to ``body_sha256``, and a linked row
  still exists (a deleted row is caught here);
- links are numbered 1, 2, 3… with each ``prev`` the previous link's hash (a deleted or
  reordered link is caught here);
- each signed head verifies with the ledger's public key and equals the chain *recomputed from
  the records* at its ``seq`` (a chain rewritten consistently, hashes and all, is caught here:
  without the key no new head can be made), and no head points past the last link;
- every stored signature names the key id stored with it, and, given the senders' keys, verifies
  over the stored body with a key of the sender valid when the hub decided;
- every ``messages`` row has a link (a row inserted behind the ledger's back is caught here).

Problems are listed in chain order, so the first one names the first record that does not match.
"""

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import asyncpg
import msgspec
from asyncpg.pool import PoolConnectionProxy
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from liaison.ledger.chain import (
    CHAIN_NAME,
    GENESIS,
    head_payload,
    link_bytes,
    record_bytes,
    sha256_hex,
)
from liaison.ledger.jws import JwsError, verify_compact
from liaison.sdk.errors import SignatureError
from liaison.sdk.signing import TrustedKey, parse_signature, verify

Connection = asyncpg.Connection | PoolConnectionProxy

#: Outcomes whose signature the hub accepted: it must verify. (A refused message's signature
#: may be the very reason it was refused.)
_ACCEPTED = frozenset({"delivered", "partial", "duplicate"})

_LINKED_ROWS = """
SELECT l.day, l.seq, l.record_id AS link_record_id, l.decided_at AS link_decided_at,
       l.record_hash, l.prev_hash, l.link_hash, m.*, r.delivered, r.refused_orgs
FROM chain_links l
LEFT JOIN messages m ON m.decided_at = l.decided_at AND m.record_id = l.record_id
LEFT JOIN LATERAL (
    SELECT coalesce(array_agg(x.org) FILTER (WHERE NOT x.refused), '{}') AS delivered,
           coalesce(array_agg(x.org) FILTER (WHERE x.refused), '{}') AS refused_orgs
    FROM recipients x WHERE x.decided_at = l.decided_at AND x.record_id = l.record_id
) r ON true
ORDER BY l.day, l.seq"""

_UNLINKED = """
SELECT m.decided_at, m.record_id FROM messages m
WHERE NOT EXISTS (
    SELECT 1 FROM chain_links l
    WHERE l.day = (m.decided_at AT TIME ZONE 'UTC')::date AND l.record_id = m.record_id)
ORDER BY m.decided_at, m.record_id"""


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing that does not match, located in the chain."""

    day: date | None
    seq: int | None
    record_id: str | None
    what: str

    def __str__(self) -> str:
        where = []
        if self.record_id is not None:
            where.append(f"record {self.record_id}")
        if self.day is not None:
            where.append(
                f"chain {self.day.isoformat()}" + (f" link {self.seq}" if self.seq else "")
            )
        return f"{', '.join(where) or 'ledger'}: {self.what}"


@dataclass(slots=True)
class AuditReport:
    """What ``verify_ledger`` found."""

    records: int = 0
    days: int = 0
    heads: int = 0
    signatures: int = 0
    signatures_verified: int = 0
    #: Links after each day's last signed head (not yet protected by a head).
    unsigned_tail: dict[date, int] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """No problem found."""
        return not self.problems


class _Day:
    """Running state of one day's chain while its links stream past."""

    def __init__(self, day: date, heads: dict[int, str]) -> None:
        self.day = day
        #: seq -> head hash, as signed (the JWS payload) when the ledger key is given.
        self.heads = heads
        self.last_seq = 0
        self.stored_prev = GENESIS
        self.computed_prev = GENESIS


def _add_published(
    jws: str,
    heads: dict[date, list[Mapping[str, Any]]],
    head_keys: dict[str, Ed25519PublicKey] | None,
    report: AuditReport,
) -> None:
    if head_keys is None:
        raise JwsError("published heads can only be checked with the hub's public key")
    try:
        kid, payload = verify_compact(jws, head_keys)
        claimed = msgspec.json.decode(payload)
        day, seq = date.fromisoformat(claimed["day"]), int(claimed["seq"])
        signed_at = datetime.fromisoformat(claimed["signed_at"].replace("Z", "+00:00"))
        head = str(claimed["head"])
    except (JwsError, ValueError, KeyError, TypeError, AttributeError) as exc:
        report.problems.append(Problem(None, None, None, f"a published head: {exc}"))
        return
    if not any(row["seq"] == seq and row["jws"] == jws for row in heads[day]):
        report.problems.append(
            Problem(day, seq, None, "a published head is not in chain_heads: deleted or replaced")
        )
        heads[day].append(
            {"day": day, "seq": seq, "head": head, "signed_at": signed_at, "kid": kid, "jws": jws}
        )


def _trusted_heads(
    day: date,
    rows: list[Mapping[str, Any]],
    head_keys: dict[str, Ed25519PublicKey] | None,
    report: AuditReport,
) -> dict[int, str]:
    """The heads of ``day`` to check the chain against: what the JWS says, once verified."""
    heads = {}
    for head in rows:
        seq = head["seq"]
        if head_keys is None:
            heads[seq] = head["head"]
            continue
        try:
            kid, payload = verify_compact(head["jws"], head_keys)
        except JwsError as exc:
            report.problems.append(Problem(day, seq, None, f"signed head: {exc}"))
            continue
        claimed = msgspec.json.decode(payload)
        if claimed.get("chain") != CHAIN_NAME or claimed.get("day") != day.isoformat():
            report.problems.append(Problem(day, seq, None, "signed head of another chain"))
            continue
        expected = msgspec.json.decode(head_payload(day, seq, head["head"], head["signed_at"]))
        if claimed != expected or kid != head["kid"]:
            report.problems.append(
                Problem(day, seq, None, "the stored head differs from what was signed")
            )
        seq, value = int(claimed["seq"]), str(claimed["head"])
        if heads.get(seq, value) != value:
            report.problems.append(Problem(day, seq, None, "two different heads signed at it"))
        heads[seq] = value
    return heads


async def verify_ledger(
    connection: Connection,
    *,
    head_keys: dict[str, Ed25519PublicKey] | None,
    sender_keys: Mapping[str, TrustedKey] | None,
    published: Sequence[str] = (),
) -> AuditReport:
    """Check the whole ledger; the report lists every problem in chain order.

    ``published``: heads (compact JWS) copied out of the database when they were signed — from
    ``/api/chain/heads`` or the ``chain_head_signed`` log lines. Each must still be in
    ``chain_heads`` and match the chain: deleting heads along with a rewrite is caught too.
    """
    report = AuditReport()
    heads: dict[date, list[Mapping[str, Any]]] = defaultdict(list)
    for head in await connection.fetch("SELECT * FROM chain_heads ORDER BY day, seq"):
        heads[head["day"]].append(dict(head))
    report.heads = sum(len(v) for v in heads.values())
    for jws in published:
        _add_published(jws, heads, head_keys, report)
    state: _Day | None = None
    async with connection.transaction(readonly=True, isolation="repeatable_read"):
        async for row in connection.cursor(_LINKED_ROWS, prefetch=500):
            if state is None or row["day"] != state.day:
                if state is not None:
                    _close_day(state, report)
                day = row["day"]
                state = _Day(day, _trusted_heads(day, heads.pop(day, []), head_keys, report))
                report.days += 1
            _check_link(state, row, report, sender_keys)
        if state is not None:
            _close_day(state, report)
        for day, orphans in sorted(heads.items()):
            report.problems.append(
                Problem(day, None, None, f"{len(orphans)} signed head(s) but no links: deleted")
            )
        for row in await connection.fetch(_UNLINKED):
            report.problems.append(
                Problem(
                    row["decided_at"].date(),
                    None,
                    row["record_id"],
                    "is in messages but not in the chain: inserted behind the ledger",
                )
            )
    report.problems.sort(key=lambda p: (p.day or date.min, p.seq or 0))
    return report


def _check_link(
    state: _Day,
    row: asyncpg.Record,
    report: AuditReport,
    sender_keys: Mapping[str, TrustedKey] | None,
) -> None:
    day, seq, rid = row["day"], row["seq"], row["link_record_id"]
    problems = report.problems
    report.records += 1
    if seq != state.last_seq + 1:
        missing = f"{state.last_seq + 1}" + (f"-{seq - 1}" if seq - 1 > state.last_seq + 1 else "")
        problems.append(Problem(day, seq, rid, f"link(s) {missing} before it are missing"))
    elif row["prev_hash"] != state.stored_prev:
        problems.append(Problem(day, seq, rid, "its prev is not the previous link's hash"))
    record_hash = row["record_hash"]
    if row["record_id"] is None:
        problems.append(Problem(day, seq, rid, "is linked but missing from messages: deleted"))
    else:
        fields = dict(row)
        data = record_bytes(fields, row["delivered"], row["refused_orgs"])
        record_hash = sha256_hex(data)
        if record_hash != row["record_hash"]:
            problems.append(
                Problem(day, seq, rid, "differs from the record chained: edited in the database")
            )
        body = row["body"]
        if body is not None and sha256_hex(bytes(body)) != row["body_sha256"]:
            problems.append(Problem(day, seq, rid, "its body does not match its body_sha256"))
        if row["signature"] is not None:
            _check_signature(row, report, sender_keys)
    expected_link = sha256_hex(link_bytes(day, seq, row["prev_hash"], row["record_hash"]))
    if expected_link != row["link_hash"]:
        problems.append(Problem(day, seq, rid, "its link hash does not match the link"))
    state.computed_prev = sha256_hex(link_bytes(day, seq, state.computed_prev, record_hash))
    state.stored_prev = row["link_hash"]
    state.last_seq = seq
    head = state.heads.get(seq)
    if head is not None and head != state.computed_prev:
        problems.append(
            Problem(
                day,
                seq,
                rid,
                "the chain recomputed from the records does not reach the head signed at "
                "this link: rewritten at or before it",
            )
        )


def _close_day(state: _Day, report: AuditReport) -> None:
    last_signed = 0
    for seq in sorted(state.heads):
        last_signed = max(last_signed, seq)
        if seq > state.last_seq:
            report.problems.append(
                Problem(
                    state.day,
                    seq,
                    None,
                    f"a head was signed at link {seq} but the chain ends at {state.last_seq}: "
                    "links deleted",
                )
            )
    if state.last_seq > last_signed:
        report.unsigned_tail[state.day] = state.last_seq - last_signed


def _check_signature(
    row: asyncpg.Record, report: AuditReport, sender_keys: Mapping[str, TrustedKey] | None
) -> None:
    day, seq, rid = row["day"], row["seq"], row["record_id"]
    report.signatures += 1
    try:
        _, kid, _ = parse_signature(row["signature"])
    except SignatureError as exc:
        report.problems.append(Problem(day, seq, rid, f"stored signature: {exc}"))
        return
    if kid != row["signature_kid"]:
        report.problems.append(
            Problem(day, seq, rid, "the stored key id is not the one the signature names")
        )
        return
    if sender_keys is None or row["outcome"] not in _ACCEPTED or row["body"] is None:
        return
    try:
        # The same check the hub made: a key of the sender, valid when the hub decided.
        verify(
            bytes(row["body"]),
            row["signature"],
            sender_keys,
            signer=row["sender"],
            at=row["decided_at"],
        )
    except SignatureError as exc:
        report.problems.append(Problem(day, seq, rid, f"stored signature: {exc}"))
    else:
        report.signatures_verified += 1
