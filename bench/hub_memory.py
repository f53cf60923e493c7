"""The hub's throughput with the in-process and the Redis delivery memory, round by round.

``python -m bench.hub_memory [--messages N] [--repeats R] [--redis URL]``: the same hub run as
``make bench`` (preloaded ingress, one ``python -m liaison.hub``, timed until every inbox and
the bench's copy counter hold their copies), alternating a hub without ``LIAISON_REDIS_URL``
and one with it (keys under a run-unique prefix, deleted afterwards). Prints a line per round,
then the rounds and the medians as JSON.
"""

import argparse
import asyncio
import json
import os
import shutil
from typing import Any

from bench.__main__ import Run, parse_args
from liaison.hub.redis_memory import RedisMemory


async def main(messages: int, repeats: int, url: str) -> dict[str, Any]:
    """Alternate local and Redis rounds on one bench vhost."""
    args = parse_args(["--messages", str(messages), "--repeats", str(repeats)])
    run = Run(args)
    prefix = f"liaison-bench-{run.run_id}:"
    rows: dict[str, list[dict[str, Any]]] = {"local": [], "redis": []}
    await run.setup()
    try:
        for round_number in range(repeats):
            for kind in ("local", "redis"):
                batch = run.messages(messages, f"{kind}{round_number}")
                extra = f"LIAISON_REDIS_URL={url} LIAISON_REDIS_PREFIX={prefix}"
                os.environ["LIAISON_BENCH_HUB_ENV"] = extra if kind == "redis" else ""
                row = await run.hub(batch, ["all"], f"{kind}{round_number}")
                run.log(f"{kind}: {row['msg_per_s']} msg/s, {row['mover_cpu_us_per_message']} µs")
                rows[kind].append(row)
    finally:
        os.environ.pop("LIAISON_BENCH_HUB_ENV", None)
        await run.teardown()
        shutil.rmtree(run.scratch, ignore_errors=True)
        memory = RedisMemory.from_url(url, prefix=prefix, window_seconds=1)
        await memory.forget_all()
        await memory.close()

    def median(kind: str, name: str) -> float:
        values = sorted(float(r[name]) for r in rows[kind])
        return values[len(values) // 2]

    fields = ("msg_per_s", "mover_cpu_us_per_message", "broker_cpu_us_per_message")
    return {
        "messages": messages,
        "rounds": {k: [{f: r[f] for f in fields} for r in v] for k, v in rows.items()},
        "median": {k: {f: median(k, f) for f in fields} for k in rows},
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    cli = parser.parse_args()
    print(json.dumps(asyncio.run(main(cli.messages, cli.repeats, cli.redis)), indent=1))
