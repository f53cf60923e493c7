"""Appending a batch's records to the chain, inside the batch's write transaction.

Safe with several ledger consumers on one database: each day's chain is extended under a
transaction-scoped advisory lock on that day (taken in day order, so two batches spanning the
same days cannot deadlock), and the tail is read after the lock is held. Idempotent: a record
already linked (a redelivered batch, or the same record twice in one batch) gets no new link.
"""

from collections import defaultdict
from datetime import date, datetime
from typing import Any, Final

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from liaison.ledger.chain import GENESIS, MESSAGE_COLUMNS, day_of, extend, record_bytes
from liaison.ledger.rows import Rows

Connection = asyncpg.Connection | PoolConnectionProxy

#: First key of the per-day advisory lock (the second is the day's ordinal).
CHAIN_LOCK: Final = 0x11A151

_INSERT_LINKS = """
INSERT INTO chain_links (day, seq, record_id, decided_at, record_hash, prev_hash, link_hash)
VALUES ($1, $2, $3, $4, $5, $6, $7)"""
# A batch's links in one statement (one array per column), as store.py inserts its rows.
_INSERT_LINKS_UNNEST = """
INSERT INTO chain_links (day, seq, record_id, decided_at, record_hash, prev_hash, link_hash)
SELECT * FROM unnest($1::date[], $2::int8[], $3::text[], $4::timestamptz[], $5::text[],
                     $6::text[], $7::text[])"""


async def append_links(connection: Connection, rows: Rows) -> int:
    """Link the records of ``rows`` not linked yet; returns how many links were added."""
    delivered: dict[str, list[str]] = defaultdict(list)
    refused: dict[str, list[str]] = defaultdict(list)
    for _, rid, org, _, _, was_refused, _, _ in rows.recipients:
        (refused if was_refused else delivered)[rid].append(org)
    by_day: dict[date, dict[str, tuple[datetime, str, bytes]]] = defaultdict(dict)
    for values in rows.messages:
        row: dict[str, Any] = dict(zip(MESSAGE_COLUMNS, values, strict=True))
        rid = row["record_id"]
        data = record_bytes(row, delivered.get(rid, ()), refused.get(rid, ()))
        by_day[day_of(row["decided_at"])].setdefault(rid, (row["decided_at"], rid, data))
    added = 0
    for day in sorted(by_day):
        await connection.execute(
            "SELECT pg_advisory_xact_lock($1, $2)", CHAIN_LOCK, day.toordinal()
        )
        pending = by_day[day]
        linked = await connection.fetch(
            "SELECT record_id FROM chain_links WHERE day = $1 AND record_id = ANY($2::text[])",
            day,
            list(pending),
        )
        for found in linked:
            pending.pop(found["record_id"], None)
        if not pending:
            continue
        tail = await connection.fetchrow(
            "SELECT seq, link_hash FROM chain_links WHERE day = $1 ORDER BY seq DESC LIMIT 1", day
        )
        seq, prev = (tail["seq"], tail["link_hash"]) if tail else (0, GENESIS)
        links = extend(day, seq, prev, list(pending.values()))
        await connection.execute(
            _INSERT_LINKS_UNNEST,
            [k.day for k in links],
            [k.seq for k in links],
            [k.record_id for k in links],
            [k.decided_at for k in links],
            [k.record_hash for k in links],
            [k.prev_hash for k in links],
            [k.link_hash for k in links],
        )
        added += len(links)
    return added


_UNLINKED = """
SELECT m.*,
       coalesce((SELECT array_agg(x.org) FROM recipients x WHERE x.decided_at = m.decided_at
                 AND x.record_id = m.record_id AND NOT x.refused), '{}') AS delivered,
       coalesce((SELECT array_agg(x.org) FROM recipients x WHERE x.decided_at = m.decided_at
                 AND x.record_id = m.record_id AND x.refused), '{}') AS refused_orgs
FROM messages m
WHERE NOT EXISTS (
    SELECT 1 FROM chain_links l
    WHERE l.day = (m.decided_at AT TIME ZONE 'UTC')::date AND l.record_id = m.record_id)
ORDER BY m.decided_at, m.record_id"""


async def link_unlinked(connection: Connection) -> int:
    """Link the rows recorded before the chain existed (``liaison ledger migrate`` runs it).

    Rows are linked as they are now, in decision order, after whatever each day already holds;
    from then on they are protected like any other record.
    """
    added = 0
    async with connection.transaction():
        rows = await connection.fetch(_UNLINKED)
        by_day: dict[date, list[tuple[datetime, str, bytes]]] = defaultdict(list)
        for row in rows:
            fields = dict(row)
            data = record_bytes(fields, row["delivered"], row["refused_orgs"])
            by_day[day_of(row["decided_at"])].append((row["decided_at"], row["record_id"], data))
        for day in sorted(by_day):
            await connection.execute(
                "SELECT pg_advisory_xact_lock($1, $2)", CHAIN_LOCK, day.toordinal()
            )
            tail = await connection.fetchrow(
                "SELECT seq, link_hash FROM chain_links WHERE day = $1 ORDER BY seq DESC LIMIT 1",
                day,
            )
            seq, prev = (tail["seq"], tail["link_hash"]) if tail else (0, GENESIS)
            links = extend(day, seq, prev, by_day[day])
            await connection.executemany(
                _INSERT_LINKS,
                [
                    (
                        k.day,
                        k.seq,
                        k.record_id,
                        k.decided_at,
                        k.record_hash,
                        k.prev_hash,
                        k.link_hash,
                    )
                    for k in links
                ],
            )
            added += len(links)
    return added
