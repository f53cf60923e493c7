"""What ``audit verify`` and ``evidence`` (offline ledger commands) share: database and keys.

Keys come from what a third party also holds: the published ``signing-keys.json`` (``liaison
partner keys``: every organisation's keys and the hub's), or the directory for the senders' keys
and the hub's key file (``LIAISON_HUB_SIGNING_KEY``) for the heads.
"""

from collections.abc import Mapping
from pathlib import Path

import asyncpg

from liaison.common.config import redact_url
from liaison.common.hub_key import load_hub_key
from liaison.directory.index import load_directory
from liaison.ledger.database import DatabaseError
from liaison.schemas.wire import HUB_SENDER
from liaison.sdk.signing import TrustedKey, load_trusted_keys


async def connect(database_url: str) -> asyncpg.Connection:
    """A connection to the ledger database, or DatabaseError naming where."""
    try:
        return await asyncpg.connect(database_url, timeout=5)
    except (OSError, asyncpg.PostgresError) as exc:
        where = redact_url(database_url)
        raise DatabaseError(f"cannot reach PostgreSQL at {where}: {exc}") from None


def trusted_keys(keys_file: Path | None, directory: Path | None) -> dict[str, TrustedKey] | None:
    """Public keys by kid: a signing-keys.json when given, else the directory's; else None."""
    if keys_file is not None:
        return load_trusted_keys(keys_file)
    if directory is not None:
        return dict(load_directory(directory).signing_keys)
    return None


def hub_keys(
    trusted: Mapping[str, TrustedKey] | None, hub_key_file: Path | None
) -> dict[str, TrustedKey]:
    """The hub's public keys (they sign the chain heads): published ones, and the key file's."""
    keys = {kid: k for kid, k in (trusted or {}).items() if k.org == HUB_SENDER}
    if hub_key_file is not None:
        own = load_hub_key(hub_key_file).trusted()
        keys[own.kid] = own
    return keys
