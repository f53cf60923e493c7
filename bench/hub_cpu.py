"""The hub's CPU per message with every feature on, and the same before a change, side by side.

``python -m bench.hub_cpu [--messages N] [--repeats R] [--redis URL] [--baseline DIR]
[--delivery MODE,MODE] [--profile DIR]``: ``make bench``'s hub round (N messages preloaded into
the ingress by the partners' accounts, one ``python -m liaison.hub``, timed until every inbox
and the bench's copy counter hold their copies) with everything a production hub does per
message: every message signed by its sender's demo key and verified (the sample's ``signatures =
"required"``), the shared delivery memory in Redis (``LIAISON_REDIS_URL``, a run-unique key
prefix deleted afterwards), and a decision record for the ledger.

``--baseline DIR`` alternates rounds of the hub from another source tree (``git archive`` of the
commit before a change, run through ``bench.hub_source``) with rounds of this one: the A/B of a
change in one run, the same broker, workload and machine load. ``--delivery
confirm,transaction`` alternates the hub's delivery modes (``LIAISON_DELIVERY``) the same way,
all on classic inboxes, ledger and dead-letter queues when transaction is among them.
``--profile DIR`` records each hub with ``py-spy`` (collapsed stacks, ``<tag>.txt``; ``--rate``
samples a second). Prints a line per round, then rounds and medians as JSON
(``bench/results/hub_cpu.json``).
"""

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import bench.__main__ as bench_main
from bench.__main__ import Run, parse_args
from bench.ab import compiled_check
from bench.workload import sign_messages, write_directory
from liaison.hub.redis_memory import RedisMemory

FIELDS = (
    "msg_per_s",
    "mover_cpu_us_per_message",
    "broker_cpu_us_per_message",
    "hub_syscr_per_message",
    "hub_syscw_per_message",
)


def _profiled(out: Path, rate: int, tags: list[str]) -> None:
    """Attach py-spy to every hub ``Run.hub`` starts from now on (tag from ``tags``)."""
    start_hub = bench_main.start_hub

    def start(*args: Any, **kwargs: Any) -> Any:
        process, port = start_hub(*args, **kwargs)
        out.mkdir(parents=True, exist_ok=True)
        subprocess.Popen(  # noqa: S603 - py-spy from the bench's own environment
            [
                str(Path(sys.executable).with_name("py-spy")),
                "record",
                "--pid",
                str(process.pid),
                "--rate",
                str(rate),
                "--format",
                "raw",
                "--nonblocking",
                "--output",
                str(out / f"{tags[-1]}.txt"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        return process, port

    bench_main.start_hub = start  # type: ignore[assignment]


def _proc_counts(pid: int) -> dict[str, int]:
    """A process's read and write system calls (``/proc/<pid>/io``) and its user and kernel
    CPU in clock ticks (``/proc/<pid>/stat``), since it started."""
    counts: dict[str, int] = {}
    try:
        fields = dict(line.split(": ") for line in Path(f"/proc/{pid}/io").read_text().splitlines())
        stat = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return counts
    counts.update({k: int(fields[k]) for k in ("syscr", "syscw") if k in fields})
    counts["utime"], counts["stime"] = int(stat[11]), int(stat[12])
    return counts


def _count_syscalls(counts: dict[int, dict[str, int]]) -> None:
    """Keep each hub's ``_proc_counts`` from just before it is stopped."""
    stop = bench_main.stop

    async def counted(process: Any, grace: float = 10.0) -> None:
        counts[process.pid] = _proc_counts(process.pid)
        await stop(process, grace)

    bench_main.stop = counted  # type: ignore[assignment]


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Alternate baseline (if any) and current rounds on one bench vhost."""
    argv = ["--messages", str(args.messages), "--repeats", str(args.repeats)]
    if args.settle_seconds is not None:
        argv += ["--settle-seconds", str(args.settle_seconds)]
    run = Run(parse_args(argv))
    prefix = f"liaison-bench-{run.run_id}:"
    trees = ["baseline", "current"] if args.baseline else ["current"]
    if args.baseline:
        compiled_check(args.baseline)
    modes = args.delivery.split(",") if args.delivery else []
    # A kind is a tree, or a tree in one delivery mode ("current-transaction").
    kinds = [f"{tree}-{mode}" for tree in trees for mode in modes] if modes else trees
    rows: dict[str, list[dict[str, Any]]] = {kind: [] for kind in kinds}
    tags: list[str] = []
    if args.profile:
        _profiled(args.profile, args.rate, tags)
    syscalls: dict[int, dict[str, int]] = {}
    _count_syscalls(syscalls)
    if "transaction" in modes:
        # Transaction delivery runs only on classic queues; every mode shares them, so the
        # modes differ in nothing else.
        run.queue_type = "classic"
    await run.setup()
    signed_directory = run.scratch / "directory-signed.toml"
    write_directory(run.run_id, signed_directory, signed=True)
    hub_env = f"LIAISON_REDIS_URL={args.redis} LIAISON_REDIS_PREFIX={prefix}"
    try:
        for round_number in range(args.repeats):
            for kind in kinds if round_number % 2 == 0 else kinds[::-1]:
                tree, _, mode = kind.partition("-")
                os.environ["LIAISON_BENCH_HUB_ENV"] = hub_env + (
                    f" LIAISON_DELIVERY={mode}" if mode else ""
                )
                tag = f"{kind}{round_number}"
                tags.append(tag)
                batch = sign_messages(run.messages(args.messages, tag))
                module = "liaison.hub"
                if tree == "baseline":
                    os.environ["LIAISON_BENCH_HUB_SOURCE"] = str(args.baseline)
                    module = "bench.hub_source"
                syscalls.clear()
                row = await run.hub(batch, ["all"], tag, signed_directory, module)
                # Start-up's few dozen calls included: per message, they are noise.
                for name in ("syscr", "syscw"):
                    total = sum(c.get(name, 0) for c in syscalls.values())
                    row[f"hub_{name}_per_message"] = round(total / args.messages, 3)
                user = sum(c.get("utime", 0) for c in syscalls.values())
                system = sum(c.get("stime", 0) for c in syscalls.values())
                row["hub_system_share"] = round(system / max(1, user + system), 3)
                run.log(
                    f"{tag}: {row['msg_per_s']:.0f} msg/s, hub {row['mover_cpu_us_per_message']} "
                    f"µs CPU/message, broker {row['broker_cpu_us_per_message']}, "
                    f"hub reads/writes per message {row['hub_syscr_per_message']}"
                    f"/{row['hub_syscw_per_message']}, in the kernel {row['hub_system_share']}"
                )
                rows[kind].append(row)
    except BaseException:
        run.log(f"failed; the processes' logs are kept in {run.scratch}")
        raise
    else:
        shutil.rmtree(run.scratch, ignore_errors=True)
    finally:
        os.environ.pop("LIAISON_BENCH_HUB_ENV", None)
        await run.teardown()
        memory = RedisMemory.from_url(args.redis, prefix=prefix, window_seconds=1)
        await memory.forget_all()
        await memory.close()
    return {
        "messages": args.messages,
        "features": ["signatures required and verified", "Redis delivery memory", "records"],
        "delivery": modes or "the hub's default (LIAISON_DELIVERY unset)",
        "rounds": {
            k: [{f: r[f] for f in (*FIELDS, "settled_before")} for r in v] for k, v in rows.items()
        },
        "median": {
            k: {f: statistics.median(float(r[f]) for r in v) for f in FIELDS}
            for k, v in rows.items()
        },
    }


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments, run the rounds, print and write the JSON."""
    parser = argparse.ArgumentParser(prog="python -m bench.hub_cpu", description=__doc__)
    parser.add_argument("--messages", type=int, default=12_000)
    parser.add_argument("--repeats", type=int, default=3, help="rounds of each kind (3)")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--settle-seconds", type=float, help="see python -m bench (30)")
    parser.add_argument("--baseline", type=Path, help="source tree of the hub to compare with")
    parser.add_argument(
        "--delivery",
        help="LIAISON_DELIVERY of each kind of round, alternating (e.g. confirm,transaction); "
        "unset: the hub's default",
    )
    parser.add_argument("--profile", type=Path, help="write py-spy's stacks of each hub here")
    parser.add_argument("--rate", type=int, default=200, help="py-spy samples a second (200)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args(argv)
    started = datetime.now(UTC)
    loadavg_before = [round(x, 2) for x in os.getloadavg()]
    results = asyncio.run(measure(args))
    results["machine"] = {
        "loadavg_before": loadavg_before,
        "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        "note": "a shared 2-core machine: other work's CPU lands in every figure",
    }
    results["started_at"] = started.isoformat(timespec="seconds")
    results["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "hub_cpu.json"
    path.write_text(json.dumps(results, indent=1) + "\n")
    print(json.dumps(results, indent=1))
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
