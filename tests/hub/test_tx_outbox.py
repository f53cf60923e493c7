"""Transaction mode's outbox (TxOutbox): what one commit carries and in which order, and what
its waiters see when the commit fails."""

import asyncio
import contextlib
from typing import Any

import pytest
from pamqp import commands as spec
from pamqp.frame import unmarshal

from liaison.hub.outbox import TxOutbox


class FakeTxChannel:
    """The part of ``TxChannel`` the outbox uses, recording each commit's frames."""

    number = 1
    max_content_size = 131_072

    def __init__(self, *, fail_commit: bool = False) -> None:
        self.commits: list[list[str]] = []
        self.closed = False
        self._fail = fail_commit
        self._written: list[str] = []
        self._batch: asyncio.Future[Any] | None = None
        self.commit_started = asyncio.Event()
        self.release = asyncio.Event()
        self.release.set()

    @property
    def is_closed(self) -> bool:
        """Whether the channel was closed."""
        return self.closed

    def expect_confirm(self) -> "asyncio.Future[Any]":
        """The current batch's future."""
        if self._batch is None:
            self._batch = asyncio.get_running_loop().create_future()
        return self._batch

    def take_batch(self) -> "asyncio.Future[Any] | None":
        """The current batch's future; the next publish starts another."""
        batch, self._batch = self._batch, None
        return batch

    def oldest_unconfirmed(self) -> int | None:
        """Never anything: commits are bounded by the outbox itself."""
        return None

    async def write(self, payload: bytes) -> None:
        """Decode the frames into what a reader of the wire would name."""
        while payload:
            used, _, frame = unmarshal(payload)
            payload = payload[used:]
            if isinstance(frame, spec.Basic.Publish):
                self._written.append(f"publish {frame.routing_key}")
            elif isinstance(frame, spec.Basic.Ack):
                self._written.append(f"ack {frame.delivery_tag} multiple={frame.multiple}")
            elif isinstance(frame, spec.Basic.Reject):
                self._written.append(f"reject {frame.delivery_tag} requeue={frame.requeue}")

    async def commit(self) -> None:
        """Record the frames written since the last commit as one commit."""
        self.commit_started.set()
        await self.release.wait()
        if self._fail:
            raise ConnectionError("broker gone")
        self.commits.append(self._written)
        self._written = []

    async def close(self, exc: BaseException) -> None:
        """Mark closed."""
        self.closed = True


def publish(outbox: TxOutbox, key: str) -> "asyncio.Future[Any]":
    """One small publish to the delivery exchange under ``key``."""
    return outbox.publish(
        b"{}", exchange="liaison.delivery", routing_key=key, properties=spec.Basic.Properties()
    )


async def test_a_batch_commits_its_publishes_then_one_ack_and_later_ones_wait() -> None:
    """Copies, the ledger flush and the multiple-ack leave in one commit in that order; a
    publish made while that commit is in flight goes into the next, and each waits for its own."""
    channel = FakeTxChannel()
    records: list[str] = []
    acked: list[int] = []
    outbox = TxOutbox(channel, 5.0, committed=acked.append)  # type: ignore[arg-type]

    def flush() -> None:
        # As the ledger feed does: one publish of the records pending, if any.
        if records:
            records.clear()
            publish(outbox, "ledger")

    outbox.before_commit = flush
    sender = asyncio.create_task(outbox.send())
    try:
        channel.release.clear()
        first = publish(outbox, "inbox.unmas")
        publish(outbox, "inbox.minusca")
        records.append("decision 7")
        committed = outbox.ack(7)
        assert committed is first, "one future per batch"
        await asyncio.wait_for(channel.commit_started.wait(), 1)
        second = publish(outbox, "inbox.wfp")
        records.append("decision 9")
        later = outbox.ack(9)
        assert later is second
        assert second is not first
        assert not first.done(), "nothing is done before the commit's answer"
        channel.release.set()
        await asyncio.wait_for(asyncio.gather(first, second), 1)
        assert channel.commits == [
            [
                "publish inbox.unmas",
                "publish inbox.minusca",
                "publish ledger",
                "ack 7 multiple=True",
            ],
            ["publish inbox.wfp", "publish ledger", "ack 9 multiple=True"],
        ]
        assert acked == [7, 9]
    finally:
        sender.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sender


async def test_a_reject_goes_before_the_ack_that_passes_it() -> None:
    """A failed delivery's reject is in the batch ahead of the multiple-ack covering later
    tags, so the ack skips it and the broker hands it back once committed."""
    channel = FakeTxChannel()
    outbox = TxOutbox(channel, 5.0)  # type: ignore[arg-type]
    sender = asyncio.create_task(outbox.send())
    try:
        outbox.reject(3)
        done = outbox.ack(4)
        await asyncio.wait_for(done, 1)
        assert channel.commits == [["reject 3 requeue=True", "ack 4 multiple=True"]]
        # Nothing new to ack: the next commit carries no second ack of the same tags.
        await asyncio.wait_for(publish(outbox, "inbox.unmas"), 1)
        assert channel.commits[1] == ["publish inbox.unmas"]
    finally:
        sender.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sender


async def test_a_failed_commit_fails_its_waiters_and_closes_the_channel() -> None:
    """A commit the broker does not answer fails every waiter of its batch as a lost channel
    (the session ends; the broker redelivers the unacked deliveries) and closes the channel."""
    channel = FakeTxChannel(fail_commit=True)
    outbox = TxOutbox(channel, 5.0)  # type: ignore[arg-type]
    sender = asyncio.create_task(outbox.send())
    waiting = publish(outbox, "inbox.unmas")
    outbox.ack(2)
    with pytest.raises(ConnectionError):
        await asyncio.wait_for(waiting, 1)
    await asyncio.wait_for(sender, 1)
    assert channel.closed
    assert channel.commits == []
