"""Writing the ledger: one transaction per batch, idempotent, partitions made on demand.

Also the one database pool factory (``open_pool``) the ledger, its CLI and the tests use, and
the retention policy (``drop_partitions_before``).
"""

import json
from datetime import UTC, datetime
from typing import Any, Final

import asyncpg
import msgspec
from asyncpg.pool import PoolConnectionProxy

from liaison.ledger.chain import MESSAGE_COLUMNS
from liaison.ledger.chaining import append_links
from liaison.ledger.rows import Rows

Connection = asyncpg.Connection | PoolConnectionProxy

#: Tables partitioned by month, with the column they are partitioned on.
PARTITIONED: Final = {"messages": "decided_at", "recipients": "decided_at", "events": "occurred_at"}

#: PostgreSQL type of each ``messages`` column (chain.MESSAGE_COLUMNS), for the unnest below.
_MESSAGE_TYPES: Final = {
    "decided_at": "timestamptz",
    "sent_at": "timestamptz",
    "expires_at": "timestamptz",
    "code": "int4",
    "recipient_count": "int4",
    "refused_count": "int4",
    "body": "bytea",
}


def _insert_unnest(table: str, columns: list[tuple[str, str]]) -> str:
    """One INSERT of a whole batch: one array parameter per column, ``unnest`` into rows.

    Compared with ``executemany`` (one Bind/Execute per row), PostgreSQL plans the statement
    and sets up routing to the monthly partitions once per batch instead of once per row: its
    CPU per record written fell from ~250-310 to ~190 µs (busy machine, interleaved runs of
    batches of 800 records). Duplicates, within the batch or already stored, are skipped by ON
    CONFLICT DO NOTHING as before.
    """
    names = ", ".join(name for name, _ in columns)
    arrays = ", ".join(f"${n}::{kind}[]" for n, (_, kind) in enumerate(columns, 1))
    # Names and types are the constants above, never input.
    return (
        f"INSERT INTO {table} ({names}) SELECT * FROM unnest({arrays}) "  # noqa: S608
        "ON CONFLICT DO NOTHING"
    )


_INSERT_MESSAGES = _insert_unnest(
    "messages", [(name, _MESSAGE_TYPES.get(name, "text")) for name in MESSAGE_COLUMNS]
)
# ``via`` (text[] per row) travels as the text of an array literal: unnest cannot take a
# ragged two-dimensional array.
_INSERT_RECIPIENTS = """
INSERT INTO recipients (decided_at, record_id, org, message_id, via, refused, code, reason)
SELECT d, r, o, m, v::text[], f, c, e
FROM unnest($1::timestamptz[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bool[],
            $7::int4[], $8::text[]) AS t(d, r, o, m, v, f, c, e)
ON CONFLICT DO NOTHING"""
_RECIPIENT_COLUMNS: Final = (
    "decided_at",
    "record_id",
    "org",
    "message_id",
    "via",
    "refused",
    "code",
    "reason",
)
_EVENT_COLUMNS: Final = (
    "occurred_at",
    "event_key",
    "message_id",
    "org",
    "kind",
    "record_id",
    "detail",
)
_INSERT_EVENTS = """
INSERT INTO events (occurred_at, event_key, message_id, org, kind, record_id, detail)
SELECT t, k, m, o, n, r, d::jsonb
FROM unnest($1::timestamptz[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
            $7::text[]) AS u(t, k, m, o, n, r, d)
ON CONFLICT DO NOTHING"""
_INSERT_DEAD_LETTERS = """
INSERT INTO dead_letters (dead_letter_id, kept_at, message_id, source_queue, reason, code,
    routing_key, user_id, message_type, headers, body)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT DO NOTHING"""
_MARK_REPLAYED = """
UPDATE dead_letters SET replayed_at = $2, replayed_by = coalesce(replayed_by, $3)
WHERE dead_letter_id = $1 AND replayed_at IS NULL"""
# msgspec writes an event's detail ~5x faster than json.dumps.
_encode_json = msgspec.json.Encoder().encode
_INSERT_UNREADABLE = "INSERT INTO unreadable (reason, properties, body) VALUES ($1, $2, $3)"


async def _init_connection(connection: asyncpg.Connection) -> None:
    # jsonb columns take and give Python values, in the binary format binary COPY needs.
    await connection.set_type_codec(
        "jsonb", encoder=_jsonb, decoder=_from_jsonb, schema="pg_catalog", format="binary"
    )


def _jsonb(value: Any) -> bytes:
    """jsonb's binary form: format version 1, then the JSON text."""
    return b"\x01" + _encode_json(value)


def _from_jsonb(data: bytes) -> Any:
    return json.loads(data[1:])


async def open_pool(database_url: str, *, max_size: int = 4) -> asyncpg.Pool:
    """A connection pool with the ledger's type codecs."""
    pool = await asyncpg.create_pool(
        database_url, min_size=1, max_size=max_size, init=_init_connection, timeout=5
    )
    assert pool is not None
    return pool


def partition_name(table: str, month: datetime) -> str:
    """``messages_2026_11`` for November 2026."""
    return f"{table}_{month.year:04d}_{month.month:02d}"


def _next_month(month: datetime) -> datetime:
    return month.replace(year=month.year + month.month // 12, month=month.month % 12 + 1)


async def ensure_partitions(connection: Connection, month: datetime) -> None:
    """Create the month's partition of every partitioned table, if missing."""
    start = month.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    end = _next_month(start)
    for table in PARTITIONED:
        # Names and bounds come from datetimes, never from input: safe to format in.
        await connection.execute(
            f"CREATE TABLE IF NOT EXISTS {partition_name(table, start)} PARTITION OF {table} "
            f"FOR VALUES FROM ('{start.isoformat()}') TO ('{end.isoformat()}')"
        )


class LedgerStore:
    """Writes batches of rows; remembers which monthly partitions exist."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self._months: set[datetime] = set()

    async def write(self, rows: Rows) -> None:
        """Insert ``rows`` in one transaction; rows already present are left as they are.

        The batch's records are chained in the same transaction, so a record is never stored
        without its link nor linked without being stored.
        """
        months = rows.months()
        async with self.pool.acquire() as connection, connection.transaction():
            for month in months - self._months:
                await ensure_partitions(connection, month)
            await _append(connection, rows)
            if rows.messages:
                await append_links(connection, rows)
            if rows.dead_letters:
                await connection.executemany(_INSERT_DEAD_LETTERS, rows.dead_letters)
            if rows.replays:
                await connection.executemany(_MARK_REPLAYED, rows.replays)
            if rows.unreadable:
                await connection.executemany(_INSERT_UNREADABLE, rows.unreadable)
        self._months |= months


async def _append(connection: Connection, rows: Rows) -> None:
    """The batch's messages, recipients and events: by binary COPY, or, when a row is already
    stored (a redelivered batch, a record twice in one batch), by INSERT … ON CONFLICT DO NOTHING.

    COPY has no ON CONFLICT, so it runs under a savepoint and a duplicate makes the whole
    batch take the INSERT path: same rows, same idempotency, only slower. In the ledger's
    process asyncpg spent a third of its CPU encoding the INSERT's arrays (every element
    checked against collections.abc); COPY encodes row by row.
    """
    try:
        async with connection.transaction():
            await _copy(connection, rows)
    except asyncpg.UniqueViolationError:
        await _insert(connection, rows)


async def _copy(connection: Connection, rows: Rows) -> None:
    if rows.messages:
        await connection.copy_records_to_table(
            "messages", records=rows.messages, columns=MESSAGE_COLUMNS
        )
    if rows.recipients:
        await connection.copy_records_to_table(
            "recipients", records=rows.recipients, columns=_RECIPIENT_COLUMNS
        )
    if rows.events:
        await connection.copy_records_to_table(
            "events", records=rows.events, columns=_EVENT_COLUMNS
        )


async def _insert(connection: Connection, rows: Rows) -> None:
    if rows.messages:
        await connection.execute(_INSERT_MESSAGES, *_columns(rows.messages))
    if rows.recipients:
        await connection.execute(
            _INSERT_RECIPIENTS,
            *_columns([(*row[:4], _array_text(row[4]), *row[5:]) for row in rows.recipients]),
        )
    if rows.events:
        await connection.execute(
            _INSERT_EVENTS,
            *_columns([(*row[:6], _json_text(row[6])) for row in rows.events]),
        )


def _columns(rows: list[tuple[Any, ...]]) -> list[list[Any]]:
    """Rows turned into one list per column, the parameters of an unnest INSERT."""
    return [list(column) for column in zip(*rows, strict=True)]


def _json_text(detail: dict[str, Any]) -> str:
    """An event's detail as JSON text (most are empty: a copy in an inbox says nothing more)."""
    return _encode_json(detail).decode() if detail else "{}"


def _array_text(items: list[str]) -> str:
    """The PostgreSQL literal of a text array: every element quoted, ``\\`` and ``"`` escaped."""
    quoted = ('"' + item.replace("\\", "\\\\").replace('"', '\\"') + '"' for item in items)
    return "{" + ",".join(quoted) + "}"


async def drop_partitions_before(connection: Connection, keep_months: int) -> list[str]:
    """The retention policy: drop whole monthly partitions older than ``keep_months`` months.

    The current month counts as one; dead letters kept before the horizon go too. Returns the
    partitions dropped.
    """
    now = datetime.now(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    horizon = now
    for _ in range(keep_months - 1):
        horizon = horizon.replace(
            year=horizon.year - (1 if horizon.month == 1 else 0),
            month=12 if horizon.month == 1 else horizon.month - 1,
        )
    dropped = []
    async with connection.transaction():
        for table in PARTITIONED:
            children = await connection.fetch(
                "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                "JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = $1",
                table,
            )
            for child in children:
                name = child["relname"]
                year, month = name.rsplit("_", 2)[-2:]
                if datetime(int(year), int(month), 1, tzinfo=UTC) < horizon:
                    await connection.execute(f'DROP TABLE "{name}"')
                    dropped.append(name)
        await connection.execute("DELETE FROM dead_letters WHERE kept_at < $1", horizon)
        # The chain of a dropped day goes with its records, and so do its signed heads.
        await connection.execute("DELETE FROM chain_links WHERE day < $1", horizon.date())
        await connection.execute("DELETE FROM chain_heads WHERE day < $1", horizon.date())
    return dropped
