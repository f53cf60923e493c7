"""How the ledger cuts what has arrived into transactions (LedgerConsumer._fill)."""

import asyncio
from typing import Any

import pytest

from liaison.ledger.consumer import LedgerConsumer
from liaison.ledger.metrics import LedgerMetrics
from liaison.ledger.settings import LedgerSettings


class Arrived:
    """Stands in for a delivered message: the batching looks at its body only."""

    def __init__(self, size: int) -> None:
        self.body = b"x" * size


def consumer(**settings: Any) -> LedgerConsumer:
    """A consumer that is never started; only its batching is used."""
    return LedgerConsumer(LedgerSettings(batch_wait_seconds=0.01, **settings), LedgerMetrics())


async def fill(ledger: LedgerConsumer, sizes: list[int]) -> list[int]:
    """Sizes of the messages the first transaction would take, of ``sizes`` waiting."""
    for size in sizes:
        ledger._arrived.put_nowait(Arrived(size))  # type: ignore[arg-type]
    batch = [await ledger._arrived.get()]
    await ledger._fill(batch)
    return [len(message.body) for message in batch]


async def test_a_transaction_stops_at_the_byte_limit_and_the_rest_waits() -> None:
    """Messages join until their bytes reach batch_bytes; the next ones start the next batch."""
    ledger = consumer(batch_bytes=1000, batch_size=500)
    assert await fill(ledger, [400, 400, 400, 400, 100]) == [400, 400, 400]
    assert await fill(ledger, []) == [400, 100]


async def test_one_message_larger_than_the_limit_is_still_written() -> None:
    """A message over batch_bytes makes a transaction of its own rather than waiting forever."""
    ledger = consumer(batch_bytes=100, batch_size=500)
    assert await fill(ledger, [5000, 10]) == [5000]
    assert await fill(ledger, []) == [10]


async def test_the_message_count_limit_still_applies() -> None:
    """batch_size caps the messages of a transaction whatever their bytes."""
    ledger = consumer(batch_bytes=1 << 20, batch_size=3)
    assert await asyncio.wait_for(fill(ledger, [10] * 5), 5) == [10, 10, 10]


class NeverClosed:
    """A channel that stays open."""

    async def closed(self) -> None:
        """Wait forever."""
        await asyncio.Event().wait()


async def test_the_next_batch_is_prepared_while_one_is_written_and_writes_stay_in_order(
    monkeypatch: Any,
) -> None:
    """Batch 2 is turned into rows while batch 1 is still being written, batch 2's write starts
    only after batch 1's ends, and a failed write ends the loop with no new message needed."""
    ledger = consumer(batch_bytes=10, batch_size=500)
    log: list[str] = []
    release = asyncio.Event()

    def rows_of(batch: list[Any]) -> Any:
        log.append(f"rows {len(batch[0].body)}")
        return len(batch[0].body)

    async def commit(batch: list[Any], prepared: Any) -> None:
        log.append(f"write {prepared}")
        if prepared == 1:
            await release.wait()
            log.append("written 1")
            return
        raise ConnectionError("database gone and stopping")

    monkeypatch.setattr(ledger, "rows_of", rows_of)
    monkeypatch.setattr(ledger, "_commit", commit)
    loop = asyncio.create_task(ledger._batches(NeverClosed()))  # type: ignore[arg-type]
    ledger._arrived.put_nowait(Arrived(1))  # type: ignore[arg-type]
    await asyncio.sleep(0.05)
    ledger._arrived.put_nowait(Arrived(2))  # type: ignore[arg-type]
    await asyncio.sleep(0.05)
    assert log == ["rows 1", "write 1", "rows 2"]
    release.set()
    with pytest.raises(ConnectionError):
        await asyncio.wait_for(loop, 5)
    assert log == ["rows 1", "write 1", "rows 2", "written 1", "write 2"]
