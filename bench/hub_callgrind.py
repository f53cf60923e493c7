"""The whole hub's instructions per message under callgrind, with every feature on: steady on a
busy machine, where CPU time per message is not.

``python -m bench.hub_callgrind [--trees DIR,DIR] [--messages 500,3500] [--out DIR]``: for each
source tree (default: this one; others as ``git archive <commit> | tar -x -C DIR`` makes them),
``bench.hub_cpu``'s round (signed messages, signatures required, the Redis memory, records) with
the hub run under ``valgrind --tool=callgrind``, once for each message count. Instructions per
message are the difference of the two runs' totals over the difference of their counts, so the
start-up cancels out. Under valgrind the hub runs ~20 times slower than the broker and Redis, so
its batches (confirms, Redis round trips) are larger than at full speed: the figure is the
Python and C work per message, not the system calls. Results: ``hub_callgrind.json``; the
profiles go with the run's scratch directory.
"""

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import bench.__main__ as bench_main
from bench.__main__ import Run, parse_args
from bench.processes import ROOT, free_port
from bench.workload import sign_messages, write_directory
from liaison.hub.redis_memory import RedisMemory


def _under_callgrind(tree: Path, out: Path) -> None:
    """Start every hub from now on from ``tree`` under callgrind, its profile in ``out``;
    wait for it, and let it stop, as long as valgrind needs."""

    def start(
        url: str,
        directory: Path,
        log_file: Path,
        *,
        shards: str = "all",
        module: str = "liaison.hub",
        env: dict[str, str] | None = None,
    ) -> tuple[subprocess.Popen[bytes], int]:
        port = free_port()
        child = dict(os.environ)
        child.update(
            {
                "LIAISON_AMQP_URL": url,
                "LIAISON_DIRECTORY": str(directory),
                "LIAISON_HTTP_PORT": str(port),
                "LIAISON_HUB_SHARDS": shards,
                "LIAISON_SHUTDOWN_GRACE_SECONDS": "30",
                "PYTHONPATH": str(tree),
            }
        )
        for pair in os.environ.get("LIAISON_BENCH_HUB_ENV", "").split():
            key, _, value = pair.partition("=")
            child[key] = value
        child.update(env or {})
        command = [
            "valgrind",
            "--tool=callgrind",
            f"--callgrind-out-file={out / log_file.stem}.cg",
            sys.executable,
            "-m",
            module,
        ]
        with log_file.open("ab") as log:
            process = subprocess.Popen(  # noqa: S603 - the bench's own command
                command, cwd=tree, env=child, stdout=log, stderr=log
            )
        return process, port

    stop, wait_until = bench_main.stop, bench_main.wait_until

    async def slow_stop(process: Any, grace: float = 10.0) -> None:
        await stop(process, 300.0)

    async def long_wait(*args: Any, **kwargs: Any) -> Any:
        kwargs["limit_seconds"] = 1800.0
        return await wait_until(*args, **kwargs)

    bench_main.start_hub = start  # type: ignore[assignment]
    bench_main.stop = slow_stop  # type: ignore[assignment]
    bench_main.wait_until = long_wait


def _instructions(profile: Path) -> int:
    for line in profile.read_text().splitlines():
        if line.startswith(("summary:", "totals:")):
            return int(line.split()[1])
    raise RuntimeError(f"{profile} holds no instruction total")


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Each tree's runs, in order, on one bench vhost."""
    run = Run(parse_args(["--messages", "100", "--settle-seconds", str(args.settle_seconds)]))
    prefix = f"liaison-bench-{run.run_id}:"
    args.out.mkdir(parents=True, exist_ok=True)
    counts: list[int] = args.messages
    results: dict[str, Any] = {"messages": counts, "trees": {}}
    await run.setup()
    signed = run.scratch / "directory-signed.toml"
    write_directory(run.run_id, signed, signed=True)
    os.environ["LIAISON_BENCH_HUB_ENV"] = (
        f"LIAISON_REDIS_URL={args.redis} LIAISON_REDIS_PREFIX={prefix}"
    )
    try:
        for number, tree in enumerate(args.trees):
            _under_callgrind(tree, run.scratch)
            totals = []
            for n in counts:
                tag = f"{number}-{n}"
                await run.hub(sign_messages(run.messages(n, tag)), ["all"], tag, signed)
                totals.append(_instructions(run.scratch / f"hub-{tag}.cg"))
            per_message = (totals[-1] - totals[0]) / (counts[-1] - counts[0])
            results["trees"][str(tree)] = {
                "instructions": totals,
                "instructions_per_message": round(per_message),
            }
            run.log(f"{tree}: {per_message:,.0f} instructions a message")
    finally:
        os.environ.pop("LIAISON_BENCH_HUB_ENV", None)
        await run.teardown()
        shutil.rmtree(run.scratch, ignore_errors=True)
        memory = RedisMemory.from_url(args.redis, prefix=prefix, window_seconds=1)
        await memory.forget_all()
        await memory.close()
    return results


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments, run, print and write the JSON."""
    parser = argparse.ArgumentParser(prog="python -m bench.hub_callgrind", description=__doc__)
    parser.add_argument(
        "--trees",
        type=lambda v: [Path(p).resolve() for p in v.split(",")],
        default=[ROOT],
        help="source trees, comma-separated (this one)",
    )
    parser.add_argument(
        "--messages",
        type=lambda v: [int(n) for n in v.split(",")],
        default=[500, 3500],
        help="message counts of the two runs (500,3500)",
    )
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--settle-seconds", type=float, default=1.0)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args(argv)
    if len(args.messages) != 2 or args.messages[0] >= args.messages[1]:
        parser.error("--messages takes two counts, the smaller first")
    results = asyncio.run(measure(args))
    path = args.out / "hub_callgrind.json"
    path.write_text(json.dumps(results, indent=1) + "\n")
    print(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
