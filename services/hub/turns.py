"""Publishing turns: a channel's messages publish in the order they were received.

Between receiving a message and publishing what it causes, the hub awaits its memory's recall.
An in-process memory answers without suspending, but a shared store answers over the network,
and answers may come back in any order. Each message takes a ticket when it is received and
publishes only on its turn, so a shard's order survives whatever the memory does; a message
that publishes nothing, or fails, passes its turn on.
"""

import asyncio


class Turns:
    """Tickets in receive order; ``wait`` returns on the ticket's turn, ``done`` passes it on."""

    __slots__ = ("_finished", "_next", "_waiters", "serving")

    def __init__(self) -> None:
        self._next = 0
        #: The ticket whose turn it is.
        self.serving = 0
        self._finished: set[int] = set()
        self._waiters: dict[int, asyncio.Future[None]] = {}

    def ticket(self) -> int:
        """The next ticket, in the order messages are received."""
        ticket = self._next
        self._next = ticket + 1
        return ticket

    async def wait(self, ticket: int) -> None:
        """Return when every earlier ticket is done (at once if it is already so)."""
        if ticket == self.serving:
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters[ticket] = waiter
        try:
            await waiter
        finally:
            self._waiters.pop(ticket, None)

    def done(self, ticket: int) -> None:
        """Pass ``ticket``'s turn on; again, or for a ticket already past, it does nothing."""
        if ticket != self.serving:
            if ticket > self.serving:
                self._finished.add(ticket)
            return
        serving = ticket + 1
        finished = self._finished
        while serving in finished:
            finished.discard(serving)
            serving += 1
        self.serving = serving
        waiter = self._waiters.get(serving)
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
