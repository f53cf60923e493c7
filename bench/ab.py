"""Hub rounds that alternate variants of the hub's environment on one bench vhost.

The same hub run as ``make bench`` (preloaded ingress, one ``python -m liaison.hub``, timed until
every inbox and the bench's copy counter hold their copies), one round per variant in turn, so
every variant sees the same machine load. Used by ``bench.hub_delivery`` and ``bench.hub_memory``.
"""

import os
import shutil
from collections.abc import Mapping
from typing import Any

from bench.__main__ import Run, parse_args
from liaison.common.topology import QueueType

FIELDS = ("msg_per_s", "mover_cpu_us_per_message", "broker_cpu_us_per_message")


async def alternate(
    messages: int, repeats: int, variants: Mapping[str, str], queue_type: QueueType = "quorum"
) -> dict[str, Any]:
    """Run ``repeats`` rounds of every variant (name → extra hub environment), interleaved, on
    one vhost whose inboxes, ledger and dead-letter queues are of ``queue_type``."""
    args = parse_args(["--messages", str(messages), "--repeats", str(repeats)])
    run = Run(args)
    run.queue_type = queue_type
    rows: dict[str, list[dict[str, Any]]] = {name: [] for name in variants}
    await run.setup()
    try:
        for round_number in range(repeats):
            for name, extra in variants.items():
                batch = run.messages(messages, f"{name}{round_number}")
                os.environ["LIAISON_BENCH_HUB_ENV"] = extra
                row = await run.hub(batch, ["all"], f"{name}{round_number}")
                run.log(f"{name}: {row['msg_per_s']} msg/s, {row['mover_cpu_us_per_message']} µs")
                rows[name].append(row)
    finally:
        os.environ.pop("LIAISON_BENCH_HUB_ENV", None)
        await run.teardown()
        shutil.rmtree(run.scratch, ignore_errors=True)

    def median(name: str, field: str) -> float:
        values = sorted(float(r[field]) for r in rows[name])
        return values[len(values) // 2]

    return {
        "messages": messages,
        "rounds": {k: [{f: r[f] for f in FIELDS} for r in v] for k, v in rows.items()},
        "median": {k: {f: median(k, f) for f in FIELDS} for k in rows},
    }
