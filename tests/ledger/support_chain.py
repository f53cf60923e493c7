"""Helpers for the chain and evidence tests: signed records, published keys, writing."""

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from liaison.common.hub_key import HubKey, ensure_hub_key
from liaison.ledger.jws import HeadSigningKey
from liaison.ledger.records import DecisionRecord, Outcome
from liaison.ledger.rows import Rows, record_rows
from liaison.ledger.store import LedgerStore, open_pool
from liaison.sdk.signing import TrustedKey, keys_document, sign


def envelope(sender: str, distribution_id: str, text: str = "route clear") -> bytes:
    """A small envelope body (the ledger reads it leniently)."""
    return json.dumps(
        {
            "sender": sender,
            "distribution_id": distribution_id,
            "recipients": ["unmas"],
            "sent_at": "2026-11-24T02:00:00+00:00",
            "body": {"type": "sitrep", "summary": text},
        }
    ).encode()


def record(
    n: int,
    *,
    sender: str = "mag",
    key: Ed25519PrivateKey | None = None,
    kid: str = "mag-1",
    when: datetime | None = None,
    outcome: Outcome = Outcome.DELIVERED,
) -> DecisionRecord:
    """Decision record ``n`` of a delivered message from ``sender``, signed when ``key`` is."""
    body = envelope(sender, f"d-{n}")
    return DecisionRecord(
        record_id=f"r-{n:04d}",
        decided_at=(when or datetime.now(UTC)).timestamp(),
        outcome=outcome,
        sender=sender,
        user_id=f"{sender}-account",
        distribution_id=f"d-{n}",
        message_type="sitrep",
        recipients=["unmas", "wfp"],
        body=body,
        signature=sign(body, key, kid) if key is not None else None,
        signature_kid=kid if key is not None else None,
        signature_status="verified" if key is not None else None,
    )


async def write(database_url: str, records: list[DecisionRecord]) -> None:
    """Write ``records`` as one batch through the ledger's store."""
    rows = Rows()
    for item in records:
        record_rows(rows, item, resolve=None, keep_body=True)
    pool = await open_pool(database_url)
    try:
        await LedgerStore(pool).write(rows)
    finally:
        await pool.close()


def sender_key(org: str, kid: str, key: Ed25519PrivateKey) -> TrustedKey:
    """``key`` registered for ``org``, valid from yesterday to tomorrow."""
    now = datetime.now(UTC)
    return TrustedKey(kid, org, key.public_key(), now - timedelta(days=1), now + timedelta(days=1))


def hub_key(folder: Path) -> tuple[Path, HubKey, HeadSigningKey]:
    """A fresh hub key file (as `liaison provision` makes it), and it as the head key."""
    path = folder / "hub-signing.key"
    key, _ = ensure_hub_key(path)
    return path, key, HeadSigningKey.from_hub_key(key)


def published_keys(path: Path, *keys: TrustedKey) -> Path:
    """A signing-keys.json (as `liaison partner keys` writes it) holding ``keys``."""
    path.write_bytes(keys_document(keys))
    return path


async def link_count(db: asyncpg.Connection) -> int:
    """Links in the chain."""
    return int(await db.fetchval("SELECT count(*) FROM chain_links"))
