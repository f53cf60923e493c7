"""What the hub's delivery memory costs per message: in-process vs Redis.

``python -m bench.memory [--messages N] [--in-flight K] [--redis URL]`` replays the memory
calls the hub makes per delivered message (a recall before publishing, a record after the
confirms), K messages in flight at a time as the hub's prefetch allows, against
``LocalMemory`` and ``RedisMemory``, and prints the hub process's CPU µs per message, the wall
time per message, the Redis round trips and the Redis server's own CPU per message. Keys go
under a run-unique prefix and are deleted afterwards.
"""

import argparse
import asyncio
import json
import resource
import time
import uuid
from typing import Any

import redis.asyncio

from liaison.hub.memory import DeliveryMemory, Handled, LocalMemory
from liaison.hub.redis_memory import RedisMemory


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _redis_cpu(url: str) -> float:
    client = redis.asyncio.Redis.from_url(url)
    try:
        info = await client.info("cpu")
    finally:
        await client.aclose()
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


async def _replay(memory: DeliveryMemory, messages: int, in_flight: int, run: str) -> None:
    # Each worker is one prefetch slot: recall, (publish and confirm), remember, next message.
    per_worker = messages // in_flight

    async def worker(slot: int) -> None:
        for i in range(per_worker):
            key = f"bench-{run}/d-{slot}-{i}"
            if await memory.recall(key) is None:
                await memory.remember(key, Handled.DELIVERED, ["unmas", "ocha", "unhcr"])

    await asyncio.gather(*(worker(slot) for slot in range(in_flight)))


async def measure(memory: DeliveryMemory, messages: int, in_flight: int) -> dict[str, float]:
    """CPU and wall time per message of replaying ``messages`` through ``memory``."""
    run = uuid.uuid4().hex[:8]
    cpu, wall = _cpu(), time.perf_counter()
    await _replay(memory, messages, in_flight, run)
    done = (messages // in_flight) * in_flight
    return {
        "messages": done,
        "cpu_us_per_message": round((_cpu() - cpu) / done * 1e6, 1),
        "wall_us_per_message": round((time.perf_counter() - wall) / done * 1e6, 1),
    }


async def main(messages: int, in_flight: int, url: str, rounds: int) -> dict[str, Any]:
    """Alternate in-process and Redis rounds; report each round and the medians."""
    results: dict[str, Any] = {"in_flight": in_flight, "local": [], "redis": []}
    prefix = f"liaison-bench-{uuid.uuid4().hex[:8]}:"
    redis_memory = RedisMemory.from_url(url, prefix=prefix, window_seconds=600)
    try:
        for _ in range(rounds):
            local = LocalMemory(seconds=600, max_entries=200_000)
            results["local"].append(await measure(local, messages, in_flight))
            trips, server_cpu = redis_memory.round_trips, await _redis_cpu(url)
            row = await measure(redis_memory, messages, in_flight)
            server = await _redis_cpu(url) - server_cpu
            row["round_trips"] = redis_memory.round_trips - trips
            row["messages_per_round_trip"] = round(row["messages"] * 2 / row["round_trips"], 1)
            row["redis_server_cpu_us_per_message"] = round(server / row["messages"] * 1e6, 1)
            results["redis"].append(row)
    finally:
        await redis_memory.forget_all()
        await redis_memory.close()

    def median(rows: list[dict[str, float]], name: str) -> float:
        return sorted(r[name] for r in rows)[len(rows) // 2]

    results["added_cpu_us_per_message"] = round(
        median(results["redis"], "cpu_us_per_message")
        - median(results["local"], "cpu_us_per_message"),
        1,
    )
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=50_000)
    parser.add_argument("--in-flight", type=int, default=256, help="the hub's prefetch")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    args = parser.parse_args()
    print(
        json.dumps(
            asyncio.run(main(args.messages, args.in_flight, args.redis, args.rounds)), indent=1
        )
    )
