"""Creating the ledger's database when missing, and migrating it: what ``migrate`` runs."""

from urllib.parse import urlsplit, urlunsplit

import asyncpg

from liaison.common.config import redact_url
from liaison.common.errors import LiaisonError
from liaison.ledger.chaining import link_unlinked
from liaison.ledger.migrate import migrate


class DatabaseError(LiaisonError):
    """PostgreSQL could not be reached or refused an operation."""


def database_name(url: str) -> str:
    """The database a postgresql:// URL names."""
    name = urlsplit(url).path.lstrip("/")
    if not name:
        raise DatabaseError(f"{redact_url(url)} names no database")
    return name


async def create_database(url: str) -> bool:
    """Create the URL's database if it does not exist (via the ``postgres`` database)."""
    name = database_name(url)
    maintenance = urlunsplit(urlsplit(url)._replace(path="/postgres"))
    try:
        connection = await asyncpg.connect(maintenance, timeout=5)
    except (OSError, asyncpg.PostgresError) as exc:
        raise DatabaseError(f"cannot reach PostgreSQL at {redact_url(url)}: {exc}") from None
    try:
        if await connection.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            return False
        # CREATE DATABASE takes no parameters; quote the identifier.
        await connection.execute(f'CREATE DATABASE "{name.replace(chr(34), "")}"')
        return True
    finally:
        await connection.close()


async def migrate_database(url: str) -> list[str]:
    """Create the database if needed, apply every missing migration, chain unchained rows.

    Rows recorded before migration 0002 have no link; they are linked here, once.
    """
    await create_database(url)
    try:
        connection = await asyncpg.connect(url, timeout=5)
    except (OSError, asyncpg.PostgresError) as exc:
        raise DatabaseError(f"cannot reach PostgreSQL at {redact_url(url)}: {exc}") from None
    try:
        applied = await migrate(connection)
        linked = await link_unlinked(connection)
        return applied + ([f"chained {linked} earlier records"] if linked else [])
    finally:
        await connection.close()
