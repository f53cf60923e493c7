"""Liaison on a three-node RabbitMQ cluster: every quorum queue has a member on each node."""

from collections import Counter

import pytest

from liaison.common.topology import build_topology, hub_queue
from liaison.nodes.cluster import BrokerCluster
from liaison.schemas.wire import inbox_queue
from tests.cluster.conftest import Provisioned, needs_root, queue_info, quorum_queues

pytestmark = [pytest.mark.broker, pytest.mark.slow, needs_root]


async def test_quorum_queues_have_members_on_every_node(
    cluster: BrokerCluster, provisioned: Provisioned
) -> None:
    """Provisioning onto the cluster replicates the shards, inboxes and the rest on all three."""
    names = {node.name for node in cluster.nodes}
    assert cluster.running_nodes() == names
    spec = build_topology(
        {org.id: org.inbox_max_length for org in provisioned.index.organisations.values()},
        shards=provisioned.settings.shard_count,
    )
    quorum = [q.name for q in spec.queues if q.arguments.get("x-queue-type") == "quorum"]
    shards = {hub_queue(s) for s in range(provisioned.settings.shard_count)}
    inboxes = {inbox_queue(org) for org in provisioned.index.organisations}
    assert shards <= set(quorum)
    assert inboxes <= set(quorum)
    for name in quorum:
        # Asked of the last node: what the cluster agrees on, not what the first one declared.
        info = await queue_info(cluster.nodes[-1].management_url, name)
        assert info["type"] == "quorum", name
        assert set(info["members"]) == names, (name, info["members"])  # type: ignore[call-overload]
        assert info["leader"] in names, name
    print(f"{len(quorum)} quorum queues, each with members on all {len(names)} nodes")


async def test_quorum_queue_leaders_are_spread_over_the_nodes(
    cluster: BrokerCluster, provisioned: Provisioned
) -> None:
    """Provisioning through one node leaves leaders on every node (balanced locator), not all
    on the node whose management API declared them (client-local, the broker's default)."""
    queues = await quorum_queues(cluster.nodes[-1].management_url)
    leaders = Counter(str(q["leader"]) for q in queues)
    print(f"leaders per node: {dict(leaders)}")
    assert set(leaders) == {node.name for node in cluster.nodes}
    # Sequential declarations through one node put each on the node leading fewest so far:
    # an even share, give or take one (more if a node restarted since, hence the slack).
    assert max(leaders.values()) <= len(queues) / 2
