"""Relay fixtures: a headquarters node (Liaison provisioned, a hub running) and a site node.

Both brokers are extra nodes from services/nodes (never the shared one on 5672). One pair
serves every test of the package: booting and provisioning take most of a minute. Each test
gets its own link: the tunnel's two ends and an emulated link between them.
"""

import asyncio
import os
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aio_pika
import msgspec
import pytest

from liaison.common.settings import Secret
from liaison.directory.credentials import CredentialStore
from liaison.directory.index import DirectoryIndex, load_directory
from liaison.directory.management import ManagementClient
from liaison.nodes.node import LIAISON_PLUGINS, BrokerNode
from liaison.relay.app import HqRelay, SiteRelay, management
from liaison.relay.faults import LinkEmulator
from liaison.relay.settings import RelaySettings
from tests.hub_process import HubProcess
from tests.node_provisioning import SAMPLE, VHOST, provision_node, provisioning_env

#: The sample directory with two team sites, as docs/operations.md ("Field sites") adds them.
SITES = SAMPLE.parent / "relay" / "sites-example.toml"
SITE_PLUGINS = ("rabbitmq_management", "rabbitmq_shovel", "rabbitmq_shovel_management")
#: What docs/operations.md asks of a site broker: a disk alarm well before the disk is full,
#: and statistics often enough for the relay's status.
SITE_CONFIG = "disk_free_limit.absolute = 200MB\ncollect_statistics_interval = 1000\n"

needs_root = pytest.mark.skipif(
    os.geteuid() != 0, reason="extra RabbitMQ nodes are started as root (then as rabbitmq)"
)


@dataclass
class Headquarters:
    """The headquarters node, provisioned, with a hub routing on it."""

    node: BrokerNode
    directory: Path
    index: DirectoryIndex
    credentials: Path
    hub: HubProcess

    def password(self, account: str) -> str:
        """A provisioned account's password."""
        password = CredentialStore(self.credentials).get(account)
        assert password is not None, account
        return password

    def url(self, account: str) -> str:
        """The AMQP URL of ``account`` on headquarters' vhost, with its password."""
        return self.node.amqp_url(account, self.password(account), VHOST)


def write_directory(folder: Path) -> Path:
    """The sample directory plus the sites, written to ``folder``."""
    path = folder / "directory.toml"
    path.write_text(SAMPLE.read_text() + "\n" + SITES.read_text())
    return path


@pytest.fixture(scope="package")
def hq_node() -> Iterator[BrokerNode]:
    """The headquarters broker."""
    with BrokerNode.start(prefix="liaison-test-hq", plugins=LIAISON_PLUGINS) as node:
        yield node


@pytest.fixture(scope="package")
def site_node() -> Iterator[BrokerNode]:
    """The site broker, with the shovel plugin."""
    with BrokerNode.start(
        prefix="liaison-test-site", plugins=SITE_PLUGINS, config=SITE_CONFIG
    ) as node:
        yield node


@pytest.fixture(scope="package")
async def hq(
    hq_node: BrokerNode, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Headquarters]:
    """The directory with sites provisioned on headquarters, and a hub routing there."""
    folder = tmp_path_factory.mktemp("relay-hq")
    directory = write_directory(folder)
    credentials = folder / "credentials"
    await provision_node(provisioning_env(hq_node, credentials, directory=directory))
    index = load_directory(directory)
    hub = HubProcess(
        {
            "LIAISON_AMQP_URL": f"amqp://liaison-hub@127.0.0.1:{hq_node.ports.amqp}/{VHOST}",
            "LIAISON_CREDENTIALS_DIR": str(credentials),
            "LIAISON_DIRECTORY": str(directory),
            # Its inboxes' length limits (transaction delivery, the default on one node).
            "LIAISON_MANAGEMENT_URL": hq_node.management_url,
        },
        folder / "hub.log",
    )
    try:
        await hub.wait_ready(60)
        yield Headquarters(hq_node, directory, index, credentials, hub)
    finally:
        hub.stop()


@dataclass
class Relay:
    """One link between the site node and headquarters: both ends and the emulated link."""

    site: SiteRelay
    hq: HqRelay
    link: LinkEmulator
    settings: RelaySettings

    async def status(self, timeout: float = 30.0, **expect: object) -> dict[str, object]:
        """The next status reading whose fields equal ``expect`` (waits for it)."""
        deadline = time.monotonic() + timeout
        last: dict[str, object] = {}
        while time.monotonic() < deadline:
            poller = self.site.poller
            assert poller is not None
            reading = await poller.read()
            last = {f: getattr(reading, f) for f in reading.__struct_fields__}
            if all(last[k] == v for k, v in expect.items()):
                return last
            await asyncio.sleep(0.5)
        raise AssertionError(f"status never showed {expect}: {last}")


def relay_settings(
    hq: Headquarters, site_node: BrokerNode, link_port: int, site: str
) -> RelaySettings:
    """The site end's settings, as docs/operations.md lists them."""
    return RelaySettings(
        site=site,
        directory=hq.directory,
        vhost=VHOST,
        credentials_dir=hq.credentials,
        site_management_url=site_node.management_url,
        site_amqp_url=site_node.amqp_url(vhost=VHOST),
        relay_listen="127.0.0.1:0",
        relay_link=f"127.0.0.1:{link_port}",
        relay_broker=f"127.0.0.1:{hq.node.ports.amqp}",
        relay_http_port=0,
        relay_heartbeat_seconds=5,
    )


@pytest.fixture
async def relay(hq: Headquarters, site_node: BrokerNode) -> AsyncIterator[Relay]:
    """Site ``bria`` linked to headquarters through an (unimpaired) emulated link."""
    async with linked(hq, site_node, "bria") as made:
        yield made


class linked:
    """Start an HQ end, a link emulator and a site end; stop and remove the shovels after."""

    def __init__(
        self,
        hq: Headquarters,
        site_node: BrokerNode,
        site: str,
        link: LinkEmulator | None = None,
        **settings: Any,
    ) -> None:
        self._hq, self._site_node, self._site = hq, site_node, site
        self._link = link
        self._settings = settings
        self.relay: Relay | None = None

    async def __aenter__(self) -> Relay:
        base = RelaySettings(
            relay_link="127.0.0.1:0",
            relay_http_port=0,
            relay_broker=f"127.0.0.1:{self._hq.node.ports.amqp}",
        )
        hq_end = HqRelay(base)
        await hq_end.start()
        assert hq_end.tunnel is not None
        link = self._link or LinkEmulator(target=("127.0.0.1", hq_end.tunnel.port))
        link.target = ("127.0.0.1", hq_end.tunnel.port)
        await link.start()
        settings = msgspec.structs.replace(
            relay_settings(self._hq, self._site_node, link.port, self._site), **self._settings
        )
        site_end = SiteRelay(settings)
        await site_end.start()
        self.relay = Relay(site_end, hq_end, link, settings)
        return self.relay

    async def __aexit__(self, *exc: object) -> None:
        assert self.relay is not None
        await self.relay.site.stop()
        await self.relay.link.close()
        await self.relay.hq.stop()
        await remove_shovels(self.relay.site)
        await purge_inboxes(self._hq.node, self._site_node)


async def remove_shovels(site: SiteRelay) -> None:
    """Delete the relay's shovels from the site broker (the next test defines its own)."""
    async with management(site.settings) as api:
        await _remove(api)


async def remove_shovel_parameters(node: BrokerNode) -> None:
    """The same, given only the site node."""
    async with ManagementClient(node.management_url, "guest", Secret("guest")) as api:
        await _remove(api)


async def _remove(api: ManagementClient) -> None:
    for entry in await api.request("GET", f"/parameters/shovel/{VHOST}") or []:
        await api.request("DELETE", f"/parameters/shovel/{VHOST}/{entry['name']}")


async def purge_inboxes(*nodes: BrokerNode) -> None:
    """Empty every inbox on ``nodes``: a copy a test left (a late raw duplicate over a bad
    link) would otherwise be the next test's first delivery."""
    for node in nodes:
        async with ManagementClient(node.management_url, "guest", Secret("guest")) as api:
            for queue in await api.request("GET", f"/queues/{VHOST}?columns=name") or []:
                if queue["name"].startswith("inbox."):
                    await api.request("DELETE", f"/queues/{VHOST}/{queue['name']}/contents")


async def drain(
    url: str, queue: str, *, expect: int, timeout: float = 60.0
) -> list[aio_pika.abc.AbstractIncomingMessage]:
    """Read ``expect`` messages from ``queue`` (acknowledging them), in arrival order."""
    got: list[aio_pika.abc.AbstractIncomingMessage] = []
    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel()
        q = await channel.get_queue(queue, ensure=False)
        deadline = time.monotonic() + timeout
        while len(got) < expect and time.monotonic() < deadline:
            message = await q.get(fail=False, no_ack=True)
            if message is None:
                await asyncio.sleep(0.2)
                continue
            got.append(message)
    finally:
        await connection.close()
    return got
