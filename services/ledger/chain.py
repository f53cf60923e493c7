"""The ledger's hash chain: canonical bytes of a record and of a link, and their hashes (pure).

Every ``messages`` row is a *record*; each record gets a *link* in ``chain_links``. There is one
chain per UTC day of ``decided_at`` (its partition), links numbered from 1 in append order::

    record_hash = SHA-256(record bytes)
    link bytes  = {"day":"2026-11-24","prev":<link_hash of seq-1>,"record":<record_hash>,"seq":n}
    link_hash   = SHA-256(link bytes)          prev of seq 1 = 64 zeros

The canonical encoding (version 1), for records, links and signed heads alike: one JSON object,
keys sorted by code point, no whitespace, UTF-8, strings escaped only where JSON requires it
(``"``, ``\\`` and control characters), integers in decimal, ``null`` for a missing value —
what ``msgspec.json.encode(..., order="sorted")`` writes. Times are strings in UTC with
microseconds and ``Z`` (``2026-11-24T02:53:49.000123Z``). Hashes are lower-case hex. A third
party never re-encodes anything: an evidence bundle holds these exact bytes, and ``sha256sum``
of a file is its hash.

A record holds every column of its ``messages`` row except the body (present by its SHA-256,
``body_sha256``, kept even when bodies are not) and ``body_text`` (what text search reads of
the body), plus the organisations its copies went to and those refused (from ``recipients``),
sorted.
"""

import hashlib
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from typing import Any, Final

import msgspec

#: The columns a record's hash covers (version 1): all the ``messages`` columns of migration
#: 0002 but the body itself and its search copy. Fixed: a column added to ``messages`` later
#: goes at the end of MESSAGE_COLUMNS, never here, so records chained before it keep their hash.
RECORD_COLUMNS: Final = (
    "decided_at",
    "record_id",
    "outcome",
    "message_id",
    "sender",
    "user_id",
    "distribution_id",
    "message_type",
    "precedence",
    "classification",
    "envelope_status",
    "incident_id",
    "in_reply_to",
    "sent_at",
    "expires_at",
    "code",
    "reason",
    "field_path",
    "reply_to",
    "recipient_count",
    "refused_count",
    "replay_of",
    "replayed_by",
    "body_sha256",
    "signature",
    "signature_kid",
    "signature_status",
)
_BODY_AT: Final = RECORD_COLUMNS.index("body_sha256")
#: Column order of the ``messages`` INSERT (store.py) and of each row tuple (rows.py): the
#: record's columns with the body and its search copy before the body's hash.
MESSAGE_COLUMNS: Final = (
    *RECORD_COLUMNS[:_BODY_AT],
    "body",
    "body_text",
    *RECORD_COLUMNS[_BODY_AT:],
)
#: ``prev`` of the first link of a day.
GENESIS: Final = "0" * 64
#: Names the chain in a signed head, so a head cannot be taken for another JWS payload.
CHAIN_NAME: Final = "liaison-ledger-chain/1"

_encoder = msgspec.json.Encoder(order="sorted")
_PLAIN: Final = frozenset({str, int, float, bool, type(None), list})


def canonical(document: Mapping[str, Any]) -> bytes:
    """The canonical JSON bytes of ``document`` (see the module docstring)."""
    return _encoder.encode(
        {
            # Text, numbers and nulls (most values) as they are; the rest by _value.
            key: value if value.__class__ in _PLAIN else _value(value)
            for key, value in document.items()
        }
    )


def sha256_hex(data: bytes) -> str:
    """Lower-case hex SHA-256 of ``data``, as ``sha256sum`` prints it."""
    return hashlib.sha256(data).hexdigest()


def timestamp(moment: datetime) -> str:
    """A time in the canonical form: UTC, microseconds, ``Z``."""
    utc = moment if moment.tzinfo is UTC else moment.astimezone(UTC)
    if utc.year < 1000:
        # strftime writes such a year unpadded: the form chained so far, kept exactly.
        return utc.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    # isoformat is several times faster than strftime, and the same text up to the offset.
    return utc.isoformat(timespec="microseconds")[:26] + "Z"


def day_of(decided_at: datetime) -> date:
    """The chain partition a record belongs to: the UTC day it was decided."""
    return decided_at.astimezone(UTC).date()


def record_bytes(
    row: Mapping[str, Any], recipients: Sequence[str], refused: Sequence[str]
) -> bytes:
    """The canonical bytes of one ``messages`` row with its delivered and refused orgs."""
    document = {column: row[column] for column in RECORD_COLUMNS}
    # Sets, as the recipients table keys them: a record seen twice in a batch lists each once.
    document["recipients"] = sorted(set(recipients))
    document["refused_recipients"] = sorted(set(refused))
    return canonical(document)


def link_bytes(day: date, seq: int, prev: str, record_hash: str) -> bytes:
    """The canonical bytes of link ``seq`` of ``day``'s chain."""
    return canonical({"day": day.isoformat(), "seq": seq, "prev": prev, "record": record_hash})


def head_payload(day: date, seq: int, head: str, signed_at: datetime) -> bytes:
    """What a signed head says: ``day``'s chain up to link ``seq`` ends in ``head``."""
    return canonical(
        {
            "chain": CHAIN_NAME,
            "day": day.isoformat(),
            "seq": seq,
            "head": head,
            "signed_at": signed_at,
        }
    )


class Link(msgspec.Struct, frozen=True):
    """One link as stored in ``chain_links``."""

    day: date
    seq: int
    record_id: str
    decided_at: datetime
    record_hash: str
    prev_hash: str
    link_hash: str


def extend(
    day: date, tail_seq: int, tail_hash: str, records: Sequence[tuple[datetime, str, bytes]]
) -> list[Link]:
    """Links appending ``records`` (decided_at, record_id, record bytes) after the tail."""
    links = []
    seq, prev = tail_seq, tail_hash
    for decided_at, record_id, data in records:
        seq += 1
        record_hash = sha256_hex(data)
        link_hash = sha256_hex(link_bytes(day, seq, prev, record_hash))
        links.append(Link(day, seq, record_id, decided_at, record_hash, prev, link_hash))
        prev = link_hash
    return links


def _value(value: object) -> object:
    if isinstance(value, datetime):
        return timestamp(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bytes | bytearray | memoryview):
        raise TypeError("bytes are chained by their SHA-256, never inline")
    return value
