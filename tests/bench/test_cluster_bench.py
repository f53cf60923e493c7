"""``python -m bench.cluster --quick`` on its own extra nodes: one node and a three-node cluster,
one tiny hub round each, every figure written. No timing is asserted (the machine is shared)."""

import os
from typing import Any

import pytest

from tests.bench.runs import quick_run

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        os.geteuid() != 0, reason="extra RabbitMQ nodes are started as root (then as rabbitmq)"
    ),
]


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The JSON of one quick run (200 messages, 1 round per side)."""
    return quick_run(
        "bench.cluster", tmp_path_factory.mktemp("cluster-bench"), "cluster.json", timeout=300
    )


def test_cluster_queues_have_a_member_on_every_node(results: dict[str, Any]) -> None:
    """The cluster side's quorum queues are replicated on all three nodes, the single's on one."""
    assert results["cluster_size"] == 3
    cluster, single = results["placement"]["cluster"], results["placement"]["single"]
    assert cluster["quorum_queues"] == single["quorum_queues"] > 0
    assert cluster["members_min"] == cluster["members_max"] == 3
    assert single["members_min"] == single["members_max"] == 1


def test_both_sides_moved_the_same_workload(results: dict[str, Any]) -> None:
    """Each side's round moved every message into every inbox, and every figure is there."""
    single, cluster = results["rows"]["single"], results["rows"]["cluster"]
    assert len(single) == len(cluster) == results["repeats"] == 1
    assert single[0]["messages"] == cluster[0]["messages"] == results["messages"] == 200
    assert single[0]["inbox_copies"] == cluster[0]["inbox_copies"] > 200
    for side in ("single", "cluster"):
        medians = results["median"][side]
        assert medians["msg_per_s"] > 0
        assert medians["inbox_copies_per_s"] > medians["msg_per_s"]
        assert medians["mover_cpu_us_per_message"] > 0
        assert medians["broker_cpu_us_per_message"] > 0
    assert results["replication"]["quorum_copies_per_message"] > 2
    assert single[0]["wal_rolled_over_on_every_node"]
    assert cluster[0]["wal_rolled_over_on_every_node"]


def test_every_cluster_node_has_a_share_of_the_broker_cpu(results: dict[str, Any]) -> None:
    """Each node's CPU share per round is there (the followers work too), and adds up to one."""
    shares = results["rows"]["cluster"][0]["node_cpu_share"]
    assert len(shares) == 3
    assert all(share > 0 for share in shares.values())
    assert abs(sum(shares.values()) - 1) < 0.01
    assert set(results["cluster_node_us_per_message_estimate"]) == set(shares)
