"""Keep a broker session running: run it again after a failure, with a doubling backoff.

The hub's inbox dead-letter reader and the ledger's consumer share this loop; each gives its
session, what to log when one fails, and what to reset when one ends.
"""

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

#: The first wait after a failure; each further failure doubles it, up to the caller's bound.
FIRST_BACKOFF = 0.2


async def keep_running(
    session: Callable[[], Awaitable[None]],
    *,
    stopping: asyncio.Event,
    max_backoff: float,
    on_failure: Callable[[Exception, float], None],
    on_end: Callable[[], None] = lambda: None,
) -> None:
    """Run ``session`` until ``stopping`` is set, again after each failure.

    ``on_failure(error, retry_in)`` hears of each failure; ``on_end`` runs after every session,
    failed or not. A session that ends on its own resets the backoff.
    """
    backoff = FIRST_BACKOFF
    while not stopping.is_set():
        try:
            await session()
            backoff = FIRST_BACKOFF
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            on_failure(exc, backoff)
        finally:
            on_end()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), backoff)
        backoff = min(backoff * 2, max_backoff)
