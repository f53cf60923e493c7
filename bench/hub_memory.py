"""The hub's throughput with the in-process and the Redis delivery memory, round by round.

``python -m bench.hub_memory [--messages N] [--repeats R] [--redis URL]``: ``bench.ab`` rounds
alternating a hub without ``LIAISON_REDIS_URL`` and one with it (keys under a run-unique
prefix, deleted afterwards). Prints a line per round, then the rounds and the medians as JSON.
"""

import argparse
import asyncio
import json
import uuid
from typing import Any

from bench.ab import alternate
from liaison.hub.redis_memory import RedisMemory


async def main(messages: int, repeats: int, url: str) -> dict[str, Any]:
    """Alternate local and Redis rounds on one bench vhost."""
    prefix = f"liaison-bench-{uuid.uuid4().hex[:12]}:"
    redis = f"LIAISON_REDIS_URL={url} LIAISON_REDIS_PREFIX={prefix}"
    try:
        return await alternate(messages, repeats, {"local": "", "redis": redis})
    finally:
        memory = RedisMemory.from_url(url, prefix=prefix, window_seconds=1)
        await memory.forget_all()
        await memory.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    cli = parser.parse_args()
    print(json.dumps(asyncio.run(main(cli.messages, cli.repeats, cli.redis)), indent=1))
