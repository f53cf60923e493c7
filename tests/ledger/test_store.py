"""Migrations and the retention policy against the real PostgreSQL (this run's database)."""

import json
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


@pytest.mark.parametrize("copies", [1, 2], ids=["copy", "repeated-insert"])
async def test_a_batch_is_stored_as_given_and_its_duplicates_once(
    database_url: str, db: asyncpg.Connection, copies: int
) -> None:
    """Both ways a batch is written keep every value (addresses with quotes and backslashes,
    empty and several, jsonb details, bodies): COPY for new rows, and INSERT … ON CONFLICT when
    a record is repeated within the batch, which is stored once, with one link."""
    body = b'{"recipients": ["org:a\\"b", "group:c\\\\d", "org:e"], "incident_id": "INC-1"}'
    record = DecisionRecord(
        record_id="r1",
        decided_at=datetime.now(UTC).timestamp(),
        outcome=Outcome.PARTIAL,
        sender="mag",
        distribution_id="d-1",
        recipients=["x", "y", "z"],
        refused_recipients=["w"],
        code=403,
        reason='not "allowed"',
        body=body,
    )
    names = {'org:a"b': {"x"}, "group:c\\d": {"x", "y"}, "org:e": {"w"}}

    def resolve(address: str) -> frozenset[str] | None:
        return frozenset(names[address]) if address in names else None

    rows = Rows()
    for _ in range(copies):
        record_rows(rows, record, resolve=resolve, keep_body=True)
    pool = await open_pool(database_url)
    try:
        await LedgerStore(pool).write(rows)
    finally:
        await pool.close()
    stored = await db.fetchrow("SELECT * FROM messages")
    assert stored["body"] == body
    assert stored["incident_id"] == "INC-1"
    assert stored["code"] == 403
    assert stored["reason"] == 'not "allowed"'
    via = {r["org"]: r["via"] for r in await db.fetch("SELECT org, via FROM recipients")}
    assert via == {"x": ['org:a"b', "group:c\\d"], "y": ["group:c\\d"], "z": [], "w": ["org:e"]}
    refused = await db.fetchrow("SELECT detail FROM events WHERE kind = 'refused'")
    assert json.loads(refused["detail"]) == {"code": 403, "reason": 'not "allowed"'}
    assert await db.fetchval("SELECT count(*) FROM chain_links") == 1


async def test_a_batch_partly_stored_before_adds_only_the_rest(
    database_url: str, db: asyncpg.Connection
) -> None:
    """A batch redelivered with new records behind it (COPY refused by a duplicate) stores the
    new ones once, leaves the old ones as they were, and links each record once."""
    now = datetime.now(UTC).timestamp()
    first, second = (
        DecisionRecord(
            record_id=f"r{i}",
            decided_at=now + i,
            outcome=Outcome.DELIVERED,
            sender="mag",
            distribution_id=f"d-{i}",
            recipients=["unmas", "undp"],
        )
        for i in (1, 2)
    )
    before, after = Rows(), Rows()
    record_rows(before, first, resolve=None, keep_body=True)
    for record in (first, second):
        record_rows(after, record, resolve=None, keep_body=True)
    pool = await open_pool(database_url)
    try:
        store = LedgerStore(pool)
        await store.write(before)
        await store.write(after)
    finally:
        await pool.close()
    assert sorted(r["record_id"] for r in await db.fetch("SELECT record_id FROM messages")) == [
        "r1",
        "r2",
    ]
    assert await db.fetchval("SELECT count(*) FROM recipients") == 4
    assert await db.fetchval("SELECT count(*) FROM events") == 4
    assert await db.fetchval("SELECT count(*) FROM chain_links") == 2
