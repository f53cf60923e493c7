"""``python -m liaison.nodes``: run one extra RabbitMQ node in the foreground until Ctrl-C.

Prints its name, AMQP URL, management URL and a ``rabbitmqctl`` line; stopping removes it.
"""

import argparse
import signal
import sys
import threading

from liaison.nodes.node import BrokerNode, NodeError


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
    args = parser.parse_args(argv)
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


if __name__ == "__main__":
    sys.exit(main())
