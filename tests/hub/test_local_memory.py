"""The hub's in-process delivery memory: a window bounded in entries and in time, with each
message's recipients, and nothing kept of what left the window."""

from liaison.hub.memory import Handled, LocalMemory


class Clock:
    """A settable clock (seconds)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_the_oldest_entries_leave_once_the_window_is_full() -> None:
    """At max_entries the oldest key is forgotten: not recalled, its recipients not received,
    and the table never holds more than the window."""
    memory = LocalMemory(seconds=60, max_entries=3)
    for n in range(5):
        await memory.remember(f"m{n}", Handled.DELIVERED, [f"org:{n}", "org:all"])
        assert len(memory) <= 3
    assert [await memory.recall(f"m{n}") for n in range(5)] == [
        None,
        None,
        Handled.DELIVERED,
        Handled.DELIVERED,
        Handled.DELIVERED,
    ]
    assert not await memory.received("org:all", "m1")
    assert await memory.received("org:all", "m2")
    assert await memory.received("org:4", "m4")
    assert not await memory.received("org:3", "m4")


async def test_entries_expire_after_the_window_and_a_refresh_renews_one() -> None:
    """A key older than ``seconds`` is gone (and evicted by the next remember); remembering a
    key again makes it the newest, refusals carry no recipients."""
    clock = Clock()
    memory = LocalMemory(seconds=10, max_entries=100, clock=clock)
    await memory.remember("old", Handled.DELIVERED, ["org:a"])
    await memory.remember("kept", Handled.DELIVERED, ["org:a"])
    clock.now += 5
    await memory.remember("kept", Handled.REFUSED)
    clock.now += 6
    assert await memory.recall("old") is None
    assert not await memory.received("org:a", "old")
    assert await memory.recall("kept") is Handled.REFUSED
    assert not await memory.received("org:a", "kept")
    await memory.remember("new", Handled.DELIVERED, ["org:b"])
    assert len(memory) == 2
    clock.now += 10
    assert await memory.recall("kept") is None
    assert await memory.recall("new") is None
