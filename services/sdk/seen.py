"""The receive-side dedupe window: message ids already settled, for a while, bounded."""

import time
from collections.abc import Callable


class SeenWindow:
    """Message ids settled in the last ``seconds``, at most ``max_entries`` (oldest evicted).

    The hub sets the same ``message_id`` (``<sender>/<distribution_id>``) on every copy of a
    delivery, so a copy the broker or a restarted hub sends again is recognised here.
    """

    def __init__(
        self,
        *,
        seconds: float = 3600.0,
        max_entries: int = 50_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._seconds = seconds
        self._max = max_entries
        self._clock = clock
        # Insertion-ordered: the first key is the oldest.
        self._seen: dict[str, float] = {}

    def __len__(self) -> int:
        return len(self._seen)

    def __contains__(self, key: str) -> bool:
        seen_at = self._seen.get(key)
        return seen_at is not None and self._clock() - seen_at < self._seconds

    def add(self, key: str) -> None:
        """Remember ``key`` as settled now."""
        now = self._clock()
        self._seen.pop(key, None)
        self._seen[key] = now
        horizon = now - self._seconds
        while self._seen:
            oldest = next(iter(self._seen))
            if len(self._seen) <= self._max and self._seen[oldest] >= horizon:
                break
            del self._seen[oldest]
