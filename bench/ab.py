"""Hub rounds that alternate variants of the hub's environment on one bench vhost.

The same hub run as ``make bench`` (preloaded ingress, one ``python -m liaison.hub``, timed until
every inbox and the bench's copy counter hold their copies), one round per variant in turn, so
every variant sees the same machine load. Used by ``bench.hub_delivery`` and ``bench.hub_memory``.
``compiled_check``: a baseline source tree (``--baseline DIR`` of ``bench.sweep`` and
``bench.hub_cpu``) gets this tree's compiled extensions where their source is the same.
"""

import os
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path
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


#: The hub's C extensions, by source: a baseline tree needs each built to be measured fairly.
COMPILED = ("_geo", "_buffers")


def compiled_check(tree: Path) -> None:
    """Give the baseline tree this tree's compiled extensions (the coordinates check, the body
    buffers) where their C source is the same (a ``git archive`` holds no build products, and
    without them the baseline hub would decode coordinates with the contract's decoder alone,
    or copy each large body once more); refuse when one differs and the tree has none of its
    own. A tree from before an extension has no source for it."""
    here = Path(__file__).resolve().parent.parent / "services" / "hub"
    there = tree / "services" / "hub"
    for name in COMPILED:
        if list(there.glob(f"{name}*.so")) or not (there / f"{name}.c").exists():
            continue
        if (there / f"{name}.c").read_bytes() != (here / f"{name}.c").read_bytes():
            sys.exit(f"{there}: no compiled {name}, and its {name}.c differs: build it")
        for built in here.glob(f"{name}*.so"):
            (there / built.name).write_bytes(built.read_bytes())
