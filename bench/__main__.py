"""``python -m bench``: the hub against RabbitMQ's shovel and two Python peers, one broker.

    python -m bench [--messages N] [--quick] [--out bench/results]

Every mover moves the same N preloaded persistent messages between quorum queues with
publisher confirms; throughput runs from the moment the source first shrinks to the moment the
source is empty and the destination holds everything (queue counts by passive declare, every
10 ms). See ``bench/README.md`` for what each figure means.
"""

import argparse
import asyncio
import os
import platform
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import uvloop

from bench import latency, report
from bench.broker import (
    COPY_QUEUE,
    ShovelWatch,
    delete_shovel,
    start_shovel,
    wait_until,
)
from bench.peers import route
from bench.processes import (
    CpuMeter,
    RssSampler,
    settle,
    start_hub,
    start_peer,
    stop,
    wait_ready,
)
from bench.publish import preload_ingress, preload_queue
from bench.vhost import BenchVhost
from bench.workload import Message, build_messages, write_directory
from liaison.hub.settings import HubSettings
from liaison.schemas.wire import DEAD_LETTER_QUEUE, DELIVERY_EXCHANGE

MB = 1024 * 1024
#: Latency alternates direct and via-hub rounds of ``--latency-seconds / LATENCY_ROUNDS`` each.
LATENCY_ROUNDS = 6
#: The hub's default LIAISON_DEDUPE_MAX_ENTRIES.
DEDUPE_CAP = HubSettings().dedupe_max_entries


class Run(BenchVhost):
    """One bench run's broker objects, workload and scratch directory."""

    def __init__(self, args: argparse.Namespace) -> None:
        super().__init__("liaison-bench", write_directory)
        self.args = args
        #: What the hub is given as LIAISON_AMQP_URL (a cluster's node list, comma-separated).
        self.hub_url = self.url

    def messages(self, count: int, prefix: str, seed: int = 6) -> list[Message]:
        return build_messages(self.index, count, seed=seed, prefix=f"{prefix}-{self.run_id}")

    # -- the peers --------------------------------------------------------------------------

    async def peer(self, kind: str, messages: list[Message]) -> dict[str, Any]:
        """Preload a source queue, start the mover and time the drain into every inbox.

        Every mover delivers each message as the hub does: a copy in each recipient's inbox and
        one in the bench's copy counter. The shovel cannot read envelopes, so its messages carry
        their recipients' delivery keys in a ``CC`` header, which the broker routes on when the
        shovel republishes them to the delivery exchange (under their source routing key, which
        only the copy counter's '#' binding matches).
        """
        await self.purge()
        src = f"bench.{kind}.src"
        await self.counter.declare(src)
        n = len(messages)
        bodies = [m.body for m in messages]
        headers = None
        if kind == "shovel":
            headers = [{"CC": _delivery_keys(m)} for m in messages]
        await preload_queue(self.url, src, bodies, headers)
        assert await self.counter.count(src) == n
        copies = sum(len(m.inboxes) for m in messages)
        settled = await settle(self.args.settle_seconds)
        process = None
        shovel = f"bench-{self.run_id}"
        watch: ShovelWatch | None = None
        commanded = time.monotonic()
        broker_cpu = CpuMeter.broker()
        if kind == "shovel":
            await start_shovel(self.mgmt, self.vhost, shovel, src, dest_exchange=DELIVERY_EXCHANGE)
            watch = ShovelWatch(self.mgmt, self.vhost, shovel).start()
            mover_cpu = None
            alive = watch.alive
        else:
            log = self.scratch / f"{kind}.log"
            process = start_peer(kind, self.url, src, log)
            mover_cpu = CpuMeter([process.pid])
            alive = lambda: process.poll() is None  # noqa: E731 - read in the loop below
        meters = [m for m in (broker_cpu, mover_cpu) if m is not None]
        try:
            start, end, cpu = await self.drained(
                [src], n, copies, meters=meters, alive=alive, limit_seconds=max(60.0, n / 100)
            )
        finally:
            if process is not None:
                await stop(process)
            if watch is not None:
                await watch.stop()
                # The shovel goes before its source queue (see delete_shovel).
                await delete_shovel(self.mgmt, self.vhost, shovel)
        await self.counter.delete(src)
        await self.purge()
        row = _row(n, start, end)
        row["settled_before"] = settled
        row["inbox_copies"] = copies
        row["broker_cpu_us_per_message"] = round(cpu[0] / n * 1e6, 1)
        if kind == "shovel":
            row["seconds_from_start_command"] = round(end - commanded, 3)
        else:
            row["mover_cpu_us_per_message"] = round(cpu[1] / n * 1e6, 1)
        return row

    async def shovel_one_queue(self, bodies: list[bytes]) -> dict[str, Any]:
        """For reference: the shovel moving one copy of each message from a queue to another."""
        src, dst = "bench.shovel1.src", "bench.shovel1.dst"
        for queue in (src, dst):
            await self.counter.declare(queue)
        await preload_queue(self.url, src, bodies)
        n = len(bodies)
        settled = await settle(self.args.settle_seconds)
        broker_cpu = CpuMeter.broker()
        shovel = f"bench1-{self.run_id}"
        await start_shovel(self.mgmt, self.vhost, shovel, src, dest_queue=dst)
        watch = ShovelWatch(self.mgmt, self.vhost, shovel).start()
        try:
            start, end = await wait_until(
                self.counter,
                source=[src],
                source_total=n,
                dest=[dst],
                dest_total=n,
                limit_seconds=max(60.0, n / 100),
                on_start=broker_cpu.mark,
                alive=watch.alive,
            )
            cpu = broker_cpu.read()
        finally:
            await watch.stop()
            await delete_shovel(self.mgmt, self.vhost, shovel)
        for queue in (src, dst):
            await self.counter.delete(queue)
        row = _row(n, start, end)
        row["settled_before"] = settled
        row["broker_cpu_us_per_message"] = round(cpu / n * 1e6, 1)
        return row

    # -- the hub ----------------------------------------------------------------------------

    async def hub(
        self,
        messages: list[Message],
        shard_sets: list[str],
        tag: str,
        directory: Path | None = None,
        module: str = "liaison.hub",
    ) -> dict[str, Any]:
        """Preload the ingress as partners, then start the hub process(es) and time the drain.

        ``directory``: the hub's directory file instead of the run's (same accounts); ``module``:
        what runs as the hub (a bench wrapper of ``liaison.hub``)."""
        await self.purge()
        await preload_ingress(self.vhost, messages)
        n = len(messages)
        per_shard = [await self.counter.count(q) for q in self.shards]
        assert sum(per_shard) == n, per_shard
        settled = await settle(self.args.settle_seconds)
        log = self.scratch / f"hub-{tag}.log"
        log_before = log.stat().st_size if log.exists() else 0
        directory = directory or self.directory_file
        processes = [
            start_hub(self.hub_url, directory, log, shards=s, module=module) for s in shard_sets
        ]
        samplers = [RssSampler(p.pid).start() for p, _ in processes]
        meters = [CpuMeter.broker(), CpuMeter([p.pid for p, _ in processes])]
        try:
            start, end, cpu = await self.drained(
                self.shards,
                n,
                sum(len(m.inboxes) for m in messages),
                meters=meters,
                alive=lambda: all(p.poll() is None for p, _ in processes),
                limit_seconds=max(60.0, n / 100),
            )
            for sampler in samplers:
                sampler.sample()
        finally:
            for sampler in samplers:
                await sampler.stop()
            for process, _ in processes:
                await stop(process)
        dead = await self.counter.count(DEAD_LETTER_QUEUE)
        if dead:
            raise RuntimeError(f"the hub refused {dead} bench messages; see {log}")
        row = _row(n, start, end)
        row["settled_before"] = settled
        row["broker_cpu_us_per_message"] = round(cpu[0] / n * 1e6, 1)
        row["mover_cpu_us_per_message"] = round(cpu[1] / n * 1e6, 1)
        row["processes"] = len(processes)
        row["shards"] = shard_sets
        row["messages_per_shard"] = per_shard
        row["inbox_copies"] = sum(len(m.inboxes) for m in messages)
        row["peak_rss_mb"] = [round(s.peak / MB, 1) for s in samplers]
        row["log_bytes_per_message"] = round((log.stat().st_size - log_before) / n, 1)
        await self.purge()
        return row

    async def latency(self) -> dict[str, Any]:
        args = self.args
        rounds = 1 if args.quick else LATENCY_ROUNDS
        count = int(args.rate * args.latency_seconds / rounds)
        samples: dict[str, list[float]] = {"direct": [], "hub": []}
        rates: dict[str, list[float]] = {"direct": [], "hub": []}
        per_round: list[dict[str, float]] = []
        await self.purge()
        process, port = start_hub(self.url, self.directory_file, self.scratch / "hub-latency.log")
        try:
            await wait_ready(port, process)
            settled = await settle(self.args.settle_seconds)
            for r in range(rounds):
                for path in ("direct", "hub"):
                    self.log(
                        f"latency round {r + 1}/{rounds}: {path}, "
                        f"{args.rate:.0f} msg/s for {count / args.rate:.1f} s"
                    )
                    got, rate = await latency.measure(
                        self.vhost,
                        self.messages(count, f"lat-{path}{r}", seed=7 + r),
                        self.inboxes,
                        rate=args.rate,
                        via_hub=path == "hub",
                    )
                    samples[path] += got
                    rates[path].append(rate)
                    if path == "direct":
                        per_round.append({})
                    per_round[-1][f"{path}_p99_ms"] = round(latency.percentile(got, 0.99), 3)
                    per_round[-1][f"{path}_max_ms"] = round(max(got), 3)
                    await self.purge()
        finally:
            await stop(process)
        direct = latency.summary(samples["direct"], rates["direct"], args.rate)
        via_hub = latency.summary(samples["hub"], rates["hub"], args.rate)
        return {
            "rate": args.rate,
            "seconds": args.latency_seconds,
            "rounds": rounds,
            "warmup_seconds_per_round": latency.WARMUP_SECONDS,
            "settled_before": settled,
            "direct": direct,
            "hub": via_hub,
            "hub_added_p50_ms": round(via_hub["p50_ms"] - direct["p50_ms"], 3),
            "hub_added_p99_ms": round(via_hub["p99_ms"] - direct["p99_ms"], 3),
            # A stall of the shared machine or broker lands in one round: this shows where.
            "per_round": per_round,
        }

    async def rss(self) -> dict[str, Any]:
        """One hub process kept running over ``--rss-messages``, fed in blocks.

        The hub's dedupe window remembers up to 200,000 deliveries (an hour) by design, so RSS
        rises until the window is full; growth after that point is what would be a leak.
        """
        args = self.args
        block = args.rss_block
        blocks = max(1, args.rss_messages // block)
        await self.purge()
        log = self.scratch / "hub-rss.log"
        process, port = start_hub(self.url, self.directory_file, log)
        sampler = RssSampler(process.pid).start()
        after: list[float] = []
        rates: list[float] = []
        peak_100k = 0
        try:
            await wait_ready(port, process)
            sampler.sample()
            idle = sampler.last
            for b in range(blocks):
                messages = self.messages(block, f"rss{b}", seed=100 + b)
                expected = sum(len(m.inboxes) for m in messages)
                publish = asyncio.create_task(preload_ingress(self.vhost, messages))
                start = time.monotonic()
                await wait_until(
                    self.counter,
                    source=self.shards,
                    source_total=block + 1,
                    dest=[COPY_QUEUE],
                    dest_total=block,
                    extra=(self.inboxes, expected),
                    limit_seconds=max(120.0, block / 50),
                    interval=0.05,
                )
                await publish
                rates.append(round(block / (time.monotonic() - start), 1))
                sampler.sample()
                if (b + 1) * block <= 100_000 or not peak_100k:
                    peak_100k = sampler.peak
                after.append(round(sampler.last / MB, 1))
                self.log(f"rss: block {b + 1}/{blocks}: {after[-1]} MB")
                await self.purge()
        finally:
            await sampler.stop()
            await stop(process)
        full = next((i for i in range(blocks) if (i + 1) * block >= DEDUPE_CAP), None)
        return {
            "messages": blocks * block,
            "block": block,
            "idle_mb": round(idle / MB, 1),
            "after_block_mb": after,
            "peak_mb_first_100k": round(peak_100k / MB, 1),
            "peak_mb": round(sampler.peak / MB, 1),
            "growth_mb": round(after[-1] - after[0], 1),
            "dedupe_window_entries": DEDUPE_CAP,
            "growth_after_dedupe_full_mb": (
                None if full is None or full == blocks - 1 else round(after[-1] - after[full], 1)
            ),
            "block_msg_per_s_while_publishing": rates,
        }


def _delivery_keys(message: Message) -> list[str]:
    key, headers = route(message.envelope.recipients, message.envelope.precedence)
    return [key, *headers.get("BCC", [])]


def _median_row(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The median round by throughput, with every round's figure beside it."""
    ordered = sorted(rows, key=lambda row: row["msg_per_s"])
    median = dict(ordered[(len(ordered) - 1) // 2])
    median["rounds_msg_per_s"] = [row["msg_per_s"] for row in rows]
    return median


def _row(n: int, start: float, end: float) -> dict[str, Any]:
    seconds = max(end - start, 1e-6)
    return {"messages": n, "seconds": round(seconds, 3), "msg_per_s": round(n / seconds, 1)}


def _versions() -> dict[str, str]:
    out = {}
    for name in ("aio-pika", "aiormq", "pamqp", "faststream", "pydantic", "msgspec", "uvloop"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "absent"
    return out


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    run = Run(args)
    started = datetime.now(UTC)
    results: dict[str, Any] = {
        "messages": args.messages,
        "repeats": args.repeats,
        "quick": args.quick,
        "started_at": started.isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "loadavg_before": [round(x, 2) for x in os.getloadavg()],
            "packages": _versions(),
        },
        "conditions": {
            "queues": "quorum, durable; messages persistent; publisher confirms everywhere",
            "measure": "source first shrinks -> source empty and destination complete "
            "(passive-declare counts every 10 ms)",
            "delivery": "every mover puts a copy of each message in each recipient's inbox and "
            "one in the bench's copy counter (bench.copies, bound '#'): 1 publish per message "
            "to the delivery exchange, recipients in BCC (peers, hub) or CC (shovel) headers",
            "peers": "own processes, asyncio loop; prefetch 256",
            "hub": "python -m liaison.hub (uvloop), every rule on, JSON log lines to a file, "
            "same delivery",
        },
    }
    async with run.running():
        overview = await run.mgmt.request("GET", "/overview")
        results["machine"]["rabbitmq"] = overview.get("rabbitmq_version")
        run.log(f"vhost {run.vhost}; building {args.messages} messages")
        messages = run.messages(args.messages, "tp")
        bodies = [m.body for m in messages]
        results["workload"] = {
            "types": len({m.envelope.body.__struct_config__.tag for m in messages}),
            "mean_body_bytes": round(sum(map(len, bodies)) / len(bodies), 1),
            "min_body_bytes": min(map(len, bodies)),
            "max_body_bytes": max(map(len, bodies)),
            "mean_recipients": round(sum(len(m.inboxes) for m in messages) / len(messages), 2),
            "senders": len({m.sender for m in messages}),
        }
        movers: dict[str, Callable[[], Awaitable[dict[str, Any]]]] = {
            "shovel_one_queue": lambda: run.shovel_one_queue(bodies),
            "shovel": lambda: run.peer("shovel", messages),
            "plain": lambda: run.peer("plain", messages),
            "faststream": lambda: run.peer("faststream", messages),
            "hub": lambda: run.hub(messages, ["all"], "x1"),
            "hub_x2": lambda: run.hub(messages, ["0,1", "2,3"], "x2"),
        }
        # Rounds of every mover in turn, so a slow spell of the shared machine falls on all of
        # them rather than on one; each mover's figure is its median round.
        rows: dict[str, list[dict[str, Any]]] = {kind: [] for kind in movers}
        for r in range(args.repeats):
            for kind, move in movers.items():
                rows[kind].append(await move())
                run.log(
                    f"throughput round {r + 1}/{args.repeats}: {report.LABELS[kind]}: "
                    f"{rows[kind][-1]['msg_per_s']:.0f} msg/s"
                )
        tp = {kind: _median_row(kind_rows) for kind, kind_rows in rows.items()}
        results["throughput"] = tp
        results["ratios"] = {
            f"hub/{peer}": round(tp["hub"]["msg_per_s"] / tp[peer]["msg_per_s"], 3)
            for peer in ("shovel", "faststream", "plain", "shovel_one_queue")
        }
        results["latency"] = await run.latency()
        run.log(f"rss: {args.rss_messages} messages in blocks of {args.rss_block}")
        results["rss"] = await run.rss()
    results["machine"]["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    results["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    results["targets"] = report.targets(results)
    return results


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, help="messages per throughput run (20000)")
    parser.add_argument("--quick", action="store_true", help="a smoke run: few messages, short")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    parser.add_argument("--rate", type=float, default=300.0, help="offered load for latency")
    parser.add_argument("--latency-seconds", type=float, help="latency run length (15)")
    parser.add_argument("--rss-messages", type=int, help="messages for the RSS run (250000)")
    parser.add_argument(
        "--repeats", type=int, help="throughput rounds of every mover; median reported (3)"
    )
    parser.add_argument(
        "--settle-seconds",
        type=float,
        help="longest wait for an idle broker before each measurement (30)",
    )
    parser.add_argument("--rss-block", type=int, help="RSS sampled after each block (25000)")
    args = parser.parse_args(argv)
    quick = args.quick
    args.messages = args.messages or (200 if quick else 20_000)
    args.latency_seconds = args.latency_seconds or (2.0 if quick else 15.0)
    args.settle_seconds = args.settle_seconds or (2.0 if quick else 30.0)
    args.repeats = args.repeats or (1 if quick else 3)
    args.rss_block = args.rss_block or (args.messages if quick else 25_000)
    args.rss_messages = args.rss_messages or (2 * args.rss_block if quick else 250_000)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    results = uvloop.run(main_async(args))
    report.publish(results, args.out, "bench.json", report.table(results), chart=report.chart)
    return 0


if __name__ == "__main__":
    sys.exit(main())
