"""Redis for hub tests: the real server (LIAISON_TEST_REDIS_URL), a key prefix per test."""

import os
import uuid
from collections.abc import AsyncIterator

import pytest

from liaison.hub.redis_memory import RedisMemory

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
