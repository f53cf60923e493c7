"""Node loss under load: hub and partners move to another node; nothing lost, nothing reordered."""

import asyncio
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from liaison.common.topology import hub_queue
from liaison.directory.credentials import CredentialStore
from liaison.nodes.cluster import BrokerCluster
from liaison.nodes.node import BrokerNode
from liaison.schemas.wire import inbox_queue
from tests.cluster.conftest import (
    Provisioned,
    connection_nodes,
    hub_on_every_node,
    needs_root,
    node_urls,
    queue_info,
    quorum_queues,
)
from tests.cluster.load import (
    RecipientLog,
    SenderLog,
    everyone_again_after,
    routed_again_after,
    run_recipient,
    run_sender,
    tally,
)

pytestmark = [pytest.mark.broker, pytest.mark.slow, needs_root]

SENDERS = ("mag", "halo-trust", "nrc")
RECIPIENTS = ("unmas", "unicef")
#: Seconds between one sender's confirmed publishes: ~60 messages a second in all.
PACE = 0.05


async def hub_node(cluster: BrokerCluster) -> str | None:
    """The node the hub's connection is on, as a live node's management API reports it."""
    where = await connection_nodes(cluster)
    return next((node for name, node in where.items() if name.startswith("liaison-hub")), None)


async def hub_moved_to(cluster: BrokerCluster, away_from: str | None = None) -> str:
    """The hub's node once the management API lists it there (its statistics lag a few
    seconds behind the connection) and it is not ``away_from``."""
    deadline = time.monotonic() + 30
    while (node := await hub_node(cluster)) is None or node == away_from:
        assert time.monotonic() < deadline, f"the hub's connection listed on {node}"
        await asyncio.sleep(0.5)
    return node


async def wait_until(predicate: Any, timeout: float, what: str, *, fail: bool = True) -> bool:
    """Poll an async ``predicate`` until it holds; whether it did (or fail the test)."""
    deadline = time.monotonic() + timeout
    while not await predicate():
        if time.monotonic() > deadline:
            assert not fail, f"{what} within {timeout:.0f}s"
            return False
        await asyncio.sleep(0.2)
    return True


async def queue_depths(cluster: BrokerCluster, names: list[str]) -> str:
    """Ready and unacknowledged counts of ``names``, for a failure's explanation."""
    live = next(n for n in cluster.nodes if n.alive)
    parts = []
    for name in names:
        info = await queue_info(live.management_url, name)
        parts.append(
            f"{name} ready {info.get('messages_ready')} unacked "
            f"{info.get('messages_unacknowledged')} leader {info.get('leader')}"
        )
    return "; ".join(parts)


async def leader_of_most(cluster: BrokerCluster, queues: list[str]) -> BrokerNode:
    """The node leading most of ``queues`` (ties: the first counted)."""
    live = next(n for n in cluster.nodes if n.alive)
    leaders = Counter([str((await queue_info(live.management_url, q))["leader"]) for q in queues])
    return cluster.node_named(leaders.most_common(1)[0][0])


async def test_losing_nodes_under_load_loses_nothing_and_keeps_order(
    cluster: BrokerCluster, provisioned: Provisioned, tmp_path: Path
) -> None:
    """SIGKILL the hub's node, then the shards' leader: nothing silently lost, order kept."""
    store = CredentialStore(provisioned.settings.credentials_dir)
    org = provisioned.index.organisations
    hub = hub_on_every_node(cluster, provisioned, tmp_path / "hub.log")
    stop = asyncio.Event()
    senders = [SenderLog(o) for o in SENDERS]
    recipients = [RecipientLog(o) for o in RECIPIENTS]
    # Each sender's own inbox, where the hub's error reports about its messages arrive.
    answers = [RecipientLog(o) for o in SENDERS]
    tasks: list[asyncio.Task[None]] = []
    try:
        await hub.wait_ready(timeout=60)
        node_a = cluster.nodes[0]
        assert await hub_moved_to(cluster) == node_a.name, "the hub connects to the first node"
        # Partners on the other nodes, so losing A tells about the hub alone.
        for i, reader in enumerate([*recipients, *answers]):
            account = org[reader.org].broker_account
            urls = node_urls(cluster, account, store.get(account))
            tasks.append(asyncio.create_task(run_recipient(reader, urls, stop, first=1 + i % 2)))
        for i, writer in enumerate(senders):
            account = org[writer.org].broker_account
            urls = node_urls(cluster, account, store.get(account))
            to = [f"org:{r}" for r in RECIPIENTS]
            tasks.append(
                asyncio.create_task(
                    run_sender(writer, account, urls, to, stop, first=1 + i % 2, pace=PACE)
                )
            )
        await asyncio.sleep(3)
        assert all(r.arrivals for r in recipients), "no delivery before any node was lost"

        figures: list[str] = []

        async def lose(node: BrokerNode, why: str) -> None:
            killed_at = time.monotonic()
            node.kill()

            async def routed() -> bool:
                return routed_again_after(killed_at, recipients, senders) is not None

            async def everyone() -> bool:
                return everyone_again_after(killed_at, recipients, senders) is not None

            await wait_until(routed, 60, f"the hub routing again after losing {why}")
            # Not waited for with the node down: how long that takes is what is measured.
            await wait_until(everyone, 30, f"every recipient reached again after losing {why}")
            again = routed_again_after(killed_at, recipients, senders)
            whole = everyone_again_after(killed_at, recipients, senders)
            figures.append(
                f"{why} ({node.name}): routed again {again:.2f}s after SIGKILL, "
                f"to every recipient {whole:.2f}s after"
            )
            moved_to = await hub_moved_to(cluster, away_from=node.name)
            await asyncio.sleep(2)  # load on the two survivors
            began = time.monotonic()
            await asyncio.to_thread(node.restart)
            await asyncio.to_thread(cluster.wait_running)

            async def caught_up() -> bool:
                # Online in every quorum queue (the ledger's and dead letters too: each
                # decision writes to the ledger queue), so the next loss leaves a majority
                # everywhere.
                queues = await quorum_queues(node.management_url)
                return bool(queues) and all(
                    node.name in q.get("online", [])  # type: ignore[operator]
                    for q in queues
                )

            await wait_until(caught_up, 60, f"{node.name} online in every quorum queue")
            figures.append(
                f"{why}: back in the cluster {time.monotonic() - began:.1f}s after restart, "
                f"hub on {moved_to}"
            )

        await lose(node_a, "the hub's node")
        watched = [hub_queue(s) for s in range(provisioned.settings.shard_count)]
        watched += [inbox_queue(r) for r in RECIPIENTS]
        await lose(await leader_of_most(cluster, watched), "the shards' and inboxes' leader")

        stop.set()
        await asyncio.gather(*tasks)
        confirmed = {d for s in senders for d in s.confirmed}

        def reports() -> dict[str, int]:
            return {d: code for a in answers for d, code in a.reports.items()}

        async def accounted_for() -> bool:
            answered = reports()
            return all(
                d in answered or d in {a for a, _ in r.arrivals}
                for r in recipients
                for d in confirmed
            )

        # Read what is left: every reader runs again until each message is in or answered.
        stop.clear()
        tasks = []
        for reader in [*recipients, *answers]:
            account = org[reader.org].broker_account
            urls = node_urls(cluster, account, store.get(account))
            tasks.append(asyncio.create_task(run_recipient(reader, urls, stop, first=0)))
        settled = await wait_until(accounted_for, 45, "", fail=False)
        if not settled:
            figures.append("not settled after 45 s: " + await queue_depths(cluster, watched))
        stop.set()
        await asyncio.gather(*tasks)
    finally:
        stop.set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        hub.stop()
    total = sum(len(s.confirmed) for s in senders)
    print(f"\n{total} messages from {len(senders)} senders to {len(recipients)} recipients")
    for line in figures:
        print(line)
    answered = {d: code for a in answers for d, code in a.reports.items()}
    codes = Counter(answered.values())
    print(f"answered to their senders instead of delivered: {len(answered)} (codes {dict(codes)})")
    for r in recipients:
        counts = tally(r, senders, answered)
        print(
            f"{r.org}: lost {counts.lost}, refused {counts.refused} "
            f"(and {counts.refused_yet_arrived} refused yet delivered), "
            f"duplicates {counts.duplicates}, order inversions {counts.inversions}, "
            f"reconnects {r.reconnects}"
        )
        assert counts.lost == 0
        # One inversion was seen in one of ~15 runs (2026-11-24), with no loss, refusal or
        # repeat: a queue can accept again between a nacked publish and a later one already on
        # the wire, and the retried one then lands behind it (docs/operations.md, "Losing a
        # node"). More than that is a regression; the known race stays an open item of #14.
        assert counts.inversions <= 1
    print("sender reconnects: " + ", ".join(f"{s.org} {s.reconnects}" for s in senders))
    # The hub sends a nacked publish again in place (hub/retry.py) for far longer than the
    # nacks last after a node loss (~7-9 s measured): no sender is told "not delivered".
    assert not answered, f"answered instead of delivered: {dict(codes)}"
