"""``liaison ledger``: run the ledger, migrate its database, apply the retention policy."""

import argparse
import os

import asyncpg

from liaison.common.config import redact_url
from liaison.ledger.database import DatabaseError, migrate_database
from liaison.ledger.run import run_ledger
from liaison.ledger.settings import LedgerSettings
from liaison.ledger.store import drop_partitions_before


def add_parser(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Register ``liaison ledger`` and its actions."""
    parser = sub.add_parser(
        "ledger",
        help="the message ledger: run it, migrate its database, apply retention",
        description="The ledger records every hub decision and each copy's lifecycle in "
        "PostgreSQL (LIAISON_DATABASE_URL).",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    run = actions.add_parser("run", help="consume decision records and serve the API/console")
    run.add_argument("--port", type=int, help="HTTP port (LIAISON_LEDGER_PORT, default 8090)")
    run.set_defaults(handler=_run)
    migrate = actions.add_parser("migrate", help="create the database if needed and migrate it")
    migrate.set_defaults(handler=_migrate)
    retention = actions.add_parser(
        "retention", help="drop monthly partitions older than the retention policy"
    )
    retention.add_argument(
        "--months",
        type=int,
        help="months kept, the current one included (LIAISON_LEDGER_RETENTION_MONTHS, default 24)",
    )
    retention.set_defaults(handler=_retention)


def _run(args: argparse.Namespace) -> int:
    env = dict(os.environ)
    if args.port is not None:
        env["LIAISON_LEDGER_PORT"] = str(args.port)
    run_ledger(LedgerSettings.from_env(env))
    return 0


async def _migrate(_: argparse.Namespace) -> int:
    settings = LedgerSettings.from_env()
    applied = await migrate_database(settings.database_url)
    where = redact_url(settings.database_url)
    print(f"applied {', '.join(applied)} to {where}" if applied else f"{where} is up to date")
    return 0


async def _retention(args: argparse.Namespace) -> int:
    settings = LedgerSettings.from_env()
    months = args.months or settings.retention_months
    if months < 1:
        raise DatabaseError("--months must be at least 1")
    try:
        connection = await asyncpg.connect(settings.database_url, timeout=5)
    except (OSError, asyncpg.PostgresError) as exc:
        raise DatabaseError(f"cannot reach PostgreSQL: {exc}") from None
    try:
        dropped = await drop_partitions_before(connection, months)
    finally:
        await connection.close()
    print(f"kept {months} months; dropped {len(dropped)} partitions: {', '.join(dropped) or '-'}")
    return 0
