"""SDK fixtures: the hub fixtures (accounts, topology, an in-process hub), and SDK clients."""

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from liaison.sdk import Client
from tests.cli.support import directory_with_accounts
from tests.conftest import amqp_url_for
from tests.hub.conftest import (  # noqa: F401  (fixtures, used by name)
    admin,
    directory,
    hub,
    partner_accounts,
    partners,
    topology,
)
from tests.hub.support import PASSWORD


@pytest.fixture(scope="session")
def directory_file(tmp_path_factory: pytest.TempPathFactory, run_id: str) -> Path:
    """The sample directory with this package's own run-unique accounts (s-<run>-<org>)."""
    return directory_with_accounts(tmp_path_factory.mktemp("directory"), f"s-{run_id}-")


Connect = Callable[[str], Awaitable[Client]]


@pytest.fixture
async def connect(
    vhost: str,
    partner_accounts: dict[str, str],  # noqa: F811  (the fixture above, by name)
) -> AsyncIterator[Connect]:
    """Open an SDK client as an organisation of the test directory; all closed afterwards."""
    opened: list[Client] = []

    async def open_client(org: str) -> Client:
        client = await Client.connect(
            org,
            amqp_url_for(vhost),
            account=partner_accounts[org],
            password=PASSWORD,
            confirm_timeout=10.0,
            reconnect_interval=0.5,
        )
        opened.append(client)
        return client

    yield open_client
    for client in opened:
        await client.close()
