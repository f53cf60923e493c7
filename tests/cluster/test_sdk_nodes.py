"""The SDK over a cluster's node list: partners' connections move on their own off a lost node."""

import asyncio
import time
from pathlib import Path

import pytest

from liaison.directory.credentials import CredentialStore
from liaison.nodes.cluster import BrokerCluster
from liaison.nodes.node import BrokerNode
from liaison.sdk import Client, Inbox
from tests.cluster.conftest import (
    Provisioned,
    connection_nodes,
    hub_on_every_node,
    needs_root,
    node_urls,
)
from tests.hub.support import demo_signing
from tests.sdk.support import spot_report

pytestmark = [pytest.mark.broker, pytest.mark.slow, needs_root]


async def arrives(inbox: Inbox, distribution_id: str, *, within: float) -> None:
    """Wait for one message in the inbox, acking what came before it: the cluster's other tests
    share the recipients and may leave a late repeat of theirs behind."""
    deadline = time.monotonic() + within
    while (left := deadline - time.monotonic()) > 0:
        got = await inbox.get(within=left)
        assert got is not None, f"{distribution_id} did not arrive in {within:.0f}s"
        await got.ack()
        if got.envelope.distribution_id == distribution_id:
            return
    raise AssertionError(f"{distribution_id} did not arrive in {within:.0f}s")


async def sdk_nodes(cluster: BrokerCluster) -> dict[str, str]:
    """Which node each SDK connection is on (by organisation), as a live node lists them."""
    return {
        name.removeprefix("liaison-sdk "): node
        for name, node in (await connection_nodes(cluster)).items()
        if name.startswith("liaison-sdk ")
    }


async def listed(cluster: BrokerCluster, orgs: set[str], away_from: str) -> dict[str, str]:
    """The SDK connections of ``orgs`` once the management API lists each on a node other than
    ``away_from`` (its statistics lag a few seconds behind the connections)."""
    deadline = time.monotonic() + 30
    while True:
        where = await sdk_nodes(cluster)
        if orgs <= where.keys() and all(where[o] != away_from for o in orgs):
            return where
        assert time.monotonic() < deadline, f"SDK connections listed on {where}"
        await asyncio.sleep(0.5)


async def test_partners_move_to_another_node_when_theirs_is_killed(
    cluster: BrokerCluster, provisioned: Provisioned, tmp_path: Path
) -> None:
    """Sender and recipient, given every node, start on one; SIGKILL it: both move on by
    themselves, the send waits out the move, and the message arrives."""
    store = CredentialStore(provisioned.settings.credentials_dir)
    org = provisioned.index.organisations
    hub = hub_on_every_node(cluster, provisioned, tmp_path / "hub.log")
    # The partners start on the last node, the hub on the first: losing the partners' node
    # tells about the SDK alone.
    partners_node: BrokerNode = cluster.nodes[-1]

    def urls(organisation: str) -> list[str]:
        account = org[organisation].broker_account
        every = node_urls(cluster, account, store.get(account))
        return [*every[-1:], *every[:-1]]

    try:
        await hub.wait_ready(timeout=60)
        async with (
            Client.connect("mag", urls("mag"), confirm_timeout=30, **demo_signing("mag")) as sender,
            Client.connect("unmas", ",".join(urls("unmas")), **demo_signing("unmas")) as recipient,
            recipient.inbox() as inbox,
        ):
            where = await listed(cluster, {"mag", "unmas"}, away_from="")
            assert set(where.values()) == {partners_node.name}, where
            before = await sender.send(spot_report(), recipients=["org:unmas"])
            await arrives(inbox, before, within=30)

            killed_at = time.monotonic()
            partners_node.kill()
            after = await sender.send(spot_report(), recipients=["org:unmas"])
            sent_in = time.monotonic() - killed_at
            await arrives(inbox, after, within=60)
            arrived_in = time.monotonic() - killed_at
            moved = await listed(cluster, {"mag", "unmas"}, away_from=partners_node.name)
        print(
            f"\npartners' node {partners_node.name} killed: the send confirmed {sent_in:.1f}s "
            f"after, delivered {arrived_in:.1f}s after; SDK connections now on {moved}"
        )
    finally:
        hub.stop()
        if not partners_node.alive:
            await asyncio.to_thread(partners_node.restart)
            await asyncio.to_thread(cluster.wait_running)
