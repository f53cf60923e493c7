"""``python -m bench.cluster``: make bench's hub round on one node and on a three-node cluster.

    python -m bench.cluster [--messages N] [--repeats R] [--quick] [--out bench/results]

Starts one extra RabbitMQ node and a cluster of ``--size`` extra nodes (``liaison.nodes``: own
names, free ports, removed afterwards; the node on 5672 is never used), sets both up as
``make bench`` sets up its broker (throwaway vhost, run-unique partner users, Liaison's topology
through the management API: on the cluster every quorum queue gets a member on each node), and
runs the same hub round on each in alternating rounds: N messages preloaded into the ingress
by the partners' accounts, drained by one ``python -m liaison.hub`` (given every node's URL on
the cluster), timed until every inbox and the bench's copy counter hold their copies. Reports
msg/s, inbox copies/s, hub CPU µs/message and broker CPU µs/message (summed over the
cluster's nodes) per side, and what replication adds per quorum copy, into
``bench/results/cluster.json``. Needs root (the nodes run as ``rabbitmq``).
"""

import argparse
import asyncio
import os
import shutil
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import uvloop

from bench import report
from bench.__main__ import Run, parse_args
from bench.broker import use_broker
from bench.processes import CpuMeter, broker_pids
from liaison.nodes.cluster import BrokerCluster
from liaison.nodes.node import LIAISON_PLUGINS, BrokerNode, NodeError

RESULTS = Path(__file__).parent / "results"
FIELDS = (
    "msg_per_s",
    "inbox_copies_per_s",
    "mover_cpu_us_per_message",
    "broker_cpu_us_per_message",
)


@dataclass
class Side:
    """One broker under test: its nodes (one, or the cluster's) and the bench run on it."""

    name: str
    nodes: list[BrokerNode]
    run: Run | None = None

    def select(self) -> None:
        """Make this broker the bench's: URLs for the run, every node's CPU as the broker's."""
        first = self.nodes[0]
        use_broker(first.amqp_url(), first.management_url, [n.ports.amqp for n in self.nodes])

    def roll_over_wal(self) -> bool:
        """A fresh quorum WAL on every node, as ``make bench`` does on its broker (``settle``
        only knows the default node's ``rabbitmqctl``); whether every node said ok."""

        def roll(node: BrokerNode) -> bool:
            try:
                return node.ctl("eval", "ra_log_wal:force_roll_over(ra_log_wal).").strip() == "ok"
            except NodeError:
                return False

        with ThreadPoolExecutor(max_workers=len(self.nodes)) as pool:
            return all(pool.map(roll, self.nodes))


async def replication(run: Run) -> dict[str, Any]:
    """Members and leaders of the run's quorum queues, as the management API lists them."""
    queues = await run.mgmt.request("GET", f"/queues/{quote(run.vhost, safe='')}") or []
    quorum = [q for q in queues if q.get("type") == "quorum"]
    members = [len(q.get("members") or []) for q in quorum]
    leaders = Counter(short(str(q.get("leader", "?"))) for q in quorum)
    return {
        "quorum_queues": len(quorum),
        "members_min": min(members, default=0),
        "members_max": max(members, default=0),
        "leaders_by_node": dict(leaders),
    }


def start_brokers(stack: ExitStack, size: int) -> tuple[BrokerNode, BrokerCluster]:
    """The single node and the cluster, booted side by side; both stopped by ``stack``."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        single_future = pool.submit(
            BrokerNode.start, prefix="bench-cl-single", plugins=LIAISON_PLUGINS, timeout=180.0
        )
        cluster_future = pool.submit(BrokerCluster.start, size=size, prefix="bench-cl")
        failures: list[BaseException] = []
        try:
            single = single_future.result()
            stack.callback(single.stop)
        except BaseException as exc:  # keep going: the cluster must be stopped too
            failures.append(exc)
        try:
            cluster = cluster_future.result()
            stack.callback(cluster.stop)
        except BaseException as exc:
            failures.append(exc)
        if failures:
            raise failures[0]
    return single, cluster


def short(node_name: str) -> str:
    """A node's name without ``@host``, as the placement lists leaders."""
    return node_name.split("@")[0]


def _median(rows: list[dict[str, Any]], name: str) -> float:
    values = sorted(float(r[name]) for r in rows)
    return values[(len(values) - 1) // 2]


async def measure(args: argparse.Namespace, sides: list[Side]) -> dict[str, Any]:
    """Set both brokers up, alternate hub rounds between them, tear both down."""
    rows: dict[str, list[dict[str, Any]]] = {s.name: [] for s in sides}
    placement: dict[str, Any] = {}
    try:
        for side in sides:
            side.select()
            side.run = Run(args)
            await side.run.setup()
            if len(side.nodes) > 1:
                first = side.run.vhost
                side.run.hub_url = ",".join(n.amqp_url(vhost=first) for n in side.nodes)
            placement[side.name] = await replication(side.run)
            side.run.log(f"{side.name}: {placement[side.name]}")
        for r in range(args.repeats):
            # Which side goes first alternates too, so neither always follows the other's wake.
            for side in sides if r % 2 == 0 else sides[::-1]:
                assert side.run is not None
                side.select()
                rolled = await asyncio.to_thread(side.roll_over_wal)
                batch = side.run.messages(args.messages, f"{side.name}{r}")
                nodes = {short(n.name): CpuMeter(broker_pids(n.ports.amqp)) for n in side.nodes}
                for meter in nodes.values():
                    meter.mark()
                row = await side.run.hub(batch, ["all"], f"{side.name}{r}")
                # Each node's share of the broker's CPU over the whole round (preloading and
                # settling included: the timed window's meter only sums the nodes).
                spent = {name: meter.read() for name, meter in nodes.items()}
                row["wal_rolled_over_on_every_node"] = rolled
                row["node_cpu_share"] = {
                    name: round(cpu / max(sum(spent.values()), 1e-9), 3)
                    for name, cpu in spent.items()
                }
                row["inbox_copies_per_s"] = round(row["inbox_copies"] / row["seconds"], 1)
                rows[side.name].append(row)
                side.run.log(
                    f"round {r + 1}/{args.repeats} {side.name}: {row['msg_per_s']:.0f} msg/s, "
                    f"hub {row['mover_cpu_us_per_message']} µs, "
                    f"broker {row['broker_cpu_us_per_message']} µs per message"
                )
    finally:
        for side in sides:
            if side.run is not None:
                side.select()
                await side.run.teardown()
                shutil.rmtree(side.run.scratch, ignore_errors=True)
    medians = {name: {f: _median(r, f) for f in FIELDS} for name, r in rows.items()}
    single, cluster = medians["single"], medians["cluster"]
    # Quorum copies the broker writes per message in the timed window: one per inbox copy and
    # one in bench.copies (the shard queue's copy was written while preloading).
    copies = (
        sum(r["inbox_copies"] for r in rows["single"]) / sum(r["messages"] for r in rows["single"])
        + 1
    )
    added = cluster["broker_cpu_us_per_message"] - single["broker_cpu_us_per_message"]
    # Each cluster node's median share, applied to the median broker µs/message: an estimate of
    # what each node spends per message, by the leaders it holds (the shares are whole rounds').
    names = list(rows["cluster"][0]["node_cpu_share"])
    per_node = {
        name: round(
            _median([r["node_cpu_share"] for r in rows["cluster"]], name)
            * cluster["broker_cpu_us_per_message"],
            1,
        )
        for name in names
    }
    return {
        "rounds": {
            name: [{f: r[f] for f in (*FIELDS, "seconds")} for r in v] for name, v in rows.items()
        },
        "rows": rows,
        "median": medians,
        "placement": placement,
        "cluster_over_single": {f: round(cluster[f] / single[f], 3) for f in FIELDS if single[f]},
        "cluster_node_us_per_message_estimate": per_node,
        "replication": {
            "quorum_copies_per_message": round(copies, 2),
            "broker_cpu_us_added_per_message": round(added, 1),
            "broker_cpu_us_added_per_copy": round(added / copies, 1),
            "note": "cluster minus single, broker CPU summed over the nodes; all nodes share "
            "this machine's cores",
        },
    }


def table(results: dict[str, Any]) -> str:
    """The two sides' medians, one line each, and the ratio."""
    lines = [f"{'':10}" + "".join(f"{f:>28}" for f in FIELDS)]
    for name, medians in results["median"].items():
        lines.append(f"{name:10}" + "".join(f"{medians[f]:>28,.1f}" for f in FIELDS))
    ratio = results["cluster_over_single"]
    lines.append(f"{'c/s':10}" + "".join(f"{ratio.get(f, 0):>28.3f}" for f in FIELDS))
    rep = results["replication"]
    lines.append(
        f"replication: +{rep['broker_cpu_us_added_per_message']} broker µs/message, "
        f"+{rep['broker_cpu_us_added_per_copy']} µs per quorum copy "
        f"({rep['quorum_copies_per_message']} copies/message)"
    )
    return "\n".join(lines)


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.cluster", description=__doc__)
    parser.add_argument("--messages", type=int, help="messages per round (10000; quick 200)")
    parser.add_argument("--repeats", type=int, help="rounds per side (3; quick 1)")
    parser.add_argument("--settle-seconds", type=float, help="longest idle wait (20; quick 2)")
    parser.add_argument("--size", type=int, default=3, help="cluster nodes (3)")
    parser.add_argument("--quick", action="store_true", help="the smoke test's tiny run")
    parser.add_argument("--out", type=Path, default=RESULTS)
    cli = parser.parse_args(argv)
    args = parse_args(["--quick"] if cli.quick else [])
    args.messages = cli.messages or (200 if cli.quick else 10_000)
    args.repeats = cli.repeats or (1 if cli.quick else 3)
    args.settle_seconds = cli.settle_seconds or (2.0 if cli.quick else 20.0)
    args.size, args.out = cli.size, cli.out
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if os.geteuid() != 0:
        print("bench.cluster starts extra RabbitMQ nodes: run it as root", file=sys.stderr)
        return 2
    started = datetime.now(UTC)
    loadavg_before = [round(x, 2) for x in os.getloadavg()]
    with ExitStack() as stack:
        began = time.monotonic()
        try:
            single, cluster = start_brokers(stack, args.size)
        except NodeError as exc:
            print(f"could not start the extra nodes: {exc}", file=sys.stderr)
            return 1
        print(f"single node and cluster of {args.size} up in {time.monotonic() - began:.1f}s")
        sides = [Side("single", [single]), Side("cluster", list(cluster.nodes))]
        results = uvloop.run(measure(args, sides))
    results = {
        "messages": args.messages,
        "repeats": args.repeats,
        "cluster_size": args.size,
        "started_at": started.isoformat(timespec="seconds"),
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "loadavg_before": loadavg_before,
            "loadavg_after": [round(x, 2) for x in os.getloadavg()],
            "note": "all nodes, the hub and the bench share this machine with other work",
        },
        **results,
    }
    report.publish(results, args.out, "cluster.json", table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
