"""The hub's throughput and CPU per message in confirm and in transaction delivery mode.

``python -m bench.hub_delivery [--messages N] [--repeats R]``: ``bench.ab`` rounds alternating
``LIAISON_DELIVERY=confirm`` and ``=transaction``, both on classic inboxes, ledger and
dead-letter queues (``LIAISON_QUEUE_TYPE=classic``: transaction delivery runs on no other).
Prints a line per round, then the rounds and the medians as JSON.
"""

import argparse
import asyncio
import json
from typing import Any

from bench.ab import alternate

MODES = ("confirm", "transaction")


async def main(messages: int, repeats: int) -> dict[str, Any]:
    """Alternate confirm and transaction rounds on one bench vhost with classic queues."""
    variants = {mode: f"LIAISON_DELIVERY={mode}" for mode in MODES}
    return await alternate(messages, repeats, variants, queue_type="classic")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=3)
    cli = parser.parse_args()
    print(json.dumps(asyncio.run(main(cli.messages, cli.repeats)), indent=1))
