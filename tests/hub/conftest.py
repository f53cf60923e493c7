"""Hub fixtures: a test directory with run-unique broker accounts, its topology, and a hub.

Broker users are global, so each run's partner accounts carry the run id; they are deleted at
the end. Topology is declared over AMQP from the same description provisioning applies.
"""

import asyncio
import tomllib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aio_pika
import pytest
import tomli_w

from liaison.common.hub_key import ensure_hub_key
from liaison.common.topology import build_topology
from liaison.directory.credentials import HASHING_ALGORITHM, password_hash
from liaison.directory.index import DirectoryIndex, load_directory
from liaison.directory.management import Permission
from liaison.directory.topology import apply_topology
from liaison.hub.consumer import HubConsumer
from liaison.hub.expiry import InboxDeadLetters
from liaison.hub.memory import LocalMemory
from liaison.hub.metrics import HubMetrics
from liaison.hub.router import Router
from liaison.hub.settings import HubSettings
from tests.conftest import _admin_credentials, admin_client, amqp_url_for
from tests.hub.support import PASSWORD, Partner

SAMPLE = Path(__file__).resolve().parents[2] / "deploy" / "directory.toml"


def account_for(run_id: str, org: str) -> str:
    """The run-unique broker account of ``org``."""
    return f"t-{run_id}-{org}"


@pytest.fixture(scope="session")
def directory_file(tmp_path_factory: pytest.TempPathFactory, run_id: str) -> Path:
    """The sample directory with run-unique accounts."""
    raw: dict[str, Any] = tomllib.loads(SAMPLE.read_text())
    for org in raw["organisations"]:
        org["account"] = account_for(run_id, org["id"])
    raw["hub_account"] = f"t-{run_id}-hub"
    raw["operator_account"] = f"t-{run_id}-operator"
    raw["ledger_account"] = f"t-{run_id}-ledger"
    path = tmp_path_factory.mktemp("directory") / "directory.toml"
    path.write_text(tomli_w.dumps(raw))
    return path


@pytest.fixture(scope="session")
def directory(directory_file: Path) -> DirectoryIndex:
    """The compiled test directory."""
    return load_directory(directory_file)


@pytest.fixture(scope="session")
async def partner_accounts(vhost: str, directory: DirectoryIndex) -> AsyncIterator[dict[str, str]]:
    """A broker user per organisation (org -> account), with full rights on the test vhost."""
    accounts = {org.id: org.broker_account for org in directory.organisations.values()}
    async with admin_client() as api:
        for account in accounts.values():
            await api.put_user(account, password_hash(PASSWORD), HASHING_ALGORITHM)
            await api.put_permission(Permission(account, vhost, ".*", ".*", ".*"))
    yield accounts
    async with admin_client() as api:  # absent is fine: another package's copy of this fixture
        for account in accounts.values():
            await api.delete_user(account)


@pytest.fixture(scope="session")
async def topology(vhost: str, admin_url: str, directory: DirectoryIndex) -> str:
    """Declare every exchange, queue and binding of the test directory; returns the URL."""
    spec = build_topology(
        {org.id: org.inbox_max_length for org in directory.organisations.values()}
    )
    async with admin_client() as api:
        await apply_topology(api, vhost, spec)
    return admin_url


@pytest.fixture(scope="session")
async def admin(topology: str) -> AsyncIterator[aio_pika.abc.AbstractConnection]:
    """An admin connection on the test vhost, for reading inboxes and dead letters."""
    connection = await aio_pika.connect(topology)
    yield connection
    await connection.close()


@pytest.fixture(scope="session")
async def partners(
    vhost: str, partner_accounts: dict[str, str], topology: str
) -> AsyncIterator[dict[str, Partner]]:
    """A connected Partner per organisation id."""
    out: dict[str, Partner] = {}
    for org, account in partner_accounts.items():
        connection = await aio_pika.connect(amqp_url_for(vhost, account, PASSWORD))
        out[org] = Partner(org, account, connection)
    yield out
    for partner in out.values():
        await partner.connection.close()


@dataclass(frozen=True, slots=True)
class ClassicVhost:
    """A vhost provisioned with LIAISON_QUEUE_TYPE=classic: its admin URL and connection, and
    a connected Partner per organisation."""

    vhost: str
    url: str
    admin: aio_pika.abc.AbstractConnection
    partners: dict[str, Partner]


@pytest.fixture(scope="session")
async def classic(
    run_id: str, directory: DirectoryIndex, partner_accounts: dict[str, str]
) -> AsyncIterator[ClassicVhost]:
    """A second vhost whose inboxes, ledger and dead-letter queues are classic (the
    single-node transaction profile), with the same partner accounts; deleted afterwards."""
    name = f"liaison-test-{run_id}-classic"
    user, _ = _admin_credentials()
    spec = build_topology(
        {org.id: org.inbox_max_length for org in directory.organisations.values()},
        queue_type="classic",
    )
    async with admin_client() as api:
        await api.put_vhost(name)
        for account in (user, *partner_accounts.values()):
            await api.put_permission(Permission(account, name, ".*", ".*", ".*"))
        await apply_topology(api, name, spec)
    url = amqp_url_for(name)
    admin = await aio_pika.connect(url)
    partners: dict[str, Partner] = {}
    try:
        for org, account in partner_accounts.items():
            connection = await aio_pika.connect(amqp_url_for(name, account, PASSWORD))
            partners[org] = Partner(org, account, connection)
        yield ClassicVhost(name, url, admin, partners)
    finally:
        for partner in partners.values():
            await partner.connection.close()
        await admin.close()
        async with admin_client() as api:
            await api.delete_vhost(name)


def classic_for(request: pytest.FixtureRequest, delivery: str) -> ClassicVhost | None:
    """The classic vhost where a hub of ``delivery`` runs: transaction delivery refuses quorum
    inboxes, ledger and dead-letter queues; None (the session vhost) for confirm."""
    if delivery != "transaction":
        return None
    classic: ClassicVhost = request.getfixturevalue("classic")
    return classic


async def purge_all(admin: aio_pika.abc.AbstractConnection, directory: DirectoryIndex) -> None:
    """Empty every queue of the topology so each test starts clean."""
    spec = build_topology(dict.fromkeys(directory.organisations, 100))
    channel = await admin.channel()
    for q in spec.queues:
        queue = await channel.get_queue(q.name, ensure=False)
        await queue.purge()
    await channel.close()


def hub_settings(admin_url: str, directory_file: Path, **overrides: Any) -> HubSettings:
    """Settings for a hub on the test vhost."""
    base: dict[str, Any] = {
        "amqp_url": admin_url,
        "directory": directory_file,
        "http_port": 0,
        "shutdown_grace_seconds": 5.0,
        "reconnect_max_seconds": 1.0,
        # A full queue's nack is retried this long before the 502 the tests expect.
        "nack_retry_seconds": 0.3,
    }
    base.update(overrides)
    return HubSettings(**base)


class RunningHub:
    """An in-process hub consumer for a test."""

    def __init__(self, consumer: HubConsumer, task: asyncio.Task[None]):
        self.consumer = consumer
        self.task = task

    @property
    def router(self) -> Router:
        """The hub's router (for swapping the directory or injecting faults)."""
        return self.consumer.router


@pytest.fixture(scope="session")
def hub_key_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The test hub's signing key (LIAISON_HUB_SIGNING_KEY), as provisioning creates it."""
    path = tmp_path_factory.mktemp("hub-key") / "hub-signing.key"
    ensure_hub_key(path)
    return path


@pytest.fixture
def hub_delivery() -> str:
    """The ``hub`` fixture's delivery mode (the default, confirm); a test meaningful in both
    modes parametrizes it."""
    return "confirm"


@pytest.fixture
def hub_broker_url(topology: str) -> str:
    """The URL the ``hub`` fixture's hub connects with in confirm mode: the test vhost's; a
    module may route it elsewhere (through a proxy that cuts the link)."""
    return topology


@pytest.fixture
async def hub(
    admin: aio_pika.abc.AbstractConnection,
    partners: dict[str, Partner],
    directory: DirectoryIndex,
    directory_file: Path,
    hub_broker_url: str,
    hub_key_file: Path,
    hub_delivery: str,
    request: pytest.FixtureRequest,
) -> AsyncIterator[RunningHub]:
    """A hub consuming every shard of the test vhost (the classic one in transaction mode:
    a module testing both modes overrides ``admin`` and ``partners`` alike), on clean queues;
    it signs its reports."""
    classic = classic_for(request, hub_delivery)
    await purge_all(admin if classic is None else classic.admin, directory)
    settings = hub_settings(
        hub_broker_url if classic is None else classic.url,
        directory_file,
        hub_signing_key=hub_key_file,
        delivery=hub_delivery,
    )
    router = Router(directory, max_message_bytes=settings.max_message_bytes)
    memory = LocalMemory(seconds=600, max_entries=10_000)
    consumer = HubConsumer(settings, router, memory, HubMetrics())
    task = asyncio.create_task(consumer.run())
    # The hub process also reads the inbox dead letters and keeps them for operators.
    dead_letters = InboxDeadLetters(settings, lambda: router.directory)
    dead_letters_task = asyncio.create_task(dead_letters.run())
    for _ in range(200):
        if consumer.ready and dead_letters.consuming:
            break
        await asyncio.sleep(0.05)
    assert consumer.ready, "hub did not start consuming"
    assert dead_letters.consuming, "hub did not start reading inbox dead letters"
    yield RunningHub(consumer, task)
    await consumer.stop()
    await dead_letters.stop()
    await asyncio.wait_for(task, 10)
    await asyncio.wait_for(dead_letters_task, 10)
