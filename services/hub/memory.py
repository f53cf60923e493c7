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

from liaison.common.dedupe import DedupeWindow


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
    """One process's memory: bounded in time and entries, gone when the process ends."""

    def __init__(
        self, *, seconds: float, max_entries: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._window = DedupeWindow(seconds=seconds, max_entries=max_entries, clock=clock)
        self._handled: dict[str, Handled] = {}
        self._recipients: dict[str, frozenset[str]] = {}

    def __len__(self) -> int:
        return len(self._window)

    async def recall(self, key: str) -> Handled | None:
        if key not in self._window:
            self._handled.pop(key, None)
            self._recipients.pop(key, None)
            return None
        return self._handled.get(key)

    async def remember(self, key: str, handled: Handled, recipients: Sequence[str] = ()) -> None:
        self._window.add(key)
        self._handled[key] = handled
        if recipients:
            self._recipients[key] = frozenset(recipients)
        # The window evicts its oldest keys; drop what it no longer holds.
        if len(self._handled) > 2 * max(len(self._window), 1):
            self._handled = {k: v for k, v in self._handled.items() if k in self._window}
            self._recipients = {k: v for k, v in self._recipients.items() if k in self._window}

    async def received(self, recipient: str, key: str) -> bool:
        return key in self._window and recipient in self._recipients.get(key, frozenset())

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        return None
