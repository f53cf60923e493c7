"""The hub's delivery memory in the real Redis: what it recalls, for how long, at what cost."""

import asyncio
import socket

import pytest
import redis.asyncio

from liaison.common.errors import ConfigError
from liaison.hub.memory import Handled
from liaison.hub.redis_memory import MemoryUnavailable, RedisMemory
from liaison.hub.settings import HubSettings
from tests.hub.memory_support import REDIS_URL, memory_prefix, shared_memory

__all__ = ["memory_prefix"]  # the fixture, imported so pytest finds it here

pytestmark = pytest.mark.redis

HUB_PASSWORD = {"LIAISON_PASSWORD_LIAISON_HUB": "x"}


async def test_remembers_how_a_message_was_handled_and_who_got_it(memory_prefix: str) -> None:
    """remember then recall/received round-trips through Redis; unknown keys are unknown."""
    memory = shared_memory(memory_prefix)
    try:
        assert await memory.recall("mag/d-1") is None
        await memory.remember("mag/d-1", Handled.DELIVERED, ["unmas", "ocha"])
        await memory.remember("liaison/err-1", Handled.REFUSED)
        assert await memory.recall("mag/d-1") is Handled.DELIVERED
        assert await memory.recall("liaison/err-1") is Handled.REFUSED
        assert await memory.received("unmas", "mag/d-1")
        assert await memory.received("ocha", "mag/d-1")
        assert not await memory.received("mag", "mag/d-1")
        assert not await memory.received("unmas", "mag/d-2")
        # A refusal names no recipients: nobody "received" it.
        assert not await memory.received("", "liaison/err-1")
    finally:
        await memory.close()


async def test_another_process_sees_the_record(memory_prefix: str) -> None:
    """What one hub process remembers, a second one (its own client) recalls."""
    first, second = shared_memory(memory_prefix), shared_memory(memory_prefix)
    try:
        await first.remember("mag/d-1", Handled.DELIVERED, ["unmas"])
        assert await second.recall("mag/d-1") is Handled.DELIVERED
        assert await second.received("unmas", "mag/d-1")
    finally:
        await first.close()
        await second.close()


async def test_the_window_is_the_keys_ttl(memory_prefix: str) -> None:
    """Each record expires after the dedupe window, so Redis holds one window of traffic."""
    memory = shared_memory(memory_prefix, window_seconds=90)
    client = redis.asyncio.Redis.from_url(REDIS_URL)
    try:
        await memory.remember("mag/d-1", Handled.DELIVERED, ["unmas"])
        ttl_ms = await client.pttl(memory_prefix + "mag/d-1")
        assert 0 < ttl_ms <= 90_000
    finally:
        await client.aclose()
        await memory.close()


async def test_forged_values_and_recipient_names_are_not_taken_as_received(
    memory_prefix: str,
) -> None:
    """A foreign value under the prefix is not a record; a recipient list cannot be spoofed."""
    memory = shared_memory(memory_prefix)
    client = redis.asyncio.Redis.from_url(REDIS_URL)
    try:
        await client.set(memory_prefix + "mag/d-x", "whatever:unmas")
        assert await memory.recall("mag/d-x") is None
        assert not await memory.received("unmas", "mag/d-x")
        await memory.remember("mag/d-1", Handled.DELIVERED, ["unmas", "ocha"])
        assert not await memory.received("unmas,ocha", "mag/d-1")
        assert not await memory.received("", "mag/d-1")
        assert not await memory.received("x" * 10_000, "mag/d-1")
    finally:
        await client.aclose()
        await memory.close()


async def test_calls_made_together_share_one_round_trip(memory_prefix: str) -> None:
    """Hundreds of in-flight messages' recalls and records go to Redis in a few pipelines."""
    memory = shared_memory(memory_prefix)
    try:
        keys = [f"mag/d-{i}" for i in range(500)]
        await asyncio.gather(*(memory.remember(k, Handled.DELIVERED, ["unmas"]) for k in keys))
        trips = memory.round_trips
        answers = await asyncio.gather(*(memory.recall(k) for k in keys))
        assert answers == [Handled.DELIVERED] * 500
        assert trips <= 2
        assert memory.round_trips - trips <= 2
    finally:
        await memory.close()


async def test_a_record_never_waits_behind_questions(
    memory_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While a round trip of recalls is under way (held here), a record still goes out at
    once: the time from a delivery's confirm to its record is what a crash repeats."""
    memory = shared_memory(memory_prefix)
    held = asyncio.Event()
    ask = memory._ask

    async def held_ask(keys: list[str]) -> list[str | None]:
        await held.wait()
        return await ask(keys)

    monkeypatch.setattr(memory._reads, "_trip", held_ask)
    try:
        question = asyncio.create_task(memory.recall("mag/d-0"))
        await asyncio.sleep(0.05)  # its round trip is under way, held
        await asyncio.wait_for(memory.remember("mag/d-1", Handled.DELIVERED, ["unmas"]), 5)
        assert not question.done()
        held.set()
        assert await question is None
        assert await memory.recall("mag/d-1") is Handled.DELIVERED
    finally:
        held.set()
        await memory.close()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_unreachable_redis_raises_memory_unavailable() -> None:
    """Every call fails with MemoryUnavailable when Redis cannot be reached, none hangs."""
    memory = RedisMemory.from_url(
        f"redis://127.0.0.1:{_closed_port()}/0", window_seconds=60, timeout=0.5
    )
    try:
        with pytest.raises(MemoryUnavailable):
            await memory.recall("mag/d-1")
        with pytest.raises(MemoryUnavailable):
            await memory.remember("mag/d-1", Handled.DELIVERED, ["unmas"])
        with pytest.raises(MemoryUnavailable):
            await memory.received("unmas", "mag/d-1")
    finally:
        await memory.close()


def test_redis_url_setting() -> None:
    """LIAISON_REDIS_URL and its prefix are read once; unset means no shared memory."""
    assert HubSettings.from_env(HUB_PASSWORD).redis_url is None
    settings = HubSettings.from_env(
        {
            **HUB_PASSWORD,
            "LIAISON_REDIS_URL": "redis://:hunter2@cache:6380/2",
            "LIAISON_REDIS_PREFIX": "site-a:",
        }
    )
    assert settings.redis_url == "redis://:hunter2@cache:6380/2"
    assert settings.redis_prefix == "site-a:"
    assert "hunter2" not in repr(settings)


@pytest.mark.parametrize("url", ["http://cache:6379", "cache:6379", "redis://", "amqp://x@y/"])
def test_bad_redis_url_names_the_variable_not_the_password(url: str) -> None:
    """A malformed LIAISON_REDIS_URL is a ConfigError naming it, never repeating a password."""
    with pytest.raises(ConfigError, match="LIAISON_REDIS_URL") as error:
        HubSettings.from_env({**HUB_PASSWORD, "LIAISON_REDIS_URL": url.replace("x@", "x:pw@")})
    assert "pw@" not in str(error.value)
