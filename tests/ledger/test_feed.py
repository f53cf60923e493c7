"""The hub's LedgerFeed: records of one event-loop turn leave as one publish, confirmed together."""

import asyncio
from typing import Any

import pytest

from liaison.common.topology import LEDGER_EXCHANGE
from liaison.hub.ledger_feed import LedgerFeed
from liaison.ledger.records import DecisionRecord, Outcome, decode_batch


class FakeOutbox:
    """Stands in for the hub's Outbox (same publish signature); keeps each publish's future."""

    def __init__(self) -> None:
        self.published: list[tuple[bytes, str, asyncio.Future[Any]]] = []

    def publish(
        self, body: bytes, *, exchange: str, routing_key: str, properties: object
    ) -> "asyncio.Future[Any]":
        """Record the publish; the test settles its confirm."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.published.append((body, exchange, future))
        return future


def record(n: int) -> DecisionRecord:
    """A minimal delivered record."""
    return DecisionRecord(record_id=f"r{n}", decided_at=float(n), outcome=Outcome.DELIVERED)


async def test_one_publish_per_turn_and_every_waiter_confirmed() -> None:
    """Records added in one loop turn are one batch; all waiters resolve on its confirm."""
    outbox = FakeOutbox()
    feed = LedgerFeed(outbox, max_batch=256)  # type: ignore[arg-type]
    waiters = [feed.record(record(n)) for n in range(5)]
    await asyncio.sleep(0)
    assert len(outbox.published) == 1
    body, exchange, confirm = outbox.published[0]
    assert exchange == LEDGER_EXCHANGE
    assert [r.record_id for r in decode_batch(body).records] == [f"r{n}" for n in range(5)]
    assert not any(w.done() for w in waiters)
    confirm.set_result(True)
    await asyncio.gather(*waiters)


async def test_full_batches_leave_at_once_and_a_nack_fails_its_waiters() -> None:
    """A batch at max_batch goes out without waiting; a refused publish fails every waiter."""
    outbox = FakeOutbox()
    feed = LedgerFeed(outbox, max_batch=3)  # type: ignore[arg-type]
    first = [feed.record(record(n)) for n in range(3)]
    assert len(outbox.published) == 1
    second = feed.record(record(3))
    await asyncio.sleep(0)
    assert len(outbox.published) == 2
    outbox.published[0][2].set_exception(ConnectionError("channel closed"))
    for waiter in first:
        with pytest.raises(ConnectionError):
            await waiter
    outbox.published[1][2].set_result(True)
    await second
