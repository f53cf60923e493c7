"""``python -m bench.sweep``: what a message costs by recipients, body size and body kind.

    python -m bench.sweep [--rounds R] [--quick] [--out bench/results]

Every point of the sweep (recipients 1, 4, 16, 32 and the whole mission with small text
bodies; text and coordinate bodies up to the size limit at 4 recipients) is moved by the hub
and by RabbitMQ's shovel in turn, in the same run, R rounds each: msg/s, inbox copies/s, and
CPU microseconds per message of the hub process and of the broker node. A cost model is
fitted to the hub's and the broker's CPU (``bench/costmodel.py``) and written with every point
and every round to ``sweep.json``; ``sweep.png`` draws it.
"""

import argparse
import asyncio
import contextlib
import json
import os
import platform
import signal
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiormq
import uvloop

from bench import costmodel, report, sweep_report
from bench.broker import (
    COPY_QUEUE,
    ShovelWatch,
    delete_shovel,
    start_shovel,
)
from bench.processes import CpuMeter, settle, start_hub, stop
from bench.publish import preload_ingress, preload_queue
from bench.sweep_workload import (
    MISSION_WIDE,
    Shape,
    build_messages,
    delivery_keys,
    write_directory,
)
from bench.vhost import BenchVhost
from bench.workload import Message
from liaison.schemas.wire import DEAD_LETTER_QUEUE, DELIVERY_EXCHANGE

#: The points: the recipients sweep with ~1 KB text bodies, then the size sweep at 4 recipients.
POINTS: tuple[Shape, ...] = (
    Shape(1, "text", 1),
    Shape(4, "text", 1),
    Shape(16, "text", 1),
    Shape(32, "text", 1),
    Shape(MISSION_WIDE, "text", 1),
    Shape(4, "text", 16),
    Shape(4, "text", 64),
    Shape(4, "text", 128),
    Shape(4, "coords", 1),
    Shape(4, "coords", 16),
    Shape(4, "coords", 64),
    Shape(4, "coords", 128),
    Shape(4, "coords", 250),
    # Many recipients and a large body at once: what separates c from d (recipients x KB).
    Shape(16, "text", 64),
    Shape(16, "coords", 64),
)
QUICK_POINTS: tuple[Shape, ...] = (Shape(1, "text", 1), Shape(4, "coords", 64))
MOVERS = ("hub", "shovel")
#: The longest a round may take, preloading and settling included.
ROUND_LIMIT_SECONDS = 300.0
#: Bytes the broker writes per point and round, about: messages x body x (recipients + 1 copy).
BYTES_PER_ROUND = 40e6


def messages_for(shape: Shape, recipients: int, limit: int) -> int:
    """Enough messages for a steady rate, within what the broker writes per round."""
    copies = recipients + 1
    by_bytes = BYTES_PER_ROUND / (shape.kb * 1024 * copies)
    return max(40, min(limit, int(by_bytes), int(60_000 / copies)))


class Sweep(BenchVhost):
    """One sweep's vhost, directory and scratch directory."""

    def __init__(self, args: argparse.Namespace) -> None:
        super().__init__("liaison-sweep", write_directory)
        self.args = args

    async def purge(self) -> None:
        for queue in [*self.inboxes, COPY_QUEUE, DEAD_LETTER_QUEUE]:
            await self.counter.purge(queue)

    async def hub(
        self, messages: list[Message], tag: str, env: dict[str, str] | None = None
    ) -> dict[str, Any]:
        """One hub process drains the preloaded ingress; ``env`` adds settings (a feature on)."""
        await self.purge()
        await preload_ingress(self.vhost, messages)
        n = len(messages)
        copies = sum(len(m.inboxes) for m in messages)
        settled = await settle(self.args.settle_seconds)
        log = self.scratch / f"hub-{tag}.log"
        process, _ = start_hub(self.url, self.directory_file, log, env=env)
        meters = [CpuMeter.broker(), CpuMeter([process.pid])]
        try:
            start, end, cpu = await self.drained(
                self.shards,
                n,
                copies,
                meters=meters,
                alive=lambda: process.poll() is None,
                limit_seconds=max(120.0, n / 20),
            )
        finally:
            await stop(process)
        dead = await self.counter.count(DEAD_LETTER_QUEUE)
        if dead:
            raise RuntimeError(f"the hub refused {dead} sweep messages; see {log}")
        await self.purge()
        return _round(n, copies, start, end, broker=cpu[0], mover=cpu[1], settled=settled)

    async def shovel(self, messages: list[Message], tag: str) -> dict[str, Any]:
        """RabbitMQ's shovel moves the same messages, recipients' keys in a CC header."""
        await self.purge()
        src = f"sweep.shovel.{tag}"
        await self.counter.declare(src)
        n = len(messages)
        copies = sum(len(m.inboxes) for m in messages)
        headers = [{"CC": delivery_keys(m)} for m in messages]
        await preload_queue(self.url, src, [m.body for m in messages], headers)
        settled = await settle(self.args.settle_seconds)
        name = f"sweep-{self.run_id}-{tag}"
        broker = CpuMeter.broker()
        await start_shovel(self.mgmt, self.vhost, name, src, dest_exchange=DELIVERY_EXCHANGE)
        watch = ShovelWatch(self.mgmt, self.vhost, name).start()
        try:
            start, end, (cpu,) = await self.drained(
                [src],
                n,
                copies,
                meters=[broker],
                alive=watch.alive,
                limit_seconds=max(120.0, n / 20),
            )
        finally:
            await watch.stop()
            await delete_shovel(self.mgmt, self.vhost, name)
        await self.counter.delete(src)
        await self.purge()
        return _round(n, copies, start, end, broker=cpu, mover=None, settled=settled)

    async def clean_up(self, tag: str) -> None:
        """After a failed round: nothing of it left in any queue the next round counts."""
        for queue in self.shards:
            await self.counter.purge(queue)
        src = f"sweep.shovel.{tag}"
        await delete_shovel(self.mgmt, self.vhost, f"sweep-{self.run_id}-{tag}")
        with contextlib.suppress(aiormq.exceptions.AMQPError):
            await self.counter.delete(src)
        await self.purge()

    async def point(self, shape: Shape, rounds: int) -> dict[str, Any]:
        """Every mover in turn, ``rounds`` times: a slow spell of the machine hits all of them."""
        recipients = 47 if shape.recipients == MISSION_WIDE else int(shape.recipients)
        n = messages_for(shape, recipients, self.args.max_messages)
        movers = self.args.movers.split(",")
        per_mover: dict[str, list[dict[str, Any]]] = {m: [] for m in movers}
        body_bytes = 0
        for r in range(rounds):
            messages = build_messages(
                self.index, shape, n, prefix=f"{shape.label}-{r}-{self.run_id}", seed=11 + r
            )
            body_bytes = round(sum(len(m.body) for m in messages) / n)
            for mover in movers:
                tag = f"{shape.label}-{r}".replace(".", "_")
                try:
                    # Bounded as a whole: a broker call that never answers fails the round.
                    row = await asyncio.wait_for(
                        self.hub(messages, tag) if mover == "hub" else self.shovel(messages, tag),
                        ROUND_LIMIT_SECONDS,
                    )
                except (TimeoutError, RuntimeError) as exc:
                    # A stall of the shared broker fails one round, not the sweep: it is kept,
                    # marked, and left out of the medians and the fit.
                    self.log(f"{shape.label} round {r + 1}/{rounds}: {mover} failed: {exc}")
                    per_mover[mover].append({"failed": str(exc), "messages": n})
                    await asyncio.wait_for(self.clean_up(tag), 120)
                    continue
                per_mover[mover].append(row)
                self.log(
                    f"{shape.label} round {r + 1}/{rounds}: {mover} {row['msg_per_s']:.0f} msg/s, "
                    f"broker {row['broker_cpu_us_per_message']:.0f} us/msg"
                    + (
                        f", hub {row['hub_cpu_us_per_message']:.0f} us/msg"
                        if mover == "hub"
                        else ""
                    )
                )
        return {
            "label": shape.label,
            "recipients": recipients,
            "mission_wide": shape.recipients == MISSION_WIDE,
            "kind": shape.kind,
            "nominal_kb": shape.kb,
            "body_bytes": body_bytes,
            "messages": n,
            **{mover: _summary(rows) for mover, rows in per_mover.items()},
        }

    async def sizing_check(self, model: dict[str, Any], total: int) -> dict[str, Any]:
        """The sizing example's load, mixed as it specifies, through the hub: measured against
        what the model predicts for it."""
        load = costmodel.EXAMPLE_LOAD
        rate = sum(t.rate for t in load)
        parts = []
        for i, t in enumerate(load):
            shape = Shape(MISSION_WIDE if t.recipients == 47 else t.recipients, t.kind, t.kb)
            count = max(1, round(total * t.rate / rate))
            parts.append(build_messages(self.index, shape, count, prefix=f"mix{i}-{self.run_id}"))
        # Interleaved as they would arrive: the big ones spread among the small.
        messages = _interleave(parts)
        row = await self.hub(messages, "sizing-check")
        predicted = model["sizing_example"]
        return {
            "messages": len(messages),
            "mix": [len(p) for p in parts],
            "measured": row,
            "predicted_hub_cpu_us_per_message": predicted["hub_cpu_us_per_message"],
            "predicted_broker_cpu_us_per_message": predicted["broker_cpu_us_per_message"],
            "hub_ratio_measured_to_predicted": round(
                row["hub_cpu_us_per_message"] / predicted["hub_cpu_us_per_message"], 3
            ),
            "broker_ratio_measured_to_predicted": round(
                row["broker_cpu_us_per_message"] / predicted["broker_cpu_us_per_message"], 3
            ),
        }


def _interleave(parts: list[list[Message]]) -> list[Message]:
    """Each part's messages spread evenly over the whole sequence."""
    keyed = [((i + 0.5) / len(part), m) for part in parts for i, m in enumerate(part)]
    return [m for _, m in sorted(keyed, key=lambda pair: pair[0])]


def _round(
    n: int,
    copies: int,
    start: float,
    end: float,
    *,
    broker: float,
    mover: float | None,
    settled: dict[str, Any],
) -> dict[str, Any]:
    if end <= start:
        # The whole queue moved between two polls: no window to time or to charge CPU to.
        raise RuntimeError(f"{n} messages moved too fast to time; raise --max-messages")
    seconds = end - start
    row: dict[str, Any] = {
        "messages": n,
        "inbox_copies": copies,
        "seconds": round(seconds, 3),
        "msg_per_s": round(n / seconds, 1),
        "copies_per_s": round(copies / seconds, 1),
        "broker_cpu_raw_us_per_message": round(broker / n * 1e6, 1),
        "settled_before": settled,
    }
    net_broker(row)
    if mover is not None:
        row["hub_cpu_us_per_message"] = round(mover / n * 1e6, 1)
    return row


def net_broker(row: dict[str, Any]) -> None:
    """The broker's CPU per message less what it spent anyway: the shared broker also serves
    other vhosts, at the rate it was measured at just before the round (``settle``).

    The raw figure grows with the round's length (a slow round collects more of the others'
    work); ``broker_cpu_us_per_message`` is raw less ``background_cores`` x seconds.
    """
    background = float(row["settled_before"].get("broker_cores", 0.0))
    raw = row["broker_cpu_raw_us_per_message"] * row["messages"] / 1e6
    row["broker_background_cores"] = background
    net = max(0.0, raw - background * row["seconds"])
    row["broker_cpu_us_per_message"] = round(net / row["messages"] * 1e6, 1)


def refit(path: Path) -> dict[str, Any]:
    """A sweep's JSON with the broker's background taken out of every round and the model
    fitted again (for JSON written before that correction existed)."""
    results: dict[str, Any] = json.loads(path.read_text())
    for point in results["points"]:
        for mover in MOVERS:
            if mover not in point:
                continue
            for row in point[mover]["rounds"]:
                if "failed" not in row:
                    row.setdefault(
                        "broker_cpu_raw_us_per_message", row["broker_cpu_us_per_message"]
                    )
                    net_broker(row)
            point[mover] = _summary(point[mover]["rounds"])
    results["model"] = costmodel.fit_all(results["points"])
    check = results.get("sizing_check")
    if check:
        row = check["measured"]
        row.setdefault("broker_cpu_raw_us_per_message", row["broker_cpu_us_per_message"])
        net_broker(row)
        predicted = results["model"]["sizing_example"]
        check["predicted_hub_cpu_us_per_message"] = predicted["hub_cpu_us_per_message"]
        check["predicted_broker_cpu_us_per_message"] = predicted["broker_cpu_us_per_message"]
        check["hub_ratio_measured_to_predicted"] = round(
            row["hub_cpu_us_per_message"] / predicted["hub_cpu_us_per_message"], 3
        )
        check["broker_ratio_measured_to_predicted"] = round(
            row["broker_cpu_us_per_message"] / predicted["broker_cpu_us_per_message"], 3
        )
    return results


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def _summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians over the rounds that finished, and every round (failed ones marked)."""
    done = [r for r in rows if "failed" not in r]
    keys = ["msg_per_s", "copies_per_s", "broker_cpu_us_per_message", "hub_cpu_us_per_message"]
    out: dict[str, Any] = {
        k: round(_median([r[k] for r in done]), 1) if done and k in done[0] else None for k in keys
    }
    if out["hub_cpu_us_per_message"] is None:
        del out["hub_cpu_us_per_message"]
    out["rounds"] = rows
    return out


def _dump_tasks() -> None:
    # kill -USR1 <pid>: where every task waits, for a sweep that seems stuck.
    for task in asyncio.all_tasks():
        task.print_stack(file=sys.stderr)


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, _dump_tasks)
    sweep = Sweep(args)
    points = QUICK_POINTS if args.quick else POINTS
    if args.points:
        points = tuple(s for s in POINTS if s.label in args.points.split(","))
    results: dict[str, Any] = {
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "quick": args.quick,
        "rounds": args.rounds,
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "loadavg_before": [round(x, 2) for x in os.getloadavg()],
        },
        "conditions": {
            "queues": "quorum, durable; messages persistent; publisher confirms everywhere",
            "movers": "hub: one python -m liaison.hub process, every rule on; shovel: dynamic "
            "shovel to liaison.delivery, recipients' keys in a CC header; same inbox copies",
            "cpu": "user+system CPU over the timed window: the hub process; the broker node's "
            "Erlang VM (found by its AMQP port) and its children",
            "directory": "48 organisations in one mission; mission-wide = 47 recipients",
        },
    }
    async with sweep.running():
        overview = await sweep.mgmt.request("GET", "/overview")
        results["machine"]["rabbitmq"] = overview.get("rabbitmq_version")
        sweep.log(f"vhost {sweep.vhost}; {len(points)} points x {args.rounds} rounds x 2 movers")
        results["points"] = [await sweep.point(shape, args.rounds) for shape in points]
        results["model"] = costmodel.fit_all(results["points"])
        if not args.quick and not args.points:
            sweep.log("sizing check: the example load through the hub")
            results["sizing_check"] = await sweep.sizing_check(results["model"], total=100)
    results["machine"]["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    results["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    return results


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.sweep", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--quick", action="store_true", help="two points, one round (smoke)")
    parser.add_argument("--rounds", type=int, help="rounds of every mover at every point (2)")
    parser.add_argument("--max-messages", type=int, help="most messages per round (1500)")
    parser.add_argument("--settle-seconds", type=float, help="longest idle wait per round (5)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    parser.add_argument(
        "--points", help="only these points, by label (e.g. 4r-text-1kb,4r-coords-64kb)"
    )
    parser.add_argument("--movers", default=",".join(MOVERS), help="hub,shovel (both)")
    parser.add_argument("--refit", type=Path, help="recompute the model of this sweep.json")
    args = parser.parse_args(argv)
    args.rounds = args.rounds or (1 if args.quick else 2)
    args.max_messages = args.max_messages or (300 if args.quick else 1500)
    args.settle_seconds = args.settle_seconds or (1.0 if args.quick else 5.0)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    results = refit(args.refit) if args.refit else uvloop.run(main_async(args))
    report.publish(
        results,
        args.out,
        "sweep.json",
        sweep_report.table(results),
        sweep_report.sizing_markdown(results),
        chart=sweep_report.chart,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
