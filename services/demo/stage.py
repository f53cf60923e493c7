"""Setting the stage for the demo: the broker provisioned, a hub running in this process."""

import asyncio
import contextlib
import socket
from dataclasses import dataclass
from pathlib import Path

import msgspec
from aiohttp import web

from liaison.common.errors import BrokerError, ConfigError
from liaison.common.topology import DEFAULT_SHARDS
from liaison.directory.credentials import CredentialStore
from liaison.directory.index import DirectoryIndex
from liaison.directory.partners import connection_url
from liaison.directory.provision import provision
from liaison.directory.settings import ProvisionSettings
from liaison.hub.app import CONSUMER, create_app
from liaison.hub.settings import HubSettings
from liaison.ledger.app import CONSUMER as LEDGER_CONSUMER
from liaison.ledger.app import create_app as create_ledger_app
from liaison.ledger.database import migrate_database
from liaison.ledger.settings import LedgerSettings

#: The demo's HTTP port, or the next free one after it.
FIRST_PORT = 8080


@dataclass(frozen=True, slots=True)
class Stage:
    """What the demo brought up; ``stop`` takes it down again."""

    runner: web.AppRunner
    port: int

    @property
    def base_url(self) -> str:
        """Where the hub's health and metrics endpoints answer."""
        return f"http://127.0.0.1:{self.port}"

    async def stop(self) -> None:
        """Stop the hub: stop consuming, finish in-flight work, close its connection."""
        await self.runner.cleanup()


async def provision_directory(settings: ProvisionSettings, index: DirectoryIndex) -> list[str]:
    """Create the vhost, topology, accounts and permissions; returns the provisioning report.

    The demo owns the accounts its directory names: one left from an earlier run whose stored
    password is gone (``make clean``, a second checkout) gets a new one. Accounts that have
    rights on another vhost, or tags the directory did not give, are left alone. A queue whose
    arguments changed since (an inbox's dead-letter exchange, say) is re-created if it is empty.
    """
    result = await provision(settings, index, reissue_missing=True, recreate_empty=True)
    if result.plan.conflicts:
        raise BrokerError("provisioning left conflicts: " + "; ".join(result.report()[-3:]))
    return result.report()


def account_urls(settings: ProvisionSettings, index: DirectoryIndex) -> dict[str, str]:
    """Each account's AMQP URL with its stored password (the hub's and ledger's included)."""
    store = CredentialStore(settings.credentials_dir)
    accounts = [o.broker_account for o in index.organisations.values()]
    accounts += [index.directory.hub_account, index.directory.ledger_account]
    urls = {}
    for account in accounts:
        password = store.get(account)
        if password is None:
            raise ConfigError(f"provisioning stored no credential for {account!r}")
        urls[account] = connection_url(settings, settings.vhost, account, password)
    return urls


async def start_hub(
    hub_url: str,
    directory: Path,
    first_port: int = FIRST_PORT,
    *,
    shard_count: int = DEFAULT_SHARDS,
    hub_signing_key: Path | None = None,
) -> Stage:
    """Serve a hub on 127.0.0.1:8080 (or the next free port) and wait until it consumes."""
    port = free_port(first_port)
    settings = HubSettings(
        amqp_url=hub_url,
        directory=directory,
        shard_count=shard_count,
        shards=tuple(range(shard_count)),
        http_port=port,
        shutdown_grace_seconds=5.0,
        reconnect_max_seconds=2.0,
        hub_signing_key=hub_signing_key,
    )
    app = create_app(settings)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    consumer = app[CONSUMER]
    for _ in range(200):
        if consumer.ready:
            return Stage(runner, port)
        await asyncio.sleep(0.05)
    await runner.cleanup()
    raise BrokerError("the hub did not start consuming within 10s")


async def start_ledger(settings: LedgerSettings, first_port: int) -> Stage:
    """Migrate the ledger's database, serve the ledger (API and console) and wait until it
    consumes; a PostgreSQL that cannot be reached raises LiaisonError."""
    await migrate_database(settings.database_url)
    port = free_port(first_port)
    app = create_ledger_app(msgspec.structs.replace(settings, http_port=port))
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    for _ in range(200):
        if app[LEDGER_CONSUMER].connected:
            return Stage(runner, port)
        await asyncio.sleep(0.05)
    await runner.cleanup()
    raise BrokerError("the ledger did not start consuming within 10s")


def free_port(first: int, tries: int = 50) -> int:
    """``first`` if nothing listens there, else the next free port."""
    for port in range(first, first + tries):
        with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise ConfigError(f"no free port between {first} and {first + tries - 1}")
