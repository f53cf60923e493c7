"""Acknowledging ingress deliveries in order, many at a time.

Messages finish out of order (their confirms come back in any order), but an AMQP ack with
``multiple=True`` covers every earlier tag. The tracker acks the longest finished prefix in one
frame, which is what keeps per-message ack cost off the hot path.
"""

from collections import deque


class AckTracker:
    """Tags in delivery order; ``finish`` returns the tag to ack with multiple=True, if any."""

    def __init__(self) -> None:
        self._order: deque[int] = deque()
        self._done: set[int] = set()

    def __len__(self) -> int:
        """Deliveries begun and not yet acknowledged."""
        return len(self._order)

    def begin(self, tag: int) -> None:
        """Record a delivery as in flight."""
        self._order.append(tag)

    def finish(self, tag: int) -> int | None:
        """Mark ``tag`` done; return the highest tag whose whole prefix is done, or None."""
        order, done = self._order, self._done
        if not order:
            return None
        if tag == order[0] and not done:
            order.popleft()
            return tag
        done.add(tag)
        last: int | None = None
        while order and order[0] in done:
            last = order.popleft()
            done.discard(last)
        return last

    def forget(self, tag: int) -> int | None:
        """Drop a tag settled individually (rejected); return a now-finished prefix to ack."""
        self._done.discard(tag)
        try:
            self._order.remove(tag)
        except ValueError:
            return None
        order, done = self._order, self._done
        last: int | None = None
        while order and order[0] in done:
            last = order.popleft()
            done.discard(last)
        return last

    def reset(self) -> None:
        """Forget everything (the channel closed; the broker redelivers what was unacked)."""
        self._order.clear()
        self._done.clear()
