"""Publishing again what the broker negatively confirmed, in place and in receive order.

A quorum queue nacks a publish when it cannot take it: full (``reject-publish``), or, on
RabbitMQ 3.10, for several seconds after a node loss, while a channel opened since then still
addresses the queue's old leader (measured in tests/cluster/test_failover.py: every publish of
the hub's new channel was nacked for ~7.6 s on a busy machine). The two look the same on the
wire. Answering the first nack with 502 (as the hub did) refused messages that a moment later
would have gone through; requeueing instead used up the ingress queue's delivery limit within
that window, and the broker then dead-lettered the message without telling anyone.

So a nacked message is published again where it stands, with growing pauses
(:class:`NackRetry`, pure), until ``LIAISON_NACK_RETRY_SECONDS`` have passed; only then is it
answered with 502. While it waits, later messages of the channel do not publish and nacked ones
publish again oldest first (:class:`Holdback`), so no sender's order is broken by a retry.
"""

import asyncio
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class NackRetry:
    """When to publish a nacked message again: ``first`` seconds, doubling up to ``cap``, for
    at most ``limit`` seconds in all (0: never, answer at once)."""

    limit: float
    first: float = 0.05
    cap: float = 1.0

    def delay(self, attempt: int, elapsed: float) -> float | None:
        """The pause before retry number ``attempt`` (0 for the first), ``elapsed`` seconds after
        the first nack; None once the limit is reached (give up: answer 502)."""
        if elapsed >= self.limit:
            return None
        pause = min(self.cap, self.first * 2.0 ** min(attempt, 32))
        # The last pause ends at the limit, so the final attempt happens at it, not past it.
        return min(pause, self.limit - elapsed)


class Holdback:
    """Tickets (receive order) of messages being retried; later publishes wait behind them."""

    __slots__ = ("_changed", "_held")

    def __init__(self) -> None:
        self._held: set[int] = set()
        self._changed = asyncio.Condition()

    @property
    def held(self) -> bool:
        """Whether any message is being retried (the hot path's one check)."""
        return bool(self._held)

    def hold(self, ticket: int) -> None:
        """``ticket`` is being retried: later tickets wait until it is released."""
        self._held.add(ticket)

    async def release(self, ticket: int) -> None:
        """``ticket`` is settled (delivered or answered): let later ones go."""
        self._held.discard(ticket)
        async with self._changed:
            self._changed.notify_all()

    async def clear(self, ticket: int) -> None:
        """Return once no ticket older than ``ticket`` is held."""
        if not self._ahead(ticket):
            return
        async with self._changed:
            await self._changed.wait_for(lambda: not self._ahead(ticket))

    def _ahead(self, ticket: int) -> bool:
        return any(held < ticket for held in self._held)
