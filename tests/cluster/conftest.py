"""Cluster fixtures: three extra RabbitMQ nodes joined into one cluster, Liaison provisioned on it.

Forming the cluster takes most of a minute, so one cluster serves every test here (the replication
check runs before the failover test kills nodes); every node and its data is gone afterwards,
whatever the tests did to it.
"""

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest

from liaison.common.urls import amqp_url_for
from liaison.directory.index import DirectoryIndex, load_directory
from liaison.directory.settings import ProvisionSettings
from liaison.nodes.cluster import BrokerCluster
from tests.hub_process import HubProcess
from tests.node_provisioning import SAMPLE, VHOST, provision_node, provisioning_env

needs_root = pytest.mark.skipif(
    os.geteuid() != 0, reason="extra RabbitMQ nodes are started as root (then as rabbitmq)"
)


@dataclass(frozen=True)
class Provisioned:
    """Liaison's vhost on the cluster: the settings provisioning used and the directory."""

    settings: ProvisionSettings
    index: DirectoryIndex


@pytest.fixture(scope="package")
def cluster() -> Iterator[BrokerCluster]:
    """Three nodes sharing a cookie, joined to the first; all stopped and removed afterwards."""
    with BrokerCluster.start(size=3, prefix="liaison-test-cl") as formed:
        boots = ", ".join(f"{n.started_in:.1f}s" for n in formed.nodes)
        print(f"\ncluster of 3 formed in {formed.formed_in:.1f}s (node boots {boots})")
        yield formed


@pytest.fixture(scope="package")
async def provisioned(
    cluster: BrokerCluster, tmp_path_factory: pytest.TempPathFactory
) -> Provisioned:
    """The sample directory provisioned through the first node's management API."""
    credentials = tmp_path_factory.mktemp("cluster-credentials")
    began = time.monotonic()
    settings = await provision_node(provisioning_env(cluster.first, credentials))
    print(f"provisioned {VHOST} on the cluster in {time.monotonic() - began:.1f}s")
    return Provisioned(settings, load_directory(SAMPLE))


async def queue_info(management_url: str, name: str) -> dict[str, object]:
    """The management API's record of queue ``name`` in Liaison's vhost."""
    auth = {"Authorization": aiohttp.encode_basic_auth("guest", "guest")}
    url = f"{management_url}/api/queues/{quote(VHOST, safe='')}/{quote(name, safe='')}"
    async with aiohttp.ClientSession(headers=auth) as session, session.get(url) as response:
        response.raise_for_status()
        info: dict[str, object] = await response.json()
        return info


async def quorum_queues(management_url: str) -> list[dict[str, object]]:
    """Every quorum queue of Liaison's vhost, with its members, online members and leader."""
    auth = {"Authorization": aiohttp.encode_basic_auth("guest", "guest")}
    url = f"{management_url}/api/queues/{quote(VHOST, safe='')}"
    async with aiohttp.ClientSession(headers=auth) as session, session.get(url) as response:
        response.raise_for_status()
        queues: list[dict[str, object]] = await response.json()
    return [q for q in queues if q.get("type") == "quorum"]


async def connection_nodes(cluster: BrokerCluster) -> dict[str, str]:
    """Each client connection's name -> the node it is on, as the first live node to answer
    lists them (its statistics lag a few seconds behind the connections); {} if none answers."""
    auth = {"Authorization": aiohttp.encode_basic_auth("guest", "guest")}
    for node in (n for n in cluster.nodes if n.alive):
        try:
            async with (
                aiohttp.ClientSession(headers=auth) as session,
                session.get(f"{node.management_url}/api/connections") as response,
            ):
                connections: list[dict[str, Any]] = await response.json()
        except aiohttp.ClientError:
            continue
        return {
            (c.get("client_properties") or {}).get("connection_name", ""): str(c["node"])
            for c in connections
        }
    return {}


def node_urls(cluster: BrokerCluster, account: str, password: str | None) -> list[str]:
    """Every node's URL on Liaison's vhost as ``account`` (no password: the hub's store)."""
    base = [n.amqp_url(vhost=VHOST) for n in cluster.nodes]
    if password is None:
        return [u.replace("guest:guest@", f"{account}@") for u in base]
    return [amqp_url_for(u, VHOST, account, password) for u in base]


def hub_on_every_node(cluster: BrokerCluster, provisioned: Provisioned, log: Path) -> HubProcess:
    """A hub process given every node's URL, in order (so it connects to the first)."""
    hub_account = provisioned.index.directory.hub_account
    return HubProcess(
        {
            "LIAISON_AMQP_URL": ",".join(node_urls(cluster, hub_account, None)),
            "LIAISON_CREDENTIALS_DIR": str(provisioned.settings.credentials_dir),
            "LIAISON_DIRECTORY": str(SAMPLE),
        },
        log,
    )
