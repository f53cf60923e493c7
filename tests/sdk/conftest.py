"""SDK fixtures: the hub fixtures (accounts, topology, an in-process hub), and SDK clients."""

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Protocol

import pytest

from liaison.common.hub_key import load_hub_key
from liaison.directory.index import DirectoryIndex
from liaison.directory.keys import published_keys
from liaison.sdk import Client
from tests.cli.support import directory_with_accounts
from tests.conftest import amqp_url_for
from tests.hub.conftest import (  # noqa: F401  (fixtures, used by name)
    admin,
    directory,
    hub,
    hub_broker_url,
    hub_delivery,
    hub_key_file,
    partner_accounts,
    partners,
    topology,
)
from tests.hub.support import PASSWORD, demo_signing


@pytest.fixture(scope="session")
def directory_file(tmp_path_factory: pytest.TempPathFactory, run_id: str) -> Path:
    """The sample directory with this package's own run-unique accounts (s-<run>-<org>)."""
    return directory_with_accounts(tmp_path_factory.mktemp("directory"), f"s-{run_id}-")


class Connect(Protocol):
    """Opens an SDK client as ``org``; further ``Client.connect`` options by keyword."""

    async def __call__(self, org: str, **options: Any) -> Client: ...


@pytest.fixture(scope="session")
def trusted_keys(
    tmp_path_factory: pytest.TempPathFactory,
    directory: DirectoryIndex,  # noqa: F811  (the hub fixture, by name)
    hub_key_file: Path,  # noqa: F811
) -> Path:
    """The test directory's public keys and the hub's, as the partner bundle's
    signing-keys.json."""
    path = tmp_path_factory.mktemp("keys") / "signing-keys.json"
    path.write_bytes(published_keys(directory, load_hub_key(hub_key_file)))
    return path


@pytest.fixture
async def connect(
    vhost: str,
    partner_accounts: dict[str, str],  # noqa: F811  (the fixture above, by name)
    trusted_keys: Path,
) -> AsyncIterator[Connect]:
    """Open an SDK client as an organisation of the test directory; all closed afterwards."""
    opened: list[Client] = []

    async def open_client(org: str, **options: Any) -> Client:
        client = await Client.connect(
            org,
            amqp_url_for(vhost),
            account=partner_accounts[org],
            password=PASSWORD,
            confirm_timeout=10.0,
            reconnect_interval=0.5,
            trusted_keys=trusted_keys,
            **demo_signing(org),
            **options,
        )
        opened.append(client)
        return client

    yield open_client
    for client in opened:
        await client.close()
