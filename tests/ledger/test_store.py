"""Migrations and the retention policy against the real PostgreSQL (this run's database)."""

from datetime import UTC, datetime

import asyncpg
import pytest

from liaison.ledger.database import migrate_database
from liaison.ledger.migrate import migrations
from liaison.ledger.records import DecisionRecord, Outcome
from liaison.ledger.rows import Rows, record_rows
from liaison.ledger.store import LedgerStore, drop_partitions_before, open_pool

pytestmark = pytest.mark.postgres


async def test_migrations_apply_once(database_url: str, db: asyncpg.Connection) -> None:
    """A second migrate applies nothing; every shipped version is recorded."""
    assert await migrate_database(database_url) == []
    versions = [r["version"] for r in await db.fetch("SELECT version FROM schema_migrations")]
    assert versions == [m.version for m in migrations()]


async def test_retention_drops_whole_old_months_only(
    database_url: str, db: asyncpg.Connection
) -> None:
    """Rows of an old month go with their partitions; this month's stay; a rewrite is a no-op."""
    old = DecisionRecord(
        record_id="old",
        decided_at=datetime(2020, 1, 15, tzinfo=UTC).timestamp(),
        outcome=Outcome.DELIVERED,
        sender="mag",
        distribution_id="d-old",
        recipients=["unmas"],
    )
    new = DecisionRecord(
        record_id="new",
        decided_at=datetime.now(UTC).timestamp(),
        outcome=Outcome.DELIVERED,
        sender="mag",
        distribution_id="d-new",
        recipients=["unmas"],
    )
    rows = Rows()
    for record in (old, new):
        record_rows(rows, record, resolve=None, keep_body=True)
    pool = await open_pool(database_url)
    try:
        store = LedgerStore(pool)
        await store.write(rows)
        await store.write(rows)  # redelivered: nothing new
        assert await db.fetchval("SELECT count(*) FROM events") == 2
        dropped = await drop_partitions_before(db, 24)
    finally:
        await pool.close()
    assert {"messages_2020_01", "recipients_2020_01", "events_2020_01"} <= set(dropped)
    assert [r["record_id"] for r in await db.fetch("SELECT record_id FROM messages")] == ["new"]
    assert await db.fetchval("SELECT count(*) FROM events") == 1
