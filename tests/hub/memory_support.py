"""Hubs with a delivery memory; the real Redis (LIAISON_TEST_REDIS_URL), a prefix per test."""

import asyncio
import contextlib
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aio_pika
import pytest

from liaison.directory.index import DirectoryIndex
from liaison.hub.consumer import HubConsumer
from liaison.hub.memory import DeliveryMemory, LocalMemory
from liaison.hub.metrics import HubMetrics
from liaison.hub.redis_memory import RedisMemory
from liaison.hub.router import Router
from tests.hub.conftest import hub_settings, purge_all

REDIS_URL = os.environ.get("LIAISON_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def unique_prefix() -> str:
    """A key prefix no other test, run or engineer uses."""
    return f"liaison-test-{uuid.uuid4().hex[:12]}:"


@pytest.fixture
async def memory_prefix() -> AsyncIterator[str]:
    """A fresh prefix; every key under it is deleted after the test."""
    prefix = unique_prefix()
    yield prefix
    cleaner = RedisMemory.from_url(REDIS_URL, prefix=prefix, window_seconds=1)
    await cleaner.forget_all()
    await cleaner.close()


def shared_memory(prefix: str, window_seconds: float = 600) -> RedisMemory:
    """One hub process's client on the test Redis, under ``prefix``."""
    return RedisMemory.from_url(REDIS_URL, prefix=prefix, window_seconds=window_seconds)


async def start_hub(
    topology: str,
    directory: DirectoryIndex,
    directory_file: Path,
    memory: DeliveryMemory,
    **overrides: Any,
) -> tuple[HubConsumer, "asyncio.Task[None]", HubMetrics]:
    """An in-process hub with its own router and the given memory."""
    settings = hub_settings(topology, directory_file, **overrides)
    router = Router(directory, max_message_bytes=settings.max_message_bytes)
    metrics = HubMetrics()
    consumer = HubConsumer(settings, router, memory, metrics)
    task = asyncio.create_task(consumer.run())
    for _ in range(600):  # up to 30 s: the shared test machine is sometimes very slow
        if consumer.ready:
            break
        await asyncio.sleep(0.05)
    assert consumer.ready, "hub did not start consuming"
    return consumer, task, metrics


@contextlib.asynccontextmanager
async def local_hub(
    admin: aio_pika.abc.AbstractConnection,
    directory: DirectoryIndex,
    directory_file: Path,
    topology: str,
    **overrides: Any,
) -> AsyncIterator[HubConsumer]:
    """An in-process hub with its own delivery memory, consuming every shard, on queues purged
    first; stopped at the end. ``overrides`` change its settings."""
    await purge_all(admin, directory)
    memory = LocalMemory(seconds=600, max_entries=10_000)
    consumer, task, _ = await start_hub(topology, directory, directory_file, memory, **overrides)
    try:
        yield consumer
    finally:
        await consumer.stop()
        await asyncio.wait_for(task, 10)


@pytest.fixture
async def memory_hub(
    admin: aio_pika.abc.AbstractConnection,
    directory: DirectoryIndex,
    directory_file: Path,
    topology: str,
) -> AsyncIterator[HubConsumer]:
    """A hub with an in-process delivery memory, consuming every shard, on clean queues."""
    async with local_hub(admin, directory, directory_file, topology) as consumer:
        yield consumer
