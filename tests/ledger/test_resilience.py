"""The ledger loses nothing: killed mid-stream, or with PostgreSQL refusing connections."""

import asyncio
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import pytest

from liaison.common.topology import LEDGER_QUEUE
from tests.conftest import management
from tests.hub.conftest import RunningHub
from tests.hub.support import Partner, envelope
from tests.ledger.conftest import RunningLedger, server, wait_for

pytestmark = [pytest.mark.broker, pytest.mark.postgres, pytest.mark.slow]


async def send_many(partner: Partner, count: int) -> list[str]:
    """Publish ``count`` messages to unmas; returns their message ids."""
    ids = []
    for _ in range(count):
        doc = envelope(partner.org, ["org:unmas"])
        await partner.send(doc)
        ids.append(f"{partner.org}/{doc['distribution_id']}")
    return ids


def free_port() -> int:
    """A port nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_process(
    amqp_url: str, database_url: str, directory_file: Path
) -> subprocess.Popen[bytes]:
    """``python -m liaison.ledger`` as its own process, with small batches."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIAISON_")}
    env.update(
        LIAISON_LEDGER_AMQP_URL=amqp_url,
        LIAISON_DATABASE_URL=database_url,
        LIAISON_DIRECTORY=str(directory_file),
        LIAISON_LEDGER_PORT=str(free_port()),
        LIAISON_LEDGER_BATCH="10",
        LIAISON_LOG_LEVEL="warning",
    )
    return subprocess.Popen(
        [sys.executable, "-m", "liaison.ledger"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def test_killed_mid_stream_records_every_event_exactly_once(
    hub: RunningHub,
    partners: dict[str, Partner],
    topology: str,
    database_url: str,
    directory_file: Path,
    db: asyncpg.Connection,
) -> None:
    """SIGKILL between batches, then a restart: every decision is recorded, none twice."""
    ids = await send_many(partners["mag"], 600)
    first = start_process(topology, database_url, directory_file)
    try:
        seen = 0
        for _ in range(600):
            seen = await db.fetchval("SELECT count(*) FROM messages")
            if seen > 0:
                break
            await asyncio.sleep(0.02)
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    finally:
        if first.poll() is None:
            first.kill()
    assert seen > 0, "the first ledger recorded nothing before it was killed"
    second = start_process(topology, database_url, directory_file)
    try:
        recorded = await wait_for(
            db, "SELECT count(DISTINCT message_id) FROM messages", expect=len(ids), timeout=60
        )
        assert recorded == len(ids)
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(15)
    assert await db.fetchval("SELECT count(*) FROM messages") == len(ids)
    events = await db.fetch("SELECT message_id, kind FROM events")
    assert sorted(e["message_id"] for e in events) == sorted(ids)
    assert {e["kind"] for e in events} == {"in_inbox"}


async def test_database_unavailable_loses_nothing(
    hub: RunningHub,
    ledger: RunningLedger,
    partners: dict[str, Partner],
    database_url: str,
    vhost: str,
    db: asyncpg.Connection,
) -> None:
    """With the ledger's database refusing connections the hub routes on; then it catches up."""
    name = urlsplit(database_url).path.lstrip("/")
    admin = await server()
    try:
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        # Cut the ledger's pooled connections; the test's own connection stays.
        await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = $1 AND pid <> $2",
            name,
            db.get_server_pid(),
        )
        ids = await send_many(partners["mag"], 100)
        for _ in range(200):
            if (
                not ledger.consumer.database_ok
                and ledger.consumer.metrics.database_errors._value.get()
            ):
                break
            await asyncio.sleep(0.05)
        assert not ledger.consumer.database_ok
        assert await db.fetchval("SELECT count(*) FROM messages") == 0
        # Everything waits in RabbitMQ (ready, or delivered to the ledger and unacked); the
        # management API's counts refresh every few seconds.
        waiting = 0
        for _ in range(100):
            queue = await management("GET", f"/queues/{vhost}/{LEDGER_QUEUE}")
            assert isinstance(queue, dict)
            waiting = queue.get("messages") or 0
            if waiting >= 1:
                break
            await asyncio.sleep(0.2)
        assert waiting >= 1
    finally:
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        await admin.close()
    recorded = await wait_for(db, "SELECT count(*) FROM messages", expect=len(ids), timeout=30)
    assert recorded == len(ids)
    assert ledger.consumer.database_ok
    assert sorted(await db.fetch("SELECT message_id FROM messages")) == sorted(
        [(i,) for i in ids]
    ) or sorted(
        r["message_id"] for r in await db.fetch("SELECT message_id FROM messages")
    ) == sorted(ids)
