"""``liaison evidence SENDER/DISTRIBUTION_ID``: export one message as a checkable bundle."""

import argparse
from pathlib import Path

import asyncpg

from liaison.cli.ledger_db import connect, hub_keys, trusted_keys
from liaison.ledger.database import DatabaseError
from liaison.ledger.evidence import export_bundle
from liaison.ledger.settings import LedgerSettings


def add_parser(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Register ``liaison evidence``."""
    parser = sub.add_parser(
        "evidence",
        help="export one message as a bundle a third party checks without Liaison",
        description="Write the body, its signature, the sender's key, the ledger records and "
        "their hash chain to a signed head into a directory (or .zip) with a README saying "
        "how to check it with a JOSE library and sha256sum. Reads PostgreSQL directly "
        "(LIAISON_DATABASE_URL).",
    )
    parser.add_argument("message", metavar="SENDER/DISTRIBUTION_ID")
    parser.add_argument(
        "--out", type=Path, help="directory or .zip to write (default: evidence-SENDER-ID)"
    )
    parser.add_argument(
        "--keys",
        type=Path,
        help="the published signing-keys.json (liaison partner keys): senders' and hub's keys",
    )
    parser.add_argument(
        "--directory",
        type=Path,
        help="else the senders' keys from the directory file (default LIAISON_DIRECTORY)",
    )
    parser.add_argument(
        "--hub-key",
        type=Path,
        help="and the hub's key file that signs heads (default LIAISON_HUB_SIGNING_KEY)",
    )
    parser.set_defaults(handler=run_evidence)


async def run_evidence(args: argparse.Namespace) -> int:
    """Export the bundle and say where it is."""
    settings = LedgerSettings.from_env()
    out = args.out or Path(f"evidence-{args.message.replace('/', '-')}")
    trusted = trusted_keys(args.keys, args.directory or settings.directory) or {}
    heads = hub_keys(trusted, args.hub_key or settings.hub_signing_key)
    connection = await connect(settings.database_url)
    try:
        written = await export_bundle(
            connection, args.message, out, sender_keys=trusted, hub_keys=heads
        )
    except asyncpg.PostgresError as exc:
        raise DatabaseError(f"{exc} (is the database migrated? liaison ledger migrate)") from None
    finally:
        await connection.close()
    print(f"wrote {written}: check it with 'sh check.sh' inside (see its README.md)")
    return 0
