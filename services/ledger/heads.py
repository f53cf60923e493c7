"""Signed chain heads: every ``LIAISON_LEDGER_HEAD_SECONDS`` the ledger signs each day's head.

A head is a compact JWS (Ed25519, the hub's key: ``LIAISON_HUB_SIGNING_KEY``) over
``chain.head_payload``: the chain of that day, up to link ``seq``, ends in ``head``. Heads are
stored in ``chain_heads``, served by ``GET /api/chain/heads`` and written to the log
(``chain_head_signed``), so a copy lives outside the database: an operator who rewrites the
ledger cannot make the chain agree with a head published before the rewrite without the key.
Several ledgers may sign at once: a head is keyed by (day, seq), the second insert is a no-op.
"""

import asyncio
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import asyncpg
import structlog
from asyncpg.pool import PoolConnectionProxy

from liaison.ledger.chain import head_payload
from liaison.ledger.jws import HeadSigningKey, sign_compact
from liaison.ledger.store import open_pool

log = structlog.get_logger("liaison.ledger")

Connection = asyncpg.Connection | PoolConnectionProxy

#: A transaction's links carry its start time; look this far behind the last pass for them.
_MARGIN = timedelta(minutes=5)
#: Every this many passes, look at every day (a transaction longer than the margin is rare).
_FULL_PASS_EVERY = 60


@dataclass(frozen=True, slots=True)
class SignedHead:
    """One row of ``chain_heads``."""

    day: date
    seq: int
    head: str
    signed_at: datetime
    kid: str
    jws: str


async def sign_heads(
    connection: Connection, key: HeadSigningKey, *, since: datetime | None = None
) -> list[SignedHead]:
    """Sign the head of every day linked to since ``since`` (all days when None) that moved."""
    if since is None:
        days = await connection.fetch("SELECT DISTINCT day FROM chain_links ORDER BY day")
    else:
        days = await connection.fetch(
            "SELECT DISTINCT day FROM chain_links WHERE linked_at >= $1 ORDER BY day", since
        )
    signed = []
    for found in days:
        day = found["day"]
        tail = await connection.fetchrow(
            "SELECT seq, link_hash FROM chain_links WHERE day = $1 ORDER BY seq DESC LIMIT 1", day
        )
        last = await connection.fetchval("SELECT max(seq) FROM chain_heads WHERE day = $1", day)
        if tail is None or (last is not None and last >= tail["seq"]):
            continue
        now = datetime.now(UTC)
        jws = sign_compact(head_payload(day, tail["seq"], tail["link_hash"], now), key)
        head = SignedHead(day, tail["seq"], tail["link_hash"], now, key.kid, jws)
        inserted = await connection.fetchval(
            "INSERT INTO chain_heads (day, seq, head, signed_at, kid, jws) "
            "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING RETURNING seq",
            head.day,
            head.seq,
            head.head,
            head.signed_at,
            head.kid,
            head.jws,
        )
        if inserted is not None:
            signed.append(head)
            log.info(
                "chain_head_signed",
                day=day.isoformat(),
                seq=head.seq,
                head=head.head,
                kid=key.kid,
                jws=jws,
            )
    return signed


class HeadSigner:
    """The periodic task: sign what moved, then sleep; a database outage skips a round."""

    def __init__(self, pool_factory: "PoolFactory", key: HeadSigningKey, period: float) -> None:
        self.pool_factory = pool_factory
        self.key = key
        self.period = period
        self.last_signed: datetime | None = None
        self.heads_signed = 0

    async def run(self) -> None:
        """Until cancelled."""
        since: datetime | None = None
        passes = 0
        while True:
            started = datetime.now(UTC)
            try:
                pool = await self.pool_factory()
                async with pool.acquire() as connection:
                    signed = await sign_heads(connection, self.key, since=since)
                passes += 1
                since = None if passes % _FULL_PASS_EVERY == 0 else started - _MARGIN
                self.last_signed = started
                self.heads_signed += len(signed)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
                log.warning("chain_heads_unsigned", error=f"{type(exc).__name__}: {exc}")
            await asyncio.sleep(self.period)


class PoolFactory:
    """Opens the signer's own small pool once, on first use."""

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url
        self.pool: asyncpg.Pool | None = None

    async def __call__(self) -> asyncpg.Pool:
        if self.pool is None:
            self.pool = await open_pool(self.database_url, max_size=1)
        return self.pool

    async def close(self) -> None:
        """Close the pool if opened."""
        if self.pool is not None:
            await self.pool.close()
