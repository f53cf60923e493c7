"""A RabbitMQ cluster of extra nodes on this machine, beside the broker on 5672.

    with BrokerCluster.start(size=3) as cluster:
        urls = cluster.amqp_urls()

Each member is a :class:`BrokerNode` (its own name, ports and directory) sharing one Erlang
cookie. The nodes boot together, then every node after the first is joined to the first with
``stop_app``, ``join_cluster``, ``start_app`` (the sequence an operator types on separate
machines), and the cluster counts as formed once ``cluster_status`` on the first node lists
every member as running. ``stop`` ends every member and removes its directory, also when
forming failed half way.
"""

import json
import secrets
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from types import TracebackType
from typing import Self

from liaison.nodes.node import LIAISON_PLUGINS, BrokerNode, NodeError


@dataclass(kw_only=True)
class BrokerCluster:
    """Running cluster members (the first is the one the others joined)."""

    nodes: list[BrokerNode] = field(default_factory=list)
    #: Seconds from the first boot until every member was listed as running.
    formed_in: float = 0.0

    @classmethod
    def start(
        cls,
        *,
        size: int = 3,
        prefix: str = "liaison-cluster",
        plugins: Sequence[str] = LIAISON_PLUGINS,
        timeout: float = 180.0,
    ) -> "BrokerCluster":
        """Boot ``size`` nodes, join them, wait until all run; on failure nothing is left."""
        if size < 1:
            raise ValueError("a cluster needs at least one node")
        cookie = secrets.token_hex(16)
        cluster = cls()
        began = time.monotonic()
        try:
            # Booting is mostly waiting on Erlang; the nodes boot side by side.
            with ThreadPoolExecutor(max_workers=size) as pool:
                futures = [
                    pool.submit(
                        BrokerNode.start,
                        prefix=f"{prefix}-{i + 1}",
                        plugins=plugins,
                        cookie=cookie,
                        timeout=timeout,
                    )
                    for i in range(size)
                ]
                errors: list[BaseException] = []
                for future in futures:
                    try:
                        cluster.nodes.append(future.result())
                    except BaseException as exc:  # keep collecting: the others must stop too
                        errors.append(exc)
                if errors:
                    raise errors[0]
            first = cluster.nodes[0]
            for node in cluster.nodes[1:]:
                node.ctl("stop_app")
                node.ctl("join_cluster", first.name)
                node.ctl("start_app")
            cluster.wait_running(timeout=timeout)
        except BaseException:
            cluster.stop()
            raise
        cluster.formed_in = time.monotonic() - began
        return cluster

    # --- addresses ---------------------------------------------------------------------------

    @property
    def first(self) -> BrokerNode:
        """The node the others joined."""
        return self.nodes[0]

    def amqp_urls(
        self,
        user: str = "guest",
        password: str = "guest",  # noqa: S107 - RabbitMQ's loopback-only default account
        vhost: str = "/",
    ) -> list[str]:
        """Every member's AMQP URL, first node first."""
        return [node.amqp_url(user, password, vhost) for node in self.nodes]

    def node_named(self, name: str) -> BrokerNode:
        """The member called ``name`` (as the management API and ``cluster_status`` write it)."""
        for node in self.nodes:
            if node.name == name:
                return node
        raise KeyError(name)

    # --- state -------------------------------------------------------------------------------

    def running_nodes(self, via: BrokerNode | None = None) -> set[str]:
        """The member names ``cluster_status`` (asked of ``via``, default any live member) lists
        as running."""
        asked = [via] if via is not None else [n for n in self.nodes if n.alive]
        for node in asked:
            try:
                status = json.loads(node.ctl("cluster_status", "--formatter", "json"))
            except (NodeError, ValueError):
                continue
            return set(status.get("running_nodes", []))
        return set()

    def wait_running(self, timeout: float = 120.0, names: Sequence[str] | None = None) -> None:
        """Wait until ``names`` (default: every member) are listed as running."""
        wanted = set(names if names is not None else (n.name for n in self.nodes))
        deadline = time.monotonic() + timeout
        while not wanted <= (running := self.running_nodes()):
            if time.monotonic() > deadline:
                raise NodeError(f"cluster not formed in {timeout:.0f}s: running {sorted(running)}")
            time.sleep(0.5)

    # --- lifecycle ---------------------------------------------------------------------------

    def stop(self) -> None:
        """End every member and remove their data."""
        # Side by side (each waits on its own SIGTERM); every one is tried even if another fails.
        with ThreadPoolExecutor(max_workers=max(1, len(self.nodes))) as pool:
            futures = [pool.submit(node.stop) for node in self.nodes]
        errors = [exc for f in futures if (exc := f.exception()) is not None]
        if errors:
            raise errors[0]

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
