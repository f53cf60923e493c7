"""The hub's throughput and CPU per message in confirm and in transaction delivery mode.

``python -m bench.hub_delivery [--messages N] [--repeats R]``: the same hub run as ``make bench``
(preloaded ingress, one ``python -m liaison.hub``, timed until every inbox and the bench's copy
counter hold their copies), alternating ``LIAISON_DELIVERY=confirm`` and ``=transaction`` round by
round, so both see the same machine load. Prints a line per round, then the rounds and the
medians as JSON.
"""

import argparse
import asyncio
import json
import os
import shutil
from typing import Any

from bench.__main__ import Run, parse_args

MODES = ("confirm", "transaction")


async def main(messages: int, repeats: int) -> dict[str, Any]:
    """Alternate confirm and transaction rounds on one bench vhost."""
    args = parse_args(["--messages", str(messages), "--repeats", str(repeats)])
    run = Run(args)
    rows: dict[str, list[dict[str, Any]]] = {mode: [] for mode in MODES}
    await run.setup()
    try:
        for round_number in range(repeats):
            for mode in MODES:
                batch = run.messages(messages, f"{mode}{round_number}")
                os.environ["LIAISON_BENCH_HUB_ENV"] = f"LIAISON_DELIVERY={mode}"
                row = await run.hub(batch, ["all"], f"{mode}{round_number}")
                run.log(f"{mode}: {row['msg_per_s']} msg/s, {row['mover_cpu_us_per_message']} µs")
                rows[mode].append(row)
    finally:
        os.environ.pop("LIAISON_BENCH_HUB_ENV", None)
        await run.teardown()
        shutil.rmtree(run.scratch, ignore_errors=True)

    def median(mode: str, name: str) -> float:
        values = sorted(float(r[name]) for r in rows[mode])
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
    cli = parser.parse_args()
    print(json.dumps(asyncio.run(main(cli.messages, cli.repeats)), indent=1))
