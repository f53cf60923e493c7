"""The hub's LedgerFeed: records leave in batches (one per turn when idle, group commit when
busy), each waiter confirmed with its batch."""

import asyncio
from typing import Any

import pytest

from liaison.common.topology import LEDGER_EXCHANGE
from liaison.hub.ledger_feed import LedgerFeed
from liaison.ledger.records import PIECE_FROM, DecisionRecord, Outcome, decode_batch


class FakeOutbox:
    """Stands in for the hub's Outbox (same publish signature); keeps each publish's future."""

    def __init__(self) -> None:
        self.published: list[tuple[bytes, str, asyncio.Future[Any]]] = []
        #: Each publish's body as handed over.
        self.given: list[bytes | list[bytes]] = []

    def publish(
        self, body: bytes | list[bytes], *, exchange: str, routing_key: str, properties: object
    ) -> "asyncio.Future[Any]":
        """Record the publish (a body given as pieces, joined); the test settles its confirm."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.published.append(
            (body if isinstance(body, bytes) else b"".join(body), exchange, future)
        )
        self.given.append(body)
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
    feed = LedgerFeed(outbox, max_batch=3, max_in_flight=2)  # type: ignore[arg-type]
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


async def test_records_wait_for_the_batch_in_flight_then_leave_together() -> None:
    """While a batch awaits its confirm, later records of many turns wait and then leave as one
    batch; none is confirmed before its own batch is."""
    outbox = FakeOutbox()
    feed = LedgerFeed(outbox, max_batch=256)  # type: ignore[arg-type]
    first = feed.record(record(0))
    await asyncio.sleep(0)
    assert len(outbox.published) == 1
    later = []
    for n in range(1, 6):
        later.append(feed.record(record(n)))
        await asyncio.sleep(0)
    assert len(outbox.published) == 1
    outbox.published[0][2].set_result(True)
    await first
    assert not any(w.done() for w in later)
    await asyncio.sleep(0)
    assert len(outbox.published) == 2
    body, _, confirm = outbox.published[1]
    assert [r.record_id for r in decode_batch(body).records] == [f"r{n}" for n in range(1, 6)]
    assert not any(w.done() for w in later)
    confirm.set_result(True)
    await asyncio.gather(*later)


async def test_a_full_batch_leaves_even_while_one_is_in_flight() -> None:
    """Reaching max_batch sends at once, whatever is in flight, so a batch never outgrows it."""
    outbox = FakeOutbox()
    feed = LedgerFeed(outbox, max_batch=2)  # type: ignore[arg-type]
    feed.record(record(0))
    await asyncio.sleep(0)
    feed.record(record(1))
    feed.record(record(2))
    assert len(outbox.published) == 2
    assert len(decode_batch(outbox.published[1][0]).records) == 2


async def test_a_refused_batch_still_lets_the_waiting_records_go() -> None:
    """A nacked batch frees its place: the records that waited behind it are published."""
    outbox = FakeOutbox()
    feed = LedgerFeed(outbox)  # type: ignore[arg-type]
    first = feed.record(record(0))
    await asyncio.sleep(0)
    waiting = feed.record(record(1))
    outbox.published[0][2].set_exception(ConnectionError("nacked"))
    with pytest.raises(ConnectionError):
        await first
    await asyncio.sleep(0)
    assert len(outbox.published) == 2
    outbox.published[1][2].set_result(True)
    await waiting


async def test_a_replaced_outbox_does_not_hold_records_behind_its_batch_in_flight() -> None:
    """Once the hub renewed its publishing channel, records still handed to the old feed leave
    at the end of the turn instead of waiting for the old channel's unconfirmed batch."""
    outbox = FakeOutbox()
    feed = LedgerFeed(outbox)  # type: ignore[arg-type]
    feed.record(record(0))
    await asyncio.sleep(0)
    outbox.replaced_by = FakeOutbox()  # type: ignore[attr-defined]
    feed.record(record(1))
    await asyncio.sleep(0)
    assert len(outbox.published) == 2


async def test_a_batch_leaves_once_its_bodies_reach_max_batch_bytes() -> None:
    """Large bodies bound a batch by bytes, not by count: the record that reaches
    max_batch_bytes sends the batch at once, and the count starts again after it."""
    outbox = FakeOutbox()
    feed = LedgerFeed(outbox, max_batch=256, max_batch_bytes=1000)  # type: ignore[arg-type]

    def sized(n: int) -> DecisionRecord:
        return DecisionRecord(
            record_id=f"r{n}", decided_at=float(n), outcome=Outcome.DELIVERED, body=b"x" * 400
        )

    feed.record(sized(0))
    feed.record(sized(1))
    assert outbox.published == []
    feed.record(sized(2))
    assert len(outbox.published) == 1
    assert [r.record_id for r in decode_batch(outbox.published[0][0]).records] == [
        "r0",
        "r1",
        "r2",
    ]
    feed.record(sized(3))
    feed.record(sized(4))
    assert len(outbox.published) == 1


async def test_a_batch_with_large_bodies_is_published_as_pieces_holding_them() -> None:
    """A batch whose records carry bodies of PIECE_FROM or more goes to the outbox as pieces
    with each such body itself among them (never copied into the batch), and reads back as
    the records."""
    outbox = FakeOutbox()
    feed = LedgerFeed(outbox)  # type: ignore[arg-type]
    bodies = [b"a" * PIECE_FROM, b"b" * 10, b"c" * 200_000]
    for n, body in enumerate(bodies):
        feed.record(
            DecisionRecord(record_id=f"r{n}", decided_at=0.0, outcome=Outcome.DELIVERED, body=body)
        )
    feed.flush()
    (given,) = outbox.given
    assert isinstance(given, list)
    assert [p for p in given if p is bodies[0] or p is bodies[2]] == [bodies[0], bodies[2]]
    assert [r.body for r in decode_batch(outbox.published[0][0]).records] == bodies
