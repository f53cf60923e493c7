"""A dedupe window: keys seen recently, bounded in time and in entries.

The hub remembers the deliveries it made, so a partner that republishes the same distribution
id (after a lost confirm, say) does not reach its recipients twice; the SDK remembers the
message ids it settled, so a copy the broker or a restarted hub sends again is dropped (the hub
sets the same ``<sender>/<distribution_id>`` message id on every copy). Both bounds keep memory
flat however long the process runs.
"""

import time
from collections.abc import Callable


class DedupeWindow:
    """Keys seen in the last ``seconds``, at most ``max_entries`` of them (oldest evicted)."""

    def __init__(
        self,
        *,
        seconds: float,
        max_entries: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._seconds = seconds
        self._max = max_entries
        self._clock = clock
        # dicts keep insertion order, so the first key is always the oldest.
        self._seen: dict[str, float] = {}

    def __len__(self) -> int:
        return len(self._seen)

    def __contains__(self, key: str) -> bool:
        seen_at = self._seen.get(key)
        return seen_at is not None and self._clock() - seen_at < self._seconds

    def add(self, key: str) -> None:
        """Remember ``key`` as delivered now, evicting what fell out of the window."""
        now = self._clock()
        self._seen.pop(key, None)
        self._seen[key] = now
        self._evict(now)

    def discard(self, key: str) -> None:
        """Forget ``key`` (its delivery failed and it may be retried)."""
        self._seen.pop(key, None)

    def _evict(self, now: float) -> None:
        seen = self._seen
        horizon = now - self._seconds
        while seen:
            oldest = next(iter(seen))
            if len(seen) <= self._max and seen[oldest] >= horizon:
                return
            del seen[oldest]
