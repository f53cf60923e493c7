"""``python -m liaison.nodes``: run one extra RabbitMQ node in the foreground until Ctrl-C.

Prints its name, AMQP URL, management URL and a ``rabbitmqctl`` line; stopping removes it.
``--cluster N`` starts N nodes joined into one cluster instead (``make cluster``: three).
"""

import argparse
import signal
import sys
import threading

from liaison.nodes.cluster import BrokerCluster
from liaison.nodes.node import LIAISON_PLUGINS, BrokerNode, NodeError


def main(argv: list[str] | None = None) -> int:
    """Start a node, print how to reach it, and stop it on SIGINT or SIGTERM."""
    parser = argparse.ArgumentParser(prog="python -m liaison.nodes", description=__doc__)
    parser.add_argument("--prefix", default="liaison-node", help="node name prefix")
    parser.add_argument(
        "--plugin",
        action="append",
        default=None,
        help="a plugin to enable on this node only (repeatable; default rabbitmq_management)",
    )
    parser.add_argument(
        "--cluster",
        type=int,
        default=None,
        metavar="N",
        help="start N nodes joined into one cluster, with the plugins Liaison needs",
    )
    args = parser.parse_args(argv)
    if args.cluster is not None:
        return run_cluster(args.cluster, args.prefix, tuple(args.plugin or LIAISON_PLUGINS))
    plugins = tuple(args.plugin or ("rabbitmq_management",))
    try:
        node = BrokerNode.start(prefix=args.prefix, plugins=plugins)
    except NodeError as exc:
        print(f"node: {exc}", file=sys.stderr)
        return 1
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    with node:
        print(f"node {node.name} up in {node.started_in:.1f}s")
        print(f"  amqp:       {node.amqp_url()}")
        print(f"  management: {node.management_url} (guest/guest from this machine)")
        print(f"  rabbitmqctl --erlang-cookie {node.cookie} -n {node.name} status")
        print("Ctrl-C stops the node and removes its directory.", flush=True)
        done.wait()
    return 0


def run_cluster(size: int, prefix: str, plugins: tuple[str, ...]) -> int:
    """Start a cluster of ``size`` nodes, print each member's URLs, stop all on a signal."""
    if size < 1:
        print("node: --cluster needs at least one node", file=sys.stderr)
        return 2
    print(f"starting {size} nodes and joining them (about a minute)...", flush=True)
    try:
        cluster = BrokerCluster.start(size=size, prefix=prefix, plugins=plugins)
    except NodeError as exc:
        print(f"node: {exc}", file=sys.stderr)
        return 1
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    with cluster:
        print(f"cluster of {size} formed in {cluster.formed_in:.1f}s")
        for node in cluster.nodes:
            print(f"node {node.name}")
            print(f"  amqp:       {node.amqp_url()}")
            print(f"  management: {node.management_url} (guest/guest from this machine)")
        urls = ",".join(node.amqp_url(vhost="liaison") for node in cluster.nodes)
        print(f"  the hub, on every node: LIAISON_AMQP_URL={urls}")
        print(
            f"  rabbitmqctl --erlang-cookie {cluster.first.cookie} -n {cluster.first.name} "
            "cluster_status"
        )
        print("Ctrl-C stops every node and removes their directories.", flush=True)
        done.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
