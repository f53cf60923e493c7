"""Ledger fixtures: the hub fixtures, a throwaway PostgreSQL database per run, a running ledger.

The database ``liaison_test_<run id>`` is created and migrated once per run and dropped at the
end; each test starts from empty tables. Never the shared cluster's other databases.
"""

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aio_pika
import asyncpg
import pytest

from liaison.directory.index import DirectoryIndex
from liaison.ledger.consumer import LedgerConsumer
from liaison.ledger.database import migrate_database
from liaison.ledger.metrics import LedgerMetrics
from liaison.ledger.settings import LedgerSettings
from tests.cli.support import directory_with_accounts
from tests.hub.conftest import (  # noqa: F401  (fixtures, used by name)
    admin,
    classic,
    classic_for,
    directory,
    hub,
    hub_broker_url,
    hub_delivery,
    hub_key_file,
    partner_accounts,
    partners,
    topology,
)

SERVER_URL = os.environ.get(
    "LIAISON_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)


@pytest.fixture(scope="session")
def directory_file(tmp_path_factory: pytest.TempPathFactory, run_id: str) -> Path:
    """The sample directory with this package's own run-unique accounts (l-<run>-<org>)."""
    return directory_with_accounts(tmp_path_factory.mktemp("directory"), f"l-{run_id}-")


def database_url_for(name: str) -> str:
    """The test server's URL for database ``name``."""
    return urlunsplit(urlsplit(SERVER_URL)._replace(path=f"/{name}"))


async def server() -> asyncpg.Connection:
    """A connection to the test server's maintenance database."""
    return await asyncpg.connect(SERVER_URL)


@pytest.fixture(scope="session")
async def database_url(run_id: str) -> AsyncIterator[str]:
    """This run's own database, migrated; dropped (with its connections) afterwards."""
    name = f"liaison_test_{run_id}"
    url = database_url_for(name)
    await migrate_database(url)
    yield url
    connection = await server()
    try:
        await connection.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await connection.close()


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection to this run's database, on empty ledger tables."""
    connection = await asyncpg.connect(database_url)
    await connection.execute(
        "TRUNCATE messages, recipients, events, dead_letters, unreadable, chain_links, chain_heads "
        "RESTART IDENTITY"
    )
    yield connection
    await connection.close()


def ledger_settings(amqp_url: str, database_url: str, **overrides: Any) -> LedgerSettings:
    """Settings for a ledger on the test vhost and database."""
    base: dict[str, Any] = {
        "amqp_url": amqp_url,
        "database_url": database_url,
        "http_port": 0,
        "reconnect_max_seconds": 0.5,
        "batch_wait_seconds": 0.01,
    }
    base.update(overrides)
    return LedgerSettings(**base)


class RunningLedger:
    """An in-process ledger consumer for a test."""

    def __init__(self, consumer: LedgerConsumer, task: "asyncio.Task[None]") -> None:
        self.consumer = consumer
        self.task = task

    async def stop(self) -> None:
        """Stop consuming and close the pool."""
        await self.consumer.stop()
        await asyncio.wait_for(self.task, 15)
        await self.consumer.close()


async def start_ledger(
    amqp_url: str, database_url: str, index: DirectoryIndex | None, **overrides: Any
) -> RunningLedger:
    """Start a ledger consumer and wait until it consumes."""
    consumer = LedgerConsumer(
        ledger_settings(amqp_url, database_url, **overrides), LedgerMetrics(), index
    )
    task = asyncio.create_task(consumer.run())
    for _ in range(200):
        if consumer.connected:
            break
        await asyncio.sleep(0.05)
    assert consumer.connected, "ledger did not start consuming"
    return RunningLedger(consumer, task)


@pytest.fixture
async def ledger(
    topology: str,  # noqa: F811
    database_url: str,
    db: asyncpg.Connection,
    directory: DirectoryIndex,  # noqa: F811
    hub_key_file: Path,  # noqa: F811
    hub_delivery: str,  # noqa: F811
    request: pytest.FixtureRequest,
) -> AsyncIterator[RunningLedger]:
    """A ledger consuming the ledger queue of the ``hub`` fixture's vhost into this run's
    database; it signs its status reports with the test hub's key."""
    profile = classic_for(request, hub_delivery)
    url = topology if profile is None else profile.url
    running = await start_ledger(url, database_url, directory, hub_signing_key=hub_key_file)
    yield running
    await running.stop()


async def wait_for(
    db: asyncpg.Connection, query: str, *args: object, expect: object, timeout: float = 15.0
) -> object:
    """Poll ``query`` until its value equals ``expect``; returns the last value seen."""
    value: object = None
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        value = await db.fetchval(query, *args)
        if value == expect:
            return value
        await asyncio.sleep(0.1)
    return value


async def ledger_queue_depth(admin_connection: aio_pika.abc.AbstractConnection) -> int:
    """Messages ready in the ledger queue."""
    channel = await admin_connection.channel()
    queue = await channel.declare_queue("liaison.ledger", passive=True)
    await channel.close()
    return queue.declaration_result.message_count or 0
