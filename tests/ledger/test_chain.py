"""The tamper-evident chain against the real PostgreSQL: appends, signed heads, audit verify."""

import asyncio
import json
import os
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

import asyncpg
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from liaison.ledger.audit import verify_ledger
from liaison.ledger.chain import (
    GENESIS,
    canonical,
    extend,
    link_bytes,
    record_bytes,
    sha256_hex,
    timestamp,
)
from liaison.ledger.database import migrate_database
from liaison.ledger.heads import sign_heads
from liaison.ledger.jws import HeadSigningKey, verify_compact
from liaison.ledger.records import Outcome
from liaison.sdk.signing import load_trusted_keys
from tests.cli.support import liaison
from tests.ledger.support_chain import (
    hub_key,
    published_keys,
    record,
    sender_key,
    write,
)

pytestmark = pytest.mark.postgres


def test_canonical_bytes_are_sorted_compact_utf8() -> None:
    """Keys sorted, no whitespace, UTF-8 unescaped, times in UTC with microseconds and Z."""
    moment = datetime(2026, 11, 24, 3, 4, 5, 6, tzinfo=UTC)
    data = canonical({"b": "é", "a": 1, "c": None, "t": moment, "l": ["x"]})
    assert data == '{"a":1,"b":"é","c":null,"l":["x"],"t":"2026-11-24T03:04:05.000006Z"}'.encode()


def test_canonical_times_are_the_strftime_form_in_every_zone() -> None:
    """The fast time form equals the strftime form chained before it: offsets made UTC,
    whole seconds with six zero digits, years before 1000 as strftime writes them."""
    east = timezone(timedelta(hours=5, minutes=30))
    moments = [
        datetime(2026, 11, 24, 3, 4, 5, tzinfo=UTC),
        datetime(2026, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
        datetime(2027, 1, 1, 2, 0, 0, 123, tzinfo=east),
        datetime(2026, 3, 29, 1, 30, tzinfo=timezone(timedelta(hours=-9))),
        datetime(999, 5, 6, 7, 8, 9, 10, tzinfo=UTC),
    ]
    for moment in moments:
        assert timestamp(moment) == moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def test_links_chain_each_hash_into_the_next() -> None:
    """extend() numbers links from the tail and puts each link's hash in the next one's prev."""
    day = date(2026, 11, 24)
    moment = datetime(2026, 11, 24, tzinfo=UTC)
    links = extend(day, 0, GENESIS, [(moment, "a", b"{}"), (moment, "b", b"[]")])
    assert [k.seq for k in links] == [1, 2]
    assert links[0].prev_hash == GENESIS
    assert links[1].prev_hash == links[0].link_hash
    assert links[1].link_hash == sha256_hex(
        link_bytes(day, 2, links[0].link_hash, sha256_hex(b"[]"))
    )


async def test_redelivered_batch_adds_no_link(database_url: str, db: asyncpg.Connection) -> None:
    """The same records written twice (and twice in one batch) are linked once, seqs 1..n."""
    batch = [record(n) for n in range(5)]
    await write(database_url, batch + batch[:2])
    await write(database_url, batch)
    seqs = [r["seq"] for r in await db.fetch("SELECT seq FROM chain_links ORDER BY seq")]
    assert seqs == [1, 2, 3, 4, 5]
    report = await verify_ledger(db, head_keys=None, sender_keys=None)
    assert report.ok, report.problems
    assert report.records == 5


async def test_concurrent_writers_keep_one_unbroken_chain(
    database_url: str, db: asyncpg.Connection
) -> None:
    """Four writers (own pools, like four ledger processes) appending at once: one valid chain."""
    batches = [[record(w * 100 + n) for n in range(20)] for w in range(4)]
    await asyncio.gather(*(write(database_url, b) for b in batches))
    seqs = [r["seq"] for r in await db.fetch("SELECT seq FROM chain_links ORDER BY seq")]
    assert seqs == list(range(1, 81))
    report = await verify_ledger(db, head_keys=None, sender_keys=None)
    assert report.ok, report.problems


async def test_heads_are_signed_once_per_move(
    database_url: str, db: asyncpg.Connection, tmp_path: Path
) -> None:
    """A head is signed for the tail; signing again without new links signs nothing."""
    _, _, key = hub_key(tmp_path)
    await write(database_url, [record(n) for n in range(3)])
    heads = await sign_heads(db, key)
    assert [(h.seq, h.head) for h in heads] == [
        (3, await db.fetchval("SELECT link_hash FROM chain_links WHERE seq = 3"))
    ]
    assert await sign_heads(db, key) == []
    _kid, payload = verify_compact(heads[0].jws, {key.kid: key.private.public_key()})
    assert json.loads(payload)["seq"] == 3
    await write(database_url, [record(9)])
    assert [h.seq for h in await sign_heads(db, key)] == [4]


async def _signed_ledger(
    database_url: str, db: asyncpg.Connection, tmp_path: Path, count: int = 6
) -> tuple[Path, HeadSigningKey, Path]:
    """``count`` signed records with a signed head; the hub key file and signing-keys.json."""
    sender = Ed25519PrivateKey.generate()
    key_file, _, key = hub_key(tmp_path)
    keys = published_keys(tmp_path / "signing-keys.json", sender_key("mag", "mag-1", sender))
    await write(database_url, [record(n, key=sender) for n in range(count)])
    await sign_heads(db, key)
    return key_file, key, keys


def _env(database_url: str, key_file: Path) -> dict[str, str]:
    return {
        **os.environ,
        "LIAISON_DATABASE_URL": database_url,
        "LIAISON_HUB_SIGNING_KEY": str(key_file),
    }


async def test_audit_verify_passes_an_untouched_ledger(
    database_url: str, db: asyncpg.Connection, tmp_path: Path
) -> None:
    """`liaison audit verify` recomputes the chain, checks the head and every signature: OK."""
    key_file, _, keys = await _signed_ledger(database_url, db, tmp_path)
    result = await liaison("audit", "verify", "--keys", str(keys), env=_env(database_url, key_file))
    assert result.code == 0, result
    assert "6 signatures (6 verified" in result.stdout
    assert "OK" in result.stdout


async def test_audit_verify_names_a_row_edited_in_postgresql(
    database_url: str, db: asyncpg.Connection, tmp_path: Path
) -> None:
    """An UPDATE of one column of one messages row fails verify, naming that record first."""
    key_file, _, keys = await _signed_ledger(database_url, db, tmp_path)
    await db.execute("UPDATE messages SET recipient_count = 1 WHERE record_id = 'r-0003'")
    result = await liaison("audit", "verify", "--keys", str(keys), env=_env(database_url, key_file))
    assert result.code == 1, result
    first = result.stderr.splitlines()[0]
    assert "first mismatch: record r-0003" in first
    assert "edited in the database" in first


async def test_audit_verify_catches_an_edited_body_even_with_its_hash_fixed(
    database_url: str, db: asyncpg.Connection, tmp_path: Path
) -> None:
    """A body rewritten with body_sha256 recomputed no longer matches its link or its signature."""
    _, key, keys = await _signed_ledger(database_url, db, tmp_path)
    body = b'{"sender":"mag","distribution_id":"d-2","body":{"summary":"route NOT clear"}}'
    await db.execute(
        "UPDATE messages SET body = $1, body_sha256 = $2 WHERE record_id = 'r-0002'",
        body,
        sha256_hex(body),
    )
    report = await verify_ledger(
        db,
        head_keys={key.kid: key.private.public_key()},
        sender_keys=load_trusted_keys(keys),
    )
    assert [p.record_id for p in report.problems][:2] == ["r-0002", "r-0002"]
    assert "edited" in report.problems[0].what
    assert "the body is not what key 'mag-1' signed" in report.problems[1].what
    # And the chain recomputed from the records no longer reaches the signed head.
    assert "does not reach the head" in report.problems[-1].what


async def test_audit_verify_detects_deletions(
    database_url: str, db: asyncpg.Connection, tmp_path: Path
) -> None:
    """A deleted row, a row deleted with its link, and a deleted tail are each detected."""
    key_file, key, _ = await _signed_ledger(database_url, db, tmp_path)
    keys = {key.kid: key.private.public_key()}
    await db.execute("DELETE FROM messages WHERE record_id = 'r-0001'")
    report = await verify_ledger(db, head_keys=keys, sender_keys=None)
    assert str(report.problems[0]).startswith("record r-0001")
    assert "deleted" in report.problems[0].what
    await db.execute("DELETE FROM chain_links WHERE record_id = 'r-0001'")
    report = await verify_ledger(db, head_keys=keys, sender_keys=None)
    assert "link(s) 2 before it are missing" in str(report.problems[0])
    assert report.problems[0].record_id == "r-0002"
    # The last two records deleted with their links: the signed head points past the chain.
    await db.execute("DELETE FROM chain_links WHERE seq > 4")
    await db.execute("DELETE FROM messages WHERE record_id IN ('r-0004', 'r-0005')")
    result = await liaison("audit", "verify", env=_env(database_url, key_file))
    assert result.code == 1
    assert "a head was signed at link 6 but the chain ends at 4" in result.stderr


async def test_audit_verify_catches_a_consistent_rewrite_by_the_signed_head(
    database_url: str, db: asyncpg.Connection, tmp_path: Path
) -> None:
    """An operator who edits a record and recomputes every later hash is caught by the head."""
    _, key, _ = await _signed_ledger(database_url, db, tmp_path)
    await db.execute("UPDATE messages SET reason = 'forged' WHERE record_id = 'r-0003'")
    rows = await db.fetch("SELECT * FROM chain_links ORDER BY seq")
    prev = GENESIS
    for link in rows:
        row = await db.fetchrow("SELECT * FROM messages WHERE record_id = $1", link["record_id"])
        orgs = [
            r["org"]
            for r in await db.fetch(
                "SELECT org FROM recipients WHERE record_id = $1", link["record_id"]
            )
        ]
        record_hash = sha256_hex(record_bytes(dict(row), orgs, []))
        link_hash = sha256_hex(link_bytes(link["day"], link["seq"], prev, record_hash))
        await db.execute(
            "UPDATE chain_links SET record_hash = $1, prev_hash = $2, link_hash = $3 "
            "WHERE day = $4 AND seq = $5",
            record_hash,
            prev,
            link_hash,
            link["day"],
            link["seq"],
        )
        prev = link_hash
    await db.execute("UPDATE chain_heads SET head = $1", prev)
    report = await verify_ledger(
        db, head_keys={key.kid: key.private.public_key()}, sender_keys=None
    )
    whats = [p.what for p in report.problems]
    assert any("does not reach the head signed" in w for w in whats), whats
    assert any("differs from what was signed" in w for w in whats), whats


async def test_audit_verify_reports_rows_inserted_behind_the_ledger(
    database_url: str, db: asyncpg.Connection
) -> None:
    """A messages row with no link (inserted directly) is named."""
    await write(database_url, [record(1)])
    await db.execute(
        "INSERT INTO messages (decided_at, record_id, outcome, sender) "
        "VALUES (now(), 'planted', 'delivered', 'mag')"
    )
    report = await verify_ledger(db, head_keys=None, sender_keys=None)
    assert [p.record_id for p in report.problems] == ["planted"]


async def test_audit_verify_refuses_a_signature_by_another_organisation(
    database_url: str, db: asyncpg.Connection, tmp_path: Path
) -> None:
    """A delivered record signed with a key the directory gives to another org is named."""
    other = Ed25519PrivateKey.generate()
    await write(
        database_url,
        [
            record(1, key=other, kid="wfp-1"),
            record(2, key=other, kid="wfp-1", outcome=Outcome.REFUSED),
        ],
    )
    keys = {"wfp-1": sender_key("wfp", "wfp-1", other)}
    report = await verify_ledger(db, head_keys=None, sender_keys=keys)
    assert [(p.record_id, p.what) for p in report.problems] == [
        ("r-0001", "stored signature: kid 'wfp-1' is not a registered signing key of mag")
    ]


async def test_published_heads_catch_a_rewrite_with_the_heads_deleted(
    database_url: str, db: asyncpg.Connection, tmp_path: Path
) -> None:
    """Heads deleted from the database along with a rewrite: the copy published earlier fails it."""
    key_file, _, _ = await _signed_ledger(database_url, db, tmp_path)
    published = tmp_path / "heads.txt"
    published.write_text("\n".join(r["jws"] for r in await db.fetch("SELECT jws FROM chain_heads")))
    await db.execute("DELETE FROM chain_heads")
    await db.execute("DELETE FROM chain_links WHERE seq > 4")
    await db.execute("DELETE FROM messages WHERE record_id IN ('r-0004', 'r-0005')")
    env = _env(database_url, key_file)
    alone = await liaison("audit", "verify", env=env)
    assert alone.code == 0, alone  # what the database alone shows looks whole...
    assert "not covered by a signed head" in alone.stdout
    result = await liaison("audit", "verify", "--heads", str(published), env=env)
    assert result.code == 1, result  # ...the published head says otherwise
    assert "a published head is not in chain_heads" in result.stderr
    assert "a head was signed at link 6 but the chain ends at 4" in result.stderr


async def test_migrate_chains_rows_recorded_before_the_chain(
    database_url: str, db: asyncpg.Connection
) -> None:
    """Rows without links (recorded before migration 0002) are linked once by migrate."""
    await write(database_url, [record(1)])
    await db.execute(
        "INSERT INTO messages (decided_at, record_id, outcome, sender) "
        "VALUES (now(), 'before-0002', 'delivered', 'mag')"
    )
    assert await migrate_database(database_url) == ["chained 1 earlier records"]
    assert await migrate_database(database_url) == []
    report = await verify_ledger(db, head_keys=None, sender_keys=None)
    assert report.ok, report.problems
    assert report.records == 2
