"""What the hub remembers of the messages it handled, shared by every hub process.

The hub records a message only after the broker confirmed everything its handling published,
and checks the record before handling a message again, so a redelivery (after a crash, a forced
close or a standby takeover) of a recorded message reaches nobody twice. A repeat is possible
for the copies the broker had taken but the hub had not recorded yet when it stopped: the
broker enqueues a copy before it confirms it, so that is the time from publish to record (the
confirm's latency, then one memory round trip), for every publish in flight; see "Repeats after
a crash" in docs/operations.md.

    DeliveryMemory          the interface the hub's pipeline depends on
     └── LocalMemory        one process's memory (tests of pure logic, single-process dev runs)

A store shared by all hub processes and surviving restarts implements the same interface.
"""

import time
from collections.abc import Callable, Sequence
from enum import StrEnum
from typing import Protocol


class Handled(StrEnum):
    """What became of a message the hub already handled."""

    DELIVERED = "delivered"
    REFUSED = "refused"


class DeliveryMemory(Protocol):
    """Messages handled within the dedupe window, and which recipients got them."""

    async def recall(self, key: str) -> Handled | None:
        """How ``key`` (a delivered message id, or a refusal's report id) was handled, if it was."""
        ...

    async def remember(self, key: str, handled: Handled, recipients: Sequence[str] = ()) -> None:
        """Record ``key`` as handled; call only after the broker confirmed what it published."""
        ...

    async def received(self, recipient: str, key: str) -> bool:
        """Whether ``recipient`` was delivered the message ``key`` within the window."""
        ...

    async def ping(self) -> None:
        """Return once the memory answers; raise (a ConnectionError) when it cannot."""
        ...

    async def close(self) -> None:
        """Release connections; the memory is not used afterwards."""
        ...


class LocalMemory:
    """One process's memory: bounded in time and entries, gone when the process ends.

    One table holds, per key, when it was handled, how, and who received it, oldest first (a
    dict keeps insertion order), and each ``remember`` evicts what fell out of the window. It
    was three tables (a ``DedupeWindow`` of keys, how each was handled, a frozenset of its
    recipients) pruned only at twice the window: 86 MB for 200,000 messages, 100 MB for
    250,000 (``tracemalloc``), growing after the window was full.
    """

    def __init__(
        self, *, seconds: float, max_entries: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._seconds = seconds
        self._max = max_entries
        self._clock = clock
        #: key -> (handled at, how, recipients); the first entry is always the oldest.
        self._entries: dict[str, tuple[float, Handled, tuple[str, ...]]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def _live(self, key: str) -> tuple[float, Handled, tuple[str, ...]] | None:
        entry = self._entries.get(key)
        if entry is None or self._clock() - entry[0] >= self._seconds:
            return None
        return entry

    async def recall(self, key: str) -> Handled | None:
        entry = self._live(key)
        return None if entry is None else entry[1]

    async def remember(self, key: str, handled: Handled, recipients: Sequence[str] = ()) -> None:
        now = self._clock()
        entries = self._entries
        entries.pop(key, None)  # re-remembered: now the newest
        entries[key] = (now, handled, tuple(recipients))
        horizon = now - self._seconds
        while entries:
            oldest = next(iter(entries))
            if len(entries) <= self._max and entries[oldest][0] >= horizon:
                break
            del entries[oldest]

    async def received(self, recipient: str, key: str) -> bool:
        entry = self._live(key)
        return entry is not None and recipient in entry[2]

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        return None
