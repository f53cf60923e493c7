"""The ledger against the real broker and PostgreSQL: what a message's timeline holds."""

import asyncio

import aio_pika
import asyncpg
import pytest

from liaison.schemas.wire import inbox_queue
from tests.hub.conftest import RunningHub
from tests.hub.support import Partner, envelope, new_id, now_iso
from tests.ledger.conftest import RunningLedger, wait_for

pytestmark = [pytest.mark.broker, pytest.mark.postgres]

Admin = aio_pika.abc.AbstractConnection


def ack_from(org: str, original: dict[str, object], level: str) -> dict[str, object]:
    """``org``'s ack of ``original`` at ``level``."""
    return envelope(
        org,
        [f"org:{original['sender']}"],
        {
            "type": "ack",
            "ref_distribution_id": original["distribution_id"],
            "ref_sender": original["sender"],
            "level": level,
        },
    )


async def kinds(db: asyncpg.Connection, message_id: str) -> list[tuple[str | None, str]]:
    """(org, kind) of every event of ``message_id``, sorted."""
    rows = await db.fetch("SELECT org, kind FROM events WHERE message_id = $1", message_id)
    return sorted((r["org"], r["kind"]) for r in rows)


async def test_delivery_receipts_and_dead_letters_form_the_timeline(
    hub: RunningHub,
    ledger: RunningLedger,
    partners: dict[str, Partner],
    admin: Admin,
    db: asyncpg.Connection,
) -> None:
    """Delivered copies, each receipt level, a recipient's rejection and an expiry all land."""
    # First in unicef's inbox, so nothing is ahead of it when its TTL runs out.
    expiring = envelope("mag", ["org:unicef"], expires_at=now_iso(1.0))
    await partners["mag"].send(expiring)
    doc = envelope("mag", ["group:icg-ma"], incident_id="INC-42")
    await partners["mag"].send(doc)
    for level in ("received", "processed"):
        await partners["unmas"].send(ack_from("unmas", doc, level))
    # undp rejects its copy: the broker dead-letters it, and the ledger sees that too.
    channel = await admin.channel()
    queue = await channel.get_queue(inbox_queue("undp"), ensure=False)
    got = None
    for _ in range(100):
        got = await queue.get(no_ack=False, fail=False)
        if got is not None:
            break
        await asyncio.sleep(0.05)
    assert got is not None
    await got.reject(requeue=False)
    await channel.close()

    message_id = f"mag/{doc['distribution_id']}"
    expected = [
        ("dpko", "in_inbox"),
        ("ocha", "in_inbox"),
        ("undp", "in_inbox"),
        ("undp", "rejected"),
        ("unicef", "in_inbox"),
        ("unmas", "in_inbox"),
        ("unmas", "receipt_processed"),
        ("unmas", "receipt_received"),
    ]
    for _ in range(150):
        if await kinds(db, message_id) == expected:
            break
        await asyncio.sleep(0.1)
    assert await kinds(db, message_id) == expected
    row = await db.fetchrow("SELECT * FROM messages WHERE message_id = $1", message_id)
    assert row["outcome"] == "delivered"
    assert row["incident_id"] == "INC-42"
    assert row["recipient_count"] == 5
    assert bytes(row["body"]).startswith(b"{")
    via = await db.fetch("SELECT org, via FROM recipients WHERE message_id = $1", message_id)
    assert {r["org"]: r["via"] for r in via}["unmas"] == ["group:icg-ma"]

    # The other copy expires unread in unicef's inbox (TTL from expires_at).
    expired_id = f"mag/{expiring['distribution_id']}"
    await wait_for(
        db,
        "SELECT count(*) FROM events WHERE message_id = $1 AND kind = 'expired'",
        expired_id,
        expect=1,
    )
    assert await kinds(db, expired_id) == [("unicef", "expired"), ("unicef", "in_inbox")]


async def test_refusals_and_duplicates_are_recorded(
    hub: RunningHub,
    ledger: RunningLedger,
    partners: dict[str, Partner],
    db: asyncpg.Connection,
) -> None:
    """A refused message, its kept original, and a duplicate dropped all appear in the ledger."""
    refused = envelope("mag", ["org:nobody-here"])
    await partners["mag"].send(refused)
    doc = envelope("mag", ["org:unmas"], distribution_id=new_id("dup"))
    await partners["mag"].send(doc)
    await partners["mag"].send(doc)
    refused_id = f"mag/{refused['distribution_id']}"
    await wait_for(db, "SELECT count(*) FROM events WHERE message_id = $1", refused_id, expect=2)
    assert await kinds(db, refused_id) == [(None, "kept"), (None, "refused")]
    row = await db.fetchrow("SELECT outcome, code FROM messages WHERE message_id = $1", refused_id)
    assert (row["outcome"], row["code"]) == ("refused", 500)
    kept = await db.fetchrow("SELECT * FROM dead_letters WHERE message_id = $1", refused_id)
    assert kept["code"] == 500
    dup_id = f"mag/{doc['distribution_id']}"
    await wait_for(db, "SELECT count(*) FROM messages WHERE message_id = $1", dup_id, expect=2)
    outcomes = await db.fetch("SELECT outcome FROM messages WHERE message_id = $1", dup_id)
    assert sorted(r["outcome"] for r in outcomes) == ["delivered", "duplicate"]
