"""Plain versioned SQL migrations, applied in order, each once, by ``liaison ledger migrate``.

``migrations/NNNN_name.sql`` files ship with the package. Each runs in its own transaction with
its version row in ``schema_migrations``, under an advisory lock so two ledgers starting at once
do not both apply it. A plain directory of SQL beats a migration framework here: the schema is
PostgreSQL-specific (partitioning, GIN indexes) and there is one consumer of it.
"""

import re
from dataclasses import dataclass
from importlib import resources

import asyncpg

_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")
#: Arbitrary constant naming the ledger's migration lock.
_LOCK = 0x11A150


@dataclass(frozen=True, slots=True)
class Migration:
    """One versioned SQL file."""

    version: int
    name: str
    sql: str


def migrations() -> list[Migration]:
    """Every migration shipped with the ledger, by version."""
    found = []
    for entry in resources.files("liaison.ledger").joinpath("migrations").iterdir():
        match = _NAME.match(entry.name)
        if match:
            found.append(Migration(int(match.group(1)), entry.name, entry.read_text()))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise RuntimeError(f"two migrations share a version: {versions}")
    return found


async def migrate(connection: asyncpg.Connection) -> list[str]:
    """Apply what is missing; returns the names applied (empty when up to date)."""
    applied: list[str] = []
    await connection.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " version integer PRIMARY KEY, name text NOT NULL,"
        " applied_at timestamptz NOT NULL DEFAULT now())"
    )
    await connection.execute("SELECT pg_advisory_lock($1)", _LOCK)
    try:
        done = {
            r["version"] for r in await connection.fetch("SELECT version FROM schema_migrations")
        }
        for migration in migrations():
            if migration.version in done:
                continue
            async with connection.transaction():
                await connection.execute(migration.sql)
                await connection.execute(
                    "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                    migration.version,
                    migration.name,
                )
            applied.append(migration.name)
    finally:
        await connection.execute("SELECT pg_advisory_unlock($1)", _LOCK)
    return applied
